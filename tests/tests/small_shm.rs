//! /dev/shm too small (issue 9, bad input): the daemon runs in a mount namespace of its own over a 4 MiB tmpfs
//! /dev/shm; creating a topic that needs more fails with an error that names the size needed and the space
//! free, touches nothing, and a topic that fits still works.

use shmbus_tests::daemon::TestDaemon;
use shmbus_tests::hostile::root_or_skip;
use std::time::Duration;

#[test]
fn a_topic_bigger_than_the_free_space_of_dev_shm_is_refused_naming_both() {
    if !root_or_skip("a_topic_bigger_than_the_free_space_of_dev_shm_is_refused_naming_both") {
        return;
    }
    let probe = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=4m tmpfs /dev/shm"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot mount a tmpfs in a mount namespace here");
        return;
    }
    let script = "mount -t tmpfs -o size=4m tmpfs /dev/shm && exec \"$@\"";
    let wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"];
    // The daemon's own limits are far above 4 MiB; only the free space can refuse.
    let d = TestDaemon::start_wrapped(
        Some("[defaults]\ncapacity = 64\nmax_message = 1024\npayload_budget = 65536\n"),
        &wrap,
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
