//! Encodings of the words the protocol races on: entry stamps, ledger words and cursor words, plus the
//! wrap-around arithmetic on sequence numbers.
//!
//! Sequences are `u64` and wrap; every comparison goes through a signed difference, so a topic may start at any
//! origin (tests start near `u64::MAX`).

/// Bits of an entry stamp holding the owner (publisher slot, or subscriber slot in a ledger word).
pub const OWNER_BITS: u32 = 14;
/// Shift of the two state bits.
pub const STATE_SHIFT: u32 = OWNER_BITS;
/// Shift of the 48-bit lap number.
pub const LAP_SHIFT: u32 = 16;
/// Mask of the (truncated) lap number once shifted down.
pub const LAP_MASK: u64 = (1 << 48) - 1;
const OWNER_MASK: u64 = (1 << OWNER_BITS) - 1;

/// State of an index entry (or of a consumer-group ledger word).
///
/// Layout 4: the word 0 is [`State::Pristine`], what a zero-filled page holds, so a topic's index needs no
/// writing at creation (and none of its pages committed) and the owner may punch the pages of an idle topic out
/// again (issue 13). Every word the protocol stores has a non-zero state code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum State {
    /// Index only: the word 0, never written since the page was zero-filled: a free entry (a claimer takes it as
    /// the previous lap's), nothing to read yet (a reader waits as for an unpublished entry). Whatever lap the
    /// ring is at, so it needs no origin of its own. Never stored by [`Stamp::pack`]'s callers.
    Pristine = 0,
    /// Index: claimed by its owner, being written. Ledger: handed to the member named by the owner bits.
    Claimed = 1,
    /// Index: published. Ledger: done (consumed, skipped or abandoned).
    Published = 2,
    /// Index: a cancelled claim or an aborted loan, readers pass over it. Ledger: waiting to be redelivered.
    Skipped = 3,
    /// State code 0 with a non-zero lap or owner: never written by the protocol, so corruption.
    Invalid = 4,
}

/// A decoded stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Lap number (sequence >> log2(capacity)), truncated to 48 bits.
    pub lap: u64,
    /// Entry state.
    pub state: State,
    /// Owner slot.
    pub owner: u32,
}

impl Stamp {
    /// Packs a stamp into a word (`state` is [`State::Claimed`], [`State::Published`] or [`State::Skipped`];
    /// the other two have no code of their own).
    #[inline]
    pub fn pack(lap: u64, state: State, owner: u32) -> u64 {
        ((lap & LAP_MASK) << LAP_SHIFT) | (((state as u64) & 3) << STATE_SHIFT) | (owner as u64 & OWNER_MASK)
    }

    /// Unpacks a word.
    #[inline]
    pub fn unpack(w: u64) -> Stamp {
        let state = match (w >> STATE_SHIFT) & 3 {
            1 => State::Claimed,
            2 => State::Published,
            3 => State::Skipped,
            _ if w == 0 => State::Pristine,
            _ => State::Invalid,
        };
        Stamp { lap: w >> LAP_SHIFT, state, owner: (w & OWNER_MASK) as u32 }
    }
}

/// Lap of `seq` for a ring of `1 << shift` entries, truncated to 48 bits.
#[inline]
pub fn lap_of(seq: u64, shift: u32) -> u64 {
    (seq >> shift) & LAP_MASK
}

/// Signed difference `a - b` of two truncated laps.
#[inline]
pub fn lap_diff(a: u64, b: u64) -> i64 {
    let d = a.wrapping_sub(b) & LAP_MASK;
    if d >= 1 << 47 {
        d as i64 - (1i64 << 48)
    } else {
        d as i64
    }
}

/// Signed difference `a - b` of two sequences.
#[inline]
pub fn seq_diff(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

/// Cursor words: bit 63 = active, bit 62 = gating (holds publishers back), low 62 bits = sequence.
pub mod cursor {
    /// The slot is in use.
    pub const ACTIVE: u64 = 1 << 63;
    /// The position gates publishers (lossless subscriber, group, or a member's held message).
    pub const GATING: u64 = 1 << 62;
    /// Mask of the sequence bits.
    pub const SEQ_MASK: u64 = (1 << 62) - 1;

    /// Packs flags and a sequence.
    #[inline]
    pub fn pack(flags: u64, seq: u64) -> u64 {
        flags | (seq & SEQ_MASK)
    }

    /// Expands the truncated sequence of `word` to a full sequence near `reference` (within ±2^61).
    #[inline]
    pub fn expand(word: u64, reference: u64) -> u64 {
        let low = word & SEQ_MASK;
        let d = reference.wrapping_sub(low) & SEQ_MASK;
        if d >= 1 << 61 {
            // `low` is ahead of the reference.
            reference.wrapping_add((1u64 << 62) - d)
        } else {
            reference.wrapping_sub(d)
        }
    }

    /// Whether the word has all of `flags`.
    #[inline]
    pub fn has(word: u64, flags: u64) -> bool {
        word & flags == flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stamp_roundtrip(lap in 0u64..=LAP_MASK, st in 0u64..3, owner in 0u32..(1 << OWNER_BITS)) {
            let state = [State::Claimed, State::Published, State::Skipped][st as usize];
            let s = Stamp::unpack(Stamp::pack(lap, state, owner));
            prop_assert_eq!(s, Stamp { lap, state, owner });
            prop_assert_ne!(Stamp::pack(lap, state, owner), 0, "a stored stamp never reads as pristine");
        }

        #[test]
        fn state_code_zero_is_pristine_only_as_the_zero_word(w in any::<u64>()) {
            let s = Stamp::unpack(w & !(3 << STATE_SHIFT));
            prop_assert_eq!(s.state, if w & !(3 << STATE_SHIFT) == 0 { State::Pristine } else { State::Invalid });
        }

        #[test]
        fn lap_diff_across_wrap(seq in any::<u64>(), shift in 1u32..25, k in -1000i64..1000) {
            let other = seq.wrapping_add((k as u64).wrapping_shl(shift));
            prop_assert_eq!(lap_diff(lap_of(other, shift), lap_of(seq, shift)), k);
        }

        #[test]
        fn cursor_expand_across_wrap(reference in any::<u64>(), delta in -(1i64 << 40)..(1i64 << 40)) {
            let seq = reference.wrapping_add(delta as u64);
            let w = cursor::pack(cursor::ACTIVE, seq);
            prop_assert_eq!(cursor::expand(w, reference), seq);
            prop_assert_eq!(seq_diff(seq, reference), delta);
        }
    }
}
