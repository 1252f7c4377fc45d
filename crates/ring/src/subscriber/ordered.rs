//! The lossless and lossy cursor protocol: reading in sequence at the subscriber's own cursor.
//!
//! A lossless cursor gates publishers and is published (Release, tag CURSOR) in batches and whenever the reader
//! catches up; a lossy reader copies with atomic loads and validates afterwards (tag SEQLOCK), and reports the
//! exact number of positions passed over when lapped.

use super::{Mode, Poll, Subscriber};
use crate::error::RecvError;
use crate::layout::*;
use crate::stamp::{cursor, lap_diff, lap_of, seq_diff, Stamp, State};
use crate::sync::{fence, Ordering};

/// A subscriber whose tail hint says "nothing new" still looks at the entry at its cursor every this many polls
/// (and always before it sleeps): the hint is only a hint, and a single producer that died between publishing an
/// entry and storing the tail must not hide that entry.
pub(super) const TAIL_RECHECK: u32 = 64;

/// How many entries ahead of its cursor a reader prefetches (see `prefetch_ahead`).
const PREFETCH_AHEAD: u64 = 8;

impl Subscriber {
    /// Whether the entry at `c` is worth looking at: the tail is past it (it was claimed, and on a single-producer
    /// topic published), or this is one of the periodic checks of the entry itself.
    ///
    /// A caught-up reader polls the tail's line rather than the entry the publisher is about to write: polling the
    /// entry pulled its cache line back to the reader between the publisher's claim, payload and publish stores,
    /// several transfers per message where the minimal ring needs one (issue 10, 64-byte throughput).
    ///
    /// Not on a topic with several publishers: there the tail moves at the claim, not the publish, so it says
    /// little, and each claimer advances it with a compare-and-swap; a reader polling its line made that locked
    /// instruction miss on every message, one cross-core transfer on top of the stamp's (issue 10: fan-in 2->1 and
    /// 4->1 went from 3.5 to 7.2 M msg/s at 64 bytes with the reader polling the entry instead). Without a tail
    /// seen there, `advance` never knows more is waiting and publishes a lossless cursor after every message
    /// (never later than it should; the batching is a single-producer saving only).
    #[inline]
    fn tail_says_more(&mut self, c: u64) -> bool {
        if !self.topic.geometry().single_producer() {
            return true;
        }
        if seq_diff(self.seen_tail, c) > 0 {
            return true;
        }
        // Acquire: pairs with the Release tail store after the stamp's (single producer) or the claimer's AcqRel
        // advance; what it orders is re-checked through the entry's own stamp anyway (the tail is a hint).
        self.seen_tail = self.topic.tail();
        let d = seq_diff(self.seen_tail, c);
        // Past us, or further behind than a tail can be (a corrupted word, in untrusted memory): look at the entry,
        // whose stamp decides (a lapped reader resynchronizes from there).
        if d > 0 || d < -(self.topic.geometry().capacity as i64) {
            self.quiet_polls = 0;
            return true;
        }
        self.quiet_polls = self.quiet_polls.wrapping_add(1);
        self.quiet_polls.is_multiple_of(TAIL_RECHECK)
    }

    /// Asks for the lines of the entry `PREFETCH_AHEAD` past `c` when the tail says it is complete: each receive
    /// is long enough that the CPU alone kept only one or two entries' misses in flight, where the minimal ring's
    /// short loop overlaps many (issue 10). The publisher is done with that entry until its next lap.
    #[inline(always)]
    fn prefetch_ahead(&self, c: u64) {
        let ahead = c.wrapping_add(PREFETCH_AHEAD);
        if seq_diff(self.seen_tail, ahead) > 0 {
            let e = self.topic.off().entry(ahead);
            let data = &self.topic.inner.data;
            data.prefetch_read(e);
            if self.topic.geometry().entry_bytes > 64 {
                data.prefetch_read(e + 64);
            }
        }
    }

