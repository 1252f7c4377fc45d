//! A fault-test run: a real daemon with one declared topic, `bus-peer` client processes under one deadline, a
//! client of the test's own for stats, and the checks of the peers' `done` lines. Dropping it kills the peers,
//! then stops the daemon and sweeps its objects (also when the test fails).

use crate::daemon::{binary, TestDaemon};
use crate::msg;
use crate::peers::{field_u64, fields, PeerId, Peers};
use bus_client::{Bus, TopicStatsWire};
use std::time::{Duration, Instant};

/// The topic every run declares.
pub const TOPIC: &str = "faults";

/// The daemon configuration declaring [`TOPIC`] with `capacity` entries, room for the self-checking messages, and
/// `extra` TOML lines for the topic.
pub fn config(capacity: u32, extra: &str) -> String {
    format!(
        "[[topic]]\nname = \"{TOPIC}\"\ncapacity = {capacity}\nmax_message = {}\npayload_budget = 1048576\n\
         max_publishers = 8\nmax_subscribers = 16\nmax_groups = 4\n{extra}\n",
        msg::MAX_MESSAGE
    )
}

/// One run. Fields drop in order: the peers first, then the test's client, then the daemon.
pub struct BusRun {
    /// The helper processes.
    pub peers: Peers,
    /// The test's own client (stats, opens).
    pub bus: Bus,
    /// The daemon.
    pub d: TestDaemon,
    /// Seed of the messages.
    pub seed: u64,
    deadline_secs: u64,
}

impl std::fmt::Debug for BusRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusRun").field("daemon", &self.d).finish()
    }
}

/// The `done` line of a subscriber, parsed.
#[derive(Clone, Debug)]
pub struct Done {
    /// The line itself.
    pub line: String,
    /// Messages received.
    pub received: u64,
    /// Positions reported lagged.
    pub lagged: u64,
    /// `Lagged` reports.
    pub lag_events: u64,
    /// Positions passed without message or report (skip markers).
    pub skipped: u64,
    /// Sum of the messages' fingerprints.
    pub sum: u64,
    /// Messages per producer id.
    pub counts: Vec<(u32, u64)>,
}

