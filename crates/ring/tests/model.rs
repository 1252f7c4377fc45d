//! Model-based test of the whole ring (issue 8, "Beyond the list"): random sequences of operations on small
//! topics, every result checked against a reference model of the guarantees in ARCHITECTURE.md §3.
//!
//! # What is generated
//!
//! Small geometries (capacity 2-8, 64- or 128-byte entries, messages up to 300 bytes, payload regions of one
//! maximum message plus 0-2 lines, so region payloads get reclaimed all the time; 1-3 publishers, 4 subscriber
//! slots, 1-2 group slots; origin 0 or a few laps below `u64::MAX`, so sequences wrap), then up to 60 steps of:
//! attach a lossless, lossy (either from the tail or from the oldest retained message) or group subscriber;
//! detach one; kill one (`mem::forget`, then [`Admin::release_subscriber`]); demote a lossless one; open a group
//! (from the tail or the oldest message, redelivery on or off; early or late, also again after closing it); close
//! a group (members still attached then get `Closed`); send inline or region payloads; loan and commit (whole or
//! shorter) or abort; kill a publisher, possibly in the middle of a loan (`mem::forget` the loan and the
//! publisher) or inside a multi-producer claim, between the tail's compare-and-swap and the stamp (a vacancy,
//! `Publisher::vanish_after_claim`), reap it later ([`Admin::settle_vacancies`], then
//! [`Admin::cancel_claims_of`], as the daemon does) and attach a new publisher to its slot; receive on any
//! subscriber; **hold** a received message across the following steps (the rest of the sequence runs in a nested
//! call while the [`Message`] is alive; a later step ends the innermost hold by dropping the message or by killing
//! its subscriber). At the end every dead publisher is reaped and every subscriber drained. Single-threaded:
//! interleavings are the loom suite's job, this is about combinations.
//!
//! # What is checked (the reference model)
//!
//! The model numbers every claim in ring order and records what each sequence became (a message with its send id,
//! publisher, length and region position; a skip marker; a claim still unpublished), and replays each publisher's
//! region allocation to know exactly which region payloads have been reclaimed. Each payload encodes its send id
//! and publisher and ends in a checksum, so a torn or misplaced payload is named in the failure. Then:
//!
//! * **One total order.** Every send and loan gets exactly the next sequence of the model's tail.
//! * **Lossless** subscribers get every message from their start in order, skip markers passed silently, never
//!   `Lagged`, except an exact `Lagged(1)` for a message below the tail at attach whose region payload was
//!   reclaimed before the subscriber gated (§9.3); `Empty` exactly when the next position is unpublished.
//! * **Lossy** subscribers get each message, or an exact `Lagged(n)` when lapped (the `n` positions really were
//!   overwritten, and reading resumes at the oldest message still there), or `Lagged(1)` for a reclaimed region
//!   payload. A demoted subscriber gets `Demoted` once, then reads lossy.
//! * **Groups** hand each message to exactly one member in ring order, a dead member's held message is
//!   redelivered (first, to the next member that polls) or counted abandoned per the group's policy, exactly as
//!   `release_subscriber` reports; the redelivered/abandoned counters match.
//! * **Held messages** keep their payload (and sequence, publisher) unchanged until released, checked after
//!   every step.
//! * **Full** only when something may gate: a non-demoted lossless subscriber (or a demoted one still holding a
//!   message), an open group, a group member holding a message, or an unpublished claim of a dead publisher. (The ring has no other reason for `Full`:
//!   the index gate and the region reclaim both scan only gating cursors, and a claim is refused otherwise only
//!   over an older unpublished claim; single-threaded, only a dead publisher leaves one.)
//! * **Never** `Corrupted` (the memory is never corrupted here), a wrong publisher id, or a payload other than the
//!   one sent with that sequence. The topic's demotion and cancellation counters match the model.
//!
//! # Known defects
//!
//! [`KNOWN_DEFECTS`] names the defects of issue 8 this test found (each flag, while `true`, keeps the generator
//! away from its scenario). All three are fixed and every flag is `false`: the whole generator runs. A future
//! known defect gets a flag here the same way. With the three fixes reverted, each flag off made the default run
//! fail with a minimal case (defect 1: send, send, open group, attach member -> `Corrupted`; defect 2: attach
//! lossless, send, hold, demote, send, send -> the held message changed; defect 3: four region messages over a
//! small region, open group from the oldest, attach member -> another message's bytes). Defect 7 (a corrupted entry sticks) needs corrupted memory and is not reachable here.
//!
//! Cases: 1024 (`PROPTEST_CASES` overrides); `SHMBUS_LONG_FUZZ=1` runs 1,000,000 (or `SHMBUS_FUZZ_CASES`).
#![cfg(not(loom))] // in-process tests on real memory; the loom models are in tests/loom.rs

mod common;

use common::{config, shaped_geometry, SplitMix};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use shmbus_ring::*;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Scenarios of known, open defects that the generator avoids while the flag is `true`.
#[derive(Clone, Copy, Debug)]
struct Known {
    /// Issue 8, defect 1: a group whose positions reach a ledger word left two laps behind (a group opened
    /// after the first message, or opened again after closing) gets `Corrupted`. While set, a group slot is
    /// opened only once, and only when it starts at the origin.
    late_group_after_lap: bool,
    /// Issue 8, defect 2: demoting a lossless subscriber while it holds a message un-gates it, and the held
    /// payload is overwritten. While set, a subscriber holding a message is not demoted.
    demote_while_holding: bool,
    /// Issue 8, defect 3: a group opened from the oldest message hands out region payloads that were already
    /// reclaimed (another message's bytes). While set, a group is not opened from the oldest message when a
    /// retained message's region payload was reclaimed (it opens at the tail instead).
    group_reclaimed_payload: bool,
}

