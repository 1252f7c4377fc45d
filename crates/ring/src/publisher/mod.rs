//! Publishing: claims on the index ring, allocation in the publisher's own payload region, zero-copy loans,
//! batches.
//!
//! A send runs in two phases. The **claim phase** (between two stores of the slot's `sends` counter, odd while
//! inside) checks the gate, reserves payload space and claims an index entry; a subscriber attaching a gating
//! cursor waits out claim phases that began before it (see `Topic::publish_gating_cursor`). The **write phase**
//! fills the entry and payload and publishes the stamp with a Release store.
//!
//! Seqlock order for lossy readers (tag SEQLOCK): claim (the stamp changes) and frontier store, then
//! `fence(Release)`, then payload and fields, then the Release store of the published stamp. A reader that saw any
//! byte of the new message sees the changed stamp or frontier and discards its copy.

mod alloc;
mod arm;
mod loan;
mod multi;

pub use loan::Loan;

use crate::error::{AttachError, SendError};
use crate::layout::*;
use crate::stamp::{lap_diff, lap_of, seq_diff, Stamp, State};
use crate::sync::{fence, AtomicU64, Ordering};
use crate::topic::Topic;
use crate::wait::{expired, sleep_once, Backoff, IdleStrategy, Step, Target, Waiter};
use std::cell::Cell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

/// How many entries past the one it publishes (or, with several publishers, claims) a publisher asks for in
/// exclusive state (see `Publisher::prefetch_ahead`): 8 to 16 measured alike, 1 to 4 gained half as much.
const PREFETCH_AHEAD: u64 = 12;

/// Options of a publisher handle.
#[derive(Clone, Copy, Debug)]
pub struct PublisherOptions {
    /// How `send` waits on a full topic.
    pub idle: IdleStrategy,
    /// Clock for the per-message timestamp (nanoseconds).
    pub clock: fn() -> u64,
}

/// Wall-clock nanoseconds since the Unix epoch (the default timestamp clock).
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions { idle: IdleStrategy::Adaptive, clock: realtime_ns }
    }
}

/// A publisher bound to one publisher slot of a topic. `Send` but not `Sync`: one owner drives the slot.
pub struct Publisher {
    topic: Topic,
    slot: usize,
    waiter: Arc<dyn Waiter>,
    opts: PublisherOptions,
    single: bool,
    /// A CPU with `prefetchw`: prefetch the entries ahead (see `prefetch_ahead`).
    prefetch: bool,
    cap: u64,
    epoch: u64,
    gate: Option<u64>,
    gate_valid: bool,
    sp_tail: u64,
    /// Single producer: from this sequence on, every entry's previous occupant is one of our own claims, all
    /// committed or aborted (one full lap after attach), so the claim need not load the entry's stamp first.
    own_lap_from: u64,
    head: u64,
    reclaimed: u64,
    fifo: VecDeque<(u64, u64)>,
    sends: u64,
    published: u64,
    bytes: u64,
    full: u64,
    aborted: u64,
    gate_unsettled: u64,
    /// Private buffer for [`Loan::with_buffer`], reused across loans (never shared memory).
    scratch: Vec<u8>,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("slot", &self.slot).field("published", &self.published).finish()
    }
}

/// Where a claimed message's payload goes.
#[derive(Clone, Copy, Debug)]
struct Reservation {
    seq: u64,
    len: usize,
    /// Byte offset of the payload in the data object.
    at: usize,
    /// Logical region position of the payload and the end of its allocation (`None` when inline).
    pos: u64,
    end: Option<u64>,
}

