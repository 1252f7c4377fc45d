//! Returning an idle topic's memory (issue 13): the owner forgets what the topic retains, so it may punch the
//! pages of the index ring and the payload regions out of the objects. Zero-filled again, every entry reads as
//! pristine ([`State::Pristine`](crate::stamp::State::Pristine)): free to the next claimer, nothing to read for a
//! reader, at whatever lap the ring is. Nothing that anyone could still read is lost: the owner does it only when
//! no handle is attached, and [`Admin::forget_retained`] refuses while anything is unread or in flight.

use crate::admin::Admin;
use crate::layout::*;
use crate::stamp::{cursor, seq_diff};
use crate::sync::Ordering;

/// Why [`Admin::forget_retained`] refused: the topic is not idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotIdle {
    /// A subscriber slot is in use (its cursor may still read retained entries).
    Subscriber(usize),
    /// An open consumer group has messages its members have not taken yet.
    Group(usize),
    /// A publisher slot is inside a claim phase (a claim whose entry is not settled).
    Claiming(usize),
}

impl std::fmt::Display for NotIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotIdle::Subscriber(s) => write!(f, "subscriber slot {s} is in use"),
            NotIdle::Group(g) => write!(f, "consumer group slot {g} has unread messages"),
            NotIdle::Claiming(p) => write!(f, "publisher slot {p} is inside a claim"),
        }
    }
}

impl Admin {
    /// Forgets every retained message, so the caller may punch the pages of the index ring and of the payload
    /// regions (`Extents::index` and `Extents::payload`) out of the objects afterwards: the retention floor moves
    /// to the tail (no reader is ever started below it, "from the oldest" included) and every publisher slot's
    /// claim-phase counter goes back to 0 (nothing claimed since: the owner's reclaim scan has nothing to look
    /// for, and never reads, so never faults in, the returned pages).
    ///
    /// The caller guarantees that no handle is attached (the daemon: no lease of the topic, under the lock that
    /// grants leases) and that the claims of departed publishers were cancelled (every lease's end does it).
    /// Refused, changing nothing, while a subscriber slot is in use, an open group has messages it has not
    /// taken, or a publisher slot is inside a claim phase.
    ///
    /// Any part of those pages may stay (a punch frees whole pages only): an entry that keeps its stamp is as
    /// valid as before, an entry zeroed reads as pristine, and either is below the floor, where no reader goes.
    pub fn forget_retained(&self) -> Result<(), NotIdle> {
        let geo = self.geometry();
        let off = *self.off();
        for (w, bits) in self.subscriber_slots_in_use().iter().enumerate() {
            if *bits != 0 {
                return Err(NotIdle::Subscriber(w * 64 + bits.trailing_zeros() as usize));
            }
        }
        for s in 0..geo.max_subscribers as usize {
            if self.subscriber_active(s) {
                return Err(NotIdle::Subscriber(s));
            }
        }
        let tail = self.tail();
        for g in 0..geo.max_groups as usize {
            // Acquire: pairs with the members' Release advances of the group cursor.
            let w = self.readers_word(off.group(g) + G_NEXT).load(Ordering::Acquire);
            if cursor::has(w, cursor::ACTIVE) && seq_diff(cursor::expand(w, tail), tail) < 0 {
                return Err(NotIdle::Group(g));
            }
        }
        for p in 0..geo.max_publishers as usize {
            if self.claim_phases(p).is_some_and(|v| v & 1 == 1) {
                return Err(NotIdle::Claiming(p));
            }
        }
        for p in 0..geo.max_publishers as usize {
            // Release (tag SENDS): the next holder of the slot starts its counter from here.
            self.data_word(off.pub_slot(p) + P_SENDS).store(0, Ordering::Release);
        }
        // Release: a reader that later loads the floor with Acquire (at attach, after the lease that follows)
        // sees the tail it was taken from.
        self.data_word(H_FLOOR).store(tail, Ordering::Release);
        Ok(())
    }
}
