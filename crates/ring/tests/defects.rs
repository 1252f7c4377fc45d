//! Regression tests for the defects of the ring-correctness issue, each named after its defect. Each one failed on
//! the code before its fix.
#![cfg(not(loom))]

mod common;

use common::{flows, publ, sub};
use shmbus_ring::*;

/// Defect 1: a group opened after the ring has lapped must work (ledger words reset when the group opens).
#[test]
fn late_group_after_the_ring_lapped_delivers_every_message() {
    for from_oldest in [false, true] {
        let t = Admin::heap(&Geometry::new(4, 64, 4096, 1, 4, 2), 0).unwrap();
        let mut p = publ(&t, 0);
        for i in 0..8u8 {
            p.try_send(&[i]).unwrap();
        }
        t.open_group(0, from_oldest, &PollWaiter, &|_| false).unwrap();
        let mut m = sub(&t, 0, Mode::Group(0));
        let mut got = Vec::new();
        if from_oldest {
            // The oldest position still retained is `tail - capacity + 1`: messages 5..8.
            for _ in 0..3 {
                got.push(m.try_recv().unwrap_or_else(|e| panic!("from_oldest: {e}")).payload()[0]);
            }
        }
        for i in 8..40u8 {
            p.try_send(&[i]).unwrap_or_else(|e| panic!("send {i} (from_oldest {from_oldest}): {e}"));
            got.push(
                m.try_recv().unwrap_or_else(|e| panic!("recv after {i} (from_oldest {from_oldest}): {e}")).payload()[0],
            );
        }
        let want: Vec<u8> = if from_oldest { (5..40).collect() } else { (8..40).collect() };
        assert_eq!(got, want, "from_oldest {from_oldest}");
        assert_eq!(m.try_recv().unwrap_err(), RecvError::Empty);
    }
}

/// Defect 1, second half: a group closed and opened again at the same index after more laps works too.
#[test]
fn group_reopened_after_laps_works() {
    let t = Admin::heap(&Geometry::new(4, 64, 4096, 1, 4, 2), 0).unwrap();
    let mut p = publ(&t, 0);
    t.open_group(0, false, &PollWaiter, &|_| false).unwrap();
    {
        let mut m = sub(&t, 0, Mode::Group(0));
        for i in 0..3u8 {
            p.try_send(&[i]).unwrap();
            assert_eq!(m.try_recv().unwrap().payload(), &[i]);
        }
        let slot = m.slot();
        m.detach();
        let _ = t.release_subscriber(slot, &PollWaiter);
    }
    reopen_and_flow(&t, &mut p, 3..20);
}

/// Closes group 0, sends `gap` with no group open, reopens the group at the tail, and checks that a new member
/// (slot 1) gets the next 16 messages as they are sent.
fn reopen_and_flow(t: &Admin, p: &mut Publisher, gap: std::ops::Range<u8>) {
    t.close_group(0, &PollWaiter).unwrap();
    let next = gap.end;
    for i in gap {
        p.try_send(&[i]).unwrap();
    }
    t.open_group(0, false, &PollWaiter, &|_| false).unwrap();
    let mut m = sub(t, 1, Mode::Group(0));
    flows(p, &mut m, next..next + 16);
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i as usize * 31 + k * 7 + 1) as u8).collect()
}

