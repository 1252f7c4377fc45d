//! Length-prefixed frames: a little-endian `u32` length, then that many bytes of one encoded message.

pub use crate::codec::MAX_FRAME;
use crate::codec::{self, ProtoError};
use serde::{de::DeserializeOwned, Serialize};

/// Encodes `msg` as one frame (length prefix included). A message over the limit is refused, its length counted
/// as the decoder counts it too ([`codec::claimed_len`]), so every frame this makes decodes at the other end.
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let body = codec::encode(msg)?;
    let len = body.len().max(codec::claimed_len(msg)?);
    if len > MAX_FRAME {
        return Err(ProtoError::FrameTooLarge { len, max: MAX_FRAME });
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Accumulates bytes from a stream and yields whole frames.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame decoded as `T`, `None` if more bytes are needed. An oversized announcement or a
    /// malformed body is an error; the connection should then be closed.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ProtoError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(ProtoError::FrameTooLarge { len, max: MAX_FRAME });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let v = codec::decode(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        v.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Request;
    use proptest::prelude::*;

    #[test]
    fn oversized_announcement_is_refused() {
        let mut r = FrameReader::new();
        r.push(&(MAX_FRAME as u32 + 1).to_le_bytes());
        assert!(matches!(r.next_frame::<Request>(), Err(ProtoError::FrameTooLarge { .. })));
    }

    #[test]
    fn a_frame_that_encodes_decodes_even_at_the_limit() {
        // Found by the decode fuzz: this body is 10 bytes under the limit, but its decode claims more than it.
        for cut in [0, 8, 10, 12, 16, 20, 40, 64] {
            let req = Request::DeleteTopic { name: "n".repeat(MAX_FRAME - cut) };
            if let Ok(f) = encode(&req) {
                let mut r = FrameReader::new();
                r.push(&f);
                assert_eq!(r.next_frame::<Request>().unwrap(), Some(req), "cut {cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut r = FrameReader::new();
            r.push(&bytes);
            for _ in 0..4 {
                match r.next_frame::<Request>() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }

        #[test]
        fn frames_split_anywhere(split in 0usize..64, name in "[a-z]{1,20}") {
            let req = Request::DeleteTopic { name };
            let mut bytes = encode(&req).unwrap();
            bytes.extend(encode(&Request::ListTopics).unwrap());
            let split = split.min(bytes.len());
            let mut r = FrameReader::new();
            r.push(&bytes[..split]);
            let mut got = vec![];
            while let Some(m) = r.next_frame::<Request>().unwrap() { got.push(m); }
            r.push(&bytes[split..]);
            while let Some(m) = r.next_frame::<Request>().unwrap() { got.push(m); }
            prop_assert_eq!(got, vec![req, Request::ListTopics]);
        }
    }
}
