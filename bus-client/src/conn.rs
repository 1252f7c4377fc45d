//! One control connection: connect, the `Hello` handshake, and strictly serialized request → response exchanges
//! with the descriptors a response carries.

use crate::error::ConnError;
use crate::verify;
use shmbus_proto::frame::{self, FrameReader};
use shmbus_proto::{ErrorKind, ProtoError, Request, Response, PROTOCOL_VERSION};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A connected, greeted control connection.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: UnixStream,
    reader: FrameReader,
    /// Descriptors received and not yet claimed by a response, in arrival order.
    fds: VecDeque<OwnedFd>,
    /// The daemon's self-description from its `Hello`.
    pub(crate) daemon: String,
    /// The daemon's uid, from `SO_PEERCRED` (trusted: see [`crate::verify`]); it must own the objects it sends.
    daemon_uid: u32,
}

/// A response and the descriptors that came with it.
pub(crate) struct Reply {
    pub(crate) response: Response,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Conn {
    /// Connects to `path` (first checking its directory when it was `discovered`), checks who listens there, and
    /// performs the handshake within `timeout`.
    pub(crate) fn open(path: &Path, discovered: bool, client: &str, timeout: Duration) -> Result<Conn, ConnError> {
        if discovered {
            verify::socket_dir(path)?;
        }
        let stream =
            UnixStream::connect(path).map_err(|source| ConnError::Unavailable { path: path.to_path_buf(), source })?;
        let daemon_uid = verify::daemon(&stream, path)?;
        let mut conn =
            Conn { stream, reader: FrameReader::new(), fds: VecDeque::new(), daemon: String::new(), daemon_uid };
        let hello =
            Request::Hello { protocol: PROTOCOL_VERSION, layout: shmbus_ring::LAYOUT_VERSION, client: client.into() };
        match conn.request(&hello, timeout)?.response {
            Response::Hello { protocol, layout, daemon } => {
                if protocol != PROTOCOL_VERSION || layout != shmbus_ring::LAYOUT_VERSION {
                    return Err(ConnError::VersionMismatch(format!(
                        "daemon {daemon:?} speaks protocol {protocol} / layout {layout}, this client \
                         {PROTOCOL_VERSION} / {}",
                        shmbus_ring::LAYOUT_VERSION
                    )));
                }
                conn.daemon = daemon;
                Ok(conn)
            }
            Response::Error { kind: ErrorKind::VersionMismatch, message } => Err(ConnError::VersionMismatch(message)),
            Response::Error { kind, message } => Err(ConnError::Refused { kind, message }),
            other => Err(ConnError::Protocol(format!("unexpected reply to hello: {}", describe(&other)))),
        }
    }

    /// Sends `req` and reads its one response within `timeout`. A `Lease` response claims exactly two
    /// descriptors. Any error leaves the connection unusable (the caller drops it).
    pub(crate) fn request(&mut self, req: &Request, timeout: Duration) -> Result<Reply, ConnError> {
        let bytes = frame::encode(req).map_err(|e| ConnError::Protocol(e.to_string()))?;
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        self.stream.set_write_timeout(timeout).map_err(ConnError::Io)?;
        self.stream.set_read_timeout(timeout).map_err(ConnError::Io)?;
        shmbus_os::send_with_fds(self.stream.as_fd(), &bytes, &[]).map_err(|e| io_error(crate::error::os_to_io(e)))?;
        let response = self.read_response()?;
        let want = if matches!(response, Response::Lease(_)) { 2 } else { 0 };
        if self.fds.len() < want {
            return Err(ConnError::Protocol(format!("lease reply carried {} descriptors, expected 2", self.fds.len())));
        }
        let fds: Vec<OwnedFd> = self.fds.drain(..want).collect();
        verify::objects(&fds, self.daemon_uid)?;
        if !self.fds.is_empty() {
            // Descriptors nobody asked for: close them, and do not trust the stream any further.
            let extra = self.fds.len();
            self.fds.clear();
            return Err(ConnError::Protocol(format!("{extra} unexpected descriptors from the daemon")));
        }
        Ok(Reply { response, fds })
    }

    fn read_response(&mut self) -> Result<Response, ConnError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.reader.next_frame::<Response>() {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(ProtoError::Io(e)) => return Err(io_error(e)),
                Err(e) => return Err(ConnError::Protocol(e.to_string())),
            }
            let (n, fds) = shmbus_os::recv_with_fds(self.stream.as_fd(), &mut buf)
                .map_err(|e| io_error(crate::error::os_to_io(e)))?;
            self.fds.extend(fds);
            if n == 0 {
                return Err(ConnError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "daemon closed the connection",
                )));
            }
            self.reader.push(&buf[..n]);
        }
    }

    /// A duplicate of the socket descriptor, for watching the connection without holding it.
    pub(crate) fn watch_fd(&self) -> io::Result<OwnedFd> {
        self.stream.as_fd().try_clone_to_owned()
    }

    /// Shuts the connection down in both directions, so the daemon sees it end at once even while another
    /// descriptor of the socket (the keeper's watch) is still open.
    pub(crate) fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

