//! The publish and receive hot path in one thread, for instruction counts under callgrind:
//!
//! ```text
//! cargo build --release -p shmbus-ring --example hot_path
//! valgrind --tool=callgrind target/release/examples/hot_path 1000000 64
//! ```
//!
//! Sends `n` messages of `size` bytes on a heap-backed single-producer topic (1024 entries), 32 at a time, each
//! batch then read back by one lossless subscriber, with the timestamp clock bus-client uses; prints the time per
//! message (send and receive together; under callgrind, divide the instruction count by `n` instead).

use shmbus_ring::{Geometry, Mode, PollWaiter, Publisher, PublisherOptions, Subscriber, SubscriberOptions, Topic};
use std::sync::Arc;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("numbers: n size"));
    let n = args.next().unwrap_or(1_000_000);
    let size = args.next().unwrap_or(64) as usize;
    if shmbus_os::register_global_expedited().unwrap_or(false) {
        // SAFETY: registered above; this single thread never sleeps, so no heavy barrier is ever needed (as on a
        // daemon-created topic, wakers then use a compiler fence).
        unsafe { shmbus_ring::wait::set_light_barrier_cheap(true) };
    }
    let geo = Geometry::new(1024, size.max(8) as u32, 4 << 20, 1, 8, 2);
    let topic = Topic::heap(&geo, 0).expect("geometry");
    let w = Arc::new(PollWaiter);
    let opts = SubscriberOptions { mode: Mode::Lossless, ..Default::default() };
    let mut s = Subscriber::attach(&topic, 0, opts, w.clone(), &|_| false).expect("subscriber");
    let popts = PublisherOptions { clock: shmbus_os::fast_realtime_ns, ..Default::default() };
    shmbus_os::fast_clock::warm_up();
    let mut p = Publisher::attach(&topic, 0, w, popts).expect("publisher");
    let msg = vec![0x5au8; size];
    let mut sum = 0u64;
    let mut sent = 0;
    let t = std::time::Instant::now();
    while sent < n {
        let k = (n - sent).min(32);
        for _ in 0..k {
            p.try_send(&msg).expect("room");
        }
        for _ in 0..k {
            let m = s.try_recv().expect("a message");
            sum = sum.wrapping_add(m.payload()[0] as u64 + m.seq());
        }
        sent += k;
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("{size} B: {ns:.1} ns per message sent and received (checksum {sum})");
}
