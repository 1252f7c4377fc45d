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

use crate::error::{AttachError, RecvError};
use crate::layout::*;
use crate::stamp::{cursor, lap_diff, lap_of, seq_diff, Stamp, State};
use crate::sync::{fence, AtomicU64, Ordering};
use crate::topic::{Topic, ATTACH_TIMEOUT};
use crate::wait::{expired, sleep_deadline, Backoff, IdleStrategy, Step, Target, Waiter};
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

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.seq)
            .field("publisher", &self.publisher)
            .field("len", &self.len)
            .finish()
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

/// A subscriber bound to one subscriber slot. `Send` but not `Sync`.
pub struct Subscriber {
    topic: Topic,
    slot: usize,
    waiter: Arc<dyn Waiter>,
    mode: Mode,
    idle: IdleStrategy,
    cursor: u64,
    unpublished: u32,
    cursor_batch: u32,
    verify_until: u64,
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

struct Found {
    seq: u64,
    publisher: u32,
    timestamp: u64,
    ptr: *const u8,
    len: usize,
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
        if slot >= geo.max_subscribers as usize {
            return Err(AttachError::Slot("subscriber slot out of range"));
        }
        if !topic.inner.readers.is_writable() {
            return Err(AttachError::ReadOnly);
        }
        if topic.is_closed() {
            return Err(AttachError::Closed);
        }
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
        for o in [S_RECEIVED, S_LAGGED, S_SKIPPED, S_BYTES] {
            topic.readers_word(base + o).store(0, Ordering::Relaxed);
        }
        topic.readers_word(base + S_FLAGS).store(group_flag, Ordering::Relaxed);
        // Release (tag IN_USE): the slot's flags are visible to a publisher that sees the bit.
        topic.readers_word(R_IN_USE + 8 * (slot / 64)).fetch_or(1 << (slot % 64), Ordering::Release);
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
                        topic
                            .readers_word(R_IN_USE + 8 * (slot / 64))
                            .fetch_and(!(1 << (slot % 64)), Ordering::Release);
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
            unpublished: 0,
            cursor_batch: (geo.capacity / 16).clamp(1, 32),
            verify_until,
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
        self.topic.readers_word(self.topic.off().sub_slot(self.slot) + o)
    }

