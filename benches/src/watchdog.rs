//! A bound on each scenario: a transport that hangs (a peer that died while the harness busy-polls) must not
//! hang the run. On expiry the watchdog kills the given processes and exits with code 3.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Armed until dropped.
pub struct Watchdog {
    stop: Option<Sender<()>>,
    pids: Arc<Mutex<Vec<u32>>>,
}

impl Watchdog {
    /// Sends SIGTERM to `pids` (the peers, the daemon, and any added later) and exits the harness unless
    /// dropped within `limit`.
    pub fn arm(what: String, pids: Vec<u32>, limit: Duration) -> Watchdog {
        let (tx, rx) = channel::<()>();
        let pids = Arc::new(Mutex::new(pids));
        let watched = pids.clone();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("shmbus-bench: {what} did not finish within {limit:?}; stopping");
                let pids = watched.lock().map(|p| p.clone()).unwrap_or_default();
                for p in pids {
                    // SAFETY: kill has no memory-safety preconditions; the pids are this process's children.
                    unsafe { libc::kill(p as i32, libc::SIGTERM) };
                }
                std::thread::sleep(Duration::from_millis(500));
                std::process::exit(3);
            }
        });
        Watchdog { stop: Some(tx), pids }
    }

    /// Adds a process to stop on expiry.
    pub fn watch(&self, pid: u32) {
        if let Ok(mut p) = self.pids.lock() {
            p.push(pid);
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}
