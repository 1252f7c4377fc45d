//! A validated view of one topic's two objects, and the operations every party shares: attaching, the gate scan,
//! wake-ups, attaching a gating cursor. What only the owner may do is on [`Admin`].

use crate::admin::Admin;
use crate::error::AttachError;
use crate::layout::*;
use crate::region::Region;
use crate::stamp::{cursor, seq_diff};
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{Target, Waiter};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Inner {
    pub(crate) data: Region,
    pub(crate) readers: Region,
    pub(crate) off: Offsets,
    pub(crate) header: Header,
}

/// One topic's shared memory, validated once. Cheap to clone; handles are created from it.
#[derive(Clone)]
pub struct Topic {
    pub(crate) inner: Arc<Inner>,
    /// Wakers on this topic may use a compiler fence as the light barrier: the topic's barrier mode is membarrier
    /// and this process is registered for it (decided at attach, never re-read).
    cheap_barrier: bool,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("header", &self.inner.header).finish()
    }
}

impl Topic {
    /// A topic over two fresh heap regions (tests, models, in-process use). [`Admin::heap`] also gives the owner's
    /// handle.
    pub fn heap(geo: &Geometry, origin: u64) -> Result<Topic, AttachError> {
        Admin::heap(geo, origin).map(Admin::into_topic)
    }

    /// Validates both objects (magic, layout version, geometry, sizes, agreement) and attaches. Whatever bytes the
    /// objects hold, this returns an error rather than reading out of bounds.
    pub fn attach(data: Region, readers: Region) -> Result<Topic, AttachError> {
        let d = read_header(&data, DATA_MAGIC)?;
        let r = read_header(&readers, READERS_MAGIC)?;
        if d != r {
            return Err(AttachError::GeometryMismatch { what: "data and readers objects belong to different topics" });
        }
        // Relaxed: written before the header's magic, which `read_header` loaded with Acquire.
        let cheap_barrier = match data.word(H_BARRIER).load(Ordering::Relaxed) {
            0 => false,
            BARRIER_MEMBARRIER if crate::wait::light_barrier_cheap() => true,
            BARRIER_MEMBARRIER => return Err(AttachError::Barrier),
            _ => return Err(AttachError::Corrupted { what: "unknown barrier mode" }),
        };
        let off = Offsets::new(d.geometry);
        let topic = Topic { inner: Arc::new(Inner { data, readers, off, header: d }), cheap_barrier };
        if topic.is_closed() {
            return Err(AttachError::Closed);
        }
        Ok(topic)
    }

    /// Attaches and additionally checks the geometry and generation a lease promised.
    pub fn attach_expecting(
        data: Region,
        readers: Region,
        geo: &Geometry,
        generation: u64,
    ) -> Result<Topic, AttachError> {
        let t = Topic::attach(data, readers)?;
        if t.geometry() != *geo {
            return Err(AttachError::GeometryMismatch { what: "geometry differs from the lease" });
        }
        if t.generation() != generation {
            return Err(AttachError::Closed);
        }
        Ok(t)
    }

    /// The topic's geometry (process-local copy).
    pub fn geometry(&self) -> Geometry {
        self.inner.header.geometry
    }

    /// The topic's generation.
    pub fn generation(&self) -> u64 {
        self.inner.header.generation
    }

    /// The first sequence number of the topic.
    pub fn origin(&self) -> u64 {
        self.inner.header.origin
    }

