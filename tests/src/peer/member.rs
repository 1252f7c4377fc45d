//! The consumer-group member role, and the record files members leave for the test to merge.

use super::{park_forever, stalled, Opened};
use crate::msg;
use shmbus_ring::{IdleStrategy, Mode, RecvError, Subscriber, SubscriberOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// `pseq` of a record of an empty message (its per-producer sequence is not carried).
pub const EMPTY: u64 = u64::MAX;

/// One message a member completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// Ring sequence.
    pub seq: u64,
    /// Publisher slot.
    pub producer: u32,
    /// Per-producer sequence, or [`EMPTY`].
    pub pseq: u64,
}

/// Writes records as little-endian `(seq, producer, pseq)` triples of `u64`.
pub fn write_records(path: &Path, records: &[Record]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(records.len() * 24);
    for r in records {
        buf.extend_from_slice(&r.seq.to_le_bytes());
        buf.extend_from_slice(&(r.producer as u64).to_le_bytes());
        buf.extend_from_slice(&r.pseq.to_le_bytes());
    }
    // Read by the test after this process exits: no need to reach the disk.
    std::fs::File::create(path)?.write_all(&buf)
}

/// Reads a file written by [`write_records`].
pub fn read_records(path: &Path) -> std::io::Result<Vec<Record>> {
    let bytes = std::fs::read(path)?;
    let w = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
    Ok(bytes
        .chunks_exact(24)
        .map(|c| Record { seq: w(&c[..8]), producer: w(&c[8..16]) as u32, pseq: w(&c[16..]) })
        .collect())
}

/// What a member does.
pub(crate) struct Member<'a> {
    pub(crate) slot: usize,
    pub(crate) group: usize,
    pub(crate) until: u64,
    pub(crate) out: &'a Path,
    pub(crate) hold_after: Option<u64>,
}

fn group_next(o: &Opened, g: usize) -> Option<u64> {
    o.topic.stats().groups.iter().find(|s| s.index == g).map(|s| s.next)
}

/// Takes messages until the group has handed out every position below `until`, checking each, and writes what it
/// completed to `out`.
pub(crate) fn run(o: &Opened, seed: u64, m: &Member<'_>, idle: IdleStrategy, stall: Duration) -> Result<(), String> {
    let slot = m.slot;
    let opts = SubscriberOptions { mode: Mode::Group(m.group), from_oldest: false, idle };
    let mut sub =
        Subscriber::attach(&o.topic, slot, opts, o.waiter.clone(), &|_| false).map_err(|e| format!("attach: {e}"))?;
    let start = sub.position();
    let end = m.until;
    println!("ready role=member slot={slot} group={} position={start}", m.group);
    let mut records = Vec::new();
    let mut last_progress = Instant::now();
    let t0 = Instant::now();
    loop {
        let msg = match sub.recv_timeout(Duration::from_millis(20)) {
            Ok(x) => x,
            Err(RecvError::Timeout) => {
                let next = group_next(o, m.group).ok_or_else(|| format!("member {slot}: group closed"))?;
                if next.wrapping_sub(end) as i64 >= 0 {
                    break;
                }
                if last_progress.elapsed() > stall {
                    let progress = format!("with {} taken; group at {next} of {end}", records.len());
                    return Err(stalled("member", slot, stall, progress));
                }
                continue;
            }
            Err(e) => return Err(format!("member {slot}: recv after {} messages: {e}", records.len())),
        };
        last_progress = Instant::now();
        let seq = msg.seq();
        let p = msg.publisher();
        let pseq = match msg::decode(seed, msg.payload()).map_err(|e| format!("member {slot}: ring seq {seq}: {e}"))? {
            Some(id) if id.producer == p => id.pseq,
            Some(id) => return Err(format!("member {slot}: ring seq {seq} from publisher {p} carries {id:?}")),
            None => EMPTY,
        };
        if m.hold_after == Some(records.len() as u64 + 1) {
            // Keep `msg` unreleased: the member "dies" holding it. Only completed messages are recorded.
            write_records(m.out, &records).map_err(|e| format!("write {}: {e}", m.out.display()))?;
            println!("holding role=member slot={slot} seq={seq} producer={p} completed={}", records.len());
            park_forever();
        }
        drop(msg);
        records.push(Record { seq, producer: p, pseq });
    }
    write_records(m.out, &records).map_err(|e| format!("write {}: {e}", m.out.display()))?;
    println!("done role=member slot={slot} received={} secs={:.3}", records.len(), t0.elapsed().as_secs_f64());
    Ok(())
}

/// Checks that the members' records together hold every message of every producer exactly once
/// (`counts[p]` messages of producer `p`, contents from `seed`) and no ring position twice. Returns the sorted
/// ring positions.
pub fn check_exactly_once(seed: u64, counts: &[u64], records: &[Record]) -> Result<Vec<u64>, String> {
    let mut seen: Vec<Vec<bool>> = counts.iter().map(|&n| vec![false; n as usize]).collect();
    let mut empties = vec![0u64; counts.len()];
    for r in records {
        let p = r.producer as usize;
        if p >= counts.len() {
            return Err(format!("record from unexpected producer: {r:?}"));
        }
        if r.pseq == EMPTY {
            empties[p] += 1;
            continue;
        }
        match seen[p].get_mut(r.pseq as usize) {
            Some(s) if !*s => *s = true,
            Some(_) => return Err(format!("producer {p} pseq {} delivered twice ({r:?})", r.pseq)),
            None => return Err(format!("producer {p} pseq {} beyond its {} messages", r.pseq, counts[p])),
        }
    }
    for (p, s) in seen.iter().enumerate() {
        let mut want_empty = 0;
        for (q, &got) in s.iter().enumerate() {
            let empty = msg::size_of(seed, p as u32, q as u64) == 0;
            want_empty += empty as u64;
            if !empty && !got {
                return Err(format!("producer {p} pseq {q} never delivered"));
            }
        }
        if empties[p] != want_empty {
            return Err(format!("producer {p}: {} empty messages delivered, {want_empty} sent", empties[p]));
        }
    }
    let mut seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    if let Some(w) = seqs.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("ring position {} delivered twice", w[0]));
    }
    Ok(seqs)
}
