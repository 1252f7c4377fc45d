//! Names: topic-name rules, shared-memory object and semaphore names, and control-socket discovery.
//!
//! Objects are `/<prefix>.<topic>.data` and `/<prefix>.<topic>.readers`; semaphores
//! `/<prefix>.<topic>.s<slot>` (subscriber slots) and `/<prefix>.<topic>.p<slot>` (publisher slots), visible in
//! /dev/shm as `sem.<prefix>.<topic>.s<slot>`. Several buses can run side by side under different prefixes.

use std::path::{Path, PathBuf};

/// Default shared-memory prefix.
pub const DEFAULT_PREFIX: &str = "shmbus";
/// Environment variable naming the control socket.
pub const SOCKET_ENV: &str = "SHMBUS_SOCKET";
/// Longest topic name.
pub const MAX_TOPIC_LEN: usize = 64;

/// A topic or prefix name that breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {name:?}: {why}")]
pub struct NameError {
    /// "topic name" or "shm prefix".
    pub what: &'static str,
    /// The offending name.
    pub name: String,
    /// The rule it breaks.
    pub why: &'static str,
}

/// Checks a topic name: `[A-Za-z0-9._-]{1,64}`, not `.` or `..`.
pub fn validate_topic(name: &str) -> Result<(), NameError> {
    let err = |why| Err(NameError { what: "topic name", name: name.to_string(), why });
    if name.is_empty() || name.len() > MAX_TOPIC_LEN {
        return err("must be 1 to 64 characters");
    }
    if name == "." || name == ".." {
        return err("must not be . or ..");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return err("may only contain letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Checks a shared-memory prefix: `[A-Za-z0-9_-]{1,32}` (no dots: they separate the name's parts).
pub fn validate_prefix(prefix: &str) -> Result<(), NameError> {
    let err = |why| Err(NameError { what: "shm prefix", name: prefix.to_string(), why });
    if prefix.is_empty() || prefix.len() > 32 {
        return err("must be 1 to 32 characters");
    }
    if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return err("may only contain letters, digits, '_' and '-'");
    }
    Ok(())
}

/// Name of a topic's data object.
pub fn data_object(prefix: &str, topic: &str) -> String {
    format!("/{prefix}.{topic}.data")
}

/// Name of a topic's readers object.
pub fn readers_object(prefix: &str, topic: &str) -> String {
    format!("/{prefix}.{topic}.readers")
}

/// Prefix of a topic's semaphore names, as carried in a lease.
pub fn sem_prefix(prefix: &str, topic: &str) -> String {
    format!("/{prefix}.{topic}")
}

/// Name of the semaphore of subscriber slot `slot` (`publisher == false`) or publisher slot `slot`.
pub fn sem_name(sem_prefix: &str, publisher: bool, slot: u32) -> String {
    format!("{sem_prefix}.{}{slot}", if publisher { 'p' } else { 's' })
}

/// Which object of a topic a name designates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// The data object.
    Data,
    /// The readers object.
    Readers,
}

/// Parses an object name (with leading '/') under `prefix` into its topic and kind.
pub fn parse_object(prefix: &str, name: &str) -> Option<(String, ObjectKind)> {
    let rest = name.strip_prefix('/')?.strip_prefix(prefix)?.strip_prefix('.')?;
    let (topic, kind) = if let Some(t) = rest.strip_suffix(".data") {
        (t, ObjectKind::Data)
    } else {
        (rest.strip_suffix(".readers")?, ObjectKind::Readers)
    };
    validate_topic(topic).ok()?;
    Some((topic.to_string(), kind))
}

/// Parses a semaphore name under `prefix` into (topic, publisher?, slot).
pub fn parse_sem(prefix: &str, name: &str) -> Option<(String, bool, u32)> {
    let rest = name.strip_prefix('/')?.strip_prefix(prefix)?.strip_prefix('.')?;
    let (topic, last) = rest.rsplit_once('.')?;
    let publisher = match last.as_bytes().first()? {
        b'p' => true,
        b's' => false,
        _ => return None,
    };
    let slot = last[1..].parse().ok()?;
    validate_topic(topic).ok()?;
    Some((topic.to_string(), publisher, slot))
}

/// The places a control socket may be, most specific first: `$XDG_RUNTIME_DIR/shmbus/control.sock`,
/// `/run/shmbus/control.sock`, then `<tmp>/shmbus-<uid>/control.sock`.
pub fn socket_candidates(xdg_runtime_dir: Option<&Path>, uid: u32, tmp: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(x) = xdg_runtime_dir.filter(|p| p.is_absolute()) {
        v.push(x.join("shmbus").join("control.sock"));
    }
    v.push(PathBuf::from("/run/shmbus/control.sock"));
    v.push(tmp.join(format!("shmbus-{uid}")).join("control.sock"));
    v
}

fn env_candidates() -> Vec<PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let uid = nix::unistd::getuid().as_raw();
    socket_candidates(xdg.as_deref(), uid, &std::env::temp_dir())
}

