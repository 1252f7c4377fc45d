//! The multi-process scenarios, shmbus only: several processes on one topic of the private daemon, the harness
//! being the one side that is single (the subscriber of a fan-in, the publisher otherwise).
//!
//! * **fan-in** (N→1): N publisher processes (`max_publishers` ≥ N) send `count` messages each once told to
//!   go; the harness subscribes and takes all N × `count`. Rate: N × `count` over the time from go to the last.
//! * **fan-out** (1→3): the harness publishes `count` messages to three lossless subscriber processes. Rate:
//!   `count` over the time from the first send to the slowest subscriber's last message.
//! * **group** (1→group of 2): the same to the two members of one consumer group (each message to one of them).
//!   Rate: `count` over the time from the first send to the last member's last message.
//! * **lossy** (1→1 lossy): the harness publishes `count` messages to one lossy subscriber, which never holds it
//!   back. Rate: published per second; the subscriber reports what it got (delivered) and what it was told it
//!   missed (lapped); the two add up to `count`.
//!
//! Subscribers stop at an empty message (one per subscriber) sent after the data. Times are `CLOCK_MONOTONIC`,
//! the same clock in every process. With two CPUs the harness keeps CPU 0 and every peer shares CPU 1.

mod peer;

pub use peer::serve;

use crate::daemon::PrivateBus;
use crate::measure::Mode;
use crate::transport::Kind;
use bus_client::{Bus, IdleStrategy};
use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The topic of `mode` for messages of `size` bytes.
pub fn topic(mode: Mode, size: usize) -> String {
    format!("{}{size}", mode.name())
}

/// Publisher and subscriber processes of a scenario (`fan_in`: the publishers of a fan-in).
pub fn shape(mode: Mode, fan_in: u32) -> (u32, u32) {
    match mode {
        Mode::FanIn => (fan_in, 1),
        Mode::FanOut => (1, 3),
        Mode::Group => (1, 2),
        _ => (1, 1),
    }
}

/// Most publishers and subscribers any multi-process topic has (what the daemon's topics are created for).
pub const MAX_PEERS: u32 = 4;

/// The idle strategy of a shmbus transport.
pub(crate) fn idle(kind: Kind) -> IdleStrategy {
    match kind {
        Kind::ShmbusBlocking | Kind::ShmbusAsync => IdleStrategy::Blocking,
        Kind::ShmbusYield => IdleStrategy::SpinThenYield,
        _ => IdleStrategy::BusySpin,
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (one clock for every process of the machine).
pub(crate) fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

/// What a peer reports at the end.
#[derive(Clone, Debug, Default)]
pub(crate) struct Done {
    pub received: u64,
    pub lapped: u64,
    pub demoted: bool,
    pub end_ns: u64,
    pub peak_rss: u64,
}

impl Done {
    fn line(&self) -> String {
        let d = u8::from(self.demoted);
        format!("done {} {} {d} {} {}", self.received, self.lapped, self.end_ns, self.peak_rss)
    }

    fn parse(line: &str) -> io::Result<Done> {
        let bad = || io::Error::other(format!("unexpected line from a peer: {line:?}"));
        let v: Vec<u64> =
            line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().map_err(|_| bad())?;
        if !line.starts_with("done ") || v.len() != 5 {
            return Err(bad());
        }
        Ok(Done { received: v[0], lapped: v[1], demoted: v[2] != 0, end_ns: v[3], peak_rss: v[4] })
    }
}

/// The figures of one multi-process scenario.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Messages per second (see the module docs for each scenario's definition).
    pub msgs_per_sec: f64,
    /// Messages the subscribers received (lossy: the subscriber; otherwise all of them together).
    pub delivered: u64,
    /// Messages the lossy subscriber was told it missed.
    pub lapped: u64,
    /// The largest peak resident set of the peers, in bytes.
    pub peer_peak_rss: u64,
}

/// A started peer and its protocol pipes.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn line(&mut self) -> io::Result<String> {
        let mut l = String::new();
        if self.stdout.read_line(&mut l)? == 0 {
            return Err(io::Error::other("a peer exited early"));
        }
        Ok(l.trim().to_string())
    }
}

/// What a scenario needs to start its peers.
pub struct Plan<'a> {
    /// shmbus-busy or shmbus-blocking.
    pub kind: Kind,
    /// The scenario (not latency nor throughput).
    pub mode: Mode,
    /// Publishers of a fan-in.
    pub fan_in: u32,
    /// Message size in bytes (at least 1: the empty message is the stop).
    pub size: usize,
    /// Messages per publisher.
    pub count: u64,
    /// The private daemon.
    pub bus: &'a PrivateBus,
    /// Pin the peers to CPU 1.
    pub pinned: bool,
}

fn spawn(plan: &Plan, topic: &str) -> io::Result<Peer> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("peer").arg("--transport").arg(plan.kind.name()).arg("--mode").arg(plan.mode.name());
    cmd.arg("--size").arg(plan.size.to_string()).arg("--count").arg(plan.count.to_string()).arg("--name").arg(topic);
    if plan.pinned {
        cmd.arg("--cpu").arg("1");
    }
    cmd.env("SHMBUS_SOCKET", &plan.bus.socket).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no peer stdout"))?;
    Ok(Peer { child, stdin, stdout: BufReader::new(stdout) })
}

