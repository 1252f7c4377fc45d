//! `shmbus record` and `shmbus replay` against a private daemon: a known stream (0 bytes to the topic's largest
//! message) recorded and replayed byte-exact into another topic, a truncated copy, the recorded timing, SIGTERM,
//! a lossy recorder's gaps, and the refusals (an existing file, a payload too large for the target topic).

use bus_client::{RecvError, TopicSpec};
use nix::sys::signal::Signal;
use shmbus_tests::daemon::TestDaemon;
use shmbus_tests::stopped::signal;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The topics' largest message.
const MAX: u32 = 4096;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status, text(&o.stdout), text(&o.stderr))
}

/// Waits at most `limit` for `child` (killed and the test failed after that: a hang guard, not a speed bound).
fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("the command did not finish within {limit:?}: {}", show(&o));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn spawn(mut c: Command) -> Child {
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn run(d: &TestDaemon, args: &[&str]) -> Output {
    let mut c = d.cli();
    c.args(args);
    finish(spawn(c), Duration::from_secs(20))
}

fn create(d: &TestDaemon, name: &str, max_message: u32) {
    let spec = TopicSpec { capacity: Some(64), max_message: Some(max_message), ..TopicSpec::default() };
    d.bus().create_topic(name, spec).unwrap();
}

/// A known stream: sizes from 0 to the topic's largest, each payload its own byte pattern.
fn stream() -> Vec<Vec<u8>> {
    [0usize, 1, 17, MAX as usize, 100, 0, MAX as usize - 1, 3]
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect()
}

/// Waits until `topic` has `n` subscribers (the recorder attached).
fn wait_subscribers(d: &TestDaemon, topic: &str, n: usize) {
    let bus = d.bus();
    d.eventually("the recorder never attached", || {
        bus.stats(Some(topic)).is_ok_and(|s| s.first().is_some_and(|t| t.subscribers.len() == n))
    });
}

/// Records `payloads` published on `topic` (with `gap` between them) into `file` with `record --count`.
fn record(d: &TestDaemon, topic: &str, file: &Path, payloads: &[Vec<u8>], gap: Duration) -> Output {
    let mut c = d.cli();
    c.args(["record", topic]).arg(file).args(["--count", &payloads.len().to_string()]);
    let rec = spawn(c);
    wait_subscribers(d, topic, 1);
    let bus = d.bus();
    let mut p = bus.publisher(topic).unwrap();
    for m in payloads {
        p.send(m).unwrap();
        std::thread::sleep(gap);
    }
    let out = finish(rec, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    out
}

/// Replays `file` on `topic` with `args`, receiving with a subscriber attached before; returns the command's
/// output, its duration and the payloads received (until `want` or 10 s of silence).
fn replay(d: &TestDaemon, file: &Path, topic: &str, args: &[&str], want: usize) -> (Output, Duration, Vec<Vec<u8>>) {
    let bus = d.bus();
    let mut sub = bus.subscriber(topic).unwrap();
    let mut c = d.cli();
    c.arg("replay").arg(file).arg(topic).args(args);
    let started = Instant::now();
    let child = spawn(c);
    let mut got = Vec::new();
    while got.len() < want {
        match sub.recv_timeout(Duration::from_secs(10)) {
            Ok(m) => got.push(m.payload().to_vec()),
            Err(RecvError::Timeout) => break,
            Err(e) => panic!("receive: {e}"),
        }
    }
    let out = finish(child, Duration::from_secs(20));
    let took = started.elapsed();
    assert_eq!(sub.try_recv().err(), Some(RecvError::Empty), "nothing more than expected");
    (out, took, got)
}

#[test]
fn a_recorded_stream_replays_byte_exact_into_another_topic() {
    let d = TestDaemon::start(None);
    create(&d, "src", MAX);
    create(&d, "dst", MAX);
    let file = d.path("src.rec");
    let want = stream();
    let out = record(&d, "src", &file, &want, Duration::ZERO);
    let total: usize = want.iter().map(Vec::len).sum();
    let summary = format!("recorded 8 messages ({total} payload bytes) from \"src\"");
    assert!(text(&out.stderr).contains(&summary), "{}", show(&out));
    assert!(text(&out.stderr).contains("0 gaps (0 messages lost); stopped: --count reached"), "{}", show(&out));

    let info = run(&d, &["replay", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(info.status.code(), Some(0), "{}", show(&info));
    let shown = text(&info.stdout);
    for line in ["topic:        src (generation", "max message 4096 B", "messages:     8 (", "all 9 records whole"] {
        assert!(shown.contains(line), "{line:?} missing: {}", show(&info));
    }

    let (out, _, got) = replay(&d, &file, "dst", &["--as-fast-as-possible"], want.len());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stderr).contains("replayed 8 messages"), "{}", show(&out));
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w, "message {i}: {} bytes received, {} recorded, or other bytes", g.len(), w.len());
    }
}

