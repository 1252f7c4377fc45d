//! What a handle costs the process that holds it (issue 13): one process opens a subscriber on each of 100 topics
//! and then a publisher on each, and counts its mappings (`/proc/self/maps` lines) and descriptors
//! (`/proc/self/fd`) before and after each step. ARCHITECTURE.md 9.9 gives the per-handle figures measured here.
//! One test in this file, so no other test's handles are counted.

use shmbus_tests::daemon::TestDaemon;

/// Topics, and handles of each kind.
const N: usize = 100;
/// The mappings a subscriber or publisher adds: its topic's data and readers objects (a publisher next to a
/// subscriber of the same topic in the same process maps them again).
const MAPS_PER_HANDLE: usize = 2;
/// The descriptors a subscriber or publisher keeps open: the readers object, whose open file description
/// carries its lease lock (the data object's is closed once mapped).
const FDS_PER_HANDLE: usize = 1;
/// Mappings and descriptors the process may gain once whatever the handles (heap arenas, a client thread).
const SLACK: usize = 16;

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps").lines().count()
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

#[test]
fn a_hundred_subscribers_and_a_hundred_publishers_stay_within_their_mappings_and_descriptors() {
    // A small geometry: 100 publishers commit their slots' payload regions.
    let d = TestDaemon::start(Some("[defaults]\ncapacity = 64\npayload_budget = 65536\nmax_message = 1024\n"));
    let names: Vec<String> = (0..N).map(|i| format!("h{i:03}")).collect();
    let out = d.cli().arg("create").args(&names).output().expect("run shmbus create");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    let bus = d.bus();
    // The bus connection and its threads exist before the first count.
    let _ = bus.topics().expect("topics");
    let (maps0, fds0) = (mappings(), descriptors());

    let subs: Vec<_> = names.iter().map(|n| bus.subscriber(n).expect("subscriber")).collect();
    let (maps1, fds1) = (mappings(), descriptors());
    let pubs: Vec<_> = names.iter().map(|n| bus.publisher(n).expect("publisher")).collect();
    let (maps2, fds2) = (mappings(), descriptors());
    let per = |a: usize, b: usize| b.saturating_sub(a) as f64 / N as f64;
    eprintln!(
        "base {maps0} mappings, {fds0} descriptors; per subscriber {:.2} mappings, {:.2} descriptors; \
         per publisher (same topics) {:.2} mappings, {:.2} descriptors; total {maps2} mappings, {fds2} descriptors",
        per(maps0, maps1),
        per(fds0, fds1),
        per(maps1, maps2),
        per(fds1, fds2)
    );
    assert!(maps2 < 1000, "{maps2} mappings with {N} subscribers and {N} publishers");
    assert!(maps1 <= maps0 + MAPS_PER_HANDLE * N + SLACK, "subscribers: {maps0} -> {maps1} mappings");
    assert!(maps2 <= maps1 + MAPS_PER_HANDLE * N + SLACK, "publishers: {maps1} -> {maps2} mappings");
    assert!(fds1 <= fds0 + FDS_PER_HANDLE * N + SLACK, "subscribers: {fds0} -> {fds1} descriptors");
    assert!(fds2 <= fds1 + FDS_PER_HANDLE * N + SLACK, "publishers: {fds1} -> {fds2} descriptors");

    // They work: one message through each topic.
    let mut pubs = pubs;
    let mut subs = subs;
    for p in &mut pubs {
        p.send(b"x").expect("send");
    }
    for s in &mut subs {
        let m = s.recv_timeout(std::time::Duration::from_secs(5)).expect("a message");
        assert_eq!(m.payload(), b"x");
    }
    drop(subs);
    drop(pubs);
    let (maps3, fds3) = (mappings(), descriptors());
    assert!(maps3 <= maps0 + SLACK && fds3 <= fds0 + SLACK, "after closing: {maps3} mappings, {fds3} descriptors");
}
