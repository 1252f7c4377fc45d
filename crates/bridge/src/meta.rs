//! The attachment every exported sample carries: who sent it (bridge id and run), where it stands in that
//! bridge's stream of the topic, and the local message's own metadata.
//!
//! Fixed little-endian layout, version 1:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `SBZ1` |
//! | 1 | flags (bit 0: lossy export) |
//! | 8 | bridge id |
//! | 8 | run (the exporting process's start, ns since the epoch) |
//! | 8 | bridge sequence: 0, 1, 2, … per (bridge run, topic); a lossy export skips the numbers it lost |
//! | 8 | topic sequence on the exporter's bus |
//! | 4 | publisher slot on the exporter's bus |
//! | 8 | publish timestamp (ns since the epoch) |
//! | 4 | topic capacity on the exporter's bus |
//! | 4 | topic max message on the exporter's bus |
//! | 8 | payload type shape hash (0: untyped, or untraced shape) |
//! | 2 | payload type name length `n` (0: untyped) |
//! | n | payload type name (UTF-8) |
//!
//! Everything here arrives from the network: [`Meta::decode`] checks every length and never panics.

use bus_client::TypeInfo;

const MAGIC: &[u8; 4] = b"SBZ1";
const FIXED: usize = 4 + 1 + 8 * 4 + 4 + 8 + 4 + 4 + 8 + 2;
/// Longest payload type name carried (the daemon's own limit).
pub const MAX_TYPE_NAME: usize = 256;

/// Flag bit: the exporter reads the topic lossily (it may skip bridge sequence numbers it lost).
const FLAG_LOSSY: u8 = 1;

/// The metadata of one bridged message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The exporting bridge's id.
    pub bridge: u64,
    /// The exporting process's run (start time in ns): a new run restarts the bridge sequence.
    pub run: u64,
    /// Position in this (bridge, run, topic) stream.
    pub bridge_seq: u64,
    /// Sequence on the exporter's bus.
    pub topic_seq: u64,
    /// Publisher slot on the exporter's bus.
    pub publisher: u32,
    /// Publish timestamp, ns since the epoch.
    pub timestamp: u64,
    /// Whether the export is lossy.
    pub lossy: bool,
    /// The exporter topic's capacity (messages in flight).
    pub capacity: u32,
    /// The exporter topic's largest message.
    pub max_message: u32,
    /// The exporter topic's payload type, if typed handles registered one.
    pub payload_type: Option<TypeInfo>,
}

/// Why an attachment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// No attachment, or one too short for the fixed part.
    #[error("attachment is {0} bytes, shorter than the {FIXED}-byte header")]
    Short(usize),
    /// Not a shmbus bridge attachment.
    #[error("attachment does not start with the bridge magic")]
    Magic,
    /// The type name's length does not match the attachment's.
    #[error("attachment declares a {declared}-byte type name but carries {carried} bytes")]
    TypeLength {
        /// Declared length.
        declared: usize,
        /// Bytes after the fixed part.
        carried: usize,
    },
    /// The type name is not UTF-8 or not a valid type name.
    #[error("attachment carries an invalid payload type name")]
    TypeName,
}

impl Meta {
    /// Encodes into `out` (cleared first), reusing its allocation.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(MAGIC);
        out.push(if self.lossy { FLAG_LOSSY } else { 0 });
        for v in [self.bridge, self.run, self.bridge_seq, self.topic_seq] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.publisher.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.capacity.to_le_bytes());
        out.extend_from_slice(&self.max_message.to_le_bytes());
        let (hash, name) = match &self.payload_type {
            Some(t) if t.name.len() <= MAX_TYPE_NAME => (t.hash, t.name.as_bytes()),
            _ => (0, &[][..]),
        };
        out.extend_from_slice(&hash.to_le_bytes());
        // The name is at most MAX_TYPE_NAME (256) bytes, checked just above: it fits a u16.
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
    }

    /// Decodes an attachment, checking every length.
    pub fn decode(b: &[u8]) -> Result<Meta, MetaError> {
        if b.len() < FIXED {
            return Err(MetaError::Short(b.len()));
        }
        if &b[..4] != MAGIC {
            return Err(MetaError::Magic);
        }
        let mut r = Reader { b, at: 5 };
        let (bridge, run, bridge_seq, topic_seq) = (r.u64(), r.u64(), r.u64(), r.u64());
        let publisher = r.u32();
        let timestamp = r.u64();
        let (capacity, max_message) = (r.u32(), r.u32());
        let hash = r.u64();
        let n = usize::from(r.u16());
        let rest = &b[FIXED..];
        if n != rest.len() || n > MAX_TYPE_NAME {
            return Err(MetaError::TypeLength { declared: n, carried: rest.len() });
        }
        let payload_type = if n == 0 {
            None
        } else {
            let name = std::str::from_utf8(rest).map_err(|_| MetaError::TypeName)?;
            if !shmbus_proto::names::type_name_ok(name) {
                return Err(MetaError::TypeName);
            }
            Some(TypeInfo { name: name.to_string(), hash })
        };
        Ok(Meta {
            bridge,
            run,
            bridge_seq,
            topic_seq,
            publisher,
            timestamp,
            lossy: b[4] & FLAG_LOSSY != 0,
            capacity,
            max_message,
            payload_type,
        })
    }
}

/// Reads fixed-width fields from a slice whose length was checked against [`FIXED`] first.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        // In bounds: `decode` checked `b.len() >= FIXED`, and the fields read add up to FIXED.
        a.copy_from_slice(self.b.get(self.at..self.at + N).unwrap_or(&[0u8; N][..]));
        self.at += N;
        a
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: Option<TypeInfo>) -> Meta {
        Meta {
            bridge: 7,
            run: 8,
            bridge_seq: 9,
            topic_seq: 10,
            publisher: 3,
            timestamp: 11,
            lossy: true,
            capacity: 1024,
            max_message: 4096,
            payload_type: t,
        }
    }

    #[test]
    fn round_trips_typed_and_untyped() {
        for t in [None, Some(TypeInfo { name: "Order".into(), hash: 0xfeed })] {
            let m = sample(t);
            let mut b = Vec::new();
            m.encode_into(&mut b);
            assert_eq!(Meta::decode(&b), Ok(m));
        }
    }

    #[test]
    fn refuses_every_truncation_and_extension_without_panicking() {
        let mut b = Vec::new();
        sample(Some(TypeInfo { name: "Order".into(), hash: 1 })).encode_into(&mut b);
        for n in 0..b.len() {
            assert!(Meta::decode(&b[..n]).is_err(), "accepted {n} of {} bytes", b.len());
        }
        let mut longer = b.clone();
        longer.push(b'x');
        assert!(Meta::decode(&longer).is_err());
        let mut bad = b.clone();
        bad[0] = b'X';
        assert_eq!(Meta::decode(&bad), Err(MetaError::Magic));
        let mut ctl = b;
        let last = ctl.len() - 1;
        ctl[last] = 0x1b; // an escape character in the type name
        assert_eq!(Meta::decode(&ctl), Err(MetaError::TypeName));
    }
}
