//! The self-checking message stream of the pipe-transport tests, shared by the test process (`tests/pipe.rs`)
//! and its helper (`pipe-child`): message `i` of stream `seed` has a length and content that only depend on
//! `(seed, i)`, so either side can check what the other sent without talking to it.

use crate::msg::mix;

/// Sizes around the frame limits (a 4 KiB `PIPE_BUF`), used in turn at the start of every 500 messages.
const EDGES: [usize; 10] = [0, 1, 4063, 4064, 4065, 4096, 8127, 8128, 8129, 16384];

/// Length of message `i`: boundary sizes around the frame limits every 500 messages, else mostly single-frame
/// sizes with a quarter up to four times `PIPE_BUF`.
pub fn len(seed: u64, i: u64) -> usize {
    if let Some(&e) = EDGES.get((i % 500) as usize) {
        return e;
    }
    let r = mix(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let x = (r >> 8) as usize;
    match r % 8 {
        0 => x % 65,
        1..=5 => x % 4065,
        _ => x % (4 * 4096 + 1),
    }
}

/// Message `i` of stream `seed`, into `buf` (cleared first).
pub fn fill(seed: u64, i: u64, buf: &mut Vec<u8>) {
    let n = len(seed, i);
    buf.clear();
    let mut x = mix(seed.wrapping_add(i).wrapping_mul(0xd6e8_feb8_6659_fd93)) | 1;
    while buf.len() < n {
        // xorshift64: cheap bytes that differ per message.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (n - buf.len()).min(8);
        buf.extend_from_slice(&x.to_le_bytes()[..take]);
    }
}

/// A running checksum of a stream of messages (lengths and contents, in order).
#[derive(Debug, Default)]
pub struct Checksum(u64);

impl Checksum {
    /// Adds the next message.
    pub fn add(&mut self, msg: &[u8]) {
        let mut h = self.0 ^ 0xcbf2_9ce4_8422_2325 ^ msg.len() as u64;
        let mut words = msg.chunks_exact(8);
        for w in &mut words {
            h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in words.remainder() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h.rotate_left(5);
    }

    /// The checksum of the messages added so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_message_twice_and_different_messages() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        fill(3, 700, &mut a);
        fill(3, 700, &mut b);
        assert_eq!(a, b);
        assert_eq!(a.len(), len(3, 700));
        fill(4, 700, &mut b);
        assert_ne!(a, b, "another seed, another stream");
        let (mut x, mut y) = (Checksum::default(), Checksum::default());
        x.add(&a);
        y.add(&b);
        assert_ne!(x.value(), y.value());
    }
}
