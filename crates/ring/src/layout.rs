//! The shared-memory layout of a topic: geometry, object sizes and the offset of every shared word.
//!
//! A topic is two objects:
//!
//! * the **data object** (publishers read-write, subscribers read-only): header, publisher slots, the index ring
//!   and one payload region per publisher slot;
//! * the **readers object** (everyone read-write): header, wake-up masks, subscriber slots, group slots, the
//!   group ledgers and the wake-up words (one 32-bit futex word per subscriber slot, then one per publisher slot,
//!   padded to a line).
//!
//! Memory follows the bytes in flight, not `capacity × max_message`: an index entry is small (stamp, length,
//! position, timestamp, and `entry_bytes - 32` bytes of inline payload) and larger payloads go to the publisher's
//! own region, allocated in that publisher's order and freed as readers pass. Every hot word sits on its own
//! 128-byte line (the size of `crossbeam_utils::CachePadded` on x86-64, which pairs adjacent lines).

use crate::error::AttachError;
use crate::region::Region;
use crate::sync::Ordering;

/// Cache-line stride of every slot and hot word (128 bytes: the adjacent-line prefetcher pairs 64-byte lines).
#[doc(hidden)]
pub const LINE: usize = 128;
/// Magic of the data object ("SHMBUSD1").
#[doc(hidden)]
pub const DATA_MAGIC: u64 = u64::from_le_bytes(*b"SHMBUSD1");
/// Magic of the readers object ("SHMBUSR1").
#[doc(hidden)]
pub const READERS_MAGIC: u64 = u64::from_le_bytes(*b"SHMBUSR1");
/// Layout version written by this build. Bump on any change of offsets or encodings.
pub const LAYOUT_VERSION: u64 = 4;
/// Bytes of an index entry before its inline payload (stamp, meta, position, timestamp).
pub(crate) const ENTRY_HEADER: usize = 32;
/// Largest supported index capacity.
pub const MAX_CAPACITY: u32 = 1 << 24;
/// Largest supported message.
pub const MAX_MESSAGE: u32 = 1 << 30;
/// Most publishers per topic (one bit each in the space-waiter mask).
pub const MAX_PUBLISHERS: u32 = 64;
/// Most subscribers per topic (one bit each in the data-waiter masks).
pub const MAX_SUBSCRIBERS: u32 = 256;
/// Most consumer groups per topic.
pub const MAX_GROUPS: u32 = 64;

/// The shape of a topic. Copied into process memory when attach validates it, never re-read from the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Index entries (messages in flight), a power of two.
    pub capacity: u32,
    /// Bytes of one index entry, a power of two from 32 to 4096; `entry_bytes - 32` payload bytes go inline.
    pub entry_bytes: u32,
    /// Largest message payload in bytes.
    pub max_message: u32,
    /// Bytes of each publisher's payload region (a multiple of 128; 0 when every message fits inline).
    pub region_bytes: u64,
    /// Publisher slots (1 selects the single-producer fast path).
    pub max_publishers: u32,
    /// Subscriber slots.
    pub max_subscribers: u32,
    /// Consumer-group slots.
    pub max_groups: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry::new(1024, 64 * 1024, 4 << 20, 8, 32, 8)
    }
}

/// `v` rounded up to a multiple of `to`, saturating: knobs come from requests (a payload budget of `u64::MAX`
/// overflowed here, a panic in the daemon's debug build, found by the control fuzz), and a saturated size is then
/// refused by [`Geometry::validate`].
fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to).saturating_mul(to)
}

