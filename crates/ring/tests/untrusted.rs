//! Property tests: everything read from shared memory is untrusted (ARCHITECTURE.md §4).
//!
//! Whatever the bytes of a topic's two objects, the ring must
//!
//! * never panic: in particular never access out of bounds ([`Region`] accessors `debug_assert` their offsets
//!   and alignment, and these tests run with debug assertions) and never overflow on an untrusted value (overflow
//!   checks are on in debug builds);
//! * never form an in-place payload or loan slice outside one entry's inline bytes or one publisher's region
//!   (those slices come from raw pointers, which no accessor checks: the test knows the data object's address
//!   and checks every slice against the layout);
//! * never hang: every `try_*` call, attach, recovery hook and `stats()` returns within [`CALL_LIMIT`], and a
//!   watchdog aborts the process, naming the call, if one has not returned after [`HANG_LIMIT`];
//! * never hand a [`Waiter`] a slot outside the topic's geometry (a real waiter indexes its semaphores by slot);
//! * return payloads no longer than the topic's maximum message, readable in full.
//!
//! Any `Ok`/`Err` value is acceptable otherwise: corrupted memory may yield garbage messages, `Corrupted`, `Full`,
//! `Lagged`, `Closed`...
//!
//! Properties:
//!
//! * `arbitrary_bytes_never_attach_out_of_bounds`: random lengths (0..64 KiB) filled with random words (uniform,
//!   sparse, small, or special values; sometimes with the right magic and version); `Topic::attach` and
//!   `read_header` return `Ok` or a typed `AttachError`.
//! * `forged_headers_never_attach_out_of_bounds`: objects with a well-formed header (right magic, version and
//!   checksum, with single-field tweaks) over random geometry words (half near and beyond every limit, half
//!   valid) and exact or random object sizes; an accepted header must describe a valid geometry of exactly the
//!   object's size, and the garbage body behind it is then exercised with every operation.
//! * `mutated_topics_never_misbehave`: a valid topic with traffic in flight (inline and region payloads; lossless,
//!   lossy and group subscribers; a dead publisher's open claim; a dead member's held message) whose words are
//!   then overwritten (targeted at headers, stamps, entry meta/length/position, cursors, flags, ledgers,
//!   frontiers, tail, masks, counters, or anywhere; whole plausible entries forged under a subscriber's cursor;
//!   forged subscriber slots and group cursors/ledgers), interleaved with every operation: receives on every
//!   subscriber, sends, batches, loans, `stats()`, `cancel_claims_of`, `release_subscriber`, `demote`, groups
//!   opened and closed, handles re-attached to corrupted slots, and the topic re-attached.
//!
//! `mirrors_match_the_layout` checks the test's copy of the layout and checksum against the crate, and the
//! `regression_*` tests replay, deterministically, each bug these properties found.
//!
//! Writing arbitrary words uses the testing hooks `Region::poke_word` / `Region::peek_word`.
//!
//! # Case counts and the long mode
//!
//! By default each property runs 512 cases (a few seconds in all in a debug build). `PROPTEST_CASES=n` overrides
//! the count as usual. For a long fuzzing run set `SHMBUS_LONG_FUZZ=1` (1,000,000 cases per property, or
//! `SHMBUS_FUZZ_CASES=n`). Keep debug assertions and overflow checks on, they are the out-of-bounds and overflow
//! detectors; an optimized build with both is much faster than a debug build:
//!
//! ```text
//! SHMBUS_LONG_FUZZ=1 CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
//!     cargo test -p shmbus-ring --release --test untrusted --test alloc_model
//! ```
//!
//! Failing cases are persisted by proptest in `tests/untrusted.proptest-regressions` and replayed first.
#![cfg(not(loom))] // in-process tests on real memory; the loom models are in tests/loom.rs

mod common;

use common::{config, shaped_geometry, SplitMix};
use proptest::prelude::*;
use shmbus_ring::stamp::{cursor, Stamp, State, STATE_SHIFT};
use shmbus_ring::*;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

// ---- configuration --------------------------------------------------------------------------------------------

/// Longest any single call may take, wall clock. Ring calls take microseconds; this only flags a loop that runs
/// for seconds, and is generous because a loaded machine can stall a test thread for a few seconds (a 1,000,000-case
/// run under `nice` on a busy 2-CPU machine saw a 3.2 s stall in a `try_send` that does not reproduce).
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// A call that has not returned after this long is a hang: the watchdog reports it and aborts the process (a
/// panic cannot interrupt a loop in another thread's call).
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// Calls in progress, per test thread: what and since when.
static CALLS: Mutex<Vec<(ThreadId, &'static str, Instant)>> = Mutex::new(Vec::new());

fn watchdog() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(1));
            let calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
            for (thread, what, since) in calls.iter() {
                if since.elapsed() > HANG_LIMIT {
                    eprintln!("HANG: {what} in {thread:?} has not returned after {:?}", since.elapsed());
                    std::process::abort();
                }
            }
        });
    });
}

/// Runs one call of the ring under the watchdog and checks it returned in time.
fn timed<T>(what: &'static str, f: impl FnOnce() -> T) -> T {
    watchdog();
    let me = std::thread::current().id();
    let t = Instant::now();
    CALLS.lock().unwrap_or_else(|e| e.into_inner()).push((me, what, t));
    let r = f();
    CALLS.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| c.0 != me);
    let e = t.elapsed();
    assert!(e < CALL_LIMIT, "{what} took {e:?}");
    r
}

// ---- layout mirror (see crates/ring/src/layout.rs) ------------------------------------------------------------
//
// Used only to aim mutations at interesting words; if the layout changes the properties still hold, only the aim
// gets worse (random offsets are mixed in anyway).

const LINE: usize = 128;
const D_CLOSED: usize = LINE;
const D_TAIL: usize = 2 * LINE;
const D_CANCELLED: usize = 3 * LINE;
const DATA_PUB_SLOTS: usize = 4 * LINE;
const R_EPOCH: usize = LINE;
const R_DATA_WAITERS: usize = 2 * LINE;
const R_SPACE_WAITERS: usize = 3 * LINE;
const R_WAKEUPS: usize = 4 * LINE;
const R_IN_USE: usize = 5 * LINE;
const READERS_SUB_SLOTS: usize = 6 * LINE;

struct Layout {
    geo: Geometry,
}

impl Layout {
    fn pub_slot(&self, p: usize) -> usize {
        DATA_PUB_SLOTS + LINE * p
    }
    fn index(&self) -> usize {
        self.pub_slot(self.geo.max_publishers as usize)
    }
    fn entry(&self, i: usize) -> usize {
        self.index() + (i % self.geo.capacity as usize) * self.geo.entry_bytes as usize
    }
    fn region(&self, p: usize) -> usize {
        self.index() + self.geo.capacity as usize * self.geo.entry_bytes as usize + p * self.geo.region_bytes as usize
    }
    fn sub_slot(&self, s: usize) -> usize {
        READERS_SUB_SLOTS + LINE * s
    }
    fn group(&self, g: usize) -> usize {
        self.sub_slot(self.geo.max_subscribers as usize) + LINE * g
    }
    fn ledger(&self, g: usize, i: usize) -> usize {
        self.group(self.geo.max_groups as usize) + (g * self.geo.capacity as usize + i % self.geo.capacity as usize) * 8
    }
    /// The 32-bit wake-up word of subscriber slot `slot` (`publisher == false`) or publisher slot `slot`: after the
    /// ledgers (rounded up to a line), subscribers first.
    fn wake(&self, publisher: bool, slot: usize) -> usize {
        let ledgers = self.ledger(0, 0) + self.geo.capacity as usize * self.geo.max_groups as usize * 8;
        let base = ledgers.div_ceil(LINE) * LINE;
        base + 4 * (if publisher { self.geo.max_subscribers as usize } else { 0 } + slot)
    }
    /// The end of the readers object: the wake-up words padded to a line.
    fn readers_end(&self) -> usize {
        let end = self.wake(true, self.geo.max_publishers as usize);
        self.wake(false, 0) + (end - self.wake(false, 0)).div_ceil(LINE) * LINE
    }
}

