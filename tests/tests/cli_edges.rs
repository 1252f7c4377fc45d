//! Operating the bus (issue 11): log lines fit for a file and for the journal, name who asked, and the rough
//! edges a new user of the `shmbus` CLI hit, each against a private daemon.

use shmbus_tests::cli::{nobody, run, show};
use shmbus_tests::daemon::{binary, sweep, TestDaemon};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a log line starts with tracing's timestamp (`2026-12-02T03:54:58.123456Z`).
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 11 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

#[test]
fn logs_to_a_file_have_no_colour_and_name_who_asked() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"secret\"\nsubscribe = [\"uid:0\"]\n"));
    assert!(run(&d, &["create", "made"]).status.success());
    assert!(run(&d, &["pub", "made", "hello"]).status.success());
    let sub = nobody(&d, &["sub", "secret", "--count", "1", "--timeout", "5s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sub.id();
    let out = sub.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(run(&d, &["delete", "made"]).status.success());
    d.eventually("the refusal was logged", || d.log().contains("request refused"));
    let log = d.log();
    assert!(!log.contains('\u{1b}'), "no ANSI escapes in a log file:\n{log}");
    assert!(log.lines().any(stamped), "a file keeps the timestamps:\n{log}");
    let line = |what: &str| {
        let mine = |l: &&str| l.contains(what) && (l.contains("topic=made") || l.contains("request refused"));
        log.lines().find(mine).unwrap_or_else(|| panic!("no {what}:\n{log}"))
    };
    let refused = line("request refused");
    assert!(refused.contains(&format!("pid={pid}")) && refused.contains("uid=65534"), "{refused}");
    for what in ["created topic", "lease granted", "lease released", "deleted topic"] {
        let l = line(what);
        assert!(l.contains("uid=0") && l.contains("pid="), "{what}: {l}");
    }
    // The CLI's own diagnostics (-v) are not coloured either when stderr is a pipe.
    let out = run(&d, &["-v", "topics"]);
    assert!(out.status.success() && !out.stderr.is_empty(), "{}", show(&out));
    assert!(!out.stderr.contains(&0x1b), "{}", show(&out));
}

/// Runs `shmbusd` with stderr to `log` and `JOURNAL_STREAM=value(log)` until it is ready, then stops it.
fn daemon_log_with_journal_stream(tag: &str, value: impl Fn(&std::fs::Metadata) -> String) -> String {
    let prefix = format!("sedg{}{tag}", std::process::id());
    let dir = std::env::temp_dir().join(format!("shmbus-journal-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let stream = value(&log.metadata().unwrap());
    let socket = dir.join("control.sock");
    let mut child = Command::new(binary("it-shmbusd"))
        .args(["--cleanup-on-exit", "--shm-prefix", &prefix, "--socket"])
        .arg(&socket)
        .env("JOURNAL_STREAM", stream)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    sweep(&prefix);
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

#[test]
fn under_the_journal_the_daemon_leaves_out_timestamps_and_colour() {
    let journal = daemon_log_with_journal_stream("j", |m| format!("{}:{}", m.dev(), m.ino()));
    assert!(journal.contains("shmbusd ready") && journal.contains("shmbusd stopped"), "{journal}");
    assert!(!journal.lines().any(stamped), "journald stamps lines itself:\n{journal}");
    assert!(!journal.contains('\u{1b}'), "{journal}");
    // An inherited JOURNAL_STREAM naming another stream (stderr redirected) keeps the timestamps.
    let other = daemon_log_with_journal_stream("o", |m| format!("{}:{}", m.dev(), m.ino() + 1));
    assert!(other.contains("shmbusd ready") && other.lines().all(|l| l.is_empty() || stamped(l)), "{other}");
}
