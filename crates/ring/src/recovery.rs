//! Recovery hooks for whoever has proven a client dead (the daemon, which sees the control connection close, or a
//! peer that finds the lease's file lock released). None of these may be called for a client that is merely slow.

use crate::admin::Admin;
use crate::error::AttachError;
use crate::layout::*;
use crate::stamp::{cursor, lap_diff, lap_of, seq_diff, Stamp, State};
use crate::sync::Ordering;
use crate::wait::Waiter;
use std::time::Instant;

impl Admin {
    /// The subscriber slots in use, as four mask words (bit `b` of word `w` is slot `64 * w + b`): the slots whose
    /// cursors the publishers' gate scan reads. One line of the readers object, so the owner's periodic reclaim
    /// can tell the slots to look at without reading every slot's line.
    pub fn subscriber_slots_in_use(&self) -> [u64; 4] {
        // Acquire: pairs with the Release that raises a slot's bit at attach.
        std::array::from_fn(|w| self.readers_word(Offsets::mask_word(R_IN_USE, w)).load(Ordering::Acquire))
    }

    /// The claim-phase counter of publisher slot `p` (odd while its holder is inside a claim; bumped twice per
    /// claim), `None` out of range. A slot whose counter has not moved since its claims were last cancelled, and
    /// is even, has made no claim since: the owner's periodic reclaim uses this to skip idle slots.
    pub fn claim_phases(&self, p: usize) -> Option<u64> {
        if p >= self.geometry().max_publishers as usize {
            return None;
        }
        // Acquire: pairs with the Release that leaves a claim phase, so a claim counted here is visible to a
        // scan that follows.
        Some(self.data_word(self.off().pub_slot(p) + P_SENDS).load(Ordering::Acquire))
    }

    /// Cancels every claim still held by the dead publisher in slot `p`: each becomes a counted skip marker that
    /// readers pass over, so nobody stalls behind it. Returns how many claims were cancelled.
    pub fn cancel_claims_of(&self, p: usize, waiter: &dyn Waiter) -> Result<u64, AttachError> {
        let geo = self.geometry();
        if p >= geo.max_publishers as usize {
            return Err(AttachError::Slot("publisher slot out of range"));
        }
        let off = *self.off();
        let mut n = 0;
        for i in 0..geo.capacity as u64 {
            let stamp = self.data_word(off.entry(i) + E_STAMP);
            let w = stamp.load(Ordering::Acquire);
            let s = Stamp::unpack(w);
            if s.state == State::Claimed && s.owner as usize == p && self.skip_entry(&off, i, w, s.lap, p as u32) {
                n += 1;
            }
        }
        self.advance_tail_past_finished(&off);
        let sends = self.data_word(off.pub_slot(p) + P_SENDS);
        let v = sends.load(Ordering::Acquire);
        if v & 1 == 1 {
            // Release (tag SENDS): an attaching subscriber waiting on this slot may go on.
            sends.store(v.wrapping_add(1), Ordering::Release);
        }
        self.data_word(D_CANCELLED).fetch_add(n, Ordering::Relaxed);
        self.wake_subscribers(waiter);
        self.wake_publishers(waiter);
        Ok(n)
    }

