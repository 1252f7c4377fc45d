//! /dev/shm too small (issue 9, bad input): the daemon runs in a mount namespace of its own over a 4 MiB tmpfs
//! /dev/shm; creating a topic that needs more fails with an error that names the size needed and the space
//! free, touches nothing, and a topic that fits still works.

use shmbus_tests::daemon::TestDaemon;
use shmbus_tests::hostile::root_or_skip;
use std::time::Duration;

/// Runs the daemon in a mount namespace of its own over a 4 MiB tmpfs `/dev/shm`.
const SMALL_SHM: [&str; 8] = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    "mount -t tmpfs -o size=4m tmpfs /dev/shm && exec \"$@\"",
    "sh",
];

/// Whether this machine lets us mount a tmpfs in a private mount namespace (else the test prints SKIPPED).
fn can_mount_a_private_tmpfs() -> bool {
    let probe = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=4m tmpfs /dev/shm"])
        .status();
    let ok = probe.is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: cannot mount a tmpfs in a mount namespace here");
    }
    ok
}

#[test]
fn a_topic_bigger_than_the_free_space_of_dev_shm_is_refused_naming_both() {
    if !root_or_skip("a_topic_bigger_than_the_free_space_of_dev_shm_is_refused_naming_both") {
        return;
    }
    if !can_mount_a_private_tmpfs() {
        return;
    }
    // The daemon's own limits are far above 4 MiB; only the free space can refuse.
    let d = TestDaemon::start_wrapped(
        Some("[defaults]\ncapacity = 64\nmax_message = 1024\npayload_budget = 65536\n"),
        &SMALL_SHM,
    );
    let out = d.cli().args(["create", "big", "--max-message", "1M", "--payload-budget", "8M"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a topic bigger than /dev/shm was created: {err}");
    assert!(err.contains("/dev/shm") && err.contains("free") && err.contains("needs"), "{err}\n{}", d.log());
    // Both sizes are named: what the topic needs and what is free (at most 4 MiB).
    assert!(err.contains("MiB") || err.contains("KiB"), "{err}");
    let bus = d.bus();
    assert!(bus.topics().unwrap().iter().all(|t| t.name != "big"), "nothing was created");
    let mut p = bus.publisher("small").expect("a topic that fits is created");
    let mut s = bus.subscriber("small").unwrap();
    p.send(b"fits").unwrap();
    assert_eq!(s.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"fits");
}

/// A /dev/shm that fills up as publishers arrive (issue 13): topics commit their payload regions only when a
/// publisher takes a slot, so topics that each fit get created beyond what their regions could all take; the
/// publisher that finds /dev/shm full is refused with an error naming the shared memory and the space free (never
/// a SIGBUS later, in the middle of a send), and the publishers that got their region keep working.
#[test]
fn the_publisher_that_finds_dev_shm_full_is_refused_cleanly_and_the_others_keep_working() {
    let name = "the_publisher_that_finds_dev_shm_full_is_refused_cleanly_and_the_others_keep_working";
    if !root_or_skip(name) {
        return;
    }
    if !can_mount_a_private_tmpfs() {
        return;
    }
    // 1 MiB of payload region per topic (one publisher slot): four of them cannot all be committed in 4 MiB.
    let d = TestDaemon::start_wrapped(
        Some("[defaults]\ncapacity = 64\nmax_message = 65536\npayload_budget = 1048576\nmax_publishers = 1\n"),
        &SMALL_SHM,
    );
    let bus = d.bus();
    let topics: Vec<String> = (0..6).map(|i| format!("fill{i}")).collect();
    for t in &topics {
        let out = d.cli().args(["create", t]).output().unwrap();
        assert!(out.status.success(), "create {t}: {}\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    }
    let msg = vec![0x5a; 60_000];
    let mut open = Vec::new();
    let mut refused = None;
    for t in &topics {
        match bus.publisher(t) {
            Ok(mut p) => {
                let mut s = bus.subscriber(t).unwrap();
                // Through the whole region: every page of it is written, none may fault.
                for _ in 0..40 {
                    p.send(&msg).unwrap();
                    assert_eq!(s.recv_timeout(Duration::from_secs(10)).unwrap().len(), msg.len());
                }
                open.push((p, s));
            }
            Err(e) => {
                refused = Some((t.clone(), e.to_string()));
                break;
            }
        }
    }
    let (t, err) = refused.unwrap_or_else(|| panic!("six 1 MiB regions fitted in a 4 MiB /dev/shm\n{}", d.log()));
    assert!(!open.is_empty(), "no publisher fitted at all (refused on {t}: {err})");
    assert!(err.contains("shared memory") && err.contains("/dev/shm") && err.contains("free"), "{t}: {err}");
    assert!(err.contains("cannot commit 1048576 bytes"), "the error names the space asked: {err}");
    // The ones that got their region still work, and nothing crashed.
    for (p, s) in &mut open {
        p.send(b"still").unwrap();
        assert_eq!(s.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"still");
    }
    assert!(bus.topics().unwrap().len() >= topics.len(), "the daemon lost topics\n{}", d.log());

    // Layout 4 commits a topic's index ring at its first lease, a subscriber's too: fill what is left of the
    // daemon's /dev/shm (from inside its mount namespace) and a subscriber of a topic never leased is refused
    // cleanly, naming the index ring, instead of faulting when it reads the ring.
    let never = topics.last().unwrap();
    let pid = d.pid().expect("daemon pid").to_string();
    let fill = "avail=$(df --output=avail -B1 /dev/shm | tail -1); fallocate -l \"$avail\" /dev/shm/filler";
    let st = std::process::Command::new("nsenter").args(["-t", &pid, "-m", "sh", "-c", fill]).status().unwrap();
    assert!(st.success(), "could not fill the daemon's /dev/shm");
    let r = bus.subscriber(never);
    let rm = std::process::Command::new("nsenter").args(["-t", &pid, "-m", "rm", "-f", "/dev/shm/filler"]).status();
    let err = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("index ring") && err.contains("free"), "a subscriber on a full /dev/shm: {err:?}");
    assert!(rm.is_ok_and(|s| s.success()));
    let mut s = bus.subscriber(never).expect("a subscriber once there is room again");
    assert!(s.try_recv().is_err());
}