impl Geometry {
    /// A geometry from user-facing knobs: `capacity` entries, messages up to `max_message` bytes, a payload budget
    /// of `payload_budget` bytes in flight shared by `max_publishers` publishers (each region holds at least one
    /// maximum-size message). Entries are 128 bytes (96 bytes inline). Call [`Geometry::validate`] on the result.
    pub fn new(
        capacity: u32,
        max_message: u32,
        payload_budget: u64,
        max_publishers: u32,
        max_subscribers: u32,
        max_groups: u32,
    ) -> Geometry {
        let entry_bytes = 128u32;
        let inline = (entry_bytes as usize - ENTRY_HEADER) as u64;
        let region_bytes = if max_message as u64 <= inline {
            0
        } else {
            let per = payload_budget / max_publishers.max(1) as u64;
            round_up(per.max(round_up(max_message as u64, 8)), LINE as u64)
        };
        Geometry { capacity, entry_bytes, max_message, region_bytes, max_publishers, max_subscribers, max_groups }
    }

    /// Checks every field against the limits and that the object sizes fit in memory.
    pub fn validate(&self) -> Result<(), AttachError> {
        let bad = |what| Err(AttachError::Corrupted { what });
        if !self.capacity.is_power_of_two() || self.capacity < 2 || self.capacity > MAX_CAPACITY {
            return bad("capacity must be a power of two from 2 to 2^24");
        }
        if !self.entry_bytes.is_power_of_two() || self.entry_bytes < 32 || self.entry_bytes > 4096 {
            return bad("entry size must be a power of two from 32 to 4096");
        }
        if self.max_message > MAX_MESSAGE {
            return bad("maximum message size above 1 GiB");
        }
        if !self.region_bytes.is_multiple_of(LINE as u64) || self.region_bytes > 1 << 40 {
            return bad("payload region size must be a multiple of 128 below 1 TiB");
        }
        if self.max_message as usize > self.inline_bytes() && self.region_bytes < round_up(self.max_message as u64, 8) {
            return bad("payload region smaller than one maximum-size message");
        }
        if self.max_publishers == 0 || self.max_publishers > MAX_PUBLISHERS {
            return bad("publisher slots must be 1 to 64");
        }
        if self.max_subscribers == 0 || self.max_subscribers > MAX_SUBSCRIBERS {
            return bad("subscriber slots must be 1 to 256");
        }
        if self.max_groups > MAX_GROUPS {
            return bad("consumer-group slots must be 0 to 64");
        }
        match (self.checked_data_len(), self.checked_readers_len()) {
            (Some(d), Some(r)) if d <= isize::MAX as u64 / 2 && r <= isize::MAX as u64 / 2 => Ok(()),
            _ => bad("object size overflows"),
        }
    }

    /// Payload bytes stored inline in an index entry.
    pub fn inline_bytes(&self) -> usize {
        self.entry_bytes as usize - ENTRY_HEADER
    }

    /// log2(capacity).
    pub fn shift(&self) -> u32 {
        self.capacity.trailing_zeros()
    }

    /// Whether the topic uses the single-producer fast path (no compare-and-swap to claim).
    pub fn single_producer(&self) -> bool {
        self.max_publishers == 1
    }

    fn checked_data_len(&self) -> Option<u64> {
        let index = (self.capacity as u64).checked_mul(self.entry_bytes as u64)?;
        let regions = self.region_bytes.checked_mul(self.max_publishers as u64)?;
        (DATA_PUB_SLOTS as u64 + LINE as u64 * self.max_publishers as u64).checked_add(index)?.checked_add(regions)
    }

    fn checked_readers_len(&self) -> Option<u64> {
        let ledgers = (self.capacity as u64 * 8).checked_mul(self.max_groups as u64)?;
        let slots = LINE as u64 * (self.max_subscribers as u64 + self.max_groups as u64);
        let wake = round_up(4 * (self.max_subscribers as u64 + self.max_publishers as u64), LINE as u64);
        (READERS_SUB_SLOTS as u64 + slots).checked_add(round_up(ledgers, LINE as u64))?.checked_add(wake)
    }

    /// Size of the data object in bytes. Only meaningful for a validated geometry.
    pub fn data_len(&self) -> usize {
        self.checked_data_len().unwrap_or(u64::MAX) as usize
    }

    /// Size of the readers object in bytes. Only meaningful for a validated geometry.
    pub fn readers_len(&self) -> usize {
        self.checked_readers_len().unwrap_or(u64::MAX) as usize
    }