/// Where the daemon listens: `explicit` (from `--socket`), else `$SHMBUS_SOCKET`, else the first candidate whose
/// directory exists or can be created (the root-only `/run/shmbus` is skipped for other users).
pub fn daemon_socket(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let root = nix::unistd::getuid().is_root();
    let cands = env_candidates();
    for c in &cands {
        let dir = c.parent().expect("candidate has a directory");
        if dir.starts_with("/run/shmbus") && !root && !dir.exists() {
            continue;
        }
        if dir.exists() || std::fs::create_dir_all(dir).is_ok() {
            return c.clone();
        }
    }
    cands.last().cloned().expect("at least one candidate")
}

/// Where a client connects: `explicit`, else `$SHMBUS_SOCKET`, else the first candidate that exists (falling back
/// to the first candidate, so the error names a sensible path).
pub fn client_socket(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let cands = env_candidates();
    cands.iter().find(|c| c.exists()).cloned().unwrap_or_else(|| cands[0].clone())
}

/// First byte offset of the lease lock bytes in a readers object (far beyond its end: OFD locks may cover bytes
/// past EOF, and these never collide with data).
pub const LOCK_BASE: u64 = 1 << 40;

/// The byte of the readers object a lease holder keeps locked (an OFD write lock) while it lives: the kernel
/// releases it when the holder dies, so any peer can tell a dead holder from a slow one.
pub fn lock_offset(publisher: bool, slot: u32) -> u64 {
    LOCK_BASE + if publisher { 0 } else { 1 << 16 } + slot as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules() {
        for ok in ["a", "orders", "a.b-c_d", &"x".repeat(64)] {
            validate_topic(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65), "é"] {
            assert!(validate_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_names_roundtrip() {
        let d = data_object("bus1", "or.ders");
        assert_eq!(parse_object("bus1", &d), Some(("or.ders".into(), ObjectKind::Data)));
        let r = readers_object("bus1", "x");
        assert_eq!(parse_object("bus1", &r), Some(("x".into(), ObjectKind::Readers)));
        assert_eq!(parse_object("bus2", &r), None);
        let s = sem_name(&sem_prefix("bus1", "a.b"), true, 7);
        assert_eq!(parse_sem("bus1", &s), Some(("a.b".into(), true, 7)));
    }

    #[test]
    fn candidates_order() {
        let c = socket_candidates(Some(Path::new("/run/user/1000")), 1000, Path::new("/tmp"));
        assert_eq!(c[0], PathBuf::from("/run/user/1000/shmbus/control.sock"));
        assert_eq!(c[1], PathBuf::from("/run/shmbus/control.sock"));
        assert_eq!(c[2], PathBuf::from("/tmp/shmbus-1000/control.sock"));
        assert_eq!(socket_candidates(Some(Path::new("rel")), 0, Path::new("/tmp")).len(), 2);
    }
}
