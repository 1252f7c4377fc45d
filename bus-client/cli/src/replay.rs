//! `shmbus replay`: publish a recording's messages on a topic with their recorded timing, or (`--dry-run`)
//! describe and check the recording ([`crate::record_file`], docs/record-format.md).
//!
//! The file is read twice: a first pass checks every record and finds the largest payload, so that a payload
//! the topic cannot take is refused before anything is published; the second pass publishes.

use crate::args::ReplayArgs;
use crate::format::rfc3339;
use crate::record_file::{Cut, Header, HeaderError, Reader, Record};
use anyhow::{bail, Context};
use bus_client::{printable, TypeInfo};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the first pass found.
struct Scan {
    header: Header,
    file_len: u64,
    messages: u64,
    bytes: u64,
    gaps: u64,
    lost: u64,
    /// Largest payload: its length, record number and sequence.
    largest: Option<(usize, u64, u64)>,
    /// Receive offsets of the first and last message.
    span: Option<(u64, u64)>,
    /// Records read whole (the end record included).
    records: u64,
    /// Where the readable part ends, if the file does not end cleanly.
    cut: Option<Cut>,
}

/// The readable part of a recording ends early: the whole records were used, the rest was not.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {done} {records} records; the rest ({rest} bytes from offset {offset}) is cut or corrupt: {why}")]
pub struct CutShort {
    file: String,
    done: &'static str,
    records: u64,
    rest: u64,
    offset: u64,
    why: crate::record_file::CutReason,
}

pub fn run(socket: Option<PathBuf>, a: ReplayArgs) -> anyhow::Result<()> {
    let scan = scan(&a.file)?;
    if a.dry_run {
        print!("{}", describe(&a.file, &scan));
        return verdict(&a.file, &scan, "checked", scan.records);
    }
    let topic = a.topic.as_deref().expect("clap requires a topic without --dry-run");
    let bus = crate::connect(socket)?;
    let mut p = bus
        .publisher_builder(topic)
        .idle(a.idle.into())
        .open()
        .with_context(|| format!("cannot open a publisher on topic {topic:?}"))?;
    let max = p.max_message();
    if let Some((len, record, seq)) = scan.largest.filter(|l| l.0 > max) {
        bail!(
            "message record {record} (seq {seq}) of {} is {len} bytes, larger than topic {topic:?}'s largest \
             message ({max} bytes): nothing was published",
            a.file.display()
        );
    }
    let target = bus.stats(Some(topic)).ok().and_then(|s| s.into_iter().find(|t| t.name == topic));
    let target_type = target.and_then(|t| t.payload_type);
    if scan.header.payload_type != target_type {
        eprintln!(
            "shmbus: warning: the recorded payload type is {}, topic {topic:?}'s is {}",
            type_name(&scan.header.payload_type),
            type_name(&target_type)
        );
    }
    let speed = if a.as_fast_as_possible { None } else { Some(a.rate.unwrap_or(1.0)) };
    let mut r = Reader::new(BufReader::with_capacity(256 * 1024, open(&a.file)?.0))
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let start = Instant::now();
    let (mut sent, mut bytes, mut first, mut records) = (0u64, 0u64, None, 0u64);
    while let Ok(Some(rec)) = r.next_record() {
        records += 1;
        let Record::Message(m) = rec else { continue };
        let first_off = *first.get_or_insert(m.offset_ns);
        if let Some(speed) = speed {
            let due = start + Duration::from_secs_f64(m.offset_ns.saturating_sub(first_off) as f64 / 1e9 / speed);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        p.send(m.payload).with_context(|| format!("cannot publish message {sent} on {topic:?}"))?;
        sent += 1;
        bytes += m.payload.len() as u64;
        // The first pass stopped here: a file that changed meanwhile is not read past what was checked.
        if records == scan.records {
            break;
        }
    }
    eprintln!(
        "shmbus: replayed {sent} messages ({bytes} payload bytes) from {} on {topic:?} in {:.3}s",
        a.file.display(),
        start.elapsed().as_secs_f64()
    );
    verdict(&a.file, &scan, "replayed", records)
}

/// Reads every record once: counts, the largest payload, and where the file stops being whole.
fn scan(path: &Path) -> anyhow::Result<Scan> {
    let (f, file_len) = open(path)?;
    let mut r = Reader::new(BufReader::with_capacity(256 * 1024, f)).map_err(|e| match e {
        HeaderError::Io(e) => anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
        e => anyhow::Error::new(e).context(format!("{} is not a usable recording", path.display())),
    })?;
    let mut s = Scan {
        header: r.header().clone(),
        file_len,
        messages: 0,
        bytes: 0,
        gaps: 0,
        lost: 0,
        largest: None,
        span: None,
        records: 0,
        cut: None,
    };
    loop {
        match r.next_record() {
            Ok(None) => break,
            Ok(Some(rec)) => {
                s.records += 1;
                match rec {
                    Record::Message(m) => {
                        if s.largest.is_none_or(|l| m.payload.len() > l.0) {
                            s.largest = Some((m.payload.len(), s.messages, m.seq));
                        }
                        s.span = Some((s.span.map_or(m.offset_ns, |sp| sp.0), m.offset_ns));
                        s.messages += 1;
                        s.bytes += m.payload.len() as u64;
                    }
                    Record::Gap { lost, .. } => {
                        s.gaps += 1;
                        s.lost += lost;
                    }
                    Record::End { .. } => {}
                }
            }
            Err(c) => {
                s.cut = Some(c);
                break;
            }
        }
    }
    Ok(s)
}

fn open(path: &Path) -> anyhow::Result<(File, u64)> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
    Ok((f, len))
}

