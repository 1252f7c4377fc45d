//! The hostile side of `tests/tests/control_fuzz.rs`, run by the `control-fuzzer` helper (as `nobody`, and as
//! root for the admin requests): several connections at once, each a run of episodes until the plan's count of
//! inputs is sent. An input is one frame or one string of hostile bytes written to the daemon.
//!
//! An episode is one connection. Most greet the daemon, send well-formed requests with random field values one
//! at a time or a few pipelined when they fit in a socket buffer (sometimes with descriptors attached, which
//! clients never send), and end with a hostile tail; the others open with hostile bytes, a request before
//! `Hello`, or a `Hello` of another version.
//! What the daemon must do is checked for each input, every read bounded by the hang guard:
//!
//! * a well-formed request on a greeted connection gets exactly one reply of the kind it asks for (a second
//!   `Hello` an error), and the connection is kept; an unprivileged peer never gets a lease on the protected
//!   topic, nor `Done` for a create or a delete;
//! * a request before `Hello`, or a `Hello` of another version, gets a `VersionMismatch` error, then the daemon
//!   closes the connection;
//! * an oversized length prefix, a malformed frame, or more descriptors than a message may carry: the daemon
//!   closes the connection without a reply; so it does, after its request timeout, with a frame never finished;
//! * bytes that may mean anything (bit flips, random bytes): whatever the daemon answers is a well-formed reply,
//!   and once the fuzzer stops writing the connection ends;
//! * every connection ends (end of file) within the hang guard, and the fuzzer waits for that end before it
//!   counts the connection, so when it exits the daemon has released every lease it granted it.

pub mod gen;

use gen::{Aim, Rng};
use shmbus_proto::frame::FrameReader;
use shmbus_proto::msg::*;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What to send, where.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// Seed of the workers' generators (worker `i` uses `seed + i`).
    pub seed: u64,
    /// Inputs to send in all.
    pub inputs: u64,
    /// Connections at once (one worker thread each).
    pub conns: usize,
    /// Topics that exist and admit everyone.
    pub topics: Vec<String>,
    /// The real client's topic: an unprivileged fuzzer must never be granted a lease on it; a privileged one
    /// never names it.
    pub protected: String,
    /// Whether the fuzzer runs as an admin of every topic (root): it then never names the protected topic.
    pub privileged: bool,
    /// One episode in this many leaves a frame unfinished until the daemon's request timeout drops it.
    pub slow_every: usize,
    /// The hang guard: the longest any read may wait.
    pub hang: Duration,
}

/// What the fuzzer sent and saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Inputs sent.
    pub inputs: AtomicU64,
    /// Connections opened (each ended before it was counted done).
    pub connections: AtomicU64,
    /// Connections the daemon closed while the fuzzer still wrote.
    pub dropped: AtomicU64,
    /// Replies received.
    pub replies: AtomicU64,
    /// Leases granted.
    pub leases: AtomicU64,
    /// Error replies.
    pub refusals: AtomicU64,
}

impl Tally {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// One line for the test to read: `fuzzed inputs=N connections=N dropped=N replies=N leases=N refusals=N`.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "fuzzed inputs={} connections={} dropped={} replies={} leases={} refusals={}",
            g(&self.inputs),
            g(&self.connections),
            g(&self.dropped),
            g(&self.replies),
            g(&self.leases),
            g(&self.refusals)
        )
    }
}

