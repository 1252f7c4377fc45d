//! A raw memory region: the bytes of one shared-memory object, addressed by offset.
//!
//! The ring never forms `&mut [u8]` over memory another process writes. Every shared word is reached as an
//! [`AtomicU64`] through [`Region::word`]; payload bytes are written with plain copies by their single owner and
//! read back either in place (by a reader the protocol protects) or word by word with atomic loads (by a lossy
//! reader that validates afterwards, seqlock-style).
//!
//! Under loom the region is a heap vector of loom atomics, one per 8-byte word, so the same offsets and the
//! same protocol code run under the model checker.

use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// Something that keeps a region's memory alive (a mapping, a heap buffer).
pub trait Backing: Send + Sync + 'static {}
impl<T: Send + Sync + 'static> Backing for T {}

/// A word-addressed view of one shared object.
///
/// Cloning is cheap (an `Arc` to the backing). All offsets passed to the accessors are computed from a validated
/// [`Geometry`](crate::Geometry) and are in bounds by construction; they are `debug_assert`ed.
#[derive(Clone)]
pub struct Region {
    #[cfg(not(loom))]
    ptr: *mut u8,
    #[cfg(loom)]
    words: Arc<Vec<AtomicU64>>,
    len: usize,
    writable: bool,
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
        debug_assert_eq!(ptr as usize % 8, 0);
        Region { ptr, len, writable, _backing: backing }
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
            let v: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
            Region { words: Arc::new(v), len, writable: true, _backing: Arc::new(()) }
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

    /// The shared word at byte offset `off`.
    #[inline]
    pub(crate) fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.len, "word offset {off} out of {}", self.len);
        #[cfg(not(loom))]
        {
            // SAFETY: `off` is 8-aligned and in bounds (computed from validated geometry); the memory lives as long
            // as `self`. Atomic loads on a read-only mapping are permitted (std docs, "atomic accesses to read-only
            // memory": non-RMW loads no larger than the native word); the ring never issues a store or RMW through a
            // region that is not writable (guarded by the publisher/recovery constructors).
            unsafe { &*(self.ptr.add(off) as *const AtomicU64) }
        }
        #[cfg(loom)]
        {
            &self.words[off / 8]
        }
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
        let mut i = 0;
        while i < dst.len() {
            let w = self.word(off + i).load(Ordering::Relaxed).to_le_bytes();
            let n = (dst.len() - i).min(8);
            dst[i..i + n].copy_from_slice(&w[..n]);
            i += 8;
        }
    }

    /// Writes `src` at `off` (8-aligned), owned exclusively by the caller under the ring protocol.
    /// The tail of the last word beyond `src.len()` is padding owned by the same message and may be clobbered.
    pub(crate) fn store_bytes(&self, off: usize, src: &[u8]) {
        debug_assert!(self.writable);
        debug_assert!(off.is_multiple_of(8) && off + src.len() <= self.len);
        #[cfg(not(loom))]
        {
            // SAFETY: the range is in bounds (validated geometry) and owned by this writer: the entry or payload
            // region bytes were claimed/allocated by the caller and no reader trusts them until the Release store
            // of the entry's stamp; lossy readers copy with atomic loads and discard what they read on a stamp or
            // frontier mismatch.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) }
        }
        #[cfg(loom)]
        {
            let mut i = 0;
            while i < src.len() {
                let n = (src.len() - i).min(8);
                let mut w = [0u8; 8];
                w[..n].copy_from_slice(&src[i..i + n]);
                self.word(off + i).store(u64::from_le_bytes(w), Ordering::Relaxed);
                i += 8;
            }
        }
    }

    /// Raw pointer to byte `off` for an owned, exclusive write (zero-copy loans).
    #[cfg(not(loom))]
    pub(crate) fn ptr_at(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len);
        // SAFETY: `off <= len`, so the result is within (or one past) the mapped object.
        unsafe { self.ptr.add(off) }
    }
}
