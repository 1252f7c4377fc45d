//! The closer: one background thread per control connection that tells the daemon about dropped handles, so
//! that dropping a handle never waits on a daemon round trip (with the daemon stopped, the `Close` exchange
//! would wait out [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT)).
//!
//! A dropping handle queues its lease here and returns. The thread sends the queued `Close`s as soon as it can
//! take the connection; so does every request made on the connection, before its own (the queue is drained
//! under the connection lock), so a request that follows a drop in this process always comes after its `Close`
//! (a slot freed by a drop can be taken by the next open).
//!
//! A queued close keeps its control (and so the connection) alive until it is sent, so that the daemon gets
//! the `Close` even when the last `Bus` is dropped right after the handle. Otherwise the thread holds only a
//! weak reference to the control while it waits, so it ends within [`IDLE`] after the last `Bus` clone and
//! handle are gone.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// How often an idle closer checks that its control still exists (also its exit latency).
const IDLE: Duration = Duration::from_millis(500);

/// A lease to close: the daemon's id for it on connection `epoch`, and the control to keep alive until then.
pub(crate) struct Pending {
    pub(crate) lease: u64,
    pub(crate) epoch: u64,
    /// Held only to be dropped once the close is sent.
    pub(crate) _keep_alive: Option<Arc<dyn Closes>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("lease", &self.lease).field("epoch", &self.epoch).finish()
    }
}

/// The queue of leases to close, shared by the control and its closer thread.
#[derive(Debug, Default)]
pub(crate) struct Closer {
    queue: Mutex<Vec<Pending>>,
    wake: Condvar,
}

fn lock(m: &Mutex<Vec<Pending>>) -> MutexGuard<'_, Vec<Pending>> {
    // Pushes and takes are single operations: a panic cannot leave the queue half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Closer {
    /// Queues a close and wakes the thread.
    pub(crate) fn push(&self, p: Pending) {
        lock(&self.queue).push(p);
        self.wake.notify_one();
    }

    /// Everything queued, in order.
    pub(crate) fn take(&self) -> Vec<Pending> {
        std::mem::take(&mut *lock(&self.queue))
    }

    /// Waits up to `timeout` for something to be queued; whether something is.
    fn wait(&self, timeout: Duration) -> bool {
        let q = lock(&self.queue);
        let (q, _) = self.wake.wait_timeout_while(q, timeout, |q| q.is_empty()).unwrap_or_else(|p| p.into_inner());
        !q.is_empty()
    }
}

/// What the closer thread drives: sending what is queued (the control knows the connection).
pub(crate) trait Closes: Send + Sync {
    /// Sends every queued `Close` (waiting for the connection if another thread uses it).
    fn flush_closes(&self);
}

/// Starts the closer thread for `control`, whose queue is `closer`.
pub(crate) fn spawn(control: Weak<dyn Closes>, closer: Arc<Closer>) -> std::io::Result<()> {
    std::thread::Builder::new().name("shmbus-closer".into()).spawn(move || run(control, closer)).map(drop)
}

fn run(control: Weak<dyn Closes>, closer: Arc<Closer>) {
    loop {
        let work = closer.wait(IDLE);
        let Some(c) = control.upgrade() else { return };
        if work {
            c.flush_closes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    fn pending(lease: u64, keep: Option<Arc<dyn Closes>>) -> Pending {
        Pending { lease, epoch: 1, _keep_alive: keep }
    }

    struct Counting {
        closer: Arc<Closer>,
        sent: AtomicUsize,
    }

    impl Closes for Counting {
        fn flush_closes(&self) {
            // Relaxed: a counter read after the thread is seen to have made progress.
            self.sent.fetch_add(self.closer.take().len(), Ordering::Relaxed);
        }
    }

    #[test]
    fn queued_closes_are_sent_in_the_background_keeping_their_control_alive_until_then() {
        let closer = Arc::new(Closer::default());
        let c = Arc::new(Counting { closer: closer.clone(), sent: AtomicUsize::new(0) });
        let dyn_c: Arc<dyn Closes> = c.clone();
        spawn(Arc::downgrade(&dyn_c), closer.clone()).unwrap();
        closer.push(pending(1, Some(dyn_c.clone())));
        closer.push(pending(2, Some(dyn_c)));
        let weak = Arc::downgrade(&c);
        drop(c); // only the queued closes hold it now
        let deadline = Instant::now() + Duration::from_secs(10);
        while weak.upgrade().is_some_and(|c| c.sent.load(Ordering::Relaxed) < 2) {
            assert!(Instant::now() < deadline, "the closer did not send");
            std::thread::sleep(Duration::from_millis(1));
        }
        while weak.strong_count() > 0 {
            assert!(Instant::now() < deadline, "the sent closes still hold the control");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(closer.take().is_empty(), "both sent");
        closer.push(pending(3, None));
        assert_eq!(closer.take().iter().map(|p| p.lease).collect::<Vec<_>>(), [3], "the queue stays usable");
    }
}
