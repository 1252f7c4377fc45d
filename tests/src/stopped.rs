//! [`Stopped`]: a process held with `SIGSTOP` (a daemon that does not answer), continued on drop so that a failing
//! test never leaves it stopped.

use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Sends `sig` to process `pid` (a child the test started); a process already gone is no error.
pub fn signal(pid: u32, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Continues the process when dropped.
pub struct Stopped(u32);

impl Stopped {
    /// Stops `pid` and waits until the kernel reports it stopped.
    pub fn new(pid: u32) -> Stopped {
        signal(pid, Signal::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !state(pid).is_some_and(|s| s == 'T' || s == 't') {
            assert!(Instant::now() < deadline, "process {pid} did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, Signal::SIGCONT);
    }
}

/// The process state letter from /proc/PID/stat.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}
