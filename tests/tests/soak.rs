//! The soak: a real daemon, 4 publisher processes, 3 lossless subscribers, 1 lossy subscriber and a consumer
//! group of 2, all through `bus_client`. Every message is checked (checksum, producer, per-producer sequence);
//! the fingerprint sums prove that the lossless subscribers and the group got every message exactly once, the
//! lossy subscriber accounts for every position exactly. The resident set (`VmRSS`, and its anonymous part) of
//! every process, the daemon's included, is sampled and must stay flat after warm-up; /dev/shm must not grow.
//!
//! The short form (the normal suite) sends 2,000,000 messages (about 40 s on a two-core machine). The long form
//! sends 50 million:
//!
//! ```text
//! SHMBUS_LONG=1 cargo test --release -p shmbus-tests --test soak -- --nocapture
//! ```
//!
//! Knobs: `SHMBUS_SOAK_MESSAGES` (total, split over the 4 publishers; overrides both forms),
//! `SHMBUS_SOAK_TIMEOUT_SECS` (bound on the whole run; default 600, 7200 for the long form).

use shmbus_tests::bus_run::{config, expected_sum, rss_kib, BusRun};
use shmbus_tests::peers::PeerId;
use std::time::{Duration, Instant};

const SEED: u64 = 0x50a6;
const PUBLISHERS: u64 = 4;
/// Growth allowed after warm-up, in KiB: of the anonymous part (heap: a leak would show here) and of the whole
/// resident set (shared pages first touched late, the allocator's arenas settling).
const ANON_SLACK_KIB: u64 = 2048;
const RSS_SLACK_KIB: u64 = 8192;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One process's resident set: at the end of warm-up, and the largest seen after it.
#[derive(Clone, Copy, Debug, Default)]
struct Rss {
    warm: Option<(u64, u64)>,
    max: (u64, u64),
    last: (u64, u64),
}

/// The shm objects under the daemon's prefix with their sizes and allocated blocks.
fn shm_usage(r: &BusRun) -> Vec<(String, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    r.d.leftovers()
        .into_iter()
        .map(|n| {
            let m = std::fs::metadata(format!("/dev/shm/{n}")).expect("shm object");
            (n, m.len(), m.blocks())
        })
        .collect()
}

