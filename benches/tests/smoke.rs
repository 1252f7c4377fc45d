//! The harness end to end with tiny counts (a few seconds): every transport, baseline and scenario at 64 B
//! produces a record with numbers and the documented fields, the scale scenario at 10 and 50 topics has its
//! figures and a count no host holds is skipped (not failed), the table, JSON, CSV and SVG plots are written, and
//! nothing is left in /dev/shm, even when the test fails. No assertion on speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Removes what a harness run with process id `pid` may have left (its /dev/shm objects, its files), on drop.
struct Cleanup {
    pid: Option<u32>,
    files: Vec<PathBuf>,
}

fn leftovers(pid: u32) -> Vec<PathBuf> {
    let mine = format!("shbench{pid}");
    std::fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.split(['.', '-']).any(|part| part == mine)
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            for p in leftovers(pid) {
                let _ = std::fs::remove_file(p);
            }
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f).or_else(|_| std::fs::remove_dir_all(f));
        }
    }
}

const FIELDS: [&str; 17] = [
    "transport",
    "scenario",
    "size",
    "publishers",
    "subscribers",
    "p50_ns",
    "p99_ns",
    "p999_ns",
    "max_ns",
    "msgs_per_sec",
    "mb_per_sec",
    "delivered",
    "lapped",
    "shm_bytes",
    "harness_peak_rss",
    "peer_peak_rss",
    "pinning",
];

/// Runs the harness with `args` (within 120 s, else the test fails), records its pid in `cleanup`, checks it
/// succeeded and returns its pid and its table.
fn run(args: &[std::ffi::OsString], cleanup: &mut Cleanup) -> (u32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the harness");
    cleanup.pid = Some(child.id());
    // Watchdog: a hung transport fails the test instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the harness did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut table = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut table).expect("read table");
    assert!(status.success(), "harness failed: {status}\n{table}");
    (child.id(), table)
}

/// `--mlock` locks the harness and its peers (which must accept the setting they inherit: they once refused it
/// and the run hung until the harness's own watchdog) and says so in the header. Needs CAP_IPC_LOCK: skipped,
/// saying so, when not root.
#[test]
fn mlock_locks_the_harness_and_its_peers() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: --mlock needs CAP_IPC_LOCK (run as root)");
        return;
    }
    let mut cleanup = Cleanup { pid: None, files: vec![] };
    let args = "--mlock --sizes 64 --rounds 200 --messages 2000 --no-pin --transports shm-ring,shmbus-busy \
                --scenarios latency,throughput";
    let args: Vec<std::ffi::OsString> = args.split_whitespace().map(Into::into).collect();
    let (pid, table) = run(&args, &mut cleanup);
    assert!(table.contains("memory: mlockall"), "{table}");
    assert!(table.contains("shmbus-busy") && table.contains("shm-ring"), "{table}");
    assert!(!table.contains("failed"), "{table}");
    let left = leftovers(pid);
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

/// The scale records: 10 and 50 topics measured (two objects each, some /dev/shm, two daemon descriptors each),
/// 10^8 skipped with a reason, none failed.
fn scale(records: &[serde_json::Value], table: &str) {
    let scale: Vec<&serde_json::Value> = records.iter().filter(|r| r["scenario"] == "scale").collect();
    let topics: Vec<u64> = scale.iter().filter_map(|r| r["topics"].as_u64()).collect();
    assert_eq!(topics, [10, 50, 100_000_000], "{scale:#?}");
    for r in &scale[..2] {
        assert!(r["error"].is_null() && r["skipped"].is_null(), "{r}");
        for f in ["create_per_sec", "list_secs", "stats_secs", "adopt_secs", "daemon_rss_per_topic"] {
            assert!(r[f].as_f64().is_some_and(|v| v > 0.0), "{f} in {r}");
        }
        assert_eq!(r["shm_objects_per_topic"].as_f64(), Some(2.0), "{r}");
        assert!(r["shm_bytes_per_topic"].as_f64().is_some_and(|b| b >= 4096.0), "{r}");
        let fds = r["daemon_fds_per_topic"].as_f64().expect("daemon_fds_per_topic");
        assert!((1.5..=2.5).contains(&fds), "2 descriptors per topic: {r}");
        assert!(r["daemon_rss"].is_u64() && r["daemon_fds"].is_u64() && r["shm_bytes"].is_u64(), "{r}");
    }
    let far = scale[2];
    assert!(far["error"].is_null() && far["skipped"].as_str().is_some_and(|s| !s.is_empty()), "{far}");
    assert!(far["create_per_sec"].is_null(), "{far}");
    assert!(table.contains("scale:") && table.contains("100000000 skipped: "), "{table}");
}

fn svg(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains("<svg"))
}

