//! Names: topic-name rules, shared-memory object names, and control-socket discovery.
//!
//! Objects are `/<prefix>.<topic>.data` and `/<prefix>.<topic>.readers`, a topic's only files (until layout 2
//! topics also had named semaphores, `sem.<prefix>.<topic>.{s,p}<slot>` in /dev/shm). Several buses can run side
//! by side under different prefixes.

use std::path::{Path, PathBuf};

/// Default shared-memory prefix.
pub const DEFAULT_PREFIX: &str = "shmbus";
/// Environment variable naming the control socket (ignored in a set-user-ID or set-group-ID process, see
/// [`crate::trust::env_var`]).
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

/// Checks a consumer-group name: the topic character set, `[A-Za-z0-9._-]{1,64}`, so a name can never carry a
/// control character into a log line or a terminal.
pub fn validate_group(name: &str) -> Result<(), NameError> {
    validate_topic(name).map_err(|e| NameError { what: "group name", ..e })
}

/// Longest payload type name ([`crate::msg::TypeInfo::name`]).
pub const MAX_TYPE_NAME: usize = 256;

/// The rule [`type_name_ok`] checks, worded for a refusal.
pub const TYPE_NAME_RULE: &str = "payload type names are 1 to 256 bytes of letters, digits, spaces and the \
     punctuation of Rust type paths (_ : < > , & ' [ ] ( ) ; * ! { } - = +)";

/// Whether `name` may be a payload type name: what `std::any::type_name` produces for ordinary types (paths,
/// generics, references, arrays, tuples, closures), and nothing that could steer a terminal.
pub fn type_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TYPE_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b" _:<>,&'[]();*!{}-=+".contains(&b))
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

/// The places a control socket may be, the ones nobody else can plant first: `$XDG_RUNTIME_DIR/shmbus/control.sock`
/// (the user's own 0700 directory), `/run/shmbus/control.sock` (root's or the daemon user's), then
/// `<tmp>/shmbus-<uid>/control.sock`, used only under the checks of [`crate::trust::dir_problem`].
pub fn socket_candidates(xdg_runtime_dir: Option<&Path>, uid: u32, tmp: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(x) = xdg_runtime_dir.filter(|p| p.is_absolute()) {
        v.push(x.join("shmbus").join("control.sock"));
    }
    v.push(PathBuf::from("/run/shmbus/control.sock"));
    v.push(tmp.join(format!("shmbus-{uid}")).join("control.sock"));
    v
}

/// The candidates for this process: `$XDG_RUNTIME_DIR`, the uid and [`std::env::temp_dir`] (which
/// honours `$TMPDIR`).
fn env_candidates() -> Vec<PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let uid = nix::unistd::getuid().as_raw();
    socket_candidates(xdg.as_deref(), uid, &std::env::temp_dir())
}

/// Where the daemon listens: `explicit` (from `--socket`), else `$SHMBUS_SOCKET`, else the first candidate whose
/// directory exists or whose parent does (the root-only `/run/shmbus` is skipped for other users). The daemon
/// creates and checks the directory when it binds.
pub fn daemon_socket(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = given_socket(explicit) {
        return p;
    }
    let root = nix::unistd::geteuid().is_root();
    let cands = env_candidates();
    for c in &cands {
        let dir = c.parent().expect("candidate has a directory");
        if dir.starts_with("/run/shmbus") && !root && !dir.exists() {
            continue;
        }
        if dir.exists() || dir.parent().is_some_and(Path::exists) {
            return c.clone();
        }
    }
    cands.last().cloned().expect("at least one candidate")
}

fn given_socket(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    crate::trust::env_var(SOCKET_ENV).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// A discovery candidate as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The socket path.
    pub path: PathBuf,
    /// Whether something is at the path.
    pub exists: bool,
    /// Why its directory must not be used ([`crate::trust::dir_problem`]), if it must not.
    pub problem: Option<String>,
}

impl Candidate {
    /// Inspects the socket path `path` and its directory, trusting directories owned by `trusted`.
    pub fn inspect(path: &Path, trusted: &[u32]) -> Candidate {
        let dir = path.parent().unwrap_or(Path::new("/"));
        Candidate {
            path: path.to_path_buf(),
            exists: std::fs::symlink_metadata(path).is_ok(),
            problem: crate::trust::dir_problem(dir, trusted),
        }
    }

