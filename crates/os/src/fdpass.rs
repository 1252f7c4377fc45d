//! Passing file descriptors over a Unix stream socket (`SCM_RIGHTS`).

use std::io::{self, ErrorKind, IoSlice};
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessage, MsgFlags};

use crate::error::{fd_object, OsError, Result};

/// Most descriptors one message may carry (sending more is refused; receiving more
/// is reported as truncated control data).
pub const MAX_FDS: usize = 16;

/// Control-buffer bytes; at least `CMSG_SPACE(MAX_FDS * sizeof(int))` (80 on Linux).
const CMSG_BUF_LEN: usize = 128;

/// A control buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_BUF_LEN]);

/// Sends all of `data` with `fds` attached, over a connected Unix stream socket.
///
/// One `sendmsg` carries the fds with the first bytes; the rest is sent in a loop.
/// Uses `MSG_NOSIGNAL` (a closed peer gives `EPIPE`, not `SIGPIPE`) and retries
/// `EINTR`. The socket should be blocking: on a non-blocking socket a `WouldBlock`
/// error after a partial send leaves the stream mid-message.
///
/// At most [`MAX_FDS`] descriptors; if `fds` is non-empty `data` must be too (a
/// stream socket cannot carry descriptors without at least one byte).
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let object = || fd_object("socket", sock);
    if fds.len() > MAX_FDS {
        return Err(OsError::invalid(
            "sendmsg",
            object(),
            ErrorKind::InvalidInput,
            format!("{} fds given, at most {MAX_FDS} per message", fds.len()),
        ));
    }
    if data.is_empty() {
        if fds.is_empty() {
            return Ok(());
        }
        return Err(OsError::invalid(
            "sendmsg",
            object(),
            ErrorKind::InvalidInput,
            "fds need at least one byte of data to travel with",
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    let flags = MsgFlags::MSG_NOSIGNAL;

    let mut sent = loop {
        let iov = [IoSlice::new(data)];
        match socket::sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, flags, None) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(OsError::nix("sendmsg", object(), e)),
        }
    };
    while sent < data.len() {
        match socket::send(sock.as_raw_fd(), &data[sent..], flags) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(OsError::nix("send", object(), e)),
        }
    }
    Ok(())
}

/// Receives once (`recvmsg` with `MSG_CMSG_CLOEXEC`) into `buf`; returns the number
/// of bytes read and the descriptors that came with them.
///
/// 0 bytes means the peer closed the connection. `buf` must not be empty. Retries
/// `EINTR`. If the control data was truncated (`MSG_CTRUNC`, e.g. the peer sent more
/// than [`MAX_FDS`] descriptors) the descriptors that did arrive are closed and an
/// error is returned; the bytes read with them are lost, so the caller should drop
/// the connection.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>)> {
    let object = || fd_object("socket", sock);
    if buf.is_empty() {
        return Err(OsError::invalid("recvmsg", object(), ErrorKind::InvalidInput, "receive buffer is empty"));
    }
    let fd_bytes = (MAX_FDS * mem::size_of::<libc::c_int>()) as libc::c_uint;
    // SAFETY: CMSG_SPACE is pure arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    assert!(space <= CMSG_BUF_LEN);
    // SAFETY: as above, pure arithmetic.
    let header_len = unsafe { libc::CMSG_LEN(0) } as usize;

    loop {
        let mut cbuf = CmsgBuf([0; CMSG_BUF_LEN]);
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: msghdr is a plain C struct for which all-zeroes (null pointers,
        // zero lengths) is a valid value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;

        // SAFETY: `msg` points to one iovec covering `buf` (valid for writes of
        // `buf.len()` bytes) and to `cbuf` (aligned, `space` <= its length bytes);
        // all of them outlive the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(OsError::new("recvmsg", object(), e));
        }

        let mut fds = Vec::new();
        // SAFETY: `msg` was filled in by a successful recvmsg; its control pointer and
        // (kernel-updated) length describe `cbuf`.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR only return non-null pointers to
            // complete, aligned headers inside the control buffer.
            let hdr = unsafe { &*cmsg };
            if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
                let count = (hdr.cmsg_len as usize).saturating_sub(header_len) / mem::size_of::<libc::c_int>();
                // SAFETY: `cmsg` is a valid header; CMSG_DATA points just past it.
                let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<libc::c_int>();
                for i in 0..count {
                    // SAFETY: the kernel wrote `count` ints after the header (cmsg_len
                    // covers them); read_unaligned because CMSG_DATA need not be
                    // int-aligned in general.
                    let raw = unsafe { data.add(i).read_unaligned() };
                    // SAFETY: each SCM_RIGHTS entry is a new descriptor installed in
                    // this process for us; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
            // SAFETY: `msg` and `cmsg` are valid as above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }

        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            let got = fds.len();
            drop(fds);
            return Err(OsError::invalid(
                "recvmsg",
                object(),
                ErrorKind::InvalidData,
                format!(
                    "control data truncated (peer sent more than {MAX_FDS} fds?); \
                     closed the {got} that arrived"
                ),
            ));
        }
        return Ok((n as usize, fds));
    }
}

