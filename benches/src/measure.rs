//! The two scenarios, as run on each side of a link.
//!
//! * **Latency**: ping-pong. The harness stamps a sequence number into a message of the scenario's size, sends it,
//!   waits for the echo and records half the round trip (one-way) in nanoseconds; the peer echoes each message
//!   whole. The first `warmup` round trips are not recorded.
//! * **Throughput**: one way. The harness sends `count` messages back to back; the peer receives them all,
//!   checking each one's length and sequence number, and answers with one message. Throughput is `count` over the
//!   time from the first send to that answer.
//!
//! Every message is written in full by the sender and read in full (copied out) by the receiver. Both scenarios
//! start with one unmeasured round trip ([`sync`]), so the peer's start-up is never timed.

use crate::transport::Duplex;
use hdrhistogram::Histogram;
use std::io;
use std::time::{Duration, Instant};

/// A scenario (what each side does); the multi-process ones are in [`crate::multi`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Ping-pong, one-way latency.
    Latency,
    /// One-way stream, messages per second.
    Throughput,
    /// Several publisher processes (2, then 4) on one topic, one subscriber: aggregate messages per second.
    FanIn,
    /// One publisher, three lossless subscriber processes: messages per second at the slowest.
    FanOut,
    /// One publisher, a consumer group of two member processes: messages per second through the group.
    Group,
    /// One publisher, one lossy subscriber process: published per second, delivered and lapped counts.
    Lossy,
    /// Many idle topics on a private daemon (no messages): create rate, listing and adoption times, the daemon's
    /// memory and descriptors and /dev/shm per topic ([`crate::scale`]). In the full run, not in `--quick`.
    Scale,
}

impl Mode {
    /// Every scenario, in the order of a run.
    pub fn all() -> Vec<Mode> {
        vec![Mode::Latency, Mode::Throughput, Mode::FanIn, Mode::FanOut, Mode::Group, Mode::Lossy, Mode::Scale]
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Latency => "latency",
            Mode::Throughput => "throughput",
            Mode::FanIn => "fan-in",
            Mode::FanOut => "fan-out",
            Mode::Group => "group",
            Mode::Lossy => "lossy",
            Mode::Scale => "scale",
        }
    }

    /// Whether this scenario runs between more than two processes (shmbus only).
    pub fn is_multi(self) -> bool {
        matches!(self, Mode::FanIn | Mode::FanOut | Mode::Group | Mode::Lossy)
    }
}

/// How many messages a scenario moves.
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    /// Round trips recorded (latency) or messages sent (throughput).
    pub count: u64,
    /// Round trips before recording (latency only).
    pub warmup: u64,
}

/// Writes the sequence number `i` into the first bytes of `buf` (as many as fit).
pub fn stamp(buf: &mut [u8], i: u64) {
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&i.to_le_bytes()[..n]);
}

/// Whether `buf` carries sequence number `i` (as far as it holds it).
fn stamped(buf: &[u8], i: u64) -> bool {
    let n = buf.len().min(8);
    buf[..n] == i.to_le_bytes()[..n]
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One round trip before anything is timed: the peer is running and its side of the link is open.
fn sync(link: &mut dyn Duplex, size: usize) -> io::Result<()> {
    let mut buf = vec![0; size];
    link.send(&buf.clone())?;
    link.recv(&mut buf)?;
    Ok(())
}

/// Harness side of the latency scenario: the one-way latencies in nanoseconds.
pub fn latency(link: &mut dyn Duplex, size: usize, c: Counts) -> io::Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(io::Error::other)?;
    let mut msg = vec![0x5a; size];
    let mut back = vec![0; size];
    sync(link, size)?;
    for i in 0..c.warmup + c.count {
        stamp(&mut msg, i);
        let t = Instant::now();
        link.send(&msg)?;
        let n = link.recv(&mut back)?;
        let rtt = t.elapsed();
        if n != size || !stamped(&back, i) {
            return Err(bad("the echo differs from the message"));
        }
        if i >= c.warmup {
            hist.saturating_record((rtt.as_nanos() as u64 / 2).max(1));
        }
    }
    Ok(hist)
}

/// Harness side of the throughput scenario: the time from the first send to the peer's answer.
pub fn throughput(link: &mut dyn Duplex, size: usize, c: Counts) -> io::Result<Duration> {
    let mut msg = vec![0x5a; size];
    let mut back = vec![0; size];
    sync(link, size)?;
    let t = Instant::now();
    for i in 0..c.count {
        stamp(&mut msg, i);
        link.send(&msg)?;
    }
    link.recv(&mut back)?;
    Ok(t.elapsed())
}

/// Peer side of either scenario.
pub fn serve(link: &mut dyn Duplex, mode: Mode, size: usize, c: Counts) -> io::Result<()> {
    let mut buf = vec![0; size];
    let n = link.recv(&mut buf)?;
    link.send(&buf[..n])?;
    match mode {
        Mode::Latency => {
            for _ in 0..c.warmup + c.count {
                let n = link.recv(&mut buf)?;
                link.send(&buf[..n])?;
            }
        }
        Mode::Throughput | Mode::FanIn | Mode::FanOut | Mode::Group | Mode::Lossy => {
            for i in 0..c.count {
                let n = link.recv(&mut buf)?;
                if n != size || !stamped(&buf, i) {
                    return Err(bad("a message was lost, reordered or torn"));
                }
            }
            link.send(&buf)?;
        }
        Mode::Scale => return Err(io::Error::other("the scale scenario has no peer")),
    }
    Ok(())
}
