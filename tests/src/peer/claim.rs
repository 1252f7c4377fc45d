//! The die-mid-claim role: a publisher that is killed between claiming an entry and publishing it.

use super::{park_forever, Opened};
use crate::msg;
use shmbus_ring::{Publisher, PublisherOptions};
use std::time::{Duration, Instant};

/// Publishes `before` messages, then takes a loan of `len` bytes, writes part of it, reports the claimed
/// sequence and waits to be killed with the claim outstanding. With `len` `None`, it stops inside the claim instead,
/// right after the tail's compare-and-swap (a vacancy: the entry still shows its previous lap).
pub(crate) fn run(
    o: &Opened,
    seed: u64,
    slot: usize,
    before: u64,
    len: Option<usize>,
    stall: Duration,
) -> Result<(), String> {
    let mut p = Publisher::attach(&o.topic, slot, o.waiter.clone(), PublisherOptions::default())
        .map_err(|e| format!("attach: {e}"))?;
    let mut buf = Vec::new();
    for pseq in 0..before {
        msg::encode(&mut buf, seed, slot as u32, pseq);
        p.send_timeout(&buf, stall).map_err(|e| format!("send of pseq {pseq}: {e}"))?;
    }
    let Some(len) = len else {
        let seq = p.vanish_after_claim().map_err(|e| format!("claim: {e}"))?;
        println!("claimed slot={slot} seq={seq} before={before}");
        park_forever()
    };
    let mut loan = p.loan(len, Some(Instant::now() + stall)).map_err(|e| format!("loan: {e}"))?;
    // Half-written: if recovery ever let a reader see this, its checksum would not match.
    let half = vec![0xa5u8; len / 2];
    loan.write_at(0, &half);
    println!("claimed slot={slot} seq={} before={before}", loan.seq());
    park_forever()
}
