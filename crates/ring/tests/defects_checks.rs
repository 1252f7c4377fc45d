//! Regression tests for the checks of issue 8 (defects 6, 9 and 10).
//!
//! * Defect 6 (plain payload writes raced lossy readers' atomic loads) is fixed structurally: `Loan` no longer
//!   hands out a `&mut [u8]` over shared memory, and every payload write is a Relaxed atomic word store
//!   (`Region::store_bytes` / `write_bytes`). A data race is not observable by a test on x86 (the old code passed
//!   these tests too; only a race detector such as Miri or TSan would flag it), so what is tested here is that the
//!   writer API that replaced `as_mut_slice` round-trips exactly, piece by piece and under a concurrent lossy
//!   reader that is lapped while it copies. That the old API is gone is checked by the compiler: nothing in the
//!   workspace can call `Loan::as_mut_slice`.
//! * Defect 9 (no model covered the subscriber's cursor Release) is the loom model
//!   `defect_9_cursor_release_orders_reads_before_reuse` in `tests/loom.rs`.
//! * Defect 10 (bounds checks compiled out of release) is tested where the accessor lives, `Region::word` being
//!   crate-private: the `defect_10_*` unit tests in `src/region.rs`, run with `cargo test --release`.
#![cfg(not(loom))] // in-process tests on real memory; the loom models are in tests/loom.rs

use shmbus_ring::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous bound for the threaded test: a hang fails it instead of stalling CI.
const DEADLINE: Duration = Duration::from_secs(60);

fn w() -> Arc<PollWaiter> {
    Arc::new(PollWaiter)
}

fn sub(t: &Topic, slot: usize, mode: Mode) -> Subscriber {
    Subscriber::attach(t, slot, SubscriberOptions { mode, ..Default::default() }, w(), &|_| false).unwrap()
}

fn publ(t: &Topic) -> Publisher {
    Publisher::attach(t, 0, w(), PublisherOptions::default()).unwrap()
}

/// The payload of message `seq` of at most `max` bytes: its length and every byte follow from `seq`, so any
/// reader can check it. Inline and region payloads, word multiples and ragged tails.
fn body(seq: u64, max: usize) -> Vec<u8> {
    let len = (seq as usize * 37) % max + 1;
    (0..len).map(|k| (seq as usize * 131 + k * 7) as u8 ^ 0x5a).collect()
}

/// Writes `msg` into `loan` by one of the three writer APIs, chosen by `how`.
fn write(loan: &mut Loan<'_>, msg: &[u8], how: u64) {
    match how % 3 {
        0 => {
            // Ragged pieces (1, 2, 3, ..., 11 bytes, then one of 9 000 that takes the bulk copy of large
            // messages), so most pieces start and end inside a word.
            let (mut at, mut n) = (0, 1);
            while at < msg.len() {
                let end = (at + n).min(msg.len());
                loan.write_at(at, &msg[at..end]);
                (at, n) = (end, if n == 11 { 9_000 } else { n % 9_000 + 1 });
            }
        }
        1 => loan.copy_from_slice(msg),
        _ => loan.with_buffer(|buf| buf.copy_from_slice(msg)),
    }
}

#[test]
fn defect_6_write_at_keeps_the_neighbouring_bytes() {
    let t = Topic::heap(&Geometry::new(8, 256, 4096, 1, 2, 0), 0).unwrap();
    let mut s = sub(&t, 0, Mode::Lossless);
    let mut p = publ(&t);
    for len in [1, 7, 8, 9, 15, 16, 17, 100, 256] {
        let want: Vec<u8> = (0..len).map(|k| k as u8 ^ 0xa5).collect();
        let mut loan = p.try_loan(len).unwrap();
        // Back to front, one byte at a time: every write is a partial word between bytes already written.
        for k in (0..len).rev() {
            loan.write_at(k, &want[k..k + 1]);
        }
        // Overwrite the middle again, unaligned, without disturbing either end.
        if len > 4 {
            loan.write_at(1, &want[1..len - 1]);
        }
        loan.commit();
        assert_eq!(s.try_recv().unwrap().payload(), &want[..], "len {len}");
    }
}

