//! The subscriber role: lossless, lossy or group member, checking every message (integrity, producer, per-producer
//! sequence) and accounting for every ring position it passes.

use super::{park_forever, SubMode};
use crate::msg;
use crate::peer::member::{write_records, Record, EMPTY};
use bus_client::{Bus, RecvError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a subscriber does.
pub(crate) struct Subscribe {
    pub(crate) mode: SubMode,
    pub(crate) group: Option<String>,
    pub(crate) total: Option<u64>,
    pub(crate) stop_file: Option<PathBuf>,
    pub(crate) stall_after: Option<u64>,
    pub(crate) hold_after: Option<u64>,
    pub(crate) exit_after: Option<u64>,
    pub(crate) out: Option<PathBuf>,
    pub(crate) from_oldest: bool,
    pub(crate) joined: bool,
    pub(crate) stall: Duration,
}

/// Counts of a run.
#[derive(Default)]
struct Tally {
    received: u64,
    lagged: u64,
    lag_events: u64,
    /// Ring positions passed without a message or a `Lagged` (skip markers of cancelled claims).
    skipped: u64,
    empty: u64,
    /// Sum of [`msg::fingerprint`] over the messages received.
    sum: u64,
    /// Per producer: the next pseq due (lossless) or the lowest allowed (lossy and group).
    next: BTreeMap<u32, u64>,
    /// Per producer: messages received.
    counts: BTreeMap<u32, u64>,
}

impl Tally {
    /// Checks one message of producer `p` and records it; returns its pseq (`None`: an empty message).
    /// With `joined` (attached mid-stream), a producer's first message sets where its sequence starts. Without
    /// `ordered` (a group member: a redelivered message may come after later ones), sequences are not compared.
    fn check(
        &mut self,
        seed: u64,
        lossless: bool,
        joined: bool,
        ordered: bool,
        p: u32,
        payload: &[u8],
    ) -> Result<Option<u64>, String> {
        let known = self.next.get(&p).copied();
        let lossless = lossless && (known.is_some() || !joined);
        let floor = known.unwrap_or(0);
        let pseq = match msg::decode(seed, payload)? {
            Some(id) if id.producer != p => return Err(format!("message from publisher {p} carries {id:?}")),
            Some(id) if lossless && id.pseq != floor => {
                return Err(format!(
                    "producer {p}: pseq {} where {floor} was due (loss, duplicate or reorder)",
                    id.pseq
                ));
            }
            Some(id) if ordered && id.pseq < floor => {
                return Err(format!("producer {p}: pseq {} after {} (duplicate or reorder)", id.pseq, floor - 1));
            }
            Some(id) => {
                self.next.insert(p, floor.max(id.pseq + 1));
                Some(id.pseq)
            }
            None if lossless => {
                if msg::size_of(seed, p, floor) != 0 {
                    return Err(format!("producer {p}: empty message where pseq {floor} was due"));
                }
                self.next.insert(p, floor + 1);
                self.empty += 1;
                None
            }
            // A mid-stream joiner cannot tell where an empty message stands in its producer's sequence.
            None if !ordered || (joined && known.is_none()) => {
                self.empty += 1;
                None
            }
            None => {
                // The earliest empty message the producer can still send (2% of messages are empty).
                let e = (floor..floor + 100_000)
                    .find(|&q| msg::size_of(seed, p, q) == 0)
                    .ok_or_else(|| format!("producer {p}: empty message, none due soon after pseq {floor}"))?;
                self.next.insert(p, e + 1);
                self.empty += 1;
                None
            }
        };
        self.sum = self.sum.wrapping_add(msg::fingerprint(p, pseq));
        *self.counts.entry(p).or_default() += 1;
        self.received += 1;
        Ok(pseq)
    }
}

/// Subscribes and receives until the role's end: `total` positions accounted for, the stop file, `exit_after`, or
/// a fault point (`stall_after`, `hold_after`) where it waits to be killed.
pub(crate) fn run(bus: &Bus, topic: &str, seed: u64, o: &Subscribe) -> Result<(), String> {
    let mut b = bus.subscriber_builder(topic);
    b = match (o.mode, &o.group) {
        (SubMode::Lossless, _) => b,
        (SubMode::Lossy, _) => b.lossy(),
        (SubMode::Group, Some(g)) => b.group(g),
        (SubMode::Group, None) => return Err("--mode group needs --group".into()),
    };
    if o.from_oldest {
        b = b.from_oldest();
    }
    let mut sub = b.open().map_err(|e| format!("open subscriber: {e}"))?;
    let (slot, start) = (sub.slot(), sub.position());
    let mode = format!("{:?}", o.mode).to_lowercase();
    println!("ready role=subscriber mode={mode} slot={slot} position={start}");
    let lossless = o.mode == SubMode::Lossless;
    let ordered = o.mode != SubMode::Group;
    let wait = if o.stop_file.is_some() { Duration::from_millis(100) } else { o.stall };
    let mut t = Tally::default();
    let mut records = Vec::new();
    // The ring position the next message should have (fan-out subscribers: every position is theirs).
    let mut due = start;
    let t0 = Instant::now();
    let mut progress = Instant::now();
    loop {
        if o.total.is_some_and(|n| due.wrapping_sub(start) >= n) || o.exit_after == Some(t.received) {
            break;
        }
        let m = match sub.recv_timeout(wait) {
            Ok(m) => m,
            // A lossless reader that attached mid-stream may find a payload reclaimed by a publisher that had not
            // seen it attach yet, right after attaching: reported, never lost silently; the sequences restart.
            Err(RecvError::Lagged(n)) if o.mode == SubMode::Lossy || (o.joined && due.wrapping_sub(start) < 4096) => {
                if o.mode == SubMode::Lossless {
                    t.next.clear();
                }
                t.lagged += n;
                t.lag_events += 1;
                due = due.wrapping_add(n);
                progress = Instant::now();
                continue;
            }
            Err(RecvError::Timeout) => {
                if o.stop_file.as_ref().is_some_and(|f| f.exists()) {
                    break;
                }
                if progress.elapsed() >= o.stall {
                    return Err(format!(
                        "{mode} {slot}: nothing for {}s after {} messages, at ring position {due}",
                        o.stall.as_secs(),
                        t.received
                    ));
                }
                continue;
            }
            Err(e) => return Err(format!("{mode} {slot}: recv after {} messages at {due}: {e}", t.received)),
        };
        progress = Instant::now();
        let seq = m.seq();
        if ordered {
            if (seq.wrapping_sub(due) as i64) < 0 {
                return Err(format!("{mode} {slot}: ring seq {seq} where at least {due} was due"));
            }
            t.skipped += seq - due;
            due = seq + 1;
        }
        let p = m.publisher();
        let pseq = t
            .check(seed, lossless, o.joined, ordered, p, m.payload())
            .map_err(|e| format!("{mode} {slot}: ring seq {seq}: {e}"))?;
        if o.hold_after == Some(t.received) {
            // What it completed so far is on disk before it parks (it dies without a chance to write it).
            if let Some(f) = &o.out {
                write_records(f, &records).map_err(|e| format!("write {}: {e}", f.display()))?;
            }
            println!("holding slot={slot} seq={seq} producer={p} pseq={}", pseq.unwrap_or(EMPTY));
            park_forever();
        }
        drop(m);
        if o.out.is_some() {
            records.push(Record { seq, producer: p, pseq: pseq.unwrap_or(EMPTY) });
        }
        if o.stall_after == Some(t.received) {
            println!("stalled slot={slot} got={} position={}", t.received, sub.position());
            park_forever();
        }
    }
    if let Some(f) = &o.out {
        write_records(f, &records).map_err(|e| format!("write {}: {e}", f.display()))?;
    }
    let counts: Vec<String> = t.counts.iter().map(|(p, n)| format!("{p}:{n}")).collect();
    println!(
        "done role=subscriber mode={mode} slot={slot} received={} lagged={} lag_events={} skipped={} empty={} sum={} \
         counts={} secs={:.3}",
        t.received,
        t.lagged,
        t.lag_events,
        t.skipped,
        t.empty,
        t.sum,
        counts.join(","),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