/// `Ok` for a file that ended cleanly, else the [`CutShort`] error (exit 1) naming what was not used.
fn verdict(path: &Path, s: &Scan, done: &'static str, records: u64) -> anyhow::Result<()> {
    let Some(c) = &s.cut else { return Ok(()) };
    Err(CutShort {
        file: path.display().to_string(),
        done,
        records,
        rest: s.file_len.saturating_sub(c.offset),
        offset: c.offset,
        why: c.why.clone(),
    }
    .into())
}

fn type_name(t: &Option<TypeInfo>) -> String {
    match t {
        None => "none".into(),
        Some(t) if t.hash == 0 => format!("{} (shape not fixed)", printable(&t.name)),
        Some(t) => format!("{} (shape {:016x})", printable(&t.name), t.hash),
    }
}

/// The `--dry-run` report: header fields, counts, and whether every record is whole.
fn describe(path: &Path, s: &Scan) -> String {
    let h = &s.header;
    let g = &h.geometry;
    let span = s.span.map_or(0.0, |(a, b)| b.saturating_sub(a) as f64 / 1e9);
    let mode = if h.lossy { "lossy" } else { "lossless" };
    let status = match &s.cut {
        None => format!("all {} records whole, ended cleanly", s.records),
        Some(c) => format!(
            "{} records whole; the rest ({} bytes from offset {}) is cut or corrupt: {}",
            s.records,
            s.file_len.saturating_sub(c.offset),
            c.offset,
            c.why
        ),
    };
    format!(
        "file:         {} ({} bytes, format version {})\n\
         topic:        {} (generation {})\n\
         payload type: {}\n\
         geometry:     capacity {}, max message {} B, entry {} B, region {} B, publishers {}, subscribers {}, \
         groups {}\n\
         recorded:     {} by a {mode} subscriber\n\
         messages:     {} ({} payload bytes, largest {} B) over {span:.3}s\n\
         gaps:         {} ({} messages lost)\n\
         records:      {status}\n",
        path.display(),
        s.file_len,
        crate::record_file::VERSION,
        printable(&h.topic),
        h.generation,
        type_name(&h.payload_type),
        g.capacity,
        g.max_message,
        g.entry_bytes,
        g.region_bytes,
        g.max_publishers,
        g.max_subscribers,
        g.max_groups,
        rfc3339(h.start_unix_ns),
        s.messages,
        s.bytes,
        s.largest.map_or(0, |l| l.0),
        s.gaps,
        s.lost,
    )
}