/// The known defects the generator avoids. Turn each flag off when its fix lands.
const KNOWN_DEFECTS: Known =
    Known { late_group_after_lap: false, demote_while_holding: false, group_reclaimed_payload: false };

/// The flags in force: [`KNOWN_DEFECTS`] minus those named in `SHMBUS_MODEL_EXPOSE`.
fn known() -> Known {
    let mut k = KNOWN_DEFECTS;
    let expose = std::env::var("SHMBUS_MODEL_EXPOSE").unwrap_or_default();
    for name in expose.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "late_group_after_lap" => k.late_group_after_lap = false,
            "demote_while_holding" => k.demote_while_holding = false,
            "group_reclaimed_payload" => k.group_reclaimed_payload = false,
            "all" => {
                k = Known { late_group_after_lap: false, demote_while_holding: false, group_reclaimed_payload: false }
            }
            other => panic!("SHMBUS_MODEL_EXPOSE: unknown flag {other:?}"),
        }
    }
    k
}

// ---- operations ------------------------------------------------------------------------------------------------

/// A payload size: inline or in the publisher's region (scaled into the topic's range).
#[derive(Clone, Copy, Debug)]
enum Size {
    Inline(u16),
    Region(u16),
}

/// How a loan ends.
#[derive(Clone, Copy, Debug)]
enum LoanEnd {
    Commit,
    /// `commit_len` with fewer bytes than loaned.
    Shorter,
    Abort,
}

/// One step. A subscriber index picks among the attached subscribers (the free slots, to attach), other indices
/// are taken modulo the topic's slots; a step that makes no sense in the current state (a
/// receive on a free slot, a second attach...) does nothing.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `mode` 0: lossless, 1: lossy, 2 and up: member of group `mode - 2`.
    Attach {
        slot: u8,
        mode: u8,
        from_oldest: bool,
    },
    Detach {
        slot: u8,
    },
    KillSub {
        slot: u8,
    },
    Demote {
        slot: u8,
    },
    OpenGroup {
        g: u8,
        from_oldest: bool,
        redeliver: bool,
    },
    CloseGroup {
        g: u8,
    },
    Send {
        p: u8,
        size: Size,
    },
    Loan {
        p: u8,
        size: Size,
        end: LoanEnd,
    },
    /// Kill publisher `p`, after taking a loan if `mid_loan` (both forgotten), or else, if `vanish`, inside a
    /// claim right after the tail's compare-and-swap (a vacancy; multi-producer topics only).
    KillPub {
        p: u8,
        mid_loan: bool,
        vanish: bool,
        size: Size,
    },
    /// Cancel the claims of dead publisher `p`, freeing its slot.
    Reap {
        p: u8,
    },
    AttachPub {
        p: u8,
    },
    Recv {
        slot: u8,
    },
    /// Receive, and keep the message until a later `EndHold`.
    Hold {
        slot: u8,
    },
    /// End the innermost hold: drop the message, or kill its subscriber while holding it.
    EndHold {
        kill: bool,
    },
    /// With no subscriber attached: detach every live publisher, reap the dead ones, then let the owner return
    /// the topic's pages (`Admin::forget_retained`, then the index ring and payload regions zeroed from the first
    /// boundary of a `1 << page_shift`-byte page on, as a punch of whole pages does: what comes before keeps its
    /// stamps).
    ReturnIdle {
        page_shift: u8,
    },
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![any::<u16>().prop_map(Size::Inline), any::<u16>().prop_map(Size::Region)]
}

fn op() -> impl Strategy<Value = Op> {
    let end = prop_oneof![Just(LoanEnd::Commit), Just(LoanEnd::Shorter), Just(LoanEnd::Abort)];
    prop_oneof![
        8 => (0u8..4, 0u8..4, any::<bool>()).prop_map(|(slot, mode, from_oldest)| Op::Attach { slot, mode, from_oldest }),
        2 => (0u8..4).prop_map(|slot| Op::Detach { slot }),
        2 => (0u8..4).prop_map(|slot| Op::KillSub { slot }),
        3 => (0u8..4).prop_map(|slot| Op::Demote { slot }),
        4 => (0u8..2, any::<bool>(), any::<bool>())
            .prop_map(|(g, from_oldest, redeliver)| Op::OpenGroup { g, from_oldest, redeliver }),
        2 => (0u8..2).prop_map(|g| Op::CloseGroup { g }),
        30 => (0u8..3, size()).prop_map(|(p, size)| Op::Send { p, size }),
        6 => (0u8..3, size(), end).prop_map(|(p, size, end)| Op::Loan { p, size, end }),
        2 => (0u8..3, any::<bool>(), any::<bool>(), size())
            .prop_map(|(p, mid_loan, vanish, size)| Op::KillPub { p, mid_loan, vanish, size }),
        3 => (0u8..3).prop_map(|p| Op::Reap { p }),
        3 => (0u8..3).prop_map(|p| Op::AttachPub { p }),
        20 => (0u8..4).prop_map(|slot| Op::Recv { slot }),
        8 => (0u8..4).prop_map(|slot| Op::Hold { slot }),
        6 => any::<bool>().prop_map(|kill| Op::EndHold { kill }),
        2 => (7u8..=13).prop_map(|page_shift| Op::ReturnIdle { page_shift }),
    ]
}

// ---- payloads --------------------------------------------------------------------------------------------------

/// Smallest payload: send id (4 bytes), publisher (1), checksum (4).
const MIN_LEN: usize = 9;

fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