    /// Whether a client may connect here: something exists and the directory is safe.
    pub fn usable(&self) -> bool {
        self.exists && self.problem.is_none()
    }
}

/// The default candidates of this process, inspected (what `shmbus doctor` shows).
pub fn client_candidates(trusted: &[u32]) -> Vec<Candidate> {
    env_candidates().iter().map(|p| Candidate::inspect(p, trusted)).collect()
}

/// Where a client connects, and how that was decided.
#[derive(Clone, Debug)]
pub struct ClientSocket {
    /// The socket to connect to.
    pub path: PathBuf,
    /// Found by discovery (then its directory is checked again before every connection), not given.
    pub discovered: bool,
    /// The candidates inspected (empty when the path was given).
    pub candidates: Vec<Candidate>,
}

/// Where a client connects: `explicit`, else `$SHMBUS_SOCKET` (not in secure execution), else the first usable
/// candidate. Candidates in
/// unsafe directories are skipped; when none is usable, the first one that exists is returned anyway (connecting
/// refuses it, naming the problem), else the first candidate, so the error names a sensible path.
///
/// ```
/// use shmbus_proto::names::client_socket;
/// let s = client_socket(Some(std::path::Path::new("/x/control.sock")), &[0]);
/// assert!(!s.discovered && s.path == std::path::Path::new("/x/control.sock"));
/// ```
pub fn client_socket(explicit: Option<&Path>, trusted: &[u32]) -> ClientSocket {
    if let Some(path) = given_socket(explicit) {
        return ClientSocket { path, discovered: false, candidates: Vec::new() };
    }
    let candidates = client_candidates(trusted);
    ClientSocket { path: pick(&candidates), discovered: true, candidates }
}

/// The first usable candidate, else the first that exists (to be refused by name), else the first.
fn pick(candidates: &[Candidate]) -> PathBuf {
    candidates
        .iter()
        .find(|c| c.usable())
        .or_else(|| candidates.iter().find(|c| c.exists))
        .unwrap_or(&candidates[0])
        .path
        .clone()
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
    fn group_and_type_name_rules() {
        validate_group("workers.v2").unwrap();
        assert_eq!(validate_group("g\n\x1b[2J").unwrap_err().what, "group name");
        for ok in [
            std::any::type_name::<Vec<(u32, &'static str)>>(),
            std::any::type_name::<[u8; 4]>(),
            std::any::type_name::<Option<*const u8>>(),
            std::any::type_name::<fn(u8) -> u8>(),
        ] {
            assert!(type_name_ok(ok), "{ok}");
        }
        for bad in ["", "a\nb", "\x1b]0;x\x07", "caf\u{e9}", &"x".repeat(257)] {
            assert!(!type_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn object_names_roundtrip() {
        let d = data_object("bus1", "or.ders");
        assert_eq!(parse_object("bus1", &d), Some(("or.ders".into(), ObjectKind::Data)));
        let r = readers_object("bus1", "x");
        assert_eq!(parse_object("bus1", &r), Some(("x".into(), ObjectKind::Readers)));
        assert_eq!(parse_object("bus2", &r), None);
    }

    #[test]
    fn discovery_skips_unsafe_directories() {
        let c = |p: &str, exists, problem: Option<&str>| Candidate {
            path: p.into(),
            exists,
            problem: problem.map(Into::into),
        };
        let planted = c("/tmp/shmbus-0/control.sock", true, Some("writable by group or others (mode 0777)"));
        let real = c("/run/shmbus/control.sock", true, None);
        let missing = c("/run/user/0/shmbus/control.sock", false, None);
        assert_eq!(pick(&[missing.clone(), planted.clone(), real.clone()]), real.path, "a safe one later wins");
        assert_eq!(pick(&[missing.clone(), planted.clone()]), planted.path, "else the unsafe one, to be refused");
        assert_eq!(pick(std::slice::from_ref(&missing)), missing.path);
        assert!(!planted.usable() && real.usable() && !missing.usable());
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
