//! Counters read straight from shared memory, without disturbing the hot path.

use crate::layout::*;
use crate::stamp::{cursor, seq_diff};
use crate::sync::Ordering;
use crate::topic::Topic;

/// Per-publisher counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Slot index.
    pub slot: usize,
    /// Messages published.
    pub published: u64,
    /// Payload bytes published.
    pub bytes: u64,
    /// Sends refused or delayed because the topic was full.
    pub full: u64,
    /// Loans dropped without committing.
    pub aborted: u64,
    /// Gate scans given up because the readers object's attach epoch kept changing under them (each refused the
    /// send as `Full`); anything but a rare count means a subscriber is misbehaving.
    pub gate_unsettled: u64,
    /// Whether it is asleep waiting for space (its bit in the space-waiter mask is raised).
    pub sleeping: bool,
}

/// Per-subscriber position and counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Slot index.
    pub slot: usize,
    /// Next sequence it will read (or the position a group member holds / looks at).
    pub position: u64,
    /// Messages between its position and the tail.
    pub lag: u64,
    /// Whether it holds publishers back.
    pub gating: bool,
    /// Consumer group index, if a member.
    pub group: Option<usize>,
    /// Messages received. A lossless subscriber stores it with its cursor, so it lags the subscriber by at most
    /// the cursor batch (`capacity / 16`, at most 32) while messages are waiting, and is exact once it caught up.
    pub received: u64,
    /// Messages passed over after being lapped.
    pub lagged: u64,
    /// Skip markers passed over.
    pub skipped: u64,
    /// Whether it was demoted by the slow-consumer bound.
    pub demoted: bool,
    /// Whether it is asleep waiting for data (its bit in the data-waiter mask is raised).
    pub sleeping: bool,
}

/// Per-group counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Group index.
    pub index: usize,
    /// The group's claim cursor.
    pub next: u64,
    /// Messages redelivered after a member died.
    pub redelivered: u64,
    /// Messages abandoned by dead members.
    pub abandoned: u64,
}

/// A snapshot of a topic's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicStats {
    /// Next sequence to be claimed.
    pub tail: u64,
    /// Whether the topic is closed.
    pub closed: bool,
    /// Claims of dead publishers cancelled.
    pub cancelled: u64,
    /// Semaphore posts issued to wake sleepers.
    pub wakeups: u64,
    /// Slow-consumer demotions.
    pub demotions: u64,
    /// Publisher slots that ever published.
    pub publishers: Vec<PublisherStats>,
    /// Subscriber slots in use.
    pub subscribers: Vec<SubscriberStats>,
    /// Open groups.
    pub groups: Vec<GroupStats>,
}

impl Topic {
    /// Reads every counter (Relaxed loads: a snapshot, not a consistent cut).
    pub fn stats(&self) -> TopicStats {
        let geo = self.geometry();
        let off = *self.off();
        let d = |o: usize| self.data_word(o).load(Ordering::Relaxed);
        let r = |o: usize| self.readers_word(o).load(Ordering::Relaxed);
        let tail = self.tail();
        let mut st = TopicStats {
            tail,
            closed: self.is_closed(),
            cancelled: d(D_CANCELLED),
            wakeups: r(R_WAKEUPS),
            demotions: r(R_DEMOTIONS),
            ..Default::default()
        };
        for p in 0..geo.max_publishers as usize {
            let b = off.pub_slot(p);
            let ps = PublisherStats {
                slot: p,
                published: d(b + P_PUBLISHED),
                bytes: d(b + P_BYTES),
                full: d(b + P_FULL),
                aborted: d(b + P_ABORTED),
                gate_unsettled: d(b + P_GATE_UNSETTLED),
                sleeping: self.waiter_bit(R_SPACE_WAITERS, p),
            };
            // Untrusted counters: test each for zero rather than summing them (a corrupted counter near
            // `u64::MAX` made the sum overflow, a panic in debug builds; found by `tests/untrusted.rs`).
            if ps.published != 0 || ps.full != 0 || ps.aborted != 0 || d(b + P_SENDS) != 0 {
                st.publishers.push(ps);
            }
        }
        for s in 0..geo.max_subscribers as usize {
            let b = off.sub_slot(s);
            let w = r(b + S_CURSOR);
            if !cursor::has(w, cursor::ACTIVE) {
                continue;
            }
            let position = cursor::expand(w, tail);
            let flags = r(b + S_FLAGS);
            let group = (flags >> FLAG_GROUP_SHIFT) & 0xff;
            st.subscribers.push(SubscriberStats {
                slot: s,
                position,
                lag: seq_diff(tail, position).max(0) as u64,
                // A demotion releases the gate once acknowledged (see `scan_gate_once`).
                gating: cursor::has(w, cursor::GATING)
                    && flags & (FLAG_DEMOTE | FLAG_DEMOTED_ACK) != FLAG_DEMOTE | FLAG_DEMOTED_ACK,
                group: (group > 0).then(|| group as usize - 1),
                received: r(b + S_RECEIVED),
                lagged: r(b + S_LAGGED),
                skipped: r(b + S_SKIPPED),
                demoted: flags & FLAG_DEMOTE != 0,
                sleeping: self.waiter_bit(R_DATA_WAITERS, s),
            });
        }
        for g in 0..geo.max_groups as usize {
            let b = off.group(g);
            let w = r(b + G_NEXT);
            if cursor::has(w, cursor::ACTIVE) {
                st.groups.push(GroupStats {
                    index: g,
                    next: cursor::expand(w, tail),
                    redelivered: r(b + G_REDELIVERED),
                    abandoned: r(b + G_ABANDONED),
                });
            }
        }
        st
    }

    /// Whether slot `slot`'s bit is raised in the waiter mask at `base` (Relaxed: a snapshot, like the counters;
    /// the bits belong to the sleepers and the wakers, a reader of them changes nothing).
    fn waiter_bit(&self, base: usize, slot: usize) -> bool {
        let (word, bit) = self.readers_mask(base, slot);
        word.load(Ordering::Relaxed) & bit != 0
    }
}
