//! The lines of ARCHITECTURE.md §9.6's table that no other test shows: what the kernel refuses to a user the
//! daemon does not admit, and to an admitted subscriber. The attacker is the `intruder` helper run as `nobody`
//! against a root daemon with a root-only topic `secret` and a topic `orders` that everyone may read.

use shmbus_tests::daemon::{binary, TestDaemon};
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use std::os::unix::process::CommandExt;
use std::process::Command;

const CONFIG: &str = "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\n\n[[topic]]\nname = \"secret\"\n\n\
                      [[topic]]\nname = \"orders\"\nsubscribe = [\"*\"]\n";

/// What `intruder probe` said about `topic`, run as nobody.
fn probe(d: &TestDaemon, topic: &str) -> String {
    let out = Command::new(binary("intruder"))
        .args(["probe", d.socket.to_str().unwrap(), &d.prefix, topic])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    said
}

#[test]
fn the_kernel_refuses_what_the_daemon_does_not_grant() {
    if !root_or_skip("the_kernel_refuses_what_the_daemon_does_not_grant") {
        return;
    }
    let d = TestDaemon::start(Some(CONFIG));
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // An unadmitted user: no lease, and the objects cannot be opened directly, not even for reading.
    let said = probe(&d, "secret");
    for line in ["open data: denied", "open readers: denied", "lease: refused PermissionDenied"] {
        assert!(said.contains(line), "{line:?} missing:\n{said}");
    }
    // An admitted subscriber: still no direct access, and its lease's data descriptor is read-only: writing
    // through it and reopening it for writing both fail.
    let said = probe(&d, "orders");
    for line in
        ["open data: denied", "open readers: denied", "lease: granted", "write data: denied", "reopen data: denied"]
    {
        assert!(said.contains(line), "{line:?} missing:\n{said}");
    }
    assert!(!said.contains("ALLOWED"), "{said}");
}