/// The payload of send `id` by publisher `p`: id, publisher, filler derived from both, checksum.
fn payload(id: u32, p: usize, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&id.to_le_bytes());
    v.push(p as u8);
    let mut g = SplitMix(((id as u64) << 8) | p as u64);
    while v.len() < len - 4 {
        v.push(g.next() as u8);
    }
    v.extend_from_slice(&fnv(&v).to_le_bytes());
    v
}

/// What some bytes claim to be, for failure messages.
fn describe(b: &[u8]) -> String {
    if b.len() < MIN_LEN {
        return format!("{} bytes (too short to be any send)", b.len());
    }
    let id = u32::from_le_bytes(b[..4].try_into().unwrap());
    let sum = u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap());
    let intact = fnv(&b[..b.len() - 4]) == sum && b == &payload(id, b[4] as usize, b.len())[..];
    format!("{} bytes claiming send #{id} of publisher {} ({})", b.len(), b[4], if intact { "intact" } else { "torn" })
}

// ---- the reference model ---------------------------------------------------------------------------------------

/// What a ring position became.
#[derive(Clone, Copy, Debug)]
enum Entry {
    /// Claimed by a dead publisher, not yet cancelled; a `vacancy` if it died before stamping the claim.
    Pending {
        p: usize,
        vacancy: bool,
    },
    /// A skip marker (aborted loan or cancelled claim).
    Skip,
    Msg(Sent),
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    id: u32,
    publisher: usize,
    len: usize,
    /// Logical region position of the payload, if in the region.
    region: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Lossless { demote_pending: bool },
    Lossy,
    Member(usize),
}

#[derive(Clone, Debug)]
struct SubModel {
    kind: Kind,
    /// Next position it reads (ordered kinds), relative to the origin.
    next: u64,
    /// Positions below this were below the tail at attach (relative).
    verify_until: u64,
    /// Holding a received message (the handle is lent to a nested frame).
    holding: Option<u64>,
}

#[derive(Clone, Debug, Default)]
struct GroupModel {
    open: bool,
    ever_opened: bool,
    redeliver: bool,
    /// Highest position handed out or passed, plus one (relative).
    next: u64,
    /// Positions waiting for redelivery.
    again: BTreeSet<u64>,
    redelivered: u64,
    abandoned: u64,
}

/// The expected result of one receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Msg(u64),
    Empty,
    Lagged(u64),
    Demoted,
    Closed,
}

struct Model {
    cap: u64,
    inline: usize,
    region_bytes: u64,
    single: bool,
    /// Every claimed position, in ring order (index = sequence - origin).
    entries: Vec<Entry>,
    /// Single producer only: the tail word stays on a dead publisher's claim until the next claim.
    tail_lags: bool,
    frontier: Vec<u64>,
    next_id: u32,
    subs: Vec<Option<SubModel>>,
    groups: Vec<GroupModel>,
    demotions: u64,
    cancelled: u64,
    /// Retention floor (relative): the tail when the pages were last returned; no reader starts below it.
    floor: u64,
}

impl Model {
    fn tail(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The oldest position a reader "from the oldest" starts at, for a tail word of `tail`.
    fn oldest(&self, tail: u64) -> u64 {
        (tail + 1).saturating_sub(self.cap).max(self.floor)
    }

    fn lost(&self, s: &Sent) -> bool {
        s.region.is_some_and(|pos| self.frontier[s.publisher].wrapping_sub(pos) as i64 > self.region_bytes as i64)
    }

    /// Replays the publisher's region allocation for a reservation of `len` bytes; returns the logical start.
    fn allocate(&mut self, p: usize, len: usize) -> Option<u64> {
        if len <= self.inline {
            return None;
        }
        let r = self.region_bytes;
        let need = (len as u64).div_ceil(8) * 8;
        let head = self.frontier[p];
        let phys = head % r;
        let start = if phys + need > r { head + (r - phys) } else { head };
        self.frontier[p] = start + need;
        Some(start)
    }

    /// Whether anything may hold publishers back (the conservative condition for `Full`).
    fn may_gate(&self) -> bool {
        let subs = self.subs.iter().flatten().any(|s| match s.kind {
            // A demoted subscriber still holding a message in place keeps gating until it lets go (issue 8,
            // defect 2: the demotion takes effect at the holder's acknowledgement).
            Kind::Lossless { demote_pending } => !demote_pending || s.holding.is_some(),
            Kind::Member(_) => s.holding.is_some(),
            Kind::Lossy => false,
        });
        subs || self.groups.iter().any(|g| g.open) || self.entries.iter().any(|e| matches!(e, Entry::Pending { .. }))
    }

    /// What the next receive of ordered subscriber `sm` must return, and its next position after it.
    fn expect_ordered(&self, sm: &SubModel, real_tail: u64) -> (Expect, u64) {
        let lossy = sm.kind == Kind::Lossy;
        let mut c = sm.next;
        loop {
            // Lapped: the entry's next occupant was stamped. A vacancy there (a claimer that died before
            // stamping, which also keeps any later lap off the entry) leaves the old message readable.
            let next = c + self.cap;
            let vacancy = matches!(self.entries.get(next as usize), Some(Entry::Pending { vacancy: true, .. }));
            if lossy && self.tail() > next && !vacancy {
                // Lapped: resume at the oldest message the tail word says is still there.
                let to = real_tail.saturating_sub(self.cap).max(c + 1);
                return (Expect::Lagged(to - c), to);
            }
            match self.entries.get(c as usize) {
                None | Some(Entry::Pending { .. }) => return (Expect::Empty, c),
                Some(Entry::Skip) => c += 1,
                Some(Entry::Msg(m)) if self.lost(m) && (lossy || c < sm.verify_until) => {
                    return (Expect::Lagged(1), c + 1)
                }
                Some(Entry::Msg(_)) => return (Expect::Msg(c), c + 1),
            }
        }
    }

    /// What a member of group `g` must receive next, and the group's high-water position after it.
    fn expect_member(&self, g: usize) -> (Expect, u64) {
        let gm = &self.groups[g];
        if !gm.open {
            return (Expect::Closed, gm.next);
        }
        if let Some(&c) = gm.again.first() {
            return (Expect::Msg(c), gm.next);
        }
        let mut c = gm.next;
        loop {
            match self.entries.get(c as usize) {
                None | Some(Entry::Pending { .. }) => return (Expect::Empty, c),
                Some(Entry::Skip) => c += 1,
                // What a fix of defect 3 is expected to report, like a lossless subscriber does.
                Some(Entry::Msg(m)) if self.lost(m) => return (Expect::Lagged(1), c + 1),
                Some(Entry::Msg(_)) => return (Expect::Msg(c), c + 1),
            }
        }
    }

    /// Whether a retained position in `start..tail` holds a reclaimed region payload.
    fn window_lost(&self, start: u64) -> bool {
        (start..self.tail()).any(|c| matches!(&self.entries[c as usize], Entry::Msg(m) if self.lost(m)))
    }
}

// ---- the world: the ring, its handles, the model --------------------------------------------------------------

// A handful of slots per test case: their size does not matter, and boxing would only obscure the driver.
#[allow(clippy::large_enum_variant)]
enum PubSlot {
    Live(Publisher),
    /// Killed; its claims are not cancelled yet.
    Dead,
    Free,
}

struct World {
    known: Known,
    admin: Admin,
    /// The data object (to zero what a punch of the returned pages would).
    data: Region,
    origin: u64,
    max_message: usize,
    subs: Vec<Option<Subscriber>>,
    pubs: Vec<PubSlot>,
    m: Model,
    /// The steps run so far, for failure messages.
    trace: Vec<String>,
}

/// A message held across steps: what it must keep showing.
struct Held<'a> {
    slot: usize,
    seq: u64,
    payload: &'a [u8],
    expect: Vec<u8>,
    up: Option<&'a Held<'a>>,
}

