//! Model-based property tests of publishing, payload-region allocation and receiving, single-threaded.
//!
//! Random operation sequences (sends of every size class, receives, receive-and-hold-while-publishing, loans
//! committed, shortened or aborted, a loan held open while other publishers publish, draining) run against a topic
//! with a small index (2-16 entries) and small payload regions (128 B - 4 KiB, messages up to the region size), and
//! against a simple model:
//!
//! * **lossless** (`lossless_single_publisher`, `lossless_multi_publisher`): a queue of the positions the
//!   subscriber has not passed yet. Every `try_send` that returns `Ok` is received later exactly once, in order,
//!   with its payload (derived from its sequence number); `Ok` only with fewer than `capacity` positions in flight;
//!   `Full` never when nothing is in flight (so after draining, a send of any length up to the maximum succeeds),
//!   never when fewer than `capacity` positions are in flight and the message is inline or the publisher has no
//!   region payload in flight or plenty of region space (live bytes + message + two paddings fit); `TooLarge`
//!   exactly above the maximum; a held message's payload stays intact while publishers run; aborted loans are
//!   skipped and counted.
//!   At the end the topic's counters (tail, received, skipped, published) match the model's.
//! * **lossy** (`lossy_subscriber`, 1-3 publishers): the model predicts each `try_recv` exactly: `Empty`,
//!   `Lagged(n)` with the exact number of positions passed when the index lapped the reader (resuming at the oldest
//!   entry the tail vouches for), `Lagged(1)` for a region payload its publisher has overwritten (the model
//!   simulates the region allocator), or the next message with its intact payload (never torn); sends never fail
//!   (except `Full` exactly when the entry they need holds an open loan); after draining, received + lagged +
//!   skipped == positions claimed, and the subscriber's counters agree.
//!
//! Every property also runs with origins near `u64::MAX`, near 2^62 (where cursor words truncate) and near the
//! 48-bit lap truncation, so sequence arithmetic crosses every wrap.
//!
//! Case counts: 512 per property by default (a few seconds each in a debug build); `PROPTEST_CASES=n` overrides it;
//! `SHMBUS_LONG_FUZZ=1` runs 1,000,000 per property (or `SHMBUS_FUZZ_CASES=n`), see `tests/untrusted.rs` for the
//! recommended command line.
#![cfg(not(loom))] // in-process tests on real memory; the loom models are in tests/loom.rs

mod common;

use common::config;
use proptest::prelude::*;
use shmbus_ring::*;
use std::collections::VecDeque;
use std::sync::Arc;

// ---- operations -----------------------------------------------------------------------------------------------

/// A message length, resolved against the geometry (always within the maximum).
#[derive(Clone, Copy, Debug)]
enum Len {
    Zero,
    /// The largest inline length.
    Inline,
    /// The smallest region length.
    InlinePlus,
    Max,
    Any(u32),
}

#[derive(Clone, Copy, Debug)]
enum End {
    Commit,
    /// Commit a prefix (`Len` resolved, then capped at the loan).
    CommitLen(Len),
    Abort,
}

#[derive(Clone, Debug)]
enum Inner {
    Send(u8, Len),
    Recv,
}

#[derive(Clone, Debug)]
enum Op {
    Send(u8, Len),
    Recv,
    /// Receive one message and hold it while these publish, then check it is intact and release it.
    Hold(Vec<(u8, Len)>),
    Loan(u8, Len, End),
    /// Keep a loan open (its claim unpublished) while the inner operations run, then end it.
    LoanAcross(u8, Len, Vec<Inner>, bool),
    Drain,
    TooLarge(u8),
}

