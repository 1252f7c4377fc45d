//! Micro-benchmarks of the ring's operations in one thread, on heap-backed topics (no I/O, no other process):
//! what each operation costs in instructions and cache hits, the part of a send or receive that is the ring's
//! own. Cross-process figures (cache-line transfers, wake-ups) are the `shmbus-bench` harness's.
//!
//! ```text
//! cargo bench -p shmbus-ring --bench ring_ops
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmbus_ring::{Geometry, Mode, PollWaiter, Publisher, PublisherOptions, Subscriber, SubscriberOptions, Topic};
use std::hint::black_box;
use std::sync::Arc;

const SIZES: [usize; 2] = [64, 4096];

/// A 1024-entry topic for messages up to `size` bytes with `publishers` slots, as bus-client would use it
/// (its timestamp clock; the cheap barrier where membarrier is available).
fn topic(size: usize, publishers: u32) -> Topic {
    if shmbus_os::register_global_expedited().unwrap_or(false) {
        // SAFETY: registered above; these benchmarks never sleep, so no heavy barrier is ever needed.
        unsafe { shmbus_ring::wait::set_light_barrier_cheap(true) };
    }
    let geo = Geometry::new(1024, size.max(8) as u32, 8 << 20, publishers, 4, 1);
    Topic::heap(&geo, 0).expect("valid geometry")
}

fn publisher(t: &Topic, slot: usize) -> Publisher {
    shmbus_os::fast_clock::warm_up();
    let opts = PublisherOptions { clock: shmbus_os::fast_realtime_ns, ..Default::default() };
    Publisher::attach(t, slot, Arc::new(PollWaiter), opts).expect("publisher")
}

fn subscriber(t: &Topic, mode: Mode) -> Subscriber {
    let opts = SubscriberOptions { mode, ..Default::default() };
    Subscriber::attach(t, 0, opts, Arc::new(PollWaiter), &|_| false).expect("subscriber")
}

/// Publishing alone (no subscriber gates, so the ring laps freely): single-producer and multi-producer claims.
fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let msg = vec![0x5a; size];
        for (name, publishers) in [("single-producer", 1), ("multi-producer claim", 4)] {
            let t = topic(size, publishers);
            let mut p = publisher(&t, 0);
            g.bench_with_input(BenchmarkId::new(name, size), &msg, |b, m| b.iter(|| p.try_send(m).expect("room")));
        }
    }
    g.finish();
}

/// A send and its receive (lossless in place, lossy copied), and a zero-copy loan committed and received.
fn round(c: &mut Criterion) {
    let mut g = c.benchmark_group("send+receive");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let msg = vec![0x5a; size];
        for (name, mode) in [("lossless", Mode::Lossless), ("lossy", Mode::Lossy)] {
            let t = topic(size, 1);
            let mut s = subscriber(&t, mode);
            let mut p = publisher(&t, 0);
            g.bench_with_input(BenchmarkId::new(name, size), &msg, |b, m| {
                b.iter(|| {
                    p.try_send(m).expect("room");
                    let r = s.try_recv().expect("a message");
                    black_box(r.payload()[0])
                })
            });
        }
        let t = topic(size, 1);
        let mut s = subscriber(&t, Mode::Lossless);
        let mut p = publisher(&t, 0);
        g.bench_with_input(BenchmarkId::new("loan+commit, lossless", size), &msg, |b, m| {
            b.iter(|| {
                let mut loan = p.try_loan(m.len()).expect("room");
                loan.copy_from_slice(m);
                loan.commit();
                let r = s.try_recv().expect("a message");
                black_box(r.payload()[0])
            })
        });
    }
    g.finish();
}

criterion_group!(benches, publish, round);
criterion_main!(benches);