impl Publisher {
    /// Attaches to publisher slot `slot` (assigned by the daemon's lease). The data object must be writable.
    /// A slot left by a dead holder is taken over where it stopped (its claims must have been cancelled first).
    pub fn attach(
        topic: &Topic,
        slot: usize,
        waiter: Arc<dyn Waiter>,
        opts: PublisherOptions,
    ) -> Result<Publisher, AttachError> {
        let geo = topic.geometry();
        topic.check_attach(slot, geo.max_publishers, "publisher slot out of range", &topic.inner.data)?;
        let off = *topic.off();
        let ps = off.pub_slot(slot);
        let w = |o: usize| topic.data_word(ps + o).load(Ordering::Acquire);
        // The frontier is untrusted: round it up to a word (payload positions are word-aligned; an unaligned one
        // made this publisher write at misaligned offsets). Positions wrap, see `allocate`. Found by
        // `tests/untrusted.rs`.
        let head = w(P_FRONTIER).wrapping_add(7) & !7;
        let mut sends = w(P_SENDS);
        if sends & 1 == 1 {
            sends = sends.wrapping_add(1);
            topic.data_word(ps + P_SENDS).store(sends, Ordering::Release);
        }
        let tail = topic.tail();
        let mut fifo = VecDeque::new();
        let reclaimed = if head == 0 && w(P_PUBLISHED) == 0 && w(P_ABORTED) == 0 {
            head
        } else {
            // Unknown in-flight messages of a previous holder: free its whole region once readers pass the tail.
            fifo.push_back((tail.wrapping_sub(1), head));
            head.wrapping_sub(geo.region_bytes)
        };
        let epoch = topic.readers_word(R_EPOCH).load(Ordering::Acquire);
        Ok(Publisher {
            topic: topic.clone(),
            slot,
            waiter,
            opts,
            single: geo.single_producer(),
            prefetch: crate::region::write_prefetch_supported(),
            cap: geo.capacity as u64,
            epoch,
            gate: None,
            gate_valid: false,
            sp_tail: tail,
            own_lap_from: tail.wrapping_add(geo.capacity as u64),
            head,
            reclaimed,
            fifo,
            sends,
            published: w(P_PUBLISHED),
            bytes: w(P_BYTES),
            full: w(P_FULL),
            aborted: w(P_ABORTED),
            gate_unsettled: w(P_GATE_UNSETTLED),
            scratch: Vec::new(),
            _not_sync: PhantomData,
        })
    }

    /// The publisher slot (also the publisher id carried by every message).
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The topic this publisher writes.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Messages published through this slot.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Largest payload accepted.
    pub fn max_message(&self) -> usize {
        self.topic.geometry().max_message as usize
    }

    fn slot_word(&self, o: usize) -> &AtomicU64 {
        &self.slot_line()[o / 8]
    }

    /// This publisher's slot line, checked once for several of its words.
    #[inline(always)]
    fn slot_line(&self) -> &[AtomicU64; LINE / 8] {
        self.topic.inner.data.words(self.topic.off().pub_slot(self.slot))
    }

