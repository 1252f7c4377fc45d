//! Many topics on one host (issue 13), CI-sized: 1,000 idle topics of the default geometry against a private
//! daemon. Each has exactly its two objects; what it commits of /dev/shm is its header page and readers object
//! outside the ledgers, at most 64 KiB (no index page, no payload region, no ledger page); the daemon's resident
//! set grows by a bounded amount per topic that does not follow the payload size; `topics` and `stats` list
//! every topic (in pages); the first lease commits the index ring and a publisher its slot's region; idle again
//! for `return_idle_after`, a topic gives both back and works on; a restarted daemon adopts them all and faults
//! no page in. The 10,000-topic run is the benchmark's `scale` scenario.

use shmbus_ring::{Extents, Geometry};
use shmbus_tests::daemon::TestDaemon;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// Idle topics created.
const N: usize = 1000;
/// The most /dev/shm an idle default topic may commit (issue 13's target; measured: 16 KiB, one data page and
/// the readers object's three pages outside the ledgers).
const IDLE_COMMIT: u64 = 64 << 10;
/// Topics created with a 16 times larger payload budget (the daemon's growth must not follow it).
const BIG: usize = 100;
/// The most resident memory the daemon may gain per idle topic, its own heap and the shared pages it maps
/// together (measured: 13-15 KiB, the header page and readers pages it reads plus its heap; 77 KiB with layout 3,
/// whose committed index pages the kernel's fault-around mapped when the daemon read a header word).
const RSS_PER_TOPIC: u64 = 32 << 10;
/// The most heap (anonymous memory) the daemon may gain per idle topic (measured: about 2 KiB).
const ANON_PER_TOPIC: u64 = 8 << 10;

/// `(VmRSS, RssAnon)` of `pid`, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon status");
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {status}"));
        line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).expect("a number of KiB") << 10
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Committed bytes (`st_blocks` × 512) of `/dev/shm/<prefix>.<topic>.<kind>`.
fn committed(prefix: &str, topic: &str, kind: &str) -> u64 {
    std::fs::metadata(format!("/dev/shm/{prefix}.{topic}.{kind}")).map(|m| m.blocks() * 512).unwrap_or(u64::MAX)
}

fn page_up(n: usize) -> u64 {
    let page = shmbus_os::page_size();
    n.div_ceil(page) as u64 * page as u64
}

/// Creates `names` through the CLI, 250 per invocation (one connection each).
fn create(d: &TestDaemon, names: &[String], extra: &[&str]) {
    for chunk in names.chunks(250) {
        let out = d.cli().arg("create").args(extra).args(chunk).output().expect("run shmbus create");
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    }
}