    fn words(&self) -> [u64; 7] {
        [
            self.capacity as u64,
            self.entry_bytes as u64,
            self.max_message as u64,
            self.region_bytes,
            self.max_publishers as u64,
            self.max_subscribers as u64,
            self.max_groups as u64,
        ]
    }

    fn checksum(&self, origin: u64, generation: u64) -> u64 {
        // FNV-1a over the geometry words: catches a header that is garbage rather than a real geometry.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for w in self.words().iter().chain([origin, generation].iter()) {
            for b in w.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
}

// ---- data object offsets -------------------------------------------------------------------------------------

/// Header words (both objects): magic, version, 7 geometry words, origin, generation, checksum.
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 8;
pub(crate) const H_GEOMETRY: usize = 16; // 7 words
pub(crate) const H_ORIGIN: usize = 72;
pub(crate) const H_GENERATION: usize = 80;
pub(crate) const H_CHECKSUM: usize = 88;
/// Data object header only: the topic's barrier mode, written once at creation. [`BARRIER_MEMBARRIER`]: every
/// participant's heavy barrier is `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, so registered wakers may use a
/// compiler fence; 0 (also what objects made before this word existed hold): full fences on both sides.
pub(crate) const H_BARRIER: usize = 96;
/// [`H_BARRIER`] value of a topic whose participants all use `membarrier`.
pub(crate) const BARRIER_MEMBARRIER: u64 = 1;
/// Data object header only: the retention floor, the oldest sequence a reader starting "from the oldest" may be
/// given (the origin at creation; the tail when the owner returned an idle topic's pages, whose entries then read
/// as pristine). Written by the owner only, while no handle is attached; untrusted like every shared word (see
/// `Topic::oldest_retained`).
pub(crate) const H_FLOOR: usize = 104;
/// Data object: closed flag, on its own line (read by publishers per send, by subscribers when idle).
pub(crate) const D_CLOSED: usize = LINE;
/// Data object: the claim cursor (next sequence), on its own line.
pub(crate) const D_TAIL: usize = 2 * LINE;
/// Data object: shared counters (cancelled claims).
pub(crate) const D_CANCELLED: usize = 3 * LINE;
const DATA_PUB_SLOTS: usize = 4 * LINE;

/// Publisher slot words (each slot one line, written only by its holder and by recovery).
pub(crate) const P_FRONTIER: usize = 0;
pub(crate) const P_SENDS: usize = 8;
pub(crate) const P_PUBLISHED: usize = 16;
pub(crate) const P_BYTES: usize = 24;
pub(crate) const P_FULL: usize = 32;
pub(crate) const P_ABORTED: usize = 40;
/// Gate scans that could not settle because the attach epoch kept changing (see `Topic::scan_gate`).
pub(crate) const P_GATE_UNSETTLED: usize = 48;

// ---- readers object offsets ----------------------------------------------------------------------------------

/// Readers object: attach epoch, bumped when a gating cursor appears.
pub(crate) const R_EPOCH: usize = LINE;
/// Readers object: data-waiter masks, 4 words (subscriber slots 0..256), raised by sleeping subscribers.
pub(crate) const R_DATA_WAITERS: usize = 2 * LINE;
/// Words of a subscriber-slot mask (`R_DATA_WAITERS`, `R_IN_USE`).
pub(crate) const MASK_WORDS: usize = (MAX_SUBSCRIBERS as usize).div_ceil(64);
/// Readers object: space-waiter mask (publisher slots), raised by publishers sleeping on a full ring.
pub(crate) const R_SPACE_WAITERS: usize = 3 * LINE;
/// Readers object: counters (wake-ups posted, demotions).
pub(crate) const R_WAKEUPS: usize = 4 * LINE;
pub(crate) const R_DEMOTIONS: usize = 4 * LINE + 8;
/// Readers object: subscriber slots in use, 4 words.
pub(crate) const R_IN_USE: usize = 5 * LINE;
const READERS_SUB_SLOTS: usize = 6 * LINE;

/// Subscriber slot words. The first 64 bytes hold what publishers read in their gate scans (the cursor, written
/// every few messages, and the flags); the second 64 bytes what the subscriber writes on every message (its
/// hold word and statistics). On one 64-byte line, a publisher spinning on a full ring pulled that line away from
/// the subscriber four times per message (layout 3; issue 10).
pub(crate) const S_CURSOR: usize = 0;
pub(crate) const S_FLAGS: usize = 8;
pub(crate) const S_RECEIVED: usize = 64;
pub(crate) const S_LAGGED: usize = 72;
pub(crate) const S_SKIPPED: usize = 80;
pub(crate) const S_BYTES: usize = 88;
/// Whether the subscriber holds a message read in place (1) or not (0); written only by the subscriber, read by
/// the owner's `demote` (tag HOLD).
pub(crate) const S_HOLD: usize = 96;
/// Subscriber flags: the slow-consumer bound demoted this subscriber (set by the daemon).
pub(crate) const FLAG_DEMOTE: u64 = 1;
/// Subscriber flags: the demotion took effect, so the gate scan ignores the cursor from now on. Set (tag ACK) by
/// the subscriber when it noticed the demotion (at a poll, or when it dropped the message it was reading in
/// place), or by `demote` itself when it found the subscriber holding nothing. Only `FLAG_DEMOTE` and
/// `FLAG_DEMOTED_ACK` together release the gate.
pub(crate) const FLAG_DEMOTED_ACK: u64 = 2;
/// Subscriber flags: group index + 1 in bits 8..16 (0 = no group).
pub(crate) const FLAG_GROUP_SHIFT: u32 = 8;

/// Group slot words.
pub(crate) const G_NEXT: usize = 0;
pub(crate) const G_REDELIVER: usize = 8;
pub(crate) const G_REDELIVERED: usize = 16;
pub(crate) const G_ABANDONED: usize = 24;
/// The tail when the group opened: positions below it may hold region payloads their publisher had already
/// freed, so members copy those instead of lending them in place.
pub(crate) const G_VERIFY: usize = 32;

/// Precomputed offsets for one validated geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offsets {
    pub(crate) geo: Geometry,
    pub(crate) mask: u64,
    pub(crate) shift: u32,
    pub(crate) index: usize,
    pub(crate) regions: usize,
    pub(crate) groups: usize,
    pub(crate) ledgers: usize,
    /// Readers object: the wake-up words (32-bit futex words: subscriber slots, then publisher slots).
    pub(crate) wake: usize,
}

