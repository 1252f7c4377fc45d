//! Ctrl-C for the commands that run until stopped (`top`, `hz`): SIGINT and SIGTERM set a flag the loop looks
//! at, so it ends cleanly (the terminal restored, the lease closed) and exits 0.

use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set once SIGINT or SIGTERM arrived.
#[derive(Clone)]
pub struct Interrupt(Arc<AtomicBool>);

/// How often a sleeping loop looks at the flag.
const POLL: Duration = Duration::from_millis(50);

impl Interrupt {
    /// Installs the handlers (from now on SIGINT and SIGTERM no longer end the process by themselves).
    pub fn install() -> anyhow::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, flag.clone()).context("cannot install the SIGINT/SIGTERM handler")?;
        }
        Ok(Interrupt(flag))
    }

    /// Whether a signal arrived.
    pub fn is_set(&self) -> bool {
        // Relaxed: a flag, nothing is published through it.
        self.0.load(Ordering::Relaxed)
    }

    /// Sleeps until `deadline`; `false` when a signal arrived first.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        loop {
            if self.is_set() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(POLL));
        }
    }

    /// The nearer of `deadline` and the next look at the flag (for a wait that must notice a signal).
    pub fn next_look(deadline: Instant) -> Instant {
        deadline.min(Instant::now() + POLL)
    }
}
