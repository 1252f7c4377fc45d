//! The other program with its own `struct Order` (the typed-identity test, issue 17): `typed-sub SOCKET TOPIC
//! same|changed N` opens a typed subscriber of its `Order` (`changed`: the same name with `qty: i64`), prints
//! `ready` (or `refused: <error>` and exits), then prints `order ID SYM QTY` for N orders.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The same struct as `typed-pub`'s, defined again in this crate.
#[derive(Serialize, Deserialize, Debug)]
struct Order {
    id: u64,
    sym: String,
    qty: i32,
}

mod changed {
    /// The same name, one field retyped.
    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    pub struct Order {
        pub id: u64,
        pub sym: String,
        pub qty: i64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (socket, topic, n) = (&args[1], &args[2], args[4].parse::<u64>().expect("N"));
    let bus = bus_client::Bus::connect_to(socket).expect("connect");
    if args[3] == "changed" {
        match bus.typed_subscriber::<changed::Order>(topic) {
            Ok(_) => println!("ready"),
            Err(e) => println!("refused: {e}"),
        }
        return;
    }
    let mut s = match bus.typed_subscriber::<Order>(topic) {
        Ok(s) => s,
        Err(e) => {
            println!("refused: {e}");
            return;
        }
    };
    println!("ready");
    for _ in 0..n {
        let o = s.recv_timeout(Duration::from_secs(30)).expect("an order");
        println!("order {} {} {}", o.id, o.sym, o.qty);
    }
}