impl Offsets {
    /// Offsets for `geo`, which must be valid.
    pub(crate) fn new(geo: Geometry) -> Offsets {
        let index = DATA_PUB_SLOTS + LINE * geo.max_publishers as usize;
        let regions = index + geo.capacity as usize * geo.entry_bytes as usize;
        let groups = READERS_SUB_SLOTS + LINE * geo.max_subscribers as usize;
        let ledgers = groups + LINE * geo.max_groups as usize;
        let ledger_bytes = geo.capacity as u64 * 8 * geo.max_groups as u64;
        let wake = ledgers + round_up(ledger_bytes, LINE as u64) as usize;
        Offsets { geo, mask: geo.capacity as u64 - 1, shift: geo.shift(), index, regions, groups, ledgers, wake }
    }
    #[inline]
    pub(crate) fn pub_slot(&self, p: usize) -> usize {
        DATA_PUB_SLOTS + LINE * p
    }
    #[inline]
    pub(crate) fn entry(&self, seq: u64) -> usize {
        self.index + (seq & self.mask) as usize * self.geo.entry_bytes as usize
    }
    #[inline]
    pub(crate) fn region(&self, p: usize) -> usize {
        self.regions + p * self.geo.region_bytes as usize
    }
    #[inline]
    pub(crate) fn sub_slot(&self, s: usize) -> usize {
        READERS_SUB_SLOTS + LINE * s
    }
    #[inline]
    pub(crate) fn group(&self, g: usize) -> usize {
        self.groups + LINE * g
    }
    #[inline]
    pub(crate) fn ledger(&self, g: usize, seq: u64) -> usize {
        self.ledgers + (g * self.geo.capacity as usize + (seq & self.mask) as usize) * 8
    }

