//! Subscribers attaching and detaching while producers run, across processes: every attach races publishers'
//! gate checks on real shared memory. A lossless joiner must see every message from its attach point on, in
//! order and intact (a payload reclaimed in the attach window is reported as `Lagged`, never lost silently); a
//! lossy joiner must account for every position exactly. A steady lossless reader checks the whole stream.
//!
//! Size: `SHMBUS_CHURN_MESSAGES` (total, default 200,000, over 2 producers).

use shmbus_ring::Geometry;
use shmbus_tests::msg;
use shmbus_tests::peers::{field_u64, Peers};
use shmbus_tests::shm_fixture::ShmFixture;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_ring-peer");
const SEED: u64 = 4242;

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// With a steady lossless reader checking the whole stream.
#[test]
fn subscribers_attach_and_detach_mid_stream() {
    // 64 entries, 64 KiB of region per producer.
    run(Geometry::new(64, msg::MAX_MESSAGE as u32, 2 * 65536, 2, 8, 0), true);
}

/// The joiners are the only gating cursors: between rounds nothing holds the producers back, and every attach
/// races publishers that reclaim payload space (8 KiB regions) on almost every claim. A lossless joiner must then
/// get `Lagged` for what was reclaimed in its attach window, never a torn message.
#[test]
fn joiners_alone_gate_the_producers() {
    run(Geometry::new(64, msg::MAX_MESSAGE as u32, 2 * 8192, 2, 8, 0), false);
}

fn run(geo: Geometry, steady: bool) {
    let total: u64 = std::env::var("SHMBUS_CHURN_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let per = total / 2;
    let total = per * 2;
    let timeout = Duration::from_secs(300);
    let fx = ShmFixture::new(geo);
    let topic = &fx.segment.topic;
    let mut peers = Peers::new(EXE, timeout);
    let common = vec![s("--prefix"), fx.prefix.clone(), s("--seed"), s(SEED), s("--deadline-secs"), s(330)];
    let args = |extra: &[String]| [common.clone(), extra.to_vec()].concat();
    let expect = [s("--expect"), format!("0={per}"), s("--expect"), format!("1={per}")];

    let steady =
        steady.then(|| peers.spawn("steady", &args(&[&[s("lossless"), s("--slot"), s(0)][..], &expect[..]].concat())));
    let mut joiners = Vec::new();
    for (slot, lossy, per_round) in [(1, false, 500), (2, false, 1500), (3, true, 2000)] {
        let mut a = vec![s("joiner"), s("--slot"), s(slot), s("--per-round"), s(per_round)];
        if lossy {
            a.push(s("--lossy"));
        }
        joiners.push(peers.spawn(&format!("joiner-{slot}"), &args(&[&a[..], &expect[..]].concat())));
    }
    if let Some(id) = steady {
        peers.wait_line(id, "ready");
    }
    for &j in &joiners {
        peers.wait_line(j, "ready");
    }
    let t0 = Instant::now();
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let a = args(&[s("producer"), s("--slot"), s(p), s("--count"), s(per), s("--idle"), s("adaptive")]);
            peers.spawn(&format!("producer-{p}"), &a)
        })
        .collect();
    for &id in &producers {
        assert_eq!(field_u64(&peers.expect_done(id), "sent"), per);
    }
    if let Some(id) = steady {
        assert_eq!(field_u64(&peers.expect_done(id), "received"), total);
    }
    let mut lines = Vec::new();
    for &j in &joiners {
        let done = peers.expect_done(j);
        assert!(field_u64(&done, "rounds") >= 3, "too little churn: {done}");
        lines.push(done);
    }
    let st = topic.stats();
    assert_eq!(st.tail, total);
    assert!(st.subscribers.is_empty(), "{:?}", st.subscribers);
    println!("churn (steady reader: {}): {total} messages in {:.2}s", steady.is_some(), t0.elapsed().as_secs_f64());
    for l in &lines {
        println!("  {l}");
    }
    drop(peers);
    fx.finish();
}
