//! The floor for large-message throughput: `memcpy` bandwidth in one process, one buffer of the message size
//! copied into another, `count` times (each copy is what one side of a shared-memory transport does at the least).

use std::time::{Duration, Instant};

/// Copies a `size`-byte buffer into another `count` times; returns the time it took.
pub fn bandwidth(size: usize, count: u64) -> Duration {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    // One copy first, so the destination's pages are faulted in before the clock starts.
    dst.copy_from_slice(&src);
    let t = Instant::now();
    for i in 0..count {
        let s = std::hint::black_box(&src);
        dst.copy_from_slice(s);
        if let Some(b) = dst.first_mut() {
            *b = i as u8;
        }
        std::hint::black_box(&mut dst);
    }
    t.elapsed()
}
