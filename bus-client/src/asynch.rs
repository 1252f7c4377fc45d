//! Async handles for tokio (the `tokio` feature): [`AsyncSubscriber`] (`recv().await`, a [`Stream`] of owned
//! messages) and [`AsyncPublisher`] (`send().await`, waiting for room on a lossless topic), over the handles'
//! [wait descriptors](crate::Subscriber::wait_fd) in tokio's reactor (`AsyncFd`).
//!
//! Messages flowing cost what `try_recv` / `try_send` cost: the descriptor is armed, and the reactor involved,
//! only when there is nothing to receive (or no room).
//!
//! [`Stream`]: futures_core::Stream

use crate::error::{RecvError, SendError, WaitError};
use crate::message::OwnedMessage;
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;
use std::future::poll_fn;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// What failed when the readiness wait does.
const REACTOR: &str = "waiting in the tokio reactor";

/// Registers a copy of `fd` with the current runtime's reactor (an error, not a panic, outside a runtime; tokio
/// panics in a runtime built without its I/O driver).
fn register(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<AsyncFd<OwnedFd>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other("not inside a tokio runtime"));
    }
    let owned = fd.try_clone_to_owned()?;
    // SAFETY: an `OwnedFd` is an open descriptor that stays open, and names the same open file description,
    // until it is dropped, which happens only with (or after) the `AsyncFd` that owns it; its `as_raw_fd` always
    // returns that descriptor.
    unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }.map_err(|e| e.into_parts().1)
}

/// The readiness-wait loop behind `poll_recv` and `poll_send`: `attempt` until it has an outcome (`Ok(Some)` or
/// `Err`), waiting for `fd` to be readable whenever it armed (`Ok(None)`), and clearing the readiness before the
/// next attempt (which arms again). A failed wait (the reactor gone: the runtime shut down) is `wait_error`'s
/// `Wait` with the OS error kept as its source, never a clean `Closed`.
fn poll_armed<T, E>(
    fd: &AsyncFd<OwnedFd>,
    cx: &mut Context<'_>,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
    wait_error: fn(WaitError) -> E,
) -> Poll<Result<T, E>> {
    loop {
        match attempt() {
            Ok(Some(v)) => return Poll::Ready(Ok(v)),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
        match fd.poll_read_ready(cx) {
            Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(wait_error(WaitError::io(REACTOR, e)))),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// A [`Subscriber`] for async code: [`recv`](AsyncSubscriber::recv)`.await` and a [`Stream`] of owned messages.
/// Made inside a tokio runtime with the I/O driver enabled (`enable_io`; tokio panics without it); used from that
/// runtime.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = bus_client::Bus::connect()?;
/// let mut sub = bus_client::AsyncSubscriber::new(bus.subscriber("orders")?)?;
/// let m = sub.recv().await?;
/// println!("#{}: {} bytes", m.seq(), m.len());
/// # Ok(()) }
/// ```
///
/// [`Stream`]: futures_core::Stream
#[derive(Debug)]
pub struct AsyncSubscriber {
    sub: Subscriber,
    fd: AsyncFd<OwnedFd>,
    /// The stream ended (after `Closed`, or an error the subscriber cannot go on from).
    ended: bool,
}

impl AsyncSubscriber {
    /// Wraps `sub` (shared memory, or a pipe with one input). Errors outside a tokio runtime, for a fan-in pipe
    /// subscriber, or when the descriptor cannot be set up.
    pub fn new(mut sub: Subscriber) -> io::Result<AsyncSubscriber> {
        let fd = register(sub.wait_fd().map_err(io::Error::other)?)?;
        Ok(AsyncSubscriber { sub, fd, ended: false })
    }

    /// Waits for the next message and copies it out. Errors as [`Subscriber::recv`], plus `Wait` (also when the
    /// runtime has shut down: a failed wait is never reported as `Closed`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a message is only taken in the poll that returns it, so dropping the future (in a
    /// `select!`, or on a timeout) loses no message; the next `recv` gets it.
    pub async fn recv(&mut self) -> Result<OwnedMessage, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll behind [`recv`](AsyncSubscriber::recv) and the stream: `Ready` with the next message (or error),
    /// or `Pending` with the descriptor armed and `cx`'s waker registered.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<OwnedMessage, RecvError>> {
        let sub = &mut self.sub;
        poll_armed(&self.fd, cx, || sub.try_recv_or_arm().map(|m| m.map(OwnedMessage::from)), RecvError::Wait)
    }

    /// The subscriber.
    pub fn get_ref(&self) -> &Subscriber {
        &self.sub
    }

    /// The subscriber, e.g. for `try_recv` (do not wait on it with `recv` from async code: that blocks the
    /// thread).
    pub fn get_mut(&mut self) -> &mut Subscriber {
        &mut self.sub
    }

    /// The subscriber back (the descriptor leaves the reactor).
    pub fn into_inner(self) -> Subscriber {
        self.sub
    }
}

/// Owned messages until the topic closes: `Lagged` and `Demoted` come as `Err` items and the stream goes on; it
/// ends after `Closed` (no item) or after yielding an error the subscriber cannot go on from (`Corrupted`,
/// `Forked`, `Wait`).
///
/// # Cancel safety
///
/// As [`AsyncSubscriber::recv`]: a `next()` future dropped before it is ready loses no message.
impl futures_core::Stream for AsyncSubscriber {
    type Item = Result<OwnedMessage, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match this.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(RecvError::Closed)) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                this.ended = !e.is_transient();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Ok(m)) => Poll::Ready(Some(Ok(m))),
        }
    }
}

