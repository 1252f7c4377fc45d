//! The file format of `shmbus record` and `shmbus replay` (version 1, described in docs/record-format.md): a
//! header (magic, version, topic, payload type, geometry, start time) with its own checksum, then
//! length-prefixed records, each with a CRC-32 over its fixed part and payload; little-endian fixed-width
//! integers throughout.
//!
//! The reader treats the file as untrusted: every length is checked against a bound before anything is read
//! for it, payload buffers grow only as bytes actually arrive, and a record that is cut short or fails its
//! checksum ends the reading with a [`Cut`] that says where and why; everything before it is whole.

use bus_client::{GeometryWire, TypeInfo};
use std::io::{self, Read, Write};

/// The first eight bytes of every record file.
pub const MAGIC: [u8; 8] = *b"SHMBREC\0";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the header body: magic, version, flags, body length.
const PREFIX: usize = 16;
/// Largest header body a reader accepts (a version 1 body is under 400 bytes).
pub const MAX_HEADER_BODY: u32 = 64 * 1024;
/// Bytes of a record before its payload: length, kind, reserved, publisher, sequence, timestamp, offset.
pub const RECORD_FIXED: usize = 36;
/// Bytes of a record's checksum (after the payload).
const CRC: usize = 4;

/// Record kinds.
const KIND_MESSAGE: u8 = 1;
const KIND_GAP: u8 = 2;
const KIND_END: u8 = 3;
/// Header flag: recorded by a lossy subscriber.
const FLAG_LOSSY: u32 = 1;

/// What the header of a recording holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The recorded topic.
    pub topic: String,
    /// Its generation when recording started.
    pub generation: u64,
    /// Its payload type, if it had one.
    pub payload_type: Option<TypeInfo>,
    /// Its geometry, as `shmbus topics` shows it.
    pub geometry: GeometryWire,
    /// Wall-clock start of the recording, nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// Whether the recorder was a lossy subscriber (gaps possible) rather than a lossless one.
    pub lossy: bool,
}

/// One record as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// A message received.
    Message(Msg<'a>),
    /// Messages the (lossy) recorder missed.
    Gap {
        /// How many were lost.
        lost: u64,
        /// The sequence the recorder read next.
        next_seq: u64,
        /// When the loss was noticed, nanoseconds after the start.
        offset_ns: u64,
    },
    /// The end of a recording that finished cleanly, with its totals.
    End {
        /// Message records before it.
        messages: u64,
        /// Messages lost in all gaps.
        lost: u64,
        /// When recording stopped, nanoseconds after the start.
        offset_ns: u64,
    },
}

/// A recorded message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg<'a> {
    /// Its sequence number on the recorded topic.
    pub seq: u64,
    /// The publisher id it carried.
    pub publisher: u32,
    /// Its publish timestamp, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// When the recorder received it, nanoseconds after the start (monotonic clock).
    pub offset_ns: u64,
    /// The payload.
    pub payload: &'a [u8],
}

/// The file cannot be read as a recording at all (nothing in it is usable).
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// Not a record file.
    #[error("not a shmbus recording (no SHMBREC magic)")]
    NotARecording,
    /// Written by another format version.
    #[error("record format version {0} is not supported (this shmbus reads version {VERSION})")]
    Version(u16),
    /// The header ends before it is complete.
    #[error("the header is cut short (the file is {0} bytes)")]
    Truncated(u64),
    /// The header is damaged.
    #[error("the header is corrupt: {0}")]
    Corrupt(String),
    /// Reading failed.
    #[error("cannot read the header")]
    Io(#[from] io::Error),
}

/// Where and why the readable part of a recording ends before its clean end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: {why}")]
pub struct Cut {
    /// File offset of the first record that is not whole.
    pub offset: u64,
    /// What is wrong there.
    pub why: CutReason,
}

