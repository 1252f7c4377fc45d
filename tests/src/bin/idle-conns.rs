//! Opens many idle control connections to a daemon (run as another user by the tests), to show they neither
//! starve other clients nor stay open for ever.
//!
//! `idle-conns SOCKET N`: connects N times, sending nothing (every other one sends half a frame, a stalled
//! request); prints `connected C refused R` once the daemon had a moment to answer (R: connections it closed
//! or answered with an error at once); then waits, bounded by 30 s, until the daemon closed every one and prints
//! `all closed` (or `still open K`).
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Whether the daemon closed (or answered on) `s` within `wait`.
fn answered(s: &mut UnixStream, wait: Duration) -> bool {
    let _ = s.set_read_timeout(Some(wait));
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(_n) => true, // EOF (0) or the error frame: either way the daemon answered
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (socket, n): (&str, usize) = (&args[1], args[2].parse().expect("count"));
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        match UnixStream::connect(socket) {
            Ok(mut s) => {
                if i % 2 == 1 {
                    let _ = s.write_all(&[200, 0]); // half of a length prefix, never completed
                }
                open.push(s);
            }
            Err(_) => refused += 1,
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut still = Vec::new();
    for mut s in open.drain(..) {
        if answered(&mut s, Duration::from_millis(1)) {
            refused += 1;
        } else {
            still.push(s);
        }
    }
    println!("connected {n} refused {refused}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !still.is_empty() && Instant::now() < deadline {
        still.retain_mut(|s| !answered(s, Duration::from_millis(5)));
    }
    if still.is_empty() {
        println!("all closed");
    } else {
        println!("still open {}", still.len());
    }
}
