//! The lossy consumer role.

use super::{attach_consumer, stalled, Consumer, Opened};
use crate::msg;
use shmbus_ring::{Mode, RecvError};
use std::time::{Duration, Instant};

/// Receives until every position published while attached is accounted for, as a message or in a `Lagged(n)`.
/// Checks that no message is torn, that each producer's sequence strictly increases and that the accounting is
/// exact at every message (no cancelled claims are expected on the topic).
pub(crate) fn run(o: &Opened, seed: u64, c: &Consumer, stall: Duration) -> Result<(), String> {
    let slot = c.slot;
    let (mut sub, want) = attach_consumer(o, c, Mode::Lossy, "lossy")?;
    let total: u64 = want.iter().sum();
    let start = sub.position();
    // Per producer: the lowest pseq the next message may have.
    let mut floor = vec![0u64; want.len()];
    let (mut received, mut lagged, mut lag_events, mut empty) = (0u64, 0u64, 0u64, 0u64);
    let t0 = Instant::now();
    while received + lagged < total {
        let m = match sub.recv_timeout(stall) {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                lagged += n;
                lag_events += 1;
                continue;
            }
            Err(RecvError::Timeout) => {
                let progress = format!("with {received} received + {lagged} lagged of {total}");
                return Err(stalled("lossy", slot, stall, progress));
            }
            Err(e) => return Err(format!("lossy {slot}: recv: {e}")),
        };
        let seq = m.seq();
        if seq.wrapping_sub(start) != received + lagged {
            return Err(format!(
                "lossy {slot}: ring seq {seq} but {received} received + {lagged} lagged since {start}: inexact \
                 accounting"
            ));
        }
        let p = m.publisher() as usize;
        if p >= want.len() {
            return Err(format!("lossy {slot}: message from unexpected producer {p}"));
        }
        match msg::decode(seed, m.payload()).map_err(|e| format!("lossy {slot}: ring seq {seq}: {e}"))? {
            Some(id) => {
                if id.producer as usize != p || id.pseq < floor[p] || id.pseq >= want[p] {
                    return Err(format!(
                        "lossy {slot}: ring seq {seq} from publisher {p} carries {id:?}; expected pseq in {}..{}",
                        floor[p], want[p]
                    ));
                }
                floor[p] = id.pseq + 1;
            }
            None => {
                // The earliest empty message the producer can still send; a later one only raises the floor less.
                empty += 1;
                let e = (floor[p]..want[p]).find(|&q| msg::size_of(seed, p as u32, q) == 0).ok_or_else(|| {
                    format!("lossy {slot}: empty message from producer {p}, none due at or after pseq {}", floor[p])
                })?;
                floor[p] = e + 1;
            }
        }
        drop(m);
        received += 1;
    }
    if received + lagged != total {
        return Err(format!("lossy {slot}: {received} received + {lagged} lagged != {total} published"));
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "done role=lossy slot={slot} received={received} lagged={lagged} lag_events={lag_events} empty={empty} \
         secs={secs:.3}"
    );
    Ok(())
}
