//! A forked child sees a new fork generation; the parent's is unchanged.
//!
//! Kept in its own test binary: a `fork` without `exec` in the shared test harness would let the child hold every
//! descriptor of every test running at that moment (close-on-exec does not help without exec), which made
//! `lock::tests::lock_visible_from_other_ofd_until_closed` fail once when both ran at the same time.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use shmbus_os::{count_forks, fork_generation};

#[test]
fn child_sees_a_new_generation() {
    count_forks().unwrap();
    count_forks().unwrap();
    let before = fork_generation();
    let p = shmbus_os::pipe().unwrap();
    // SAFETY: the test process is single-threaded here but for the harness; the child only performs
    // async-signal-safe calls (an atomic load, write, _exit).
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let moved = [(fork_generation() != before) as u8];
            let _ = nix::unistd::write(&p.write, &moved);
            // SAFETY: exits the forked child at once, without unwinding into the test harness.
            unsafe { libc::_exit(0) };
        }
        ForkResult::Parent { child } => {
            drop(p.write);
            let mut got = [0u8; 1];
            assert_eq!(nix::unistd::read(&p.read, &mut got).unwrap(), 1);
            waitpid(child, None).unwrap();
            assert_eq!(got[0], 1, "the child saw a new fork generation");
            assert_eq!(fork_generation(), before, "the parent's generation is unchanged");
        }
    }
}