/// How a nested frame ended.
enum Exit {
    /// The steps ran out: unwind every frame.
    End,
    /// The innermost hold ends by dropping the message.
    Release,
    /// The innermost hold ends by killing its subscriber.
    Kill,
}

fn w() -> Arc<PollWaiter> {
    Arc::new(PollWaiter)
}

macro_rules! check {
    ($world:expr, $cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(TestCaseError::fail(format!("{}\n  after steps:\n    {}", format!($($fmt)*), $world.trace.join("\n    "))));
        }
    };
}

impl World {
    fn new(geo: &Geometry, origin: u64, known: Known) -> World {
        let data = Region::heap(geo.data_len());
        let admin =
            Admin::create(data.clone(), Region::heap(geo.readers_len()), geo, origin, 1).expect("valid geometry");
        let pubs = (0..geo.max_publishers as usize)
            .map(|p| PubSlot::Live(Publisher::attach(&admin, p, w(), PublisherOptions::default()).unwrap()))
            .collect();
        let m = Model {
            cap: geo.capacity as u64,
            inline: geo.inline_bytes(),
            region_bytes: geo.region_bytes,
            single: geo.single_producer(),
            entries: Vec::new(),
            tail_lags: false,
            frontier: vec![0; geo.max_publishers as usize],
            next_id: 0,
            subs: vec![None; geo.max_subscribers as usize],
            groups: vec![GroupModel::default(); geo.max_groups as usize],
            demotions: 0,
            cancelled: 0,
            floor: 0,
        };
        World {
            known,
            admin,
            data,
            origin,
            max_message: geo.max_message as usize,
            subs: (0..geo.max_subscribers).map(|_| None).collect(),
            pubs,
            m,
            trace: Vec::new(),
        }
    }

    fn rel(&self, seq: u64) -> u64 {
        seq.wrapping_sub(self.origin)
    }

    fn seq(&self, rel: u64) -> u64 {
        self.origin.wrapping_add(rel)
    }

    /// The topic's tail word, relative, checked against the model's.
    fn real_tail(&self) -> Result<u64, TestCaseError> {
        let t = self.rel(self.admin.tail());
        let want = self.m.tail();
        // A single producer's tail word stays on a dead publisher's claim until its successor's next attempt
        // moves it past the cancelled marker (even one that ends up `Full`).
        let lagging = self.m.tail_lags && t == want - 1;
        check!(self, t == want || lagging, "tail word {t} (relative), model {want}");
        Ok(t)
    }

    fn len_of(&self, s: Size) -> usize {
        let (inline, max) = (self.m.inline.min(self.max_message), self.max_message);
        match s {
            Size::Inline(x) => MIN_LEN + x as usize % (inline - MIN_LEN + 1),
            Size::Region(x) if max > inline => inline + 1 + x as usize % (max - inline),
            Size::Region(_) => inline,
        }
    }

    /// The `k`-th (cyclically) attached subscriber slot, if any: steps aim at existing handles.
    fn attached(&self, k: u8) -> Option<usize> {
        let slots: Vec<usize> = (0..self.subs.len()).filter(|&s| self.m.subs[s].is_some()).collect();
        (!slots.is_empty()).then(|| slots[k as usize % slots.len()])
    }