    /// Publishes `msg` if there is room now.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        let r = self.reserve(msg.len())?;
        self.topic.inner.data.store_bytes(r.at, msg);
        Ok(self.commit_reservation(r, State::Published, true))
    }

    /// Publishes `msg`, waiting for room (per the idle strategy) as long as needed.
    pub fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.send_deadline(msg, None)
    }

    /// Publishes `msg`, waiting for room until `timeout` passes (a timeout past any `Instant`: for ever).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: std::time::Duration) -> Result<u64, SendError> {
        self.send_deadline(msg, Instant::now().checked_add(timeout))
    }

    /// Publishes `msg`, waiting for room until `deadline` (`None`: forever).
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<u64, SendError> {
        // The first attempt inline, the waiting loop out of line: a reservation returned through memory by an
        // out-of-line call was read back with one 16-byte load of two 8-byte stores, a failed store-to-load
        // forward that waited for every older store, including the ones still missing their cache line (most
        // of a 64-byte send's time cross-process; issue 10).
        let r = match self.reserve(msg.len()) {
            Err(SendError::Full) => self.reserve_waiting(msg.len(), deadline)?,
            other => other?,
        };
        self.topic.inner.data.store_bytes(r.at, msg);
        Ok(self.commit_reservation(r, State::Published, true))
    }

    /// Publishes as many of `msgs` as fit now, in order, waking subscribers once. Returns how many were sent;
    /// an error only if the first one could not be.
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        let mut n = 0;
        for m in msgs {
            match self.reserve(m.len()) {
                Ok(r) => {
                    self.topic.inner.data.store_bytes(r.at, m);
                    self.commit_reservation(r, State::Published, false);
                    n += 1;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if n > 0 {
            self.topic.wake_after_commit(&*self.waiter);
        }
        Ok(n)
    }

    /// Lends `len` bytes of shared memory to write a message in place; [`Loan::commit`] publishes it, dropping the
    /// loan aborts it (readers pass over a skip marker, nobody stalls). Fails like `try_send` when there is no
    /// room.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>, SendError> {
        let r = self.reserve(len)?;
        Ok(Loan { publisher: self, r, done: false })
    }

    /// Like [`Publisher::try_loan`], waiting for room until `deadline` (`None`: forever).
    pub fn loan(&mut self, len: usize, deadline: Option<Instant>) -> Result<Loan<'_>, SendError> {
        let r = self.reserve_waiting(len, deadline)?;
        Ok(Loan { publisher: self, r, done: false })
    }

    #[inline(never)]
    fn reserve_waiting(&mut self, len: usize, deadline: Option<Instant>) -> Result<Reservation, SendError> {
        let mut backoff = Backoff::new(self.opts.idle);
        loop {
            match self.reserve(len) {
                Err(SendError::Full) => {}
                other => return other,
            }
            if expired(deadline) {
                return Err(SendError::Timeout);
            }
            if let Step::Sleep = backoff.next() {
                let (topic, waiter) = (self.topic.clone(), self.waiter.clone());
                let mask = topic.readers_mask(R_SPACE_WAITERS, self.slot);
                let Ok(woke) = sleep_once(&*waiter, Target::Publisher(self.slot), mask, deadline, || {
                    Ok::<_, Infallible>(match self.reserve(len) {
                        Err(SendError::Full) => None,
                        other => Some(other),
                    })
                });
                if let Some(other) = woke {
                    return other;
                }
            }
        }
    }

    /// Claim phase: gate check, payload reservation, index claim. On success the entry is ours and marked
    /// claimed; payload may be written at `at`. Always inlined, for the reason given in `send_deadline`.
    #[inline(always)]
    fn reserve(&mut self, len: usize) -> Result<Reservation, SendError> {
        let geo = self.topic.geometry();
        if len > geo.max_message as usize {
            return Err(SendError::TooLarge { len, max: geo.max_message as usize });
        }
        if self.topic.is_closed() {
            return Err(SendError::Closed);
        }
        self.enter_claim_phase();
        let result = self.claim(len);
        if result.is_err() {
            // A full ring or region: counted, not logged. Counters wrap: they start from untrusted shared words at
            // attach (a corrupted one near `u64::MAX` overflowed, a panic in debug; found by `tests/untrusted.rs`).
            self.full = self.full.wrapping_add(1);
            self.slot_word(P_FULL).store(self.full, Ordering::Relaxed);
        }
        // Leave the claim phase (even). Release (tag SENDS): pairs with the Acquire wait in
        // `publish_gating_cursor`; our claim and frontier are visible to an attaching subscriber.
        self.sends = self.sends.wrapping_add(1);
        self.slot_word(P_SENDS).store(self.sends, Ordering::Release);
        result
    }

    /// Enters the claim phase (odd counter) and picks up a new attach epoch (the cached gate is stale then).
    #[inline(always)]
    fn enter_claim_phase(&mut self) {
        // Ordered before the epoch load by the light barrier, which pairs with the heavy barrier of an attaching
        // subscriber (tag ATTACH). Release (a plain store on x86): whoever reads this odd value with Acquire sees
        // our previous claim's stamp, which `settle_vacancies` relies on.
        self.sends = self.sends.wrapping_add(1);
        self.slot_word(P_SENDS).store(self.sends, Ordering::Release);
        self.topic.light();
        // Acquire: pairs with the SeqCst epoch bump in `publish_gating_cursor`; a new gating cursor is visible.
        let epoch = self.topic.readers_word(R_EPOCH).load(Ordering::Acquire);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.gate_valid = false;
        }
    }

    #[inline(always)]
    fn claim(&mut self, len: usize) -> Result<Reservation, SendError> {
        let geo = self.topic.geometry();
        let off = *self.topic.off();
        let region = if len > geo.inline_bytes() { Some(self.allocate(len)?) } else { None };
        let seq = if self.single { self.claim_single()? } else { self.claim_multi()? };
        if !self.single && self.prefetch && region.is_none() {
            self.prefetch_ahead(seq);
        }
        let (at, pos, end) = match region {
            Some((start, end)) => {
                // Relaxed: published to lossy readers by the Release fence below (tag SEQLOCK).
                self.slot_word(P_FRONTIER).store(end, Ordering::Relaxed);
                self.head = end;
                let phys = (start % geo.region_bytes) as usize;
                (off.region(self.slot) + phys, start, Some(end))
            }
            None => (off.entry(seq) + E_INLINE, 0, None),
        };
        // Release fence (tag SEQLOCK): the claim and the frontier are ordered before every payload/field store.
        fence(Ordering::Release);
        Ok(Reservation { seq, len, at, pos, end })
    }

    /// The gate for claiming `seq`: every gating cursor must have moved past `seq - capacity`.
    #[inline(always)]
    fn check_gate(&mut self, seq: u64) -> Result<(), SendError> {
        if !self.gate_valid || self.gate.is_some_and(|g| seq_diff(seq, g) >= self.cap as i64) {
            self.scan_gate(seq);
            if self.gate.is_some_and(|g| seq_diff(seq, g) >= self.cap as i64) {
                return Err(SendError::Full);
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn claim_single(&mut self) -> Result<u64, SendError> {
        let off = *self.topic.off();
        loop {
            let seq = self.sp_tail;
            self.check_gate(seq)?;
            let stamp = self.topic.data_word(off.entry(seq) + E_STAMP);
            if seq_diff(seq, self.own_lap_from) >= 0 {
                // The entry's previous occupant was our own claim, committed or aborted before this one (a loan
                // holds `&mut self`; a forgotten one left `sp_tail` at its own entry, which we take again): no
                // other writer of this single-producer topic exists, so its state is known without loading the
                // stamp. That load missed in cache on nearly every send, the entry's line having gone to the
                // reader since our last lap; the minimal ring never reads what it is about to overwrite
                // (issue 10). Relaxed: as below.
                stamp.store(Stamp::pack(lap_of(seq, off.shift), State::Claimed, self.slot as u32), Ordering::Relaxed);
                return Ok(seq);
            }
            // Acquire: pairs with the Release publish (or cancellation) of the entry's previous occupant.
            let w = stamp.load(Ordering::Acquire);
            let s = Stamp::unpack(w);
            match (lap_diff(s.lap, lap_of(seq, off.shift)), s.state) {
                // A pristine entry (never written since its page was zero-filled) is free, whatever the lap.
                (-1, State::Published | State::Skipped) | (_, State::Pristine) => {
                    // Relaxed: the Release fence in `claim` orders it before the writes (tag SEQLOCK); we are the
                    // only producer, so no compare-and-swap is needed.
                    stamp.store(
                        Stamp::pack(lap_of(seq, off.shift), State::Claimed, self.slot as u32),
                        Ordering::Relaxed,
                    );
                    return Ok(seq);
                }
                (-1, State::Claimed) => return Err(SendError::Full),
                (0, State::Published | State::Skipped) => {
                    // A previous holder of the slot published (or recovery cancelled) `seq` without advancing the
                    // tail: move past it.
                    self.sp_tail = seq.wrapping_add(1);
                    self.topic.data_word(D_TAIL).store(self.sp_tail, Ordering::Release);
                }
                (0, State::Claimed) => return Err(SendError::Full),
                _ => return Err(SendError::Corrupted { what: "index entry ahead of the tail" }),
            }
        }
    }

    /// Asks for the lines of the entry `PREFETCH_AHEAD` past `seq` in exclusive state (`prefetchw`), if every
    /// gating cursor has released it: the entry's lines are the reader's since the last lap, and each send's
    /// first access to them otherwise waited for that transfer (a 64-byte send is too short for the CPU to overlap
    /// the misses of several). Not while a gating reader may still read the entry (the prefetch would take its
    /// line away mid-read). A single producer calls it after publishing `seq`; on a multi-producer topic a
    /// claimer calls it after claiming `seq`, for whichever publisher takes that entry next: the claim's stamp
    /// load and store then hit, in this publisher's cache or in that of the CPU it shares with the others (and
    /// a publisher on another CPU misses on our cache instead of the reader's, no more transfers than before).
    /// Issue 10, 64 bytes: 1→1 from 17.4-17.7 M to 21.7-22.7 M msg/s; 4→1 spin-then-yield from 8.9-10.8 M to
    /// 12.3-13.8 M, blocking from 9.2-9.4 M to 13.1-13.3 M. Only after an inline message (the next ones likely
    /// are too): a region message uses one line of its entry, and at 1 KiB and 4 KiB the prefetch measured level
    /// with none (`shmbus-bench --sizes 1024,4096 --scenarios throughput`, alternating runs).
    #[inline(always)]
    pub(super) fn prefetch_ahead(&self, seq: u64) {
        let ahead = seq.wrapping_add(PREFETCH_AHEAD);
        if self.gate.is_none_or(|g| seq_diff(ahead, g) < self.cap as i64) {
            let e = self.topic.off().entry(ahead);
            let data = &self.topic.inner.data;
            data.prefetch_write(e);
            if self.topic.geometry().entry_bytes > 64 {
                data.prefetch_write(e + 64);
            }
        }
    }

    /// Write phase end: fields, then the Release store of the stamp (tag STAMP), counters, wake-ups.
    #[inline(always)]
    fn commit_reservation(&mut self, r: Reservation, state: State, wake: bool) -> u64 {
        let off = *self.topic.off();
        let e = off.entry(r.seq);
        let data = &self.topic.inner.data;
        let ts = (self.opts.clock)();
        let len = if state == State::Published { r.len as u64 } else { 0 };
        // Relaxed: published by the Release store of the stamp below.
        let placement = if r.end.is_some() { META_IN_REGION } else { 0 };
        let h = data.words::<{ ENTRY_HEADER / 8 }>(e);
        h[E_META / 8].store(len | ((self.slot as u64) << 32) | placement, Ordering::Relaxed);
        h[E_POS / 8].store(r.pos, Ordering::Relaxed);
        h[E_TIME / 8].store(ts, Ordering::Relaxed);
        // Release (tag STAMP): pairs with readers' Acquire load of the stamp; payload and fields are visible.
        h[E_STAMP / 8].store(Stamp::pack(lap_of(r.seq, off.shift), state, self.slot as u32), Ordering::Release);
        if self.single {
            self.sp_tail = r.seq.wrapping_add(1);
            // Release: readers that resynchronize from the tail see the published entries before it.
            self.topic.data_word(D_TAIL).store(self.sp_tail, Ordering::Release);
            if self.prefetch && r.end.is_none() {
                self.prefetch_ahead(r.seq);
            }
        }
        if let Some(end) = r.end {
            self.fifo.push_back((r.seq, end));
        }
        // Keep the local list bounded: a message lapped by the index ring has been passed by every gating cursor
        // (the index gate saw to that), so its payload can be reclaimed now.
        while self.fifo.len() > self.cap as usize {
            let (seq, e) = *self.fifo.front().expect("non-empty");
            if !self.may_free(seq) {
                break;
            }
            self.reclaimed = e;
            self.fifo.pop_front();
        }
        if state == State::Published {
            // Wrapping: see `self.full` in `reserve`.
            self.published = self.published.wrapping_add(1);
            self.bytes = self.bytes.wrapping_add(r.len as u64);
            // Relaxed: statistics, single writer.
            let line = self.slot_line();
            line[P_PUBLISHED / 8].store(self.published, Ordering::Relaxed);
            line[P_BYTES / 8].store(self.bytes, Ordering::Relaxed);
        } else {
            self.aborted = self.aborted.wrapping_add(1);
            self.slot_word(P_ABORTED).store(self.aborted, Ordering::Relaxed);
        }
        if wake {
            // Subscribers wait for the message; on a multi-producer topic a publisher may wait for this entry
            // (it found our claim unpublished, see `Topic::wake_after_commit`).
            self.topic.wake_after_commit(&*self.waiter);
        }
        r.seq
    }
}