#[test]
#[should_panic(expected = "lengths differ")]
fn defect_6_copy_from_slice_wants_the_whole_loan() {
    let t = Topic::heap(&Geometry::new(8, 256, 4096, 1, 2, 0), 0).unwrap();
    let mut p = publ(&t);
    p.try_loan(5).unwrap().copy_from_slice(b"four");
}

#[test]
#[should_panic(expected = "past the end")]
fn defect_6_write_at_past_the_end_panics() {
    let t = Topic::heap(&Geometry::new(8, 256, 4096, 1, 2, 0), 0).unwrap();
    let mut p = publ(&t);
    p.try_loan(5).unwrap().write_at(usize::MAX, b"x");
}

/// The new writer API round-trips exactly for a lossless reader while a lossy reader copies the same entries
/// and payload regions concurrently (and is lapped mid-copy): every message the lossy reader returns is intact,
/// the rest are accounted for as `Lagged`.
#[test]
fn defect_6_loan_writers_round_trip_under_a_concurrent_lossy_reader() {
    // Small ring and regions so the lossy reader is lapped and payload bytes are reused while it copies.
    round_trip_under_a_lossy_reader(20_000, 700, 4096);
}

/// The same with messages up to 20 000 bytes: the publisher's and the lossy reader's bulk copies (8 KiB and more,
/// `rep movsb` on x86-64) race each other as the word loops do.
#[test]
fn defect_6_bulk_copies_round_trip_under_a_concurrent_lossy_reader() {
    round_trip_under_a_lossy_reader(4_000, 20_000, 64 * 1024);
}

fn round_trip_under_a_lossy_reader(n: u64, max: usize, budget: u64) {
    let t = Topic::heap(&Geometry::new(8, max as u32, budget, 1, 2, 0), 0).unwrap();
    let mut lossless = sub(&t, 0, Mode::Lossless);
    let mut lossy = sub(&t, 1, Mode::Lossy);
    let mut p = publ(&t);
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let alive = move || assert!(start.elapsed() < DEADLINE, "no progress within {DEADLINE:?}");

    let d = done.clone();
    let lossy_reader = std::thread::spawn(move || {
        let (mut got, mut lagged) = (0u64, 0u64);
        let mut last = None;
        loop {
            alive();
            match lossy.try_recv() {
                Ok(m) => {
                    assert_eq!(m.payload(), &body(m.seq(), max)[..], "lossy reader got a torn message {}", m.seq());
                    assert!(last.is_none_or(|l| m.seq() > l), "out of order");
                    last = Some(m.seq());
                    got += 1;
                }
                Err(RecvError::Lagged(n)) => lagged += n,
                Err(RecvError::Empty) if d.load(Ordering::Acquire) => break,
                Err(RecvError::Empty) => std::thread::yield_now(),
                Err(e) => panic!("lossy reader: {e}"),
            }
        }
        (got, lagged)
    });
    let lossless_reader = std::thread::spawn(move || {
        let mut next = 0;
        while next < n {
            alive();
            match lossless.try_recv() {
                Ok(m) => {
                    assert_eq!((m.seq(), m.payload()), (next, &body(next, max)[..]), "lossless reader");
                    next += 1;
                }
                Err(RecvError::Empty) => std::thread::yield_now(),
                Err(e) => panic!("lossless reader: {e}"),
            }
        }
    });

    for seq in 0..n {
        let msg = body(seq, max);
        let mut loan = loop {
            alive();
            match p.try_loan(msg.len()) {
                Ok(l) => break l,
                Err(SendError::Full) => std::thread::yield_now(),
                Err(e) => panic!("loan: {e}"),
            }
        };
        assert_eq!(loan.seq(), seq);
        write(&mut loan, &msg, seq);
        loan.commit();
    }
    lossless_reader.join().unwrap();
    done.store(true, Ordering::Release);
    let (got, lagged) = lossy_reader.join().unwrap();
    assert!(got > 0, "the lossy reader read nothing");
    assert!(got + lagged <= n, "lossy reader: {got} read + {lagged} lagged > {n} sent");
}
