//! One of two programs that each define `struct Order` (the typed-identity test, issue 17): `typed-pub SOCKET
//! TOPIC N` opens a typed publisher of its own `Order`, prints `ready`, publishes N orders once a line arrives on
//! standard input, prints `sent N`, and holds the publisher until standard input closes.

use serde::{Deserialize, Serialize};
use std::io::BufRead;

/// The same struct as `typed-sub`'s, defined again in this crate.
#[derive(Serialize, Deserialize, Debug)]
struct Order {
    id: u64,
    sym: String,
    qty: i32,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (socket, topic, n) = (&args[1], &args[2], args[3].parse::<u64>().expect("N"));
    let bus = bus_client::Bus::connect_to(socket).expect("connect");
    let mut p = bus.typed_publisher::<Order>(topic).unwrap_or_else(|e| {
        println!("refused: {e}");
        std::process::exit(0)
    });
    println!("ready");
    let mut lines = std::io::stdin().lock().lines();
    let _ = lines.next();
    for id in 0..n {
        p.send(&Order { id, sym: format!("S{id}"), qty: -(id as i32) }).expect("send");
    }
    println!("sent {n}");
    for _ in lines {}
}
