//! systemd integration: the unit file passes `systemd-analyze verify`, and the notify protocol (READY, STATUS,
//! WATCHDOG, RELOADING, STOPPING) is spoken on a NOTIFY_SOCKET this test listens on. Also `shmbusd validate`
//! and SIGHUP reload.

use shmbus_tests::daemon::{binary, TestDaemon};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

fn unit_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/shmbus.service")).unwrap()
}

#[test]
fn unit_file_verifies_and_keeps_dev_shm_shared() {
    let unit = unit_text();
    for forbidden in ["RemoveIPC=yes", "PrivateDevices=yes", "PrivateIPC=yes"] {
        assert!(!unit.lines().any(|l| l.trim() == forbidden), "the unit must not set {forbidden}");
    }
    for needed in ["Type=notify", "WatchdogSec=", "ExecReload=", "User=shmbus", "RuntimeDirectory=shmbus"] {
        assert!(unit.contains(needed), "the unit should set {needed}");
    }
    // Point the unit at the binary we built and let systemd check it.
    let bin = binary("it-shmbusd");
    let dir = std::env::temp_dir().join(format!("shmbus-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shmbus.service");
    std::fs::write(&path, unit.replace("/usr/bin/shmbusd", bin.to_str().unwrap())).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze is installed");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let relevant: Vec<&str> = text.lines().filter(|l| l.contains("shmbus.service")).collect();
    assert!(out.status.success() && relevant.is_empty(), "systemd-analyze verify:\n{text}");
}

fn expect(sock: &UnixDatagram, what: &str, deadline: Duration) -> String {
    let end = Instant::now() + deadline;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.lines().any(|l| l == what) {
                return msg;
            }
            seen.push(msg);
        }
    }
    panic!("no {what} within {deadline:?}; saw {seen:?}");
}

#[test]
fn notify_protocol_ready_watchdog_reload_stopping() {
    let dir = std::env::temp_dir().join(format!("shmbus-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    let p = path.to_str().unwrap();
    let mut d = TestDaemon::start_with_env(
        Some("[[topic]]\nname = \"declared\"\ncapacity = 64\n"),
        &[("NOTIFY_SOCKET", p), ("WATCHDOG_USEC", "200000")],
    );
    let ready = expect(&sock, "READY=1", Duration::from_secs(20));
    assert!(ready.contains("STATUS="), "READY comes with a status line: {ready:?}");
    // READY=1 means every configured topic is mapped.
    assert!(d.leftovers().iter().any(|n| n.ends_with(".declared.data")), "{:?}", d.leftovers());
    expect(&sock, "WATCHDOG=1", Duration::from_secs(10));
    d.reload();
    expect(&sock, "RELOADING=1", Duration::from_secs(10));
    expect(&sock, "READY=1", Duration::from_secs(10));
    d.stop_with(libc::SIGTERM);
    expect(&sock, "STOPPING=1", Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_names_the_bad_line() {
    let dir = std::env::temp_dir().join(format!("shmbus-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/shmbus.toml");
    let out = Command::new(binary("it-shmbusd")).args(["validate", "--config", good]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[daemon]\nauto_create = true\n\n[[topic]]\nname = \"x\"\ncapacity = 1000\n").unwrap();
    let out = Command::new(binary("it-shmbusd")).args(["validate", "--config"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("bad.toml:6:1: ") && err.contains("power of two"), "the key's line: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_adds_topics_and_never_changes_geometry_under_clients() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"first\"\ncapacity = 64\n"));
    let bus = d.bus();
    let _p = bus.publisher("first").unwrap();
    d.write_config("[[topic]]\nname = \"first\"\ncapacity = 128\n\n[[topic]]\nname = \"second\"\n");
    d.reload();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = bus.topics().unwrap().into_iter().map(|t| t.name).collect();
        if names.contains(&"second".to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "reload did not add the topic; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = bus.topics().unwrap().into_iter().find(|t| t.name == "first").unwrap();
    assert_eq!(first.geometry.capacity, 64, "geometry must not change under attached clients");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.log().contains("geometry change not applied") {
        assert!(Instant::now() < deadline, "the refused geometry change is reported; log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.socket.exists(), "SIGHUP reloads, it does not stop the daemon");
}

/// STATUS= carries the topics, the leases and how many client processes hold them (issue 11).
#[test]
fn status_line_counts_topics_leases_and_clients() {
    let dir = std::env::temp_dir().join(format!("shmbus-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    let d = TestDaemon::start_with_env(None, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let ready = expect(&sock, "READY=1", Duration::from_secs(20));
    assert!(ready.contains("STATUS=ready: 0 topics, 0 leases held by 0 clients"), "{ready:?}");
    let bus = d.bus();
    let _p = bus.publisher("counted").unwrap();
    let _s = bus.subscriber("counted").unwrap();
    expect(&sock, "STATUS=1 topics, 2 leases held by 1 clients", Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&dir);
}
