//! systemd integration: `Type=notify` readiness, watchdog keep-alives, status line. Every call is a no-op when
//! `NOTIFY_SOCKET` is unset.

use sd_notify::NotifyState;
use std::time::{Duration, Instant};

/// Notifier state: the watchdog interval, if systemd asked for one, and when it was last fed.
#[derive(Debug)]
pub struct Systemd {
    watchdog: Option<Duration>,
    last: Instant,
}

impl Systemd {
    /// Reads `WATCHDOG_USEC` (pinging at half the interval).
    pub fn new() -> Systemd {
        let mut usec = 0u64;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
        Systemd { watchdog, last: Instant::now() }
    }

    /// READY=1 with a status line.
    pub fn ready(&self, status: &str) {
        let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// STATUS= line.
    pub fn status(&self, status: &str) {
        let _ = sd_notify::notify(false, &[NotifyState::Status(status)]);
    }

    /// RELOADING=1 … READY=1 around a reload.
    pub fn reloading(&self, done: bool) {
        let state = if done { NotifyState::Ready } else { NotifyState::Reloading };
        let _ = sd_notify::notify(false, &[state]);
    }

    /// STOPPING=1.
    pub fn stopping(&self) {
        let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    }

    /// WATCHDOG=1 when due.
    pub fn tick(&mut self) {
        if let Some(every) = self.watchdog {
            if self.last.elapsed() >= every {
                let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
                self.last = Instant::now();
            }
        }
    }
}

impl Default for Systemd {
    fn default() -> Self {
        Systemd::new()
    }
}