#[test]
fn a_truncated_recording_replays_its_whole_records_and_names_the_cut() {
    let d = TestDaemon::start(None);
    create(&d, "src", MAX);
    create(&d, "dst", MAX);
    let file = d.path("src.rec");
    let want = stream();
    record(&d, "src", &file, &want, Duration::ZERO);
    let bytes = std::fs::read(&file).unwrap();
    // The end record is 56 bytes and the last message's 43 (36 + 3 + 4): cut 40 bytes into the last message.
    let offset = bytes.len() - 56 - 43;
    let cut = d.path("cut.rec");
    std::fs::write(&cut, &bytes[..offset + 40]).unwrap();

    let (out, _, got) = replay(&d, &cut, "dst", &["--as-fast-as-possible"], want.len() - 1);
    assert_eq!(out.status.code(), Some(1), "a cut file exits 1: {}", show(&out));
    let line = format!("replayed 7 records; the rest (40 bytes from offset {offset}) is cut or corrupt");
    assert!(text(&out.stderr).contains(&line), "{line:?} missing: {}", show(&out));
    assert!(text(&out.stderr).contains("the record is cut short (40 of 43 bytes)"), "{}", show(&out));
    assert_eq!(got, want[..want.len() - 1], "every whole record, in order");

    let info = run(&d, &["replay", "--dry-run", cut.to_str().unwrap()]);
    assert_eq!(info.status.code(), Some(1), "{}", show(&info));
    assert!(text(&info.stdout).contains("7 records whole; the rest (40 bytes"), "{}", show(&info));
    // A flipped payload byte in the first full-size message: the checksum stops the replay there.
    let mut bad = bytes.clone();
    // Records 3 to 6 (4096, 100, 0 and 4095 bytes) lie between the fourth message and the last.
    let fourth = offset - (4 * 40 + 4096 + 100 + 4095);
    bad[fourth + 36 + 5] ^= 0x40;
    std::fs::write(&cut, &bad).unwrap();
    let (out, _, got) = replay(&d, &cut, "dst", &["--as-fast-as-possible"], 3);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("replayed 3 records") && text(&out.stderr).contains("checksum mismatch"),
        "{}",
        show(&out)
    );
    assert_eq!(got, want[..3]);
}

#[test]
fn replay_keeps_the_recorded_timing() {
    let d = TestDaemon::start(None);
    create(&d, "src", MAX);
    create(&d, "dst", MAX);
    let file = d.path("timed.rec");
    let want: Vec<Vec<u8>> = (0..10).map(|i| format!("tick-{i}").into_bytes()).collect();
    record(&d, "src", &file, &want, Duration::from_millis(50));
    // Nine gaps of at least 50 ms were recorded; --rate 1 takes most of them, --rate 3 about a third.
    let (out, took, got) = replay(&d, &file, "dst", &["--rate", "1"], want.len());
    assert_eq!((out.status.code(), &got), (Some(0), &want), "{}", show(&out));
    assert!(took >= Duration::from_millis(400), "replayed 450 ms of recording in {took:?}");
    let (out, took, got) = replay(&d, &file, "dst", &["--rate", "3"], want.len());
    assert_eq!((out.status.code(), &got), (Some(0), &want), "{}", show(&out));
    assert!(took >= Duration::from_millis(130), "replayed 450 ms of recording at 3x in {took:?}");
}

