//! Credentials of a Unix-socket peer.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::socket::{getsockopt, sockopt};

use crate::error::{fd_object, OsError, Result};

/// Who is on the other end of a Unix socket, as of when it connected (or called
/// `socketpair`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// The peer's credentials (`SO_PEERCRED`), filled in by the kernel; cannot be forged.
pub fn peer_cred(sock: BorrowedFd<'_>) -> Result<PeerCred> {
    let c = getsockopt(&sock, sockopt::PeerCredentials)
        .map_err(|e| OsError::nix("getsockopt(SO_PEERCRED)", fd_object("socket", sock), e))?;
    Ok(PeerCred { pid: c.pid(), uid: c.uid(), gid: c.gid() })
}

/// The peer's supplementary group ids (`SO_PEERGROUPS`), recorded by the kernel when the peer connected (or
/// called `socketpair`), like [`peer_cred`]: neither the peer changing its groups afterwards, nor it exiting and
/// its pid being reused, nor the connection being handed to another process changes them. `SO_PEERCRED` carries
/// only the primary gid.
///
/// ```
/// use std::os::fd::AsFd;
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let mut groups = shmbus_os::peer_groups(a.as_fd()).unwrap();
/// let mut mine: Vec<u32> = nix::unistd::getgroups().unwrap().iter().map(|g| g.as_raw()).collect();
/// groups.sort_unstable();
/// mine.sort_unstable();
/// assert_eq!(groups, mine);
/// ```
pub fn peer_groups(sock: BorrowedFd<'_>) -> Result<Vec<u32>> {
    const GID: usize = std::mem::size_of::<libc::gid_t>();
    let mut cap = 32usize;
    // The peer's groups are fixed, so the size the kernel asks for on ERANGE fits the second call; the bound
    // only keeps a misbehaving kernel from looping us.
    for _ in 0..4 {
        let mut buf: Vec<libc::gid_t> = vec![0; cap];
        let mut len = (cap * GID) as libc::socklen_t;
        // SAFETY: `buf` is valid for writes of `len` bytes and outlives the call; the kernel writes at most `len`
        // bytes there and stores in `len` the bytes written (or, with ERANGE, the bytes needed).
        let r = unsafe {
            libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERGROUPS, buf.as_mut_ptr().cast(), &mut len)
        };
        if r == 0 {
            buf.truncate((len as usize / GID).min(cap));
            return Ok(buf);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(OsError::new("getsockopt(SO_PEERGROUPS)", fd_object("socket", sock), err));
        }
        cap = (len as usize / GID).max(cap * 2);
    }
    Err(OsError::invalid(
        "getsockopt(SO_PEERGROUPS)",
        fd_object("socket", sock),
        ErrorKind::InvalidData,
        "the group list kept growing",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn socketpair_peer_is_us() {
        let (a, b) = UnixStream::pair().unwrap();
        let c = peer_cred(a.as_fd()).unwrap();
        assert_eq!(c.pid, std::process::id() as i32);
        assert_eq!(c.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(c.gid, nix::unistd::getegid().as_raw());
        assert_eq!(peer_cred(b.as_fd()).unwrap(), c);
    }

    #[test]
    fn peer_cred_on_pipe_fails() {
        let p = crate::pipe::pipe().unwrap();
        let e = peer_cred(p.read.as_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTSOCK));
    }

    #[test]
    fn socketpair_peer_groups_are_ours() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut got = peer_groups(a.as_fd()).unwrap();
        let mut expected: Vec<u32> = nix::unistd::getgroups().unwrap().into_iter().map(|g| g.as_raw()).collect();
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(peer_groups(b.as_fd()).unwrap().len(), expected.len());
    }

    #[test]
    fn peer_groups_on_pipe_or_unconnected_socket_fails() {
        let p = crate::pipe::pipe().unwrap();
        assert_eq!(peer_groups(p.read.as_fd()).unwrap_err().raw_os_error(), Some(libc::ENOTSOCK));
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let lone = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        let e = peer_groups(lone.as_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODATA), "{e}");
    }
}
