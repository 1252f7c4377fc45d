//! The multi-process stress test on real shared memory: several producer processes publish up to a million
//! self-checking messages of mixed sizes (inline and payload-region) while lossless, lossy and consumer-group
//! subscriber processes check exactly-once in-order delivery, integrity and exact loss accounting.
//!
//! The default run (`cargo test`) uses short forms: 100,000 messages in the main test and 40,000 in the tight one.
//! `SHMBUS_LONG=1` runs the long forms (1,000,000 and 200,000), as release-mode soak runs and the README's
//! throughput figures do.
//!
//! Knobs (environment): `SHMBUS_LONG=1` (the long forms), `SHMBUS_STRESS_MESSAGES` (total of the main test,
//! overriding both forms, split over 4 producers), `SHMBUS_STRESS_TIGHT_MESSAGES` (total of the tight-geometry test),
//! `SHMBUS_STRESS_SEED` (message sizes and contents), `SHMBUS_STRESS_TIMEOUT_SECS` (bound on each test, default
//! 600; every helper process is SIGKILLed when it passes).

use shmbus_ring::Geometry;
use shmbus_tests::msg;
use shmbus_tests::peer::member::{check_exactly_once, read_records};
use shmbus_tests::peers::{field_u64, Peers};
use shmbus_tests::shm_fixture::ShmFixture;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_ring-peer");
const PRODUCERS: u32 = 4;
const SEED: u64 = 0x5eed_2024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Messages of a test: `knob` if set, else the long form under `SHMBUS_LONG=1`, else the short form.
fn messages(knob: &str, short: u64, long: u64) -> u64 {
    let long_run = std::env::var("SHMBUS_LONG").is_ok_and(|v| v == "1");
    env_u64(knob, if long_run { long } else { short })
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// 256 entries and 256 KiB of payload region per producer: producers wrap, fill the ring and the regions, and
/// lossy readers get lapped. A million messages under `SHMBUS_LONG=1`, 100,000 by default.
#[test]
fn million_messages_many_processes() {
    let geo = Geometry::new(256, msg::MAX_MESSAGE as u32, 1 << 20, PRODUCERS, 8, 1);
    run("stress", geo, messages("SHMBUS_STRESS_MESSAGES", 100_000, 1_000_000));
}

/// 16 entries and 8 KiB of payload region per producer (two maximum-size messages): the index ring and the
/// regions are full most of the time, payload space is reclaimed constantly and lossy readers often find a
/// region payload overwritten under them. 200,000 messages under `SHMBUS_LONG=1`, 40,000 by default.
#[test]
fn tight_ring_small_regions() {
    let geo = Geometry::new(16, msg::MAX_MESSAGE as u32, 4 * 8192, PRODUCERS, 8, 1);
    run("tight", geo, messages("SHMBUS_STRESS_TIGHT_MESSAGES", 40_000, 200_000));
}

fn run(name: &str, geo: Geometry, total: u64) {
    let per = total / PRODUCERS as u64;
    let total = per * PRODUCERS as u64;
    let timeout = Duration::from_secs(env_u64("SHMBUS_STRESS_TIMEOUT_SECS", 600));
    let seed = env_u64("SHMBUS_STRESS_SEED", SEED);
    let fx = ShmFixture::new(geo);
    let topic = &fx.segment.topic;
    topic.open_group(0, false, &*fx.waiter, &|_| false).expect("open group");
    let mut peers = Peers::new(EXE, timeout);
    let common =
        vec![s("--prefix"), fx.prefix.clone(), s("--seed"), s(seed), s("--deadline-secs"), s(timeout.as_secs() + 30)];
    let args = |extra: &[String]| [common.clone(), extra.to_vec()].concat();
    let mut expect = Vec::new();
    for p in 0..PRODUCERS {
        expect.extend([s("--expect"), format!("{p}={per}")]);
    }

    // Consumers first, each attached ("ready") before any producer starts.
    let mut consumers = Vec::new();
    for (slot, idle) in [(0, "adaptive"), (1, "blocking")] {
        let a = args(&[&[s("lossless"), s("--slot"), s(slot), s("--idle"), s(idle)][..], &expect[..]].concat());
        consumers.push(("lossless", peers.spawn(&format!("lossless-{slot}"), &a)));
    }
    for (slot, idle) in [(2, "adaptive"), (3, "spin-then-yield")] {
        let a = args(&[&[s("lossy"), s("--slot"), s(slot), s("--idle"), s(idle)][..], &expect[..]].concat());
        consumers.push(("lossy", peers.spawn(&format!("lossy-{slot}"), &a)));
    }
    let mut files = Vec::new();
    for (slot, idle) in [(4, "adaptive"), (5, "blocking")] {
        let out = fx.scratch().join(format!("member-{slot}.bin"));
        let a = args(&[
            s("member"),
            s("--slot"),
            s(slot),
            s("--idle"),
            s(idle),
            s("--until"),
            s(total),
            s("--out"),
            out.display().to_string(),
        ]);
        consumers.push(("member", peers.spawn(&format!("member-{slot}"), &a)));
        files.push(out);
    }
    for &(_, id) in &consumers {
        let ready = peers.wait_line(id, "ready");
        assert_eq!(field_u64(&ready, "position"), 0, "{ready}");
    }

    let t0 = Instant::now();
    let mut producers = Vec::new();
    for (p, idle) in (0..PRODUCERS).zip(["spin-then-yield", "adaptive", "spin-then-yield", "blocking"]) {
        let a = args(&[s("producer"), s("--slot"), s(p), s("--count"), s(per), s("--idle"), s(idle)]);
        producers.push(peers.spawn(&format!("producer-{p}"), &a));
    }
    let mut produced_secs: f64 = 0.0;
    for &id in &producers {
        let done = peers.expect_done(id);
        assert_eq!(field_u64(&done, "sent"), per, "{done}");
        produced_secs = produced_secs.max(
            done.split("secs=").nth(1).and_then(|v| v.split(' ').next()).map_or(0.0, |v| v.parse().unwrap_or(0.0)),
        );
    }
    let mut lines = Vec::new();
    for &(kind, id) in &consumers {
        let done = peers.expect_done(id);
        match kind {
            "lossless" => assert_eq!(field_u64(&done, "received"), total, "{done}"),
            "lossy" => assert_eq!(field_u64(&done, "received") + field_u64(&done, "lagged"), total, "{done}"),
            _ => {}
        }
        lines.push(done);
    }
    let elapsed = t0.elapsed();

    // Group: every message to exactly one member, each member in ring order.
    let mut records = Vec::new();
    for f in &files {
        let r = read_records(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(r.windows(2).all(|w| w[0].seq < w[1].seq), "{}: member got positions out of ring order", f.display());
        records.extend(r);
    }
    let seqs = check_exactly_once(seed, &vec![per; PRODUCERS as usize], &records).unwrap_or_else(|e| peers.fail(&e));
    assert_eq!(seqs.len() as u64, total);
    assert_eq!(seqs.first().copied(), Some(0));
    assert_eq!(seqs.last().copied(), Some(total - 1));

    let st = topic.stats();
    assert_eq!(st.tail, total);
    assert_eq!(st.cancelled, 0);
    assert_eq!(st.publishers.len(), PRODUCERS as usize);
    for p in &st.publishers {
        assert_eq!((p.published, p.aborted), (per, 0), "{p:?}");
    }
    assert_eq!(st.groups[0].next, total);
    assert!(st.subscribers.is_empty(), "every consumer detached: {:?}", st.subscribers);

    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "{name}: {total} messages (seed {seed}, capacity {}) from {PRODUCERS} producers to 2 lossless + 2 lossy + a \
         group of 2 in {:.2}s ({rate:.0} msg/s end to end; producers done after {produced_secs:.2}s); full events {:?}",
        geo.capacity,
        elapsed.as_secs_f64(),
        st.publishers.iter().map(|p| p.full).collect::<Vec<_>>()
    );
    for l in &lines {
        println!("  {l}");
    }
    drop(peers);
    fx.finish();
}