#[test]
fn a_thousand_idle_topics_commit_their_headers_only_and_are_all_listed_and_adopted() {
    // Descriptors follow use, not the topics (`bus_daemon::fd_limit`): the daemon needs its fixed share, its
    // connections' and its idle cache's whatever the count. The topics need two mappings each.
    let hard = shmbus_os_hard_nofile();
    let need = bus_daemon::fd_limit::needed(0, bus_daemon::limits::DEFAULT_MAX_CONNECTIONS.into(), hard);
    if hard < need {
        eprintln!("SKIPPED: RLIMIT_NOFILE hard limit {hard} is below the {need} descriptors the daemon needs");
        return;
    }
    let maps = bus_daemon::fd_limit::max_map_count().unwrap_or(u64::MAX);
    if bus_daemon::fd_limit::max_topics(maps) < (N + BIG) as u64 {
        eprintln!("SKIPPED: vm.max_map_count {maps} admits fewer than the {} topics this test needs", N + BIG);
        return;
    }
    let mut d = TestDaemon::start(Some("[daemon]\nshm_budget = 1099511627776\nreturn_idle_after = \"1s\"\n"));
    let pid = d.pid().expect("daemon pid");
    let names: Vec<String> = (0..N).map(|i| format!("s{i:04}")).collect();
    let (rss0, anon0) = rss(pid);
    let t = Instant::now();
    create(&d, &names, &[]);
    let took = t.elapsed();
    eprintln!("created {N} topics in {took:?} ({:.0}/s)", N as f64 / took.as_secs_f64());

    // Objects: exactly two per topic (the wake-up words live in the readers object).
    let objects = shmbus_tests::shm_fixture::leftovers(&d.prefix);
    assert_eq!(objects.len(), 2 * N, "objects per topic: {:?}", &objects[..objects.len().min(8)]);

    // Committed: the data object's header and publisher slots (layout 4: no index page, nothing of it is written
    // at creation) and the readers object outside the whole ledger pages; no payload region.
    let geo = Geometry::default();
    let x = Extents::of(&geo);
    let page = shmbus_os::page_size();
    let ledger_pages = (x.ledgers.end / page).saturating_sub(x.ledgers.start.div_ceil(page)) as u64;
    let data_max = page_up(x.index.start);
    let readers_max = page_up(x.readers_len) - ledger_pages * page as u64;
    let mut total = 0;
    for n in &names {
        let (dc, rc) = (committed(&d.prefix, n, "data"), committed(&d.prefix, n, "readers"));
        assert!(dc <= data_max, "topic {n}: data object commits {dc} bytes, more than its head ({data_max})");
        assert!(rc <= readers_max, "topic {n}: readers object commits {rc} bytes, ledgers included ({readers_max})");
        total += dc + rc;
    }
    let per_topic = total / N as u64;
    eprintln!(
        "/dev/shm committed per idle topic: {} KiB (of {} KiB)",
        per_topic >> 10,
        (geo.data_len() + geo.readers_len()) >> 10
    );
    assert!(per_topic <= IDLE_COMMIT, "an idle default topic commits {per_topic} bytes");

    // Listing and counters: every topic, through the library (pages) and the CLI.
    let bus = d.bus();
    let t = Instant::now();
    let listed = bus.topics().expect("list topics");
    eprintln!("listed {} topics in {:?}", listed.len(), t.elapsed());
    assert_eq!(listed.iter().map(|t| t.name.clone()).collect::<Vec<_>>(), names, "every topic once, in order");
    let stats = bus.stats(None).expect("stats");
    assert_eq!(stats.len(), N);
    let out = d.cli().args(["stats", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats --json is JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(N));
    let out = d.cli().arg("topics").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), N + 1, "a header and a row per topic");

    // The daemon's resident set, after reading every topic's counters.
    let (rss1, anon1) = rss(pid);
    let (grow, anon) = (rss1.saturating_sub(rss0) / N as u64, anon1.saturating_sub(anon0) / N as u64);
    eprintln!("daemon RSS per idle topic: {} KiB ({} KiB anonymous)", grow >> 10, anon >> 10);
    assert!(grow <= RSS_PER_TOPIC, "the daemon's RSS grew by {grow} bytes per topic");
    assert!(anon <= ANON_PER_TOPIC, "the daemon's heap grew by {anon} bytes per topic");

    // Sixteen times the payload budget: neither the daemon's growth nor the committed memory follows it.
    let big: Vec<String> = (0..BIG).map(|i| format!("b{i:03}")).collect();
    create(&d, &big, &["--payload-budget", "64M"]);
    let _ = bus.stats(None).expect("stats");
    let (rss2, _) = rss(pid);
    let grow = rss2.saturating_sub(rss1) / BIG as u64;
    eprintln!("daemon RSS per idle topic of a 64 MiB budget: {} KiB", grow >> 10);
    assert!(grow <= RSS_PER_TOPIC, "the daemon's RSS grew by {grow} bytes per large topic");
    for n in &big {
        let dc = committed(&d.prefix, n, "data");
        assert!(dc <= data_max, "large topic {n}: data object commits {dc} bytes");
    }

    // Use: the first lease commits the index ring, a publisher's slot its payload region (and only those), and
    // messages flow, also over the ring's wrap (pristine entries at first, the previous lap's after).
    let (region, index) = (x.region(0).len() as u64, x.index.len() as u64);
    let used = ["s0001", "s0002", "s0003"];
    let before = committed(&d.prefix, used[0], "data");
    let mut handles = Vec::new();
    for n in used {
        let p = bus.publisher(n).expect("publisher");
        let s = bus.subscriber(n).expect("subscriber");
        handles.push((p, s));
    }
    let after = committed(&d.prefix, used[0], "data");
    let grown = after.saturating_sub(before);
    assert!(grown >= index + region && grown <= index + region + page as u64 * 2, "{before} -> {after}");
    for (p, s) in &mut handles {
        for i in 0..geo.capacity as usize + 10 {
            p.send(&[i as u8; 1000]).unwrap();
            assert_eq!(s.recv_timeout(Duration::from_secs(10)).unwrap().payload(), &[i as u8; 1000][..]);
        }
    }
    drop(handles);

    // Idle again for `return_idle_after`: the footprint comes back to an idle topic's, and the topic still works
    // from there (its entries pristine again, at the lap the ring had reached).
    let back = |n: &str| committed(&d.prefix, n, "data") + committed(&d.prefix, n, "readers");
    let deadline = Instant::now() + Duration::from_secs(20);
    while used.iter().any(|n| back(n) > IDLE_COMMIT) {
        assert!(Instant::now() < deadline, "idle topics kept {:?} bytes\n{}", used.map(back), d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.log().contains("gave an idle topic's index and payload pages back"), "{}", d.log());
    {
        let mut p = bus.publisher(used[0]).expect("publisher after the return");
        let mut s = bus.subscriber_builder(used[0]).from_oldest().open().expect("subscriber from the oldest");
        p.send(b"after").unwrap();
        let m = s.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(m.payload(), b"after", "a reader from the oldest starts at the return, not in the forgotten lap");
    }

    // A daemon restarted after a crash (SIGKILL: nothing cleaned up) adopts every topic.
    d.keep_topics_on_stop();
    d.stop_with(libc::SIGKILL);
    let t = Instant::now();
    d.spawn();
    let bus = d.bus();
    let adopted = bus.topics().expect("list after restart");
    eprintln!("restart adopted {} topics in {:?}", adopted.len(), t.elapsed());
    assert_eq!(adopted.len(), N + BIG, "{}", d.log());
    // The restarted daemon's first passes over every topic (slot reclaim, return) fault no page in.
    std::thread::sleep(Duration::from_millis(1500));
    for n in names.iter().step_by(50).filter(|n| !used.contains(&n.as_str())) {
        let c = committed(&d.prefix, n, "data") + committed(&d.prefix, n, "readers");
        assert!(c <= IDLE_COMMIT, "topic {n} commits {c} bytes after the restart");
    }
}

/// The hard `RLIMIT_NOFILE` of this process (the daemon inherits it).
fn shmbus_os_hard_nofile() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a valid pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 0;
    }
    r.rlim_max
}