/// Defect 3: a group opened from the oldest message after the payload region was reclaimed must never hand out
/// another message's bytes (a lossless subscriber at the same position gets `Lagged`).
#[test]
fn late_group_never_gets_a_reclaimed_payload() {
    // Four 600-byte messages into a region that holds two of them.
    let t = Admin::heap(&Geometry::new(8, 600, 1200, 1, 4, 1), 0).unwrap();
    let mut p = publ(&t, 0);
    for i in 0..4u64 {
        p.try_send(&payload(i, 600)).unwrap();
    }
    t.open_group(0, true, &PollWaiter, &|_| false).unwrap();
    let mut m = sub(&t, 0, Mode::Group(0));
    let (mut got, mut lagged) = (Vec::new(), 0u64);
    loop {
        match m.try_recv() {
            Ok(msg) => {
                assert_eq!(msg.payload(), &payload(msg.seq(), 600)[..], "seq {} carries another message", msg.seq());
                got.push(msg.seq());
            }
            Err(RecvError::Lagged(n)) => lagged += n,
            Err(RecvError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.len() as u64 + lagged, 4, "every message is delivered or counted: got {got:?}, lagged {lagged}");
    assert!(got.contains(&3), "the newest message is intact: {got:?}");
}

/// Offset of index entry `i`'s meta word in the data object (mirrors layout.rs: four header lines, one line per
/// publisher slot, then the index; `tests/untrusted.rs` checks the same mirror against the crate).
fn entry_meta(geo: &Geometry, i: u64) -> usize {
    4 * 128 + 128 * geo.max_publishers as usize + (i % geo.capacity as u64) as usize * geo.entry_bytes as usize + 8
}

/// Defect 7: a corrupted entry is reported once, counted, and passed; it neither returns `Corrupted` forever nor
/// keeps gating publishers.
#[test]
fn a_corrupted_entry_is_reported_once_and_passed() {
    for mode in [Mode::Lossless, Mode::Lossy] {
        let geo = Geometry::new(4, 64, 4096, 1, 4, 0);
        let data = Region::heap(geo.data_len());
        let readers = Region::heap(geo.readers_len());
        let t = Admin::create(data.clone(), readers, &geo, 0, 1).unwrap();
        let mut s = sub(&t, 0, mode);
        let mut p = publ(&t, 0);
        for i in 0..3u8 {
            p.try_send(&[i; 4]).unwrap();
        }
        // Entry 1 now claims a length beyond the topic's maximum.
        let meta = data.peek_word(entry_meta(&geo, 1));
        data.poke_word(entry_meta(&geo, 1), (meta & !0xffff_ffff) | 0xffff_fff0);
        assert_eq!(s.try_recv().unwrap().payload(), &[0; 4], "{mode:?}");
        assert!(matches!(s.try_recv(), Err(RecvError::Corrupted { .. })), "{mode:?}: reported");
        assert_eq!(s.try_recv().unwrap().payload(), &[2; 4], "{mode:?}: passed, not stuck");
        assert_eq!(t.stats().subscribers[0].skipped, 1, "{mode:?}: counted");
        // Nothing holds publishers back: the whole ring is free again.
        for i in 3..7u8 {
            p.try_send(&[i; 4]).unwrap_or_else(|e| panic!("{mode:?}: send {i}: {e}"));
        }
        for i in 3..7u8 {
            assert_eq!(s.try_recv().unwrap().payload(), &[i; 4], "{mode:?}");
        }
    }
}

/// Defect 1, the stale-hold case: a member died holding a message of the group's previous incarnation, so its
/// ledger word waits for a redelivery that never comes; a group reopened exactly one lap later must not retract
/// on it for ever (the ledger reset at open covers what the two-laps-behind rule cannot).
#[test]
fn group_reopened_over_a_dead_members_hold_works() {
    let t = Admin::heap(&Geometry::new(4, 64, 4096, 1, 4, 1), 0).unwrap();
    t.set_group_redelivery(0, true);
    let mut p = publ(&t, 0);
    t.open_group(0, false, &PollWaiter, &|_| false).unwrap();
    let mut dying = sub(&t, 0, Mode::Group(0));
    p.try_send(&[0]).unwrap();
    let held = dying.try_recv().unwrap();
    assert_eq!(held.seq(), 0);
    std::mem::forget(held);
    std::mem::forget(dying);
    // The daemon's order when the last member's lease ends: reclaim its slot, then close the group.
    assert_eq!(t.release_subscriber(0, &PollWaiter).unwrap(), Some(Released::Redelivered(0)));
    // Reopened at the tail (4), whose entry is the one the dead member held a lap ago.
    reopen_and_flow(&t, &mut p, 1..4);
}
