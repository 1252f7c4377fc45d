//! Waiting on several subscribers at once ([`Select`]), and cancelling a wait from another thread
//! ([`Interrupter`]), over the subscribers' [wait descriptors](crate::Subscriber::wait_fd) and `poll(2)`.

use crate::error::{os_to_io, RecvError, WaitError};
use crate::message::OwnedMessage;
use crate::subscriber::Subscriber;
use shmbus_os::poll::{poll, PollFd, PollFlags};
use shmbus_os::Event;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ends a [`Select`] wait (or [`Subscriber::recv_interruptible`]) from another thread with
/// [`RecvError::Interrupted`]. `Send + Sync + Clone`: clones share one eventfd.
///
/// One [`interrupt`](Interrupter::interrupt) ends one wait: the wait that sees it takes it. An interrupt made
/// while nobody waits ends the next wait at once. A wait that finds a message returns the message and leaves the
/// interrupt for the next wait.
#[derive(Clone, Debug)]
pub struct Interrupter(Arc<Event>);

impl Interrupter {
    /// A new interrupter (one eventfd).
    pub fn new() -> std::io::Result<Interrupter> {
        Ok(Interrupter(Arc::new(Event::new().map_err(std::io::Error::other)?)))
    }

    /// Ends the current (or next) wait that uses this interrupter.
    pub fn interrupt(&self) {
        self.0.signal();
    }
}

/// Waits on several subscribers at once: `add` them, then `recv_timeout` returns the first message of any of
/// them, with the index `add` returned. Fair: each receive starts looking after the subscriber that was served
/// last, so a busy subscriber cannot starve the others.
///
/// A subscriber that reports [`RecvError::Closed`] is reported once (as `(index, Err(Closed))`) and then left
/// out; once every subscriber is closed, `recv_timeout` returns `Err(Closed)`. Other errors of a subscriber
/// (`Lagged`, ...) come as `(index, Err(e))`; the select goes on.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let bus = bus_client::Bus::connect()?;
/// let (mut orders, mut quotes) = (bus.subscriber("orders")?, bus.subscriber("quotes")?);
/// let mut sel = bus_client::Select::new();
/// let o = sel.add(&mut orders);
/// let _q = sel.add(&mut quotes);
/// let (i, m) = sel.recv_timeout(Duration::from_secs(1))?;
/// println!("{} from {}", m?.len(), if i == o { "orders" } else { "quotes" });
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Select<'a> {
    subs: Vec<&'a mut Subscriber>,
    closed: Vec<bool>,
    next: usize,
    interrupter: Option<Interrupter>,
}

/// What one subscriber of a [`Select`] gave: its message or its error.
pub type Selected = (usize, Result<OwnedMessage, RecvError>);

impl<'a> Select<'a> {
    /// An empty select.
    pub fn new() -> Select<'a> {
        Select::default()
    }

    /// Adds a subscriber; returns its index in the results.
    pub fn add(&mut self, sub: &'a mut Subscriber) -> usize {
        self.subs.push(sub);
        self.closed.push(false);
        self.subs.len() - 1
    }

    /// Lets `interrupter` end the waits of this select with [`RecvError::Interrupted`].
    pub fn interrupter(&mut self, interrupter: &Interrupter) -> &mut Self {
        self.interrupter = Some(interrupter.clone());
        self
    }

    /// Waits at most `timeout` for a message of any subscriber. `Err` is the select's own end: `Timeout`,
    /// `Interrupted`, `Closed` (every subscriber closed, or none added) or `Wait` (a descriptor could not be set
    /// up, or `poll` failed).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Selected, RecvError> {
        self.recv_deadline(Instant::now().checked_add(timeout))
    }

    /// Waits until `deadline` (`None`: for ever) for a message of any subscriber (see
    /// [`recv_timeout`](Select::recv_timeout)).
    pub fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<Selected, RecvError> {
        loop {
            if let Some(got) = self.try_each()? {
                return Ok(got);
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if d <= now => return Err(RecvError::Timeout),
                Some(d) => Some(d - now),
                None => None,
            };
            if self.wait(left)? {
                return Err(RecvError::Interrupted);
            }
        }
    }

    /// One look at each open subscriber, from the one after the last served; every one that has nothing is
    /// armed. `None`: all armed.
    fn try_each(&mut self) -> Result<Option<Selected>, RecvError> {
        let n = self.subs.len();
        if self.closed.iter().all(|c| *c) {
            return Err(RecvError::Closed);
        }
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.closed[i] {
                continue;
            }
            let got = match self.subs[i].try_recv_or_arm() {
                Ok(None) => continue,
                Ok(Some(m)) => Ok(OwnedMessage::from(m)),
                Err(e @ RecvError::Wait(_)) => return Err(e),
                Err(e) => Err(e),
            };
            if got == Err(RecvError::Closed) {
                self.closed[i] = true;
            }
            self.next = (i + 1) % n;
            return Ok(Some((i, got)));
        }
        Ok(None)
    }

    /// Polls the armed subscribers' descriptors (and the interrupter's) for at most `left`; `true` if
    /// interrupted.
    fn wait(&mut self, left: Option<Duration>) -> Result<bool, RecvError> {
        let mut fds = Vec::with_capacity(self.subs.len() + 1);
        if let Some(i) = &self.interrupter {
            fds.push(PollFd::new(i.0.as_fd(), PollFlags::POLLIN));
        }
        for (s, closed) in self.subs.iter_mut().zip(&self.closed) {
            if !closed {
                fds.push(PollFd::new(s.wait_fd()?, PollFlags::POLLIN));
            }
        }
        poll(&mut fds, left).map_err(|e| RecvError::Wait(WaitError::io("poll", os_to_io(e))))?;
        let interrupted = self.interrupter.is_some() && !fds[0].revents().is_empty();
        drop(fds);
        Ok(interrupted && self.interrupter.as_ref().is_some_and(|i| i.0.drain()))
    }
}

impl Subscriber {
    /// Waits at most `timeout` (`None`: for ever) for the next message, copied out, unless `interrupter` ends
    /// the wait first ([`RecvError::Interrupted`]): the cancellable `recv`. Errors as
    /// [`recv_timeout`](Subscriber::recv_timeout), plus `Interrupted` and `Wait`.
    pub fn recv_interruptible(
        &mut self,
        interrupter: &Interrupter,
        timeout: Option<Duration>,
    ) -> Result<OwnedMessage, RecvError> {
        let mut sel = Select::new();
        sel.add(self);
        sel.interrupter(interrupter);
        sel.recv_deadline(timeout.and_then(|t| Instant::now().checked_add(t))).and_then(|(_, m)| m)
    }
}
