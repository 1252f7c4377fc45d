//! The library as Rust users meet it (issue 17): aborted loans, typed metadata, error helpers, open timeouts and
//! the hint of an unreachable daemon, against a real `shmbusd`.

use bus_client::RecvError;
use shmbus_tests::daemon::TestDaemon;
use std::time::Duration;

/// Receives everything there is now, as `(seq, payload)`, failing on any error (a `Lagged` included).
fn drain(s: &mut bus_client::Subscriber) -> Vec<(u64, Vec<u8>)> {
    let mut got = Vec::new();
    loop {
        match s.recv_timeout(Duration::from_millis(50)) {
            Ok(m) => got.push((m.seq(), m.payload().to_vec())),
            Err(RecvError::Timeout) => return got,
            Err(e) => panic!("an aborted loan must not be reported: {e}"),
        }
    }
}

#[test]
fn an_aborted_loan_skips_its_number_and_is_never_reported_as_loss() {
    let d = TestDaemon::start(None);
    let bus = d.bus();
    let mut lossless = bus.subscriber("abort").unwrap();
    let mut lossy = bus.subscriber_builder("abort").lossy().open().unwrap();
    let mut p = bus.publisher("abort").unwrap();
    let first = p.send(b"a").unwrap();
    let loan = p.loan(4).unwrap();
    let skipped = loan.seq();
    drop(loan); // aborted
    let mut loan = p.try_loan(1).unwrap();
    loan.copy_from_slice(b"b");
    let second = loan.commit();
    assert!(first < skipped && skipped < second, "{first} < {skipped} < {second}: the number is skipped");
    for s in [&mut lossless, &mut lossy] {
        let got = drain(s);
        assert_eq!(got, [(first, b"a".to_vec()), (second, b"b".to_vec())], "no message and no Lagged for the abort");
    }
    assert_eq!(p.published(), 2, "the aborted loan is not counted as published");
}

#[test]
fn an_aborted_loan_on_a_pipe_follows_the_same_rule() {
    let (mut p, mut s) = bus_client::pipe::channel("abort").unwrap();
    let first = p.send(b"a").unwrap();
    let skipped = p.loan(4).unwrap().seq(); // dropped at the end of the statement: aborted
    let second = p.send(b"b").unwrap();
    assert!(first < skipped && skipped < second, "{first} < {skipped} < {second}");
    assert_eq!(drain(&mut s), [(first, b"a".to_vec()), (second, b"b".to_vec())]);
    assert_eq!(p.published(), 2);
}

#[test]
fn typed_messages_carry_seq_publisher_and_timestamp_on_shared_memory() {
    let d = TestDaemon::start(None);
    let bus = d.bus();
    let mut s = bus.typed_subscriber::<(String, u32)>("typed-meta").unwrap();
    let mut p = bus.typed_publisher::<(String, u32)>("typed-meta").unwrap();
    let id = p.as_untyped().id();
    let a = p.send(&("a".into(), 1)).unwrap();
    let b = p.send(&("b".into(), 2)).unwrap();
    let first = s.recv_message_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((first.value, first.seq, first.publisher), (("a".to_string(), 1), a, id));
    assert!(first.timestamp > 0);
    let second = s.iter_messages().next().unwrap().unwrap();
    assert_eq!((second.value.1, second.seq), (2, b));
    assert!(second.timestamp >= first.timestamp);
    assert!(s.try_recv_message().unwrap_err().is_empty());
}

#[test]
fn open_with_a_short_timeout_gives_up_on_a_stopped_daemon_and_drops_do_not_wait() {
    let d = TestDaemon::start(None);
    let bus = d.bus();
    let held = bus.subscriber("stopped").unwrap();
    let stopped = shmbus_tests::stopped::Stopped::new(d.pid().expect("daemon running"));
    let t = std::time::Instant::now();
    drop(held);
    assert!(t.elapsed() < Duration::from_millis(400), "drop waited {:?} for the stopped daemon", t.elapsed());
    // Twice: the first open finds the connection the dropped handle's Close gave up on (or gives it up itself);
    // the second reconnects, and its handshake is bounded by the open timeout too.
    for round in 0..2 {
        let t = std::time::Instant::now();
        let e = bus.publisher_builder("stopped").open_timeout(Duration::from_millis(200)).open().unwrap_err();
        let took = t.elapsed();
        assert!(matches!(e, bus_client::OpenError::Timeout(_)), "round {round}: {e}");
        // The bus's request timeout (10 s) would have applied without `open_timeout`.
        assert!(took < Duration::from_secs(5), "round {round}: open gave up after {took:?}");
    }
    drop(stopped);
    let s = bus.subscriber_builder("stopped").open_timeout(Duration::from_secs(10)).open();
    assert!(s.is_ok(), "the daemon answers again: {:?}\n{}", s.unwrap_err(), d.log());
}

#[test]
fn an_unreachable_daemon_is_explained_with_the_os_reason_and_a_hint() {
    let dir = std::env::temp_dir().join(format!("shmbus-library-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.sock");
    let e = bus_client::Bus::connect_to(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.sock") && e.contains("os error 2"), "{e}");
    assert!(e.contains("is shmbusd running?") && e.contains("SHMBUS_SOCKET"), "{e}");
    // A socket file nobody listens on: connection refused.
    let dead = dir.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let e = bus_client::Bus::connect_to(&dead).unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(e.contains(&format!("os error {}", libc::ECONNREFUSED)) && e.contains("is shmbusd running?"), "{e}");
    assert!(e.contains("a stale socket?") && e.contains("--socket"), "{e}");
}

/// Collects what a `tracing` subscriber formats.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_send_held_back_long_says_which_subscriber_holds_it_once() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"held\"\ncapacity = 8\n"));
    let bus = d.bus();
    let _lossy = bus.subscriber_builder("held").lossy().open().unwrap();
    let mut holder = bus.subscriber("held").unwrap();
    let mut p = bus.publisher("held").unwrap();
    let mut n = 0u32;
    while p.try_send(&n.to_le_bytes()).is_ok() {
        n += 1;
    }
    let log = Captured::default();
    let writer = log.clone();
    let sender = std::thread::spawn(move || {
        let sub = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(sub, || p.send(b"late").map(drop))
    });
    // Held for well over the warning's threshold (a second), then released.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!sender.is_finished(), "the send must be held back by the lossless subscriber");
    for _ in 0..n + 1 {
        holder.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    sender.join().unwrap().unwrap();
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "once, rate-limited: {text}");
    assert!(warnings[0].contains("held back by the lossless subscriber"), "{text}");
    assert!(warnings[0].contains(&format!("[{}]", holder.slot())), "names the holder's slot: {text}");
    assert!(warnings[0].contains("topic=\"held\"") || warnings[0].contains("topic=held"), "{text}");
}
