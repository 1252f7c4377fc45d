//! systemd integration: `Type=notify` readiness, watchdog keep-alives, status line. Every call is a no-op when
//! `NOTIFY_SOCKET` is unset.

use sd_notify::NotifyState;
use std::time::{Duration, Instant};

/// Notifier state: the watchdog interval, if systemd asked for one, and when it was last fed.
#[derive(Debug)]
pub struct Systemd {
    watchdog: Option<Duration>,
    last: Instant,
    status: String,
}

impl Systemd {
    /// Reads `WATCHDOG_USEC` (pinging at half the interval). As in `sd_watchdog_enabled(3)`, `WATCHDOG_PID`, when
    /// set, must name this process.
    pub fn new() -> Systemd {
        let usec = std::env::var("WATCHDOG_USEC").ok().and_then(|v| v.parse::<u64>().ok()).filter(|&u| u > 0);
        let pid_ok =
            std::env::var("WATCHDOG_PID").ok().is_none_or(|p| p.parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = usec.filter(|_| pid_ok).map(|u| Duration::from_micros(u / 2));
        Systemd { watchdog, last: Instant::now(), status: String::new() }
    }

    /// READY=1 with a status line.
    pub fn ready(&self, status: &str) {
        let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// STATUS= line, sent when it changed.
    pub fn status(&mut self, status: &str) {
        if status != self.status {
            let _ = sd_notify::notify(false, &[NotifyState::Status(status)]);
            self.status = status.to_string();
        }
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