    /// The `k`-th (cyclically) free subscriber slot, if any.
    fn free(&self, k: u8) -> Option<usize> {
        let slots: Vec<usize> = (0..self.subs.len()).filter(|&s| self.m.subs[s].is_none()).collect();
        (!slots.is_empty()).then(|| slots[k as usize % slots.len()])
    }

    fn is_dead(&self) -> Vec<bool> {
        self.pubs.iter().map(|p| !matches!(p, PubSlot::Live(_))).collect()
    }

    /// A claim at the model's tail succeeded with `seq`: record what it became.
    fn claimed(&mut self, seq: u64, e: Entry) -> Result<(), TestCaseError> {
        let want = self.seq(self.m.tail());
        check!(self, seq == want, "claim got sequence {seq:#x}, the total order says {want:#x}");
        self.m.entries.push(e);
        self.m.tail_lags = false;
        Ok(())
    }

    fn full(&self, what: &str) -> Result<(), TestCaseError> {
        check!(
            self,
            self.m.may_gate(),
            "{what}: Full with no lossless subscriber, open group, held group message or unpublished claim"
        );
        Ok(())
    }

    fn check_stats(&self) -> Result<(), TestCaseError> {
        let st = self.admin.stats();
        check!(self, st.demotions == self.m.demotions, "stats: {} demotions, model {}", st.demotions, self.m.demotions);
        check!(self, st.cancelled == self.m.cancelled, "stats: {} cancelled, model {}", st.cancelled, self.m.cancelled);
        for gs in &st.groups {
            let gm = &self.m.groups[gs.index];
            check!(
                self,
                (gs.redelivered, gs.abandoned) == (gm.redelivered, gm.abandoned),
                "group {} stats: redelivered {} abandoned {}, model {} {}",
                gs.index,
                gs.redelivered,
                gs.abandoned,
                gm.redelivered,
                gm.abandoned
            );
        }
        Ok(())
    }

    fn check_held(&self, held: Option<&Held<'_>>) -> Result<(), TestCaseError> {
        let mut h = held;
        while let Some(x) = h {
            check!(
                self,
                x.payload == &x.expect[..],
                "message {:#x} held by slot {} changed while held: now {}",
                x.seq,
                x.slot,
                describe(x.payload)
            );
            h = x.up;
        }
        Ok(())
    }

    /// What the next receive on `slot` must return, and the model update it implies (applied by `received`).
    fn expect(&self, slot: usize) -> Result<(Expect, u64), TestCaseError> {
        let sm = self.m.subs[slot].as_ref().expect("attached");
        Ok(match sm.kind {
            Kind::Lossless { demote_pending: true } => (Expect::Demoted, sm.next),
            Kind::Member(g) => self.m.expect_member(g),
            _ => self.m.expect_ordered(sm, self.real_tail()?),
        })
    }

    /// Checks a receive's result against the expectation and updates the model. Returns the position held.
    fn received(
        &mut self,
        slot: usize,
        (expect, next): (Expect, u64),
        got: Result<(u64, u32, &[u8]), RecvError>,
    ) -> Result<Option<u64>, TestCaseError> {
        let kind = self.m.subs[slot].as_ref().unwrap().kind;
        let actual = match &got {
            Ok((seq, ..)) => Expect::Msg(self.rel(*seq)),
            Err(RecvError::Empty) => Expect::Empty,
            Err(RecvError::Lagged(n)) => Expect::Lagged(*n),
            Err(RecvError::Demoted) => Expect::Demoted,
            Err(RecvError::Closed) => Expect::Closed,
            Err(e) => {
                check!(self, false, "slot {slot} ({kind:?}): unexpected {e:?}, model expects {expect:?}");
                unreachable!()
            }
        };
        let bytes = got.as_ref().map_or(String::new(), |(_, p, b)| format!(" from publisher {p}: {}", describe(b)));
        check!(self, actual == expect, "slot {slot} ({kind:?}): received {actual:?}{bytes}, model expects {expect:?}");
        let mut held = None;
        if let Ok((seq, publisher, bytes)) = got {
            let c = self.rel(seq);
            let Entry::Msg(sent) = self.m.entries[c as usize] else { unreachable!("the model expected a message") };
            check!(
                self,
                publisher as usize == sent.publisher,
                "slot {slot}: message {seq:#x} from publisher {publisher}, was sent by {}",
                sent.publisher
            );
            let want = payload(sent.id, sent.publisher, sent.len);
            check!(
                self,
                bytes == &want[..],
                "slot {slot} ({kind:?}): message {seq:#x} should be send #{} of publisher {} ({} bytes), got {}",
                sent.id,
                sent.publisher,
                sent.len,
                describe(bytes)
            );
            held = Some(c);
        }
        let sm = self.m.subs[slot].as_mut().unwrap();
        match (sm.kind, expect) {
            (Kind::Lossless { .. }, Expect::Demoted) => sm.kind = Kind::Lossy,
            (Kind::Member(g), e) => {
                let gm = &mut self.m.groups[g];
                if let Expect::Msg(c) = e {
                    if gm.again.remove(&c) {
                        gm.redelivered += 1;
                    }
                }
                gm.next = next;
            }
            _ => sm.next = next,
        }
        Ok(held)
    }

    /// Receives on `slot` and releases at once.
    fn recv(&mut self, slot: usize) -> Result<(), TestCaseError> {
        let Some(mut s) = self.subs[slot].take() else { return Ok(()) };
        let e = self.expect(slot)?;
        let r = match s.try_recv() {
            Ok(m) => self.received(slot, e, Ok((m.seq(), m.publisher(), m.payload()))),
            Err(err) => self.received(slot, e, Err(err)),
        };
        self.subs[slot] = Some(s);
        r.map(|_| ())
    }

