//! The harness end to end with tiny counts (under a second): every transport and scenario at 64 B produces a
//! record with numbers, the table and JSON are written, and nothing is left in /dev/shm. No assertion on speed.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn every_transport_produces_numbers() {
    let json = std::env::temp_dir().join(format!("shmbus-bench-smoke-{}.json", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .args(["--sizes", "64", "--rounds", "1000", "--messages", "3000", "--no-pin", "--json"])
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the harness");
    // Watchdog: a hung transport fails the test instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the harness did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut table = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut table).expect("read table");
    assert!(status.success(), "harness failed: {status}\n{table}");
    assert!(table.contains("shm-ring") && table.contains("shmbus-busy"), "table:\n{table}");

    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let _ = std::fs::remove_file(&json);
    let records = doc["records"].as_array().expect("records");
    let transports = if cfg!(feature = "iceoryx2") { 7 } else { 6 };
    assert_eq!(records.len(), 2 * transports, "every transport, both scenarios");
    for r in records {
        assert!(r["error"].is_null(), "{r}");
        let has = if r["scenario"] == "latency" { r["p50_ns"].is_u64() } else { r["msgs_per_sec"].is_f64() };
        assert!(has, "{r}");
    }
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("shbench{}", child.id())) || n.contains(&format!("shbench{}.", child.id())))
        .collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}
