//! A second account for the trust tests: scratch directories (unique per test, removed on drop, whoever owns
//! them), and a listener run as `nobody` that plays a fake daemon and records what clients send it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The uid and gid of `nobody` (and `nogroup`).
pub const NOBODY: u32 = 65534;

/// Whether this process is root; otherwise prints why the calling test is skipped, so a skip is never a silent
/// pass.
pub fn root_or_skip(test: &str) -> bool {
    let root = shmbus_proto::trust::own_uid() == 0;
    if !root {
        println!("SKIPPED {test}: needs root to act as a second account (nobody)");
    }
    root
}

/// A unique scratch directory (mode 0700, root's), removed on drop with everything in it.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates `<tmp>/shmbus-trust-<pid>-<n>-<what>`.
    pub fn new(what: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("shmbus-trust-{}-{n}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).expect("scratch dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).expect("chmod scratch");
        Scratch(p)
    }

    /// A directory `name` inside, owned by `uid` with `mode`.
    pub fn dir(&self, name: &str, uid: u32, mode: u32) -> PathBuf {
        let d = self.0.join(name);
        std::fs::create_dir(&d).expect("mkdir");
        std::os::unix::fs::chown(&d, Some(uid), Some(uid)).expect("chown");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).expect("chmod");
        d
    }

    /// Opens the scratch directory itself to everyone's traversal (so `nobody` can reach what is inside).
    pub fn traversable(&self) {
        std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o711)).expect("chmod scratch");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake daemon: a Unix listener run as `nobody` (python3) that accepts connections, reads what the client
/// sends until it pauses, and appends the byte count of each connection to a log; killed on drop.
pub struct FakeDaemon {
    child: Child,
    log: PathBuf,
}

const LISTENER: &str = r#"
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
open(log + ".ready", "w").close()
while True:
    c, _ = s.accept()
    c.settimeout(2.0)
    try:
        n = len(c.recv(65536))
    except OSError:
        n = -1
    with open(log, "a") as f:
        f.write("%d\n" % n)
    c.close()
"#;

impl FakeDaemon {
    /// Listens on `socket` as `nobody`, logging to `log` (nobody must be able to create both).
    pub fn start(socket: &Path, log: &Path) -> FakeDaemon {
        let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        let child = Command::new(python)
            .arg("-c")
            .arg(LISTENER)
            .arg(socket)
            .arg(log)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn python3 as nobody");
        let mut f = FakeDaemon { child, log: log.to_path_buf() };
        let ready = PathBuf::from(format!("{}.ready", log.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            if let Ok(Some(st)) = f.child.try_wait() {
                panic!("the fake daemon exited with {st} before listening on {}", socket.display());
            }
            assert!(Instant::now() < deadline, "the fake daemon did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        f
    }

    /// Byte counts the fake received, one per connection so far.
    pub fn connections(&self) -> Vec<i64> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
