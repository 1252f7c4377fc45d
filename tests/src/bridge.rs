//! A real `shmbus-bridge` process for the two-bus tests: its own log and stats file, killed on drop.

use crate::daemon::{binary, TestDaemon};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on the loopback (bound, read, released: a race with other programs is possible but rare).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// A bridge under test, attached to one test daemon.
pub struct TestBridge {
    name: String,
    args: Vec<OsString>,
    /// Its log (stderr), appended across restarts.
    pub log_path: PathBuf,
    /// Its stats file.
    pub stats_path: PathBuf,
    child: Option<Child>,
}

impl TestBridge {
    /// Starts `it-bridge` for `daemon` with `--id name`, a stats file, and `args` (patterns, endpoints).
    pub fn start(name: &str, daemon: &TestDaemon, args: &[&str]) -> TestBridge {
        let log_path = daemon.path(&format!("bridge-{name}.log"));
        let stats_path = daemon.path(&format!("bridge-{name}.json"));
        let mut all: Vec<OsString> = vec!["--id".into(), name.into(), "--socket".into(), daemon.socket.clone().into()];
        all.extend(["--stats-file".into(), stats_path.clone().into_os_string(), "--stats-interval".into(), "1".into()]);
        all.extend(args.iter().map(OsString::from));
        let mut b = TestBridge { name: name.into(), args: all, log_path, stats_path, child: None };
        b.spawn();
        b
    }

    /// Starts the process (again), and waits until it writes its first stats file.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "bridge {} already running", self.name);
        let _ = std::fs::remove_file(&self.stats_path);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("bridge log file");
        let child = Command::new(binary("it-bridge"))
            .args(&self.args)
            .env("RUST_LOG", "info,zenoh=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn it-bridge");
        self.child = Some(child);
        self.eventually("the bridge never wrote its stats file", |b| b.stats().is_some());
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` to the process (SIGSTOP/SIGCONT: a remote host that hangs).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The counters of the stats file (`None` before the first write).
    pub fn stats(&self) -> Option<HashMap<String, u64>> {
        let text = std::fs::read_to_string(&self.stats_path).ok()?;
        let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
        let mut out = HashMap::new();
        for field in body.split(',') {
            let (k, v) = field.split_once(':')?;
            out.insert(k.trim_matches('"').to_string(), v.parse().ok()?);
        }
        Some(out)
    }

    /// One counter (0 before the first write).
    pub fn counter(&self, name: &str) -> u64 {
        self.stats().and_then(|s| s.get(name).copied()).unwrap_or(0)
    }

    /// Polls `f` until true, bounded at 30 s (a hang guard); fails with `what` and the log.
    pub fn eventually(&mut self, what: &str, mut f: impl FnMut(&mut TestBridge) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f(self) {
            assert!(self.alive(), "bridge {} exited; log:\n{}", self.name, self.log());
            assert!(Instant::now() < deadline, "{what} (bridge {}); log:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops with SIGTERM and waits (bounded) for a clean exit; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else { return true };
        // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match c.try_wait() {
                Ok(Some(st)) => return st.success(),
                _ if Instant::now() > deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What clients reported about `topic` on `bus` (`shmbus stats`: a bridge's remote subscribers and counters);
/// empty when the stats cannot be read.
pub fn reported(bus: &bus_client::Bus, topic: &str) -> Vec<bus_client::ReportWire> {
    bus.stats(Some(topic)).ok().and_then(|s| s.into_iter().next()).map(|t| t.reports).unwrap_or_default()
}

/// Counter `name` of report `r` (0 when not reported: the bridge reports nonzero counters only).
pub fn reported_counter(r: &bus_client::ReportWire, name: &str) -> u64 {
    r.counters.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v)
}

/// Creates `topic` on `bus` with `capacity` entries of at most 512 bytes (the two-bus tests' geometry).
pub fn create(bus: &bus_client::Bus, topic: &str, capacity: u32) {
    let spec = bus_client::TopicSpec { capacity: Some(capacity), max_message: Some(512), ..Default::default() };
    bus.create_topic(topic, spec).expect("create topic");
}

/// Publishes a marker on `from`'s `warm` until `to`'s subscriber sees one: both Zenoh sessions are linked and
/// the import subscription has reached the exporter. Bounded at 30 s (a hang guard).
pub fn wait_linked(from: &bus_client::Bus, to: &bus_client::Bus, warm: &str) {
    let mut sub = to.subscriber_builder(warm).lossy().open().expect("subscribe warm-up");
    let mut p = from.publisher(warm).expect("publish warm-up");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = p.try_send(b"warm");
        if sub.recv_timeout(Duration::from_millis(50)).is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "the bridges never linked ({warm})");
    }
}
