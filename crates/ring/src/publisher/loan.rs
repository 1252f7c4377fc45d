//! Zero-copy loans: a claimed message written in place in shared memory, then committed or aborted.

use super::{Publisher, Reservation};
use crate::stamp::State;

/// A zero-copy loan: shared memory reserved for one message. Write it, then [`Loan::commit`].
/// Dropping it unpublished aborts the claim with a skip marker that readers pass over.
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

    /// The loaned bytes (their previous contents are unspecified).
    #[cfg(not(loom))]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let p = self.publisher.topic.inner.data.ptr_at(self.r.at);
        // SAFETY: the range was reserved for this claim (inline in our claimed entry, or allocated in our own
        // region after the gate let it be reclaimed); no reader trusts it before the stamp is published, and
        // lossy readers only copy it with atomic loads and validate. It lies inside the mapping (validated
        // geometry) and `&mut self` makes the slice unique in this process.
        unsafe { std::slice::from_raw_parts_mut(p, self.r.len) }
    }

    /// Copies `src` into the loan at `offset`.
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        assert!(offset + src.len() <= self.r.len, "write past the end of the loan");
        #[cfg(not(loom))]
        self.as_mut_slice()[offset..offset + src.len()].copy_from_slice(src);
        #[cfg(loom)]
        {
            assert_eq!(offset, 0, "loom models write loans whole");
            self.publisher.topic.inner.data.store_bytes(self.r.at, src);
        }
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