    /// Takes the next message if one is available now.
    pub fn try_recv(&mut self) -> Result<Message<'_>, RecvError> {
        match self.poll()? {
            Poll::Ready(f) => Ok(self.message(f)),
            Poll::Empty if self.topic.is_closed() => self.after_close(),
            Poll::Empty => Err(RecvError::Empty),
        }
    }

    /// Waits for the next message as long as needed.
    pub fn recv(&mut self) -> Result<Message<'_>, RecvError> {
        self.recv_deadline(None)
    }

    /// Waits for the next message until `timeout` passes.
    pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> Result<Message<'_>, RecvError> {
        self.recv_deadline(Some(Instant::now() + timeout))
    }

    /// Waits for the next message until `deadline` (`None`: forever).
    pub fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<Message<'_>, RecvError> {
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
                let bit = 1u64 << (self.slot % 64);
                let topic = self.topic.clone();
                let mask = topic.readers_word(R_DATA_WAITERS + 8 * (self.slot / 64));
                self.waiter.drain(Target::Subscriber(self.slot));
                // Relaxed RMW: ordered before the re-check by the heavy barrier (pairs with the publisher's light
                // barrier between its stamp store and its mask load).
                mask.fetch_or(bit, Ordering::Relaxed);
                self.waiter.heavy();
                if let Poll::Ready(f) = self.poll()? {
                    mask.fetch_and(!bit, Ordering::Relaxed);
                    return Ok(self.message(f));
                }
                if self.topic.is_closed() {
                    mask.fetch_and(!bit, Ordering::Relaxed);
                    return self.after_close();
                }
                self.waiter.wait_until(Target::Subscriber(self.slot), sleep_deadline(deadline));
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

    fn message(&mut self, f: Found) -> Message<'_> {
        Message { seq: f.seq, publisher: f.publisher, timestamp: f.timestamp, ptr: f.ptr, len: f.len, sub: self }
    }

    fn poll(&mut self) -> Result<Poll, RecvError> {
        match self.mode {
            Mode::Lossless => {
                // Relaxed: our own slot's flags; the daemon's demotion becomes visible within a few polls.
                let flags = self.slot_word(S_FLAGS).load(Ordering::Relaxed);
                if flags & FLAG_DEMOTE != 0 {
                    self.mode = Mode::Lossy;
                    self.slot_word(S_CURSOR).store(cursor::pack(cursor::ACTIVE, self.cursor), Ordering::Release);
                    self.slot_word(S_FLAGS).fetch_or(FLAG_DEMOTED_ACK, Ordering::Relaxed);
                    self.topic.wake_publishers(&*self.waiter);
                    return Err(RecvError::Demoted);
                }
                self.poll_ordered(false)
            }
            Mode::Lossy => self.poll_ordered(true),
            Mode::Group(g) => self.poll_member(g),
        }
    }

    /// Lossless and lossy reading at `self.cursor`.
    fn poll_ordered(&mut self, lossy: bool) -> Result<Poll, RecvError> {
        let off = *self.topic.off();
        loop {
            let c = self.cursor;
            let stamp_word = self.topic.data_word(off.entry(c) + E_STAMP);
            // Acquire (tag STAMP): pairs with the publisher's Release of the stamp.
            let w1 = stamp_word.load(Ordering::Acquire);
            let s = Stamp::unpack(w1);
            let d = lap_diff(s.lap, lap_of(c, off.shift));
            if d < 0 {
                return self.caught_up();
            }
            if d > 0 {
                return Err(self.resync(c));
            }
            match s.state {
                State::Claimed => return self.caught_up(),
                State::Invalid => return Err(RecvError::Corrupted { what: "invalid entry state" }),
                State::Skipped => {
                    self.skipped = self.skipped.wrapping_add(1);
                    self.slot_word(S_SKIPPED).store(self.skipped, Ordering::Relaxed);
                    self.advance(c.wrapping_add(1), !lossy);
                    continue;
                }
                State::Published => {}
            }
            let located = self.locate(c);
            if !lossy {
                let mut f = located?;
                self.materialize(&mut f.0);
                if f.1.is_some() && seq_diff(c, self.verify_until) < 0 && !self.payload_intact(f.1) {
                    // Reclaimed by a publisher that had not yet seen us attach: report it, never lose silently.
                    self.advance(c.wrapping_add(1), true);
                    return Err(self.lag(1));
                }
                return Ok(Poll::Ready(f.0));
            }
            // Lossy: copy with atomic loads, then validate (tag SEQLOCK).
            let f = match located {
                Ok(f) => f,
                Err(e) => {
                    if stamp_word.load(Ordering::Acquire) != w1 {
                        return Err(self.resync(c));
                    }
                    return Err(e);
                }
            };
            let (mut found, region) = f;
            self.buf.resize(found.len, 0);
            let at = found.ptr as usize - self.data_base();
            self.topic.inner.data.load_bytes(at, &mut self.buf[..found.len]);
            // Acquire fence (tag SEQLOCK): if we read any byte of a newer message, the re-loads below see its
            // claim or frontier.
            fence(Ordering::Acquire);
            if stamp_word.load(Ordering::Relaxed) != w1 {
                return Err(self.resync(c));
            }
            if region.is_some() && !self.payload_intact(region) {
                self.advance(c.wrapping_add(1), false);
                return Err(self.lag(1));
            }
            found.ptr = self.buf.as_ptr();
            self.advance(c.wrapping_add(1), false);
            return Ok(Poll::Ready(found));
        }
    }

    fn data_base(&self) -> usize {
        #[cfg(not(loom))]
        {
            self.topic.inner.data.ptr_at(0) as usize
        }
        #[cfg(loom)]
        {
            0
        }
    }

    /// Validates entry `seq`'s fields and finds its payload. Returns the message and, for region payloads,
    /// (publisher, logical position).
    fn locate(&self, seq: u64) -> Result<(Found, Option<(usize, u64)>), RecvError> {
        let off = *self.topic.off();
        let geo = off.geo;
        let e = off.entry(seq);
        let data = &self.topic.inner.data;
        // Relaxed: ordered after the Acquire stamp load (lossless) or validated afterwards (lossy).
        let meta = data.word(e + E_META).load(Ordering::Relaxed);
        let pos = data.word(e + E_POS).load(Ordering::Relaxed);
        let timestamp = data.word(e + E_TIME).load(Ordering::Relaxed);
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
        let ptr = data.ptr_at(at) as *const u8;
        #[cfg(loom)]
        let ptr = at as *const u8;
        Ok((Found { seq, publisher, timestamp, ptr, len }, region))
    }

    /// Whether a region payload at logical `pos` of publisher `p` has not been overwritten yet.
    fn payload_intact(&self, region: Option<(usize, u64)>) -> bool {
        let Some((p, pos)) = region else { return true };
        let off = *self.topic.off();
        let r = off.geo.region_bytes;
        // Relaxed: ordered by the Acquire fence before it (tag SEQLOCK) or by the attach grace period.
        let frontier = self.topic.data_word(off.pub_slot(p) + P_FRONTIER).load(Ordering::Relaxed);
        seq_diff(frontier, pos.wrapping_add(r)) <= 0
    }

    fn advance(&mut self, to: u64, gating: bool) {
        self.cursor = to;
        if gating && self.unpublished + 1 < self.cursor_batch && self.next_is_ready(to) {
            // A lossless cursor is published every `cursor_batch` messages and whenever we catch up (the next
            // entry is not published yet): publishers see our progress a little later while more messages are
            // waiting for us (they only over-gate), and the cursor's cache line stops bouncing between us and a
            // publisher that polls it on a full ring. A subscriber that consumed everything never holds anyone.
            self.unpublished += 1;
            return;
        }
        self.publish_cursor(gating);
    }

    /// Whether the entry for `seq` already holds its message (or skip marker): more is waiting for us.
    fn next_is_ready(&self, seq: u64) -> bool {
        let off = self.topic.off();
        // Relaxed: a hint only; reading the entry later goes through the Acquire load in `poll_ordered`.
        let s = Stamp::unpack(self.topic.data_word(off.entry(seq) + E_STAMP).load(Ordering::Relaxed));
        lap_diff(s.lap, lap_of(seq, off.shift)) == 0 && s.state != State::Claimed
    }

    /// Stores the cursor word now (and wakes publishers waiting for space when it gates).
    fn publish_cursor(&mut self, gating: bool) {
        self.unpublished = 0;
        let flags = if gating { cursor::ACTIVE | cursor::GATING } else { cursor::ACTIVE };
        // Release (tag CURSOR): our reads of the entries before the cursor happen before a publisher overwrites
        // them.
        self.slot_word(S_CURSOR).store(cursor::pack(flags, self.cursor), Ordering::Release);
        if gating {
            self.topic.wake_publishers(&*self.waiter);
        }
    }

    /// Nothing to read: make sure publishers see everything we released.
    fn caught_up(&mut self) -> Result<Poll, RecvError> {
        if self.unpublished > 0 {
            self.publish_cursor(self.mode == Mode::Lossless);
        }
        Ok(Poll::Empty)
    }

    fn lag(&mut self, n: u64) -> RecvError {
        // Wrapping: `n` comes from an untrusted tail; two huge lags must not overflow (a panic in debug).
        self.lagged = self.lagged.wrapping_add(n);
        self.slot_word(S_LAGGED).store(self.lagged, Ordering::Relaxed);
        RecvError::Lagged(n)
    }

    /// We were lapped at `c`: jump to the oldest message certainly still there and report the exact gap.
    fn resync(&mut self, c: u64) -> RecvError {
        let cap = self.topic.geometry().capacity as u64;
        let tail = self.topic.tail();
        // Every sequence below `tail - capacity` was overwritten by a claim that already advanced the tail.
        let mut to = tail.wrapping_sub(cap);
        if seq_diff(to, c) <= 0 {
            to = c.wrapping_add(1);
        }
        let gating = self.mode == Mode::Lossless;
        self.advance(to, gating);
        self.lag(to.wrapping_sub(c))
    }

    /// A member takes the next message of its group.
    fn poll_member(&mut self, g: usize) -> Result<Poll, RecvError> {
        let topic = self.topic.clone();
        let off = *topic.off();
        let next = topic.readers_word(off.group(g) + G_NEXT);
        let me = topic.readers_word(off.sub_slot(self.slot) + S_CURSOR);
        let mut rounds = 0u32;
        let mut announced: Option<u64> = None;
        loop {
            // Acquire (tag GROUP_NEXT): pairs with the AcqRel advance of the claim cursor.
            let nw = next.load(Ordering::Acquire);
            if !cursor::has(nw, cursor::ACTIVE) {
                return Err(RecvError::Closed);
            }
            let c = cursor::expand(nw, self.cursor);
            self.cursor = c;
            // Announce the position we are about to take before taking it, so the gate never misses it.
            // Release: ordered before the ledger CAS that claims it.
            me.store(cursor::pack(cursor::ACTIVE | cursor::GATING, c), Ordering::Release);
            if announced.is_some_and(|a| a != c) {
                // Our previous announcement was a stale position, which may have held a publisher back: moving on
                // frees it (see `retract`).
                self.topic.wake_publishers(&*self.waiter);
            }
            announced = Some(c);
            let ledger = self.topic.readers_word(off.ledger(g, c));
            let lw = ledger.load(Ordering::Acquire);
            let l = Stamp::unpack(lw);
            let lap = lap_of(c, off.shift);
            // A ledger word or entry stamp a lap ahead of `c` means our claim cursor value is stale (we were
            // preempted after loading it while the group and the publishers moved on), not corruption: whoever
            // wrote that word had seen the claim cursor past `c`, and our Acquire load of the word makes that
            // visible to this re-load (tag GROUP_NEXT). Only a word ahead of a cursor that is still `c` is corrupt.
            // (Found by loom, `group_member_dies_while_publishing_concurrent_recovery`.)
            let overtaken = || next.load(Ordering::Acquire) != nw;
            let advance = |from: u64| {
                next.compare_exchange(
                    cursor::pack(cursor::ACTIVE | cursor::GATING, from),
                    cursor::pack(cursor::ACTIVE | cursor::GATING, from.wrapping_add(1)),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            };
            match (lap_diff(l.lap, lap), l.state) {
                (-1, State::Published) => {
                    // Fresh position: is the message there?
                    let sw = self.topic.data_word(off.entry(c) + E_STAMP).load(Ordering::Acquire);
                    let s = Stamp::unpack(sw);
                    match (lap_diff(s.lap, lap), s.state) {
                        (0, State::Published) => {
                            let held = Stamp::pack(lap, State::Claimed, self.slot as u32);
                            // AcqRel: the ledger word decides which member owns `c` and records it.
                            if ledger.compare_exchange(lw, held, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                                advance(c);
                                return self.deliver_member(c);
                            }
                        }
                        (0, State::Skipped) => {
                            let done = Stamp::pack(lap, State::Published, self.slot as u32);
                            if ledger.compare_exchange(lw, done, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                                self.skipped = self.skipped.wrapping_add(1);
                                self.slot_word(S_SKIPPED).store(self.skipped, Ordering::Relaxed);
                                if advance(c) {
                                    // Passing a skip marker moves the group's gate with no release to announce
                                    // it: wake publishers that slept on it (see the helping case below).
                                    self.topic.wake_publishers(&*self.waiter);
                                }
                            }
                        }
                        (d, _) if d < 0 || s.state == State::Claimed => {
                            return Ok(self.retract(me, c));
                        }
                        _ if overtaken() => {}
                        _ => return Err(RecvError::Corrupted { what: "group cursor behind the ring" }),
                    }
                }
                (0, State::Skipped) => {
                    // A dead member's message, put back for redelivery.
                    let held = Stamp::pack(lap, State::Claimed, self.slot as u32);
                    if ledger.compare_exchange(lw, held, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                        self.topic.readers_word(off.group(g) + G_REDELIVERED).fetch_add(1, Ordering::Relaxed);
                        advance(c);
                        return self.deliver_member(c);
                    }
                }
                // Taken by another member, or done: help the claim cursor past it.
                (0, _) => {
                    if advance(c) {
                        // ABA guard. Between our loads of the claim cursor and of the ledger word (which showed
                        // `c` held by another member) and this CAS, that member may have died and
                        // `release_subscriber` marked `c` for redelivery and pulled the cursor back to `c`: the CAS
                        // then succeeded on the pulled-back value and would skip the redelivery for good. Recovery
                        // stores the Skipped mark before pulling back, and our AcqRel CAS read the pulled-back value
                        // (tag GROUP_NEXT), so the mark is visible now: take the message ourselves. Our announced
                        // position still gates it.
                        let again = ledger.load(Ordering::Acquire);
                        let a = Stamp::unpack(again);
                        if (lap_diff(a.lap, lap), a.state) == (0, State::Skipped) {
                            let held = Stamp::pack(lap, State::Claimed, self.slot as u32);
                            if ledger.compare_exchange(again, held, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                                self.topic.readers_word(off.group(g) + G_REDELIVERED).fetch_add(1, Ordering::Relaxed);
                                return self.deliver_member(c);
                            }
                        }
                        // Helping the claim cursor past a position already taken moves the group's gate with no
                        // release to announce it: its taker's release may have come while the cursor still gated
                        // (a taker whose own advance lost to a pull-back by `release_subscriber`, or a pull-back
                        // that came after the redelivered message was already taken and released). Wake
                        // publishers sleeping on the gate (found by loom, `group_member_dies_while_publishing`).
                        self.topic.wake_publishers(&*self.waiter);
                    }
                }
                // The previous lap's message in this ledger word is still held by a member (or waits for
                // redelivery while `release_subscriber` pulls the claim cursor back): that hold gates publishers,
                // so `c` cannot have been published yet. Nothing to take; not corruption.
                (-1, State::Claimed | State::Skipped) => {
                    return Ok(self.retract(me, c));
                }
                _ if overtaken() => {}
                _ => return Err(RecvError::Corrupted { what: "group ledger inconsistent with its cursor" }),
            }
            rounds += 1;
            if rounds > 4 * off.geo.capacity {
                // Contention only; let the caller's idle strategy run.
                return Ok(self.retract(me, c));
            }
            crate::sync::spin_hint();
        }
    }

    /// Ends a member's poll that took nothing: the position it announced stops gating. An announcement can gate
    /// below the group's claim cursor (a stale position, loaded before other members moved the cursor on), so a
    /// publisher may have gone to sleep on it: wake publishers. (Found by loom, `group_members_race_publisher`:
    /// the publisher slept forever while both members polled an empty group.)
    fn retract(&self, me: &AtomicU64, c: u64) -> Poll {
        // Release (tag CURSOR).
        me.store(cursor::pack(cursor::ACTIVE, c), Ordering::Release);
        self.topic.wake_publishers(&*self.waiter);
        Poll::Empty
    }

    /// Under loom there is no address space to point into: in-place reads become copies.
    #[cfg(loom)]
    fn materialize(&mut self, f: &mut Found) {
        self.buf.resize(f.len, 0);
        self.topic.inner.data.load_bytes(f.ptr as usize, &mut self.buf[..f.len]);
        f.ptr = self.buf.as_ptr();
    }

    #[cfg(not(loom))]
    fn materialize(&mut self, _f: &mut Found) {}

    fn deliver_member(&mut self, c: u64) -> Result<Poll, RecvError> {
        match self.locate(c) {
            Ok((mut f, _)) => {
                self.materialize(&mut f);
                Ok(Poll::Ready(f))
            }
            Err(e) => {
                self.release(c, 0);
                Err(e)
            }
        }
    }

    /// Ends our hold on `seq` (called when a `Message` is dropped).
    fn release(&mut self, seq: u64, len: usize) {
        match self.mode {
            Mode::Lossless => {
                self.count_received(len);
                self.advance(seq.wrapping_add(1), true);
            }
            Mode::Lossy => self.count_received(len),
            Mode::Group(g) => {
                self.count_received(len);
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

    fn count_received(&mut self, len: usize) {
        self.received = self.received.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(len as u64);
        // Relaxed: statistics, single writer.
        self.slot_word(S_RECEIVED).store(self.received, Ordering::Relaxed);
        self.slot_word(S_BYTES).store(self.bytes, Ordering::Relaxed);
    }

    /// Detaches: the slot stops gating at once and becomes free.
    pub fn detach(self) {}
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let off = *self.topic.off();
        let base = off.sub_slot(self.slot);
        // Release: our reads happen before publishers may overwrite what we were holding.
        self.topic.readers_word(base + S_CURSOR).store(0, Ordering::Release);
        self.topic.readers_word(R_IN_USE + 8 * (self.slot / 64)).fetch_and(!(1 << (self.slot % 64)), Ordering::Release);
        self.topic
            .readers_word(R_DATA_WAITERS + 8 * (self.slot / 64))
            .fetch_and(!(1 << (self.slot % 64)), Ordering::Relaxed);
        self.topic.wake_publishers(&*self.waiter);
    }
}
