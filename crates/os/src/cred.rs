//! Credentials of a Unix-socket peer.

use std::io::ErrorKind;
use std::os::fd::BorrowedFd;

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

/// Supplementary group ids of process `pid`, from the `Groups:` line of
/// `/proc/<pid>/status` (`SO_PEERCRED` carries only the primary gid).
///
/// Racy by nature: the process may exit and its pid be reused. Check that the
/// peer is still connected after reading this.
pub fn process_groups(pid: i32) -> Result<Vec<u32>> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| OsError::new("read", &path, e))?;
    parse_groups(&status).map_err(|why| OsError::invalid("parse", path, ErrorKind::InvalidData, why))
}

/// Parses the `Groups:` line of a `/proc/<pid>/status` text.
fn parse_groups(status: &str) -> std::result::Result<Vec<u32>, String> {
    let line =
        status.lines().find_map(|l| l.strip_prefix("Groups:")).ok_or_else(|| "no \"Groups:\" line".to_owned())?;
    line.split_whitespace().map(|g| g.parse::<u32>().map_err(|e| format!("bad group id {g:?}: {e}"))).collect()
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
    fn own_groups_match_getgroups() {
        let mut mine = process_groups(std::process::id() as i32).unwrap();
        let mut expected: Vec<u32> = nix::unistd::getgroups().unwrap().into_iter().map(|g| g.as_raw()).collect();
        mine.sort_unstable();
        expected.sort_unstable();
        expected.dedup();
        mine.dedup();
        assert_eq!(mine, expected);
        assert!(process_groups(-5).is_err());
    }

    #[test]
    fn parse_groups_lines() {
        assert_eq!(parse_groups("Name:\tx\nGroups:\t4 24 27 \nNgid:\t0\n"), Ok(vec![4, 24, 27]));
        assert_eq!(parse_groups("Groups:\n"), Ok(vec![]));
        assert!(parse_groups("Name:\tx\n").is_err());
        assert!(parse_groups("Groups:\tx\n").is_err());
    }
}
