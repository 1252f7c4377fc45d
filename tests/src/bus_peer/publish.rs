//! The publisher role: self-checking messages under the producer id the daemon assigned, optionally paced, and
//! optionally dying with a claimed, unpublished slot.

use super::park_forever;
use crate::msg;
use bus_client::{Bus, SendError};
use std::time::{Duration, Instant};

/// What a publisher does.
pub(crate) struct Publish {
    pub(crate) count: u64,
    pub(crate) rate: u64,
    pub(crate) claim_after: Option<u64>,
    pub(crate) vanish_after: Option<u64>,
    pub(crate) stall: Duration,
}

/// Sends messages 0..count, each waiting for room at most `stall`; with `claim_after`, parks holding a claim, with
/// `vanish_after` inside one (a vacancy).
pub(crate) fn run(bus: &Bus, topic: &str, seed: u64, o: &Publish) -> Result<(), String> {
    let mut p = bus.publisher(topic).map_err(|e| format!("open publisher: {e}"))?;
    let id = p.id();
    println!("ready role=publisher id={id}");
    let mut buf = Vec::with_capacity(msg::MAX_MESSAGE);
    let t0 = Instant::now();
    for pseq in 0..o.count {
        if o.claim_after == Some(pseq) {
            let len = 500;
            let mut loan = p.loan_timeout(len, o.stall).map_err(|e| format!("loan: {e}"))?;
            // Half-written: a reader shown this would find its checksum wrong.
            loan.write_at(0, &vec![0xa5u8; len / 2]);
            println!("claimed id={id} seq={} before={pseq}", loan.seq());
            park_forever();
        }
        if o.vanish_after == Some(pseq) {
            let seq = p.vanish_after_claim_for_tests().map_err(|e| format!("claim: {e}"))?;
            println!("claimed id={id} seq={seq} before={pseq}");
            park_forever();
        }
        msg::encode(&mut buf, seed, id, pseq);
        match p.send_timeout(&buf, o.stall) {
            Ok(_) => {}
            Err(SendError::Timeout) => {
                return Err(format!("publisher {id}: no room for {}s at pseq {pseq}", o.stall.as_secs()));
            }
            Err(e) => return Err(format!("publisher {id}: send of pseq {pseq}: {e}")),
        }
        if o.rate > 0 && pseq % 32 == 31 {
            // Paced: never ahead of `rate` messages a second since the start (checked every 32 messages).
            let due = Duration::from_secs_f64((pseq + 1) as f64 / o.rate as f64);
            if let Some(ahead) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
    println!("done role=publisher id={id} sent={} secs={:.3}", o.count, t0.elapsed().as_secs_f64());
    Ok(())
}
