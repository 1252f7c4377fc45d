//! A raw memory region: the bytes of one shared-memory object, addressed by offset.
//!
//! The ring never forms `&mut [u8]` over memory another process writes. Every shared word is reached as an
//! [`AtomicU64`] through [`Region::word`]; payload bytes are written with Relaxed atomic word stores, or from
//! 8 KiB on x86-64 with one byte-wise atomic `rep movsb` (`crate::bulk`), by their single owner (never
//! plain copies: a lossy reader may load them concurrently, issue 8 defect 6) and read back
//! either in place (by a reader the protocol protects: the stamp's Release/Acquire orders the stores before its
//! plain reads, and the cursor's Release orders its reads before the next overwrite) or word by word with atomic
//! loads (by a lossy reader that validates afterwards, seqlock-style).
//!
//! Under loom the region is a heap vector of loom atomics, one per 8-byte word, so the same offsets and the
//! same protocol code run under the model checker.

use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// The failure path of [`Region::check_words`], out of line and cold so the check stays cheap.
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(off: usize, n: usize, len: usize) -> ! {
    panic!("word offset {off} (+{n} bytes) out of bounds or misaligned in a {len}-byte region")
}

/// Something that keeps a region's memory alive (a mapping, a heap buffer).
pub trait Backing: Send + Sync + 'static {}
impl<T: Send + Sync + 'static> Backing for T {}

/// A word-addressed view of one shared object.
///
/// Cloning is cheap (an `Arc` to the backing). All offsets passed to the accessors are computed from a validated
/// [`Geometry`](crate::Geometry) and are in bounds by construction; they are still checked, in every build (a
/// failed check is a panic, never an out-of-bounds access).
#[derive(Clone)]
pub struct Region {
    #[cfg(not(loom))]
    ptr: *mut u8,
    #[cfg(loom)]
    words: Arc<LoomWords>,
    len: usize,
    writable: bool,
    /// Set by whoever maps the memory once it is gone under the mapping (an object truncated by another
    /// process: the pages now read zeros); the topic then reads as closed. See [`Region::watch_loss`].
    lost: Option<&'static std::sync::atomic::AtomicBool>,
    _backing: Arc<dyn Backing>,
}

// SAFETY: the region is only accessed through atomics (shared words) and through the ring's ownership protocol
// (payload bytes); the backing keeps the memory mapped for as long as any clone lives.
#[cfg(not(loom))]
unsafe impl Send for Region {}
// SAFETY: see `Send`: concurrent access is mediated by atomics and the ring protocol.
#[cfg(not(loom))]
unsafe impl Sync for Region {}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("len", &self.len).field("writable", &self.writable).finish()
    }
}

/// Under loom: the words, plus one data-less loom cell per word through which payload accesses are reported to
/// loom's causality checker (issue 8, defect 9).
///
/// Payload words are loom atomics, so loom never sees a race on them, and it never lets a load read a store that
/// comes later in program order (no load buffering): a reader's value checks alone cannot catch a publisher
/// overwriting a payload that a reader in place had not finished with. So every payload *write* (`store_bytes`,
/// `write_bytes`) also reports a write access to the word's cell, and every *in-place read* (`read_in_place`: the
/// reads that are plain loads of a `&[u8]` in production) a read access; loom then fails any execution where a
/// payload write does not happen after an in-place read of the same word (or another write), exactly the data
/// race the production code would have. Lossy copies (`load_bytes`) are atomic in production too and are not
/// reported.
#[cfg(loom)]
struct LoomWords {
    atoms: Vec<AtomicU64>,
    cells: Vec<loom::cell::UnsafeCell<()>>,
}

// SAFETY: the cells hold no data (`()`); they are only used for `with`/`with_mut` calls whose closures do
// nothing, so sharing them between threads cannot race on anything: it is how loom's checker observes accesses.
#[cfg(loom)]
unsafe impl Sync for LoomWords {}

/// A zeroed heap buffer usable as a region (tests, in-process topics; under loom a region is its own vector).
#[cfg(not(loom))]
pub struct HeapBuffer {
    words: Box<[std::sync::atomic::AtomicU64]>,
}

