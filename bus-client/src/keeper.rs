//! The keeper: one background thread per connected [`Bus`](crate::Bus) that notices a lost control connection
//! (the daemon stopped or restarted) and, while handles are open, reconnects with exponential back-off and
//! re-registers their leases. Handles keep working on their mappings meanwhile: the data path never involves the
//! daemon.
//!
//! The thread holds only a weak reference between checks, so it ends within one poll interval after the last
//! `Bus` clone and handle are gone.

use crate::error::ConnError;
use shmbus_os::{PollFd, PollFlags, POLLRDHUP};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// First retry delay after losing the connection.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest retry delay.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often an idle keeper re-checks (also its exit latency).
const POLL: Duration = Duration::from_millis(200);

/// What the keeper watches: a control connection that can be watched, declared lost and reopened. (The
/// keeper knows nothing else of it.)
pub(crate) trait Watched: Send + Sync {
    /// The current connection's epoch (0: never connected).
    fn epoch(&self) -> u64;
    /// A descriptor to watch the current connection with, and its epoch; `None` when disconnected.
    fn watch(&self) -> Option<(OwnedFd, u64)>;
    /// The connection of `epoch` ended.
    fn lost(&self, epoch: u64);
    /// Reconnects (and re-registers) unless already connected.
    fn reconnect(self: Arc<Self>) -> Result<(), ConnError>;
    /// Whether handles are open (then reconnect eagerly).
    fn has_leases(&self) -> bool;
}

pub(crate) fn spawn(control: Weak<dyn Watched>) {
    let r = std::thread::Builder::new().name("shmbus-keeper".into()).spawn(move || run(control));
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot start the reconnect thread; reconnecting only on the next request");
    }
}

/// The next back-off after a failed attempt.
pub(crate) fn next_backoff(d: Duration) -> Duration {
    (d * 2).min(MAX_BACKOFF)
}

fn run(control: Weak<dyn Watched>) {
    let mut watching: Option<(OwnedFd, u64)> = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(c) = control.upgrade() else { return };
        if watching.as_ref().is_some_and(|(_, e)| *e != c.epoch()) {
            watching = None;
        }
        if watching.is_none() {
            watching = c.watch();
        }
        let want_reconnect = watching.is_none() && c.has_leases();
        drop(c);
        match &watching {
            Some((fd, epoch)) => {
                if hung_up(fd, POLL) {
                    if let Some(c) = control.upgrade() {
                        c.lost(*epoch);
                    }
                    watching = None;
                    backoff = MIN_BACKOFF;
                }
            }
            None if want_reconnect => {
                std::thread::sleep(backoff);
                let Some(c) = control.upgrade() else { return };
                match c.reconnect() {
                    Ok(()) => backoff = MIN_BACKOFF,
                    Err(e) => {
                        tracing::debug!(error = ?e, retry_in = ?next_backoff(backoff), "reconnecting to the daemon failed");
                        backoff = next_backoff(backoff);
                    }
                }
            }
            None => std::thread::sleep(POLL),
        }
    }
}

/// Waits up to `timeout` for the peer to close the socket. Readable data is not a hang-up: responses belong to
/// whoever holds the connection.
fn hung_up(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = [PollFd::new(fd.as_fd(), POLLRDHUP)];
    let gone = POLLRDHUP | PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
    matches!(shmbus_os::poll(&mut p, Some(timeout)), Ok(n) if n > 0) && p[0].revents().intersects(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn backoff_doubles_up_to_a_second() {
        let mut d = MIN_BACKOFF;
        let mut steps = vec![d];
        while d < MAX_BACKOFF {
            d = next_backoff(d);
            steps.push(d);
        }
        assert_eq!(steps[1], Duration::from_millis(20));
        assert_eq!(*steps.last().unwrap(), MAX_BACKOFF);
        assert_eq!(next_backoff(MAX_BACKOFF), MAX_BACKOFF);
    }

    #[test]
    fn hang_up_is_seen_but_data_is_not() {
        let (a, b) = UnixStream::pair().unwrap();
        let watch = a.as_fd().try_clone_to_owned().unwrap();
        shmbus_os::send_with_fds(b.as_fd(), b"reply", &[]).unwrap();
        assert!(!hung_up(&watch, Duration::from_millis(20)), "pending data is not a hang-up");
        drop(b);
        assert!(hung_up(&watch, Duration::from_millis(1000)));
    }
}