#[test]
fn soak_publishers_lossless_lossy_and_a_group() {
    let long = std::env::var("SHMBUS_LONG").is_ok_and(|v| v == "1");
    let total = env_u64("SHMBUS_SOAK_MESSAGES").unwrap_or(if long { 50_000_000 } else { 2_000_000 });
    let each = total / PUBLISHERS;
    let total = each * PUBLISHERS;
    let timeout = Duration::from_secs(env_u64("SHMBUS_SOAK_TIMEOUT_SECS").unwrap_or(if long { 7200 } else { 600 }));
    let mut r = BusRun::start(&config(1024, ""), SEED, timeout);
    let stop = r.d.path("stop");
    let stop_s = stop.display().to_string();
    let t = total.to_string();

    let mut subs: Vec<(&str, PeerId)> = Vec::new();
    for i in 0..3 {
        subs.push(("lossless", r.subscriber(&format!("lossless-{i}"), &["--mode", "lossless", "--total", &t]).0));
    }
    subs.push(("lossy", r.subscriber("lossy", &["--mode", "lossy", "--total", &t]).0));
    for i in 0..2 {
        let a = ["--mode", "group", "--group", "soak", "--stop-file", &stop_s];
        subs.push(("member", r.subscriber(&format!("member-{i}"), &a).0));
    }
    let t0 = Instant::now();
    let pubs: Vec<(PeerId, u32)> = (0..PUBLISHERS).map(|i| r.publisher(&format!("pub-{i}"), each, 0, &[])).collect();

    // Sample every process until the publishers are done; warm-up ends at a tenth of the stream.
    let mut pids: Vec<(String, u32)> = vec![("shmbusd".into(), r.d.pid().expect("daemon pid"))];
    pids.extend(subs.iter().map(|&(k, id)| (format!("{k}-{id}"), r.peers.pid(id))));
    pids.extend(pubs.iter().map(|&(id, p)| (format!("publisher-{p}"), r.peers.pid(id))));
    let mut rss = vec![Rss::default(); pids.len()];
    let mut shm_warm = None;
    let mut samples = 0u64;
    let mut last_print = Instant::now();
    while pubs.iter().any(|&(id, _)| r.peers.running(id)) {
        std::thread::sleep(Duration::from_millis(250));
        if let Some(f) = r.peers.failed_peer() {
            r.fail(&format!("a peer failed: {f}"));
        }
        let tail = r.stats().tail;
        let warm = tail >= total / 10;
        for (i, &(_, pid)) in pids.iter().enumerate() {
            let Some(now) = rss_kib(pid) else { continue };
            let s = &mut rss[i];
            s.last = now;
            if warm {
                s.warm.get_or_insert(now);
                s.max = (s.max.0.max(now.0), s.max.1.max(now.1));
            }
        }
        if warm && shm_warm.is_none() {
            shm_warm = Some(shm_usage(&r));
        }
        samples += 1;
        if last_print.elapsed() > Duration::from_secs(30) {
            println!("soak: {tail}/{total} after {:.0?}", t0.elapsed());
            last_print = Instant::now();
        }
    }
    let sent: Vec<(u32, u64)> = pubs.iter().map(|&(id, p)| (p, r.published(id))).collect();
    r.wait_for("the group handed out everything", Duration::from_secs(120), || {
        r.stats().groups.first().is_some_and(|g| g.next == total)
    });
    let shm_end = shm_usage(&r);
    std::fs::write(&stop, b"").expect("stop file");
    let (mut group_sum, mut group_received, mut lines) = (0u64, 0u64, Vec::new());
    for &(kind, id) in &subs {
        let done = r.done(id);
        match kind {
            "lossless" => r.assert_lossless(&done, &sent, 0),
            "lossy" => r.assert_lossy(&done, total),
            _ => {
                group_sum = group_sum.wrapping_add(done.sum);
                group_received += done.received;
            }
        }
        lines.push(done.line);
    }
    let elapsed = t0.elapsed();
    assert_eq!(group_received, total, "the group received every message once");
    assert_eq!(group_sum, expected_sum(SEED, &sent), "the group's fingerprint (loss or duplicate)");
    let st = r.stats();
    assert_eq!((st.tail, st.cancelled), (total, 0), "{st:?}");

    // Flat resident sets, and /dev/shm as it was at warm-up.
    let shm_warm = shm_warm.unwrap_or_else(|| r.fail("the stream ended before warm-up was over"));
    assert_eq!(shm_end, shm_warm, "/dev/shm at warm-up and at the end");
    println!(
        "soak: {total} messages from {PUBLISHERS} publishers to 3 lossless + 1 lossy + a group of 2 in {:.1}s, all \
         checked; {samples} samples",
        elapsed.as_secs_f64()
    );
    let mut growth = Vec::new();
    for ((name, pid), s) in pids.iter().zip(&rss) {
        let Some(w) = s.warm else { continue };
        let (d_rss, d_anon) = (s.max.0.saturating_sub(w.0), s.max.1.saturating_sub(w.1));
        println!(
            "  {name} (pid {pid}): VmRSS {} KiB at warm-up, at most {} after (+{d_rss}); RssAnon {} KiB, at most {} \
             (+{d_anon})",
            w.0, s.max.0, w.1, s.max.1
        );
        if d_anon > ANON_SLACK_KIB || d_rss > RSS_SLACK_KIB {
            growth.push(format!("{name}: VmRSS +{d_rss} KiB, RssAnon +{d_anon} KiB"));
        }
    }
    for l in &lines {
        println!("  {l}");
    }
    println!("  /dev/shm: {shm_end:?}");
    assert!(growth.is_empty(), "resident sets grew after warm-up: {growth:?}");
}
