//! Pollable descriptors for shared-memory handles (issue 17): a per-process waker relays each armed handle's
//! futex wake-up word to that handle's eventfd, so a handle can be waited on with `poll(2)`, an async reactor,
//! or together with others ([`Select`](crate::Select)).
//!
//! # Protocol
//!
//! A handle *arms* when it finds nothing to do ([`Subscriber::try_recv_or_arm`](crate::Subscriber) returns
//! `Ok(None)`): it takes stale signals of its eventfd, raises its waiter bit in the ring (heavy barrier, re-check:
//! the blocking receive's handshake without the sleep) and marks its registration armed. The next publish (or
//! release of space, or the topic's close) posts the handle's wake-up word; the waker thread, asleep in
//! `futex_waitv` over the words of every armed handle, signals the handle's eventfd and disarms it. So: call
//! `try_recv_or_arm` until it returns `Ok(None)`, wait for the descriptor to be readable, repeat. Readiness means
//! a message *may* be there (a spurious wake-up costs one more `try_recv_or_arm`).
//!
//! # The waker threads
//!
//! One thread per 127 registered handles, started lazily with the first registration and kept
//! for the life of the process: each waits on its handles' words plus one control word of its own (128, the
//! `futex_waitv` maximum), bumped on every change of its registrations. A process with more handles has more
//! threads (never round-robin: every armed word is always being waited on). Nothing here runs while messages flow:
//! a handle that finds a message never arms, so it makes no system call and the waker stays asleep.
//!
//! The registry names words by address only, and the waker never reads them (only the kernel does, in
//! `futex_waitv`): it keeps no topic mapped. A registration lives as long as its handle and is removed (and the
//! thread told) when the handle drops; a closed topic posts every armed handle, which then reads `Closed`.

mod shard;

use shmbus_os::Event;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

/// A handle's pollable descriptor: its eventfd, and its registration with a waker thread.
#[derive(Debug)]
pub(crate) struct WakeFd {
    event: Arc<Event>,
    registration: shard::Registration,
    /// How many times the handle armed (a debugging counter: nothing arms while messages flow).
    arms: u64,
}

impl WakeFd {
    /// Registers the wake-up word `word` (of the caller's handle, which keeps its mapping alive at least as long
    /// as this value).
    pub(crate) fn new(word: &AtomicU32) -> io::Result<WakeFd> {
        let event = Arc::new(Event::new().map_err(io::Error::other)?);
        let registration = shard::register(word.as_ptr() as usize, event.clone())?;
        Ok(WakeFd { event, registration, arms: 0 })
    }

    /// The descriptor: readable once the armed word was posted.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }

    /// Runs just before the handle raises its waiter bit: takes the signals of earlier armings.
    pub(crate) fn before_arm(&self) {
        self.event.drain();
    }

    /// The handle armed (its bit is raised): the waker thread is to wait on its word.
    pub(crate) fn armed(&mut self) {
        self.arms += 1;
        self.registration.arm();
    }

    /// How many times the handle armed.
    pub(crate) fn arms(&self) -> u64 {
        self.arms
    }
}
