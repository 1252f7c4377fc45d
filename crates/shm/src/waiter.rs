//! The [`Waiter`] of a shared-memory topic: blocking waits backed by the topic's named semaphores, and the
//! `membarrier` heavy barrier.

use shmbus_os::NamedSemaphore;
use shmbus_proto::names::sem_name;
use shmbus_ring::wait::{set_light_barrier_cheap, Target, Waiter};
use shmbus_ring::Geometry;
use std::sync::OnceLock;
use std::time::Instant;

static BARRIER: OnceLock<bool> = OnceLock::new();

/// Registers this process for `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` once, so the publish path pays only a
/// compiler fence for the waiter handshake. Returns whether the cheap barrier is in use.
pub fn init_barrier() -> bool {
    *BARRIER.get_or_init(|| match shmbus_os::register_global_expedited() {
        Ok(true) => {
            // SAFETY: registration succeeded, and every heavy barrier issued by shmbus processes against shared
            // topics goes through `SemWaiter::heavy`, which issues MEMBARRIER_CMD_GLOBAL_EXPEDITED.
            unsafe { set_light_barrier_cheap(true) };
            true
        }
        _ => false,
    })
}

/// The [`Waiter`] of a shared-memory topic: one named semaphore per slot, opened on first use.
pub struct SemWaiter {
    prefix: String,
    subs: Vec<OnceLock<Option<NamedSemaphore>>>,
    pubs: Vec<OnceLock<Option<NamedSemaphore>>>,
}

impl std::fmt::Debug for SemWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemWaiter").field("prefix", &self.prefix).finish()
    }
}

impl SemWaiter {
    /// A waiter for the topic whose semaphores are named under `sem_prefix`.
    pub fn new(sem_prefix: &str, geo: &Geometry) -> SemWaiter {
        init_barrier();
        SemWaiter {
            prefix: sem_prefix.to_string(),
            subs: (0..geo.max_subscribers).map(|_| OnceLock::new()).collect(),
            pubs: (0..geo.max_publishers).map(|_| OnceLock::new()).collect(),
        }
    }

    fn sem(&self, t: Target) -> Option<&NamedSemaphore> {
        let (cells, publisher, slot) = match t {
            Target::Subscriber(s) => (&self.subs, false, s),
            Target::Publisher(p) => (&self.pubs, true, p),
        };
        let cell = cells.get(slot)?;
        cell.get_or_init(|| {
            let name = sem_name(&self.prefix, publisher, slot as u32);
            match NamedSemaphore::open(&name) {
                Ok(s) => Some(s),
                Err(e) => {
                    // Without the semaphore, sleeps fall back to their bounded timeout.
                    tracing::debug!(semaphore = %name, error = %e, "cannot open semaphore; waits will poll");
                    None
                }
            }
        })
        .as_ref()
    }
}

impl Waiter for SemWaiter {
    fn post(&self, target: Target) {
        if let Some(s) = self.sem(target) {
            let _ = s.post();
        }
    }

    fn drain(&self, target: Target) {
        if let Some(s) = self.sem(target) {
            while let Ok(true) = s.try_wait() {}
        }
    }

    fn wait_until(&self, target: Target, deadline: Instant) -> bool {
        match self.sem(target) {
            Some(s) => s.wait_until(deadline).unwrap_or(false),
            None => {
                let now = Instant::now();
                if deadline > now {
                    std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(1)));
                }
                false
            }
        }
    }

    fn heavy(&self) {
        // A full barrier in every registered process; falls back to a local fence when unsupported (then every
        // process's light barrier is a full fence too, see `init_barrier`).
        let _ = shmbus_os::global_expedited();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}
