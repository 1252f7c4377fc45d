//! How `shmbus sub --format` prints a message: `raw` (the payload and a newline, the default), `text` (one line
//! with sequence, publisher, time and the escaped payload), `json` (one object per line) or `hex` (a header line
//! and a `hexdump -C`-style dump of the payload).

use clap::ValueEnum;
use std::io::{self, Write};

/// Output format of `shmbus sub`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The payload bytes as they are, then a newline.
    #[default]
    Raw,
    /// `seq=N publisher=P time=RFC3339 len=L payload` on one line, the payload with unprintable bytes escaped.
    Text,
    /// One JSON object per line: seq, publisher, timestamp_ns, time, len, and payload (a string when the payload
    /// is UTF-8) or payload_hex (otherwise).
    Json,
    /// A header line like `text` without the payload, then the payload as a hex dump with an ASCII column.
    Hex,
}

/// What is printed of one message.
pub struct Shown<'a> {
    /// Ring sequence.
    pub seq: u64,
    /// Publisher id.
    pub publisher: u32,
    /// Publish time, nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// The payload.
    pub payload: &'a [u8],
}

/// Writes `m` to `out` in format `f`.
pub fn write(out: &mut impl Write, f: Format, m: &Shown<'_>) -> io::Result<()> {
    match f {
        Format::Raw => {
            out.write_all(m.payload)?;
            out.write_all(b"\n")
        }
        Format::Text => {
            writeln!(out, "{} {}", header(m), escape(m.payload))
        }
        Format::Json => {
            let mut o = serde_json::json!({
                "seq": m.seq,
                "publisher": m.publisher,
                "timestamp_ns": m.timestamp,
                "time": rfc3339(m.timestamp),
                "len": m.payload.len(),
            });
            match std::str::from_utf8(m.payload) {
                Ok(s) => o["payload"] = s.into(),
                Err(_) => o["payload_hex"] = hex(m.payload).into(),
            }
            writeln!(out, "{o}")
        }
        Format::Hex => {
            writeln!(out, "{}", header(m))?;
            out.write_all(hexdump(m.payload).as_bytes())
        }
    }
}

fn header(m: &Shown<'_>) -> String {
    format!("seq={} publisher={} time={} len={}", m.seq, m.publisher, rfc3339(m.timestamp), m.payload.len())
}

/// Printable ASCII as is, `\\`, `\n`, `\t`, `\r` and every other byte as `\xNN` (never a terminal escape).
fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

/// `hexdump -C`: offset, 16 bytes in two groups of 8, the printable ASCII between bars.
fn hexdump(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, row) in b.chunks(16).enumerate() {
        s.push_str(&format!("{:08x} ", i * 16));
        for j in 0..16 {
            if j == 8 {
                s.push(' ');
            }
            match row.get(j) {
                Some(c) => s.push_str(&format!(" {c:02x}")),
                None => s.push_str("   "),
            }
        }
        let ascii: String = row.iter().map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { '.' }).collect();
        s.push_str(&format!("  |{ascii}|\n"));
    }
    s.push_str(&format!("{:08x}\n", b.len()));
    s
}

/// `2026-12-02T01:55:05.123456789Z` for nanoseconds since the Unix epoch (UTC, proleptic Gregorian).
pub fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil_from_days(days as i64);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z", rem / 3600, rem % 3600 / 60, rem % 60, ns % 1_000_000_000)
}

/// Year, month, day of `z` days after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(f: Format, payload: &[u8]) -> String {
        let m = Shown { seq: 7, publisher: 2, timestamp: 1_764_640_505_000_000_001, payload };
        let mut v = Vec::new();
        write(&mut v, f, &m).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_764_640_505_000_000_001), "2025-12-02T01:55:05.000000001Z");
    }

    #[test]
    fn each_format() {
        assert_eq!(shown(Format::Raw, b"hi"), "hi\n");
        let t = shown(Format::Text, b"a\x1b[31m\n");
        assert_eq!(t, "seq=7 publisher=2 time=2025-12-02T01:55:05.000000001Z len=7 a\\x1b[31m\\n\n");
        let j: serde_json::Value = serde_json::from_str(&shown(Format::Json, "é".as_bytes())).unwrap();
        assert_eq!((j["seq"].as_u64(), j["publisher"].as_u64(), j["len"].as_u64()), (Some(7), Some(2), Some(2)));
        assert_eq!(j["payload"], "é");
        let j: serde_json::Value = serde_json::from_str(&shown(Format::Json, &[0xff, 0])).unwrap();
        assert_eq!((j["payload_hex"].as_str(), j.get("payload")), (Some("ff00"), None));
        let h = shown(Format::Hex, b"0123456789abcdefXY");
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[0], "seq=7 publisher=2 time=2025-12-02T01:55:05.000000001Z len=18");
        assert_eq!(lines[1], "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|");
        assert_eq!(lines[2], "00000010  58 59                                             |XY|");
        assert_eq!(lines[3], "00000012");
    }
}
