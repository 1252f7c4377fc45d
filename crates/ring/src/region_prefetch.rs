//! Prefetch hints on a [`Region`]: for reading ahead of a reader's loads, and for writing ahead of a
//! publisher's stores (`prefetchw`, where the CPU has it). Hints only: they never fault and never race.

use super::Region;

/// Whether this CPU has `prefetchw` (CPUID 0x8000_0001, ECX bit 8: PRFCHW, "3DNowPrefetch"); never under loom
/// or off x86-64.
pub(crate) fn write_prefetch_supported() -> bool {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        use std::arch::x86_64::__cpuid;
        // The extended leaf is only read if the CPU reports it.
        __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    false
}

impl Region {
    /// Hints the CPU to fetch the cache line holding byte `off` for reading (`PREFETCHT0` on x86-64; nothing
    /// elsewhere and under loom). A hint, not an access: it never faults and never races (an `off` beyond the
    /// region is ignored rather than hinted).
    #[inline(always)]
    pub(crate) fn prefetch_read(&self, off: usize) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        if off < self.len {
            // SAFETY: `_mm_prefetch` needs SSE, which every x86-64 CPU has; a prefetch is a hint that neither
            // faults nor counts as a memory access (no data race), and `off < len` keeps the pointer arithmetic
            // inside the mapped object.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(self.ptr.add(off).cast_const().cast());
            }
        }
        let _ = off;
    }

    /// Asks for the cache line holding byte `off` in exclusive state, ahead of a store (`prefetchw`). Only where
    /// [`write_prefetch_supported`].
    #[inline(always)]
    pub(crate) fn prefetch_write(&self, off: usize) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        if off < self.len {
            // SAFETY: a prefetch is a hint that neither faults nor counts as a memory access (not even on a
            // read-only mapping); `off < len` keeps the pointer inside the mapped object. The instruction exists
            // on this CPU: callers check `write_prefetch_supported` first.
            unsafe {
                std::arch::asm!("prefetchw [{}]", in(reg) self.ptr.add(off), options(nostack, preserves_flags, readonly));
            }
        }
        let _ = off;
    }
}
