//! The lossless consumer role.

use super::{attach_consumer, park_forever, stalled, Consumer, Opened};
use crate::msg;
use shmbus_ring::{Mode, RecvError};
use std::time::{Duration, Instant};

/// Receives until every expected message arrived, checking exactly-once, per-producer order, ring order and
/// integrity. With `stall_after`, stops reading (still gating publishers) after that many messages.
pub(crate) fn run(
    o: &Opened,
    seed: u64,
    c: &Consumer,
    stall: Duration,
    stall_after: Option<u64>,
) -> Result<(), String> {
    let slot = c.slot;
    let (mut sub, want) = attach_consumer(o, c, Mode::Lossless, "lossless")?;
    let total: u64 = want.iter().sum();
    let start = sub.position();
    let mut next = vec![0u64; want.len()];
    let (mut got, mut bytes, mut empty) = (0u64, 0u64, 0u64);
    // The ring position the next message should have, and the positions passed over without a message.
    let mut expect_seq = start;
    let mut gaps = 0u64;
    let t0 = Instant::now();
    while got < total {
        let m = match sub.recv_timeout(stall) {
            Ok(m) => m,
            Err(RecvError::Timeout) => {
                let progress = format!("after {got}/{total} messages; next per producer {next:?}");
                return Err(stalled("lossless", slot, stall, progress));
            }
            Err(e) => return Err(format!("lossless {slot}: recv after {got} messages: {e}")),
        };
        let seq = m.seq();
        if (seq.wrapping_sub(expect_seq) as i64) < 0 {
            return Err(format!("lossless {slot}: ring seq {seq} went backwards (expected at least {expect_seq})"));
        }
        gaps += seq - expect_seq;
        expect_seq = seq + 1;
        let p = m.publisher() as usize;
        if p >= want.len() || next[p] >= want[p] {
            return Err(format!("lossless {slot}: unexpected extra message from producer {p} at ring seq {seq}"));
        }
        match msg::decode(seed, m.payload()).map_err(|e| format!("lossless {slot}: ring seq {seq}: {e}"))? {
            Some(id) => {
                if id.producer as usize != p {
                    return Err(format!("lossless {slot}: ring seq {seq} from publisher {p} carries {id:?}"));
                }
                if id.pseq != next[p] {
                    return Err(format!(
                        "lossless {slot}: producer {p}: expected pseq {}, got {} (loss, duplicate or reorder)",
                        next[p], id.pseq
                    ));
                }
            }
            None => {
                empty += 1;
                let len = msg::size_of(seed, p as u32, next[p]);
                if len != 0 {
                    return Err(format!(
                        "lossless {slot}: producer {p}: empty message where pseq {} ({len} bytes) was due",
                        next[p]
                    ));
                }
            }
        }
        bytes += m.len() as u64;
        drop(m);
        next[p] += 1;
        got += 1;
        if stall_after == Some(got) {
            println!("stalled role=lossless slot={slot} got={got} position={}", sub.position());
            park_forever();
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    // Skip markers (cancelled claims) are the only positions a lossless reader may pass without a message.
    let skipped = o.topic.stats().subscribers.iter().find(|s| s.slot == slot).map_or(0, |s| s.skipped);
    if gaps != skipped {
        return Err(format!("lossless {slot}: {gaps} ring positions passed without a message, {skipped} skip markers"));
    }
    match sub.try_recv() {
        Err(RecvError::Empty) | Err(RecvError::Closed) => {}
        Ok(m) => return Err(format!("lossless {slot}: extra message at ring seq {}", m.seq())),
        Err(e) => return Err(format!("lossless {slot}: after the last message: {e}")),
    }
    println!(
        "done role=lossless slot={slot} received={got} bytes={bytes} empty={empty} skipped={skipped} secs={secs:.3} \
         rate={:.0}",
        got as f64 / secs.max(1e-9)
    );
    Ok(())
}