/// Runs the plan; `Err` names the first input the daemon mishandled.
pub fn run(plan: &Plan) -> Result<Tally, String> {
    let tally = Tally::default();
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for i in 0..plan.conns {
            let (tally, failed, first_error) = (&tally, &failed, &first_error);
            s.spawn(move || {
                let mut w = Worker {
                    plan,
                    tally,
                    rng: Rng(plan.seed.wrapping_add(i as u64)),
                    aim: Aim {
                        topics: plan.topics.clone(),
                        protected: plan.protected.clone(),
                        grants: Vec::new(),
                        leases: Vec::new(),
                    },
                };
                while tally.inputs.load(Ordering::Relaxed) < plan.inputs && !failed.load(Ordering::Relaxed) {
                    if let Err(e) = w.episode() {
                        failed.store(true, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert(format!("worker {i}: {e}"));
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap() {
        Some(e) => Err(format!("{e} (after {})", tally.line())),
        None => Ok(tally),
    }
}

/// Most bytes of requests written at once before their replies are read (well within a socket buffer).
const PIPELINE_BYTES: usize = 32 * 1024;

/// One connection to the daemon.
struct Conn {
    s: UnixStream,
    reader: FrameReader,
    buf: Vec<u8>,
}

/// What a read found.
enum Got {
    Reply(Response),
    Closed,
}

impl Conn {
    fn open(plan: &Plan) -> Result<Conn, String> {
        let s = UnixStream::connect(&plan.socket).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(plan.hang)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(plan.hang)).map_err(|e| e.to_string())?;
        Ok(Conn { s, reader: FrameReader::new(), buf: vec![0; 64 * 1024] })
    }

    /// Writes `bytes`; a daemon that closed the connection meanwhile is not an error here (the read says so).
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self.s.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe || e.kind() == std::io::ErrorKind::ConnectionReset => {
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                Err(format!("hang: the daemon took no bytes for {} ms", self.hang_ms()))
            }
            Err(e) => Err(format!("write: {e}")),
        }
    }

    /// Writes `bytes` with `fds` descriptors of /dev/null attached (any number: past `MAX_FDS` the daemon's
    /// receive truncates them).
    fn send_with_fds(&mut self, bytes: &[u8], fds: usize) -> Result<(), String> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        let raw = vec![null.as_raw_fd(); fds];
        let rights = [ControlMessage::ScmRights(&raw)];
        let iov = [std::io::IoSlice::new(bytes)];
        let sent = match sendmsg::<()>(self.s.as_raw_fd(), &iov, &rights, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => n,
            Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => return Ok(()),
            Err(e) => return Err(format!("sendmsg with {fds} descriptors: {e}")),
        };
        self.send(&bytes[sent..])
    }

    fn hang_ms(&self) -> u128 {
        self.s.read_timeout().ok().flatten().unwrap_or_default().as_millis()
    }

    /// The next reply or the end of the connection, within the hang guard. Descriptors that come with a lease
    /// are closed at once.
    fn next(&mut self) -> Result<Got, String> {
        loop {
            match self.reader.next_frame::<Response>() {
                Ok(Some(r)) => return Ok(Got::Reply(r)),
                Ok(None) => {}
                Err(e) => return Err(format!("a malformed reply: {e}")),
            }
            match shmbus_os::recv_with_fds(self.s.as_fd(), &mut self.buf) {
                Ok((0, _)) => {
                    if self.reader.buffered() > 0 {
                        let n = self.reader.buffered();
                        return Err(format!("the daemon closed in the middle of a reply ({n} bytes)"));
                    }
                    return Ok(Got::Closed);
                }
                Ok((n, fds)) => {
                    drop(fds);
                    self.reader.push(&self.buf[..n]);
                }
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Ok(Got::Closed),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || e.raw_os_error() == Some(libc::EINTR) => {
                    return Err(format!("hang: no reply and no close within {} ms", self.hang_ms()))
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Stops writing, then reads every reply until the daemon closes; returns the replies.
    fn finish(&mut self) -> Result<Vec<Response>, String> {
        let _ = self.s.shutdown(std::net::Shutdown::Write);
        self.until_closed()
    }

    /// Reads every reply until the daemon closes, without closing first.
    fn until_closed(&mut self) -> Result<Vec<Response>, String> {
        let mut got = Vec::new();
        loop {
            match self.next()? {
                Got::Reply(r) => got.push(r),
                Got::Closed => return Ok(got),
            }
        }
    }
}

/// One worker: a connection at a time.
struct Worker<'a> {
    plan: &'a Plan,
    tally: &'a Tally,
    rng: Rng,
    aim: Aim,
}

impl Worker<'_> {
    fn input(&self) {
        Tally::add(&self.tally.inputs, 1);
    }

    fn episode(&mut self) -> Result<(), String> {
        let mut c = Conn::open(self.plan)?;
        self.aim.leases.clear();
        let n = self.tally.connections.fetch_add(1, Ordering::Relaxed);
        let r = if self.rng.chance(5) { self.opening(&mut c) } else { self.session(&mut c) };
        r.map_err(|e| format!("its connection {n}: {e}"))
    }

    /// The daemon must close the connection now, having sent `expect` replies at most (all errors).
    fn expect_drop(&mut self, c: &mut Conn, what: &str) -> Result<(), String> {
        let got = c.until_closed().map_err(|e| format!("after {what}: {e}"))?;
        if let Some(r) = got.iter().find(|r| !matches!(r, Response::Error { .. })) {
            return Err(format!("after {what} the daemon answered {}", short(r)));
        }
        self.count_replies(&got);
        Tally::add(&self.tally.dropped, 1);
        Ok(())
    }

    /// Whatever came after bytes that may mean anything: well-formed replies, then the end.
    fn expect_anything(&mut self, c: &mut Conn, what: &str) -> Result<(), String> {
        let got = c.finish().map_err(|e| format!("after {what}: {e}"))?;
        self.count_replies(&got);
        Ok(())
    }

    fn count_replies(&self, got: &[Response]) {
        Tally::add(&self.tally.replies, got.len() as u64);
        let refused = got.iter().filter(|r| matches!(r, Response::Error { .. })).count();
        Tally::add(&self.tally.refusals, refused as u64);
    }

    /// An episode that opens with something other than a proper `Hello`.
    fn opening(&mut self, c: &mut Conn) -> Result<(), String> {
        let r = &mut self.rng;
        let good = gen::framed(&gen::hello(r, true));
        match r.below(6) {
            0 => {
                let req = self.aim.request(r, self.plan.privileged);
                c.send(&gen::framed(&req))?;
                self.input();
                self.version_error(c, "a request before Hello")
            }
            1 => {
                let bad = gen::framed(&gen::hello(r, false));
                c.send(&bad)?;
                self.input();
                self.version_error(c, "a Hello of another version")
            }
            2 => {
                c.send(&gen::oversized(r))?;
                self.input();
                self.expect_drop(c, "an oversized first frame")
            }
            3 => {
                c.send(&gen::truncated(r, &good))?;
                self.input();
                let got = c.finish()?;
                match got.is_empty() {
                    true => Ok(()),
                    false => Err(format!("a truncated Hello was answered: {}", short(&got))),
                }
            }
            4 => {
                c.send(&gen::malformed(r, &good))?;
                self.input();
                self.expect_drop(c, "a malformed first frame")
            }
            _ => {
                c.send(&gen::mangled(r, &good))?;
                self.input();
                self.expect_anything(c, "a mangled Hello")
            }
        }
    }

    fn version_error(&mut self, c: &mut Conn, what: &str) -> Result<(), String> {
        let got = c.until_closed().map_err(|e| format!("after {what}: {e}"))?;
        match got.as_slice() {
            [Response::Error { kind: ErrorKind::VersionMismatch, .. }] => {
                self.count_replies(&got);
                Tally::add(&self.tally.dropped, 1);
                Ok(())
            }
            other => Err(format!("after {what} the daemon answered {} (expected one VersionMismatch)", short(&other))),
        }
    }

    /// A greeted connection: well-formed requests, then a hostile (or clean) end.
    fn session(&mut self, c: &mut Conn) -> Result<(), String> {
        c.send(&gen::framed(&gen::hello(&mut self.rng, true)))?;
        self.input();
        match c.next()? {
            Got::Reply(Response::Hello { .. }) => Tally::add(&self.tally.replies, 1),
            Got::Reply(other) => return Err(format!("Hello answered with {}", short(&other))),
            Got::Closed => return Err("the daemon closed a connection after a proper Hello".into()),
        }
        let n = 1 + self.rng.below(200);
        for _ in 0..n {
            if self.tally.inputs.load(Ordering::Relaxed) >= self.plan.inputs {
                break;
            }
            self.exchange(c)?;
        }
        self.tail(c)
    }

    /// One to four well-formed requests in one write (rarely a second `Hello`, sometimes with descriptors
    /// attached), and their replies.
    fn exchange(&mut self, c: &mut Conn) -> Result<(), String> {
        let r = &mut self.rng;
        let k = if r.chance(8) { 2 + r.below(3) } else { 1 };
        let reqs: Vec<Request> = (0..k)
            .map(|_| {
                if r.chance(50) {
                    let good = r.chance(2);
                    gen::hello(r, good)
                } else {
                    self.aim.request(r, self.plan.privileged)
                }
            })
            .collect();
        let mut reqs = reqs;
        let mut bytes: Vec<u8> = reqs.iter().flat_map(gen::framed).collect();
        if reqs.len() > 1 && bytes.len() > PIPELINE_BYTES {
            // The daemon reads the next request only once the previous reply was read: a client that writes more
            // than the socket buffer holds before it reads waits on the daemon that waits on it, until the
            // request timeout drops it (one reply outstanding by design, issue 16 item 3).
            reqs.truncate(1);
            bytes = gen::framed(&reqs[0]);
        }
        if r.chance(40) {
            let fds = 1 + r.below(shmbus_os::MAX_FDS);
            c.send_with_fds(&bytes, fds)?;
        } else {
            c.send(&bytes)?;
        }
        Tally::add(&self.tally.inputs, k as u64);
        for req in &reqs {
            match c.next()? {
                Got::Reply(resp) => self.check(req, resp)?,
                Got::Closed => return Err(format!("the daemon closed a well-behaved connection after {}", short(req))),
            }
        }
        Ok(())
    }

    /// Checks that `resp` answers `req`, and learns from it.
    fn check(&mut self, req: &Request, resp: Response) -> Result<(), String> {
        Tally::add(&self.tally.replies, 1);
        let fits = match (&resp, req) {
            (Response::Error { .. }, _) => {
                Tally::add(&self.tally.refusals, 1);
                true
            }
            (Response::Lease(l), Request::OpenPublisher { topic, .. } | Request::OpenSubscriber { topic, .. }) => {
                if !self.plan.privileged && *topic == self.plan.protected {
                    return Err(format!("an unprivileged peer was granted a lease on {topic:?}"));
                }
                Tally::add(&self.tally.leases, 1);
                self.aim.leases.push(l.lease);
                let slot = match l.role {
                    Role::Publisher { slot } | Role::Subscriber { slot, .. } => slot,
                };
                if self.aim.grants.len() >= 64 {
                    self.aim.grants.remove(0);
                }
                let resume = Resume { generation: l.generation, slot, token: l.resume_token };
                self.aim.grants.push((l.topic.clone(), resume));
                l.topic == *topic
            }
            (Response::Done, Request::CreateTopic { .. } | Request::DeleteTopic { .. }) => self.plan.privileged,
            (Response::Done, Request::Close { lease }) => {
                let mine = self.aim.leases.contains(lease);
                self.aim.leases.retain(|l| l != lease);
                mine
            }
            (Response::Topics(_), Request::ListTopics) | (Response::Stats(_), Request::Stats { .. }) => true,
            (Response::TopicsPage { .. }, Request::ListTopicsPage { .. })
            | (Response::StatsPage { .. }, Request::StatsPage { .. }) => true,
            // Only admins see what is no topic (an unprivileged peer administers no name here).
            (Response::Invalid { objects, .. }, Request::ListInvalid) => self.plan.privileged || objects.is_empty(),
            _ => false,
        };
        match fits {
            true => Ok(()),
            false => Err(format!("{} answered with {}", short(req), short(&resp))),
        }
    }

    /// How a greeted connection ends: cleanly, or with a hostile last input.
    fn tail(&mut self, c: &mut Conn) -> Result<(), String> {
        let r = &mut self.rng;
        let req = self.aim.request(r, self.plan.privileged);
        let valid = gen::framed(&req);
        if r.chance(self.plan.slow_every) {
            c.send(&gen::truncated(r, &valid))?;
            self.input();
            return self.expect_drop(c, "a frame never finished");
        }
        match r.below(7) {
            0 => {
                let got = c.finish()?;
                match got.is_empty() {
                    true => Ok(()),
                    false => Err(format!("replies to nothing: {}", short(&got))),
                }
            }
            1 => {
                c.send(&gen::oversized(r))?;
                self.input();
                self.expect_drop(c, "an oversized frame")
            }
            2 => {
                c.send(&gen::malformed(r, &valid))?;
                self.input();
                self.expect_drop(c, "a malformed frame")
            }
            3 => {
                c.send_with_fds(&valid, shmbus_os::MAX_FDS + 1 + r.below(8))?;
                self.input();
                self.expect_drop(c, "a frame with too many descriptors")
            }
            4 => {
                c.send(&gen::truncated(r, &valid))?;
                self.input();
                let got = c.finish()?;
                match got.is_empty() {
                    true => Ok(()),
                    false => Err(format!("a truncated frame was answered: {}", short(&got))),
                }
            }
            _ => {
                c.send(&gen::mangled(r, &valid))?;
                self.input();
                self.expect_anything(c, "a mangled frame")
            }
        }
    }
}

/// `x` for a message, cut to 300 characters (requests may carry megabyte names).
fn short(x: &impl std::fmt::Debug) -> String {
    let s = format!("{x:?}");
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}