    /// The subscriber in `slot` died holding position `held` (or nothing): release its slot.
    fn killed(&mut self, slot: usize, held: Option<u64>) -> Result<(), TestCaseError> {
        let got = self.admin.release_subscriber(slot, &PollWaiter).unwrap();
        let sm = self.m.subs[slot].take().unwrap();
        let want = match (sm.kind, held) {
            (Kind::Member(g), Some(c)) => {
                let gm = &mut self.m.groups[g];
                if gm.redeliver {
                    if gm.open {
                        gm.again.insert(c);
                    }
                    Some(Released::Redelivered(self.seq(c)))
                } else {
                    gm.abandoned += 1;
                    Some(Released::Abandoned(self.seq(c)))
                }
            }
            _ => None,
        };
        check!(self, got == want, "release_subscriber({slot}) of {:?}: {got:?}, model expects {want:?}", sm.kind);
        Ok(())
    }

    /// Runs steps from `*i` until they run out or one ends the innermost hold.
    fn run(&mut self, ops: &[Op], i: &mut usize, held: Option<&Held<'_>>) -> Result<Exit, TestCaseError> {
        while let Some(&op) = ops.get(*i) {
            *i += 1;
            self.trace.push(format!("{op:?}"));
            match op {
                Op::EndHold { kill } if held.is_some() => return Ok(if kill { Exit::Kill } else { Exit::Release }),
                Op::Hold { slot } => {
                    let Some(slot) = self.attached(slot) else { continue };
                    if let Some(exit) = self.hold(slot, ops, i, held)? {
                        return Ok(exit);
                    }
                }
                op => self.step(op)?,
            }
            self.check_held(held)?;
            self.check_stats()?;
        }
        Ok(Exit::End)
    }