/// FNV-1a over the geometry words, origin and generation (mirrors the header checksum of layout.rs).
fn checksum(words: &[u64; 7], origin: u64, generation: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words.iter().chain([origin, generation].iter()) {
        for b in w.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn geometry_words(g: &Geometry) -> [u64; 7] {
    [
        g.capacity as u64,
        g.entry_bytes as u64,
        g.max_message as u64,
        g.region_bytes,
        g.max_publishers as u64,
        g.max_subscribers as u64,
        g.max_groups as u64,
    ]
}

// ---- a waiter that checks its targets -------------------------------------------------------------------------

/// A [`PollWaiter`] that insists every posted target is a slot of the topic: a real waiter indexes an array of
/// semaphores by slot, so a target taken from corrupted memory must never reach it.
struct CheckingWaiter {
    publishers: usize,
    subscribers: usize,
}

impl CheckingWaiter {
    fn check(&self, t: Target) {
        match t {
            Target::Publisher(p) => assert!(p < self.publishers, "waiter asked for publisher slot {p}"),
            Target::Subscriber(s) => assert!(s < self.subscribers, "waiter asked for subscriber slot {s}"),
        }
    }
}

impl Waiter for CheckingWaiter {
    fn post(&self, target: Target) {
        self.check(target)
    }
    fn drain(&self, target: Target) {
        self.check(target)
    }
    fn wait_until(&self, target: Target, deadline: Instant) -> bool {
        self.check(target);
        PollWaiter.wait_until(target, deadline)
    }
}

/// Fills whole words of `r` from `seed`: `style` picks uniform words, sparse words (mostly zero) or small values,
/// which get past more checks than uniform noise.
fn fill(r: &Region, seed: u64, style: u8) {
    let mut rng = SplitMix(seed);
    for i in 0..r.len() / 8 {
        let x = rng.next();
        let v = match style % 4 {
            0 => x,
            1 if x.is_multiple_of(8) => rng.next(),
            1 => 0,
            2 => x % 300,
            _ => match x % 6 {
                0 => 0,
                1 => u64::MAX,
                2 => x >> 40,
                3 => 1 << (x % 64),
                4 => rng.next() & ((1 << 16) - 1),
                _ => rng.next(),
            },
        };
        r.poke_word(i * 8, v);
    }
}

// ---- operations on a topic ------------------------------------------------------------------------------------

/// Which word a mutation overwrites. Indices are reduced modulo the relevant count when applied.
#[derive(Clone, Debug)]
enum Aim {
    AnyData(u32),
    AnyReaders(u32),
    Header { data: bool, word: u8 },
    Closed,
    Tail,
    Cancelled,
    PubSlot { p: u8, word: u8 },
    Entry { i: u16, word: u8 },
    Region { p: u8, word: u16 },
    SubSlot { s: u8, word: u8 },
    Group { g: u8, word: u8 },
    Ledger { g: u8, i: u16 },
    ReadersHot { word: u8 },
}

/// What a mutation writes.
#[derive(Clone, Debug)]
enum Value {
    Random(u64),
    FlipBit(u8),
    Add(i16),
    Zero,
    Ones,
    /// A stamp-shaped word: lap relative to the current word's, any state, a small owner.
    Stamp {
        lap: i8,
        state: u8,
        owner: u16,
    },
    /// A cursor-shaped word: flags (bits 62, 63) over a sequence near the tail.
    Cursor {
        flags: u8,
        delta: i32,
    },
    /// A meta-shaped word: a length near an interesting bound, a publisher, the in-region bit.
    Meta {
        len: u8,
        delta: i16,
        publisher: u16,
        in_region: bool,
    },
    Small(u16),
    /// A subscriber-flags-shaped word: a group number (possibly out of range) over flag bits.
    Flags {
        group: u8,
        bits: u8,
    },
}

#[derive(Clone, Debug)]
struct Mutation {
    aim: Aim,
    value: Value,
}

/// Subscriber modes of the handles the harness keeps (slot = index).
const MODES: [Mode; 5] = [Mode::Lossless, Mode::Lossy, Mode::Group(0), Mode::Group(0), Mode::Lossless];

#[derive(Clone, Debug)]
enum Act {
    Mutate(Mutation),
    /// Write a whole plausible entry, as a malicious or broken publisher would, at the position subscriber
    /// `target` reads next (+ `k`): a stamp (mostly published at the right lap), a length near an interesting
    /// bound, a position near the end of the region, then let that subscriber read.
    ForgeEntry {
        target: u8,
        k: i8,
        forge: Forge,
    },
    /// Write a group's claim cursor and the ledger word it points at, then let the members read.
    ForgeGroup {
        g: u8,
        cursor_flags: u8,
        delta: i8,
        lap: i8,
        state: u8,
        owner: u8,
    },
    /// Write a subscriber slot's flags (group number possibly out of range) and cursor, then run a recovery hook.
    ForgeSubscriber {
        s: u8,
        group: u8,
        flags: u8,
        cursor_flags: u8,
        delta: i16,
        then: u8,
    },
    Recv {
        s: u8,
        calls: u8,
    },
    Send {
        p: u8,
        len: u32,
    },
    Batch {
        p: u8,
        n: u8,
        len: u32,
    },
    Loan {
        p: u8,
        len: u32,
        commit: u8,
    },
    Stats,
    Cancel {
        p: u8,
    },
    Release {
        s: u16,
    },
    Demote {
        s: u16,
    },
    Attach,
    ReattachPublisher {
        p: u8,
    },
    ReattachSubscriber {
        s: u8,
        mode: u8,
        from_oldest: bool,
    },
    OpenGroup {
        g: u8,
        from_oldest: bool,
    },
    CloseGroup {
        g: u8,
    },
    Redelivery {
        g: u8,
        on: bool,
    },
}

fn aim() -> impl Strategy<Value = Aim> {
    prop_oneof![
        2 => any::<u32>().prop_map(Aim::AnyData),
        2 => any::<u32>().prop_map(Aim::AnyReaders),
        1 => (any::<bool>(), 0u8..16).prop_map(|(data, word)| Aim::Header { data, word }),
        1 => Just(Aim::Closed),
        2 => Just(Aim::Tail),
        1 => Just(Aim::Cancelled),
        3 => (any::<u8>(), 0u8..16).prop_map(|(p, word)| Aim::PubSlot { p, word }),
        6 => (any::<u16>(), 0u8..8).prop_map(|(i, word)| Aim::Entry { i, word }),
        1 => (any::<u8>(), any::<u16>()).prop_map(|(p, word)| Aim::Region { p, word }),
        4 => (any::<u8>(), 0u8..8).prop_map(|(s, word)| Aim::SubSlot { s, word }),
        2 => (any::<u8>(), 0u8..4).prop_map(|(g, word)| Aim::Group { g, word }),
        3 => (any::<u8>(), any::<u16>()).prop_map(|(g, i)| Aim::Ledger { g, i }),
        2 => (0u8..8).prop_map(|word| Aim::ReadersHot { word }),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => any::<u64>().prop_map(Value::Random),
        2 => any::<u8>().prop_map(|b| Value::FlipBit(b % 64)),
        2 => any::<i16>().prop_map(Value::Add),
        1 => Just(Value::Zero),
        1 => Just(Value::Ones),
        4 => (-3i8..=3, 0u8..4, 0u16..8).prop_map(|(lap, state, owner)| Value::Stamp { lap, state, owner }),
        3 => (0u8..4, -70i32..70).prop_map(|(flags, delta)| Value::Cursor { flags, delta }),
        3 => (0u8..5, -9i16..=9, 0u16..6, any::<bool>())
            .prop_map(|(len, delta, publisher, in_region)| Value::Meta { len, delta, publisher, in_region }),
        2 => any::<u16>().prop_map(Value::Small),
        2 => (0u8..5, 0u8..4).prop_map(|(group, bits)| Value::Flags { group, bits }),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (aim(), value()).prop_map(|(aim, value)| Mutation { aim, value })
}

/// The fields of a forged entry.
#[derive(Clone, Debug)]
struct Forge {
    /// 0-3 published, else the raw state `state - 4`.
    state: u8,
    /// Length: an interesting bound (0, inline, maximum, region, `u32::MAX`) plus `len_delta`.
    len: u8,
    len_delta: i16,
    /// Position: a bound near the region's end or the frontier, plus `pos_delta` words.
    pos: u8,
    pos_delta: i16,
    /// Publisher id, reduced modulo `max_publishers + 1` (so sometimes one past the last).
    publisher: u16,
    /// 0-1: in the region exactly when the length is beyond the inline bytes; 2: in the region; 3: inline.
    placement: u8,
    lap: i8,
}

fn forge() -> impl Strategy<Value = Forge> {
    (0u8..8, 0u8..5, -9i16..=9, 0u8..8, -4i16..=4, any::<u16>(), 0u8..4, prop_oneof![6 => Just(0i8), 1 => -1i8..=1])
        .prop_map(|(state, len, len_delta, pos, pos_delta, publisher, placement, lap)| Forge {
            state,
            len,
            len_delta,
            pos,
            pos_delta,
            publisher,
            placement,
            lap,
        })
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        6 => mutation().prop_map(Act::Mutate),
        4 => (0u8..5, -1i8..=2, forge()).prop_map(|(target, k, forge)| Act::ForgeEntry { target, k, forge }),
        2 => (0u8..2, 0u8..4, -3i8..=3, -2i8..=1, 0u8..4, 0u8..6).prop_map(
            |(g, cursor_flags, delta, lap, state, owner)| Act::ForgeGroup { g, cursor_flags, delta, lap, state, owner },
        ),
        2 => (0u8..8, 0u8..5, 0u8..4, 0u8..4, -40i16..40, 0u8..4).prop_map(
            |(s, group, flags, cursor_flags, delta, then)| Act::ForgeSubscriber { s, group, flags, cursor_flags, delta, then },
        ),
        8 => (0u8..5, 1u8..=200).prop_map(|(s, calls)| Act::Recv { s, calls }),
        6 => (0u8..4, any::<u32>()).prop_map(|(p, len)| Act::Send { p, len }),
        1 => (0u8..4, 1u8..8, any::<u32>()).prop_map(|(p, n, len)| Act::Batch { p, n, len }),
        2 => (0u8..4, any::<u32>(), 0u8..3).prop_map(|(p, len, commit)| Act::Loan { p, len, commit }),
        2 => Just(Act::Stats),
        1 => (0u8..5).prop_map(|p| Act::Cancel { p }),
        1 => (0u16..8).prop_map(|s| Act::Release { s }),
        1 => (0u16..8).prop_map(|s| Act::Demote { s }),
        2 => Just(Act::Attach),
        1 => (0u8..4).prop_map(|p| Act::ReattachPublisher { p }),
        1 => (0u8..5, 0u8..4, any::<bool>())
            .prop_map(|(s, mode, from_oldest)| Act::ReattachSubscriber { s, mode, from_oldest }),
        1 => (0u8..3, any::<bool>()).prop_map(|(g, from_oldest)| Act::OpenGroup { g, from_oldest }),
        1 => (0u8..3).prop_map(|g| Act::CloseGroup { g }),
        1 => (0u8..3, any::<bool>()).prop_map(|(g, on)| Act::Redelivery { g, on }),
    ]
}

/// A topic's two regions, the attached topic and the handles, driven by [`Act`]s.
struct Harness {
    data: Region,
    /// Address of the data object's first byte (in-place payloads and loans must point inside it).
    base: usize,
    readers: Region,
    topic: Admin,
    lay: Layout,
    waiter: Arc<CheckingWaiter>,
    pubs: Vec<Option<Publisher>>,
    subs: Vec<Option<Subscriber>>,
    /// Bytes read out of payloads (keeps the reads honest).
    read: u64,
}

impl Harness {
    fn new((data, base): (Region, usize), readers: Region, topic: Admin) -> Harness {
        let geo = topic.geometry();
        let waiter = Arc::new(CheckingWaiter {
            publishers: geo.max_publishers as usize,
            subscribers: geo.max_subscribers as usize,
        });
        Harness { data, base, readers, topic, lay: Layout { geo }, waiter, pubs: vec![], subs: vec![], read: 0 }
    }

    fn geo(&self) -> Geometry {
        self.lay.geo
    }

    /// Writes entry `seq` as `f` says (stamp last, as a publisher would).
    fn forge_entry(&self, seq: u64, f: &Forge) {
        let geo = self.geo();
        let e = self.lay.entry((seq & (geo.capacity as u64 - 1)) as usize);
        let r = geo.region_bytes;
        let bound = [0, geo.inline_bytes() as u64, geo.max_message as u64, r, u32::MAX as u64][f.len as usize % 5];
        let len = bound.wrapping_add(f.len_delta as i64 as u64) & 0xffff_ffff;
        let need = len.div_ceil(8) * 8;
        let publisher = f.publisher as u64 % (geo.max_publishers as u64 + 1);
        let frontier = self.data.peek_word(self.lay.pub_slot(publisher as usize % geo.max_publishers as usize));
        let pos = match f.pos {
            0 => 0,
            1 => r.wrapping_sub(need),
            2 => r.wrapping_sub(need).wrapping_add(8),
            3 => r.wrapping_sub(8),
            4 => frontier,
            5 => frontier.wrapping_sub(need),
            6 => 0u64.wrapping_sub(r).wrapping_add(r.wrapping_sub(need)),
            _ => frontier.wrapping_add(3),
        }
        .wrapping_add((f.pos_delta as i64 * 8) as u64);
        let in_region = match f.placement {
            0 | 1 => len > geo.inline_bytes() as u64,
            2 => true,
            _ => false,
        };
        let meta = len | (publisher << 32) | ((in_region as u64) << 48);
        // Mostly published (code 2), else any raw code, `Invalid`'s 0 included.
        let state = if f.state < 4 { 2 } else { f.state as u64 - 4 };
        let lap = (seq >> geo.capacity.trailing_zeros()).wrapping_add(f.lap as i64 as u64);
        let stamp = raw_stamp(lap, state, publisher as u32);
        self.data.poke_word(e + 8, meta);
        self.data.poke_word(e + 16, pos);
        self.data.poke_word(e, stamp);
    }

    /// Attaches up to four publishers and the subscribers of [`MODES`] (whatever attaches), opening group 0.
    fn attach_handles(&mut self) {
        let geo = self.geo();
        let _ = timed("open_group", || self.topic.open_group(0, false, &*self.waiter, &|_| true));
        for p in 0..(geo.max_publishers as usize).min(4) {
            let r = timed("publisher attach", || {
                Publisher::attach(&self.topic, p, self.waiter.clone(), PublisherOptions::default())
            });
            self.pubs.push(r.ok());
        }
        for (s, mode) in MODES.iter().enumerate().take(geo.max_subscribers as usize) {
            let r = timed("subscriber attach", || self.attach_subscriber(s, *mode, false));
            self.subs.push(r.ok());
        }
    }

    fn attach_subscriber(&self, s: usize, mode: Mode, from_oldest: bool) -> Result<Subscriber, AttachError> {
        let opts = SubscriberOptions { mode, from_oldest, idle: IdleStrategy::BusySpin };
        // Every publisher "dead": attaching a lossless cursor must not wait on a corrupted `sends` counter.
        Subscriber::attach(&self.topic, s, opts, self.waiter.clone(), &|_| true)
    }

    fn len(&self, raw: u32) -> usize {
        // Mostly within the maximum, sometimes one past it.
        (raw % (self.geo().max_message + 2)) as usize
    }

    fn payload(seq: u64, len: usize) -> Vec<u8> {
        (0..len).map(|k| (seq as usize).wrapping_mul(131).wrapping_add(k) as u8).collect()
    }

    fn apply(&self, m: &Mutation) {
        let geo = self.geo();
        let lay = &self.lay;
        let (region, off) = match m.aim {
            Aim::AnyData(x) => (&self.data, x as usize % (self.data.len() / 8) * 8),
            Aim::AnyReaders(x) => (&self.readers, x as usize % (self.readers.len() / 8) * 8),
            Aim::Header { data, word } => (if data { &self.data } else { &self.readers }, word as usize * 8),
            Aim::Closed => (&self.data, D_CLOSED),
            Aim::Tail => (&self.data, D_TAIL),
            Aim::Cancelled => (&self.data, D_CANCELLED),
            Aim::PubSlot { p, word } => {
                (&self.data, lay.pub_slot(p as usize % geo.max_publishers as usize) + word as usize * 8)
            }
            Aim::Entry { i, word } => {
                let w = (word as usize).min(geo.entry_bytes as usize / 8 - 1);
                (&self.data, lay.entry(i as usize) + w * 8)
            }
            Aim::Region { p, word } => {
                if geo.region_bytes == 0 {
                    (&self.data, lay.entry(word as usize))
                } else {
                    let p = p as usize % geo.max_publishers as usize;
                    (&self.data, lay.region(p) + (word as usize % (geo.region_bytes as usize / 8)) * 8)
                }
            }
            Aim::SubSlot { s, word } => {
                (&self.readers, lay.sub_slot(s as usize % geo.max_subscribers as usize) + word as usize * 8)
            }
            Aim::Group { g, word } => {
                if geo.max_groups == 0 {
                    (&self.readers, R_EPOCH)
                } else {
                    (&self.readers, lay.group(g as usize % geo.max_groups as usize) + word as usize * 8)
                }
            }
            Aim::Ledger { g, i } => {
                if geo.max_groups == 0 {
                    (&self.readers, R_IN_USE)
                } else {
                    (&self.readers, lay.ledger(g as usize % geo.max_groups as usize, i as usize))
                }
            }
            Aim::ReadersHot { word } => {
                let offs = [
                    R_EPOCH,
                    R_DATA_WAITERS,
                    R_DATA_WAITERS + 8,
                    R_SPACE_WAITERS,
                    R_WAKEUPS,
                    R_WAKEUPS + 8,
                    R_IN_USE,
                    R_IN_USE + 24,
                ];
                (&self.readers, offs[word as usize % offs.len()])
            }
        };
        let cur = region.peek_word(off);
        let tail = self.data.peek_word(D_TAIL);
        let v = match m.value {
            Value::Random(v) => v,
            Value::FlipBit(b) => cur ^ (1 << b),
            Value::Add(d) => cur.wrapping_add(d as i64 as u64),
            Value::Zero => 0,
            Value::Ones => u64::MAX,
            Value::Stamp { lap, state, owner } => {
                let base = Stamp::unpack(cur).lap;
                // Raw state bits: `Stamp::pack` cannot express code 0 with a lap (`Invalid`), which corruption can.
                raw_stamp(base.wrapping_add(lap as i64 as u64), state as u64 % 4, owner as u32)
            }
            Value::Cursor { flags, delta } => {
                cursor::pack(((flags as u64) & 3) << 62, tail.wrapping_add(delta as i64 as u64))
            }
            Value::Meta { len, delta, publisher, in_region } => {
                let bound = [0, geo.inline_bytes() as u64, geo.max_message as u64, geo.region_bytes, u32::MAX as u64]
                    [len as usize % 5];
                let l = bound.wrapping_add(delta as i64 as u64) & 0xffff_ffff;
                l | ((publisher as u64) << 32) | ((in_region as u64) << 48)
            }
            Value::Small(v) => v as u64,
            Value::Flags { group, bits } => ((group as u64) << 8) | bits as u64,
        };
        region.poke_word(off, v);
    }

    fn run(&mut self, act: &Act) {
        let max = self.geo().max_message as usize;
        match *act {
            Act::Mutate(ref m) => self.apply(m),
            Act::ForgeEntry { target, k, ref forge } => {
                let target = target as usize;
                let at = match self.subs.get(target) {
                    Some(Some(sub)) => sub.position(),
                    _ => self.data.peek_word(D_TAIL),
                };
                let seq = at.wrapping_add(k as i64 as u64);
                self.forge_entry(seq, forge);
                if target < self.subs.len() {
                    self.run(&Act::Recv { s: target as u8, calls: 3 });
                }
            }
            Act::ForgeGroup { g, cursor_flags, delta, lap, state, owner } => {
                let geo = self.geo();
                if geo.max_groups > 0 {
                    let g = g as usize % geo.max_groups as usize;
                    let tail = self.data.peek_word(D_TAIL);
                    let c = tail.wrapping_add(delta as i64 as u64);
                    let flags = ((cursor_flags as u64) & 3) << 62;
                    self.readers.poke_word(self.lay.group(g), cursor::pack(flags, c));
                    let shift = geo.capacity.trailing_zeros();
                    let lw = raw_stamp((c >> shift).wrapping_add(lap as i64 as u64), state as u64 % 4, owner as u32);
                    self.readers.poke_word(self.lay.ledger(g, (c & (geo.capacity as u64 - 1)) as usize), lw);
                    for s in 2..4 {
                        self.run(&Act::Recv { s, calls: 4 });
                    }
                }
            }
            Act::ForgeSubscriber { s, group, flags, cursor_flags, delta, then } => {
                let geo = self.geo();
                let slot = s as usize % geo.max_subscribers as usize;
                let base = self.lay.sub_slot(slot);
                let tail = self.data.peek_word(D_TAIL);
                self.readers.poke_word(base + 8, ((group as u64) << 8) | flags as u64);
                let c = cursor::pack(((cursor_flags as u64) & 3) << 62, tail.wrapping_add(delta as i64 as u64));
                self.readers.poke_word(base, c);
                match then {
                    0 => self.run(&Act::Release { s: slot as u16 }),
                    1 => self.run(&Act::Demote { s: slot as u16 }),
                    2 => self.run(&Act::Recv { s: slot as u8, calls: 8 }),
                    _ => {}
                }
            }
            Act::Recv { s, calls } => {
                for _ in 0..calls {
                    let Some(Some(sub)) = self.subs.get_mut(s as usize) else { return };
                    let r = timed("try_recv", || {
                        sub.try_recv().map(|m| (m.len(), m.payload().as_ptr() as usize, m.payload().to_vec()))
                    });
                    // Lossy reads, and lossless or member reads below the attach point, are copies in the
                    // subscriber's own buffer; every other payload must lie in place within one entry or region.
                    let (buf, buf_len) = sub.copy_buffer();
                    let copied = |addr: usize, len: usize| addr >= buf && addr + len <= buf + buf_len;
                    match r {
                        Ok((len, addr, bytes)) => {
                            assert!(len <= max, "payload of {len} bytes, maximum {max}");
                            assert_eq!(bytes.len(), len);
                            if sub.mode() == Mode::Lossy {
                                assert!(len == 0 || copied(addr, len), "a lossy payload outside its copy buffer");
                            } else if !copied(addr, len) {
                                check_in_place(self.base, self.geo(), addr, len, "payload");
                            }
                            self.read += bytes.iter().map(|&b| b as u64).sum::<u64>();
                        }
                        Err(RecvError::Empty | RecvError::Closed) => break,
                        Err(_) => {}
                    }
                }
            }
            Act::Send { p, len } => {
                let len = self.len(len);
                let Some(Some(publ)) = self.pubs.get_mut(p as usize) else { return };
                let msg = Self::payload(publ.published(), len);
                let r = timed("try_send", || publ.try_send(&msg));
                if len > max {
                    assert_eq!(r, Err(SendError::TooLarge { len, max }));
                }
            }
            Act::Batch { p, n, len } => {
                let len = self.len(len).min(max);
                let Some(Some(publ)) = self.pubs.get_mut(p as usize) else { return };
                let msgs: Vec<Vec<u8>> = (0..n as u64).map(|i| Self::payload(i, len)).collect();
                let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
                let _ = timed("try_send_batch", || publ.try_send_batch(&refs));
            }
            Act::Loan { p, len, commit } => {
                let len = self.len(len);
                let (base, geo) = (self.base, self.geo());
                let Some(Some(publ)) = self.pubs.get_mut(p as usize) else { return };
                timed("try_loan", || {
                    if let Ok(mut loan) = publ.try_loan(len) {
                        check_in_place(base, geo, base + loan.data_offset(), len, "loan");
                        let seq = loan.seq();
                        loan.copy_from_slice(&Self::payload(seq, len));
                        match commit {
                            0 => drop(loan),
                            1 => {
                                loan.commit();
                            }
                            _ => {
                                loan.commit_len(len / 2);
                            }
                        }
                    }
                });
            }
            Act::Stats => {
                let st = timed("stats", || self.topic.stats());
                assert!(st.publishers.len() <= self.geo().max_publishers as usize);
                assert!(st.subscribers.len() <= self.geo().max_subscribers as usize);
                assert!(st.groups.len() <= self.geo().max_groups as usize);
            }
            Act::Cancel { p } => {
                let _ = timed("cancel_claims_of", || self.topic.cancel_claims_of(p as usize, &*self.waiter));
            }
            Act::Release { s } => {
                let _ = timed("release_subscriber", || self.topic.release_subscriber(s as usize, &*self.waiter));
            }
            Act::Demote { s } => {
                let _ = timed("demote", || self.topic.demote(s as usize, &*self.waiter));
            }
            Act::Attach => {
                let r = timed("attach", || Topic::attach(self.data.clone(), self.readers.clone()));
                if let Ok(t) = r {
                    // A header that still validates describes the same geometry (it was copied at attach).
                    let _ = t.stats();
                    let _ = t.tail();
                }
            }
            Act::ReattachPublisher { p } => {
                let p = p as usize;
                if p < self.pubs.len() {
                    self.pubs[p] = None;
                    let _ = timed("cancel_claims_of", || self.topic.cancel_claims_of(p, &*self.waiter));
                    let r = timed("publisher attach", || {
                        Publisher::attach(&self.topic, p, self.waiter.clone(), PublisherOptions::default())
                    });
                    self.pubs[p] = r.ok();
                }
            }
            Act::ReattachSubscriber { s, mode, from_oldest } => {
                let s = s as usize;
                if s < self.subs.len() {
                    self.subs[s] = None;
                    let mode = [Mode::Lossless, Mode::Lossy, Mode::Group(0), Mode::Group(1)][mode as usize % 4];
                    let r = timed("subscriber attach", || self.attach_subscriber(s, mode, from_oldest));
                    self.subs[s] = r.ok();
                }
            }
            Act::OpenGroup { g, from_oldest } => {
                let _ =
                    timed("open_group", || self.topic.open_group(g as usize, from_oldest, &*self.waiter, &|_| true));
            }
            Act::CloseGroup { g } => {
                let _ = timed("close_group", || self.topic.close_group(g as usize, &*self.waiter));
            }
            Act::Redelivery { g, on } => self.topic.set_group_redelivery(g as usize, on),
        }
    }
}

/// An in-place payload (or loan) of `len` bytes at `addr`, in the data object of `geo` at `base`, must lie in one
/// entry's inline bytes or in one publisher's region: reading or writing past them is the out-of-bounds access the
/// `Region` accessors cannot see (the slice is formed from a raw pointer).
fn check_in_place(base: usize, geo: Geometry, addr: usize, len: usize, what: &str) {
    if len == 0 {
        return;
    }
    let lay = Layout { geo };
    let off = addr.wrapping_sub(base);
    let (index, regions, end) = (lay.index(), lay.region(0), geo.data_len());
    assert!(off >= index && off.checked_add(len).is_some_and(|e| e <= end), "{what}: {len} bytes at {off} of {end}");
    if off < regions {
        let e = (off - index) / geo.entry_bytes as usize;
        let entry = index + e * geo.entry_bytes as usize;
        assert!(
            off >= entry + 32 && off + len <= entry + geo.entry_bytes as usize,
            "{what}: {len} bytes at {off} overflow inline entry {e}"
        );
    } else {
        let r = geo.region_bytes as usize;
        let p = (off - regions) / r;
        assert!(off + len <= regions + (p + 1) * r, "{what}: {len} bytes at {off} overflow the region of {p}");
    }
}

/// A zero-filled heap region whose base address the test knows.
fn traced_region(len: usize) -> (Region, usize) {
    let words: Box<[AtomicU64]> = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
    let ptr = words.as_ptr() as *mut u8;
    // SAFETY: the boxed slice is 8-aligned, at least `len` bytes long, interior-mutable (atomics) and kept alive
    // by the backing for as long as the region lives.
    let r = unsafe { Region::from_raw(ptr, len, true, Arc::new(words)) };
    (r, ptr as usize)
}

// ---- strategies for geometries --------------------------------------------------------------------------------

/// Small valid geometries: capacity 2..16, entries of 32/64/128 bytes (0/32/96 inline), messages up to 600 bytes,
/// 1-3 publishers, 5-6 subscribers, 1-2 groups, regions of one to a few maximum messages.
fn small_geometry() -> impl Strategy<Value = Geometry> {
    (1u32..=4, 0u32..3, 0u32..=600, 0u64..4, 1u32..=3, 5u32..=6, 1u32..=2)
        .prop_map(|shape| shaped_geometry(shape, "small geometry is valid"))
}

/// Valid geometries of every shape (up to 64 entries of up to 512 bytes, messages up to 2 KiB, 1-5 publishers,
/// 1-8 subscribers, 0-3 groups), all small enough to allocate.
fn valid_geometry() -> impl Strategy<Value = Geometry> {
    (1u32..=6, 0u32..5, 0u32..=2048, 0u64..4, 1u32..=5, 1u32..=8, 0u32..=3)
        .prop_map(|shape| shaped_geometry(shape, "valid geometry"))
}

/// Geometry words near and beyond every limit (mostly invalid).
fn random_geometry_words() -> impl Strategy<Value = [u64; 7]> {
    (
        prop_oneof![Just(0u64), 1u64..=64, Just(1 << 24), Just(1 << 25), any::<u64>()],
        prop_oneof![Just(32u64), Just(64), Just(128), 0u64..=8192, any::<u64>()],
        prop_oneof![0u64..=700, Just(1 << 30), Just((1 << 30) + 1), any::<u64>()],
        prop_oneof![Just(0u64), (0u64..=12).prop_map(|k| k * 128), 0u64..=2048, Just(1 << 40), any::<u64>()],
        prop_oneof![0u64..=5, Just(64), Just(65), any::<u64>()],
        prop_oneof![0u64..=8, Just(256), Just(257), any::<u64>()],
        prop_oneof![0u64..=3, Just(64), Just(65), any::<u64>()],
    )
        .prop_map(|(a, b, c, d, e, f, g)| [a, b, c, d, e, f, g])
}

fn origin_for(cap: u32, sel: u8, k: u64) -> u64 {
    let cap = cap as u64;
    match sel % 4 {
        0 => 0,
        1 => 0u64.wrapping_sub(cap * (k % 16 + 1)),
        2 => (1u64 << 62).wrapping_sub(cap * (k % 16 + 1)),
        _ => k & !(cap - 1),
    }
}

// ---- properties ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// Random lengths and random words: attach returns a typed error (or, astronomically rarely, Ok).
    #[test]
    fn arbitrary_bytes_never_attach_out_of_bounds(
        data_len in 0usize..64 * 1024,
        readers_len in 0usize..64 * 1024,
        seed in any::<u64>(),
        style in 0u8..4,
        magic in any::<bool>(),
    ) {
        let data = Region::heap(data_len);
        let readers = Region::heap(readers_len);
        fill(&data, seed, style);
        fill(&readers, seed ^ 0x5555, style);
        if magic {
            // Get past the first check now and then.
            if data.len() >= 8 { data.poke_word(0, DATA_MAGIC) }
            if readers.len() >= 8 { readers.poke_word(0, READERS_MAGIC) }
            if data.len() >= 16 { data.poke_word(8, LAYOUT_VERSION) }
            if readers.len() >= 16 { readers.poke_word(8, LAYOUT_VERSION) }
        }
        let r = timed("attach", || Topic::attach(data.clone(), readers.clone()));
        if let Err(e) = r {
            // Errors render (they carry static strings only).
            let _ = e.to_string();
        }
        let _ = timed("read_header", || read_header(&data, DATA_MAGIC));
        let _ = timed("read_header", || read_header(&readers, READERS_MAGIC));
    }

    /// Well-formed headers over random geometries and sizes; when accepted, the garbage body is exercised.
    #[test]
    fn forged_headers_never_attach_out_of_bounds(
        words in prop_oneof![
            1 => random_geometry_words(),
            1 => valid_geometry().prop_map(|g| geometry_words(&g)),
        ],
        origin_sel in any::<u8>(),
        origin_k in any::<u64>(),
        generation in any::<u64>(),
        tweak in 0u8..16,
        seed in any::<u64>(),
        style in 0u8..4,
        acts in prop::collection::vec(act(), 0..40),
    ) {
        let [cap, entry, max_message, region, pubs, subs, groups] = words;
        let g = Geometry {
            capacity: cap as u32,
            entry_bytes: entry as u32,
            max_message: max_message as u32,
            region_bytes: region,
            max_publishers: pubs as u32,
            max_subscribers: subs as u32,
            max_groups: groups as u32,
        };
        let valid = g.validate().is_ok() && words.iter().take(7).enumerate().all(|(i, &w)| i == 3 || w <= u32::MAX as u64);
        let origin = origin_for((cap as u32).max(1), origin_sel, origin_k);
        // Object sizes: exact when the geometry is valid and small, else something random and small.
        let (mut dl, mut rl) = if valid && g.data_len() <= 1 << 20 && g.readers_len() <= 1 << 20 {
            (g.data_len(), g.readers_len())
        } else {
            ((seed % 8192) as usize, (seed / 8192 % 8192) as usize)
        };
        match tweak {
            0 => dl = dl.saturating_sub(8),
            1 => rl += 8,
            2 => dl = dl.saturating_sub(1),
            _ => {}
        }
        let (data, base) = traced_region(dl);
        let readers = Region::heap(rl);
        fill(&data, seed, style);
        fill(&readers, seed.rotate_left(17), style);
        let write = |r: &Region, magic: u64, origin: u64, generation: u64, sum: u64| {
            if r.len() < 128 {
                return;
            }
            r.poke_word(0, magic);
            r.poke_word(8, if tweak == 3 { LAYOUT_VERSION + 1 } else { LAYOUT_VERSION });
            for (i, w) in words.iter().enumerate() {
                r.poke_word(16 + 8 * i, *w);
            }
            r.poke_word(72, origin);
            r.poke_word(80, generation);
            r.poke_word(88, sum);
            // The data object's barrier mode (0: full fences, valid for every process); tweak 10 forges an unknown
            // mode, which must be refused.
            r.poke_word(96, if tweak == 10 { 7 } else { 0 });
        };
        let sum = checksum(&words, origin, generation);
        write(&data, DATA_MAGIC, origin, generation, if tweak == 4 { sum ^ 1 } else { sum });
        match tweak {
            5 => write(&readers, READERS_MAGIC, origin, generation.wrapping_add(1), checksum(&words, origin, generation.wrapping_add(1))),
            6 => write(&readers, DATA_MAGIC, origin, generation, sum),
            7 => write(&readers, READERS_MAGIC, origin | 1, generation, checksum(&words, origin | 1, generation)),
            _ => write(&readers, READERS_MAGIC, origin, generation, sum),
        }
        // Not closed, or the exercise below is short.
        if data.len() >= 2 * LINE && tweak != 8 {
            data.poke_word(D_CLOSED, 0);
        }
        // The owner's attach: the same validation as `Topic::attach`, and the harness also runs admin operations.
        let r = timed("attach", || Admin::adopt(data.clone(), readers.clone()));
        if let Ok(topic) = r {
            prop_assert!(valid, "accepted an invalid geometry {:?}", g);
            prop_assert!(tweak != 10, "accepted an unknown barrier mode");
            prop_assert_eq!(topic.geometry(), g);
            prop_assert_eq!(topic.origin(), origin);
            prop_assert_eq!((data.len(), readers.len()), (g.data_len(), g.readers_len()));
            let mut h = Harness::new((data, base), readers, topic);
            h.attach_handles();
            for a in &acts {
                h.run(a);
            }
        } else if valid && tweak > 8 && tweak != 10 && data.len() == g.data_len() && readers.len() == g.readers_len() {
            // A forged header we believe is valid must be accepted (checks the mirrors above are right).
            prop_assert!(r.is_ok() || matches!(r, Err(AttachError::Closed)), "{:?} refused: {:?}", g, r);
        }
    }

    /// A valid topic with traffic in flight, then corrupted anywhere and exercised with every operation.
    #[test]
    fn mutated_topics_never_misbehave(
        geo in small_geometry(),
        origin_sel in any::<u8>(),
        origin_k in any::<u64>(),
        pre in prop::collection::vec((0u8..4, any::<u32>(), 0u8..6), 0..24),
        dead_claim in any::<bool>(),
        dead_member in any::<bool>(),
        first in prop::collection::vec(mutation(), 1..6),
        acts in prop::collection::vec(act(), 1..40),
    ) {
        let origin = origin_for(geo.capacity, origin_sel, origin_k);
        let (data, base) = traced_region(geo.data_len());
        let readers = Region::heap(geo.readers_len());
        let topic = Admin::create(data.clone(), readers.clone(), &geo, origin, 7).unwrap();
        let mut h = Harness::new((data, base), readers, topic);
        h.attach_handles();
        prop_assert!(h.pubs.iter().all(Option::is_some) && h.subs.iter().all(Option::is_some));
        // Traffic before the corruption: sends of every size class, some receives (so cursors differ).
        for &(p, len, recv) in &pre {
            h.run(&Act::Send { p, len: len % (geo.max_message + 1) });
            if recv < 5 {
                h.run(&Act::Recv { s: recv, calls: 1 });
            }
        }
        if dead_claim && geo.max_publishers > 1 {
            // A publisher that died inside a loan: its claim stays in the ring.
            let publ = h.pubs[1].as_mut().unwrap();
            if let Ok(loan) = publ.try_loan(geo.max_message as usize / 2) {
                std::mem::forget(loan);
            }
        }
        if dead_member {
            // A group member that died holding a message.
            let sub = h.subs[3].as_mut().unwrap();
            if let Ok(m) = sub.try_recv() {
                std::mem::forget(m);
            }
        }
        for m in &first {
            h.apply(m);
        }
        for a in &acts {
            h.run(a);
        }
        // Everything still answers after the whole sequence.
        for s in 0..h.subs.len() {
            h.run(&Act::Recv { s: s as u8, calls: 200 });
        }
        for p in 0..h.pubs.len() {
            h.run(&Act::Send { p: p as u8, len: 1 });
        }
        h.run(&Act::Stats);
        h.run(&Act::Attach);
        for s in 0..geo.max_subscribers as u16 + 1 {
            h.run(&Act::Release { s });
        }
        for p in 0..geo.max_publishers as u8 + 1 {
            h.run(&Act::Cancel { p });
        }
        let _ = h.read;
    }
}

/// The forged-header property only means something if a forged header over a valid geometry is accepted, and the
/// mutations only aim well if the layout mirror is right: check both against `initialize` and real traffic.
#[test]
fn mirrors_match_the_layout() {
    let geo = Geometry { max_groups: 2, ..region_geometry() };
    let data = Region::heap(geo.data_len());
    let readers = Region::heap(geo.readers_len());
    let origin = 0u64.wrapping_sub(64);
    initialize(&data, &readers, &geo, origin, 9).unwrap();
    assert_eq!(data.peek_word(88), checksum(&geometry_words(&geo), origin, 9));
    assert_eq!(readers.peek_word(88), checksum(&geometry_words(&geo), origin, 9));
    assert_eq!(data.peek_word(96), 0, "barrier mode of a topic made by an unregistered process: full fences");
    assert_eq!(data.peek_word(D_TAIL), origin);
    let lay = Layout { geo };
    assert_eq!(lay.region(2), geo.data_len());
    assert_eq!(lay.readers_end(), geo.readers_len());
    assert!(lay.ledger(1, 7) + 8 <= lay.wake(false, 0));
    // Layout 4: nothing of the index ring or the ledgers is written; a zero entry is pristine.
    for i in 0..geo.capacity as usize {
        assert_eq!(data.peek_word(lay.entry(i)), 0);
        assert_eq!(Stamp::unpack(data.peek_word(lay.entry(i))).state, State::Pristine);
        assert_eq!(readers.peek_word(lay.ledger(1, i)), 0);
    }
    let topic = Admin::adopt(data.clone(), readers.clone()).unwrap();
    let w = Arc::new(PollWaiter);
    topic.open_group(1, false, &*w, &|_| false).unwrap();
    assert_eq!(readers.peek_word(lay.group(1)), cursor::pack(cursor::ACTIVE | cursor::GATING, origin));
    let mut s = Subscriber::attach(&topic, 4, SubscriberOptions::default(), w.clone(), &|_| false).unwrap();
    assert_eq!(readers.peek_word(lay.sub_slot(4)), cursor::pack(cursor::ACTIVE | cursor::GATING, origin));
    assert_eq!(readers.peek_word(R_IN_USE), 1 << 4);
    let mut p = Publisher::attach(&topic, 1, w, PublisherOptions::default()).unwrap();
    p.try_send(&[5; 200]).unwrap();
    assert_eq!(data.peek_word(lay.pub_slot(1)), 200, "frontier");
    let stamp = Stamp::unpack(data.peek_word(lay.entry(0)));
    assert_eq!((stamp.state, stamp.owner), (State::Published, 1));
    assert_eq!(data.peek_word(lay.entry(0) + 8) & 0xffff_ffff, 200);
    assert_eq!(data.peek_word(lay.region(1)), u64::from_le_bytes([5; 8]));
    assert_eq!(data.peek_word(D_TAIL), origin.wrapping_add(1));
    assert_eq!(s.try_recv().unwrap().payload(), &[5; 200][..]);
    topic.cancel_claims_of(0, &PollWaiter).unwrap();
    assert_eq!(data.peek_word(D_CANCELLED), 0);
    topic.demote(4, &PollWaiter).unwrap();
    assert_eq!(readers.peek_word(R_WAKEUPS + 8), 1, "demotions");
    topic.close(&PollWaiter).unwrap();
    assert_eq!(data.peek_word(D_CLOSED), 1);
    // The wake-up words: where the mirror says, bounded by the geometry.
    for (t, publisher, slot) in [(Target::Subscriber(4), false, 4), (Target::Publisher(1), true, 1)] {
        let off = lay.wake(publisher, slot);
        let before = readers.peek_word(off & !7);
        // Relaxed: a single-threaded check of where the word lies.
        topic.wake_word(t).unwrap().store(0xabcd, std::sync::atomic::Ordering::Relaxed);
        let shift = if off.is_multiple_of(8) { 0 } else { 32 };
        assert_eq!(readers.peek_word(off & !7), before | (0xabcd << shift), "{t:?}");
    }
    assert!(topic.wake_word(Target::Subscriber(geo.max_subscribers as usize)).is_none());
    assert!(topic.wake_word(Target::Publisher(geo.max_publishers as usize)).is_none());
}

// ---- regressions: the bugs these properties found, as plain tests --------------------------------------------

fn topic_with(geo: &Geometry) -> (Region, usize, Region, Admin) {
    let (data, base) = traced_region(geo.data_len());
    let readers = Region::heap(geo.readers_len());
    let topic = Admin::create(data.clone(), readers.clone(), geo, 0, 1).unwrap();
    (data, base, readers, topic)
}

fn region_geometry() -> Geometry {
    Geometry {
        capacity: 8,
        entry_bytes: 64,
        max_message: 300,
        region_bytes: 384,
        max_publishers: 2,
        max_subscribers: 5,
        max_groups: 1,
    }
}

/// Raised bits beyond the topic's slots in the waiter masks never reach the waiter.
#[test]
fn regression_waiter_masks_beyond_the_slots() {
    let geo = region_geometry();
    let (_data, _, readers, topic) = topic_with(&geo);
    let w = Arc::new(CheckingWaiter { publishers: 2, subscribers: 5 });
    let mut p = Publisher::attach(&topic, 0, w.clone(), PublisherOptions::default()).unwrap();
    let mut s = Subscriber::attach(&topic, 0, SubscriberOptions::default(), w.clone(), &|_| false).unwrap();
    for word in 0..4 {
        readers.poke_word(R_DATA_WAITERS + 8 * word, u64::MAX);
    }
    readers.poke_word(R_SPACE_WAITERS, u64::MAX);
    p.try_send(b"x").unwrap();
    drop(s.try_recv().unwrap());
    for word in 0..4 {
        readers.poke_word(R_DATA_WAITERS + 8 * word, u64::MAX);
    }
    readers.poke_word(R_SPACE_WAITERS, u64::MAX);
    topic.close(&*w).unwrap();
}

/// Counters near `u64::MAX` neither break `stats()` nor a publisher taking the slot over.
#[test]
fn regression_counters_near_the_top() {
    let geo = region_geometry();
    let (data, _, _readers, topic) = topic_with(&geo);
    let lay = Layout { geo };
    for w in 1..6 {
        data.poke_word(lay.pub_slot(1) + 8 * w, u64::MAX);
    }
    let _ = topic.stats();
    let mut p = Publisher::attach(&topic, 1, Arc::new(PollWaiter), PublisherOptions::default()).unwrap();
    p.try_send(&[1; 200]).unwrap();
    drop(p.try_loan(10).unwrap());
    let _ = topic.stats();
}

/// A frontier taken over from shared memory may be unaligned or next to `u64::MAX`: the new holder never writes
/// outside its region or misaligned, and never overflows.
#[test]
fn regression_corrupted_frontier_at_takeover() {
    let geo = region_geometry();
    for frontier in [u64::MAX, u64::MAX - 130, u64::MAX - 383, 3, 1 << 63] {
        let (data, base, _readers, topic) = topic_with(&geo);
        let lay = Layout { geo };
        data.poke_word(lay.pub_slot(1), frontier);
        let w = Arc::new(PollWaiter);
        let mut s = Subscriber::attach(&topic, 0, SubscriberOptions::default(), w.clone(), &|_| false).unwrap();
        let mut p = Publisher::attach(&topic, 1, w, PublisherOptions::default()).unwrap();
        for i in 0..40usize {
            let len = (i * 97) % 301;
            if let Ok(loan) = p.try_loan(len) {
                check_in_place(base, geo, base + loan.data_offset(), len, "loan");
                loan.commit();
            }
            loop {
                let (addr, len) = match s.try_recv() {
                    Ok(m) => (m.payload().as_ptr() as usize, m.len()),
                    Err(_) => break,
                };
                let (buf, buf_len) = s.copy_buffer();
                if !(addr >= buf && addr + len <= buf + buf_len) {
                    check_in_place(base, geo, addr, len, "payload");
                }
            }
        }
    }
}

/// A `region_geometry` topic with a lossy subscriber and a publisher, both in slot 0: the data object, its layout
/// mirror, the topic and the two handles.
fn lossy_region_topic() -> (Region, Layout, Admin, Subscriber, Publisher) {
    let geo = region_geometry();
    let (data, _, _readers, topic) = topic_with(&geo);
    let w = Arc::new(PollWaiter);
    let opts = SubscriberOptions { mode: Mode::Lossy, ..Default::default() };
    let s = Subscriber::attach(&topic, 0, opts, w.clone(), &|_| false).unwrap();
    let p = Publisher::attach(&topic, 0, w, PublisherOptions::default()).unwrap();
    (data, Layout { geo }, topic, s, p)
}

/// An entry whose region position is not word-aligned is corruption, not a misaligned atomic load.
#[test]
fn regression_unaligned_region_position() {
    let (data, lay, _topic, mut s, mut p) = lossy_region_topic();
    p.try_send(&[7; 200]).unwrap();
    data.poke_word(lay.entry(0) + 16, 4);
    assert!(matches!(s.try_recv(), Err(RecvError::Corrupted { .. })));
}

/// Huge lags (from a corrupted tail) do not overflow the lag counter.
#[test]
fn regression_huge_lags() {
    let (data, lay, topic, mut s, mut p) = lossy_region_topic();
    for i in 0..9u8 {
        p.try_send(&[i]).unwrap();
    }
    for _ in 0..3 {
        // The entry under the cursor is one lap ahead, and the tail claims to be 2^63 further.
        let c = s.position();
        let ahead = Stamp::pack((c >> 3) + 1, State::Published, 0);
        data.poke_word(lay.entry((c & 7) as usize), ahead);
        data.poke_word(D_TAIL, c.wrapping_add(1 << 63));
        assert!(matches!(s.try_recv(), Err(RecvError::Lagged(n)) if n > 1 << 62));
    }
    let _ = topic.stats();
}

/// A stamp word with raw state code `code` (0-3), which `Stamp::pack` may not express.
fn raw_stamp(lap: u64, code: u64, owner: u32) -> u64 {
    (Stamp::pack(lap, State::Claimed, owner) & !(3 << STATE_SHIFT)) | ((code & 3) << STATE_SHIFT)
}