/// Bytes sent on the Unix stream socket `sock` that its peer has not read yet (`ioctl(SIOCOUTQ)`; for
/// `AF_UNIX` a sent buffer, with any descriptors it carries, is charged to the sender until the peer reads it).
/// Zero means every reply sent so far was read, or the peer closed its end.
pub fn unread_by_peer(sock: BorrowedFd<'_>) -> Result<usize> {
    crate::pipe::ioctl_count(sock, libc::TIOCOUTQ, "ioctl(SIOCOUTQ)", "socket")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::Mapping;
    use crate::shm::{Access, ShmObject};
    use crate::testutil::{unique_name, ShmGuard};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn unread_by_peer_counts_until_the_peer_reads_or_closes() {
        let (a, b) = UnixStream::pair().unwrap();
        assert_eq!(unread_by_peer(a.as_fd()).unwrap(), 0);
        send_with_fds(a.as_fd(), b"reply", &[a.as_fd()]).unwrap();
        assert!(unread_by_peer(a.as_fd()).unwrap() > 0);
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, fds.len()), (5, 1));
        assert_eq!(unread_by_peer(a.as_fd()).unwrap(), 0);
        send_with_fds(a.as_fd(), b"unread", &[]).unwrap();
        drop(b);
        assert_eq!(unread_by_peer(a.as_fd()).unwrap(), 0, "a closed peer's queue is freed");
    }

    #[test]
    fn pass_three_shm_fds_with_payload() {
        let names: Vec<String> = (0..3).map(|i| unique_name(&format!("pass{i}"))).collect();
        let _guards: Vec<ShmGuard> = names.iter().cloned().map(ShmGuard).collect();
        let objs: Vec<ShmObject> = names.iter().map(|n| ShmObject::create_exclusive(n, 4096, 0o600).unwrap()).collect();
        let (a, b) = UnixStream::pair().unwrap();
        let payload = b"hello fds";
        let borrowed: Vec<BorrowedFd<'_>> = objs.iter().map(|o| o.fd()).collect();
        send_with_fds(a.as_fd(), payload, &borrowed).unwrap();

        let mut buf = [0u8; 64];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], payload);
        assert_eq!(fds.len(), 3);
        for ((obj, fd), i) in objs.iter().zip(fds).zip(0u8..) {
            let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
            assert_ne!(flags & libc::FD_CLOEXEC, 0, "MSG_CMSG_CLOEXEC");
            let received = ShmObject::from_fd(fd, obj.name());
            assert_eq!(received.size().unwrap(), 4096);
            let mine = Mapping::map(obj.fd(), Access::ReadWrite, Some(4096), false).unwrap();
            let theirs = Mapping::map(received.fd(), Access::ReadWrite, Some(4096), false).unwrap();
            // SAFETY: offsets are within both 4096-byte mappings; only this test uses them.
            unsafe {
                mine.as_mut_ptr().add(100).write_volatile(i + 1);
                assert_eq!(theirs.as_ptr().add(100).read_volatile(), i + 1);
                theirs.as_mut_ptr().add(200).write_volatile(0x5A);
                assert_eq!(mine.as_ptr().add(200).read_volatile(), 0x5A);
            }
        }

        drop(a);
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, fds.len()), (0, 0), "peer closed");
    }

    #[test]
    fn large_payload_without_fds_and_limits() {
        let (a, b) = UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let sender = {
            let data = data.clone();
            std::thread::spawn(move || {
                let p = crate::pipe::pipe().unwrap();
                send_with_fds(a.as_fd(), &data, &[p.read.as_fd()]).unwrap();
            })
        };
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() == n {
                assert_eq!(fds.len(), 1, "fd arrives with the first bytes");
            } else {
                assert!(fds.is_empty());
            }
        }
        sender.join().unwrap();
        assert_eq!(got, data);

        let (c, _d) = UnixStream::pair().unwrap();
        let too_many: Vec<BorrowedFd<'_>> = (0..MAX_FDS + 1).map(|_| c.as_fd()).collect();
        let e = send_with_fds(c.as_fd(), b"x", &too_many).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = send_with_fds(c.as_fd(), b"", &[c.as_fd()]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        send_with_fds(c.as_fd(), b"", &[]).unwrap();
        let e = recv_with_fds(c.as_fd(), &mut []).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn too_many_fds_is_truncation_error() {
        let (a, b) = UnixStream::pair().unwrap();
        let raw: Vec<RawFd> = vec![a.as_raw_fd(); MAX_FDS + 4];
        let cm = [ControlMessage::ScmRights(&raw)];
        socket::sendmsg::<()>(a.as_raw_fd(), &[IoSlice::new(b"y")], &cm, MsgFlags::empty(), None).unwrap();
        let mut buf = [0u8; 8];
        let e = recv_with_fds(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn send_to_closed_peer_is_epipe_not_sigpipe() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let e = send_with_fds(a.as_fd(), b"z", &[]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    }
}