    /// Receives on `slot` and, given a message, runs the following steps while holding it. `Some(End)` when the
    /// steps ran out inside.
    fn hold(
        &mut self,
        slot: usize,
        ops: &[Op],
        i: &mut usize,
        up: Option<&Held<'_>>,
    ) -> Result<Option<Exit>, TestCaseError> {
        let Some(mut s) = self.subs[slot].take() else { return Ok(None) };
        let e = self.expect(slot)?;
        let first = s.try_recv();
        if let Err(err) = &first {
            let err = err.clone();
            drop(first);
            let r = self.received(slot, e, Err(err));
            self.subs[slot] = Some(s);
            return r.map(|_| None);
        }
        let m = first.expect("an error returned above");
        let c = self.received(slot, e, Ok((m.seq(), m.publisher(), m.payload())))?.unwrap();
        self.m.subs[slot].as_mut().unwrap().holding = Some(c);
        let me = Held { slot, seq: m.seq(), payload: m.payload(), expect: m.payload().to_vec(), up };
        let exit = self.run(ops, i, Some(&me))?;
        self.check_held(Some(&me))?;
        drop(me);
        if let Exit::Kill = exit {
            std::mem::forget(m);
            std::mem::forget(s);
            return self.killed(slot, Some(c)).map(|_| None);
        }
        drop(m);
        self.subs[slot] = Some(s);
        self.m.subs[slot].as_mut().unwrap().holding = None;
        Ok(match exit {
            Exit::End => Some(Exit::End),
            _ => None,
        })
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        let npubs = self.pubs.len();
        let ngroups = self.m.groups.len();
        match op {
            Op::Attach { slot, mode, from_oldest } => {
                let Some(slot) = self.free(slot) else { return Ok(()) };
                let mode = match mode {
                    0 => Mode::Lossless,
                    1 => Mode::Lossy,
                    g if ngroups > 0 => Mode::Group((g as usize - 2) % ngroups),
                    _ => Mode::Lossy,
                };
                if let Mode::Group(g) = mode {
                    if !self.m.groups[g].open {
                        return Ok(());
                    }
                }
                let tail = self.real_tail()?;
                let dead = self.is_dead();
                let opts = SubscriberOptions { mode, from_oldest, ..Default::default() };
                let s = Subscriber::attach(&self.admin, slot, opts, w(), &|p: usize| dead[p]);
                check!(self, s.is_ok(), "attach {mode:?} to slot {slot}: {:?}", s.err());
                let s = s.unwrap();
                let oldest = if from_oldest { self.m.oldest(tail) } else { tail };
                let (kind, next) = match mode {
                    Mode::Lossless => (Kind::Lossless { demote_pending: false }, oldest),
                    Mode::Lossy => (Kind::Lossy, oldest),
                    Mode::Group(g) => (Kind::Member(g), self.m.groups[g].next),
                };
                if !matches!(kind, Kind::Member(_)) {
                    let at = self.rel(s.position());
                    check!(self, at == next, "{mode:?} subscriber attached at {at} (relative), model {next}");
                }
                self.m.subs[slot] = Some(SubModel { kind, next, verify_until: tail, holding: None });
                self.subs[slot] = Some(s);
            }
            Op::Detach { slot } => {
                let Some(slot) = self.attached(slot) else { return Ok(()) };
                if let Some(s) = self.subs[slot].take() {
                    s.detach();
                    self.m.subs[slot] = None;
                }
            }
            Op::KillSub { slot } => {
                let Some(slot) = self.attached(slot) else { return Ok(()) };
                if let Some(s) = self.subs[slot].take() {
                    std::mem::forget(s);
                    self.killed(slot, None)?;
                }
            }
            Op::Demote { slot } => {
                let Some(slot) = self.attached(slot) else { return Ok(()) };
                let Some(sm) = self.m.subs[slot].as_mut() else { return Ok(()) };
                if sm.kind != (Kind::Lossless { demote_pending: false })
                    || (self.known.demote_while_holding && sm.holding.is_some())
                {
                    return Ok(());
                }
                sm.kind = Kind::Lossless { demote_pending: true };
                self.m.demotions += 1;
                self.admin.demote(slot, &PollWaiter).unwrap();
            }
            Op::OpenGroup { g, from_oldest, redeliver } => {
                let g = g as usize % ngroups.max(1);
                if ngroups == 0 || self.m.groups[g].open {
                    return Ok(());
                }
                if self.m.subs.iter().flatten().any(|s| s.kind == Kind::Member(g)) {
                    // Members of the closed incarnation are still attached: the daemon never reopens then.
                    return Ok(());
                }
                let tail = self.real_tail()?;
                let mut from_oldest = from_oldest;
                let oldest = self.m.oldest(tail);
                if from_oldest && self.known.group_reclaimed_payload && self.m.window_lost(oldest) {
                    from_oldest = false;
                }
                let start = if from_oldest { oldest } else { tail };
                if self.known.late_group_after_lap && (self.m.groups[g].ever_opened || start != 0) {
                    return Ok(());
                }
                let dead = self.is_dead();
                self.admin.set_group_redelivery(g, redeliver);
                let r = self.admin.open_group(g, from_oldest, &PollWaiter, &|p: usize| dead[p]);
                check!(self, r.is_ok(), "open_group({g}): {r:?}");
                let gm = &mut self.m.groups[g];
                (gm.open, gm.ever_opened, gm.redeliver, gm.next) = (true, true, redeliver, start);
                gm.again.clear();
                let at = self.rel(self.admin.stats().groups.iter().find(|s| s.index == g).map_or(0, |s| s.next));
                check!(self, at == start, "group {g} opened at {at} (relative), model {start}");
            }
            Op::CloseGroup { g } => {
                let g = g as usize % ngroups.max(1);
                if ngroups == 0 || !self.m.groups[g].open {
                    return Ok(());
                }
                self.admin.close_group(g, &PollWaiter).unwrap();
                self.m.groups[g].open = false;
                self.m.groups[g].again.clear();
            }
            Op::Send { p, size } => {
                let p = p as usize % npubs;
                let len = self.len_of(size);
                let PubSlot::Live(publisher) = &mut self.pubs[p] else { return Ok(()) };
                let id = self.m.next_id;
                match publisher.try_send(&payload(id, p, len)) {
                    Ok(seq) => {
                        self.m.next_id += 1;
                        let region = self.m.allocate(p, len);
                        self.claimed(seq, Entry::Msg(Sent { id, publisher: p, len, region }))?;
                    }
                    Err(SendError::Full) => self.full("try_send")?,
                    Err(e) => check!(self, false, "try_send of {len} bytes by publisher {p}: {e:?}"),
                }
            }
            Op::Loan { p, size, end } => {
                let p = p as usize % npubs;
                let len = self.len_of(size);
                let loan_len = match end {
                    LoanEnd::Shorter => (len + 1 + len % 16).min(self.max_message),
                    _ => len,
                };
                let PubSlot::Live(publisher) = &mut self.pubs[p] else { return Ok(()) };
                let id = self.m.next_id;
                let taken = match publisher.try_loan(loan_len) {
                    Ok(mut loan) => {
                        let seq = loan.seq();
                        let bytes = payload(id, p, len);
                        let committed = match end {
                            LoanEnd::Abort => {
                                drop(loan);
                                false
                            }
                            LoanEnd::Commit => {
                                loan.copy_from_slice(&bytes);
                                assert_eq!(loan.commit(), seq, "commit returns the loan's sequence");
                                true
                            }
                            LoanEnd::Shorter => {
                                loan.write_at(0, &bytes);
                                assert_eq!(loan.commit_len(len), seq, "commit_len returns the loan's sequence");
                                true
                            }
                        };
                        Ok((seq, committed))
                    }
                    Err(e) => Err(e),
                };
                match taken {
                    Ok((seq, committed)) => {
                        let region = self.m.allocate(p, loan_len);
                        let entry = if committed {
                            self.m.next_id += 1;
                            Entry::Msg(Sent { id, publisher: p, len, region })
                        } else {
                            Entry::Skip
                        };
                        self.claimed(seq, entry)?;
                    }
                    Err(SendError::Full) => self.full("try_loan")?,
                    Err(e) => check!(self, false, "try_loan of {loan_len} bytes by publisher {p}: {e:?}"),
                }
            }
            Op::KillPub { p, mid_loan, vanish, size } => {
                let p = p as usize % npubs;
                let len = self.len_of(size);
                let PubSlot::Live(mut publisher) = std::mem::replace(&mut self.pubs[p], PubSlot::Dead) else {
                    return Ok(());
                };
                if mid_loan {
                    match publisher.try_loan(len) {
                        Ok(loan) => {
                            let seq = loan.seq();
                            std::mem::forget(loan);
                            self.m.allocate(p, len);
                            self.claimed(seq, Entry::Pending { p, vacancy: false })?;
                            self.m.tail_lags = self.m.single;
                        }
                        Err(SendError::Full) => self.full("try_loan")?,
                        Err(e) => check!(self, false, "try_loan of {len} bytes by publisher {p}: {e:?}"),
                    }
                }
                if !mid_loan && vanish {
                    match publisher.vanish_after_claim() {
                        Ok(seq) => self.claimed(seq, Entry::Pending { p, vacancy: true })?,
                        Err(SendError::Full) if self.m.single => {}
                        Err(SendError::Full) => self.full("a claim that vanished")?,
                        Err(e) => check!(self, false, "vanish_after_claim by publisher {p}: {e:?}"),
                    }
                    return Ok(());
                }
                std::mem::forget(publisher);
            }
            Op::Reap { p } => {
                let p = p as usize % npubs;
                if !matches!(self.pubs[p], PubSlot::Dead) {
                    return Ok(());
                }
                // As the daemon does: the vacancies of every slot no live holder has first, then `p`'s claims.
                let dead: Vec<bool> = self.pubs.iter().map(|s| !matches!(s, PubSlot::Live(_))).collect();
                let far = std::time::Instant::now() + std::time::Duration::from_secs(60);
                let v = self.admin.settle_vacancies(&PollWaiter, &|q| dead.get(q).copied().unwrap_or(true), far);
                let n = v.unwrap() + self.admin.cancel_claims_of(p, &PollWaiter).unwrap();
                let mut want = 0;
                for e in &mut self.m.entries {
                    if matches!(e, Entry::Pending { p: q, vacancy } if *q == p || *vacancy) {
                        *e = Entry::Skip;
                        want += 1;
                    }
                }
                self.m.cancelled += want;
                self.pubs[p] = PubSlot::Free;
                check!(self, n == want, "cancel_claims_of({p}) cancelled {n}, model {want}");
            }
            Op::AttachPub { p } => {
                let p = p as usize % npubs;
                if !matches!(self.pubs[p], PubSlot::Free) {
                    return Ok(());
                }
                let r = Publisher::attach(&self.admin, p, w(), PublisherOptions::default());
                check!(self, r.is_ok(), "attach publisher {p}: {:?}", r.err());
                self.pubs[p] = PubSlot::Live(r.unwrap());
            }
            Op::Recv { slot } => {
                if let Some(slot) = self.attached(slot) {
                    self.recv(slot)?
                }
            }
            Op::ReturnIdle { page_shift } => self.return_idle(1 << page_shift)?,
            Op::Hold { .. } | Op::EndHold { .. } => {}
        }
        Ok(())
    }

