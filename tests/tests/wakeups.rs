//! Issue 9, hole 1: no object of a topic is world-writable. Wake-ups used to go through named semaphores in
//! /dev/shm, mode 0666 on open topics, so any local user could truncate one and SIGBUS the daemon and the topic's
//! clients. They are futex words in the readers object now, which only admitted clients map. As `nobody`, against
//! an open topic with a blocking subscriber asleep: every file of the topic in /dev/shm is the daemon's, mode 0600,
//! and cannot be opened for writing (nor truncated); the subscriber still wakes for what is published, and the
//! daemon lives on. Skipped, with a printed message, when not run as root.

use bus_client::IdleStrategy;
use shmbus_tests::daemon::TestDaemon;
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const OPEN_TOPIC: &str =
    "[defaults]\npublish = [\"*\"]\nsubscribe = [\"*\"]\ngate = [\"*\"]\n\n[[topic]]\nname = \"t\"\n";

#[test]
fn no_file_of_an_open_topic_is_writable_by_another_user_and_blocking_waits_still_wake() {
    if !root_or_skip("no_file_of_an_open_topic_is_writable_by_another_user_and_blocking_waits_still_wake") {
        return;
    }
    let d = TestDaemon::start(Some(OPEN_TOPIC));
    let bus = d.bus();
    let mut publ = bus.publisher("t").unwrap();
    publ.send(b"hi").unwrap();
    let mut sub = bus.subscriber_builder("t").idle(IdleStrategy::Blocking).open().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        for _ in 0..2 {
            let got = sub.recv_timeout(Duration::from_secs(10)).map(|m| m.payload().to_vec());
            tx.send(got).unwrap();
        }
    });
    // Let the subscriber fall asleep (not an assertion on time: it must wake whenever it sleeps).
    std::thread::sleep(Duration::from_millis(200));

    let files = d.leftovers();
    assert!(files.len() >= 2, "the topic's objects are in /dev/shm: {files:?}");
    let me = shmbus_proto::trust::own_uid();
    for name in &files {
        let path = Path::new("/dev/shm").join(name);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600, "{name}: every object of the topic is mode 0600");
        assert_eq!(meta.uid(), me, "{name}: every object of the topic is the daemon's");
        // nobody can neither open it for writing nor truncate it (`truncate` opens O_WRONLY|O_CREAT first).
        let out = Command::new("truncate").arg("-s").arg("0").arg(&path).uid(NOBODY).gid(NOBODY).output().unwrap();
        assert!(!out.status.success(), "{name}: nobody truncated it");
        let meta2 = std::fs::metadata(&path).unwrap();
        assert_eq!(meta2.len(), meta.len(), "{name}: size unchanged");
    }
    assert!(!files.iter().any(|n| n.starts_with("sem.")), "no semaphore files: {files:?}");

    for msg in [&b"after"[..], &b"again"[..]] {
        publ.send(msg).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(15)).expect("the subscriber thread hung");
        assert_eq!(got.unwrap(), msg, "the blocking subscriber woke for the message");
    }
    waiter.join().unwrap();
    assert!(d.alive(), "the daemon survived:\n{}", d.log());
    // And it still serves.
    let mut p2 = bus.publisher("t").unwrap();
    p2.send(b"still").unwrap();
}

/// Issue 11, counters: `stats` shows who is asleep. A blocking subscriber waiting on an empty topic is `sleeping`
/// (its data-waiter bit), wakes for a message and is not asleep while it holds it; a blocking publisher held by a
/// full ring is `sleeping` (its space-waiter bit) until the subscriber reads.
#[test]
fn stats_show_which_handles_are_asleep() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"t\"\ncapacity = 2\nmax_message = 64\n"));
    let bus = d.bus();
    let stats = |bus: &bus_client::Bus| bus.stats(Some("t")).unwrap().remove(0);
    let until = |what: &str, f: &dyn Fn() -> bool| {
        let t0 = std::time::Instant::now();
        while !f() {
            assert!(t0.elapsed() < Duration::from_secs(20), "never {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let mut sub = bus.subscriber_builder("t").idle(IdleStrategy::Blocking).open().unwrap();
    let mut publ = bus.publisher_builder("t").idle(IdleStrategy::Blocking).open().unwrap();
    assert!(!stats(&bus).subscribers[0].sleeping, "not asleep before it waits");
    let waiter = std::thread::spawn(move || {
        let got = sub.recv_timeout(Duration::from_secs(30)).map(|m| m.payload().to_vec());
        (sub, got)
    });
    until("the subscriber asleep", &|| stats(&bus).subscribers[0].sleeping);
    publ.send(b"one").unwrap();
    let (mut sub, got) = waiter.join().unwrap();
    assert_eq!(got.unwrap(), b"one");
    assert!(!stats(&bus).subscribers[0].sleeping, "awake once it received");

    // Fill the ring of two, then a third send sleeps until the subscriber makes room.
    publ.send(b"two").unwrap();
    publ.send(b"three").unwrap();
    let sender = std::thread::spawn(move || publ.send_timeout(b"four", Duration::from_secs(30)).map(|_| publ));
    until("the publisher asleep", &|| stats(&bus).publishers.iter().any(|p| p.sleeping));
    for want in [&b"two"[..], b"three", b"four"] {
        assert_eq!(sub.recv_timeout(Duration::from_secs(30)).unwrap().payload(), want);
    }
    let _publ = sender.join().unwrap().expect("the held send went through");
    assert!(stats(&bus).publishers.iter().all(|p| !p.sleeping), "no publisher asleep once it sent");
}