    /// Whether the topic was closed, or its memory lost under the mapping (see [`Region::watch_loss`]).
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release in `close` (tag CLOSE), so a handle that sees the flag sees everything
        // written before closing.
        self.inner.data.lost()
            || self.inner.readers.lost()
            || self.inner.data.word(D_CLOSED).load(Ordering::Acquire) != 0
    }

    /// The next sequence to be claimed (a hint on multi-producer topics; exact once claims settle).
    pub fn tail(&self) -> u64 {
        self.inner.data.word(D_TAIL).load(Ordering::Acquire)
    }

    /// The wake-up word of `target` in the readers object: a 32-bit futex word that the shared-memory waiter
    /// (`shmbus_shm::FutexWaiter`) posts and sleeps on. `None` for a slot outside the geometry, or when the
    /// readers object is mapped read-only (the waiter then falls back to bounded sleeps).
    #[doc(hidden)]
    #[cfg(not(loom))]
    pub fn wake_word(&self, target: Target) -> Option<&std::sync::atomic::AtomicU32> {
        if !self.inner.readers.is_writable() {
            return None;
        }
        let off = match target {
            Target::Subscriber(s) => self.inner.off.wake_word(false, s),
            Target::Publisher(p) => self.inner.off.wake_word(true, p),
        }?;
        Some(self.inner.readers.word32(off))
    }

    pub(crate) fn data_word(&self, off: usize) -> &AtomicU64 {
        self.inner.data.word(off)
    }

    pub(crate) fn readers_word(&self, off: usize) -> &AtomicU64 {
        self.inner.readers.word(off)
    }

    pub(crate) fn off(&self) -> &Offsets {
        &self.inner.off
    }

    /// The word of the readers-object slot mask at `base` that holds slot `slot`'s bit, and the bit.
    pub(crate) fn readers_mask(&self, base: usize, slot: usize) -> (&AtomicU64, u64) {
        let (word, bit) = Offsets::mask_bit(base, slot);
        (self.readers_word(word), bit)
    }

    /// The checks every handle's attach starts with: `slot` is below `slots` (else `Slot(what)`), the object the
    /// handle writes (`writes`) is writable, and the topic is open.
    pub(crate) fn check_attach(
        &self,
        slot: usize,
        slots: u32,
        what: &'static str,
        writes: &Region,
    ) -> Result<(), AttachError> {
        if slot >= slots as usize {
            return Err(AttachError::Slot(what));
        }
        if !writes.is_writable() {
            return Err(AttachError::ReadOnly);
        }
        if self.is_closed() {
            return Err(AttachError::Closed);
        }
        Ok(())
    }

    /// Frees subscriber slot `s`, whether its holder detaches or recovery releases it for a dead one: the slot
    /// stops gating at once, leaves the in-use mask and its waiter bit, and publishers held back by it are woken.
    pub(crate) fn vacate_subscriber(&self, s: usize, waiter: &dyn Waiter) {
        // Release: everything before (the holder's reads of what it held; recovery's ledger and cursor updates)
        // happens before the slot stops gating and publishers may overwrite it.
        self.readers_word(self.off().sub_slot(s) + S_CURSOR).store(0, Ordering::Release);
        let (in_use, bit) = self.readers_mask(R_IN_USE, s);
        // Release (tag IN_USE): pairs with the gate scan's Acquire load of the mask.
        in_use.fetch_and(!bit, Ordering::Release);
        let (waiters, bit) = self.readers_mask(R_DATA_WAITERS, s);
        // Relaxed: a stale waiter bit costs a spurious post at most.
        waiters.fetch_and(!bit, Ordering::Relaxed);
        self.wake_publishers(waiter);
    }

    /// The lowest position any gating cursor (lossless subscriber, group claim cursor, a member's held message)
    /// still needs, or `None` when nothing gates, and whether the scan settled. `reference` is a recent tail (the
    /// sequence to claim, or one past the message to free), used to expand the truncated cursor words.
    ///
    /// The scan repeats while the attach epoch changes under it, but at most [`GATE_SCAN_ROUNDS`] times: the epoch
    /// lives in the readers object, which every subscriber may write, so one bumping it without end made
    /// `try_send` spin forever (issue 8, defect 8). An unsettled scan (`false`) returns `reference - capacity`,
    /// a gate that refuses both of its uses (claiming `reference` and freeing `reference - 1`): the caller
    /// reports `Full` and changes nothing, exactly as if a gating cursor sat there. That can only over-gate, never
    /// let a publisher overwrite what a cursor still needs; and a subscriber able to write the readers object can
    /// hold publishers back anyway (with a lossless cursor that never moves), so it gains nothing new. A `send`
    /// waits and scans again; legitimate bumps (an attach, a redelivery) come one at a time and settle in a round
    /// or two.
    pub(crate) fn scan_gate(&self, reference: u64) -> (Option<u64>, bool) {
        let epoch = self.readers_word(R_EPOCH);
        for _ in 0..GATE_SCAN_ROUNDS {
            // The scan reads one word at a time, so a gate handed from one word to another while it runs must
            // never fall between two reads. Hand-offs forward are ordered for the scan below (a member stores its
            // held position before moving the group cursor past it). The one hand-off backwards is recovery's: it
            // pulls a group cursor back to a dead member's held message and then clears that member's cursor, so
            // a scan could read the group cursor before the pull-back and the member after the clear (also with
            // the member's take in between: no fixed read order covers both directions). Recovery bumps the epoch
            // between the two stores; a scan that saw the member cleared (Acquire) sees the bump in its closing
            // load and scans again. (Found by loom, `group_member_dies_while_publishing*`: a publisher overwrote a
            // message awaiting redelivery.)
            // Acquire: pairs with the SeqCst bumps in `release_subscriber` and `publish_gating_cursor`.
            let before = epoch.load(Ordering::Acquire);
            let min = self.scan_gate_once(reference);
            if epoch.load(Ordering::Acquire) == before {
                return (min, true);
            }
        }
        (Some(reference.wrapping_sub(self.geometry().capacity as u64)), false)
    }

    fn scan_gate_once(&self, reference: u64) -> Option<u64> {
        let off = self.off();
        let mut min: Option<u64> = None;
        let mut take = |c: u64| {
            min = Some(match min {
                Some(m) if seq_diff(m, c) <= 0 => m,
                _ => c,
            })
        };
        // Groups before members: a member's held position is stored before the group cursor moves past it, so
        // reading the group cursor first (Acquire, tag GROUP_NEXT) and the members after cannot miss a held
        // message.
        for g in 0..off.geo.max_groups as usize {
            let w = self.readers_word(off.group(g) + G_NEXT).load(Ordering::Acquire);
            if cursor::has(w, cursor::ACTIVE | cursor::GATING) {
                take(cursor::expand(w, reference));
            }
        }
        for word in 0..(off.geo.max_subscribers as usize).div_ceil(64) {
            // Acquire: pairs with the in-use Release in `Subscriber::attach` (tag IN_USE) and in
            // `release_subscriber`.
            let mut bits = self.readers_word(Offsets::mask_word(R_IN_USE, word)).load(Ordering::Acquire);
            while bits != 0 {
                let s = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if s >= off.geo.max_subscribers as usize {
                    break;
                }
                let slot = off.sub_slot(s);
                // Acquire: pairs with the subscriber's Release of its cursor (tag CURSOR): what it read before
                // moving on happens before we let a publisher overwrite it.
                let w = self.readers_word(slot + S_CURSOR).load(Ordering::Acquire);
                if cursor::has(w, cursor::ACTIVE | cursor::GATING) {
                    // A demoted subscriber stops gating only once its demotion is acknowledged (FLAG_DEMOTE alone
                    // is a request: the subscriber may still be reading the entry at its cursor in place; issue
                    // 8, defect 2). Acquire (tag ACK): pairs with the Release that sets FLAG_DEMOTED_ACK, made
                    // after the subscriber's last read in place (by the subscriber itself, or by `demote` after
                    // its Acquire load of the subscriber's hold word, tag HOLD), so those reads happen before we
                    // let a publisher overwrite the entry. A stale read over-gates for one scan.
                    let flags = self.readers_word(slot + S_FLAGS).load(Ordering::Acquire);
                    if flags & (FLAG_DEMOTE | FLAG_DEMOTED_ACK) != FLAG_DEMOTE | FLAG_DEMOTED_ACK {
                        take(cursor::expand(w, reference));
                    }
                }
            }
        }
        min
    }

    /// Whether wakers on this topic may use a compiler fence as their barrier: the topic was created in membarrier
    /// mode and this process is registered for it. `false` means full fences on both sides.
    pub fn barrier_is_cheap(&self) -> bool {
        self.cheap_barrier
    }

    /// The waker's half of the asymmetric barrier for this topic (see [`crate::wait`]).
    #[inline]
    pub(crate) fn light(&self) {
        crate::wait::light(self.cheap_barrier);
    }

    /// Wakes every sleeping publisher (space became available). Call after a Release store that frees space.
    pub(crate) fn wake_publishers(&self, waiter: &dyn Waiter) {
        self.light();
        self.post_publishers(waiter);
    }

    /// The waker's half after a commit (a published message or a skip marker, Release store of the stamp): wakes
    /// sleeping subscribers, and on a multi-producer topic sleeping publishers too. A publisher
    /// gets `Full` when the entry it would claim still holds an older, unpublished claim of another publisher;
    /// committing that claim frees the entry, and nothing else would wake it before its timed sleep ends (issue 8,
    /// defect 4). One light barrier for both masks; a mask nobody raised costs one Relaxed load.
    #[inline(always)]
    pub(crate) fn wake_after_commit(&self, waiter: &dyn Waiter) {
        self.light();
        self.post_subscribers(waiter);
        if !self.off().geo.single_producer() {
            self.post_publishers(waiter);
        }
    }

    /// Posts every publisher in the space-waiter mask. The caller issued the light barrier after its store.
    fn post_publishers(&self, waiter: &dyn Waiter) {
        // Relaxed: the light/heavy barrier pair orders this load after the caller's store (see `wait`).
        if self.readers_word(R_SPACE_WAITERS).load(Ordering::Relaxed) != 0 {
            let bits = self.readers_word(R_SPACE_WAITERS).swap(0, Ordering::AcqRel);
            post_bits(waiter, bits, 0, self.off().geo.max_publishers as usize, Target::Publisher);
            self.readers_word(R_WAKEUPS).fetch_add(bits.count_ones() as u64, Ordering::Relaxed);
        }
    }

    /// Wakes every sleeping subscriber (a message was published). Call after the publishing Release store.
    pub(crate) fn wake_subscribers(&self, waiter: &dyn Waiter) {
        self.light();
        self.post_subscribers(waiter);
    }

    /// Posts every subscriber in the data-waiter masks. The caller issued the light barrier after its store.
    ///
    /// Inlined down to one checked load per mask word, the posting out of line: nobody sleeps while messages flow,
    /// and this runs on every send (issue 10).
    #[inline(always)]
    fn post_subscribers(&self, waiter: &dyn Waiter) {
        let masks = self.inner.readers.words::<{ MASK_WORDS }>(R_DATA_WAITERS);
        let words = (self.off().geo.max_subscribers as usize).div_ceil(64);
        for (w, mask) in masks.iter().enumerate().take(words) {
            // Relaxed: ordered by the light/heavy barrier pair (see `wait`).
            if mask.load(Ordering::Relaxed) != 0 {
                self.post_subscriber_word(waiter, w);
            }
        }
    }

    /// Posts every subscriber in data-waiter mask word `w` (found raised).
    #[cold]
    #[inline(never)]
    fn post_subscriber_word(&self, waiter: &dyn Waiter, w: usize) {
        let bits = self.readers_word(Offsets::mask_word(R_DATA_WAITERS, w)).swap(0, Ordering::AcqRel);
        post_bits(waiter, bits, w * 64, self.off().geo.max_subscribers as usize, |b| Target::Subscriber(w * 64 + b));
        self.readers_word(R_WAKEUPS).fetch_add(bits.count_ones() as u64, Ordering::Relaxed);
    }

    /// Waits until publisher slot `p`'s claim-phase counter leaves `seen` (an odd value: that claim phase has
    /// ended, and everything it stored before ending is visible), or `is_dead(p)`: `true`; `false` at `deadline`.
    pub(crate) fn await_claim_phase_end(
        &self,
        p: usize,
        seen: u64,
        is_dead: &dyn Fn(usize) -> bool,
        deadline: Instant,
    ) -> bool {
        let sends = self.data_word(self.off().pub_slot(p) + P_SENDS);
        let mut spins = 0u32;
        // Acquire: pairs with the Release stores of the counter (tag SENDS).
        while sends.load(Ordering::Acquire) == seen && !is_dead(p) {
            if crate::wait::expired(Some(deadline)) {
                return false;
            }
            spins += 1;
            if spins < 64 {
                crate::sync::spin_hint()
            } else {
                crate::sync::yield_now()
            }
        }
        true
    }

    /// Publishes a new gating cursor without racing publishers' gate checks, and returns the position it may
    /// safely start from. `word` is where the cursor lives; `start` the wanted start.
    ///
    /// Protocol: store the cursor (gating), bump the attach epoch, heavy barrier; then every publisher send that
    /// began before the barrier may have checked the gate without seeing us, so wait for those sends to pass their
    /// claim (their `sends` counter leaves the odd value it had), treating slots `is_dead` reports dead as done.
    /// After that, claims that overwrote what we wanted are all visible in the tail, so the start is raised past
    /// anything they may have overwritten; payload they reclaimed is caught by checking the frontier of messages
    /// below the returned `verify_until`.
    pub(crate) fn publish_gating_cursor(
        &self,
        word: &AtomicU64,
        flags: u64,
        start: u64,
        waiter: &dyn Waiter,
        is_dead: &dyn Fn(usize) -> bool,
        timeout: Duration,
    ) -> Result<(u64, u64), AttachError> {
        let off = *self.off();
        // SeqCst store + SeqCst RMW: the cursor is visible before the epoch bump to anyone who sees the bump.
        word.store(cursor::pack(flags, start), Ordering::SeqCst);
        self.readers_word(R_EPOCH).fetch_add(1, Ordering::SeqCst);
        waiter.heavy();
        let pubs = off.geo.max_publishers as usize;
        let snapshot: Vec<u64> =
            (0..pubs).map(|p| self.data_word(off.pub_slot(p) + P_SENDS).load(Ordering::Acquire)).collect();
        let deadline = Instant::now() + timeout;
        for (p, &s) in snapshot.iter().enumerate() {
            if s & 1 == 0 {
                continue;
            }
            if !self.await_claim_phase_end(p, s, is_dead, deadline) {
                word.store(0, Ordering::SeqCst);
                // Our cursor may have held a publisher back: it sleeps on the gate we just removed.
                self.wake_publishers(waiter);
                return Err(AttachError::Timeout);
            }
        }
        let tail = self.tail();
        let earliest = tail.wrapping_sub(off.geo.capacity as u64).wrapping_add(1);
        let mut begin = start;
        if seq_diff(earliest, begin) > 0 {
            begin = earliest;
            word.store(cursor::pack(flags, begin), Ordering::SeqCst);
            // Raising the cursor moves the gate with no release to announce it: a publisher that found the ring
            // full on our first, lower cursor may be asleep on it (issue 8, defect 4). The SeqCst store above
            // is the waker's store of the light/heavy pair.
            self.wake_publishers(waiter);
        }
        Ok((begin, tail))
    }

    /// Oldest sequence still retained by the index: at most `capacity - 1` back, and never below the retention
    /// floor (the origin, or the tail at which the owner last returned the topic's pages: `Admin::forget_retained`).
    /// The floor is a shared word: one ahead of the tail (corruption) gives the tail.
    pub(crate) fn oldest_retained(&self, tail: u64) -> u64 {
        let cap = self.geometry().capacity as u64;
        // Acquire: pairs with the owner's Release store of the floor.
        let floor = self.data_word(H_FLOOR).load(Ordering::Acquire);
        match seq_diff(tail, floor) {
            d if d < 0 => tail,
            d if d < cap as i64 => floor,
            _ => tail.wrapping_sub(cap).wrapping_add(1),
        }
    }

    /// Whether consumer group `g` is open.
    pub fn group_is_open(&self, g: usize) -> bool {
        g < self.geometry().max_groups as usize
            && cursor::has(self.readers_word(self.off().group(g) + G_NEXT).load(Ordering::Acquire), cursor::ACTIVE)
    }

    /// Whether subscriber slot `s` is in use (its holder attached and has not detached or been released).
    pub fn subscriber_active(&self, s: usize) -> bool {
        s < self.geometry().max_subscribers as usize
            && cursor::has(self.readers_word(self.off().sub_slot(s) + S_CURSOR).load(Ordering::Acquire), cursor::ACTIVE)
    }
}

/// Most rounds of one gate scan while the attach epoch keeps changing (see `Topic::scan_gate`).
pub(crate) const GATE_SCAN_ROUNDS: u32 = 8;

/// How long attaching a gating cursor waits for in-flight sends of live publishers.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts one wake-up per raised bit of a waiter mask word whose bit 0 is slot `base`, for a topic with `slots`
/// slots of that kind.
///
/// The mask lives in shared memory, so it is untrusted: a bit beyond the topic's slots (which only corruption can
/// raise) is dropped here instead of reaching the waiter, which indexes its wake-up words by slot. (Found by
/// `tests/untrusted.rs`: a corrupted mask word made the ring post `Target::Subscriber(5)` on a 5-slot topic.)
pub(crate) fn post_bits(waiter: &dyn Waiter, bits: u64, base: usize, slots: usize, target: impl Fn(usize) -> Target) {
    let valid = match slots.saturating_sub(base) {
        0 => 0,
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    };
    let mut bits = bits & valid;
    while bits != 0 {
        let b = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        waiter.post(target(b));
    }
}
