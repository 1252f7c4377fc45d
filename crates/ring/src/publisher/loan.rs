//! Zero-copy loans: a claimed message written in place in shared memory, then committed or aborted.

use super::{Publisher, Reservation};
use crate::stamp::State;

/// A zero-copy loan: shared memory reserved for one message. Write it, then [`Loan::commit`].
/// Dropping it unpublished aborts the claim with a skip marker that readers pass over.
///
/// A loan is written through [`Loan::write_at`], [`Loan::copy_from_slice`] or [`Loan::with_buffer`], never
/// through a `&mut [u8]` over the shared memory (issue 8, defect 6): the bytes are stored with atomic word
/// stores because lossy readers may be loading them at the same time. Unwritten bytes are unspecified.
pub struct Loan<'a> {
    pub(super) publisher: &'a mut Publisher,
    pub(super) r: Reservation,
    pub(super) done: bool,
}

impl std::fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan").field("seq", &self.r.seq).field("len", &self.r.len).finish()
    }
}

impl Loan<'_> {
    /// The sequence number the message will carry.
    pub fn seq(&self) -> u64 {
        self.r.seq
    }

    /// Length of the loaned buffer.
    pub fn len(&self) -> usize {
        self.r.len
    }

    /// Whether the loan is zero bytes long.
    pub fn is_empty(&self) -> bool {
        self.r.len == 0
    }

    /// Copies `src` into the loan at `offset` (the other bytes of the loan keep what was written to them).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use shmbus_ring::*;
    /// # let topic = Topic::heap(&Geometry::new(8, 256, 0, 1, 1, 0), 0)?;
    /// # let mut sub = Subscriber::attach(&topic, 0, SubscriberOptions::default(), Arc::new(PollWaiter), &|_| false)?;
    /// let mut p = Publisher::attach(&topic, 0, Arc::new(PollWaiter), PublisherOptions::default())?;
    /// let mut loan = p.try_loan(11)?;
    /// loan.write_at(0, b"hello");
    /// loan.write_at(5, b" world");
    /// loan.commit();
    /// assert_eq!(sub.try_recv()?.payload(), b"hello world");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Panics
    /// If the range goes past the end of the loan.
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        assert!(offset.checked_add(src.len()).is_some_and(|e| e <= self.r.len), "write past the end of the loan");
        self.publisher.topic.inner.data.write_bytes(self.r.at + offset, src);
    }

    /// Fills the whole loan with `src`, which must be exactly as long as the loan (like
    /// [`slice::copy_from_slice`]).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use shmbus_ring::*;
    /// # let topic = Topic::heap(&Geometry::new(8, 256, 0, 1, 1, 0), 0)?;
    /// # let mut sub = Subscriber::attach(&topic, 0, SubscriberOptions::default(), Arc::new(PollWaiter), &|_| false)?;
    /// let mut p = Publisher::attach(&topic, 0, Arc::new(PollWaiter), PublisherOptions::default())?;
    /// let mut loan = p.try_loan(5)?;
    /// loan.copy_from_slice(b"hello");
    /// loan.commit();
    /// assert_eq!(sub.try_recv()?.payload(), b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Panics
    /// If `src.len()` is not the loan's length.
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        assert_eq!(src.len(), self.r.len, "copy_from_slice: source and loan lengths differ");
        self.publisher.topic.inner.data.store_bytes(self.r.at, src);
    }

    /// Lets `f` fill a private buffer as long as the loan (zeroed first), then copies it into the loan; returns
    /// what `f` returns. For writers that need a `&mut [u8]` (serializers, `Read::read_exact`): the buffer is the
    /// publisher's own scratch memory, reused across loans, never the shared memory itself.
    ///
    /// There is deliberately no `&mut [u8]` view of the loaned shared memory (issue 8, defect 6): lossy readers
    /// in other processes may load those bytes while they are written, and a plain write racing their atomic
    /// loads is a data race. [`Loan::write_at`] and [`Loan::copy_from_slice`] write it directly with atomic word
    /// stores and need no scratch copy.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use shmbus_ring::*;
    /// # let topic = Topic::heap(&Geometry::new(8, 256, 0, 1, 1, 0), 0)?;
    /// # let mut sub = Subscriber::attach(&topic, 0, SubscriberOptions::default(), Arc::new(PollWaiter), &|_| false)?;
    /// let mut p = Publisher::attach(&topic, 0, Arc::new(PollWaiter), PublisherOptions::default())?;
    /// let mut loan = p.try_loan(4)?;
    /// loan.with_buffer(|buf| buf.copy_from_slice(&7u32.to_le_bytes()));
    /// loan.commit();
    /// assert_eq!(sub.try_recv()?.payload(), 7u32.to_le_bytes());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_buffer<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut buf = std::mem::take(&mut self.publisher.scratch);
        buf.clear();
        buf.resize(self.r.len, 0);
        let out = f(&mut buf);
        self.publisher.topic.inner.data.store_bytes(self.r.at, &buf);
        self.publisher.scratch = buf;
        out
    }

    /// **Testing hook, not a stable API.** Byte offset of the loan's first byte in the topic's data object (the
    /// property tests check that loans lie inside an entry or their publisher's region).
    #[doc(hidden)]
    pub fn data_offset(&self) -> usize {
        self.r.at
    }

    /// Publishes the message; returns its sequence number.
    pub fn commit(mut self) -> u64 {
        self.done = true;
        self.publisher.commit_reservation(self.r, State::Published, true)
    }

    /// Publishes only the first `len` bytes (`len` no larger than the loan).
    pub fn commit_len(mut self, len: usize) -> u64 {
        assert!(len <= self.r.len, "commit_len beyond the loan");
        self.r.len = len;
        self.done = true;
        self.publisher.commit_reservation(self.r, State::Published, true)
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.publisher.commit_reservation(self.r, State::Skipped, true);
        }
    }
}