/// What stops a reader at a [`Cut`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CutReason {
    /// The file ends inside a record.
    #[error("the record is cut short ({have} of {} bytes)", need.map_or_else(|| format!("a fixed part of {RECORD_FIXED}"), |n| n.to_string()))]
    Truncated {
        /// Bytes of the record present.
        have: u64,
        /// Bytes the record needs (`None` when even its fixed part, which holds the length, is cut).
        need: Option<u64>,
    },
    /// The file ends between records, without the end record a finished recording has.
    #[error("the file ends without its end record (the recording did not finish)")]
    NoEnd,
    /// A record's checksum does not match its bytes.
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// A record's length is impossible for its kind.
    #[error("a {kind} record of {len} bytes (at most {max})")]
    BadLength {
        /// The kind's name.
        kind: &'static str,
        /// The stored length.
        len: u32,
        /// The largest allowed.
        max: u32,
    },
    /// An unknown record kind.
    #[error("unknown record kind {0}")]
    BadKind(u8),
    /// Bytes follow the end record.
    #[error("bytes after the end record")]
    AfterEnd,
    /// Reading failed.
    #[error("read error: {0}")]
    Io(String),
}

impl Header {
    /// The header's bytes, checksum included.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(128);
        body.extend_from_slice(&self.start_unix_ns.to_le_bytes());
        body.extend_from_slice(&self.generation.to_le_bytes());
        let g = &self.geometry;
        for v in [g.capacity, g.entry_bytes, g.max_message] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(&g.region_bytes.to_le_bytes());
        for v in [g.max_publishers, g.max_subscribers, g.max_groups] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(&(if self.lossy { FLAG_LOSSY } else { 0 }).to_le_bytes());
        put_str(&mut body, &self.topic);
        match &self.payload_type {
            None => body.push(0),
            Some(t) => {
                body.push(1);
                body.extend_from_slice(&t.hash.to_le_bytes());
                put_str(&mut body, &t.name);
            }
        }
        let mut out = Vec::with_capacity(PREFIX + body.len() + CRC);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads and checks a header from `r`; returns it with its length in bytes.
    pub fn decode(r: &mut impl Read) -> Result<(Header, u64), HeaderError> {
        let mut prefix = [0u8; PREFIX];
        let n = read_full(r, &mut prefix)?;
        if n >= MAGIC.len() && prefix[..8] != MAGIC || n < MAGIC.len() && prefix[..n] != MAGIC[..n] {
            return Err(HeaderError::NotARecording);
        }
        if n < PREFIX {
            return Err(HeaderError::Truncated(n as u64));
        }
        let version = u16::from_le_bytes([prefix[8], prefix[9]]);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let body_len = u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes"));
        if body_len > MAX_HEADER_BODY {
            return Err(HeaderError::Corrupt(format!("a header of {body_len} bytes (at most {MAX_HEADER_BODY})")));
        }
        let mut rest = vec![0u8; body_len as usize + CRC];
        let m = read_full(r, &mut rest)?;
        if m < rest.len() {
            return Err(HeaderError::Truncated((PREFIX + m) as u64));
        }
        let (body, crc) = rest.split_at(body_len as usize);
        let mut h = crc32fast::Hasher::new();
        h.update(&prefix);
        h.update(body);
        let (stored, computed) = (u32::from_le_bytes(crc.try_into().expect("4 bytes")), h.finalize());
        if stored != computed {
            return Err(HeaderError::Corrupt(format!(
                "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            )));
        }
        let header = parse_body(body).map_err(|e| HeaderError::Corrupt(e.to_string()))?;
        Ok((header, (PREFIX + rest.len()) as u64))
    }
}

/// The fields of a version 1 header body; bytes after them are ignored (room for fields a later writer adds).
fn parse_body(body: &[u8]) -> Result<Header, &'static str> {
    let mut c = Cursor(body);
    let start_unix_ns = c.u64()?;
    let generation = c.u64()?;
    let (capacity, entry_bytes, max_message) = (c.u32()?, c.u32()?, c.u32()?);
    let region_bytes = c.u64()?;
    let (max_publishers, max_subscribers, max_groups) = (c.u32()?, c.u32()?, c.u32()?);
    let flags = c.u32()?;
    let topic = c.str()?;
    let payload_type = match c.take(1)?[0] {
        0 => None,
        1 => {
            let hash = c.u64()?;
            Some(TypeInfo { name: c.str()?, hash })
        }
        _ => return Err("bad payload type marker"),
    };
    let geometry =
        GeometryWire { capacity, entry_bytes, max_message, region_bytes, max_publishers, max_subscribers, max_groups };
    Ok(Header { topic, generation, payload_type, geometry, start_unix_ns, lossy: flags & FLAG_LOSSY != 0 })
}

/// Little-endian reads from a byte slice, failing at its end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("the header body ends inside a field");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> Result<String, &'static str> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
        String::from_utf8(self.take(n as usize)?.to_vec()).map_err(|_| "a name that is not UTF-8")
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Topic and type names are short (64 and 256 bytes at most); cut anything longer at a u16 length.
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes a recording: the header at once, then records; [`Writer::finish`] adds the end record and flushes.
#[derive(Debug)]
pub struct Writer<W: Write> {
    w: W,
    messages: u64,
    gaps: u64,
    lost: u64,
    bytes: u64,
}

impl<W: Write> Writer<W> {
    /// Writes `header` to `w` and flushes it, so that a recording never starts with a partial header.
    pub fn new(mut w: W, header: &Header) -> io::Result<Writer<W>> {
        w.write_all(&header.encode())?;
        w.flush()?;
        Ok(Writer { w, messages: 0, gaps: 0, lost: 0, bytes: 0 })
    }

    /// Appends a message record.
    pub fn message(&mut self, m: &Msg<'_>) -> io::Result<()> {
        let len = u32::try_from(m.payload.len()).map_err(|_| io::Error::other("a payload of 4 GiB or more"))?;
        self.record(len, KIND_MESSAGE, m.publisher, m.seq, m.timestamp_ns, m.offset_ns, m.payload)?;
        self.messages += 1;
        self.bytes += u64::from(len);
        Ok(())
    }

    /// Appends a gap record: `lost` messages missed, `next_seq` read next.
    pub fn gap(&mut self, lost: u64, next_seq: u64, offset_ns: u64) -> io::Result<()> {
        self.record(8, KIND_GAP, 0, next_seq, 0, offset_ns, &lost.to_le_bytes())?;
        self.gaps += 1;
        self.lost += lost;
        Ok(())
    }

    /// Message records written.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Payload bytes written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gap records written.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Messages lost in gaps.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Appends the end record and flushes; returns the inner writer.
    pub fn finish(mut self, offset_ns: u64) -> io::Result<W> {
        let mut totals = [0u8; 16];
        totals[..8].copy_from_slice(&self.messages.to_le_bytes());
        totals[8..].copy_from_slice(&self.lost.to_le_bytes());
        self.record(16, KIND_END, 0, 0, 0, offset_ns, &totals)?;
        self.w.flush()?;
        Ok(self.w)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        len: u32,
        kind: u8,
        publisher: u32,
        seq: u64,
        timestamp_ns: u64,
        offset_ns: u64,
        payload: &[u8],
    ) -> io::Result<()> {
        let mut fixed = [0u8; RECORD_FIXED];
        fixed[0..4].copy_from_slice(&len.to_le_bytes());
        fixed[4] = kind;
        fixed[8..12].copy_from_slice(&publisher.to_le_bytes());
        fixed[12..20].copy_from_slice(&seq.to_le_bytes());
        fixed[20..28].copy_from_slice(&timestamp_ns.to_le_bytes());
        fixed[28..36].copy_from_slice(&offset_ns.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&fixed);
        h.update(payload);
        self.w.write_all(&fixed)?;
        self.w.write_all(payload)?;
        self.w.write_all(&h.finalize().to_le_bytes())
    }
}

/// Reads a recording record by record.
#[derive(Debug)]
pub struct Reader<R: Read> {
    r: R,
    header: Header,
    /// File offset of the next record.
    offset: u64,
    buf: Vec<u8>,
    /// The fixed part of the last record read.
    fixed: [u8; RECORD_FIXED],
    ended: bool,
    /// Where reading stopped, once it did.
    cut: Option<Cut>,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut r: R) -> Result<Reader<R>, HeaderError> {
        let (header, offset) = Header::decode(&mut r)?;
        Ok(Reader { r, header, offset, buf: Vec::new(), fixed: [0; RECORD_FIXED], ended: false, cut: None })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next record; `Ok(None)` after the end record at the end of the file, `Err` at the first record that
    /// is not whole (reading stops there: every later call returns the same cut).
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, Cut> {
        if let Some(c) = &self.cut {
            return Err(c.clone());
        }
        match self.read_record() {
            Err(c) => {
                self.cut = Some(c.clone());
                Err(c)
            }
            Ok(None) => Ok(None),
            Ok(Some(kind)) => Ok(Some(self.decode(kind))),
        }
    }

    /// Reads the next record into `fixed`/`buf` and checks it; returns its kind.
    fn read_record(&mut self) -> Result<Option<u8>, Cut> {
        let at = self.offset;
        let cut = |why| Cut { offset: at, why };
        let io = |e: io::Error| Cut { offset: at, why: CutReason::Io(e.to_string()) };
        let mut fixed = [0u8; RECORD_FIXED];
        let n = read_full(&mut self.r, &mut fixed).map_err(io)?;
        if self.ended {
            return if n == 0 { Ok(None) } else { Err(cut(CutReason::AfterEnd)) };
        }
        if n == 0 {
            return Err(cut(CutReason::NoEnd));
        }
        if n < RECORD_FIXED {
            return Err(cut(CutReason::Truncated { have: n as u64, need: None }));
        }
        let len = u32::from_le_bytes(fixed[0..4].try_into().expect("4 bytes"));
        let kind = fixed[4];
        let (name, max) = match kind {
            KIND_MESSAGE => ("message", self.header.geometry.max_message),
            KIND_GAP => ("gap", 8),
            KIND_END => ("end", 16),
            k => return Err(cut(CutReason::BadKind(k))),
        };
        if len > max || (kind != KIND_MESSAGE && len != max) {
            return Err(cut(CutReason::BadLength { kind: name, len, max }));
        }
        let need = (RECORD_FIXED + CRC) as u64 + u64::from(len);
        // Grows only as bytes arrive: a length the header allows but the file does not hold allocates nothing
        // beyond the file.
        self.buf.clear();
        let got = (&mut self.r).take(u64::from(len) + CRC as u64).read_to_end(&mut self.buf).map_err(io)?;
        if got < len as usize + CRC {
            return Err(cut(CutReason::Truncated { have: RECORD_FIXED as u64 + got as u64, need: Some(need) }));
        }
        let (payload, crc) = self.buf.split_at(len as usize);
        let mut h = crc32fast::Hasher::new();
        h.update(&fixed);
        h.update(payload);
        let (stored, computed) = (u32::from_le_bytes(crc.try_into().expect("4 bytes")), h.finalize());
        if stored != computed {
            return Err(cut(CutReason::Checksum { stored, computed }));
        }
        self.offset += need;
        self.fixed = fixed;
        if kind == KIND_END {
            self.ended = true;
        }
        Ok(Some(kind))
    }

    /// The record of `kind` just read (its fixed part in `fixed`, payload and checksum in `buf`).
    fn decode(&self, kind: u8) -> Record<'_> {
        let f = &self.fixed;
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let payload = &self.buf[..self.buf.len() - CRC];
        let (publisher, seq) = (u32::from_le_bytes(f[8..12].try_into().expect("4 bytes")), word(&f[12..20]));
        let (timestamp_ns, offset_ns) = (word(&f[20..28]), word(&f[28..36]));
        match kind {
            KIND_MESSAGE => Record::Message(Msg { seq, publisher, timestamp_ns, offset_ns, payload }),
            KIND_GAP => Record::Gap { lost: word(payload), next_seq: seq, offset_ns },
            _ => Record::End { messages: word(&payload[..8]), lost: word(&payload[8..]), offset_ns },
        }
    }
}

#[cfg(test)]
#[path = "record_file_tests.rs"]
mod tests;
