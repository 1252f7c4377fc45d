//! The stress-test message format: who sent it, its per-producer sequence number, a deterministic size and body,
//! and a checksum, so any consumer can tell a correct message from a torn, truncated, duplicated or misattributed
//! one without talking to the producer.
//!
//! Layout of a non-empty message (little-endian): word 0 = `producer << 48 | pseq`, word 1 = checksum over word 0,
//! the length and the body, then the body (pseudo-random bytes derived from the seed and word 0). A few messages
//! are empty (zero bytes, as the size function decides); a consumer that knows which per-producer sequence number
//! comes next can still check those.

/// Bytes of the identity and checksum words in front of the body.
pub const HEADER: usize = 16;

/// Largest message the size function produces.
pub const MAX_MESSAGE: usize = 4096;

/// The inline capacity of an index entry with the default 128-byte entries (larger payloads go to the
/// publisher's payload region). Sizes cluster around it on purpose.
pub const INLINE: usize = 96;

/// Largest per-producer sequence number that fits the identity word.
pub const MAX_PSEQ: u64 = (1 << 48) - 1;

/// The identity a non-empty message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident {
    /// Producer id (its publisher slot).
    pub producer: u32,
    /// Per-producer sequence number, from 0.
    pub pseq: u64,
}

/// SplitMix64's finalizer: a cheap, well-mixing bijection on `u64`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn ident_word(producer: u32, pseq: u64) -> u64 {
    ((producer as u64) << 48) | (pseq & MAX_PSEQ)
}

/// The total length (header included, or 0) of message `pseq` of `producer` under `seed`.
///
/// Mix: about 2% empty, 48% inline (16..=96 bytes), 10% straddling the inline boundary (90..=105 bytes), 30% small
/// region payloads (up to about 1 KiB) and 10% large ones (up to [`MAX_MESSAGE`]).
pub fn size_of(seed: u64, producer: u32, pseq: u64) -> usize {
    let r = mix(seed ^ mix(ident_word(producer, pseq)));
    let v = (r >> 8) as usize;
    match r % 100 {
        0..=1 => 0,
        2..=49 => HEADER + v % (INLINE - HEADER + 1),
        50..=59 => INLINE - 6 + v % 16,
        60..=89 => INLINE + 1 + v % 1024,
        _ => 1024 + v % (MAX_MESSAGE - 1024 + 1),
    }
}

/// Checksum over the identity word, the total length and the body, eight bytes at a time.
pub fn checksum(word0: u64, len: usize, body: &[u8]) -> u64 {
    let mut h = mix(word0 ^ (len as u64).rotate_left(32));
    let mut chunks = body.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// Writes message `pseq` of `producer` into `buf` (cleared first; left empty for an empty message).
pub fn encode(buf: &mut Vec<u8>, seed: u64, producer: u32, pseq: u64) {
    buf.clear();
    let len = size_of(seed, producer, pseq);
    if len == 0 {
        return;
    }
    buf.resize(len, 0);
    let w0 = ident_word(producer, pseq);
    let mut x = mix(seed ^ w0 ^ 0x5eed) | 1;
    for c in buf[HEADER..].chunks_mut(8) {
        // xorshift64: cheap bytes that differ per message.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    let sum = checksum(w0, len, &buf[HEADER..]);
    buf[..8].copy_from_slice(&w0.to_le_bytes());
    buf[8..16].copy_from_slice(&sum.to_le_bytes());
}

/// Checks a received payload: `Ok(None)` for an empty message, `Ok(Some(ident))` for an intact one whose length
/// is the one the size function gives its identity, an error describing what is wrong otherwise.
pub fn decode(seed: u64, payload: &[u8]) -> Result<Option<Ident>, String> {
    if payload.is_empty() {
        return Ok(None);
    }
    if payload.len() < HEADER {
        return Err(format!("message of {} bytes is shorter than the {HEADER}-byte header", payload.len()));
    }
    let w0 = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    let sum = u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes"));
    let ident = Ident { producer: (w0 >> 48) as u32, pseq: w0 & MAX_PSEQ };
    let want = checksum(w0, payload.len(), &payload[HEADER..]);
    if sum != want {
        return Err(format!(
            "checksum mismatch in {} bytes claiming to be {ident:?} (torn or corrupted)",
            payload.len()
        ));
    }
    let len = size_of(seed, ident.producer, ident.pseq);
    if len != payload.len() {
        return Err(format!("{ident:?} has {} bytes, expected {len}", payload.len()));
    }
    Ok(Some(ident))
}

/// One message's share of a stream fingerprint: a consumer adds it (wrapping) for every message it completes, so
/// that the fingerprints of several consumers that shared a stream (a consumer group) add up to
/// [`expected_fingerprint`] exactly when every message was delivered once, whatever the split. `pseq` is `None`
/// for an empty message (it does not carry its per-producer sequence).
pub fn fingerprint(producer: u32, pseq: Option<u64>) -> u64 {
    mix(ident_word(producer, pseq.unwrap_or(MAX_PSEQ)) ^ 0xf1f1_f1f1_f1f1_f1f1)
}

/// The fingerprint of messages `0..count` of `producer` under `seed`.
pub fn expected_fingerprint(seed: u64, producer: u32, count: u64) -> u64 {
    (0..count).fold(0u64, |acc, q| {
        let pseq = (size_of(seed, producer, q) != 0).then_some(q);
        acc.wrapping_add(fingerprint(producer, pseq))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_mix_of_sizes() {
        let mut buf = Vec::new();
        let (mut empty, mut inline, mut region) = (0, 0, 0);
        for pseq in 0..20_000 {
            encode(&mut buf, 7, 3, pseq);
            assert_eq!(buf.len(), size_of(7, 3, pseq));
            assert!(buf.len() <= MAX_MESSAGE);
            match decode(7, &buf).unwrap() {
                None => empty += 1,
                Some(id) => {
                    assert_eq!(id, Ident { producer: 3, pseq });
                    if buf.len() <= INLINE {
                        inline += 1
                    } else {
                        region += 1
                    }
                }
            }
        }
        assert!(empty > 100 && inline > 5000 && region > 5000, "{empty} {inline} {region}");
    }

    #[test]
    fn detects_damage() {
        let mut buf = Vec::new();
        let pseq = (0..).find(|&p| size_of(1, 0, p) > 200).unwrap();
        encode(&mut buf, 1, 0, pseq);
        for at in [0, 9, HEADER, buf.len() - 1] {
            let mut bad = buf.clone();
            bad[at] ^= 0x10;
            assert!(decode(1, &bad).is_err(), "flip at {at}");
        }
        assert!(decode(1, &buf[..buf.len() - 1]).is_err());
        assert!(decode(2, &buf).is_err() || size_of(2, 0, pseq) == buf.len());
    }

    #[test]
    fn fingerprints_add_up_whatever_the_split() {
        let whole = expected_fingerprint(9, 2, 1000);
        let (mut a, mut b) = (0u64, 0u64);
        for q in 0..1000u64 {
            let f = fingerprint(2, (size_of(9, 2, q) != 0).then_some(q));
            if mix(q).is_multiple_of(3) {
                a = a.wrapping_add(f);
            } else {
                b = b.wrapping_add(f);
            }
        }
        assert_eq!(a.wrapping_add(b), whole);
        let q = (0..).find(|&q| size_of(9, 2, q) != 0).unwrap();
        let dup = whole.wrapping_add(fingerprint(2, Some(q)));
        assert_ne!(dup.wrapping_sub(fingerprint(2, Some(q + 1))), whole, "a duplicate and a loss do not cancel");
    }
}
