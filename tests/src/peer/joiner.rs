//! The joiner role: a subscriber that attaches while producers are running, takes a round of messages, detaches,
//! and attaches again, until everything is published. It exercises the attach protocol (a new gating cursor
//! racing publishers' gate checks) across processes.

use super::{expected_counts, Expect, Opened};
use crate::msg;
use shmbus_ring::{IdleStrategy, Mode, RecvError, Subscriber, SubscriberOptions};
use std::time::{Duration, Instant};

/// What a joiner does.
pub(crate) struct Joiner<'a> {
    pub(crate) slot: usize,
    pub(crate) expect: &'a [Expect],
    pub(crate) lossy: bool,
    pub(crate) per_round: u64,
    pub(crate) idle: IdleStrategy,
    pub(crate) stall: Duration,
}

/// Counts of one round.
#[derive(Default)]
struct Round {
    received: u64,
    lagged: u64,
    finished: bool,
}

/// Attaches, takes a round, detaches, until the round that reaches the end of the stream.
pub(crate) fn run(o: &Opened, seed: u64, j: &Joiner<'_>) -> Result<(), String> {
    let want = expected_counts(j.expect);
    let end = o.topic.origin().wrapping_add(want.iter().sum());
    println!("ready role=joiner slot={} lossy={}", j.slot, j.lossy);
    let mode = if j.lossy { Mode::Lossy } else { Mode::Lossless };
    let (mut rounds, mut received, mut lagged) = (0u64, 0u64, 0u64);
    loop {
        let opts = SubscriberOptions { mode, from_oldest: false, idle: j.idle };
        let mut sub = Subscriber::attach(&o.topic, j.slot, opts, o.waiter.clone(), &|_| false)
            .map_err(|e| format!("joiner {}: attach in round {rounds}: {e}", j.slot))?;
        rounds += 1;
        if sub.position().wrapping_sub(end) as i64 >= 0 {
            break;
        }
        let r =
            round(o, seed, j, &want, &mut sub, end).map_err(|e| format!("joiner {} round {rounds}: {e}", j.slot))?;
        received += r.received;
        lagged += r.lagged;
        drop(sub);
        if r.finished {
            break;
        }
        // A short, varying pause so attaches land at different points of the publishers' progress.
        std::thread::sleep(Duration::from_micros(msg::mix(rounds ^ seed) % 2000));
    }
    println!("done role=joiner slot={} lossy={} rounds={rounds} received={received} lagged={lagged}", j.slot, j.lossy);
    Ok(())
}

fn round(o: &Opened, seed: u64, j: &Joiner<'_>, want: &[u64], sub: &mut Subscriber, end: u64) -> Result<Round, String> {
    let cap = o.topic.geometry().capacity as u64;
    let start = sub.position();
    let mut r = Round::default();
    // Next ring position due; per producer, the next pseq due (lossless, once known) or the lowest allowed (lossy).
    let mut due = start;
    let mut next: Vec<Option<u64>> = vec![None; want.len()];
    let mut last_progress = Instant::now();
    while r.received + r.lagged < j.per_round {
        let m = match sub.recv_timeout(Duration::from_millis(20)) {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                // Lossless: only a payload reclaimed by a publisher that had not seen us attach yet, right after
                // attaching, is reported this way; a message of unknown producer is gone, so continuity restarts.
                if !j.lossy && due.wrapping_sub(start) >= cap {
                    return Err(format!("lossless joiner lagged by {n} at {due}, {} after attaching", due - start));
                }
                if !j.lossy {
                    next.iter_mut().for_each(|x| *x = None);
                }
                due = due.wrapping_add(n);
                r.lagged += n;
                last_progress = Instant::now();
                continue;
            }
            Err(RecvError::Timeout) => {
                if o.topic.tail() == end && due == end {
                    r.finished = true;
                    return Ok(r);
                }
                if last_progress.elapsed() > j.stall {
                    return Err(format!("nothing for {}s at ring position {due} (end {end})", j.stall.as_secs()));
                }
                continue;
            }
            Err(e) => return Err(format!("recv at {due}: {e}")),
        };
        last_progress = Instant::now();
        let seq = m.seq();
        if seq != due {
            return Err(format!("ring seq {seq} where {due} was due (attached at {start})"));
        }
        due = seq.wrapping_add(1);
        let p = m.publisher() as usize;
        if p >= want.len() {
            return Err(format!("message from unexpected producer {p}"));
        }
        let id = msg::decode(seed, m.payload()).map_err(|e| format!("ring seq {seq}: {e}"))?;
        drop(m);
        match (id, next[p]) {
            (Some(id), _) if id.producer as usize != p => {
                return Err(format!("ring seq {seq} from publisher {p} carries {id:?}"));
            }
            (Some(id), Some(n)) if (!j.lossy && id.pseq != n) || id.pseq < n => {
                return Err(format!("producer {p}: pseq {} where {n} was due (attached at {start})", id.pseq));
            }
            (Some(id), _) => next[p] = Some(id.pseq + 1),
            (None, Some(n)) if !j.lossy => {
                if msg::size_of(seed, p as u32, n) != 0 {
                    return Err(format!("producer {p}: empty message where pseq {n} was due"));
                }
                next[p] = Some(n + 1);
            }
            (None, _) => {}
        }
        r.received += 1;
    }
    Ok(r)
}
