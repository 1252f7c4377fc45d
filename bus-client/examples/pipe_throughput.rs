//! Throughput of the pipe transport against a raw pipe measured in the same run (the seed of the benchmark
//! harness's pipe-transport row).
//!
//! ```text
//! cargo run --release -p bus-client --example pipe_throughput -- [messages] [payload bytes]
//! ```
//!
//! A writer thread and a reader thread on one pipe. The baseline writes each message with one `write` and reads
//! the pipe in 64 KiB chunks, with no framing, metadata or message boundaries; shmbus adds the 32-byte frame
//! header (length, writer id, sequence, timestamp), fragments messages longer than 4064 bytes, and hands the
//! reader whole messages. The ratio is what to compare across machines.

use std::io::{Read, Write};
use std::time::Instant;

fn raw(total: u64, size: usize) -> f64 {
    let (read, write) = bus_client::pipe::os_pipe().expect("pipe");
    let mut w = std::fs::File::from(write);
    let mut r = std::fs::File::from(read);
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let msg = vec![7u8; size];
        for _ in 0..total {
            w.write_all(&msg).expect("write");
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = total as usize * size;
    while left > 0 {
        let n = r.read(&mut buf[..left.min(64 * 1024)]).expect("read");
        assert!(n > 0, "early end of file");
        left -= n;
    }
    writer.join().expect("writer");
    total as f64 / start.elapsed().as_secs_f64()
}

fn shmbus(total: u64, size: usize) -> f64 {
    let (mut tx, mut rx) = bus_client::pipe::channel("bench").expect("channel");
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let msg = vec![7u8; size];
        for _ in 0..total {
            tx.send(&msg).expect("send");
        }
    });
    for i in 0..total {
        let m = rx.recv().expect("recv");
        assert_eq!((m.seq(), m.len()), (i, size));
    }
    writer.join().expect("writer");
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    // Best of three interleaved runs each, so both see the same machine state.
    let (mut base, mut ours) = (0f64, 0f64);
    for _ in 0..3 {
        base = base.max(raw(total, size));
        ours = ours.max(shmbus(total, size));
    }
    let mb = |rate: f64| rate * size as f64 / 1e6;
    println!("pipe transport, {total} messages of {size} bytes, one writer thread, one reader thread");
    println!("  raw pipe (one write per message): {base:>12.0} msg/s {:>9.1} MB/s", mb(base));
    println!("  shmbus pipe transport:            {ours:>12.0} msg/s {:>9.1} MB/s", mb(ours));
    println!("  ratio: {:.2}", ours / base);
}
