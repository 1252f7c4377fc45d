//! The frame format of the pipe transport: a fixed 32-byte header and up to [`MAX_FRAME_PAYLOAD`] payload bytes,
//! so that a whole frame is at most `PIPE_BUF` bytes and goes into the pipe with one atomic `write`.
//!
//! ```text
//! offset  size  field
//!      0     2  magic 0x5342 ("SB", little-endian)
//!      2     1  version (1)
//!      3     1  flags: FIRST (1) | LAST (2); a message of one frame carries both
//!      4     4  len: payload bytes in this frame (at most MAX_FRAME_PAYLOAD)
//!      8     4  writer id (handed out by the pipe's reader, unique per reader; see `roster.rs`)
//!     12     4  total: length of the whole message (the same in every fragment)
//!     16     8  seq: the writer's sequence number of the message
//!     24     8  timestamp: publish time, ns since the Unix epoch
//! ```
//!
//! All integers are little-endian. Messages up to [`MAX_FRAME_PAYLOAD`] bytes are one frame; longer ones are cut
//! into fragments of exactly [`MAX_FRAME_PAYLOAD`] bytes (the last one shorter), each a whole `PIPE_BUF`-sized frame
//! tagged with the writer id, which the reader reassembles per writer.

/// Header length in bytes.
pub const HEADER: usize = 32;
/// The largest frame: `PIPE_BUF`, the largest write a pipe keeps atomic.
pub const MAX_FRAME: usize = shmbus_os::PIPE_BUF;
/// Payload bytes a frame can carry; messages up to this length are written with one `write`.
pub const MAX_FRAME_PAYLOAD: usize = MAX_FRAME - HEADER;
/// Default (and largest accepted) message length on the pipe transport: 64 MiB.
pub const MAX_MESSAGE: usize = 64 << 20;

const MAGIC: u16 = 0x5342;
const VERSION: u8 = 1;
/// The frame starts a message.
pub(crate) const FIRST: u8 = 1;
/// The frame ends a message.
pub(crate) const LAST: u8 = 2;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) flags: u8,
    pub(crate) len: u32,
    pub(crate) writer: u32,
    pub(crate) total: u32,
    pub(crate) seq: u64,
    pub(crate) timestamp: u64,
}

impl Header {
    pub(crate) fn first(&self) -> bool {
        self.flags & FIRST != 0
    }

    pub(crate) fn last(&self) -> bool {
        self.flags & LAST != 0
    }

    pub(crate) fn encode(&self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        b[2] = VERSION;
        b[3] = self.flags;
        b[4..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..12].copy_from_slice(&self.writer.to_le_bytes());
        b[12..16].copy_from_slice(&self.total.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.timestamp.to_le_bytes());
        b
    }

    /// Decodes and checks one header: magic, version, known flags, a length that fits a frame and the message.
    pub(crate) fn decode(b: &[u8; HEADER]) -> Result<Header, &'static str> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if u16::from_le_bytes([b[0], b[1]]) != MAGIC {
            return Err("pipe frame without the shmbus magic (the pipe carries something else)");
        }
        if b[2] != VERSION {
            return Err("pipe frame of an unknown version");
        }
        let h = Header {
            flags: b[3],
            len: u32_at(4),
            writer: u32_at(8),
            total: u32_at(12),
            seq: u64_at(16),
            timestamp: u64_at(24),
        };
        if h.flags & !(FIRST | LAST) != 0 {
            return Err("pipe frame with unknown flags");
        }
        if h.len as usize > MAX_FRAME_PAYLOAD {
            return Err("pipe frame longer than PIPE_BUF");
        }
        if h.len > h.total {
            return Err("pipe frame longer than its message");
        }
        if h.first() && h.last() && h.len != h.total {
            return Err("single-frame message whose length differs from its total");
        }
        Ok(h)
    }
}

/// How many frames a message of `len` bytes takes.
pub(crate) fn frame_count(len: usize) -> usize {
    len.div_ceil(MAX_FRAME_PAYLOAD).max(1)
}

/// The frames of one message: `(header, payload chunk)` pairs, in order.
pub(crate) fn frames(msg: &[u8], writer: u32, seq: u64, timestamp: u64) -> impl Iterator<Item = (Header, &[u8])> {
    let n = frame_count(msg.len());
    let total = msg.len() as u32;
    (0..n).map(move |i| {
        let start = i * MAX_FRAME_PAYLOAD;
        let chunk = &msg[start..msg.len().min(start + MAX_FRAME_PAYLOAD)];
        let mut flags = 0;
        if i == 0 {
            flags |= FIRST;
        }
        if i + 1 == n {
            flags |= LAST;
        }
        (Header { flags, len: chunk.len() as u32, writer, total, seq, timestamp }, chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_layout() {
        let h = Header { flags: FIRST | LAST, len: 5, writer: 7, total: 5, seq: 9, timestamp: 11 };
        let b = h.encode();
        assert_eq!(&b[0..4], &[0x42, 0x53, 1, 3]);
        assert_eq!(Header::decode(&b), Ok(h));
        const { assert!(MAX_FRAME_PAYLOAD > 0 && HEADER + MAX_FRAME_PAYLOAD == shmbus_os::PIPE_BUF) };
    }

    #[test]
    fn bad_headers_are_refused() {
        let good = Header { flags: FIRST, len: 10, writer: 1, total: 100, seq: 0, timestamp: 0 };
        let mut b = good.encode();
        b[0] ^= 1;
        assert!(Header::decode(&b).is_err(), "magic");
        let mut b = good.encode();
        b[2] = 9;
        assert!(Header::decode(&b).is_err(), "version");
        let mut b = good.encode();
        b[3] = 8;
        assert!(Header::decode(&b).is_err(), "flags");
        let b = Header { len: MAX_FRAME_PAYLOAD as u32 + 1, total: u32::MAX, ..good }.encode();
        assert!(Header::decode(&b).is_err(), "frame too long");
        let b = Header { len: 11, total: 10, ..good }.encode();
        assert!(Header::decode(&b).is_err(), "frame longer than message");
        let b = Header { flags: FIRST | LAST, len: 10, total: 11, ..good }.encode();
        assert!(Header::decode(&b).is_err(), "single frame with a different total");
    }

    #[test]
    fn fragmentation_covers_the_message() {
        for len in [0, 1, MAX_FRAME_PAYLOAD - 1, MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1, 4 * MAX_FRAME + 3] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let fs: Vec<_> = frames(&msg, 3, 4, 5).collect();
            assert_eq!(fs.len(), frame_count(len));
            assert!(fs[0].0.first() && fs.last().unwrap().0.last());
            assert!(fs.iter().all(|(h, c)| HEADER + c.len() <= MAX_FRAME && h.len as usize == c.len()));
            assert!(fs.iter().skip(1).all(|(h, _)| !h.first()));
            assert!(fs.iter().rev().skip(1).all(|(h, _)| !h.last()));
            let joined: Vec<u8> = fs.iter().flat_map(|(_, c)| c.iter().copied()).collect();
            assert_eq!(joined, msg);
        }
    }
}
