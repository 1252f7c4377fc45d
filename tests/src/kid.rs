//! A helper process under test (`pipe-child`): stdout read line by line, stderr kept for diagnostics, killed
//! and reaped on drop.

use crate::peers::{collect, die_with_parent, read_lines};
use bus_client::pipe::PipeCommand;
use bus_client::{Message, RecvError, Subscriber};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound on any one wait of a test.
pub const WAIT: Duration = Duration::from_secs(90);

/// A child under test: stdout read line by line, stderr kept for diagnostics, killed and reaped on drop.
pub struct Kid {
    name: String,
    /// The process.
    pub child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

/// The helper binary `exe` with `args`: stdin null, stdout and stderr piped, killed when this process dies.
pub fn helper(exe: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    cmd
}

impl Kid {
    /// Spawns `cmd` and watches it.
    pub fn spawn(name: &str, cmd: PipeCommand) -> Kid {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Kid::watch(name, child)
    }

    /// Watches a spawned child.
    pub fn watch(name: &str, mut child: Child) -> Kid {
        let rx = read_lines(child.stdout.take().expect("piped stdout"));
        let stderr = child.stderr.take().map_or_else(Default::default, collect);
        Kid { name: name.to_string(), child, lines: rx, seen: Vec::new(), stderr }
    }

    /// What it said so far, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!("{}: stdout so far {:?}; stderr {:?}", self.name, self.seen, self.stderr.lock().unwrap())
    }

    /// The next line starting with `prefix` (earlier lines are kept for diagnostics).
    pub fn line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                    assert!(!l.starts_with("error"), "{}", self.diagnostics());
                }
                Err(e) => panic!("no line {prefix:?} ({e:?}); {}", self.diagnostics()),
            }
        }
    }

    /// Waits (bounded by [`WAIT`]) for it to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "{} did not exit; {}", self.name, self.diagnostics());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for it to exit successfully.
    pub fn expect_success(&mut self) {
        let st = self.wait();
        assert!(st.success(), "{} exited with {st}; {}", self.name, self.diagnostics());
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process we did not spawn (a grandchild), killed on drop in case the test fails before it exits.
pub struct Orphan(pub i32);

impl Drop for Orphan {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; at worst the process is already gone.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// The next message of `sub`, or `None` once its topic is closed; any other error (a timeout after `wait`
/// included) fails the test.
pub fn recv_until_closed(sub: &mut Subscriber, wait: Duration) -> Option<Message<'_>> {
    match sub.recv_timeout(wait) {
        Ok(m) => Some(m),
        Err(RecvError::Closed) => None,
        Err(e) => panic!("{e}"),
    }
}
