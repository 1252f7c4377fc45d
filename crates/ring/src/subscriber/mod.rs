//! Subscribing: lossless and lossy cursors, consumer-group members, in-place and copied reads.
//!
//! * A **lossless** subscriber gates publishers with its cursor. It reads a message in place and moves its cursor
//!   past it (Release, tag CURSOR) when the [`Message`] is dropped.
//! * A **lossy** subscriber never gates. It copies each message out with atomic loads and re-checks the stamp
//!   and the publisher's frontier afterwards (seqlock, tag SEQLOCK), so it never returns a torn message. When it
//!   is lapped it reports the exact number of positions passed over in [`RecvError::Lagged`] and resumes at the
//!   oldest message still available.
//! * A **group member** takes messages from its group's claim cursor; each message goes to one member. The
//!   member's held position gates publishers until it releases the message.
//!
//! One file per protocol: `ordered` (lossless and lossy cursors), `member` (consumer groups), `message` (the
//! received message and reading one entry), `arm` (the re-check before sleeping, and arming without sleeping).

mod arm;
mod member;
mod message;
mod ordered;

pub use message::Message;

use crate::error::{AttachError, RecvError};
use crate::layout::*;
use crate::stamp::{cursor, lap_of, Stamp, State};
use crate::sync::{AtomicU64, Ordering};
use crate::topic::{Topic, ATTACH_TIMEOUT};
use crate::wait::{expired, sleep_once, Backoff, IdleStrategy, Step, Target, Waiter};
use message::Found;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

/// How a subscriber consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Gates publishers; receives every message (the default).
    #[default]
    Lossless,
    /// Never gates; reports `Lagged(n)` when lapped.
    Lossy,
    /// Member of consumer group `n` (the group must be open): shares the group's messages with other members.
    Group(usize),
}

/// Options of a subscriber handle.
#[derive(Clone, Copy, Debug, Default)]
pub struct SubscriberOptions {
    /// Consumption mode.
    pub mode: Mode,
    /// Start from the oldest retained message instead of the next one.
    pub from_oldest: bool,
    /// How `recv` waits on an empty topic.
    pub idle: IdleStrategy,
}

/// A subscriber bound to one subscriber slot. `Send` but not `Sync`.
pub struct Subscriber {
    topic: Topic,
    slot: usize,
    waiter: Arc<dyn Waiter>,
    mode: Mode,
    idle: IdleStrategy,
    cursor: u64,
    /// The tail as last loaded: entries below it are claimed (and, on a single-producer topic, published), so the
    /// entry at the cursor is looked at only when this is past it (see `ordered::Subscriber::tail_says_more`).
    seen_tail: u64,
    /// Polls in a row that found the tail at the cursor (every `TAIL_RECHECK`th looks at the entry anyway).
    quiet_polls: u32,
    unpublished: u32,
    cursor_batch: u32,
    verify_until: u64,
    /// Demoted while holding a message: the next receive reports [`RecvError::Demoted`].
    demotion_unreported: bool,
    buf: Vec<u8>,
    received: u64,
    lagged: u64,
    skipped: u64,
    bytes: u64,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("slot", &self.slot)
            .field("mode", &self.mode)
            .field("cursor", &self.cursor)
            .finish()
    }
}

enum Poll {
    Ready(Found),
    Empty,
}

