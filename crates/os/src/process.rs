//! Whether a process is still the one it was: its pid plus its start time, so a reused pid is not mistaken
//! for the process that held it.
//!
//! This is what the daemon's lease table trusts (issue 16 item 5): the kernel's own knowledge of a process,
//! which no other process can fake, unlike a byte lock on an object that many processes can write.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// A process identified by its pid and, where `/proc` shows it, its start time (field 22 of
/// `/proc/<pid>/stat`: clock ticks after boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessId {
    /// Process id (as the caller's pid namespace numbers it).
    pub pid: i32,
    /// Start time in clock ticks after boot; `None` when `/proc/<pid>/stat` could not be read.
    pub start: Option<u64>,
}

/// What `/proc/<pid>/stat` tells: the process state letter and the start time.
struct Stat {
    state: u8,
    start: u64,
}

/// Parses the fields of a `/proc/<pid>/stat` text after the command name (which is in parentheses and may
/// itself contain spaces and parentheses, so the text is cut at the last `)`).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Field 3 is the state; the start time is field 22, so 18 fields lie between them.
    let start = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start })
}

fn read_stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl ProcessId {
    /// Identifies process `pid` now. Call it while the process is known to be alive (for a socket peer: while
    /// it is connected), so the start time read is that process's.
    pub fn of(pid: i32) -> ProcessId {
        ProcessId { pid, start: read_stat(pid).map(|s| s.start) }
    }

    /// This process.
    pub fn current() -> ProcessId {
        ProcessId::of(std::process::id() as i32)
    }

    /// Whether the process may still run. `false` only on proof of death: no such pid (`ESRCH`), a zombie or
    /// dead state, or a different start time (the pid was reused). When nothing can be learnt (another
    /// user's process under `hidepid`, or pid 0: a socket peer in a pid namespace the caller cannot see) it
    /// counts as alive: a false "dead" would hand a live holder's slot to someone else, a false "alive" only
    /// delays a reclaim.
    pub fn alive(&self) -> bool {
        if self.pid <= 0 {
            return true;
        }
        if kill(Pid::from_raw(self.pid), None) == Err(Errno::ESRCH) {
            return false;
        }
        match read_stat(self.pid) {
            Some(s) if matches!(s.state, b'Z' | b'X' | b'x') => false,
            Some(s) => self.start.is_none_or(|t| t == s.start),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_command_name_with_spaces_and_parentheses() {
        let text = "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(text).expect("parses");
        assert_eq!(s.state, b'S');
        assert_eq!(s.start, 987654);
        assert!(parse_stat("1234 (x) S 1 2").is_none(), "too few fields");
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_it() {
        let me = ProcessId::current();
        assert!(me.start.is_some(), "/proc/self/stat is readable");
        assert!(me.alive());
        let other_start = ProcessId { start: me.start.map(|t| t + 1), ..me };
        assert!(!other_start.alive(), "same pid, another start time: the pid was reused");
        assert!(ProcessId { pid: 0, start: None }.alive(), "a pid we cannot see is not proven dead");
    }

    #[test]
    fn a_child_is_alive_while_it_runs_dead_as_a_zombie_and_after_reaping() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let id = ProcessId::of(child.id() as i32);
        assert!(id.start.is_some());
        assert!(id.alive());
        child.kill().expect("kill");
        // Not reaped yet: a zombie (or on its way to one) is dead.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while id.alive() {
            assert!(std::time::Instant::now() < deadline, "a killed child still looks alive");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(read_stat(id.pid).is_some_and(|s| s.state == b'Z'), "still a zombie: dead before it was reaped");
        child.wait().expect("reap");
        assert!(!id.alive());
    }
}