    /// [`Op::ReturnIdle`]: what the daemon does to a topic no lease has held for a while.
    fn return_idle(&mut self, page: usize) -> Result<(), TestCaseError> {
        if self.m.subs.iter().any(Option::is_some) {
            return Ok(());
        }
        for p in 0..self.pubs.len() {
            match std::mem::replace(&mut self.pubs[p], PubSlot::Free) {
                PubSlot::Live(publisher) => drop(publisher),
                PubSlot::Dead => {
                    self.pubs[p] = PubSlot::Dead;
                    self.step(Op::Reap { p: p as u8 })?;
                }
                PubSlot::Free => {}
            }
        }
        let tail = self.m.tail();
        let unread = self.m.groups.iter().position(|g| g.open && (g.next < tail || !g.again.is_empty()));
        let r = self.admin.forget_retained();
        match unread {
            Some(g) => {
                check!(self, r == Err(NotIdle::Group(g)), "forget_retained with group {g} behind: {r:?}");
                return Ok(());
            }
            None => check!(self, r.is_ok(), "forget_retained of an idle topic: {r:?}"),
        }
        self.m.tail_lags = false;
        check!(self, self.real_tail()? == tail, "tail word after forget_retained");
        let x = Extents::of(&self.admin.geometry());
        let from = x.index.start.div_ceil(page) * page;
        for off in (from..x.payload.end).step_by(8) {
            self.data.poke_word(off, 0);
        }
        self.m.floor = tail;
        Ok(())
    }

    /// After the steps: reap dead publishers, then drain every subscriber; each must end `Empty` (or `Closed`).
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.trace.push("-- drain --".into());
        for p in 0..self.pubs.len() {
            self.step(Op::Reap { p: p as u8 })?;
        }
        for slot in 0..self.subs.len() {
            for _ in 0..4 * self.m.cap + 8 {
                if self.m.subs[slot].is_none() {
                    break;
                }
                let (e, _) = self.expect(slot)?;
                self.recv(slot)?;
                if matches!(e, Expect::Empty | Expect::Closed) {
                    break;
                }
            }
        }
        self.check_stats()
    }
}

/// Topic knobs: (log2 capacity, log2(entry bytes / 32), max message, extra region lines, publishers, groups,
/// origin near `u64::MAX`, laps below it).
fn knobs() -> impl Strategy<Value = (u32, u32, u32, u64, u32, u32, bool, u64)> {
    (1u32..=3, 1u32..=2, 40u32..=300, 0u64..=2, 1u32..=3, 1u32..=2, any::<bool>(), 1u64..=3)
}

fn run_case(
    (cap_log, entry_log, max_message, extra, pubs, groups, wrap, laps): (u32, u32, u32, u64, u32, u32, bool, u64),
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let geo = shaped_geometry((cap_log, entry_log, max_message, extra, pubs, 4, groups), "model geometry");
    let origin = if wrap { 0u64.wrapping_sub(geo.capacity as u64 * laps) } else { 0 };
    let mut world = World::new(&geo, origin, known());
    world.trace.push(format!("{geo:?}, origin {origin:#x}"));
    let mut i = 0;
    world.run(ops, &mut i, None)?;
    world.drain()
}

fn model_config() -> ProptestConfig {
    let mut c = config(1024);
    if std::env::var_os("SHMBUS_MODEL_EXPOSE").is_some() {
        c.failure_persistence = None;
    }
    c
}

proptest! {
    #![proptest_config(model_config())]

    /// Random operation sequences on small topics agree with the reference model of §3.
    #[test]
    fn ring_agrees_with_the_model(k in knobs(), ops in prop::collection::vec(op(), 1..60)) {
        run_case(k, &ops)?;
    }
}
