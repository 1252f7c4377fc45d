//! A real `shmbusd` for integration tests: its own socket and shm prefix, stopped and swept on drop.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Path of a binary built next to the test executable (`target/<profile>/<name>`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("deps dir").parent().expect("profile dir");
    let p = dir.join(name);
    assert!(p.exists(), "{} is not built (run the tests through `cargo test --workspace`)", p.display());
    p
}

/// A daemon under test.
pub struct TestDaemon {
    /// Its control socket.
    pub socket: PathBuf,
    /// Its shm prefix (unique per test).
    pub prefix: String,
    /// Scratch directory (socket, config, log).
    pub dir: PathBuf,
    child: Option<Child>,
    config: Option<PathBuf>,
    cleanup: bool,
    env: Vec<(String, String)>,
    wrap: Vec<String>,
}

impl std::fmt::Debug for TestDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDaemon").field("socket", &self.socket).field("prefix", &self.prefix).finish()
    }
}

impl TestDaemon {
    /// Starts a daemon with `config` (TOML text, `None`: the embedded default) and `--cleanup-on-exit`.
    pub fn start(config: Option<&str>) -> TestDaemon {
        TestDaemon::start_with_env(config, &[])
    }

    /// Like [`TestDaemon::start`], with extra environment variables for the daemon (e.g. `NOTIFY_SOCKET`).
    pub fn start_with_env(config: Option<&str>, env: &[(&str, &str)]) -> TestDaemon {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        TestDaemon::launch(&format!("sit{}x{n}", std::process::id()), config, env)
    }

    /// Like [`TestDaemon::start`], the daemon run through the command `wrap` (e.g. `prlimit ... setpriv ...
    /// --`, which exec it: the daemon keeps the child's pid).
    pub fn start_wrapped(config: Option<&str>, wrap: &[&str]) -> TestDaemon {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut d = TestDaemon::prepare(&format!("sit{}x{n}", std::process::id()), config, &[]);
        d.wrap = wrap.iter().map(|s| s.to_string()).collect();
        d.spawn();
        d
    }

    /// Like [`TestDaemon::start`] under a given shm prefix (to find objects a test planted).
    pub fn start_with_prefix(prefix: &str, config: Option<&str>) -> TestDaemon {
        TestDaemon::launch(prefix, config, &[])
    }

    fn launch(prefix: &str, config: Option<&str>, env: &[(&str, &str)]) -> TestDaemon {
        let mut d = TestDaemon::prepare(prefix, config, env);
        d.spawn();
        d
    }

    fn prepare(prefix: &str, config: Option<&str>, env: &[(&str, &str)]) -> TestDaemon {
        let prefix = prefix.to_string();
        let dir = std::env::temp_dir().join(format!("shmbus-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        // The daemon refuses a socket directory others may write; keep it private whatever the umask.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod scratch");
        let config = config.map(|text| {
            let p = dir.join("shmbus.toml");
            std::fs::write(&p, text).expect("write config");
            p
        });
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let socket = dir.join("control.sock");
        TestDaemon { socket, prefix, dir, child: None, config, cleanup: true, env, wrap: Vec::new() }
    }

    /// Starts (again) the daemon process and waits until its socket accepts connections.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("shmbusd.log")).expect("log");
        let mut cmd = match self.wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(binary("it-shmbusd"));
                c
            }
            None => Command::new(binary("it-shmbusd")),
        };
        cmd.arg("--socket").arg(&self.socket).arg("--shm-prefix").arg(&self.prefix).arg("-v");
        if self.cleanup {
            cmd.arg("--cleanup-on-exit");
        }
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("spawn shmbusd"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("shmbusd exited early with {st}; log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "shmbusd did not come up; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Keep topics in /dev/shm when the daemon stops (restart tests); the fixture still sweeps them on drop.
    pub fn keep_topics_on_stop(&mut self) {
        self.cleanup = false;
    }

    /// Sends `sig` and waits (bounded) for the process to exit.
    ///
    /// # Panics
    /// If it has not exited 15 s later (it is killed first).
    pub fn stop_with(&mut self, sig: i32) {
        if !self.stop_within(sig) {
            panic!("shmbusd did not stop after signal {sig}; log:\n{}", self.log());
        }
    }

    /// Sends `sig` and waits up to 15 s for the process to exit, then kills it; returns whether it exited on
    /// `sig`. Never panics: `Drop` uses it, and a panic there while a failed test unwinds aborts the test process
    /// before the objects are swept (a daemon that would not stop left them all in /dev/shm).
    fn stop_within(&mut self, sig: i32) -> bool {
        let Some(mut c) = self.child.take() else { return true };
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
        unsafe { libc::kill(c.id() as i32, sig) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while c.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the daemon process still exists.
    pub fn alive(&self) -> bool {
        // SAFETY: signal 0 only checks that the process exists; the pid is our own unreaped child.
        self.pid().is_some_and(|p| unsafe { libc::kill(p as i32, 0) } == 0)
    }

    /// Sends SIGHUP (reload).
    pub fn reload(&self) {
        if let Some(c) = &self.child {
            // SAFETY: as in `stop_with`.
            unsafe { libc::kill(c.id() as i32, libc::SIGHUP) };
        }
    }

    /// Rewrites the configuration file (for reload tests).
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config.as_ref().expect("started with a config"), text).expect("write config");
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("shmbusd.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// A `shmbus` CLI command pointed at this daemon.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(binary("it-shmbus"));
        c.env("SHMBUS_SOCKET", &self.socket).env_remove("RUST_LOG");
        c
    }

    /// A client connected to this daemon.
    pub fn bus(&self) -> bus_client::Bus {
        bus_client::Bus::connect_to(&self.socket).expect("connect to the test daemon")
    }

    /// Names under this daemon's prefix still in /dev/shm.
    pub fn leftovers(&self) -> Vec<String> {
        crate::shm_fixture::leftovers(&self.prefix)
    }

    /// The metrics port from the daemon's log line `serving Prometheus metrics addr=127.0.0.1:P` (for a config
    /// with `metrics = "127.0.0.1:0"`), waited for as [`TestDaemon::eventually`] does.
    pub fn metrics_port(&self) -> u16 {
        let mut port = None;
        self.eventually("the daemon never said where it serves metrics", || {
            port = self.log().lines().find(|l| l.contains("serving Prometheus metrics")).and_then(|l| {
                let at = l.find("127.0.0.1:")? + "127.0.0.1:".len();
                l[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
            });
            port.is_some()
        });
        port.expect("eventually returned")
    }

    /// Polls `f` until it is true, bounded at 30 s (a hang guard, not a speed assertion); fails with `what` and
    /// the daemon's log.
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "{what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let stopped = self.stop_within(libc::SIGTERM);
        let log = if stopped { String::new() } else { self.log() };
        sweep(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.dir);
        if !stopped && !std::thread::panicking() {
            panic!("shmbusd did not stop after SIGTERM; log:\n{log}");
        }
    }
}

/// Unlinks every object (and any stray semaphore) under `prefix`, and its resume key, lease and lock files.
pub fn sweep(prefix: &str) {
    for name in crate::shm_fixture::leftovers(prefix) {
        let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
    }
    let _ = std::fs::remove_file(bus_daemon::resume_key::key_path(prefix));
    let _ = std::fs::remove_file(bus_daemon::lease_file::path(prefix));
    let _ = std::fs::remove_file(bus_daemon::remembered::path(prefix));
    // A daemon killed with SIGKILL cannot unlink its prefix lock file.
    let _ = std::fs::remove_file(bus_daemon::prefix_lock::lock_path(prefix));
}
