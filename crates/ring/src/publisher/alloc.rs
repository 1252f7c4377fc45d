//! A publisher's own payload region: allocation in its order, and reclaiming what no gating cursor needs any
//! more (the gate is scanned only when the cached one says no).

use super::Publisher;
use crate::error::SendError;
use crate::layout::*;
use crate::stamp::seq_diff;
use crate::sync::Ordering;

impl Publisher {
    /// Whether this publisher's message `seq` may be overwritten (no gating cursor still needs it).
    pub(super) fn may_free(&mut self, seq: u64) -> bool {
        let ok = |g: Option<u64>| g.is_none_or(|g| seq_diff(seq, g) < 0);
        if self.gate_valid && ok(self.gate) {
            return true;
        }
        self.scan_gate(seq.wrapping_add(1));
        ok(self.gate)
    }

    /// Scans the gate into `self.gate`; a scan that could not settle (the epoch kept changing) gates everything
    /// and is counted (see `Topic::scan_gate`).
    /// Out of line, and its result goes to `self` word by word (see `Publisher::send_deadline` on results read
    /// back through memory).
    #[inline(never)]
    pub(super) fn scan_gate(&mut self, reference: u64) {
        let (gate, settled) = self.topic.scan_gate(reference);
        self.gate = gate;
        self.gate_valid = true;
        if !settled {
            // Wrapping: see `self.full` in `reserve`. Relaxed: statistics, single writer.
            self.gate_unsettled = self.gate_unsettled.wrapping_add(1);
            self.slot_word(P_GATE_UNSETTLED).store(self.gate_unsettled, Ordering::Relaxed);
        }
    }

    /// Reserves `len` bytes in this publisher's region; returns the logical start and end.
    pub(super) fn allocate(&mut self, len: usize) -> Result<(u64, u64), SendError> {
        let r = self.topic.geometry().region_bytes;
        let need = (len as u64).div_ceil(8) * 8;
        let phys = self.head % r;
        // Wrapping: logical positions are compared with wrapping differences everywhere, and a frontier taken over
        // from shared memory (see `attach`) may be anywhere, e.g. next to `u64::MAX` (plain `+` overflowed, a
        // panic in debug builds; found by `tests/untrusted.rs`).
        let start = if phys + need > r { self.head.wrapping_add(r - phys) } else { self.head };
        let end = start.wrapping_add(need);
        if start % r + need > r {
            // Only a corrupted frontier taken over at attach gets here (a `start` that wrapped past `u64::MAX` with
            // `r` not a power of two): refuse rather than write past the end of our region.
            return Err(SendError::Corrupted { what: "payload region position out of range" });
        }
        loop {
            if self.fifo.is_empty() {
                // Nothing of ours is live: everything before `start` is free.
                self.reclaimed = start;
            }
            if end.wrapping_sub(self.reclaimed) <= r {
                return Ok((start, end));
            }
            let (seq, e) = *self.fifo.front().expect("non-empty");
            if !self.may_free(seq) {
                return Err(SendError::Full);
            }
            self.reclaimed = e;
            self.fifo.pop_front();
        }
    }
}
