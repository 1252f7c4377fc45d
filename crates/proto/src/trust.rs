//! Whom a client trusts, and which socket directories are safe: the daemon's uid (from `SO_PEERCRED`) must be
//! root, the client's own, or the configured daemon user; a socket directory must be owned by one of those and
//! writable by nobody else, so no other user can plant a socket (or a directory) where a client looks.
//!
//! The environment variables that redirect that trust ([`REDIRECTING_ENV`]: the socket, the daemon user, the
//! inherited pipes) are ignored in a set-user-ID or set-group-ID process ([`env_var`]): there the environment
//! comes from a caller with less privilege than the process.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Environment variable naming the user a client accepts as its daemon (a user name or a numeric uid) besides
/// root and itself.
pub const DAEMON_USER_ENV: &str = "SHMBUS_DAEMON_USER";
/// The daemon user trusted when [`DAEMON_USER_ENV`] is not set, if such a user exists (the systemd unit's).
pub const DEFAULT_DAEMON_USER: &str = "shmbus";

/// Environment variable listing the pipes a process inherited from its parent (see `bus_client::pipe`).
pub const PIPES_ENV: &str = "SHMBUS_PIPES";

/// The environment variables that decide what a client connects to and whom it trusts: the control socket
/// ([`crate::names::SOCKET_ENV`]), the daemon user ([`DAEMON_USER_ENV`]) and the inherited pipes ([`PIPES_ENV`]).
/// [`env_var`] ignores them in secure execution.
pub const REDIRECTING_ENV: [&str; 3] = [crate::names::SOCKET_ENV, DAEMON_USER_ENV, PIPES_ENV];

/// The value of environment variable `name`, or `None` when it is unset, or when this process runs in secure
/// execution ([`shmbus_os::secure_execution`]: a set-user-ID or set-group-ID program, or one that gained
/// capabilities at exec), whose environment was chosen by a less privileged caller. Every variable of
/// [`REDIRECTING_ENV`] is read through this.
///
/// ```
/// std::env::set_var("SHMBUS_DOC_EXAMPLE", "x");
/// assert_eq!(shmbus_proto::trust::env_var("SHMBUS_DOC_EXAMPLE"), Some("x".into()), "not a set-user-ID program");
/// ```
pub fn env_var(name: &str) -> Option<OsString> {
    if shmbus_os::secure_execution() {
        return None;
    }
    std::env::var_os(name)
}

/// The variables of [`REDIRECTING_ENV`] that are set but ignored because this process runs in secure execution
/// (empty otherwise), for a log line.
///
/// ```
/// assert!(shmbus_proto::trust::ignored_env().is_empty(), "not a set-user-ID program");
/// ```
pub fn ignored_env() -> Vec<&'static str> {
    if !shmbus_os::secure_execution() {
        return Vec::new();
    }
    REDIRECTING_ENV.into_iter().filter(|v| std::env::var_os(v).is_some()).collect()
}

/// The uid of the configured daemon user: [`DAEMON_USER_ENV`] (a name or a number; ignored in a set-user-ID or
/// set-group-ID process, see [`env_var`]), else the [`DEFAULT_DAEMON_USER`] if it exists; `None` when neither
/// names a user.
///
/// ```
/// // A numeric value needs no user database.
/// std::env::set_var("SHMBUS_DAEMON_USER", "4242");
/// assert_eq!(shmbus_proto::trust::daemon_user(), Some(4242));
/// ```
pub fn daemon_user() -> Option<u32> {
    match env_var(DAEMON_USER_ENV).and_then(|v| v.into_string().ok()) {
        Some(v) if !v.is_empty() => v.parse::<u32>().ok().or_else(|| uid_of(&v)),
        _ => uid_of(DEFAULT_DAEMON_USER),
    }
}

fn uid_of(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// This process's effective uid (the one `SO_PEERCRED` reports to a peer, and the one owning what it creates).
pub fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The uids this process trusts as its daemon and as owners of socket directories: root, its effective uid,
/// and [`daemon_user`].
///
/// ```
/// let t = shmbus_proto::trust::trusted_uids();
/// assert!(t.contains(&0) && t.contains(&nix::unistd::geteuid().as_raw()));
/// ```
pub fn trusted_uids() -> Vec<u32> {
    let mut v = vec![0, own_uid()];
    v.extend(daemon_user());
    v.sort_unstable();
    v.dedup();
    v
}

/// What makes the directory `dir` unsafe to hold a control socket, or `None` when it is safe or does not exist:
/// owned by a uid outside `trusted`, writable by its group or others, not a directory, or a symbolic link
/// somebody untrusted made.
///
/// ```
/// use shmbus_proto::trust::dir_problem;
/// assert_eq!(dir_problem(std::path::Path::new("/"), &[0]), None);
/// let why = dir_problem(std::path::Path::new("/"), &[4242]).unwrap();
/// assert_eq!(why, "owned by uid 0");
/// ```
pub fn dir_problem(dir: &Path, trusted: &[u32]) -> Option<String> {
    let link = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("cannot be inspected: {e}")),
    };
    if link.file_type().is_symlink() && !trusted.contains(&link.uid()) {
        return Some(format!("is a symbolic link owned by uid {}", link.uid()));
    }
    let m = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot be inspected: {e}")),
    };
    if !m.is_dir() {
        return Some("is not a directory".into());
    }
    let mut why = Vec::new();
    if !trusted.contains(&m.uid()) {
        why.push(format!("owned by uid {}", m.uid()));
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        why.push(format!("writable by group or others (mode {mode:04o})"));
    }
    (!why.is_empty()).then(|| why.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn shared_writable_or_foreign_directories_are_unsafe() {
        let me = nix::unistd::geteuid().as_raw();
        let d = std::env::temp_dir().join(format!("shmbus-proto-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(dir_problem(&d, &[me]), None);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(dir_problem(&d, &[me]).unwrap(), "writable by group or others (mode 1777)");
        let both = dir_problem(&d, &[me + 1]).unwrap();
        assert_eq!(both, format!("owned by uid {me} and writable by group or others (mode 1777)"));
        assert_eq!(dir_problem(&d.join("missing"), &[me]), None);
        std::fs::write(d.join("file"), b"").unwrap();
        assert_eq!(dir_problem(&d.join("file"), &[me]).unwrap(), "is not a directory");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