#[test]
fn every_transport_and_scenario_produces_numbers() {
    let base = std::env::temp_dir().join(format!("shmbus-bench-smoke-{}", std::process::id()));
    let (json, csv, plots) = (base.with_extension("json"), base.with_extension("csv"), base.with_extension("plots"));
    let mut cleanup = Cleanup { pid: None, files: vec![json.clone(), csv.clone(), plots.clone()] };
    let mut args: Vec<std::ffi::OsString> =
        ["--sizes", "64", "--rounds", "200", "--messages", "2000", "--no-pin"].map(Into::into).into();
    // 10^8 topics: no host's descriptor limit (4 * 10^8) or /dev/shm (400 TiB of footprint) holds them.
    args.extend(["--scale-counts", "10,50,100000000", "--json"].map(Into::into));
    args.extend([json.as_os_str().into(), "--csv".into(), csv.as_os_str().into(), "--plots".into()]);
    args.push(plots.as_os_str().into());
    let (pid, table) = run(&args, &mut cleanup);
    for t in [
        "cache-line",
        "sem",
        "memcpy",
        "shm-ring",
        "shmbus-busy",
        "shmbus-yield",
        "shmbus-async",
        "fan-in",
        "fan-out",
        "group",
        "lossy",
    ] {
        assert!(table.contains(t), "no {t} in the table:\n{table}");
    }

    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let records = doc["records"].as_array().expect("records");
    let with = |scenario: &str| records.iter().filter(|r| r["scenario"] == scenario).count();
    let iceoryx2 = usize::from(cfg!(feature = "iceoryx2"));
    // Latency: cache-line, shm-ring, shmbus-busy, shmbus-yield (+ iceoryx2) busy; sem, pipe, uds, mq,
    // shmbus-blocking, shmbus-async blocking.
    assert_eq!(with("latency-busy"), 4 + iceoryx2, "{records:#?}");
    assert_eq!(with("latency-blocking"), 6, "{records:#?}");
    // Throughput: memcpy, shm-ring, pipe, uds, mq, the three shmbus and shmbus-async (+ iceoryx2).
    assert_eq!(with("throughput"), 9 + iceoryx2);
    // Multi-process, the three shmbus transports: fan-in 2→1 and 4→1, fan-out, group, lossy.
    assert_eq!(with("fan-in"), 6);
    assert_eq!(with("fan-out"), 3);
    assert_eq!(with("group"), 3);
    assert_eq!(with("lossy"), 3);
    scale(records, &table);
    for r in records.iter().filter(|r| r["scenario"] != "scale") {
        assert!(r["error"].is_null(), "{r}");
        for f in FIELDS {
            assert!(r.get(f).is_some(), "no {f} in {r}");
        }
        let has = if r["scenario"].as_str().is_some_and(|s| s.starts_with("latency")) {
            r["p50_ns"].is_u64() && r["p999_ns"].is_u64()
        } else {
            r["msgs_per_sec"].is_f64() && r["mb_per_sec"].is_f64()
        };
        assert!(has, "{r}");
        assert!(r["harness_peak_rss"].is_u64(), "{r}");
        if r["transport"] != "memcpy" {
            assert!(r["peer_peak_rss"].is_u64(), "{r}");
        }
        if r["transport"].as_str().is_some_and(|t| t.starts_with("shmbus") || t == "shm-ring" || t == "cache-line") {
            assert!(r["shm_bytes"].as_u64().is_some_and(|b| b > 0), "{r}");
        }
    }
    let fan_in: Vec<u64> =
        records.iter().filter(|r| r["scenario"] == "fan-in").filter_map(|r| r["publishers"].as_u64()).collect();
    assert!(fan_in.contains(&2) && fan_in.contains(&4), "{fan_in:?}");
    for r in records.iter().filter(|r| r["scenario"] == "lossy") {
        let (d, l) = (r["delivered"].as_u64().expect("delivered"), r["lapped"].as_u64().expect("lapped"));
        assert_eq!(d + l, r["messages"].as_u64().expect("messages"), "{r}");
    }
    let header = std::fs::read_to_string(&csv).expect("csv");
    assert!(header.starts_with("transport,") && header.contains(",shm_bytes,"), "{header}");
    assert_eq!(header.lines().count(), records.len() + 1);
    let columns = header.lines().next().map_or(0, |h| h.split(',').count());
    assert!(header.lines().all(|l| l.split(',').count() == columns), "every CSV line has {columns} fields:\n{header}");
    assert!(svg(&plots.join("latency-64.svg")) && svg(&plots.join("throughput.svg")), "plots in {}", plots.display());
    for f in ["create", "topics", "stats", "adopt", "rss", "fds", "shm", "objects"] {
        assert!(svg(&plots.join(format!("scale-{f}.svg"))), "scale-{f}.svg in {}", plots.display());
    }

    let left = leftovers(pid);
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

/// A scenario the watchdog stops (a 1-second limit on a run of 10^8 round trips) ends the harness with code 3 and
/// leaves nothing in /dev/shm: its exit skips the link's destructor, so the watchdog removes the link's objects
/// (the shm-ring's file stayed behind before).
#[test]
fn a_run_the_watchdog_stops_leaves_nothing_behind() {
    let mut cleanup = Cleanup { pid: None, files: vec![] };
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .args(["--sizes", "64", "--transports", "shm-ring", "--scenarios", "latency", "--rounds", "100000000"])
        .arg("--no-pin")
        .env("SHMBUS_BENCH_SCENARIO_LIMIT_SECS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the harness");
    cleanup.pid = Some(child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "the watchdog did not stop the run within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("read stderr");
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("did not finish within 1s"), "{err}");
    let left = leftovers(child.id());
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}