fn len() -> impl Strategy<Value = Len> {
    prop_oneof![
        1 => Just(Len::Zero),
        1 => Just(Len::Inline),
        1 => Just(Len::InlinePlus),
        2 => Just(Len::Max),
        6 => any::<u32>().prop_map(Len::Any),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0u8..3;
    prop_oneof![
        12 => (p.clone(), len()).prop_map(|(p, l)| Op::Send(p, l)),
        8 => Just(Op::Recv),
        2 => prop::collection::vec((p.clone(), len()), 0..6).prop_map(Op::Hold),
        3 => (p.clone(), len(), prop_oneof![Just(End::Commit), len().prop_map(End::CommitLen), Just(End::Abort)])
            .prop_map(|(p, l, e)| Op::Loan(p, l, e)),
        2 => (
            p.clone(),
            len(),
            prop::collection::vec(prop_oneof![(p.clone(), len()).prop_map(|(p, l)| Inner::Send(p, l)), Just(Inner::Recv)], 0..24),
            any::<bool>(),
        )
            .prop_map(|(p, l, inner, c)| Op::LoanAcross(p, l, inner, c)),
        1 => Just(Op::Drain),
        1 => p.prop_map(Op::TooLarge),
    ]
}

/// Geometries: 2-16 entries of 32, 64 or 128 bytes (0, 32 or 96 bytes inline), regions of 128 B - 4 KiB, a maximum
/// message from 0 to the whole region, `publishers` publisher slots, one subscriber, no group.
fn geometry(publishers: u32) -> impl Strategy<Value = Geometry> {
    (1u32..=4, 0u32..3, 1u64..=32, 0u8..4, any::<u32>()).prop_map(move |(cap_log, entry_log, lines, sel, x)| {
        let entry_bytes = 32u32 << entry_log;
        let region_bytes = lines * 128;
        let max_message = match sel {
            0 => region_bytes as u32,
            1 => region_bytes as u32 / 2,
            2 => entry_bytes - 32,
            _ => x % (region_bytes as u32 + 1),
        };
        let g = Geometry {
            capacity: 1 << cap_log,
            entry_bytes,
            max_message,
            region_bytes,
            max_publishers: publishers,
            max_subscribers: 1,
            max_groups: 0,
        };
        g.validate().expect("valid geometry");
        g
    })
}

/// First sequence numbers: 0, anywhere, or just below a wrap (2^64, 2^62 where cursor words truncate, the 48-bit
/// lap truncation).
fn origin(cap: u32, sel: u8, k: u64) -> u64 {
    let cap = cap as u64;
    let below = |top: u64| top.wrapping_sub(cap * (k % 64 + 1));
    match sel % 5 {
        0 => 0,
        1 => below(0),
        2 => below(1 << 62),
        3 => below(1 << (48 + cap.trailing_zeros())),
        _ => k & !(cap - 1),
    }
}

fn payload(seq: u64, publisher: usize, len: usize) -> Vec<u8> {
    let mut h = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (publisher as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (0..len)
        .map(|k| {
            if k % 8 == 0 {
                h = h.rotate_left(13).wrapping_add(0x94d0_49bb_1331_11eb);
            }
            (h >> (8 * (k % 8))) as u8
        })
        .collect()
}

fn resolve(l: Len, geo: &Geometry) -> usize {
    let max = geo.max_message as usize;
    match l {
        Len::Zero => 0,
        Len::Inline => geo.inline_bytes().min(max),
        Len::InlinePlus => (geo.inline_bytes() + 1).min(max),
        Len::Max => max,
        Len::Any(x) => x as usize % (max + 1),
    }
}

fn need(len: usize) -> u64 {
    (len as u64).div_ceil(8) * 8
}

fn handles(topic: &Topic, mode: Mode) -> (Subscriber, Vec<Option<Publisher>>) {
    let w = Arc::new(PollWaiter);
    let sub = Subscriber::attach(topic, 0, SubscriberOptions { mode, ..Default::default() }, w.clone(), &|_| false)
        .expect("subscriber attaches");
    let pubs = (0..topic.geometry().max_publishers as usize)
        .map(|p| Some(Publisher::attach(topic, p, w.clone(), PublisherOptions::default()).expect("publisher attaches")))
        .collect();
    (sub, pubs)
}

// ---- the lossless model ---------------------------------------------------------------------------------------

/// What both models offer the operations they share (`loan_across`).
trait Model {
    /// The sequence the next claim will get.
    fn next(&self) -> u64;
    /// Checks the result of a claim (`try_send` or `try_loan`) of `len` bytes by publisher `p` against the model
    /// and records it; `true` if it was accepted.
    fn claimed(&mut self, p: usize, len: usize, r: Result<u64, SendError>, what: &str) -> bool;
    /// Ends the claim of `seq`: published with `payload`, or aborted (`None`).
    fn settle(&mut self, seq: u64, payload: Option<Vec<u8>>);
    /// A `try_send` of `len` bytes through `publ`, checked.
    fn send(&mut self, publ: &mut Publisher, len: usize);
    /// A `try_recv`, checked; `false` when nothing was there.
    fn recv(&mut self, sub: &mut Subscriber) -> bool;
}

/// Publisher `p` of `pubs` (modulo their number).
fn pick(pubs: &mut [Option<Publisher>], p: u8) -> &mut Publisher {
    let n = pubs.len();
    pubs[p as usize % n].as_mut().unwrap()
}

/// Checked `try_send`s: for each `(p, l)` of `sends`, a message of length `l` by publisher `p`.
fn publish<M: Model>(m: &mut M, pubs: &mut [Option<Publisher>], geo: &Geometry, sends: &[(u8, Len)]) {
    for (p, l) in sends {
        m.send(pick(pubs, *p), resolve(*l, geo));
    }
}

/// Runs `ops` against the model `m`: the operations both models check alike (`Send`, `Recv`, `LoanAcross`)
/// here, the others through `own`.
fn drive<M: Model>(
    m: &mut M,
    pubs: &mut [Option<Publisher>],
    sub: &mut Subscriber,
    geo: &Geometry,
    ops: &[Op],
    mut own: impl FnMut(&mut M, &mut [Option<Publisher>], &mut Subscriber, &Op),
) {
    for op in ops {
        match op {
            Op::Send(p, l) => m.send(pick(pubs, *p), resolve(*l, geo)),
            Op::Recv => {
                m.recv(sub);
            }
            Op::LoanAcross(p, l, inner, commit) => loan_across(m, pubs, sub, geo, (*p, *l, inner, *commit)),
            _ => own(m, pubs, sub, op),
        }
    }
}

/// `Op::LoanAcross`: publisher `p` keeps a loan open (its claim unpublished) while the inner operations run, then
/// commits or aborts it; every step is checked against the model.
fn loan_across<M: Model>(
    m: &mut M,
    pubs: &mut [Option<Publisher>],
    sub: &mut Subscriber,
    geo: &Geometry,
    (p, l, inner, commit): (u8, Len, &[Inner], bool),
) {
    let n = pubs.len();
    let p = p as usize % n;
    let len = resolve(l, geo);
    let mut owner = pubs[p].take().unwrap();
    let seq = m.next();
    match owner.try_loan(len) {
        Ok(mut loan) => {
            assert!(m.claimed(p, len, Ok(loan.seq()), "try_loan"));
            let msg = payload(seq, p, len);
            loan.copy_from_slice(&msg);
            for i in inner {
                match i {
                    // The owner is busy with its loan; the others publish.
                    Inner::Send(q, l) => {
                        if let Some(publ) = pubs[*q as usize % n].as_mut() {
                            m.send(publ, resolve(*l, geo));
                        }
                    }
                    Inner::Recv => {
                        m.recv(sub);
                    }
                }
            }
            if commit {
                loan.commit();
                m.settle(seq, Some(msg));
            } else {
                drop(loan);
                m.settle(seq, None);
            }
        }
        Err(e) => {
            m.claimed(p, len, Err(e), "try_loan");
        }
    }
    pubs[p] = Some(owner);
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    publisher: usize,
    /// What the subscriber must receive; `None` for an aborted loan (a skip marker).
    payload: Option<Vec<u8>>,
    /// Bytes allocated in the publisher's region (`None` when inline).
    need: Option<u64>,
    /// A loan not yet committed or aborted.
    open: bool,
}

struct Lossless {
    geo: Geometry,
    next: u64,
    /// Positions the subscriber has not passed yet, oldest first (a held message stays until released).
    queue: VecDeque<Entry>,
    received: u64,
    skipped: u64,
    published: Vec<u64>,
}

impl Lossless {
    fn new(geo: Geometry, origin: u64) -> Lossless {
        Lossless {
            geo,
            next: origin,
            queue: VecDeque::new(),
            received: 0,
            skipped: 0,
            published: vec![0; geo.max_publishers as usize],
        }
    }

    fn in_region(&self, len: usize) -> bool {
        len > self.geo.inline_bytes()
    }

    /// Whether a claim of `len` bytes by `p` must succeed: fewer than `capacity` positions in flight and, for a
    /// region payload, room in the region whatever the padding (two paddings of less than a maximum message each).
    fn must_fit(&self, p: usize, len: usize) -> bool {
        if self.queue.len() >= self.geo.capacity as usize {
            return false;
        }
        if !self.in_region(len) {
            return true;
        }
        let live: Vec<u64> = self.queue.iter().filter(|e| e.publisher == p).filter_map(|e| e.need).collect();
        let max_need = need(self.geo.max_message as usize);
        live.is_empty() || live.iter().sum::<u64>() + need(len) + 2 * max_need <= self.geo.region_bytes
    }

    fn loan(&mut self, publ: &mut Publisher, len: usize, end: End) {
        let p = publ.slot();
        let r = publ.try_loan(len);
        let seq = self.next;
        let mut loan = match r {
            Ok(l) => {
                assert!(self.claimed(p, len, Ok(l.seq()), "try_loan"));
                l
            }
            Err(e) => {
                self.claimed(p, len, Err(e), "try_loan");
                return;
            }
        };
        assert_eq!(loan.len(), len);
        let msg = payload(seq, p, len);
        loan.copy_from_slice(&msg);
        match end {
            End::Commit => {
                assert_eq!(loan.commit(), seq);
                self.settle(seq, Some(msg));
            }
            End::CommitLen(l) => {
                let l = resolve(l, &self.geo).min(len);
                assert_eq!(loan.commit_len(l), seq);
                self.settle(seq, Some(msg[..l].to_vec()));
            }
            End::Abort => {
                drop(loan);
                self.settle(seq, None);
            }
        }
    }

    /// Passes the skip markers at the front, as the subscriber does when it polls.
    fn pass_skipped(&mut self) {
        while self.queue.front().is_some_and(|e| !e.open && e.payload.is_none()) {
            self.queue.pop_front();
            self.skipped += 1;
        }
    }

    /// Checks a received message against the front of the queue (does not release it).
    fn check_front(&mut self, seq: u64, publisher: u32, bytes: &[u8]) {
        self.pass_skipped();
        let e = self.queue.front().unwrap_or_else(|| panic!("received {seq} but nothing is in flight"));
        assert!(!e.open, "received {seq} while its loan is still open");
        assert_eq!(seq, e.seq, "out of order");
        assert_eq!(publisher as usize, e.publisher, "publisher of {seq}");
        assert!(e.payload.as_deref() == Some(bytes), "payload of {seq} differs");
    }

    fn release_front(&mut self) {
        self.queue.pop_front();
        self.received += 1;
    }

    fn empty(&mut self) {
        self.pass_skipped();
        assert!(self.queue.front().is_none_or(|e| e.open), "Empty with a message in flight: {:?}", self.queue.front());
    }

    fn drain(&mut self, sub: &mut Subscriber) {
        for _ in 0..self.geo.capacity as usize + 2 {
            if !self.recv(sub) {
                return;
            }
        }
        panic!("more than capacity messages in flight");
    }
}

impl Model for Lossless {
    fn next(&self) -> u64 {
        self.next
    }

    /// Checks the outcome of a claim (send or loan) of `len` bytes by `p`; on success records the new position.
    fn claimed(&mut self, p: usize, len: usize, r: Result<u64, SendError>, what: &str) -> bool {
        let in_flight = self.queue.len();
        match r {
            Ok(seq) => {
                assert_eq!(seq, self.next, "{what}: sequence");
                assert!(in_flight < self.geo.capacity as usize, "{what}: Ok with {in_flight} positions in flight");
                let need = self.in_region(len).then(|| need(len));
                self.queue.push_back(Entry { seq, publisher: p, payload: None, need, open: true });
                self.next = self.next.wrapping_add(1);
                true
            }
            Err(SendError::Full) => {
                assert!(in_flight > 0, "{what}: Full with nothing in flight (len {len}, publisher {p})");
                assert!(
                    !self.must_fit(p, len),
                    "{what}: spurious Full (len {len}, publisher {p}, {in_flight} in flight: {:?})",
                    self.queue
                );
                false
            }
            Err(e) => panic!("{what}: unexpected {e:?} (len {len}, publisher {p})"),
        }
    }

    fn settle(&mut self, seq: u64, payload: Option<Vec<u8>>) {
        let e = self.queue.iter_mut().find(|e| e.seq == seq).expect("open entry in flight");
        assert!(e.open);
        e.open = false;
        if payload.is_some() {
            self.published[e.publisher] += 1;
        }
        e.payload = payload;
    }

    fn send(&mut self, publ: &mut Publisher, len: usize) {
        let p = publ.slot();
        let msg = payload(self.next, p, len);
        let seq = self.next;
        let r = publ.try_send(&msg);
        if self.claimed(p, len, r, "try_send") {
            self.settle(seq, Some(msg));
        }
    }

    /// One `try_recv`; returns whether a message was received.
    fn recv(&mut self, sub: &mut Subscriber) -> bool {
        match sub.try_recv() {
            Ok(m) => {
                self.check_front(m.seq(), m.publisher(), m.payload());
                drop(m);
                self.release_front();
                true
            }
            Err(RecvError::Empty) => {
                self.empty();
                false
            }
            Err(e) => panic!("try_recv: unexpected {e:?}"),
        }
    }
}

fn run_lossless(geo: Geometry, origin: u64, ops: &[Op]) {
    let topic = Topic::heap(&geo, origin).unwrap();
    let (mut sub, mut pubs) = handles(&topic, Mode::Lossless);
    let mut m = Lossless::new(geo, origin);
    let max = geo.max_message as usize;
    drive(&mut m, &mut pubs, &mut sub, &geo, ops, |m, pubs, sub, op| match op {
        Op::Drain => m.drain(sub),
        Op::Hold(sends) => match sub.try_recv() {
            Ok(msg) => {
                let (seq, publisher) = (msg.seq(), msg.publisher());
                m.check_front(seq, publisher, msg.payload());
                publish(m, pubs, &geo, sends);
                // Held in place in shared memory: nothing published meanwhile may have overwritten it.
                m.check_front(seq, publisher, msg.payload());
                drop(msg);
                m.release_front();
            }
            Err(RecvError::Empty) => {
                m.empty();
                publish(m, pubs, &geo, sends);
            }
            Err(e) => panic!("try_recv: unexpected {e:?}"),
        },
        Op::Loan(p, l, end) => m.loan(pick(pubs, *p), resolve(*l, &geo), *end),
        Op::TooLarge(p) => {
            let publ = pick(pubs, *p);
            assert_eq!(publ.try_send(&vec![0; max + 1]), Err(SendError::TooLarge { len: max + 1, max }));
            assert_eq!(publ.try_loan(max + 1).unwrap_err(), SendError::TooLarge { len: max + 1, max });
        }
        Op::Send(..) | Op::Recv | Op::LoanAcross(..) => unreachable!("run by `drive`"),
    });
    // Everything sent is received; then, with nothing in flight, every publisher can send a maximum-size message
    // and any other size.
    m.drain(&mut sub);
    assert!(m.queue.is_empty(), "left in flight: {:?}", m.queue);
    for publ in pubs.iter_mut() {
        for len in [max, max / 2, 0, geo.inline_bytes().min(max)] {
            m.send(publ.as_mut().unwrap(), len);
            assert_eq!(m.queue.len(), 1, "a send of {len} bytes after draining failed");
            m.drain(&mut sub);
        }
    }
    let st = topic.stats();
    assert_eq!(st.tail, m.next);
    let s = &st.subscribers[0];
    assert_eq!((s.received, s.skipped, s.lagged, s.position), (m.received, m.skipped, 0, m.next));
    for (publ, published) in pubs.iter().zip(&m.published) {
        assert_eq!(publ.as_ref().unwrap().published(), *published);
    }
}

// ---- the lossy model ------------------------------------------------------------------------------------------

struct Claim {
    publisher: usize,
    payload: Option<Vec<u8>>,
    /// Logical position of a region payload.
    pos: Option<u64>,
    open: bool,
}

struct Lossy {
    geo: Geometry,
    origin: u64,
    next: u64,
    /// Every claim from `origin` on (index: `seq - origin`).
    claims: Vec<Claim>,
    /// Simulated frontier of each publisher's region (the allocator places payloads contiguously, skipping to the
    /// region's start when a payload would not fit before its end).
    heads: Vec<u64>,
    cursor: u64,
    received: u64,
    lagged: u64,
    skipped: u64,
}

enum Expect {
    Empty,
    Lagged(u64, u64),
    /// The message at a position; `true` if its region payload was overrun (then `Lagged(1)` is expected, or the
    /// intact message).
    Message(u64, bool),
}

impl Lossy {
    fn new(geo: Geometry, origin: u64) -> Lossy {
        Lossy {
            geo,
            origin,
            next: origin,
            claims: vec![],
            heads: vec![0; geo.max_publishers as usize],
            cursor: origin,
            received: 0,
            lagged: 0,
            skipped: 0,
        }
    }

    fn claim(&self, seq: u64) -> &Claim {
        &self.claims[seq.wrapping_sub(self.origin) as usize]
    }

    fn claim_mut(&mut self, seq: u64) -> &mut Claim {
        &mut self.claims[seq.wrapping_sub(self.origin) as usize]
    }

    /// What the next `try_recv` must return, and the skip markers it passes on the way.
    fn predict(&self) -> (Expect, u64) {
        let cap = self.geo.capacity as u64;
        let mut c = self.cursor;
        let mut skipped = 0;
        loop {
            let ahead = self.next.wrapping_sub(c) as i64;
            if ahead <= 0 {
                return (Expect::Empty, skipped);
            }
            if ahead as u64 > cap {
                // The entry was reused: resume at the oldest retained entry according to the tail, report the
                // exact gap. The single-producer path moves the tail when a claim is committed, not when it is
                // made: while a loan is open the tail is one behind, the reader resumes on the entry that loan
                // took, and the gap comes as two `Lagged` (the sum is still exact).
                let single_open = self.geo.max_publishers == 1 && self.claims.last().is_some_and(|c| c.open);
                let tail = if single_open { self.next.wrapping_sub(1) } else { self.next };
                let mut to = tail.wrapping_sub(cap);
                if to.wrapping_sub(c) as i64 <= 0 {
                    to = c.wrapping_add(1);
                }
                return (Expect::Lagged(to.wrapping_sub(c), to), skipped);
            }
            let claim = self.claim(c);
            if claim.open {
                return (Expect::Empty, skipped);
            }
            if claim.payload.is_none() {
                skipped += 1;
                c = c.wrapping_add(1);
                continue;
            }
            let overrun = claim.pos.is_some_and(|pos| self.heads[claim.publisher] > pos + self.geo.region_bytes);
            return (Expect::Message(c, overrun), skipped);
        }
    }

    fn check(&mut self, expect: Expect, skipped: u64, r: Result<(u64, u32, Vec<u8>), RecvError>) -> bool {
        self.skipped += skipped;
        match (expect, r) {
            (Expect::Empty, Err(RecvError::Empty)) => {
                // Past the skip markers it passed.
                self.cursor = self.cursor.wrapping_add(skipped);
                false
            }
            (Expect::Lagged(n, to), Err(RecvError::Lagged(got))) => {
                assert_eq!(got, n, "lag count");
                self.lagged += n;
                self.cursor = to;
                true
            }
            (Expect::Message(seq, true), Err(RecvError::Lagged(1))) => {
                self.lagged += 1;
                self.cursor = seq.wrapping_add(1);
                true
            }
            (Expect::Message(seq, _), Ok((got, publisher, bytes))) => {
                assert_eq!(got, seq, "lossy read the wrong position");
                let c = self.claim(seq);
                assert_eq!(publisher as usize, c.publisher);
                assert!(c.payload.as_deref() == Some(&bytes[..]), "payload of {seq} differs (torn or overwritten)");
                self.received += 1;
                self.cursor = seq.wrapping_add(1);
                true
            }
            (Expect::Empty, r) => panic!("expected Empty, got {r:?}"),
            (Expect::Lagged(n, _), r) => panic!("expected Lagged({n}), got {r:?}"),
            (Expect::Message(seq, overrun), r) => panic!("expected message {seq} (overrun: {overrun}), got {r:?}"),
        }
    }
}

impl Model for Lossy {
    fn next(&self) -> u64 {
        self.next
    }

    /// Checks a claim outcome: it must succeed unless the entry it needs still holds an open loan.
    fn claimed(&mut self, p: usize, len: usize, r: Result<u64, SendError>, what: &str) -> bool {
        let cap = self.geo.capacity as u64;
        let blocked = self.next.wrapping_sub(self.origin) >= cap && self.claim(self.next.wrapping_sub(cap)).open;
        match r {
            Ok(seq) => {
                assert!(!blocked, "{what}: claimed over an open loan");
                assert_eq!(seq, self.next, "{what}: sequence");
                let pos = (len > self.geo.inline_bytes()).then(|| {
                    let r = self.geo.region_bytes;
                    let head = self.heads[p];
                    let start = if head % r + need(len) > r { head + (r - head % r) } else { head };
                    self.heads[p] = start + need(len);
                    start
                });
                self.claims.push(Claim { publisher: p, payload: None, pos, open: true });
                self.next = self.next.wrapping_add(1);
                true
            }
            Err(SendError::Full) => {
                assert!(blocked, "{what}: Full without a gating subscriber (len {len}, publisher {p})");
                false
            }
            Err(e) => panic!("{what}: unexpected {e:?}"),
        }
    }

    fn settle(&mut self, seq: u64, payload: Option<Vec<u8>>) {
        let c = self.claim_mut(seq);
        c.open = false;
        c.payload = payload;
    }

    fn send(&mut self, publ: &mut Publisher, len: usize) {
        let p = publ.slot();
        let seq = self.next;
        let msg = payload(seq, p, len);
        let r = publ.try_send(&msg);
        if self.claimed(p, len, r, "try_send") {
            self.settle(seq, Some(msg));
        }
    }

    fn recv(&mut self, sub: &mut Subscriber) -> bool {
        let (expect, skipped) = self.predict();
        let r = sub.try_recv().map(|m| (m.seq(), m.publisher(), m.payload().to_vec()));
        self.check(expect, skipped, r)
    }
}

fn run_lossy(geo: Geometry, origin: u64, ops: &[Op]) {
    let topic = Topic::heap(&geo, origin).unwrap();
    let (mut sub, mut pubs) = handles(&topic, Mode::Lossy);
    let mut m = Lossy::new(geo, origin);
    drive(&mut m, &mut pubs, &mut sub, &geo, ops, |m, pubs, sub, op| match op {
        Op::Drain => while m.recv(sub) {},
        Op::Hold(sends) => {
            let (expect, skipped) = m.predict();
            match sub.try_recv() {
                Ok(msg) => {
                    let got = (msg.seq(), msg.publisher(), msg.payload().to_vec());
                    publish(m, pubs, &geo, sends);
                    // A lossy message is a private copy: publishing cannot change it.
                    assert_eq!(msg.payload(), &got.2[..]);
                    drop(msg);
                    m.check(expect, skipped, Ok(got));
                }
                Err(e) => {
                    m.check(expect, skipped, Err(e));
                    publish(m, pubs, &geo, sends);
                }
            }
        }
        Op::Loan(p, l, end) => {
            let publ = pick(pubs, *p);
            let (pi, len, seq) = (publ.slot(), resolve(*l, &geo), m.next);
            match publ.try_loan(len) {
                Ok(mut loan) => {
                    assert!(m.claimed(pi, len, Ok(loan.seq()), "try_loan"));
                    let msg = payload(seq, pi, len);
                    loan.copy_from_slice(&msg);
                    match end {
                        End::Commit => {
                            loan.commit();
                            m.settle(seq, Some(msg));
                        }
                        End::CommitLen(l) => {
                            let l = resolve(*l, &geo).min(len);
                            loan.commit_len(l);
                            m.settle(seq, Some(msg[..l].to_vec()));
                        }
                        End::Abort => {
                            drop(loan);
                            m.settle(seq, None);
                        }
                    }
                }
                Err(e) => {
                    m.claimed(pi, len, Err(e), "try_loan");
                }
            }
        }
        Op::TooLarge(p) => {
            let (publ, max) = (pick(pubs, *p), geo.max_message as usize);
            assert_eq!(publ.try_send(&vec![0; max + 1]), Err(SendError::TooLarge { len: max + 1, max }));
        }
        Op::Send(..) | Op::Recv | Op::LoanAcross(..) => unreachable!("run by `drive`"),
    });
    while m.recv(&mut sub) {}
    let positions = m.next.wrapping_sub(origin);
    assert_eq!(m.received + m.lagged + m.skipped, positions, "every position received, lagged over or skipped");
    let st = topic.stats();
    let s = &st.subscribers[0];
    assert_eq!((s.received, s.lagged, s.skipped), (m.received, m.lagged, m.skipped));
    assert!(!s.gating);
}

// ---- properties ------------------------------------------------------------------------------------------------

/// One case of a property: a geometry with `publishers` publisher slots, a first sequence number for it (see
/// [`origin`]) and a workload of 1-159 operations.
fn case(publishers: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = (Geometry, u64, Vec<Op>)> {
    let ops = prop::collection::vec(op(), 1..160);
    (publishers.prop_flat_map(geometry), any::<u8>(), any::<u64>(), ops)
        .prop_map(|(geo, sel, k, ops)| (geo, origin(geo.capacity, sel, k), ops))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn lossless_single_publisher((geo, origin, ops) in case(1..=1)) {
        run_lossless(geo, origin, &ops);
    }

    #[test]
    fn lossless_multi_publisher((geo, origin, ops) in case(2..=3)) {
        run_lossless(geo, origin, &ops);
    }

    #[test]
    fn lossy_subscriber((geo, origin, ops) in case(1..=3)) {
        run_lossy(geo, origin, &ops);
    }
}

/// The wrap-around origins on their own, with a fixed workload: every send size, lapping, draining.
#[test]
fn sequence_arithmetic_across_every_wrap() {
    for cap_log in 1..=4u32 {
        let geo = Geometry {
            capacity: 1 << cap_log,
            entry_bytes: 64,
            max_message: 384,
            region_bytes: 1024,
            max_publishers: 2,
            max_subscribers: 1,
            max_groups: 0,
        };
        let ops: Vec<Op> = (0..200u32)
            .map(|i| match i % 7 {
                0..=2 => Op::Send((i % 2) as u8, Len::Any(i * 37)),
                3 => Op::Recv,
                4 => Op::Loan(0, Len::Any(i * 11), if i % 3 == 0 { End::Abort } else { End::Commit }),
                5 => Op::Send(1, Len::Max),
                _ => Op::Drain,
            })
            .collect();
        for sel in 0..5 {
            for k in [0, 1, 2, 5, 63] {
                let o = origin(geo.capacity, sel, k);
                run_lossless(geo, o, &ops);
                run_lossy(geo, o, &ops);
            }
        }
    }
}

/// After a lossless subscriber has received and released everything, a send of any size must succeed, at every
/// capacity. The properties above use capacities up to 16; from 32 entries on, the subscriber publishes its cursor
/// only every `capacity / 16` messages or when a poll finds nothing, so the publisher still sees the released
/// message as in flight, its region stays reserved and `try_send` says `Full` on a consumed topic (a blocking
/// `send` waits until the subscriber happens to poll again).
#[test]
fn consumed_topic_is_never_full_at_large_capacities() {
    for capacity in [32, 64, 1024] {
        let geo = Geometry {
            capacity,
            entry_bytes: 128,
            max_message: 1024,
            region_bytes: 1024,
            max_publishers: 1,
            max_subscribers: 1,
            max_groups: 0,
        };
        let topic = Topic::heap(&geo, 0).unwrap();
        let (mut sub, mut pubs) = handles(&topic, Mode::Lossless);
        let publ = pubs[0].as_mut().unwrap();
        publ.try_send(&[1; 1024]).unwrap();
        drop(sub.try_recv().unwrap());
        assert_eq!(publ.try_send(&[2; 1024]), Ok(1), "capacity {capacity}: Full on a consumed topic");
    }
}
