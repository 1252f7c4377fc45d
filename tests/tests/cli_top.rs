//! `shmbus top` and `shmbus hz` against a private daemon with known traffic: a publisher thread sends
//! `SIZE`-byte messages at a steady pace to a lossless subscriber that drains them, beside an idle lossy one.
//! Every CLI run is bounded (a hang fails the test instead of stalling the suite); nothing asserts a speed.

use nix::sys::signal::Signal;
use shmbus_tests::cli::show;
use shmbus_tests::daemon::TestDaemon;
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use shmbus_tests::stopped::signal;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// The size of every message the traffic sends.
const SIZE: usize = 100;

/// A publisher thread sending `SIZE`-byte messages every 2 ms, and a thread draining a lossless subscriber;
/// an idle lossy subscriber is held beside them. Stopped and joined on drop.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
    _idle: bus_client::Subscriber,
}

impl Traffic {
    /// Starts the traffic on `topic` and waits until the daemon's counters show it flowing.
    fn start(d: &TestDaemon, topic: &str) -> Traffic {
        let bus = d.bus();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut sub = bus.subscriber(topic).expect("lossless subscriber");
        let idle = bus.subscriber_builder(topic).lossy().open().expect("lossy subscriber");
        let mut publisher = bus.publisher(topic).expect("publisher");
        let (s, n) = (stop.clone(), sent.clone());
        let sender = std::thread::spawn(move || {
            let payload = [0x5a_u8; SIZE];
            while !s.load(Ordering::Relaxed) {
                publisher.send(&payload).expect("send");
                n.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let s = stop.clone();
        let drain = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match sub.recv_timeout(Duration::from_millis(50)) {
                    Ok(m) => assert_eq!(m.len(), SIZE),
                    Err(bus_client::RecvError::Timeout) => {}
                    Err(e) => panic!("drain: {e}"),
                }
            }
        });
        let t = Traffic { stop, sent, threads: vec![sender, drain], _idle: idle };
        d.eventually("the traffic did not start", || t.sent() > 0);
        t
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops both threads and returns how many messages were sent.
    fn finish(mut self) -> u64 {
        self.join();
        self.sent()
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if let Err(e) = t.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(e);
                }
            }
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.join();
    }
}

/// Runs `cmd` to the end, killed (and the test failed) if it takes more than 20 s.
fn bounded(cmd: Command) -> Output {
    shmbus_tests::cli::bounded(cmd, Duration::from_secs(20))
}

fn run(d: &TestDaemon, args: &[&str]) -> Output {
    let mut c = d.cli();
    c.args(args);
    bounded(c)
}

