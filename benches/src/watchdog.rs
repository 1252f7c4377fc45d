//! A bound on each scenario: a transport that hangs (a peer that died while the harness busy-polls) must not
//! hang the run. On expiry the watchdog kills the given processes, removes the link objects this harness created
//! (its exit skips their destructors) and exits with code 3.

use nix::sys::signal::Signal;
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
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), Signal::SIGTERM);
                }
                std::thread::sleep(Duration::from_millis(500));
                remove_own_objects();
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

/// Removes what the links of this harness left in /dev/shm and /dev/mqueue: names with `shbench<our pid>-` (the
/// scenario links, see `run::pair`; the private daemon's topics, `shbench<pid>.…`, are the daemon's to remove on
/// SIGTERM). A run stopped by the watchdog left its shm-ring object behind before this.
fn remove_own_objects() {
    let mine = format!("shbench{}-", std::process::id());
    for dir in ["/dev/shm", "/dev/mqueue"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().contains(&mine) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