impl Region {
    /// A region over `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be 8-byte aligned and valid for reads of `len` bytes (and for writes if `writable`) for as long
    /// as `backing` lives; the memory may be shared with other processes but must only be accessed through this
    /// crate's protocol.
    #[cfg(not(loom))]
    pub unsafe fn from_raw(ptr: *mut u8, len: usize, writable: bool, backing: Arc<dyn Backing>) -> Region {
        assert!((ptr as usize).is_multiple_of(8), "region not 8-byte aligned");
        Region { ptr, len, writable, lost: None, _backing: backing }
    }

    /// A zero-filled heap region of `len` bytes (rounded up to whole words).
    pub fn heap(len: usize) -> Region {
        let words = len.div_ceil(8);
        #[cfg(not(loom))]
        {
            let buf = HeapBuffer { words: (0..words).map(|_| std::sync::atomic::AtomicU64::new(0)).collect() };
            let ptr = buf.words.as_ptr() as *mut u8;
            let backing: Arc<dyn Backing> = Arc::new(buf);
            // SAFETY: the boxed slice is 8-aligned, `words * 8 >= len` bytes long, interior-mutable (atomics) and
            // kept alive by `backing`.
            unsafe { Region::from_raw(ptr, len, true, backing) }
        }
        #[cfg(loom)]
        {
            let w = LoomWords {
                atoms: (0..words).map(|_| AtomicU64::new(0)).collect(),
                cells: (0..words).map(|_| loom::cell::UnsafeCell::new(())).collect(),
            };
            Region { words: Arc::new(w), len, writable: true, lost: None, _backing: Arc::new(()) }
        }
    }