/// `top --once --json` as `cmd`, parsed: the document and its topics by name.
fn top_json(cmd: Command) -> (serde_json::Value, std::collections::BTreeMap<String, serde_json::Value>) {
    let out = bounded(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    let topics = v["topics"]
        .as_array()
        .expect("a topics array")
        .iter()
        .map(|t| (t["name"].as_str().expect("a name").to_string(), t.clone()))
        .collect();
    (v, topics)
}

fn top_once_json(d: &TestDaemon) -> (serde_json::Value, std::collections::BTreeMap<String, serde_json::Value>) {
    let mut c = d.cli();
    c.args(["top", "--once", "--json", "--interval", "400ms"]);
    top_json(c)
}

#[test]
fn top_once_json_shows_rates_while_traffic_flows_and_zero_when_idle() {
    let d = TestDaemon::start(None);
    for t in ["busy", "quiet"] {
        assert_eq!(run(&d, &["create", t]).status.code(), Some(0));
    }
    let traffic = Traffic::start(&d, "busy");
    let (doc, topics) = top_once_json(&d);
    let secs = doc["interval_s"].as_f64().expect("interval_s");
    assert!(secs >= 0.4, "the samples are at least --interval apart: {doc}");
    let busy = &topics["busy"];
    assert_eq!((busy["publishers"].as_u64(), busy["subscribers"].as_u64()), (Some(1), Some(2)), "{busy}");
    let msgs = busy["messages_per_s"].as_f64().expect("a message rate");
    let bytes = busy["bytes_per_s"].as_f64().expect("a byte rate");
    assert!(msgs > 0.0, "traffic flows: {busy}");
    assert!((bytes - msgs * SIZE as f64).abs() < 1e-6 * bytes, "every message is {SIZE} bytes: {busy}");
    assert!(busy["max_lag"].is_u64(), "a subscriber's lag: {busy}");
    assert_eq!((busy["full_per_s"].as_f64(), busy["lapped_per_s"].as_f64()), (Some(0.0), Some(0.0)), "{busy}");
    let quiet = &topics["quiet"];
    assert_eq!(quiet["messages_per_s"].as_f64(), Some(0.0), "{quiet}");
    assert_eq!((quiet["publishers"].as_u64(), quiet["subscribers"].as_u64()), (Some(0), Some(0)), "{quiet}");
    assert!(quiet["max_lag"].is_null(), "no subscriber, no lag: {quiet}");

    let sent = traffic.finish();
    let (_, topics) = top_once_json(&d);
    let busy = &topics["busy"];
    assert_eq!((busy["messages_per_s"].as_f64(), busy["bytes_per_s"].as_f64()), (Some(0.0), Some(0.0)), "{busy}");
    assert_eq!(busy["published"].as_u64(), Some(sent), "every message sent is counted: {busy}");
    assert_eq!(busy["bytes"].as_u64(), Some(sent * SIZE as u64), "{busy}");
}

#[test]
fn top_once_prints_a_header_and_a_row_per_topic() {
    let d = TestDaemon::start(None);
    assert_eq!(run(&d, &["create", "orders", "idle"]).status.code(), Some(0));
    let _traffic = Traffic::start(&d, "orders");
    let out = run(&d, &["top", "--once", "--interval", "300ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains('\x1b'), "no terminal escapes when stdout is not a terminal: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("2 topics: "), "{text}");
    let header: Vec<&str> = lines[1].split("  ").filter(|c| !c.is_empty()).map(str::trim).collect();
    assert_eq!(header, ["TOPIC", "MSG/S", "BYTES/S", "PUBS", "SUBS", "MAX LAG", "FULL/S", "LAPPED/S"], "{text}");
    assert_eq!(lines.len(), 4, "a row per topic: {text}");
    // The busy topic first; its byte rate is a number and a unit.
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(row.len(), 9, "{text}");
    assert_eq!((row[0], row[4], row[5]), ("orders", "1", "2"), "{text}");
    assert_ne!(row[1], "0", "a message rate while traffic flows: {text}");
    let idle: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(idle, ["idle", "0", "0", "B", "0", "0", "-", "0", "0"], "{text}");
}

#[test]
fn hz_reports_the_rate_and_the_exact_message_size_per_window() {
    let d = TestDaemon::start(None);
    let _traffic = Traffic::start(&d, "sensor");
    let out = run(&d, &["hz", "sensor", "--count", "2", "--window", "500ms", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let windows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {}", show(&out))))
        .collect();
    assert_eq!(windows.len(), 2, "one object per window: {}", show(&out));
    for w in &windows {
        assert_eq!(w["topic"], "sensor", "{w}");
        let n = w["messages"].as_u64().expect("messages");
        assert!(n > 0 && w["messages_per_s"].as_f64() > Some(0.0), "{w}");
        assert_eq!(w["bytes"].as_u64(), Some(n * SIZE as u64), "{w}");
        assert!(w["window_s"].as_f64() >= Some(0.5), "{w}");
        assert!(w["lapped"].is_u64(), "{w}");
        let s = &w["size"];
        for k in ["min", "p50", "p99", "max"] {
            assert_eq!(s[k].as_u64(), Some(SIZE as u64), "{k}: {w}");
        }
        assert_eq!(s["mean"].as_f64(), Some(SIZE as f64), "{w}");
    }
    let out = run(&d, &["hz", "sensor", "--count", "1", "--window", "200ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.starts_with("sensor: ") && line.contains(" msg/s  "), "{line}");
    assert!(line.contains(&format!("size min {SIZE} B p50 {SIZE} B p99 {SIZE} B max {SIZE} B")), "{line}");
}

#[test]
fn hz_on_a_missing_topic_fails_clearly_and_creates_nothing() {
    // Topics are created on first use here: hz must not be such a use.
    let d = TestDaemon::start(None);
    let out = run(&d, &["hz", "nosuch", "--count", "1", "--window", "100ms"]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot watch topic \"nosuch\": no such topic \"nosuch\""), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
    let topics = run(&d, &["topics", "--json"]);
    assert_eq!(topics.status.code(), Some(0), "{}", show(&topics));
    assert!(!String::from_utf8_lossy(&topics.stdout).contains("nosuch"), "{}", show(&topics));
}

#[test]
fn top_and_hz_show_nobody_only_the_topics_it_may_see() {
    if !root_or_skip("top_and_hz_show_nobody_only_the_topics_it_may_see") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let d = TestDaemon::start(None);
    assert_eq!(run(&d, &["create", "open"]).status.code(), Some(0));
    let out = run(&d, &["create", "hidden", "--publish", "uid:0", "--subscribe", "uid:0"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let _traffic = Traffic::start(&d, "hidden");
    // The scratch directory opened so that nobody can reach the socket.
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut c = d.cli();
        c.args(args).uid(NOBODY).gid(NOBODY);
        c
    };
    let (_, seen) = top_json(as_nobody(&["top", "--once", "--json", "--interval", "100ms"]));
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["open"], "{seen:?}");
    let out = bounded(as_nobody(&["top", "--once", "--interval", "100ms"]));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hidden"), "{}", show(&out));
    let out = bounded(as_nobody(&["hz", "hidden", "--count", "1", "--window", "100ms"]));
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such topic \"hidden\""), "{}", show(&out));
    let (_, all) = top_once_json(&d);
    assert_eq!(all.keys().collect::<Vec<_>>(), ["hidden", "open"], "root sees both");
}

#[test]
fn top_shows_back_pressure_the_slowest_lag_and_lapped_messages() {
    let d = TestDaemon::start(None);
    for t in ["jammed", "laps"] {
        assert_eq!(run(&d, &["create", t, "--capacity", "16"]).status.code(), Some(0));
    }
    let bus = d.bus();
    // A lossless subscriber that never reads holds `jammed` full: every further try is a full event.
    let _gate = bus.subscriber("jammed").unwrap();
    let mut publisher = bus.publisher("jammed").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let fulls = Arc::new(AtomicU64::new(0));
    let (s, f) = (stop.clone(), fulls.clone());
    let jam = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match publisher.try_send(b"jam") {
                Ok(_) => {}
                Err(bus_client::SendError::Full) => {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => panic!("try_send: {e}"),
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    d.eventually("the topic never filled", || fulls.load(Ordering::Relaxed) > 0);
    // A lossy subscriber of `laps` lapped by 100 messages through a ring of 16.
    let mut lossy = bus.subscriber_builder("laps").lossy().open().unwrap();
    let mut p = bus.publisher("laps").unwrap();
    for _ in 0..100 {
        p.send(b"0123456789").unwrap();
    }
    let lapped = match lossy.try_recv() {
        Err(bus_client::RecvError::Lagged(n)) => n,
        other => panic!("expected a lap, got {:?}", other.map(|m| m.seq())),
    };
    while lossy.try_recv().is_ok() {}

    let (_, topics) = top_once_json(&d);
    stop.store(true, Ordering::Relaxed);
    jam.join().unwrap();
    let jammed = &topics["jammed"];
    assert_eq!(jammed["max_lag"].as_u64(), Some(16), "the idle subscriber is a whole ring behind: {jammed}");
    assert_eq!((jammed["published"].as_u64(), jammed["messages_per_s"].as_f64()), (Some(16), Some(0.0)), "{jammed}");
    assert!(jammed["full_per_s"].as_f64() > Some(0.0) && jammed["full"].as_u64() > Some(0), "{jammed}");
    let laps = &topics["laps"];
    assert_eq!(laps["lapped"].as_u64(), Some(lapped), "what the subscriber was told: {laps}");
    assert_eq!((laps["max_lag"].as_u64(), laps["full"].as_u64()), (Some(0), Some(0)), "{laps}");
}

#[test]
fn hz_counts_every_message_as_seen_or_lapped() {
    let d = TestDaemon::start(None);
    assert_eq!(run(&d, &["create", "burst", "--capacity", "16"]).status.code(), Some(0));
    let mut hz = d.cli();
    hz.args(["hz", "burst", "--count", "4", "--window", "500ms", "--json"]);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(bounded(hz));
    });
    let bus = d.bus();
    d.eventually("hz never attached", || bus.stats(Some("burst")).unwrap()[0].subscribers.len() == 1);
    // Far faster than hz reads through 16 slots: some are lapped, none may be lost without being counted.
    const SENT: u64 = 5_000;
    let mut p = bus.publisher("burst").unwrap();
    let start = std::time::Instant::now();
    for i in 0..SENT {
        p.send(&i.to_le_bytes()).unwrap();
    }
    let took = start.elapsed();
    let out = rx.recv_timeout(Duration::from_secs(30)).expect("hz finished");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let (mut seen, mut lapped) = (0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let w: serde_json::Value = serde_json::from_str(line).unwrap();
        seen += w["messages"].as_u64().unwrap();
        lapped += w["lapped"].as_u64().unwrap();
        if w["messages"].as_u64() > Some(0) {
            assert_eq!((w["size"]["min"].as_u64(), w["size"]["max"].as_u64()), (Some(8), Some(8)), "{w}");
        }
    }
    println!("hz saw {seen} and was lapped by {lapped} of {SENT} messages sent in {took:?}");
    assert_eq!(seen + lapped, SENT, "seen {seen} and lapped {lapped} (sent in {took:?}): {}", show(&out));
}

/// Starts `cmd` with its output piped, waits until its standard output holds `lines` lines that start with
/// `marker`, sends SIGINT and returns what it printed and its exit status (all bounded).
fn interrupt_after(mut cmd: Command, marker: &str, lines: usize) -> (String, std::process::ExitStatus) {
    use std::io::BufRead;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id() as i32;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let mut seen = 0;
    while seen < lines {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => {
                seen += usize::from(l.starts_with(marker));
                text.push_str(&l);
                text.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no {lines} lines starting with {marker:?} within 20 s:\n{text}");
            }
        }
    }
    // The pid is our child, not yet reaped.
    signal(pid as u32, Signal::SIGINT);
    for _ in 0..200 {
        if let Some(st) = child.try_wait().unwrap() {
            return (text, st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("did not exit within 10 s of SIGINT:\n{text}");
}

#[test]
fn ctrl_c_ends_top_and_hz_cleanly() {
    let d = TestDaemon::start(None);
    let _traffic = Traffic::start(&d, "ticks");
    let mut top = d.cli();
    top.args(["top", "--interval", "200ms"]);
    let (text, st) = interrupt_after(top, "1 topic: ", 3);
    assert_eq!(st.code(), Some(0), "{text}");
    assert!(!text.contains('\x1b'), "a table per interval, no escapes off a terminal: {text:?}");
    assert!(text.lines().filter(|l| l.starts_with("TOPIC ")).count() >= 2, "{text}");
    let mut hz = d.cli();
    hz.args(["hz", "ticks", "--window", "200ms"]);
    let (text, st) = interrupt_after(hz, "ticks: ", 2);
    assert_eq!(st.code(), Some(0), "{text}");
}

#[test]
fn top_on_a_terminal_redraws_in_place_and_ctrl_c_restores_it() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("SKIPPED top_on_a_terminal_redraws_in_place_and_ctrl_c_restores_it: no script(1) for a pty");
        return;
    }
    let d = TestDaemon::start(None);
    let _traffic = Traffic::start(&d, "ticks");
    let shmbus = shmbus_tests::daemon::binary("it-shmbus");
    // script(1) runs top on a pseudo-terminal of 8 rows; timeout(1) sends SIGINT after 1.5 s, as Ctrl-C would.
    let inner = format!(
        "stty rows 8 cols 100; exec timeout --preserve-status -s INT 1.5 {} top --interval 200ms",
        shmbus.display()
    );
    let mut c = Command::new("script");
    c.args(["-qec", &inner, "/dev/null"]).env("SHMBUS_SOCKET", &d.socket).env_remove("RUST_LOG");
    let out = bounded(c);
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "top exits 0 on SIGINT: {}", show(&out));
    assert!(screen.starts_with("\x1b[?1049h\x1b[?25l"), "the alternate screen, the cursor hidden: {screen:?}");
    assert!(screen.trim_end().ends_with("\x1b[?25h\x1b[?1049l"), "both restored at the end: {screen:?}");
    let frames: Vec<&str> = screen.split("\x1b[H\x1b[2J").skip(1).collect();
    assert!(frames.len() >= 3, "redrawn in place (sampling, then a frame per interval): {screen:?}");
    let frame = frames[1];
    assert!(frame.starts_with("1 topic: ") && frame.contains("TOPIC ") && frame.contains("\nticks "), "{frame:?}");
    assert!(frame.lines().count() <= 8, "within the terminal's height: {frame:?}");
}
