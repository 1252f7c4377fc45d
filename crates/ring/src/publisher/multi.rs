//! The claim on a topic with several publishers (issue 10, fan-in; ARCHITECTURE.md 9.2, 9.10): the tail's
//! compare-and-swap, then a plain stamp store; and the fault-injection hook that stops between the two.

use super::Publisher;
use crate::error::SendError;
use crate::layout::*;
use crate::stamp::{lap_diff, lap_of, seq_diff, Stamp, State};
use crate::sync::Ordering;

impl Publisher {
    /// A claim on a topic with several publishers: the tail's compare-and-swap alone decides who owns entry
    /// `seq` (64-bit sequences: while the tail reads `seq` nobody has taken entry `seq` at this lap, so there is
    /// no ABA), then the claim stamp is a plain store, as a single producer's. The locked instruction is on the
    /// tail's line, which only publishers touch (multi-producer readers poll the entry), not on the entry's,
    /// which the reader holds (issue 10, fan-in; ARCHITECTURE.md 9.10).
    ///
    /// Between the compare-and-swap and the stamp store the entry is a *vacancy*: below the tail, stamped at its
    /// previous lap. Readers wait at it as at a claim; a claimer that dies there is found by
    /// [`Admin::settle_vacancies`](crate::Admin::settle_vacancies) from the claim-phase counters.
    pub(super) fn claim_multi(&mut self) -> Result<u64, SendError> {
        let (seq, lap) = self.take_tail()?;
        let stamp = self.topic.data_word(self.topic.off().entry(seq) + E_STAMP);
        // Relaxed: the Release fence in `claim` orders it before the payload and fields (tag SEQLOCK).
        stamp.store(Stamp::pack(lap, State::Claimed, self.slot as u32), Ordering::Relaxed);
        Ok(seq)
    }

    /// The first half of [`Publisher::claim_multi`]: the gate, the previous occupant, the tail's
    /// compare-and-swap. Returns the sequence taken and its lap; the entry is a vacancy until stamped.
    #[inline(always)]
    fn take_tail(&mut self) -> Result<(u64, u64), SendError> {
        let off = *self.topic.off();
        let mut strange = 0;
        loop {
            // Acquire: pairs with the AcqRel compare-and-swap of the claimer of `seq - 1` (its claim phase began
            // before it: see `settle_vacancies`).
            let seq = self.topic.data_word(D_TAIL).load(Ordering::Acquire);
            self.check_gate(seq)?;
            let tail = self.topic.data_word(D_TAIL);
            let lap = lap_of(seq, off.shift);
            let stamp = self.topic.data_word(off.entry(seq) + E_STAMP);
            // The previous occupant must be finished. (A gating cursor past `seq - capacity` does not prove it: a
            // subscriber that attached above a long-held loan never passed it.) Acquire: pairs with the Release
            // publish (or cancellation) of the entry's previous occupant.
            let s = Stamp::unpack(stamp.load(Ordering::Acquire));
            match (lap_diff(s.lap, lap), s.state) {
                (-1, State::Published | State::Skipped) => {}
                // Pristine is free on the first lap after the retention floor only: further on it is an entry a
                // claimer took at its first lap and never stamped (a vacancy), not ours to reuse.
                (_, State::Pristine) if self.first_lap(seq) => {}
                // An older claim still unpublished, or a vacancy from a lap ago: never overwrite it.
                (-1, State::Claimed) | (_, State::Pristine) | (-2, _) => return Err(SendError::Full),
                // Our tail load is stale (someone claimed `seq` and stamped it): look again. Counted with the
                // strange cases: a tail that stays there with its entry stamped is corruption (untrusted memory
                // must not make a publisher spin for ever; found by `tests/untrusted.rs`).
                _ => {
                    strange += 1;
                    if strange > 1000 {
                        return Err(SendError::Corrupted { what: "index entry inconsistent with the tail" });
                    }
                    crate::sync::spin_hint();
                    continue;
                }
            }
            // AcqRel: Release publishes our claim phase's start (the odd counter) to whoever reads this tail, which
            // `settle_vacancies` relies on; Acquire orders our writes after the previous claimer's.
            if tail.compare_exchange(seq, seq.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return Ok((seq, lap));
            }
            crate::sync::spin_hint();
        }
    }

    /// Fault injection for tests: what a multi-producer claimer killed between its tail compare-and-swap and its
    /// stamp store leaves behind: its claim phase open and, unless the ring is full (`Err(Full)`), a vacancy at
    /// the returned sequence. The handle is forgotten, as a dead process's would be. Not for use outside tests;
    /// on a single-producer topic it is `Err(Full)` without a claim (no vacancy exists there).
    #[doc(hidden)]
    pub fn vanish_after_claim(mut self) -> Result<u64, SendError> {
        let r = self.vanish_in_place();
        std::mem::forget(self);
        r
    }

    /// [`Publisher::vanish_after_claim`] for a handle the caller cannot move (one inside a client library's
    /// publisher): afterwards the handle must never be used or dropped, only leaked with its process.
    #[doc(hidden)]
    pub fn vanish_in_place(&mut self) -> Result<u64, SendError> {
        self.enter_claim_phase();
        if self.single {
            return Err(SendError::Full);
        }
        self.take_tail().map(|(seq, _)| seq)
    }

    /// Whether `seq` is on the first lap after the retention floor (where a pristine entry is free).
    #[cold]
    fn first_lap(&self, seq: u64) -> bool {
        // Acquire: pairs with the owner's Release store of the floor.
        let floor = self.topic.data_word(H_FLOOR).load(Ordering::Acquire);
        let d = seq_diff(seq, floor);
        d >= 0 && d < self.cap as i64
    }
}
