//! `inherit_in_child` hands exactly the listed descriptors to the child.
//!
//! Kept in its own test binary: spawning with a `pre_exec` hook forks, and until the child's `exec` it holds every
//! descriptor of every test running at that moment; tests that depend on a descriptor being the last one (OFD
//! locks, pipe EOF) must not share a process with it.

use shmbus_os::inherit_in_child;
use std::os::fd::AsRawFd;
use std::process::Command;

#[test]
fn only_the_child_inherits() {
    let p = shmbus_os::pipe().unwrap();
    let fd = p.read.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("test -e /proc/self/fd/{fd}"));
    inherit_in_child(&mut cmd, vec![fd]);
    assert!(cmd.status().unwrap().success());
    // This process's copy is still close-on-exec: a plain child does not get it.
    let mut plain = Command::new("sh");
    plain.arg("-c").arg(format!("test -e /proc/self/fd/{fd}"));
    assert!(!plain.status().unwrap().success());
    // A number that is not open makes spawning fail.
    let mut bad = Command::new("true");
    inherit_in_child(&mut bad, vec![1 << 20]);
    assert!(bad.status().is_err());
}