impl Subscriber {
    /// Attaches to subscriber slot `slot` (assigned by the daemon's lease). The readers object must be writable;
    /// the data object may be read-only. `is_dead(p)` tells whether publisher slot `p`'s holder is proven dead
    /// (attaching a lossless cursor waits out sends already in progress, except a dead publisher's).
    pub fn attach(
        topic: &Topic,
        slot: usize,
        opts: SubscriberOptions,
        waiter: Arc<dyn Waiter>,
        is_dead: &dyn Fn(usize) -> bool,
    ) -> Result<Subscriber, AttachError> {
        let geo = topic.geometry();
        topic.check_attach(slot, geo.max_subscribers, "subscriber slot out of range", &topic.inner.readers)?;
        let off = *topic.off();
        let base = off.sub_slot(slot);
        let cur = topic.readers_word(base + S_CURSOR);
        if cursor::has(cur.load(Ordering::Acquire), cursor::ACTIVE) {
            return Err(AttachError::Slot("subscriber slot already in use"));
        }
        let group_flag = match opts.mode {
            Mode::Group(g) => {
                if !topic.group_is_open(g) {
                    return Err(AttachError::Slot("consumer group is not open"));
                }
                ((g as u64) + 1) << FLAG_GROUP_SHIFT
            }
            _ => 0,
        };
        for o in [S_RECEIVED, S_LAGGED, S_SKIPPED, S_BYTES, S_HOLD] {
            topic.readers_word(base + o).store(0, Ordering::Relaxed);
        }
        topic.readers_word(base + S_FLAGS).store(group_flag, Ordering::Relaxed);
        let (in_use, bit) = topic.readers_mask(R_IN_USE, slot);
        // Release (tag IN_USE): the slot's flags are visible to a publisher that sees the bit.
        in_use.fetch_or(bit, Ordering::Release);
        let tail = topic.tail();
        let start = if opts.from_oldest { topic.oldest_retained(tail) } else { tail };
        let (cursor_pos, verify_until) = match opts.mode {
            Mode::Lossless => {
                match topic.publish_gating_cursor(
                    cur,
                    cursor::ACTIVE | cursor::GATING,
                    start,
                    &*waiter,
                    is_dead,
                    ATTACH_TIMEOUT,
                ) {
                    Ok(v) => v,
                    Err(e) => {
                        in_use.fetch_and(!bit, Ordering::Release);
                        return Err(e);
                    }
                }
            }
            Mode::Lossy => {
                cur.store(cursor::pack(cursor::ACTIVE, start), Ordering::Release);
                (start, start)
            }
            Mode::Group(g) => {
                let next = topic.readers_word(off.group(g) + G_NEXT).load(Ordering::Acquire);
                let c = cursor::expand(next, tail);
                cur.store(cursor::pack(cursor::ACTIVE, c), Ordering::Release);
                (c, c)
            }
        };
        Ok(Subscriber {
            topic: topic.clone(),
            slot,
            waiter,
            mode: opts.mode,
            idle: opts.idle,
            cursor: cursor_pos,
            seen_tail: cursor_pos,
            quiet_polls: 0,
            unpublished: 0,
            cursor_batch: (geo.capacity / 16).clamp(1, 32),
            verify_until,
            demotion_unreported: false,
            buf: Vec::new(),
            received: 0,
            lagged: 0,
            skipped: 0,
            bytes: 0,
            _not_sync: PhantomData,
        })
    }

