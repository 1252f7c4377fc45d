//! Bulk copies into and out of shared memory that stay atomic per byte: `rep movsb` on x86-64, for 8 KiB and more.
//!
//! Payload bytes another process may load concurrently (a lossy reader validating seqlock-style) cannot be
//! written with `copy_nonoverlapping`: a plain write racing an atomic read is a data race, UB in the Rust
//! memory model even when the reader throws the bytes away (issue 8, defect 6). The portable answer is a loop of
//! Relaxed word stores ([`Region::store_bytes`](crate::region::Region)), 8 bytes a store, about a quarter of
//! `memcpy`'s bandwidth for large messages here (issue 10: 64 KiB throughput 0.23x of memcpy).
//!
//! An inline-assembly block is not bound by the Rust memory model's rules for plain accesses: its effect only has
//! to be one that Rust operations could have had. `rep movsb` on write-back memory is a sequence of byte loads
//! and byte stores, each single-copy atomic on x86 (Intel SDM vol. 3, §8.1.1), so the block behaves as a sequence
//! of Relaxed atomic byte loads and stores, which may race with other atomic accesses without UB. That is what
//! the byte-wise atomic memcpy proposal (Rust RFC 3301, `AtomicPerByte`) specifies, and what this module
//! provides where the hardware lets it: with ERMSB/FSRM (every x86-64 CPU of the last decade) the microcode
//! copies whole cache lines, at `memcpy` speed.
//!
//! Ordering (both fast-string rules from SDM vol. 3, §8.2.4.1, write-back memory): the stores of one string
//! operation may complete out of order *among themselves*, but "string operations are not reordered with other
//! store operations", so a later Release store (the entry's stamp, tag STAMP) is seen after every byte; and x86
//! never reorders loads with later loads, so a lossy reader's re-check after its Acquire fence (tag SEQLOCK)
//! still follows every byte it copied. The block has no `nomem` option: the compiler treats it as reading and
//! writing any memory, so it moves no Rust access across it either.
//!
//! Compiled on x86-64 only, and not under loom; elsewhere the callers keep the word loops.

/// Below this many bytes the word loop wins, measured cross-process on this project's 2-vCPU VM (busy-poll p50
/// one way, and 1->1 throughput): with `rep movsb` from 256 bytes, 512 B to 4 KiB messages were 5-30% slower
/// (its start-up, and the reader then waiting for lines the string store had not yet made visible), 8 KiB about
/// level, 16 KiB 15-20% faster, 64 KiB 1.3x faster.
pub(crate) const MIN_BULK: usize = 8 * 1024;

/// Copies `len` bytes from `src` to `dst` with one `rep movsb`: byte-wise atomic loads and stores (module docs).
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and the ranges must not overlap. Either
/// side may be shared memory that other threads or processes access concurrently *with atomic accesses or other
/// byte-wise atomic copies*; neither may be memory that Rust code accesses non-atomically at the same time (a
/// `&mut [u8]` or a `&[u8]` under concurrent writes).
#[inline]
pub(crate) unsafe fn copy_bytewise_atomic(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller guarantees both ranges are valid and disjoint. `rep movsb` copies RCX bytes from [RSI]
    // to [RDI] upwards (the direction flag is clear on entry to an asm block, as the Rust ABI requires) and
    // leaves the flags as they were; it touches no stack.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_length_and_offset_exactly() {
        let src: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 7, 8, 9, 255, 256, 257, 1000, 4000] {
            for at in [0, 1, 8, 13] {
                let mut dst = vec![0xAAu8; 4200];
                // SAFETY: both buffers are local, `at + len <= 4096 < 4200`, and nothing else accesses them.
                unsafe { copy_bytewise_atomic(dst.as_mut_ptr().add(at), src.as_ptr(), len) };
                assert_eq!(&dst[at..at + len], &src[..len], "len {len} at {at}");
                assert!(dst[..at].iter().all(|&b| b == 0xAA), "nothing before, len {len} at {at}");
                assert!(dst[at + len..].iter().all(|&b| b == 0xAA), "nothing after, len {len} at {at}");
            }
        }
    }
}
