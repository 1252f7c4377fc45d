//! Binding the control socket with its mode set without following names.
//!
//! The mode is given to the socket before `bind` (Linux creates the socket file with the unbound socket's mode,
//! less the umask) and corrected afterwards through an `O_PATH | O_NOFOLLOW` descriptor of the bound name, checked
//! to be a socket this user owns: a name swapped for a symlink between `bind` and the chmod is refused, and the
//! symlink's target is never touched (a path-based chmod there turned a root-owned 0600 file into 0666).

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::sys::stat::{self, Mode, SFlag};

/// Binds a listening socket at `path` with permission bits exactly `mode`. `between` runs after `bind` and before
/// the mode is checked (a test hook; pass `|| {}`).
pub(crate) fn bind_with_mode(path: &Path, mode: u32, between: impl FnOnce()) -> io::Result<UnixListener> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let m = Mode::from_bits_truncate(mode & 0o777);
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    // The socket file is created with this mode less the umask: never more open than `mode`.
    stat::fchmod(&fd, m)?;
    nix::sys::socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    nix::sys::socket::listen(&fd, nix::sys::socket::Backlog::new(128)?)?;
    let listener = UnixListener::from(fd);
    between();
    set_mode_nofollow(path, m)?;
    Ok(listener)
}

/// Sets the permission bits of the socket file at `path` without following a symlink: through an `O_PATH`
/// descriptor of the name itself, which must be a socket owned by this process's user.
fn set_mode_nofollow(path: &Path, mode: Mode) -> io::Result<()> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(path, flags, Mode::empty())?;
    let st = stat::fstat(&fd)?;
    let me = nix::unistd::geteuid().as_raw();
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFSOCK || st.st_uid != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the socket's name was replaced by something else after bind; refusing to set its mode",
        ));
    }
    if st.st_mode & 0o7777 != mode.bits() {
        // chmod of the magic link changes exactly the inode the O_PATH descriptor holds.
        let proc = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
        stat::fchmodat(nix::fcntl::AT_FDCWD, proc.as_str(), mode, stat::FchmodatFlags::FollowSymlink)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("shmbusd-sock-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_socket_gets_exactly_its_mode() {
        let d = Gone(scratch("mode"));
        for mode in [0o600, 0o660, 0o666] {
            let p = d.0.join(format!("s{mode:o}"));
            let _l = bind_with_mode(&p, mode, || {}).unwrap();
            assert_eq!(mode_of(&p), mode);
        }
    }

    /// The race of issue 16 item 2 made deterministic: the bound name is swapped for a symlink to a private file
    /// between bind and the mode change. The target's mode must stay; the bind is refused. (With the old
    /// `set_permissions(path)` the target became 0666.)
    #[test]
    fn a_symlink_swapped_in_after_bind_is_not_followed() {
        let d = Gone(scratch("swap"));
        let target = d.0.join("secret");
        std::fs::write(&target, b"x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let p = d.0.join("control.sock");
        let r = bind_with_mode(&p, 0o666, || {
            std::fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink(&target, &p).unwrap();
        });
        assert_eq!(mode_of(&target), 0o600, "the symlink's target was chmodded");
        let e = r.expect_err("a replaced socket name is refused");
        assert!(e.to_string().contains("replaced"), "{e}");
    }
}