impl Done {
    /// Parses a subscriber's `done` line.
    pub fn parse(line: &str) -> Done {
        let f = fields(line);
        let counts = f
            .get("counts")
            .map(|c| {
                c.split(',')
                    .filter(|w| !w.is_empty())
                    .map(|w| {
                        let (p, n) = w.split_once(':').expect("p:n");
                        (p.parse().expect("producer"), n.parse().expect("count"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Done {
            line: line.to_string(),
            received: field_u64(line, "received"),
            lagged: field_u64(line, "lagged"),
            lag_events: field_u64(line, "lag_events"),
            skipped: field_u64(line, "skipped"),
            sum: field_u64(line, "sum"),
            counts,
        }
    }
}

impl BusRun {
    /// Starts a daemon with `config` and a supervisor whose waits all fail after `timeout`.
    pub fn start(config: &str, seed: u64, timeout: Duration) -> BusRun {
        let d = TestDaemon::start(Some(config));
        let bus = d.bus();
        let peers = Peers::new(binary("bus-peer").to_str().expect("utf-8 path"), timeout);
        BusRun { peers, bus, d, seed, deadline_secs: timeout.as_secs() + 30 }
    }

    /// The arguments of a peer: the common ones, then `role`.
    pub fn args(&self, role: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--socket".into(),
            self.d.socket.display().to_string(),
            "--topic".into(),
            TOPIC.into(),
            "--seed".into(),
            self.seed.to_string(),
            "--stall-secs".into(),
            "60".into(),
            "--deadline-secs".into(),
            self.deadline_secs.to_string(),
        ];
        a.extend(role.iter().map(|s| s.to_string()));
        a
    }

    /// Spawns a publisher of `count` messages (at most `rate` a second, 0: unpaced; `extra` words after) and
    /// waits until it is open. Returns the peer and its producer id.
    pub fn publisher(&mut self, name: &str, count: u64, rate: u64, extra: &[&str]) -> (PeerId, u32) {
        let (c, r) = (count.to_string(), rate.to_string());
        let a = self.args(&[&["publish", "--count", &c, "--rate", &r][..], extra].concat());
        let id = self.peers.spawn(name, &a);
        let ready = self.peers.wait_line(id, "ready");
        (id, field_u64(&ready, "id") as u32)
    }

    /// Spawns a subscriber (`--mode` and the rest in `extra`) and waits until it is attached. Returns the peer,
    /// its slot and its starting position.
    pub fn subscriber(&mut self, name: &str, extra: &[&str]) -> (PeerId, u32, u64) {
        let a = self.args(&[&["subscribe"][..], extra].concat());
        let id = self.peers.spawn(name, &a);
        let ready = self.peers.wait_line(id, "ready");
        (id, field_u64(&ready, "slot") as u32, field_u64(&ready, "position"))
    }

    /// Waits for a subscriber to finish successfully and parses its `done` line.
    pub fn done(&mut self, id: PeerId) -> Done {
        Done::parse(&self.peers.expect_done(id))
    }

    /// Waits for a publisher to finish successfully; returns how many it sent.
    pub fn published(&mut self, id: PeerId) -> u64 {
        field_u64(&self.peers.expect_done(id), "sent")
    }

    /// The topic's statistics, from the daemon.
    pub fn stats(&self) -> TopicStatsWire {
        let mut v = self.bus.stats(Some(TOPIC)).unwrap_or_else(|e| self.fail(&format!("stats: {e}")));
        v.pop().unwrap_or_else(|| self.fail("no stats for the topic"))
    }

    /// The ring position of subscriber `slot` (`None`: not attached).
    pub fn position(&self, slot: u32) -> Option<u64> {
        self.stats().subscribers.iter().find(|s| s.slot == slot).map(|s| s.position)
    }

    /// Polls `cond` every millisecond until it holds and returns how long that took; fails the test (with the
    /// peers' diagnostics and the daemon's log) after `bound`, or as soon as a peer has failed.
    pub fn wait_for(&self, what: &str, bound: Duration, mut cond: impl FnMut() -> bool) -> Duration {
        let t0 = Instant::now();
        let mut polls = 0u64;
        while !cond() {
            if t0.elapsed() > bound {
                self.fail(&format!("not within {bound:?}: {what}"));
            }
            polls += 1;
            if polls.is_multiple_of(64) {
                if let Some(f) = self.peers.failed_peer() {
                    self.fail(&format!("while waiting until {what}: {f}"));
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        t0.elapsed()
    }

    /// Asserts that `probe` stays the same for 300 ms and that the peers `ids` keep running meanwhile (a stall that
    /// is real, not a slow peer). Returns the stalled value.
    pub fn hold<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        ids: &[PeerId],
        probe: impl Fn(&Self) -> T,
    ) -> T {
        let stalled = probe(self);
        std::thread::sleep(Duration::from_millis(300));
        let now = probe(self);
        if now != stalled {
            self.fail(&format!("{what}: moved from {stalled:?} to {now:?} while it should be stalled"));
        }
        for &id in ids {
            if !self.peers.running(id) {
                self.fail(&format!("{what}: peer {id} exited while it should be blocked"));
            }
        }
        stalled
    }

    /// Which of the daemon's paths reclaimed what dead clients held, from its log: at the end of their connection
    /// (`Close` or hang-up), or in its scan for slots whose holder is gone. For the printed figures only:
    /// which path wins is the daemon's business.
    pub fn reclaimed_by(&self) -> &'static str {
        let log = self.d.log();
        if log.contains("of a dead publisher") || log.contains("of a dead subscriber") {
            "the orphan scan"
        } else {
            "the end of its connection"
        }
    }

    /// Sends `sig` to peer `id`.
    pub fn signal(&self, id: PeerId, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions; the pid is a child of ours that has not been reaped.
        let r = unsafe { libc::kill(self.peers.pid(id) as i32, sig) };
        assert_eq!(r, 0, "kill({}, {sig}): {}", self.peers.pid(id), std::io::Error::last_os_error());
    }

    /// Asserts that a lossless subscriber got exactly the messages `sent` (producer id, count), each once, with
    /// `skipped` skip markers and nothing lagged.
    pub fn assert_lossless(&self, done: &Done, sent: &[(u32, u64)], skipped: u64) {
        let total: u64 = sent.iter().map(|s| s.1).sum();
        let mut counts: Vec<(u32, u64)> = sent.iter().copied().filter(|s| s.1 > 0).collect();
        counts.sort_unstable();
        if done.received != total || done.skipped != skipped || done.lagged != 0 || done.counts != counts {
            self.fail(&format!(
                "lossless subscriber: want {total} messages {counts:?} and {skipped} skipped: {}",
                done.line
            ));
        }
        if done.sum != expected_sum(self.seed, sent) {
            self.fail(&format!("lossless subscriber: fingerprint differs (loss or duplicate): {}", done.line));
        }
    }

    /// Asserts that a lossy subscriber accounted for all `total` positions exactly: received or reported in a
    /// `Lagged(n)`, no position passed unexplained.
    pub fn assert_lossy(&self, done: &Done, total: u64) {
        if done.received + done.lagged != total || done.skipped != 0 {
            self.fail(&format!("lossy subscriber: {total} positions, not exactly accounted for: {}", done.line));
        }
    }

    /// Panics with `why`, the peers' diagnostics and the daemon's log.
    pub fn fail(&self, why: &str) -> ! {
        self.peers.fail(&format!("{why}\n--- daemon log (tail):\n{}", tail(&self.d.log(), 4000)))
    }
}

/// The last `n` characters of `s`.
pub fn tail(s: &str, n: usize) -> &str {
    let at = s.len().saturating_sub(n);
    let at = (at..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
    &s[at..]
}

/// The fingerprint of everything the publishers `(id, count)` sent.
pub fn expected_sum(seed: u64, sent: &[(u32, u64)]) -> u64 {
    sent.iter().fold(0u64, |acc, &(p, n)| acc.wrapping_add(msg::expected_fingerprint(seed, p, n)))
}

/// Open descriptors of process `pid`.
pub fn open_fds(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .map(|e| std::fs::read_link(e.path()).map_or_else(|_| "?".into(), |t| t.display().to_string()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `VmRSS` and `RssAnon` of process `pid` in KiB (`None` once it is gone).
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let get = |key: &str| {
        s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
    };
    Some((get("VmRSS:")?, get("RssAnon:")?))
}
