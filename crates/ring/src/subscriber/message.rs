//! A received message, and reading one index entry: validating its fields and finding its payload.

use super::{Mode, Poll, Subscriber};
use crate::error::RecvError;
use crate::layout::*;
use crate::stamp::seq_diff;
use crate::sync::Ordering;

/// A received message: metadata plus the payload (in place for lossless readers, copied for lossy ones).
/// Dropping it releases the message (a lossless subscriber's cursor moves on, a group member's hold ends).
pub struct Message<'a> {
    sub: &'a mut Subscriber,
    seq: u64,
    publisher: u32,
    timestamp: u64,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the only field that is not `Send` by itself is `ptr`, which points into the subscriber's copy buffer or
// its mapped data object (`Region` is `Send + Sync`), valid for as long as the `&'a mut Subscriber` borrow this
// message holds; nothing about it is tied to the thread that received it. Moving the message moves that exclusive
// borrow along, which is sound exactly when `&'a mut Subscriber` is `Send` (the bound). (Not `Sync`: not needed.)
unsafe impl<'a> Send for Message<'a> where &'a mut Subscriber: Send {}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (seq, publisher, len) = (self.seq, self.publisher, self.len);
        f.debug_struct("Message").field("seq", &seq).field("publisher", &publisher).field("len", &len).finish()
    }
}

impl Message<'_> {
    /// Ring sequence number (one total order across publishers).
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Publisher slot that published it.
    pub fn publisher(&self) -> u32 {
        self.publisher
    }
    /// Publish timestamp in nanoseconds (the publisher's clock).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
    /// Payload length.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr..ptr+len` was bounds-checked against the validated geometry; it points either into the
        // subscriber's own copy buffer (not touched while this message borrows the subscriber) or into the
        // mapped data object at a message the protocol keeps from being overwritten until this message is dropped
        // (our gating cursor or held position covers it). The mapping outlives `self` (the subscriber holds it).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        self.sub.release(self.seq, self.len);
    }
}

/// A message found in the ring, before it is handed out as a [`Message`].
pub(super) struct Found {
    pub(super) seq: u64,
    pub(super) publisher: u32,
    pub(super) timestamp: u64,
    pub(super) ptr: *const u8,
    pub(super) len: usize,
}

impl Subscriber {
    #[inline(always)]
    pub(super) fn message(&mut self, f: Found) -> Message<'_> {
        Message { seq: f.seq, publisher: f.publisher, timestamp: f.timestamp, ptr: f.ptr, len: f.len, sub: self }
    }

    /// Validates entry `seq`'s fields and finds its payload. Returns the message and, for region payloads,
    /// (publisher, logical position).
    #[inline(always)]
    pub(super) fn locate(&self, seq: u64) -> Result<(Found, Option<(usize, u64)>), RecvError> {
        let off = *self.topic.off();
        let geo = off.geo;
        let e = off.entry(seq);
        let data = &self.topic.inner.data;
        // Relaxed: ordered after the Acquire stamp load (lossless) or validated afterwards (lossy).
        let h = data.words::<{ ENTRY_HEADER / 8 }>(e);
        let meta = h[E_META / 8].load(Ordering::Relaxed);
        let pos = h[E_POS / 8].load(Ordering::Relaxed);
        let timestamp = h[E_TIME / 8].load(Ordering::Relaxed);
        let len = (meta & 0xffff_ffff) as usize;
        let publisher = ((meta >> 32) & 0xffff) as u32;
        if len > geo.max_message as usize {
            return Err(RecvError::Corrupted { what: "message length beyond the topic maximum" });
        }
        if publisher >= geo.max_publishers {
            return Err(RecvError::Corrupted { what: "publisher id out of range" });
        }
        let (at, region) = if meta & META_IN_REGION == 0 {
            if len > geo.inline_bytes() {
                return Err(RecvError::Corrupted { what: "inline message longer than an entry" });
            }
            (e + E_INLINE, None)
        } else {
            let r = geo.region_bytes;
            if r == 0 {
                return Err(RecvError::Corrupted { what: "region payload on a topic without regions" });
            }
            let phys = pos % r;
            // Publishers only allocate word-aligned positions; an unaligned one is corruption and would make the
            // lossy copy's atomic word loads misaligned (found by `tests/untrusted.rs`).
            if !phys.is_multiple_of(8) {
                return Err(RecvError::Corrupted { what: "payload position not word-aligned" });
            }
            if phys + (len as u64).div_ceil(8) * 8 > r {
                return Err(RecvError::Corrupted { what: "payload beyond its region" });
            }
            (off.region(publisher as usize) + phys as usize, Some((publisher as usize, pos)))
        };
        #[cfg(not(loom))]
        let ptr = data.ptr_at(at);
        #[cfg(loom)]
        let ptr = at as *const u8;
        Ok((Found { seq, publisher, timestamp, ptr, len }, region))
    }

    /// Under loom there is no address space to point into: in-place reads become copies.
    #[cfg(loom)]
    pub(super) fn materialize(&mut self, f: &mut Found) {
        self.buf.resize(f.len, 0);
        self.topic.inner.data.read_in_place(f.ptr as usize, &mut self.buf[..f.len]);
        f.ptr = self.buf.as_ptr();
    }

    #[cfg(not(loom))]
    pub(super) fn materialize(&mut self, _f: &mut Found) {}

    /// Hands out message `c`, which this member now holds; a corrupted entry ends the hold at once.
    ///
    /// A region payload is checked against its publisher's frontier first, as a lossless subscriber checks the
    /// messages below its attach point: a group opened after the ring lapped (from the oldest message, or a
    /// message claimed while it opened) can find an entry whose payload bytes a later message has since
    /// reclaimed. That message is reported as `Lagged(1)` and passed, never handed out with another message's
    /// bytes. Once the group gates, nothing it has not passed is reclaimed, so the check then always holds.
    pub(super) fn deliver_member(&mut self, c: u64) -> Result<Poll, RecvError> {
        match self.locate(c) {
            Ok((_, region)) if !self.payload_intact(region) => {
                self.release_unread(c);
                Err(self.lag(1))
            }
            Ok((mut f, region)) => {
                // Acquire (tag GROUP_VERIFY): pairs with the Release store in `Admin::open_group`. (Only members
                // deliver group messages; any other mode has nothing to verify.)
                let verify = match self.mode {
                    Mode::Group(g) => {
                        self.topic.readers_word(self.topic.off().group(g) + G_VERIFY).load(Ordering::Acquire)
                    }
                    _ => c,
                };
                if region.is_some() && seq_diff(c, verify) < 0 {
                    // Below the tail at the group's opening the payload may already be free in its publisher's
                    // books: copy it and check it, never lend it in place (as a lossless reader does).
                    if !self.copy_checked(&mut f, region) {
                        self.release_unread(c);
                        return Err(self.lag(1));
                    }
                    return Ok(Poll::Ready(f));
                }
                self.materialize(&mut f);
                Ok(Poll::Ready(f))
            }
            Err(e) => {
                self.release(c, 0);
                Err(e)
            }
        }
    }
}
