//! In-process throughput of the ring against a minimal SPSC ring measured in the same run.
//!
//! ```text
//! cargo run --release -p shmbus-ring --example throughput -- [messages] [payload bytes] [producers]
//! ```
//!
//! Producer threads and one lossless subscriber thread on a heap-backed topic (spin-then-yield waiting, real
//! per-message timestamps, the membarrier-backed cheap barrier when the kernel has it). The baseline is a
//! fixed-slot single-producer ring with cached indices and no framing, metadata or gating (the "minimal unframed
//! ring"); the ratio is what to compare across machines. Timestamps come from bus-client's clock
//! (`shmbus_os::fast_realtime_ns`); `CLOCK=vdso` uses a vDSO `clock_gettime` per message instead (the old
//! default, half the 64-byte throughput on this VM) and `CLOCK=none` none, to show what the ring itself costs.

use crossbeam_utils::CachePadded;
use shmbus_ring::wait::{set_light_barrier_cheap, Target, Waiter};
use shmbus_ring::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// In-process waiter whose heavy barrier is `membarrier`, matching the cheap light barrier.
struct Membarrier;
impl Waiter for Membarrier {
    fn post(&self, _: Target) {}
    fn drain(&self, _: Target) {}
    fn wait_until(&self, _: Target, deadline: Instant) -> bool {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()).min(Duration::from_micros(50)));
        false
    }
    fn heavy(&self) {
        let _ = shmbus_os::global_expedited();
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}

fn shmbus(total: u64, size: usize, producers: u32) -> f64 {
    let geo = Geometry::new(1024, size.max(8) as u32, 16 << 20, producers, 4, 0);
    let topic = Topic::heap(&geo, 0).expect("valid geometry");
    let waiter: Arc<dyn Waiter> = Arc::new(Membarrier);
    let idle = IdleStrategy::SpinThenYield;
    let opts = SubscriberOptions { idle, ..Default::default() };
    let mut sub = Subscriber::attach(&topic, 0, opts, waiter.clone(), &|_| false).expect("attach");
    let per = total / producers as u64;
    let start = Instant::now();
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let (topic, waiter) = (topic.clone(), waiter.clone());
            std::thread::spawn(move || {
                let opts = PublisherOptions {
                    idle,
                    clock: match std::env::var("CLOCK").as_deref() {
                        Ok("none") => || 0,
                        Ok("vdso") => realtime_ns,
                        _ => shmbus_os::fast_realtime_ns,
                    },
                };
                let mut publisher = Publisher::attach(&topic, p as usize, waiter, opts).expect("attach");
                let msg = vec![p as u8; size];
                for _ in 0..per {
                    publisher.send(&msg).expect("send");
                }
            })
        })
        .collect();
    let mut check = 0u64;
    for _ in 0..per * producers as u64 {
        let m = sub.recv().expect("recv");
        check += m.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    handles.into_iter().for_each(|h| h.join().expect("producer"));
    assert_eq!(check, per * producers as u64 * size as u64);
    (per * producers as u64) as f64 / secs
}

/// The minimal unframed SPSC ring: fixed `size`-byte slots, head and tail on their own lines, cached indices.
fn baseline(total: u64, size: usize) -> f64 {
    const SLOTS: usize = 1024;
    struct Ring {
        head: CachePadded<AtomicU64>,
        tail: CachePadded<AtomicU64>,
        slots: Box<[AtomicU64]>,
    }
    let words = size.div_ceil(8).max(1);
    let ring = Arc::new(Ring {
        head: CachePadded::new(AtomicU64::new(0)),
        tail: CachePadded::new(AtomicU64::new(0)),
        slots: (0..SLOTS * words).map(|_| AtomicU64::new(0)).collect(),
    });
    let start = Instant::now();
    let r = ring.clone();
    let producer = std::thread::spawn(move || {
        let mut head_cache = 0u64;
        for i in 0..total {
            while i - head_cache >= SLOTS as u64 {
                head_cache = r.head.load(Ordering::Acquire);
                std::hint::spin_loop();
            }
            let base = (i as usize % SLOTS) * words;
            for w in 0..words {
                r.slots[base + w].store(i, Ordering::Relaxed);
            }
            r.tail.store(i + 1, Ordering::Release);
        }
    });
    let mut tail_cache = 0u64;
    let mut sum = 0u64;
    for i in 0..total {
        while tail_cache <= i {
            tail_cache = ring.tail.load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        let base = (i as usize % SLOTS) * words;
        for w in 0..words {
            sum = sum.wrapping_add(ring.slots[base + w].load(Ordering::Relaxed));
        }
        ring.head.store(i + 1, Ordering::Release);
    }
    let secs = start.elapsed().as_secs_f64();
    producer.join().expect("producer");
    std::hint::black_box(sum);
    total as f64 / secs
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numeric arguments")).collect();
    let total = args.first().copied().unwrap_or(10_000_000);
    let size = args.get(1).copied().unwrap_or(64) as usize;
    let producers = args.get(2).copied().unwrap_or(1) as u32;
    if shmbus_os::register_global_expedited().unwrap_or(false) {
        // SAFETY: registered above, and the only heavy barrier used here (`Membarrier`) issues the membarrier.
        unsafe { set_light_barrier_cheap(true) };
    }
    // Best of five interleaved runs each: on a shared 2-core VM a run that loses a core to something else says
    // nothing about either ring.
    let (mut base, mut ours) = (0f64, 0f64);
    for _ in 0..5 {
        base = base.max(baseline(total, size));
        ours = ours.max(shmbus(total, size, producers));
    }
    println!(
        "{producers} producer(s), {size} B: shmbus {:.2} M msg/s ({:.0} MiB/s); minimal ring {:.2} M msg/s; ratio {:.2}",
        ours / 1e6,
        ours * size as f64 / (1 << 20) as f64,
        base / 1e6,
        ours / base
    );
    let big = Geometry::new(1024, 1 << 20, 4 << 20, 4, 32, 8);
    println!(
        "memory of a 1024-entry topic, 1 MiB max message, 4 MiB payload budget, 4 publishers: data {} KiB + readers {} KiB",
        big.data_len() / 1024,
        big.readers_len() / 1024
    );
}