#[test]
fn sigterm_finishes_the_file_and_a_lossy_recorder_counts_its_gaps() {
    let d = TestDaemon::start(None);
    create(&d, "src", 64);
    let file = d.path("lossy.rec");
    let mut c = d.cli();
    c.args(["record", "src"]).arg(&file).arg("--lossy");
    let rec = spawn(c);
    wait_subscribers(&d, "src", 1);
    // Stopped, the recorder is lapped: 200 messages through a ring of 64.
    signal(rec.id(), Signal::SIGSTOP);
    let bus = d.bus();
    let mut p = bus.publisher("src").unwrap();
    for i in 0..200u32 {
        p.send(&i.to_le_bytes()).unwrap();
    }
    signal(rec.id(), Signal::SIGCONT);
    d.eventually("the recorder never caught up", || {
        bus.stats(Some("src")).is_ok_and(|s| s[0].subscribers.first().is_some_and(|x| x.position == 200))
    });
    signal(rec.id(), Signal::SIGTERM);
    let out = finish(rec, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let err = text(&out.stderr);
    let (messages, lost) = summary_counts(&err);
    assert!(lost > 0 && err.contains("stopped: interrupted"), "{}", show(&out));
    assert_eq!(messages + lost, 200, "every message recorded or counted lost: {}", show(&out));
    let info = run(&d, &["replay", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(info.status.code(), Some(0), "SIGTERM finished the file: {}", show(&info));
    let shown = text(&info.stdout);
    assert!(
        shown.contains("by a lossy subscriber") && shown.contains(&format!("{lost} messages lost")),
        "{}",
        show(&info)
    );
}

/// `messages` and `lost` from the recorder's summary line.
fn summary_counts(err: &str) -> (u64, u64) {
    let line = err.lines().find(|l| l.contains("shmbus: recorded")).expect("a summary line");
    let num = |after: &str| -> u64 {
        let at = line.find(after).expect(after) + after.len();
        line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
    };
    (num("recorded "), num("gaps ("))
}

#[test]
fn refusals_name_the_file_and_both_sizes() {
    let d = TestDaemon::start(None);
    create(&d, "src", MAX);
    create(&d, "small", 1024);
    let file = d.path("src.rec");
    std::fs::write(&file, b"precious").unwrap();
    let out = run(&d, &["record", "src", file.to_str().unwrap(), "--count", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains("exists (use --force to overwrite it)"), "{}", show(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    let out = run(&d, &["replay", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains("not a shmbus recording"), "{}", show(&out));

    let mut c = d.cli();
    c.args(["record", "src"]).arg(&file).args(["--count", "2", "--force"]);
    let rec = spawn(c);
    wait_subscribers(&d, "src", 1);
    let bus = d.bus();
    let mut p = bus.publisher("src").unwrap();
    p.send(b"fits").unwrap();
    p.send(&vec![9u8; MAX as usize]).unwrap();
    let out = finish(rec, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "--force overwrote: {}", show(&out));

    let (out, _, got) = replay(&d, &file, "small", &["--as-fast-as-possible"], 0);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("is 4096 bytes, larger than topic \"small\"'s largest message (1024 bytes)"),
        "{}",
        show(&out)
    );
    assert!(err.contains("nothing was published") && got.is_empty(), "{}", show(&out));

    d.bus().create_topic("typed", TopicSpec { payload_type: Some("Order".into()), ..TopicSpec::default() }).unwrap();
    let (out, _, got) = replay(&d, &file, "typed", &["--as-fast-as-possible"], 2);
    assert_eq!((out.status.code(), got.len()), (Some(0), 2), "{}", show(&out));
    assert!(text(&out.stderr).contains("warning: the recorded payload type is none"), "{}", show(&out));
}
