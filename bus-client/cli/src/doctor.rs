//! `shmbus doctor`: how a client finds its daemon, and whether anything on the way is unsafe.

use anyhow::bail;
use bus_client::discovery::{self, Candidate};
use bus_client::{Bus, ConnectError, Transport};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn run(socket: Option<PathBuf>) -> anyhow::Result<()> {
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
    let target = candidates.iter().find(|c| c.path == found.path);
    match target {
        Some(c) if c.exists && c.problem.is_none() => match probe(&c.path) {
            Ok(daemon) => println!("daemon at {}: {daemon}", c.path.display()),
            Err(e @ ConnectError::UntrustedDaemon { .. }) => unsafe_found.push(e.to_string()),
            Err(e) => println!("daemon at {}: not reachable: {e}", c.path.display()),
        },
        Some(c) if c.exists => println!("a client refuses {}: its directory is unsafe", c.path.display()),
        _ => println!("no daemon socket found; a client would try {}", found.path.display()),
    }
    if unsafe_found.is_empty() {
        println!("nothing unsafe found");
        return Ok(());
    }
    for u in &unsafe_found {
        println!("UNSAFE: {u}");
    }
    bail!("found {} unsafe socket location(s); remove them or fix their owner and mode", unsafe_found.len())
}

fn dir_of(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("/"))
}

/// Connects to `path` and says who answered (the client's own credential check applies).
fn probe(path: &Path) -> Result<String, ConnectError> {
    let bus = Bus::builder()
        .socket(path)
        .auto_reconnect(false)
        .request_timeout(Duration::from_secs(2))
        .transport(Transport::Shm)
        .fallback_to_pipes(false)
        .connect()?;
    Ok(bus.daemon().unwrap_or_default())
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
