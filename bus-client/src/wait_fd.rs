//! Pollable descriptors and arming on [`Subscriber`] and [`Publisher`] (issue 17): the protocol is in the `wake`
//! module's docs.

use crate::error::{RecvError, SendError, WaitError};
use crate::message::Message;
use crate::publisher::Publisher;
use crate::subscriber::{Inner, Subscriber};
use crate::wake::WakeFd;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::AtomicU32;

const NO_PIPE_FD: &str = "a pipe publisher has no wait descriptor";
/// What failed when [`wake_fd`] does.
const SETUP: &str = "setting up the wake descriptor";

/// Registers `word` into `slot` once.
fn wake_fd<'a>(slot: &'a mut Option<Box<WakeFd>>, word: Option<&AtomicU32>) -> io::Result<&'a mut WakeFd> {
    if slot.is_none() {
        let word = word.ok_or_else(|| io::Error::other("the topic's readers object is mapped read-only"))?;
        *slot = Some(Box::new(WakeFd::new(word)?));
    }
    Ok(slot.as_mut().expect("set above"))
}

impl Subscriber {
    /// A descriptor that becomes readable when a message may be ready, for `poll(2)`, `epoll` or an async
    /// reactor. The protocol: call [`try_recv_or_arm`](Subscriber::try_recv_or_arm) until it returns `Ok(None)`
    /// (armed), wait for the descriptor to be readable, repeat. Readiness can be spurious; a message is never
    /// missed. Readiness says nothing about messages taken by `recv`/`try_recv` meanwhile.
    ///
    /// On shared memory it is an eventfd that this process's waker thread signals (registered at the first call,
    /// for the life of the subscriber; see the crate's `wake` docs). On a pipe it is the pipe itself; a fan-in
    /// pipe subscriber (several pipes) has none: [`RecvError::Wait`].
    ///
    /// ```
    /// use bus_client::poll::{poll, PollFd, PollFlags};
    /// let (mut p, mut s) = bus_client::pipe::channel("fd")?;
    /// assert!(s.try_recv_or_arm()?.is_none(), "nothing yet: armed");
    /// p.send(b"x")?;
    /// let mut fds = [PollFd::new(s.wait_fd()?, PollFlags::POLLIN)];
    /// poll(&mut fds, None)?;
    /// assert_eq!(s.try_recv_or_arm()?.unwrap().payload(), b"x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_fd(&mut self) -> Result<BorrowedFd<'_>, RecvError> {
        match &mut self.0 {
            Inner::Shm(s) => {
                let w =
                    wake_fd(&mut self.1, s.ring.wake_word()).map_err(|e| RecvError::Wait(WaitError::io(SETUP, e)))?;
                Ok(w.fd())
            }
            Inner::Pipe(p) => p
                .only_input()
                .ok_or_else(|| RecvError::Wait(WaitError::new("a fan-in pipe subscriber reads several pipes"))),
        }
    }

    /// The next message if one is available now (`Ok(Some)`), else arms [`wait_fd`](Subscriber::wait_fd)
    /// (`Ok(None)`): the descriptor becomes readable once a message may be there. Errors as
    /// [`try_recv`](Subscriber::try_recv) (never `Empty`), plus [`RecvError::Wait`] if the descriptor could not be
    /// set up. Makes no system call when a message is there; arming costs an eventfd read and, the first time
    /// since the last readiness, a futex wake of the waker thread.
    pub fn try_recv_or_arm(&mut self) -> Result<Option<Message<'_>>, RecvError> {
        match &mut self.0 {
            Inner::Shm(s) => {
                s.check::<RecvError>()?;
                let w =
                    wake_fd(&mut self.1, s.ring.wake_word()).map_err(|e| RecvError::Wait(WaitError::io(SETUP, e)))?;
                let (m, armed) = match s.ring.try_recv_or_arm(|| w.before_arm()) {
                    Ok(Some(m)) => (Some(Message(crate::transport::OnTransport::Shm(m))), false),
                    Ok(None) => (None, true),
                    Err(e) => return Err(e.into()),
                };
                if armed {
                    w.armed();
                }
                Ok(m)
            }
            Inner::Pipe(p) => match crate::source::Source::recv(&mut **p, crate::pipe_io::io::Wait::Now) {
                Ok(m) => Ok(Some(m)),
                Err(RecvError::Empty) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// How many times this subscriber armed its descriptor (0 on a pipe): a debugging counter. A subscriber
    /// that keeps finding messages never arms, so this stays put while messages flow.
    pub fn armed_waits(&self) -> u64 {
        self.1.as_ref().map_or(0, |w| w.arms())
    }
}

impl Publisher {
    /// A descriptor that becomes readable when room may have been freed on a full (lossless) topic; the
    /// protocol is [`Subscriber::wait_fd`]'s, with [`try_send_or_arm`](Publisher::try_send_or_arm). Shared memory
    /// only: a pipe publisher gets [`SendError::Wait`].
    pub fn wait_fd(&mut self) -> Result<BorrowedFd<'_>, SendError> {
        let at = self.0.shm().ok_or_else(|| SendError::Wait(WaitError::new(NO_PIPE_FD)))?;
        let w = wake_fd(&mut self.1, at.ring.wake_word()).map_err(|e| SendError::Wait(WaitError::io(SETUP, e)))?;
        Ok(w.fd())
    }

    /// Publishes `msg` if there is room now (`Ok(Some(seq))`), else arms [`wait_fd`](Publisher::wait_fd)
    /// (`Ok(None)`). Errors as [`try_send`](Publisher::try_send) (never `Full`).
    pub fn try_send_or_arm(&mut self, msg: &[u8]) -> Result<Option<u64>, SendError> {
        let Some(at) = self.0.shm() else {
            return Err(SendError::Wait(WaitError::new(NO_PIPE_FD)));
        };
        at.check::<SendError>()?;
        let w = wake_fd(&mut self.1, at.ring.wake_word()).map_err(|e| SendError::Wait(WaitError::io(SETUP, e)))?;
        let r = at.ring.try_send_or_arm(msg, || w.before_arm())?;
        if r.is_none() {
            w.armed();
        }
        Ok(r)
    }
}
