//! The producer role.

use super::Opened;
use crate::msg;
use shmbus_ring::{IdleStrategy, Publisher, PublisherOptions, SendError};
use std::time::{Duration, Instant};

/// Sends messages 0..count of producer `slot`, each waiting for room at most `stall`.
pub(crate) fn run(
    o: &Opened,
    seed: u64,
    slot: usize,
    count: u64,
    idle: IdleStrategy,
    stall: Duration,
) -> Result<(), String> {
    let opts = PublisherOptions { idle, ..Default::default() };
    let mut p = Publisher::attach(&o.topic, slot, o.waiter.clone(), opts).map_err(|e| format!("attach: {e}"))?;
    println!("ready role=producer slot={slot}");
    let mut buf = Vec::with_capacity(msg::MAX_MESSAGE);
    let mut bytes = 0u64;
    let t0 = Instant::now();
    for pseq in 0..count {
        msg::encode(&mut buf, seed, slot as u32, pseq);
        match p.send_timeout(&buf, stall) {
            Ok(_) => bytes += buf.len() as u64,
            Err(SendError::Timeout) => {
                return Err(format!("producer {slot}: no room for {}s at pseq {pseq}", stall.as_secs()));
            }
            Err(e) => return Err(format!("producer {slot}: send of pseq {pseq}: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let full = o.topic.stats().publishers.iter().find(|s| s.slot == slot).map_or(0, |s| s.full);
    println!(
        "done role=producer slot={slot} sent={count} bytes={bytes} full={full} secs={secs:.3} rate={:.0}",
        count as f64 / secs.max(1e-9)
    );
    Ok(())
}
