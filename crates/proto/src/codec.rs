//! The wire codec: bincode 2.0.1 through its serde bridge, behind two functions so it can be swapped.
//!
//! bincode 2.0.1 is pinned (3.0.0 is a non-functional release; 2.x is flagged unmaintained): nothing outside this
//! module names it.

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// Largest frame body accepted (1 MiB), and so the most a decode may allocate. Larger announcements close the
/// connection.
pub const MAX_FRAME: usize = 1 << 20;

/// Errors of encoding, decoding and framing.
#[derive(Debug, Error)]
pub enum ProtoError {
    /// The value could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
    /// The bytes are not a valid value of the expected type.
    #[error("malformed message: {0}")]
    Decode(String),
    /// A frame announced more bytes than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// I/O on the connection failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
}

fn config() -> impl bincode::config::Config {
    // Little-endian, variable-length integers; a decode never allocates more than a frame can hold.
    bincode::config::standard().with_limit::<{ MAX_FRAME }>()
}

/// Encodes `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProtoError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| ProtoError::Encode(e.to_string()))
}

/// Bytes a decode of `value` claims against the limit: bincode counts every integer at its full width however
/// few bytes its variable-length encoding took (a `u64` of 5 claims 8), which is the length of the value's
/// fixed-width encoding. A body within `MAX_FRAME` bytes may claim up to eight times as much, so a frame is
/// within the limit only when this is too (found by the decode fuzz: a request with a name of almost
/// `MAX_FRAME` bytes encoded, and its decode was refused as over the limit).
pub fn claimed_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, ProtoError> {
    let fixed = bincode::config::standard().with_fixed_int_encoding();
    bincode::serde::encode_into_std_write(value, &mut std::io::sink(), fixed)
        .map_err(|e| ProtoError::Encode(e.to_string()))
}

/// Decodes a whole `T` from `bytes`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    let (v, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| ProtoError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(ProtoError::Decode(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_trailing_bytes() {
        let v = (1u32, String::from("x"), vec![1u8, 2]);
        assert_eq!(claimed_len(&v).unwrap(), 4 + 8 + 1 + 8 + 2);
        let mut b = encode(&v).unwrap();
        assert_eq!(decode::<(u32, String, Vec<u8>)>(&b).unwrap(), v);
        b.push(0);
        assert!(decode::<(u32, String, Vec<u8>)>(&b).is_err());
    }
}
