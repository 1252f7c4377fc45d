//! A private `shmbusd` for the shmbus transports: its own socket, shm prefix and topics, `--cleanup-on-exit`,
//! stopped and swept on drop (as `tests/src/daemon.rs` does for the integration tests).

use crate::measure::Mode;
use crate::multi::MAX_PEERS;
use crate::transport::shmbus_topics;
use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Messages in flight on each benchmark topic.
const CAPACITY: usize = 256;
/// Payload bytes in flight on a topic at most (unless a few messages of its size need more): 1 MiB messages
/// get 32 MiB, not 256 MiB.
const BUDGET_CAP: usize = 32 << 20;

/// A daemon started by the harness.
pub struct PrivateBus {
    /// Its control socket.
    pub socket: PathBuf,
    prefix: String,
    dir: PathBuf,
    child: Child,
}

/// The daemon binary built next to the harness (`target/<profile>/bench-shmbusd`).
fn binary() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.parent().map(|d| d.join("bench-shmbusd")).ok_or_else(|| io::Error::other("no exe dir"))?;
    if p.exists() {
        Ok(p)
    } else {
        Err(io::Error::other(format!("{} is not built (run through `cargo run -p shmbus-bench`)", p.display())))
    }
}

/// One `[[topic]]` table for messages of up to `size` bytes and `publishers` publishers.
fn topic(s: &mut String, name: &str, size: usize, publishers: u32, subscribers: u32) {
    let budget = (CAPACITY * size.max(64)).clamp(1 << 16, BUDGET_CAP).max(4 * size * publishers as usize);
    let _ = write!(
        s,
        "\n[[topic]]\nname = \"{name}\"\ncapacity = {CAPACITY}\nmax_message = {size}\n\
         payload_budget = {budget}\nmax_publishers = {publishers}\nmax_subscribers = {subscribers}\nmax_groups = 1\n"
    );
}

/// The daemon's configuration: two single-publisher topics per size of `pairs` (latency and throughput), and one
/// topic per multi-process scenario for each size of `multi` (up to [`MAX_PEERS`] publishers and subscribers).
fn config(pairs: &[usize], multi: &[usize]) -> String {
    let mut s = String::from("[daemon]\nauto_create = false\n");
    for &size in pairs {
        let (down, up) = shmbus_topics(size);
        for name in [down, up] {
            topic(&mut s, &name, size, 1, 2);
        }
    }
    for &size in multi {
        for mode in Mode::all().into_iter().filter(|m| m.is_multi()) {
            topic(&mut s, &crate::multi::topic(mode, size), size, MAX_PEERS, MAX_PEERS);
        }
    }
    s
}

impl PrivateBus {
    /// Starts a daemon with topics for `pairs` (two-process scenarios) and `multi` (multi-process scenarios)
    /// under a prefix unique to this process, and waits for its socket.
    pub fn start(pairs: &[usize], multi: &[usize]) -> io::Result<PrivateBus> {
        PrivateBus::with_config(&format!("shbench{}", std::process::id()), &config(pairs, multi))
    }

    /// Starts a daemon with the configuration `text` under shm prefix `prefix` (its scratch directory is named
    /// after it), and waits for its socket.
    pub fn with_config(prefix: &str, text: &str) -> io::Result<PrivateBus> {
        let dir = std::env::temp_dir().join(format!("shmbus-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        std::fs::write(dir.join("shmbus.toml"), text)?;
        let socket = dir.join("control.sock");
        let child = spawn(&dir, &socket, prefix)?;
        let mut bus = PrivateBus { socket, prefix: prefix.to_string(), dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&bus.socket).is_err() {
            if bus.child.try_wait()?.is_some() || Instant::now() > deadline {
                return Err(io::Error::other(format!("shmbusd did not come up; log:\n{}", bus.log())));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(bus)
    }

    /// Kills the daemon with `SIGKILL` (its topics stay in /dev/shm) and starts it again on the same prefix and
    /// socket; returns at once, before the new one answers.
    pub fn kill_and_restart(&mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        let _ = std::fs::remove_file(&self.socket);
        self.child = spawn(&self.dir, &self.socket, &self.prefix)?;
        Ok(())
    }

    /// Whether the daemon process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("shmbusd.log")).unwrap_or_default()
    }

    /// Its shm prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Bytes that topic `topic`'s objects (data and readers) occupy in `/dev/shm`.
    pub fn topic_bytes(&self, topic: &str) -> io::Result<u64> {
        crate::memory::shm_bytes(&format!("{}.{topic}", self.prefix))
    }

    /// The daemon's process id (for the watchdog).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `bench-shmbusd` on `socket` and `prefix` with `dir/shmbus.toml` and `--cleanup-on-exit`, its log
/// appended to `dir/shmbusd.log`.
fn spawn(dir: &std::path::Path, socket: &std::path::Path, prefix: &str) -> io::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("shmbusd.log"))?;
    Command::new(binary()?)
        .arg("--socket")
        .arg(socket)
        .arg("--shm-prefix")
        .arg(prefix)
        .arg("--config")
        .arg(dir.join("shmbus.toml"))
        .arg("--cleanup-on-exit")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        sweep(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Unlinks whatever a stopped daemon left under `prefix` (topics, resume key, lease table, prefix lock).
fn sweep(prefix: &str) {
    let mine = format!("{prefix}.");
    if let Ok(rd) = std::fs::read_dir("/dev/shm") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&mine) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_file(bus_daemon::resume_key::key_path(prefix));
    let _ = std::fs::remove_file(bus_daemon::lease_file::path(prefix));
    let _ = std::fs::remove_file(bus_daemon::prefix_lock::lock_path(prefix));
}