    /// The readers-object offset of the wake-up word of subscriber slot `s` (`publisher == false`) or publisher
    /// slot `s`, if the slot exists in the geometry.
    #[inline]
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn wake_word(&self, publisher: bool, s: usize) -> Option<usize> {
        let (n, base) = if publisher {
            (self.geo.max_publishers as usize, self.geo.max_subscribers as usize)
        } else {
            (self.geo.max_subscribers as usize, 0)
        };
        (s < n).then(|| self.wake + 4 * (base + s))
    }

    /// Word `w` of the slot mask at `base` (`R_IN_USE`, `R_DATA_WAITERS`, `R_SPACE_WAITERS`): bit `b` of
    /// word `w` stands for slot `64 * w + b`.
    #[inline]
    pub(crate) fn mask_word(base: usize, w: usize) -> usize {
        base + 8 * w
    }

    /// Where slot `slot`'s bit lives in the slot mask at `base`: the word's offset and the bit.
    #[inline]
    pub(crate) fn mask_bit(base: usize, slot: usize) -> (usize, u64) {
        (Offsets::mask_word(base, slot / 64), 1 << (slot % 64))
    }
}

/// Entry word offsets within an index entry.
pub(crate) const E_STAMP: usize = 0;
pub(crate) const E_META: usize = 8; // len (low 32) | publisher slot (next 16) | flags (high 16)
/// Entry meta flag: the payload lives in the publisher's region (else inline).
pub(crate) const META_IN_REGION: u64 = 1 << 48;
pub(crate) const E_POS: usize = 16;
pub(crate) const E_TIME: usize = 24;
pub(crate) const E_INLINE: usize = ENTRY_HEADER;

fn write_header(r: &Region, magic: u64, geo: &Geometry, origin: u64, generation: u64) {
    let w = |off, v: u64| r.word(off).store(v, Ordering::Relaxed);
    w(H_VERSION, LAYOUT_VERSION);
    for (i, v) in geo.words().iter().enumerate() {
        w(H_GEOMETRY + 8 * i, *v);
    }
    w(H_ORIGIN, origin);
    w(H_GENERATION, generation);
    w(H_CHECKSUM, geo.checksum(origin, generation));
    // Release: the magic is written last, so a reader that sees it (Acquire) sees a complete header.
    r.word(H_MAGIC).store(magic, Ordering::Release);
}

/// Header fields of a validated object.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The topic geometry.
    pub geometry: Geometry,
    /// First sequence number of the topic (a multiple of the capacity).
    pub origin: u64,
    /// Generation of the topic (recreating a topic under the same name bumps it).
    pub generation: u64,
}

/// Reads and validates an object's header. Never reads outside `r`, whatever its bytes.
#[doc(hidden)]
pub fn read_header(r: &Region, magic: u64) -> Result<Header, AttachError> {
    if r.len() < LINE {
        return Err(AttachError::Corrupted { what: "object smaller than its header" });
    }
    // Acquire: pairs with the Release of the magic in `write_header`; the other words are then complete.
    if r.word(H_MAGIC).load(Ordering::Acquire) != magic {
        return Err(AttachError::Corrupted { what: "bad magic" });
    }
    // Relaxed: ordered after the magic's Acquire above.
    header_fields(|off| r.word(off).load(Ordering::Relaxed), magic, r.len() as u64)
}

