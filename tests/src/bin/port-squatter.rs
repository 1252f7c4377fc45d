//! Takes a TCP port on the loopback before the daemon does (issue 16 item 12; the tests run it as `nobody`).
//!
//! `port-squatter`: binds 127.0.0.1:0, prints `port P`, and holds the port until its standard input closes.
use std::io::{Read, Write};

fn main() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    println!("port {}", l.local_addr().expect("bound address").port());
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
