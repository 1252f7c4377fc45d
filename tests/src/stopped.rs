//! [`Stopped`]: a process held with `SIGSTOP` (a daemon that does not answer), continued on drop so that a failing
//! test never leaves it stopped.

use std::time::{Duration, Instant};

/// Continues the process when dropped.
pub struct Stopped(u32);

impl Stopped {
    /// Stops `pid` and waits until the kernel reports it stopped.
    pub fn new(pid: u32) -> Stopped {
        // SAFETY: kill(2) with a valid signal number on a process the test started.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
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
        // SAFETY: as in `new`.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// The process state letter from /proc/PID/stat.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}
