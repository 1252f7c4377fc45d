//! Supervising helper processes from a test: spawn, read their stdout line by line, wait with a deadline, and
//! SIGKILL whatever is still running when the supervisor is dropped (a failed or timed-out test never leaves a
//! process behind, and never hangs).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Index of a spawned peer in its [`Peers`].
pub type PeerId = usize;

struct Peer {
    name: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

/// A set of helper processes with one deadline for all of them.
pub struct Peers {
    exe: String,
    peers: Vec<Peer>,
    deadline: Instant,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").field("count", &self.peers.len()).finish()
    }
}

/// Parses `key=value` words of a line into a map (words without `=` are ignored).
pub fn fields(line: &str) -> HashMap<String, String> {
    line.split_whitespace().filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The `u64` value of `key` in a `key=value` line. Panics with the line when missing.
pub fn field_u64(line: &str, key: &str) -> u64 {
    fields(line).get(key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no numeric {key}= in line {line:?}"))
}

/// Makes the child SIGKILLed when the thread that spawns it dies (`PR_SET_PDEATHSIG`), so a test that fails or
/// hangs never leaves a helper behind.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Reads `out` line by line on a thread of its own; the lines arrive on the returned channel, which disconnects
/// at end of file.
pub fn read_lines(out: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects everything `err` produces (a child's stderr) on a thread of its own, for diagnostics.
pub fn collect(mut err: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

impl Peers {
    /// A supervisor running `exe` (the helper binary); every wait fails once `timeout` from now has passed.
    pub fn new(exe: &str, timeout: Duration) -> Peers {
        Peers { exe: exe.to_string(), peers: Vec::new(), deadline: Instant::now() + timeout }
    }

    /// The overall deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Starts a peer called `name` with `args`. Its stdout is read line by line, its stderr collected for
    /// diagnostics. The peer is killed if the spawning thread dies (`PR_SET_PDEATHSIG`).
    pub fn spawn(&mut self, name: &str, args: &[String]) -> PeerId {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name} ({}): {e}", self.exe));
        let rx = read_lines(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        self.peers.push(Peer { name: name.to_string(), child, lines: rx, seen: Vec::new(), stderr, status: None });
        self.peers.len() - 1
    }

    /// The process id of a peer.
    pub fn pid(&self, id: PeerId) -> u32 {
        self.peers[id].child.id()
    }

    /// Every stdout line of the peer read so far.
    pub fn lines(&self, id: PeerId) -> &[String] {
        &self.peers[id].seen
    }

    /// Waits for a stdout line of the peer starting with `prefix` and returns it. Panics (with diagnostics of
    /// every peer) when the peer exits first or the deadline passes.
    pub fn wait_line(&mut self, id: PeerId, prefix: &str) -> String {
        loop {
            if let Some(l) = self.peers[id].seen.iter().find(|l| l.starts_with(prefix)) {
                return l.clone();
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.fail(&format!("timed out waiting for {:?} from {}", prefix, self.peers[id].name));
            }
            match self.peers[id].lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(l) => self.peers[id].seen.push(l),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.reap(id);
                    self.fail(&format!("{} exited ({status:?}) before printing {prefix:?}", self.peers[id].name));
                }
            }
        }
    }

    /// Waits for the peer to exit (within the deadline) and returns its status; its remaining stdout is read.
    pub fn wait_exit(&mut self, id: PeerId) -> ExitStatus {
        loop {
            if let Some(st) = self.peers[id].child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
                self.peers[id].status = Some(st);
                self.drain(id);
                return st;
            }
            if Instant::now() >= self.deadline {
                self.fail(&format!("timed out waiting for {} to exit", self.peers[id].name));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the peer to exit successfully and returns its line starting with `done`.
    pub fn expect_done(&mut self, id: PeerId) -> String {
        let st = self.wait_exit(id);
        if !st.success() {
            self.fail(&format!("{} failed: {st:?}", self.peers[id].name));
        }
        self.wait_line(id, "done")
    }

    /// SIGKILLs the peer and reaps it (after this it is proven dead). Returns its status.
    pub fn kill(&mut self, id: PeerId) -> ExitStatus {
        let _ = self.peers[id].child.kill();
        let st = self.reap(id);
        assert_eq!(st.signal(), Some(libc::SIGKILL), "{} was not killed by SIGKILL: {st:?}", self.peers[id].name);
        st
    }

    /// SIGKILLs the peer unless it already finished on its own (a race the caller cannot close: it may exit
    /// between a `running` check and the signal). Returns `true` if the signal killed it; a peer that exited
    /// first must have succeeded, with its `done` line.
    pub fn kill_unless_done(&mut self, id: PeerId) -> bool {
        let _ = self.peers[id].child.kill();
        let st = self.reap(id);
        if st.signal() == Some(libc::SIGKILL) {
            return true;
        }
        if !st.success() {
            self.fail(&format!("{} failed before it could be killed: {st:?}", self.peers[id].name));
        }
        self.wait_line(id, "done");
        false
    }

    fn reap(&mut self, id: PeerId) -> ExitStatus {
        let st = self.peers[id].child.wait().unwrap_or_else(|e| panic!("waitpid: {e}"));
        self.peers[id].status = Some(st);
        self.drain(id);
        st
    }

    fn drain(&mut self, id: PeerId) {
        // The reader thread ends at EOF, shortly after exit: read up to it (not up to a pause in the output, which
        // a loaded machine can make longer than any fixed gap), within the deadline.
        let p = &mut self.peers[id];
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(500));
            match p.lines.recv_timeout(left) {
                Ok(l) => p.seen.push(l),
                Err(_) => break,
            }
        }
    }

    /// Polls `cond` every few milliseconds until it holds; fails the test (with diagnostics) at the deadline.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        while !cond() {
            if Instant::now() >= self.deadline {
                self.fail(&format!("timed out waiting until {what}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The name and status of a peer that failed (exited non-zero, or died of a signal other than the SIGKILL a
    /// test sends), without reaping it: for waits that should stop at once when a peer has failed.
    pub fn failed_peer(&self) -> Option<String> {
        for p in self.peers.iter().filter(|p| p.status.is_none()) {
            // SAFETY: an all-zero siginfo_t is a valid value; waitid fills it in.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the child unreaped.
            let r = unsafe { libc::waitid(libc::P_PID, p.child.id(), &mut info, flags) };
            // SAFETY: waitid filled `info` in for a child that changed state (si_pid != 0).
            let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
            let fine =
                (code == libc::CLD_EXITED && status == 0) || (code == libc::CLD_KILLED && status == libc::SIGKILL);
            if r == 0 && pid != 0 && !fine {
                return Some(format!("{} (pid {pid}) ended: code {code}, status {status}", p.name));
            }
        }
        None
    }

    /// Whether the peer is still running (not exited, not reaped).
    pub fn running(&mut self, id: PeerId) -> bool {
        let p = &mut self.peers[id];
        if p.status.is_some() {
            return false;
        }
        match p.child.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                p.status = Some(st);
                false
            }
            Err(_) => false,
        }
    }

    /// Everything known about every peer, for a failure message.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        for p in &self.peers {
            let tail: Vec<&String> = p.seen.iter().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            let err = p.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let err: String = err.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
            s.push_str(&format!(
                "--- {} (pid {}, status {:?})\n  stdout tail: {tail:?}\n  stderr: {err}\n",
                p.name,
                p.child.id(),
                p.status
            ));
        }
        s
    }

    /// Panics with `why` and the diagnostics of every peer (dropping the supervisor then kills them all).
    pub fn fail(&self, why: &str) -> ! {
        panic!("{why}\n{}", self.diagnostics())
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for p in &mut self.peers {
            if p.status.is_none() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}
