//! The consumer-group member protocol: taking messages from the group's claim cursor, one member each.
//!
//! A member announces the position it is about to take in its own cursor word (gating), claims the position in
//! the group's ledger with a compare-and-swap, and moves the claim cursor past it; redelivered messages of dead
//! members are taken the same way. Its hold ends when the message is released.

use super::{Poll, Subscriber};
use crate::error::RecvError;
use crate::layout::*;
use crate::stamp::{cursor, lap_diff, lap_of, Stamp, State};
use crate::sync::{AtomicU64, Ordering};

/// One round of a member's poll: the position `c` it looks at, and the shared words that decide it.
struct Round<'t> {
    /// The group.
    g: usize,
    /// The position, and its lap.
    c: u64,
    lap: u64,
    /// The group's claim cursor, and the word loaded from it this round.
    next: &'t AtomicU64,
    nw: u64,
    /// Our own cursor word (our announcement).
    me: &'t AtomicU64,
    /// The ledger word of `c`, and the value loaded from it this round.
    ledger: &'t AtomicU64,
    lw: u64,
}

/// What a round decided: `Some` ends the poll with it, `None` looks again.
type Outcome = Option<Result<Poll, RecvError>>;

impl Round<'_> {
    /// A ledger word or entry stamp a lap ahead of `c` means our claim cursor value is stale (we were
    /// preempted after loading it while the group and the publishers moved on), not corruption: whoever
    /// wrote that word had seen the claim cursor past `c`, and our Acquire load of the word makes that
    /// visible to this re-load (tag GROUP_NEXT). Only a word ahead of a cursor that is still `c` is corrupt.
    /// (Found by loom, `group_member_dies_while_publishing_concurrent_recovery`.)
    fn overtaken(&self) -> bool {
        self.next.load(Ordering::Acquire) != self.nw
    }

    /// Moves the group's claim cursor from `c` past it; `false` if it had moved already.
    fn advance(&self) -> bool {
        self.next
            .compare_exchange(
                cursor::pack(cursor::ACTIVE | cursor::GATING, self.c),
                cursor::pack(cursor::ACTIVE | cursor::GATING, self.c.wrapping_add(1)),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

impl Subscriber {
    /// A member takes the next message of its group.
    pub(super) fn poll_member(&mut self, g: usize) -> Result<Poll, RecvError> {
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
            self.announce(me, c, announced.replace(c));
            let ledger = topic.readers_word(off.ledger(g, c));
            let lw = ledger.load(Ordering::Acquire);
            let round = Round { g, c, lap: lap_of(c, off.shift), next, nw, me, ledger, lw };
            if let Some(outcome) = self.member_round(&round) {
                return outcome;
            }
            rounds += 1;
            if rounds > 4 * off.geo.capacity {
                // Contention only; let the caller's idle strategy run.
                return Ok(self.retract(me, c));
            }
            crate::sync::spin_hint();
        }
    }

    /// Announces the position `c` we are about to take before taking it, so the gate never misses it.
    /// `previous` is the position announced in the round before, if any.
    fn announce(&self, me: &AtomicU64, c: u64, previous: Option<u64>) {
        // Release: ordered before the ledger CAS that claims it.
        me.store(cursor::pack(cursor::ACTIVE | cursor::GATING, c), Ordering::Release);
        if previous.is_some_and(|a| a != c) {
            // Our previous announcement was a stale position, which may have held a publisher back: moving on
            // frees it (see `retract`).
            self.topic.wake_publishers(&*self.waiter);
        }
    }

    /// Decides one round by the ledger word of `c`.
    fn member_round(&mut self, r: &Round<'_>) -> Outcome {
        let l = Stamp::unpack(r.lw);
        match (lap_diff(l.lap, r.lap), l.state) {
            // Fresh position: is the message there?
            (-1, State::Published) => self.take_fresh(r),
            // Two or more laps behind: no member of this incarnation of the group has served this word yet (an
            // open group gates publishers, so while it lives every word is at most one lap behind its next
            // position). A group opened late, after the ring lapped, starts that way at positions its raised
            // start moved past the ledger reset in `Admin::open_group`: fresh too.
            (d, _) if d <= -2 => self.take_fresh(r),
            // A dead member's message, put back for redelivery.
            (0, State::Skipped) => {
                if self.hold(r, r.lw) {
                    self.count_redelivered(r.g);
                    r.advance();
                    return Some(self.deliver_member(r.c));
                }
                None
            }
            // Taken by another member, or done: help the claim cursor past it.
            (0, _) => self.help_past(r),
            // The previous lap's message in this ledger word is still held by a member (or waits for
            // redelivery while `release_subscriber` pulls the claim cursor back): that hold gates publishers,
            // so `c` cannot have been published yet. Nothing to take; not corruption.
            (-1, State::Claimed | State::Skipped) => Some(Ok(self.retract(r.me, r.c))),
            _ if r.overtaken() => None,
            _ => Some(Err(RecvError::Corrupted { what: "group ledger inconsistent with its cursor" })),
        }
    }

    /// A fresh ledger word: take the message at `c` if it is published, pass a skip marker, or find nothing yet.
    fn take_fresh(&mut self, r: &Round<'_>) -> Outcome {
        let sw = self.topic.data_word(self.topic.off().entry(r.c) + E_STAMP).load(Ordering::Acquire);
        let s = Stamp::unpack(sw);
        match (lap_diff(s.lap, r.lap), s.state) {
            // Not written yet, whatever the lap: nothing to take.
            (_, State::Pristine) => Some(Ok(self.retract(r.me, r.c))),
            (0, State::Published) => {
                if self.hold(r, r.lw) {
                    r.advance();
                    return Some(self.deliver_member(r.c));
                }
                None
            }
            (0, State::Skipped) => {
                let done = Stamp::pack(r.lap, State::Published, self.slot as u32);
                if r.ledger.compare_exchange(r.lw, done, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    self.skipped = self.skipped.wrapping_add(1);
                    self.slot_word(S_SKIPPED).store(self.skipped, Ordering::Relaxed);
                    if r.advance() {
                        // Passing a skip marker moves the group's gate with no release to announce
                        // it: wake publishers that slept on it (see the helping case in `help_past`).
                        self.topic.wake_publishers(&*self.waiter);
                    }
                }
                None
            }
            (d, _) if d < 0 || s.state == State::Claimed => Some(Ok(self.retract(r.me, r.c))),
            _ if r.overtaken() => None,
            _ => Some(Err(RecvError::Corrupted { what: "group cursor behind the ring" })),
        }
    }

    /// `c` is taken by another member or done: help the claim cursor past it.
    fn help_past(&mut self, r: &Round<'_>) -> Outcome {
        if !r.advance() {
            return None;
        }
        // ABA guard. Between our loads of the claim cursor and of the ledger word (which showed
        // `c` held by another member) and this CAS, that member may have died and
        // `release_subscriber` marked `c` for redelivery and pulled the cursor back to `c`: the CAS
        // then succeeded on the pulled-back value and would skip the redelivery for good. Recovery
        // stores the Skipped mark before pulling back, and our AcqRel CAS read the pulled-back value
        // (tag GROUP_NEXT), so the mark is visible now: take the message ourselves. Our announced
        // position still gates it.
        let again = r.ledger.load(Ordering::Acquire);
        let a = Stamp::unpack(again);
        if (lap_diff(a.lap, r.lap), a.state) == (0, State::Skipped) && self.hold(r, again) {
            self.count_redelivered(r.g);
            return Some(self.deliver_member(r.c));
        }
        // Helping the claim cursor past a position already taken moves the group's gate with no
        // release to announce it: its taker's release may have come while the cursor still gated
        // (a taker whose own advance lost to a pull-back by `release_subscriber`, or a pull-back
        // that came after the redelivered message was already taken and released). Wake
        // publishers sleeping on the gate (found by loom, `group_member_dies_while_publishing`).
        self.topic.wake_publishers(&*self.waiter);
        None
    }

    /// Claims `c` for this member in the ledger, if the ledger word still holds `expected`.
    fn hold(&self, r: &Round<'_>, expected: u64) -> bool {
        let held = Stamp::pack(r.lap, State::Claimed, self.slot as u32);
        // AcqRel: the ledger word decides which member owns `c` and records it.
        r.ledger.compare_exchange(expected, held, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    fn count_redelivered(&self, g: usize) {
        // Relaxed: a statistics counter.
        self.topic.readers_word(self.topic.off().group(g) + G_REDELIVERED).fetch_add(1, Ordering::Relaxed);
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
}