/// A [`Publisher`] for async code: [`send`](AsyncPublisher::send)`.await` waits for room on a full lossless topic
/// without blocking the thread. Shared memory only.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = bus_client::Bus::connect()?;
/// let mut p = bus_client::AsyncPublisher::new(bus.publisher("orders")?)?;
/// let seq = p.send(b"hello").await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncPublisher {
    publisher: Publisher,
    fd: AsyncFd<OwnedFd>,
}

impl AsyncPublisher {
    /// Wraps `publisher`. Errors outside a tokio runtime, for a pipe publisher, or when the descriptor cannot be
    /// set up.
    pub fn new(mut publisher: Publisher) -> io::Result<AsyncPublisher> {
        let fd = register(publisher.wait_fd().map_err(io::Error::other)?)?;
        Ok(AsyncPublisher { publisher, fd })
    }

    /// Publishes `msg`, waiting for room as long as lossless subscribers hold the topic full; returns its
    /// sequence number. Errors as [`Publisher::try_send`] (never `Full`), plus `Wait` (also
    /// when the runtime has shut down: a failed wait is never reported as `Closed`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe in the sense that matters for a send: the message is published only in the poll that returns
    /// its sequence number, so a dropped future has sent nothing (send it again to publish it).
    pub async fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        poll_fn(|cx| self.poll_send(msg, cx)).await
    }

    /// The poll behind [`send`](AsyncPublisher::send).
    pub fn poll_send(&mut self, msg: &[u8], cx: &mut Context<'_>) -> Poll<Result<u64, SendError>> {
        let publisher = &mut self.publisher;
        poll_armed(&self.fd, cx, || publisher.try_send_or_arm(msg), SendError::Wait)
    }

    /// The publisher.
    pub fn get_ref(&self) -> &Publisher {
        &self.publisher
    }

    /// The publisher, e.g. for `try_send`.
    pub fn get_mut(&mut self) -> &mut Publisher {
        &mut self.publisher
    }

    /// The publisher back.
    pub fn into_inner(self) -> Publisher {
        self.publisher
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// A pipe channel's subscriber, registered with a fresh runtime's reactor; the runtime comes back with it.
    fn registered(topic: &str) -> (crate::Publisher, AsyncSubscriber, tokio::runtime::Runtime) {
        let (p, sub) = crate::pipe::channel(topic).expect("a pipe channel");
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("a runtime");
        let sub = {
            let _in = rt.enter();
            AsyncSubscriber::new(sub).expect("registered")
        };
        (p, sub, rt)
    }

    #[test]
    fn a_reactor_gone_is_a_failed_wait_not_a_close() {
        let (p, mut sub, rt) = registered("async-gone");
        drop(rt);
        let mut cx = Context::from_waker(Waker::noop());
        match sub.poll_recv(&mut cx) {
            Poll::Ready(Err(RecvError::Wait(e))) => {
                assert!(e.io_error().is_some(), "the reactor's error is kept: {e}");
                assert!(e.to_string().starts_with(REACTOR), "{e}");
            }
            other => panic!("want Wait, got {other:?}"),
        }
        drop(p);
    }

    #[test]
    fn a_message_there_needs_no_wait() {
        let (mut p, mut sub, rt) = registered("async-there");
        p.send(b"x").expect("sent");
        rt.block_on(async {
            assert_eq!(sub.recv().await.expect("the message").payload(), b"x");
        });
    }
}