    /// Cancels the *vacancies* of dead claimers: entries below the tail still stamped at their previous lap (or
    /// pristine), which a publisher took with the tail's compare-and-swap and died before stamping (a
    /// multi-producer claim, see `Publisher::claim_multi`). Each becomes a counted skip marker, as a cancelled
    /// claim. Returns how many; `Err(Timeout)` when a live publisher stayed inside one claim phase until
    /// `deadline` (a stopped process): nothing was cancelled, call again later. `is_dead(p)` must only say dead
    /// for a slot whose holder is proven dead (or that no holder has), never a slow one.
    ///
    /// Why it is right: a claimer's claim phase starts with the Release store of an odd `P_SENDS`, then its tail
    /// compare-and-swap (AcqRel), then its stamp, then the Release store of the next (even) value. Our Acquire
    /// load of the tail read that compare-and-swap or a later one in its release sequence (every tail write of
    /// a multi-producer topic is a read-modify-write), so our `P_SENDS` loads after it see the odd value or a
    /// later one. A later value, even or odd, was stored with Release after the claimer's stamp store: reading
    /// it makes the stamp visible. So once every slot not `is_dead` has been read even, or odd and then
    /// changed, an entry still vacant on a re-read was taken by a dead slot.
    pub fn settle_vacancies(
        &self,
        waiter: &dyn Waiter,
        is_dead: &dyn Fn(usize) -> bool,
        deadline: Instant,
    ) -> Result<u64, AttachError> {
        let off = *self.off();
        let geo = off.geo;
        if geo.single_producer() {
            // A single producer stamps before it moves the tail: no vacancies.
            return Ok(0);
        }
        // Acquire: see above (pairs with the claimers' AcqRel compare-and-swap).
        let tail = self.data_word(D_TAIL).load(Ordering::Acquire);
        // Acquire: pairs with the owner's Release store of the floor (nothing below it was claimed since).
        let floor = self.data_word(H_FLOOR).load(Ordering::Acquire);
        let cap = geo.capacity as u64;
        let back = (seq_diff(tail, floor).clamp(0, cap as i64)) as u64;
        let vacant = |seq: u64, w: u64| {
            let s = Stamp::unpack(w);
            s.state == State::Pristine || lap_diff(s.lap, lap_of(seq, off.shift)) < 0
        };
        let mut candidates: Vec<(u64, u64)> = Vec::new();
        for k in 1..=back {
            let seq = tail.wrapping_sub(k);
            // Acquire: pairs with the claimers' stamp stores, made visible by the counters below.
            let w = self.data_word(off.entry(seq) + E_STAMP).load(Ordering::Acquire);
            if vacant(seq, w) {
                candidates.push((seq, w));
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        for p in 0..geo.max_publishers as usize {
            // Acquire: pairs with the Release stores of the claim-phase counter (tag SENDS).
            let first = self.data_word(off.pub_slot(p) + P_SENDS).load(Ordering::Acquire);
            if first & 1 == 1 && !self.await_claim_phase_end(p, first, is_dead, deadline) {
                return Err(AttachError::Timeout);
            }
        }
        let mut n = 0;
        for (seq, w) in candidates {
            let stamp = self.data_word(off.entry(seq) + E_STAMP);
            // Acquire, after the counters: a live claimer's stamp is visible now (see above); still vacant means
            // a dead claimer's, which nobody else writes.
            if stamp.load(Ordering::Acquire) != w {
                continue;
            }
            if self.skip_entry(&off, seq, w, lap_of(seq, off.shift), 0) {
                n += 1;
            }
        }
        if n > 0 {
            self.data_word(D_CANCELLED).fetch_add(n, Ordering::Relaxed);
            self.wake_subscribers(waiter);
            self.wake_publishers(waiter);
        }
        Ok(n)
    }

    /// Turns the entry of `seq`, whose stamp word was `w`, into a skip marker of `lap` owned by `owner`: meta
    /// first (length 0), then the marker with Release, so a reader that sees it sees both. `false` if the stamp
    /// changed meanwhile.
    fn skip_entry(&self, off: &Offsets, seq: u64, w: u64, lap: u64, owner: u32) -> bool {
        self.data_word(off.entry(seq) + E_META).store((owner as u64) << 32, Ordering::Relaxed);
        let skip = Stamp::pack(lap, State::Skipped, owner);
        self.data_word(off.entry(seq) + E_STAMP).compare_exchange(w, skip, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    /// Moves the tail past entries at it that are already finished (published, or cancelled just above), as a
    /// claimer helps the tail along: a single producer stores the tail only after publishing, so a claim it left
    /// behind, now a skip marker, sat at the tail, where readers that trust the tail hint would not see it until
    /// a periodic look at the entry, and a lossy one lapped meanwhile reported it as a lost message (found by the
    /// model test, `tests/model.rs`). Bounded by the ring's capacity.
    fn advance_tail_past_finished(&self, off: &Offsets) {
        let tail = self.data_word(D_TAIL);
        for _ in 0..off.geo.capacity {
            // Acquire: pairs with the Release/AcqRel tail stores of publishers.
            let t = tail.load(Ordering::Acquire);
            let s = Stamp::unpack(self.data_word(off.entry(t) + E_STAMP).load(Ordering::Acquire));
            let finished = matches!(s.state, State::Published | State::Skipped);
            if !finished || lap_diff(s.lap, lap_of(t, off.shift)) != 0 {
                return;
            }
            // AcqRel, as a claimer's help: whoever moves the tail from `t` does it once.
            let _ = tail.compare_exchange(t, t.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Frees the slot of the dead subscriber `s`: it stops gating at once. If it was a group member holding a
    /// message, the message is redelivered to another member or counted abandoned, per the group's policy.
    /// Returns what happened to a held message, if any.
    pub fn release_subscriber(&self, s: usize, waiter: &dyn Waiter) -> Result<Option<Released>, AttachError> {
        let geo = self.geometry();
        if s >= geo.max_subscribers as usize {
            return Err(AttachError::Slot("subscriber slot out of range"));
        }
        let off = *self.off();
        let base = off.sub_slot(s);
        let cur = self.readers_word(base + S_CURSOR);
        let flags = self.readers_word(base + S_FLAGS).load(Ordering::Acquire);
        let w = cur.load(Ordering::Acquire);
        let mut outcome = None;
        let group = (flags >> FLAG_GROUP_SHIFT) & 0xff;
        if group > 0 && (group as usize) <= geo.max_groups as usize && cursor::has(w, cursor::ACTIVE | cursor::GATING) {
            let g = group as usize - 1;
            let next = self.readers_word(off.group(g) + G_NEXT);
            let c = cursor::expand(w, cursor::expand(next.load(Ordering::Acquire), self.tail()));
            let ledger = self.readers_word(off.ledger(g, c));
            let lw = ledger.load(Ordering::Acquire);
            let lap = lap_of(c, off.shift);
            if lw == Stamp::pack(lap, State::Claimed, s as u32) {
                let redeliver = self.readers_word(off.group(g) + G_REDELIVER).load(Ordering::Relaxed) != 0;
                if redeliver {
                    // Order matters: mark for redelivery first (the dead member's held position still gates),
                    // then pull the group's claim cursor back so a member walks over it again.
                    let again = Stamp::pack(lap, State::Skipped, s as u32);
                    if ledger.compare_exchange(lw, again, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                        let mut nw = next.load(Ordering::Acquire);
                        loop {
                            let n = cursor::expand(nw, c);
                            if !cursor::has(nw, cursor::ACTIVE) || seq_diff(n, c) <= 0 {
                                break;
                            }
                            let lowered = cursor::pack(nw & (cursor::ACTIVE | cursor::GATING), c);
                            match next.compare_exchange(nw, lowered, Ordering::AcqRel, Ordering::Acquire) {
                                Ok(_) => break,
                                Err(x) => nw = x,
                            }
                        }
                        outcome = Some(Released::Redelivered(c));
                    }
                } else {
                    let done = Stamp::pack(lap, State::Published, s as u32);
                    if ledger.compare_exchange(lw, done, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                        self.readers_word(off.group(g) + G_ABANDONED).fetch_add(1, Ordering::Relaxed);
                        outcome = Some(Released::Abandoned(c));
                    }
                }
            }
        }
        if matches!(outcome, Some(Released::Redelivered(_))) {
            // The claim cursor was pulled back to the held message: the gate moved backwards, from our cursor to
            // the group's. Bump the epoch before clearing our cursor, so a publisher's gate scan that read the
            // group cursor before the pull-back and sees our cursor cleared scans again (see `scan_gate`). SeqCst
            // RMW: ordered after the pull-back and before the clear below.
            self.readers_word(R_EPOCH).fetch_add(1, Ordering::SeqCst);
        }
        // Everything above happens before the slot stops gating (the Release store in `vacate_subscriber`).
        self.vacate_subscriber(s, waiter);
        if outcome.is_some() {
            self.wake_subscribers(waiter);
        }
        Ok(outcome)
    }
}

/// What [`Admin::release_subscriber`] did with a dead member's held message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// Put back for another member.
    Redelivered(u64),
    /// Counted as abandoned.
    Abandoned(u64),
}
