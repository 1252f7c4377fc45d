//! A daemon whose stderr nobody reads still serves. Log lines are written where they happen, some under the
//! registry lock, and they went straight to stderr: once 64 KiB sat unread in the pipe (a stuck journald, a
//! supervisor that stopped reading), every connection stopped, `shmbus topics` included. They go through a
//! bounded, lossy queue now (`bus-daemon/src/log_queue.rs`), and a blocked stderr costs log lines only.

use shmbus_tests::daemon::binary;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_daemon_whose_stderr_nobody_reads_still_serves() {
    let prefix = format!("sit{}x", std::process::id());
    let dir = std::env::temp_dir().join(format!("shmbus-{prefix}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let socket = dir.join("control.sock");
    // stderr into a pipe whose read end we hold and never read.
    let (unread, stderr) = std::io::pipe().expect("pipe");
    let mut daemon = Command::new(binary("it-shmbusd"))
        .args(["--shm-prefix", &prefix, "--cleanup-on-exit", "-v", "--socket"])
        .arg(&socket)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn shmbusd");
    let t0 = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "shmbusd did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let shmbus = |args: &[&str]| {
        let mut c = Command::new(binary("it-shmbus"));
        c.arg("--socket").arg(&socket).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = c.spawn().expect("spawn shmbus");
        let pid = child.id();
        // Read its output while it runs (a listing of 1 500 topics fills a pipe), within a bound.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(out) => {
                let out = out.expect("wait for shmbus");
                (out.status, out)
            }
            Err(_) => {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
                panic!("shmbus {args:?} hung: the daemon stopped serving behind its unread stderr");
            }
        }
    };
    // A few thousand log lines (creations at info, requests at debug): far more than a pipe holds.
    let names: Vec<String> = (0..1500).map(|i| format!("t{i}")).collect();
    // Small topics, so that 1 500 fit the default shm_budget.
    let mut args = vec!["create", "--capacity", "16", "--max-message", "64", "--payload-budget", "4096"];
    args.extend(names.iter().map(String::as_str));
    let (st, out) = shmbus(&args);
    assert!(st.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (st, out) = shmbus(&["topics", "--json"]);
    assert!(st.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"t1499\""));
    // Let the daemon's log drain, then stop it; it removes its objects.
    drop(unread);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let stopped = Instant::now();
    while daemon.try_wait().unwrap().is_none() {
        assert!(stopped.elapsed() < Duration::from_secs(30), "shmbusd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&prefix))
        .collect();
    for n in &left {
        let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(n));
    }
    assert!(left.is_empty(), "left in /dev/shm: {} objects", left.len());
}