    /// The subscriber slot.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The current mode (a demoted lossless subscriber reports `Lossy`).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The next sequence this subscriber will look at.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// The topic this subscriber reads.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    fn slot_word(&self, o: usize) -> &AtomicU64 {
        &self.slot_line()[o / 8]
    }

    /// This subscriber's slot line, checked once for several of its words.
    #[inline(always)]
    fn slot_line(&self) -> &[AtomicU64; LINE / 8] {
        self.topic.inner.readers.words(self.topic.off().sub_slot(self.slot))
    }

    /// Takes the next message if one is available now.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Message<'_>, RecvError> {
        match self.poll()? {
            Poll::Ready(f) => Ok(self.message(f)),
            Poll::Empty if self.topic.is_closed() => self.after_close(),
            Poll::Empty => Err(RecvError::Empty),
        }
    }

    /// Waits for the next message as long as needed.
    #[inline]
    pub fn recv(&mut self) -> Result<Message<'_>, RecvError> {
        self.recv_deadline(None)
    }

    /// Waits for the next message until `timeout` passes (a timeout past any `Instant`: for ever).
    pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> Result<Message<'_>, RecvError> {
        self.recv_deadline(Instant::now().checked_add(timeout))
    }

    /// Waits for the next message until `deadline` (`None`: forever).
    #[inline]
    pub fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<Message<'_>, RecvError> {
        // The first look inline, the waiting loop out of line: a message handed up through out-of-line calls was
        // copied with 16-byte loads of 8-byte stores at each level, failed store-to-load forwards that wait for
        // every older store (a fifth of a 64-byte receive cross-process; issue 10).
        if let Poll::Ready(f) = self.poll()? {
            return Ok(self.message(f));
        }
        self.recv_waiting(deadline)
    }

    #[inline(never)]
    fn recv_waiting(&mut self, deadline: Option<Instant>) -> Result<Message<'_>, RecvError> {
        let mut backoff = Backoff::new(self.idle);
        loop {
            if let Poll::Ready(f) = self.poll()? {
                return Ok(self.message(f));
            }
            if self.topic.is_closed() {
                return self.after_close();
            }
            if expired(deadline) {
                return Err(RecvError::Timeout);
            }
            if let Step::Sleep = backoff.next() {
                let (topic, waiter) = (self.topic.clone(), self.waiter.clone());
                let mask = topic.readers_mask(R_DATA_WAITERS, self.slot);
                // The re-check: a message (`Ready`), or the topic found closed (`Empty`).
                let woke = sleep_once(&*waiter, Target::Subscriber(self.slot), mask, deadline, || self.recheck())?;
                match woke {
                    Some(Poll::Ready(f)) => return Ok(self.message(f)),
                    Some(Poll::Empty) => return self.after_close(),
                    None => {}
                }
            }
        }
    }

    /// The topic was found closed after a poll that found nothing. That poll may have looked just before the last
    /// messages were published; the closed flag, read with Acquire (tag CLOSE), makes everything published before
    /// the close visible, so poll once more rather than lose them. (Found by loom, `group_members_race_publisher`:
    /// a message published right before the close was reported `Closed` to every member.)
    fn after_close(&mut self) -> Result<Message<'_>, RecvError> {
        match self.poll()? {
            Poll::Ready(f) => Ok(self.message(f)),
            Poll::Empty => Err(RecvError::Closed),
        }
    }

    /// Receives the next message into a new vector (waiting as `recv` does); returns it with its sequence.
    pub fn recv_vec(&mut self, deadline: Option<Instant>) -> Result<(u64, Vec<u8>), RecvError> {
        let m = self.recv_deadline(deadline)?;
        Ok((m.seq(), m.payload().to_vec()))
    }

    #[inline(always)]
    fn poll(&mut self) -> Result<Poll, RecvError> {
        match self.mode {
            Mode::Lossless => {
                // Relaxed: our own slot's flags; the daemon's demotion becomes visible within a few polls.
                // (A demotion missed here is caught before anything is lent, see `raise_hold`.)
                let flags = self.slot_word(S_FLAGS).load(Ordering::Relaxed);
                if flags & FLAG_DEMOTE != 0 {
                    self.acknowledge_demotion();
                    return Err(RecvError::Demoted);
                }
                self.poll_ordered(false)
            }
            Mode::Lossy => {
                if std::mem::take(&mut self.demotion_unreported) {
                    return Err(RecvError::Demoted);
                }
                self.poll_ordered(true)
            }
            Mode::Group(g) => self.poll_member(g),
        }
    }

    /// Ends our hold on `seq` (called when a `Message` is dropped).
    fn release(&mut self, seq: u64, len: usize) {
        match self.mode {
            Mode::Lossless => {
                self.count_received(len, false);
                // Release (tag HOLD): our reads of the message in place happen before `demote`, seeing the word
                // lowered, lets publishers overwrite it.
                let line = self.slot_line();
                line[S_HOLD / 8].store(0, Ordering::Release);
                // Relaxed: a demotion that came while we held the message is normally seen here and takes effect
                // now; one missed here is seen at the next poll, or by the owner's next `demote`, which finds the
                // hold word lowered (see `Admin::demote`).
                if line[S_FLAGS / 8].load(Ordering::Relaxed) & FLAG_DEMOTE != 0 {
                    self.cursor = seq.wrapping_add(1);
                    self.acknowledge_demotion();
                    self.demotion_unreported = true;
                } else {
                    self.advance(seq.wrapping_add(1), true);
                }
            }
            Mode::Lossy => self.count_received(len, true),
            Mode::Group(_) => {
                self.count_received(len, true);
                self.release_unread(seq);
            }
        }
    }

    /// Ends a member's hold on `seq` without counting it received (it was passed, not read).
    pub(super) fn release_unread(&mut self, seq: u64) {
        match self.mode {
            Mode::Lossless | Mode::Lossy => {}
            Mode::Group(g) => {
                let off = *self.topic.off();
                let done = Stamp::pack(lap_of(seq, off.shift), State::Published, self.slot as u32);
                // Release: our reads of the message happen before the ledger says done.
                self.topic.readers_word(off.ledger(g, seq)).store(done, Ordering::Release);
                self.cursor = seq.wrapping_add(1);
                // Release (tag CURSOR): the hold ends after our reads.
                self.slot_word(S_CURSOR).store(cursor::pack(cursor::ACTIVE, self.cursor), Ordering::Release);
                self.topic.wake_publishers(&*self.waiter);
            }
        }
    }

    /// Before a lossless subscriber lends entry `c` in place: raises the hold word, then looks for a demotion.
    /// `true` means demoted: nothing may be lent (publishers may already be reusing the entry).
    ///
    /// The hold word and the demote flag are a store→load pair on each side (Dekker): we store the hold word and
    /// load the flags, `demote` stores the flag and loads the hold word, with the light barrier here and the heavy
    /// one there (tag HOLD). So either we see the demotion now, or `demote` sees us holding and leaves the gate
    /// to our acknowledgement when the message is dropped. (Issue 8, defect 2: `demote` used to release the gate
    /// at once, and the next send overwrote a message a subscriber was reading in place.)
    #[inline(always)]
    pub(super) fn raise_hold(&self) -> bool {
        // Relaxed: ordered before the flags load below by the light barrier (tag HOLD).
        let line = self.slot_line();
        line[S_HOLD / 8].store(1, Ordering::Relaxed);
        self.topic.light();
        // Relaxed: ordered after the hold store by the light/heavy barrier pair (tag HOLD).
        line[S_FLAGS / 8].load(Ordering::Relaxed) & FLAG_DEMOTE != 0
    }

    /// Takes a demotion the daemon requested: from now on we read lossy, our cursor stops gating, and we
    /// acknowledge, so the gate scan ignores us even if it reads an older cursor word. We hold nothing in place.
    pub(super) fn acknowledge_demotion(&mut self) {
        self.mode = Mode::Lossy;
        self.store_received();
        self.unpublished = 0;
        // Release (tag CURSOR): our reads of the entries before the cursor happen before a publisher overwrites
        // them.
        self.slot_word(S_CURSOR).store(cursor::pack(cursor::ACTIVE, self.cursor), Ordering::Release);
        // Release (tag HOLD): lowered after our last read in place.
        self.slot_word(S_HOLD).store(0, Ordering::Release);
        // Release (tag ACK): pairs with the gate scan's Acquire load of the flags; our reads in place happen
        // before a publisher that ignores us overwrites the entry.
        self.slot_word(S_FLAGS).fetch_or(FLAG_DEMOTED_ACK, Ordering::Release);
        self.topic.wake_publishers(&*self.waiter);
    }

    /// Counts a message received; stored for statistics readers now, or (a lossless reader) with its next cursor
    /// publication, so the counters lag the reader by at most the cursor batch and are exact whenever it has
    /// caught up (two stores per message less on the hot path; issue 10).
    #[inline]
    fn count_received(&mut self, len: usize, store_now: bool) {
        self.received = self.received.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(len as u64);
        if store_now {
            self.store_received();
        }
    }

    /// Stores the received counters for statistics readers.
    pub(super) fn store_received(&self) {
        // Relaxed: statistics, single writer.
        let line = self.slot_line();
        line[S_RECEIVED / 8].store(self.received, Ordering::Relaxed);
        line[S_BYTES / 8].store(self.bytes, Ordering::Relaxed);
    }

    /// Where this subscriber's private copy buffer lies (start address and length): payloads handed out as copies
    /// (lossy reads, attach-window reads) point into it. A testing hook for the untrusted-memory suite, which
    /// checks that every other payload lies in one entry or one region of the mapped object.
    #[doc(hidden)]
    pub fn copy_buffer(&self) -> (usize, usize) {
        (self.buf.as_ptr() as usize, self.buf.len())
    }

    /// Detaches: the slot stops gating at once and becomes free.
    pub fn detach(self) {}
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.store_received();
        // Our reads happen before publishers may overwrite what we were holding (the Release store in
        // `vacate_subscriber`).
        self.topic.vacate_subscriber(self.slot, &*self.waiter);
    }
}