/// Runs one multi-process scenario; `pids` receives the peers' process ids (for the watchdog) as they start.
pub fn run(plan: &Plan, pids: &mut dyn FnMut(u32)) -> io::Result<Outcome> {
    if plan.size == 0 || !plan.kind.needs_daemon() {
        return Err(io::Error::other("multi-process scenarios need shmbus and messages of at least 1 byte"));
    }
    let topic = topic(plan.mode, plan.size);
    let bus = Bus::connect_to(&plan.bus.socket).map_err(io::Error::other)?;
    let (publishers, subscribers) = shape(plan.mode, plan.fan_in);
    let mut peers = Vec::new();
    let outcome = (|| {
        if plan.mode == Mode::FanIn {
            let mut s = bus.subscriber_builder(&topic).idle(idle(plan.kind)).open().map_err(io::Error::other)?;
            for _ in 0..publishers {
                peers.push(spawn(plan, &topic)?);
                pids(peers[peers.len() - 1].child.id());
            }
            for p in &mut peers {
                expect(p, "ready")?;
            }
            let t0 = now_ns();
            for p in &mut peers {
                let mut stdin = p.stdin.take().ok_or_else(|| io::Error::other("no peer stdin"))?;
                stdin.write_all(b"go\n")?;
            }
            let total = plan.count * u64::from(publishers);
            let mut buf = vec![0; plan.size];
            for _ in 0..total {
                let m = s.recv().map_err(io::Error::other)?;
                if m.len() != plan.size {
                    return Err(io::Error::other("a message of the wrong size"));
                }
                buf.copy_from_slice(m.payload());
            }
            let secs = (now_ns() - t0) as f64 / 1e9;
            let dones = finish(&mut peers)?;
            let peer_peak_rss = dones.iter().map(|d| d.peak_rss).max().unwrap_or(0);
            return Ok(Outcome { msgs_per_sec: total as f64 / secs, delivered: total, lapped: 0, peer_peak_rss });
        }
        for _ in 0..subscribers {
            peers.push(spawn(plan, &topic)?);
            pids(peers[peers.len() - 1].child.id());
        }
        for p in &mut peers {
            expect(p, "ready")?;
        }
        let mut tx = bus.publisher_builder(&topic).idle(idle(plan.kind)).open().map_err(io::Error::other)?;
        let mut msg = vec![0x5a; plan.size];
        let t0 = now_ns();
        for i in 0..plan.count {
            crate::measure::stamp(&mut msg, i);
            tx.send(&msg).map_err(io::Error::other)?;
        }
        let published = now_ns();
        for _ in 0..subscribers {
            tx.send(&[]).map_err(io::Error::other)?;
        }
        let dones = finish(&mut peers)?;
        let end = dones.iter().map(|d| d.end_ns).max().unwrap_or(published);
        let delivered: u64 = dones.iter().map(|d| d.received).sum();
        let lapped: u64 = dones.iter().map(|d| d.lapped).sum();
        let peer_peak_rss = dones.iter().map(|d| d.peak_rss).max().unwrap_or(0);
        let want = if plan.mode == Mode::FanOut { plan.count * u64::from(subscribers) } else { plan.count };
        if plan.mode != Mode::Lossy && (delivered != want || dones.iter().any(|d| d.demoted)) {
            return Err(io::Error::other(format!("lossless: {delivered} of {want} messages delivered")));
        }
        if plan.mode == Mode::Lossy && delivered + lapped != plan.count {
            return Err(io::Error::other(format!("lossy: {delivered} delivered + {lapped} lapped != {}", plan.count)));
        }
        let secs = if plan.mode == Mode::Lossy { published - t0 } else { end.saturating_sub(t0) } as f64 / 1e9;
        Ok(Outcome { msgs_per_sec: plan.count as f64 / secs.max(1e-9), delivered, lapped, peer_peak_rss })
    })();
    if outcome.is_err() {
        for p in &mut peers {
            let _ = p.child.kill();
        }
    }
    let mut failed = None;
    for p in &mut peers {
        let st = p.child.wait()?;
        if !st.success() && failed.is_none() {
            failed = Some(st);
        }
    }
    let o = outcome?;
    match failed {
        Some(st) => Err(io::Error::other(format!("a peer exited with {st}"))),
        None => Ok(o),
    }
}

fn expect(p: &mut Peer, what: &str) -> io::Result<()> {
    let l = p.line()?;
    if l != what {
        return Err(io::Error::other(format!("a peer said {l:?} instead of {what:?}")));
    }
    Ok(())
}

/// Reads every peer's `done` line.
fn finish(peers: &mut [Peer]) -> io::Result<Vec<Done>> {
    peers.iter_mut().map(|p| p.line().and_then(|l| Done::parse(&l))).collect()
}

#[cfg(test)]
mod tests {
    use super::Done;

    #[test]
    fn done_lines_round_trip_and_bad_ones_are_errors() {
        let d = Done { received: 7, lapped: 3, demoted: true, end_ns: 42, peak_rss: 4096 };
        let back = Done::parse(&d.line()).expect("parse");
        assert_eq!((back.received, back.lapped, back.demoted, back.end_ns, back.peak_rss), (7, 3, true, 42, 4096));
        for bad in ["", "ready", "done 1 2 3", "done a b c d e", "over 1 2 0 4 5"] {
            assert!(Done::parse(bad).is_err(), "{bad:?}");
        }
    }
}
