//! Files only the daemon may have written: the resume key and the lease table under `/dev/shm`, a directory every
//! user can write. Each is opened without following a symlink and used only if it is a plain file of the
//! daemon's user, mode 0600, with one link (else someone else planted it).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for reading (and writing with `write`) if it is the daemon's own private file; `Ok(None)` when
/// there is no such file, an error naming what is wrong when it is not one.
pub fn open_own(path: &Path, write: bool) -> std::io::Result<Option<File>> {
    let f = match OpenOptions::new().read(true).write(write).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if !m.file_type().is_file() || m.uid() != me || m.mode() & 0o7777 != 0o600 || m.nlink() != 1 {
        return Err(std::io::Error::other(format!(
            "not a 0600 file of uid {me} with one link (uid {}, mode {:o}, {} links)",
            m.uid(),
            m.mode() & 0o7777,
            m.nlink()
        )));
    }
    Ok(Some(f))
}

/// Creates `path` as a new 0600 file (never following or reusing a name someone else made).
pub fn create_own(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)
}