/// Validates a header copied out of an object of `object_len` bytes (read with `pread` before anything is mapped,
/// so a planted or truncated object is refused without touching its pages). Same checks as [`read_header`].
#[doc(hidden)]
pub fn parse_header(bytes: &[u8], magic: u64, object_len: u64) -> Result<Header, AttachError> {
    if bytes.len() < LINE || (object_len as usize as u64) != object_len || object_len < LINE as u64 {
        return Err(AttachError::Corrupted { what: "object smaller than its header" });
    }
    let word = |off: usize| u64::from_ne_bytes(bytes[off..off + 8].try_into().expect("8 bytes"));
    if word(H_MAGIC) != magic {
        return Err(AttachError::Corrupted { what: "bad magic" });
    }
    header_fields(word, magic, object_len)
}

/// The header checks after the magic, over any way of reading its words.
fn header_fields(word: impl Fn(usize) -> u64, magic: u64, len: u64) -> Result<Header, AttachError> {
    let version = word(H_VERSION);
    if version != LAYOUT_VERSION {
        return Err(AttachError::VersionMismatch { found: version, expected: LAYOUT_VERSION });
    }
    let g = |i: usize| word(H_GEOMETRY + 8 * i);
    let small = |v: u64| u32::try_from(v).map_err(|_| AttachError::Corrupted { what: "geometry field out of range" });
    let geometry = Geometry {
        capacity: small(g(0))?,
        entry_bytes: small(g(1))?,
        max_message: small(g(2))?,
        region_bytes: g(3),
        max_publishers: small(g(4))?,
        max_subscribers: small(g(5))?,
        max_groups: small(g(6))?,
    };
    geometry.validate()?;
    let (origin, generation) = (word(H_ORIGIN), word(H_GENERATION));
    if word(H_CHECKSUM) != geometry.checksum(origin, generation) {
        return Err(AttachError::Corrupted { what: "header checksum" });
    }
    if origin & (geometry.capacity as u64 - 1) != 0 {
        return Err(AttachError::Corrupted { what: "origin not a multiple of the capacity" });
    }
    let expected = if magic == DATA_MAGIC { geometry.data_len() } else { geometry.readers_len() };
    if len != expected as u64 {
        return Err(AttachError::GeometryMismatch { what: "object size does not match its geometry" });
    }
    Ok(Header { geometry, origin, generation })
}

/// Initializes a zero-filled data object and readers object for `geo` (the daemon's job at topic creation): only
/// the headers, the tail and the retention floor are written.
/// `origin` is the first sequence number (a multiple of the capacity); `generation` identifies this incarnation.
/// The owner calls it through [`Admin::create`](crate::Admin::create); public only for the property tests.
#[doc(hidden)]
pub fn initialize(
    data: &Region,
    readers: &Region,
    geo: &Geometry,
    origin: u64,
    generation: u64,
) -> Result<(), AttachError> {
    geo.validate()?;
    if origin & (geo.capacity as u64 - 1) != 0 {
        return Err(AttachError::Corrupted { what: "origin not a multiple of the capacity" });
    }
    if data.len() != geo.data_len() || readers.len() != geo.readers_len() {
        return Err(AttachError::GeometryMismatch { what: "object size does not match its geometry" });
    }
    if !data.is_writable() || !readers.is_writable() {
        return Err(AttachError::ReadOnly);
    }
    // Nothing of the index ring or the ledgers is written (layout 4): a zero-filled entry reads as pristine, free
    // at any lap, and `Admin::open_group` writes every word of a ledger before the group serves anyone. So none
    // of their pages is touched, or committed, before a participant needs it (issue 13).
    data.word(D_TAIL).store(origin, Ordering::Relaxed);
    data.word(H_FLOOR).store(origin, Ordering::Relaxed);
    // The creator's own registration decides the topic's barrier mode: a creator that can use membarrier makes
    // a topic whose every participant must (processes that cannot are refused at attach); one that cannot makes
    // a full-fence topic anyone can join.
    let mode = if crate::wait::light_barrier_cheap() { BARRIER_MEMBARRIER } else { 0 };
    data.word(H_BARRIER).store(mode, Ordering::Relaxed);
    write_header(readers, READERS_MAGIC, geo, origin, generation);
    write_header(data, DATA_MAGIC, geo, origin, generation);
    Ok(())
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
