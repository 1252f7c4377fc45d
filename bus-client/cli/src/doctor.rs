//! `shmbus doctor`: how a client finds its daemon, whether anything on the way is unsafe, the daemon's version and
//! uptime, and the host checks of [`crate::doctor_host`]. Exit code 0 when all is fine, 1 when anything is wrong.

use crate::args::DoctorArgs;
use crate::doctor_host::{Daemon, Finding};
use bus_client::discovery::{self, Candidate};
use bus_client::{Bus, ConnectError, Transport};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Problems found (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("found {0} problem(s); each PROBLEM line above says how to fix it")]
pub struct Problems(pub usize);

/// Reports the socket discovery, the daemon, and the host checks ([`crate::doctor_host`]); exit 0 when all is
/// fine, 1 when anything is wrong.
pub fn run(socket: Option<PathBuf>, a: DoctorArgs) -> anyhow::Result<()> {
    let trusted = discovery::trusted_uids();
    let daemon_user = match discovery::daemon_user() {
        Some(u) => format!("uid {u}"),
        None => {
            format!("none ({} is not set, no {:?} user)", discovery::DAEMON_USER_ENV, discovery::DEFAULT_DAEMON_USER)
        }
    };
    println!(
        "trusted daemon and directory owners: root, you (uid {}), daemon user: {daemon_user}",
        discovery::own_uid()
    );
    let ignored = discovery::ignored_env();
    if !ignored.is_empty() {
        println!("ignored in this set-user-ID or set-group-ID process: {}", ignored.join(", "));
    }
    let found = discovery::client_socket(socket.as_deref(), &trusted);
    let given = !found.discovered;
    let candidates =
        if given { vec![Candidate::inspect(&found.path, &trusted)] } else { discovery::client_candidates(&trusted) };
    println!("{}", if given { "socket given (--socket or SHMBUS_SOCKET):" } else { "candidates, in order:" });
    print!("{}", render(&candidates, &found.path));
    let mut unsafe_found: Vec<String> = candidates
        .iter()
        .filter_map(|c| c.problem.as_ref().map(|why| format!("{} is {why}", dir_of(&c.path).display())))
        .collect();
    let mut findings = Vec::new();
    let mut bus = None;
    let target = candidates.iter().find(|c| c.path == found.path);
    let unreachable = |why: String| {
        Finding::problem(
            why,
            "start the daemon (`systemctl start shmbusd`, or `shmbusd`), or point --socket / \
            SHMBUS_SOCKET at its socket"
                .into(),
        )
    };
    match target {
        Some(c) if c.exists && c.problem.is_none() => match probe(&c.path) {
            Ok(b) => {
                println!("daemon at {}: {}", c.path.display(), b.daemon().unwrap_or_default());
                bus = Some(b);
            }
            Err(e @ ConnectError::UntrustedDaemon { .. }) => unsafe_found.push(e.to_string()),
            Err(e) => {
                println!("daemon at {}: not reachable: {e}", c.path.display());
                findings.push(unreachable(format!("the daemon at {} is not reachable: {e}", c.path.display())));
            }
        },
        Some(c) if c.exists => println!("a client refuses {}: its directory is unsafe", c.path.display()),
        _ => {
            println!("no daemon socket found; a client would try {}", found.path.display());
            findings.push(unreachable(format!("no daemon socket found (a client would try {})", found.path.display())));
        }
    }
    if unsafe_found.is_empty() {
        println!("nothing unsafe found");
    }
    for u in &unsafe_found {
        println!("UNSAFE: {u}");
    }
    let info = bus.as_ref().map(|b| (b.daemon_info(), b.topics()));
    let (info, topics) = match info {
        Some((Ok(i), Ok(t))) => (Some(i), t),
        Some((Err(e), _)) | Some((_, Err(e))) => {
            findings.push(Finding::problem(
                format!("the daemon answered the handshake but not a request: {e}"),
                "see the daemon's log (`journalctl -u shmbusd`)".into(),
            ));
            (None, Vec::new())
        }
        None => (None, Vec::new()),
    };
    if let Some(i) = &info {
        findings.push(Finding::ok(format!(
            "daemon {} (pid {}, uid {}), up {}, prefix {:?}, {} topics, {} leases",
            i.version,
            i.pid,
            i.uid,
            uptime(i.uptime_ms),
            i.shm_prefix,
            i.topics,
            i.leases
        )));
    }
    let prefix = info.as_ref().map_or(a.prefix.clone(), |i| i.shm_prefix.clone());
    let daemon = info.as_ref().map(|info| Daemon { info, topics: &topics });
    findings.extend(crate::doctor_host::check(&prefix, daemon.as_ref()));
    println!("checks:");
    for f in &findings {
        print!("{}", f.render());
    }
    let problems = findings.iter().filter(|f| !f.ok).count() + unsafe_found.len();
    if problems == 0 {
        println!("all fine");
        return Ok(());
    }
    Err(Problems(problems).into())
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`.
fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {}s", s % 60),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn dir_of(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("/"))
}

/// Connects to `path` (the client's own credential check applies).
fn probe(path: &Path) -> Result<Bus, ConnectError> {
    Bus::builder()
        .socket(path)
        .auto_reconnect(false)
        .request_timeout(Duration::from_secs(2))
        .transport(Transport::Shm)
        .fallback_to_pipes(false)
        .connect()
}

fn render(candidates: &[Candidate], chosen: &Path) -> String {
    let rows: Vec<Vec<String>> = candidates
        .iter()
        .map(|c| {
            let (owner, mode) = match std::fs::metadata(dir_of(&c.path)) {
                Ok(m) => (format!("uid {}", m.uid()), format!("{:04o}", m.mode() & 0o7777)),
                Err(_) => ("-".into(), "-".into()),
            };
            let verdict = match (&c.problem, c.exists) {
                (Some(why), _) => format!("unsafe: directory is {why}"),
                (None, true) if c.path == chosen => "ok, used".into(),
                (None, true) => "ok".into(),
                (None, false) => "missing".into(),
            };
            vec![c.path.display().to_string(), yes_no(c.exists), owner, mode, verdict]
        })
        .collect();
    crate::table::render("  ", &["SOCKET", "EXISTS", "DIR OWNER", "DIR MODE", "VERDICT"], &rows)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes() {
        assert_eq!(uptime(12_300), "12s");
        assert_eq!(uptime(250_000), "4m 10s");
        assert_eq!(uptime(7_500_000), "2h 5m");
        assert_eq!(uptime(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
    }

    #[test]
    fn unsafe_candidates_say_why() {
        let ok = Candidate { path: "/run/shmbus/control.sock".into(), exists: true, problem: None };
        let bad = Candidate {
            path: "/tmp/shmbus-0/control.sock".into(),
            exists: true,
            problem: Some("owned by uid 65534".into()),
        };
        let s = render(&[ok.clone(), bad], &ok.path);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3, "{s}");
        assert!(lines[1].contains("ok, used"), "{s}");
        assert!(lines[2].contains("unsafe: directory is owned by uid 65534"), "{s}");
    }
}
