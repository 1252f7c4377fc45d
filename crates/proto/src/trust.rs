//! Whom a client trusts, and which socket directories are safe: the daemon's uid (from `SO_PEERCRED`) must be
//! root, the client's own, or the configured daemon user; a socket directory must be owned by one of those and
//! writable by nobody else, so no other user can plant a socket (or a directory) where a client looks.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Environment variable naming the user a client accepts as its daemon (a user name or a numeric uid) besides
/// root and itself.
pub const DAEMON_USER_ENV: &str = "SHMBUS_DAEMON_USER";
/// The daemon user trusted when [`DAEMON_USER_ENV`] is not set, if such a user exists (the systemd unit's).
pub const DEFAULT_DAEMON_USER: &str = "shmbus";

/// The uid of the configured daemon user: [`DAEMON_USER_ENV`] (a name or a number), else the
/// [`DEFAULT_DAEMON_USER`] if it exists; `None` when neither names a user.
///
/// ```
/// // A numeric value needs no user database.
/// std::env::set_var("SHMBUS_DAEMON_USER", "4242");
/// assert_eq!(shmbus_proto::trust::daemon_user(), Some(4242));
/// ```
pub fn daemon_user() -> Option<u32> {
    match std::env::var(DAEMON_USER_ENV) {
        Ok(v) if !v.is_empty() => v.parse::<u32>().ok().or_else(|| uid_of(&v)),
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