fn io_error(e: io::Error) -> ConnError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnError::Timeout,
        _ => ConnError::Io(e),
    }
}

/// A short name of a response for error messages.
pub(crate) fn describe(r: &Response) -> &'static str {
    match r {
        Response::Hello { .. } => "hello",
        Response::Lease(_) => "lease",
        Response::Topics(_) => "topic list",
        Response::Stats(_) => "stats",
        Response::TopicsPage { .. } => "topic list page",
        Response::StatsPage { .. } => "stats page",
        Response::Done => "done",
        Response::Error { .. } => "error",
        Response::DaemonInfo(_) => "daemon information",
        Response::ClientsPage { .. } => "clients page",
        Response::Invalid { .. } => "invalid objects",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn serve_once(reply: Response) -> (tempdir::Dir, std::thread::JoinHandle<Request>) {
        let dir = tempdir::Dir::new();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = FrameReader::new();
            let mut buf = [0u8; 4096];
            loop {
                if let Some(req) = r.next_frame::<Request>().unwrap() {
                    let bytes = frame::encode(&reply).unwrap();
                    shmbus_os::send_with_fds(s.as_fd(), &bytes, &[]).unwrap();
                    return req;
                }
                let (n, _) = shmbus_os::recv_with_fds(s.as_fd(), &mut buf).unwrap();
                r.push(&buf[..n]);
            }
        });
        (dir, t)
    }

    #[test]
    fn hello_version_mismatch_is_refused() {
        let (dir, t) = serve_once(Response::Error { kind: ErrorKind::VersionMismatch, message: "old".into() });
        let e = Conn::open(&dir.path().join("s"), false, "test", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, ConnError::VersionMismatch(ref m) if m == "old"), "{e:?}");
        match t.join().unwrap() {
            Request::Hello { protocol, layout, client } => {
                assert_eq!(protocol, PROTOCOL_VERSION);
                assert_eq!(layout, shmbus_ring::LAYOUT_VERSION);
                assert_eq!(client, "test");
            }
            other => panic!("first request was {other:?}"),
        }
    }

    #[test]
    fn hello_with_other_protocol_is_a_mismatch() {
        let reply = Response::Hello { protocol: PROTOCOL_VERSION + 1, layout: 1, daemon: "future".into() };
        let (dir, t) = serve_once(reply);
        let e = Conn::open(&dir.path().join("s"), false, "test", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, ConnError::VersionMismatch(_)), "{e:?}");
        t.join().unwrap();
    }

    #[test]
    fn missing_socket_is_unavailable() {
        let dir = tempdir::Dir::new();
        let e = Conn::open(&dir.path().join("nobody"), false, "test", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ConnError::Unavailable { .. }), "{e:?}");
    }

    /// A minimal self-removing temporary directory (no extra crates).
    pub(crate) mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicU32, Ordering};

        pub(crate) struct Dir(PathBuf);
        impl Dir {
            pub(crate) fn new() -> Dir {
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "bus-client-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub(crate) fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