    /// Lossless and lossy reading at `self.cursor` (inlined: see `Subscriber::recv_deadline`).
    #[inline(always)]
    pub(super) fn poll_ordered(&mut self, lossy: bool) -> Result<Poll, RecvError> {
        let off = *self.topic.off();
        loop {
            let c = self.cursor;
            if !self.tail_says_more(c) {
                return self.caught_up();
            }
            self.prefetch_ahead(c);
            let stamp_word = self.topic.data_word(off.entry(c) + E_STAMP);
            // Acquire (tag STAMP): pairs with the publisher's Release of the stamp.
            let w1 = stamp_word.load(Ordering::Acquire);
            let s = Stamp::unpack(w1);
            let d = lap_diff(s.lap, lap_of(c, off.shift));
            if d < 0 {
                return self.caught_up();
            }
            if d > 0 {
                if s.state == State::Pristine {
                    // Not written yet (its lap bits are 0, which may compare as ahead of any lap).
                    return self.caught_up();
                }
                return Err(self.resync(c));
            }
            match s.state {
                State::Claimed | State::Pristine => return self.caught_up(),
                State::Invalid => {
                    return Err(self.pass_corrupted(c, !lossy, RecvError::Corrupted { what: "invalid entry state" }))
                }
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
                let mut f = match located {
                    Ok(f) => f,
                    Err(e) => return Err(self.pass_corrupted(c, true, e)),
                };
                if f.1.is_some() && seq_diff(c, self.verify_until) < 0 {
                    // Below the tail we saw at attach, a region payload may already be free in its publisher's
                    // books (freed before our cursor appeared), so a later allocation can overwrite it while we
                    // lend it out: copy it, then check it was intact (as a lossy reader does); report a reclaimed
                    // one, never lose silently. (Found by the long model run: a held message changed.)
                    return match self.copy_checked(&mut f.0, f.1) {
                        true => Ok(Poll::Ready(f.0)),
                        false => {
                            self.advance(c.wrapping_add(1), true);
                            Err(self.lag(1))
                        }
                    };
                }
                // Lending in place: announce the hold first; a demotion that came meanwhile is taken instead
                // (what we loaded from the entry is discarded, so nothing torn is ever handed out).
                if self.raise_hold() {
                    self.acknowledge_demotion();
                    return Err(RecvError::Demoted);
                }
                // After the check, as in production, where the caller reads the payload in place only once it is
                // handed out (under loom the in-place read is this copy, checked for races with the publisher's
                // writes: issue 8, defect 9).
                self.materialize(&mut f.0);
                return Ok(Poll::Ready(f.0));
            }
            // Lossy: copy with atomic loads, then validate (tag SEQLOCK).
            let f = match located {
                Ok(f) => f,
                Err(e) => {
                    if stamp_word.load(Ordering::Acquire) != w1 {
                        return Err(self.resync(c));
                    }
                    return Err(self.pass_corrupted(c, false, e));
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

    /// Reports the corrupted entry at `c` once and moves past it, counting it skipped: a bad entry must neither
    /// return `Corrupted` forever nor keep gating publishers (the entry's memory is the publisher's; what it wrote
    /// there is its topic's loss, not a reason to stop every reader).
    fn pass_corrupted(&mut self, c: u64, gating: bool, e: RecvError) -> RecvError {
        self.skipped = self.skipped.wrapping_add(1);
        // Relaxed: statistics, single writer.
        self.slot_word(S_SKIPPED).store(self.skipped, Ordering::Relaxed);
        self.advance(c.wrapping_add(1), gating);
        e
    }

    /// Copies `f`'s payload into our buffer with atomic loads and points `f` at the copy; `true` when the region
    /// bytes were still intact after the copy (tag SEQLOCK: the Acquire fence orders the frontier load after the
    /// copy, so a copy that read any byte of a newer message sees the frontier past it).
    pub(super) fn copy_checked(&mut self, f: &mut super::message::Found, region: Option<(usize, u64)>) -> bool {
        self.buf.resize(f.len, 0);
        let at = f.ptr as usize - self.data_base();
        self.topic.inner.data.load_bytes(at, &mut self.buf[..f.len]);
        fence(Ordering::Acquire);
        f.ptr = self.buf.as_ptr();
        self.payload_intact(region)
    }

    /// Whether a region payload at logical `pos` of publisher `p` has not been overwritten yet.
    pub(super) fn payload_intact(&self, region: Option<(usize, u64)>) -> bool {
        let Some((p, pos)) = region else { return true };
        let off = *self.topic.off();
        let r = off.geo.region_bytes;
        // Relaxed: ordered by the Acquire fence before it (tag SEQLOCK) or by the attach grace period.
        let frontier = self.topic.data_word(off.pub_slot(p) + P_FRONTIER).load(Ordering::Relaxed);
        seq_diff(frontier, pos.wrapping_add(r)) <= 0
    }

    pub(super) fn advance(&mut self, to: u64, gating: bool) {
        self.cursor = to;
        if gating && self.unpublished + 1 < self.cursor_batch && seq_diff(self.seen_tail, to) > 0 {
            // A lossless cursor is published every `cursor_batch` messages and whenever we catch up (the next
            // entry is not published yet): publishers see our progress a little later while more messages are
            // waiting for us (they only over-gate), and the cursor's cache line stops bouncing between us and a
            // publisher that polls it on a full ring. A subscriber that consumed everything never holds anyone.
            // "More is waiting" is the tail hint: no load of the next entry, which the publisher may be writing.
            self.unpublished += 1;
            return;
        }
        self.publish_cursor(gating);
    }

    /// Stores the cursor word now (and wakes publishers waiting for space when it gates).
    fn publish_cursor(&mut self, gating: bool) {
        self.unpublished = 0;
        self.store_received();
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

    pub(super) fn lag(&mut self, n: u64) -> RecvError {
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
}