    /// A read-only clone of this region (what a subscriber gets).
    pub fn read_only(&self) -> Region {
        let mut r = self.clone();
        r.writable = false;
        r
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this process may write the region.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Makes a topic over this region read as closed once `flag` is set: the shared-memory layer sets it when the
    /// object was truncated under the mapping and its pages were replaced by zeros (`shmbus_os::sigbus`), so
    /// every handle's next operation (and every wait, at its next re-check) ends with `Closed`.
    pub fn watch_loss(mut self, flag: &'static std::sync::atomic::AtomicBool) -> Region {
        self.lost = Some(flag);
        self
    }

    /// Whether the memory behind the region was lost (see [`Region::watch_loss`]).
    #[inline]
    pub(crate) fn lost(&self) -> bool {
        // Acquire: pairs with the guard's Release store after it replaced the pages.
        self.lost.is_some_and(|f| f.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Checks that the `n` bytes at `off` are whole words inside the region: `off` 8-aligned, `n` a multiple of
    /// 8, `off + n <= len`. A real check in every build (issue 8, defect 10: a `debug_assert` here let the release
    /// proptests over untrusted memory run without it); the failure path is out of line so the check costs a
    /// compare and a predicted branch.
    ///
    /// # Panics
    /// If the range is not whole words inside the region: offsets come from a validated geometry, so this is a
    /// bug in the ring, never a property of the (untrusted) memory; it must not become an out-of-bounds access.
    #[inline]
    #[track_caller]
    fn check_words(&self, off: usize, n: usize) {
        if !((off | n).is_multiple_of(8) && off <= self.len && n <= self.len - off) {
            out_of_bounds(off, n, self.len);
        }
    }

    /// The shared word at byte offset `off`.
    ///
    /// # Panics
    /// If `off` is not 8-aligned or the word is not entirely inside the region (a real check, also in release).
    #[inline]
    #[track_caller]
    pub(crate) fn word(&self, off: usize) -> &AtomicU64 {
        self.check_words(off, 8);
        self.word_unchecked(off)
    }

    /// The `N` shared words from byte offset `off`, checked once: the hot paths take an entry's header or a slot's
    /// line this way and then index it with constants, where a [`Region::word`] per field re-derived and
    /// re-checked each offset (about 15% of a 64-byte send and receive's instructions; issue 10).
    ///
    /// # Panics
    /// If the range is not whole words inside the region (a real check, also in release).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn words<const N: usize>(&self, off: usize) -> &[AtomicU64; N] {
        self.check_words(off, N * 8);
        #[cfg(not(loom))]
        {
            // SAFETY: checked above: the `N` words from `off` are 8-aligned and inside the region, whose memory
            // lives as long as `self`; `[AtomicU64; N]` has the layout of `N` consecutive words. Read-only
            // mappings: as in `word_unchecked`, the ring issues only loads through a non-writable region.
            unsafe { &*(self.ptr.add(off) as *const [AtomicU64; N]) }
        }
        #[cfg(loom)]
        {
            (&self.words.atoms[off / 8..off / 8 + N]).try_into().expect("checked length")
        }
    }

    /// The shared word at byte offset `off`, whose range the caller has checked with [`Region::check_words`].
    #[inline]
    fn word_unchecked(&self, off: usize) -> &AtomicU64 {
        #[cfg(not(loom))]
        {
            // SAFETY: the caller checked (`check_words`) that `off` is 8-aligned and the word inside the region;
            // the memory lives as long as `self`. Atomic loads on a read-only mapping are permitted (std docs,
            // "atomic accesses to read-only memory": non-RMW loads no larger than the native word); the ring never
            // issues a store or RMW through a region that is not writable (guarded by the publisher/recovery
            // constructors and by the `writable` assertion in the byte writers).
            unsafe { &*(self.ptr.add(off) as *const AtomicU64) }
        }
        #[cfg(loom)]
        {
            &self.words.atoms[off / 8]
        }
    }

    /// The shared 32-bit word at byte offset `off` (the readers object's wake-up words, used as futexes).
    ///
    /// # Panics
    /// If `off` is not 4-aligned or the word is not entirely inside the region (a real check, also in release).
    #[cfg(not(loom))]
    #[inline]
    #[track_caller]
    pub(crate) fn word32(&self, off: usize) -> &std::sync::atomic::AtomicU32 {
        if !(off.is_multiple_of(4) && off <= self.len && 4 <= self.len - off) {
            out_of_bounds(off, 4, self.len);
        }
        // SAFETY: checked above: `off` is 4-aligned (and the region 8-aligned, see `from_raw`) and the four bytes
        // are inside the region, whose memory lives as long as `self`. The ring only ever accesses these bytes as
        // this 32-bit atomic (they are never part of a 64-bit word of the protocol).
        unsafe { &*(self.ptr.add(off) as *const std::sync::atomic::AtomicU32) }
    }

    /// **Testing / fault-injection hook, not part of the protocol.** Overwrites the word at byte offset `off` with
    /// `value` (a Relaxed atomic store), whatever the word means: property tests use it to fill objects with
    /// arbitrary bytes and to corrupt valid ones (see `tests/untrusted.rs`).
    ///
    /// # Panics
    /// If the region is not writable, or `off` is not 8-aligned or the word is not entirely inside the region
    /// (real checks, also in release builds).
    #[doc(hidden)]
    pub fn poke_word(&self, off: usize, value: u64) {
        assert!(self.writable, "poke_word on a read-only region");
        assert!(off.is_multiple_of(8) && off.checked_add(8).is_some_and(|end| end <= self.len), "poke_word({off})");
        self.word(off).store(value, Ordering::Relaxed);
    }

    /// **Testing / fault-injection hook.** Reads the word at byte offset `off` (a Relaxed atomic load).
    ///
    /// # Panics
    /// If `off` is not 8-aligned or the word is not entirely inside the region.
    #[doc(hidden)]
    pub fn peek_word(&self, off: usize) -> u64 {
        assert!(off.is_multiple_of(8) && off.checked_add(8).is_some_and(|end| end <= self.len), "peek_word({off})");
        self.word(off).load(Ordering::Relaxed)
    }

    /// Copies `dst.len()` bytes starting at `off` with atomic word loads (for seqlock-validated lossy reads).
    /// `off` must be 8-aligned and the words covering the range in bounds.
    pub(crate) fn load_bytes(&self, off: usize, dst: &mut [u8]) {
        // One check for the whole range (every word the loop loads), not one per word.
        self.check_words(off, dst.len().div_ceil(8) * 8);
        let mut i = 0;
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        if dst.len() >= crate::bulk::MIN_BULK {
            i = dst.len() & !7;
            // SAFETY: the `i` bytes from `off` are inside the region (checked above for the whole range) and
            // `dst` is a distinct, private buffer of at least `i` bytes; the copy's loads are byte-wise atomic
            // (crate::bulk), so racing with the publisher's stores is no data race, exactly like the word loads
            // below. The last partial word, if any, goes through the loop.
            unsafe { crate::bulk::copy_bytewise_atomic(dst.as_mut_ptr(), self.ptr.add(off), i) };
        }
        while i < dst.len() {
            let w = self.word_unchecked(off + i).load(Ordering::Relaxed).to_le_bytes();
            let n = (dst.len() - i).min(8);
            dst[i..i + n].copy_from_slice(&w[..n]);
            i += 8;
        }
    }

    /// Copies `dst.len()` bytes at `off` (8-aligned) for a reader the protocol protects: what production code
    /// reads in place through a `&[u8]` (a lossless or group reader's `Message::payload`). Under loom, where there
    /// is no address space to point into, such reads are copies made here, and each word read is reported to
    /// loom's causality checker (see `LoomWords`) so a publisher overwriting it too early fails the model.
    #[cfg(loom)]
    pub(crate) fn read_in_place(&self, off: usize, dst: &mut [u8]) {
        self.check_words(off, dst.len().div_ceil(8) * 8);
        for i in (0..dst.len()).step_by(8) {
            self.words.cells[(off + i) / 8].with(|_| ());
        }
        self.load_bytes(off, dst);
    }

    /// Writes `src` at `off` (8-aligned) with Relaxed atomic word stores; the range is owned exclusively by the
    /// caller under the ring protocol. The tail of the last word beyond `src.len()` is padding owned by the same
    /// message and is zeroed.
    ///
    /// Atomic, not a `copy_nonoverlapping` (issue 8, defect 6): a lossy reader may load these words concurrently
    /// (atomically, validating afterwards), and a plain write racing an atomic read is a data race, UB under the
    /// Rust memory model even though the reader throws the bytes away. Relaxed is enough: what orders the bytes
    /// before a reader that trusts them is the Release store of the entry's stamp (tag STAMP), and a lossy reader
    /// relies on its Acquire fence and re-check (tag SEQLOCK), not on these stores.
    pub(crate) fn store_bytes(&self, off: usize, src: &[u8]) {
        assert!(self.writable, "store_bytes on a read-only region");
        self.check_words(off, src.len().div_ceil(8) * 8);
        let mut at = off;
        #[cfg_attr(not(all(target_arch = "x86_64", not(loom))), allow(unused_mut))]
        let mut src = src;
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        if src.len() >= crate::bulk::MIN_BULK {
            let n = src.len() & !7;
            // SAFETY: the `n` bytes from `off` are inside the (writable, asserted above) region, checked above
            // for the whole range, and `src` is the caller's own buffer, never part of the region; the stores
            // are byte-wise atomic (crate::bulk), as the word stores below are atomic, so a lossy reader loading
            // them concurrently is no data race. Ordered before the stamp's Release store (tag STAMP) by the
            // fast-string rule the bulk module quotes.
            unsafe { crate::bulk::copy_bytewise_atomic(self.ptr.add(off), src.as_ptr(), n) };
            (at, src) = (off + n, &src[n..]);
        }
        // Eight words at a time: one loop step per cache line keeps both store ports busy (a word per step
        // spent as much on the loop as on the stores; issue 10, large messages).
        let mut lines = src.chunks_exact(64);
        for l in lines.by_ref() {
            for (i, w) in l.chunks_exact(8).enumerate() {
                let w: [u8; 8] = w.try_into().expect("chunks_exact(8) yields 8 bytes");
                self.store_word(at + 8 * i, u64::from_le_bytes(w));
            }
            at += 64;
        }
        let mut words = lines.remainder().chunks_exact(8);
        for w in words.by_ref() {
            let w: [u8; 8] = w.try_into().expect("chunks_exact(8) yields 8 bytes");
            self.store_word(at, u64::from_le_bytes(w));
            at += 8;
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.store_word(at, u64::from_le_bytes(w));
        }
    }

    /// Writes `src` at any byte offset `off`, keeping the other bytes of a partly covered first or last word: the
    /// same atomic scheme as [`Region::store_bytes`] (defect 6), for loans written piece by piece.
    pub(crate) fn write_bytes(&self, off: usize, src: &[u8]) {
        if src.is_empty() {
            return;
        }
        assert!(self.writable, "write_bytes on a read-only region");
        let start = off & !7;
        let end = off.checked_add(src.len()).map_or(usize::MAX, |e| e.div_ceil(8) * 8);
        self.check_words(start, end.wrapping_sub(start));
        let (mut at, mut i) = (start, 0);
        let head = off - start;
        if head != 0 {
            let n = (8 - head).min(src.len());
            self.merge_word(at, head, &src[..n]);
            (at, i) = (at + 8, n);
        }
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        if src.len() - i >= crate::bulk::MIN_BULK {
            let n = (src.len() - i) & !7;
            // SAFETY: as in `store_bytes`: `at..at + n` is inside the writable region (checked above) and
            // `src` is the caller's buffer; byte-wise atomic stores (crate::bulk).
            unsafe { crate::bulk::copy_bytewise_atomic(self.ptr.add(at), src[i..].as_ptr(), n) };
            (at, i) = (at + n, i + n);
        }
        while src.len() - i >= 8 {
            let w: [u8; 8] = src[i..i + 8].try_into().expect("8 bytes");
            self.store_word(at, u64::from_le_bytes(w));
            (at, i) = (at + 8, i + 8);
        }
        if i < src.len() {
            self.merge_word(at, 0, &src[i..]);
        }
    }

    /// Replaces bytes `from..from + bytes.len()` of the word at `at` (checked by the caller), keeping the rest.
    fn merge_word(&self, at: usize, from: usize, bytes: &[u8]) {
        // Relaxed load and store, not a read-modify-write: the caller is the word's only writer (it owns the
        // message), so nobody can store between the two; readers only load.
        let mut w = self.word_unchecked(at).load(Ordering::Relaxed).to_le_bytes();
        w[from..from + bytes.len()].copy_from_slice(bytes);
        self.store_word(at, u64::from_le_bytes(w));
    }

    /// One payload word store (checked by the caller).
    #[inline]
    fn store_word(&self, at: usize, v: u64) {
        // Under loom, report the write to the causality checker (see `LoomWords`).
        #[cfg(loom)]
        self.words.cells[at / 8].with_mut(|_| ());
        // Relaxed: payload bytes are published by the stamp's Release (tag STAMP), see `store_bytes`.
        self.word_unchecked(at).store(v, Ordering::Relaxed);
    }

    /// Raw pointer to byte `off`: where an in-place reader's payload slice starts. Read-only: payload writes are
    /// atomic word stores (`store_bytes`, defect 6), never writes through a pointer.
    ///
    /// # Panics
    /// If `off` is past the end of the region (a real check: `add` beyond the object would be UB).
    #[cfg(not(loom))]
    pub(crate) fn ptr_at(&self, off: usize) -> *const u8 {
        if off > self.len {
            out_of_bounds(off, 0, self.len);
        }
        // SAFETY: `off <= len` (checked above), so the result is within (or one past) the mapped object.
        unsafe { self.ptr.add(off).cast_const() }
    }
}

/// Prefetch hints (a child module: it reads the region's pointer and length).
#[path = "region_prefetch.rs"]
mod prefetch;
pub(crate) use prefetch::write_prefetch_supported;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Issue 8, defect 10: an out-of-bounds word offset is caught in release builds too (it used to be a
    /// `debug_assert`, compiled out of the release proptests). Run with `cargo test --release`.
    #[test]
    #[should_panic(expected = "out of bounds")]
    fn defect_10_word_out_of_bounds_is_caught_in_release() {
        let r = Region::heap(64);
        // The last word is at 56; one word further is past the end.
        let _ = r.word(64).load(Ordering::Relaxed);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn defect_10_misaligned_word_is_caught_in_release() {
        let _ = Region::heap(64).word(4).load(Ordering::Relaxed);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn defect_10_offset_near_usize_max_does_not_wrap() {
        let _ = Region::heap(64).word(usize::MAX - 7).load(Ordering::Relaxed);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn defect_10_byte_copy_past_the_end_is_caught_in_release() {
        let mut dst = [0u8; 9];
        Region::heap(64).load_bytes(56, &mut dst);
    }

    #[test]
    fn defect_10_last_word_is_in_bounds() {
        let r = Region::heap(64);
        r.word(56).store(7, Ordering::Relaxed);
        let mut dst = [0u8; 8];
        r.load_bytes(56, &mut dst);
        assert_eq!(u64::from_le_bytes(dst), 7);
    }
}
