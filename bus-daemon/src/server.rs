//! The control server: a Unix stream socket, one thread per connection (within the connection limits of
//! [`crate::conns`]), the version handshake, and dispatch of requests to the [`State`]. Malformed or oversized
//! frames close that connection only; so does a handshake or a started frame not completed within the request
//! timeout. A connection has at most one reply outstanding: the next request is served once the client has read
//! the previous reply, and a client that leaves a reply unread for the request timeout is closed (issue 16 item
//! 3: descriptors in unread replies count against the daemon's RLIMIT_NOFILE). Its place under the connection
//! limits is kept until it reads or closes, so one uid can hold at most `max_connections_per_uid` replies'
//! descriptors in flight. The state lock is taken for bookkeeping only (see [`crate::registry::work`]); every
//! refusal is logged with the uid that asked, and every dropped connection with its reason (peer text in either,
//! and in replies, escaped and cut short).

use crate::conns::{Gate, Permit};
use crate::registry::{drive, Asker, Granted, LeaseKind, LeaseRequest, Refusal, State};
use shmbus_os::PeerCred;
use shmbus_proto::frame::{self, FrameReader};
use shmbus_proto::msg::*;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Locks the state, recovering from a poisoned lock (a panicking connection thread must not stop the daemon).
pub(crate) fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn send(stream: &UnixStream, resp: &Response, fds: &[std::os::fd::BorrowedFd<'_>]) -> Result<(), String> {
    let bytes = frame::encode(resp).map_err(|e| e.to_string())?;
    shmbus_os::send_with_fds(stream.as_fd(), &bytes, fds).map_err(|e| e.to_string())
}

/// A lease response and the descriptors that go with it.
fn granted(r: Result<Granted, Refusal>) -> (Response, Option<[OwnedFd; 2]>) {
    match r {
        Ok((reply, fds)) => (Response::Lease(reply), Some(fds)),
        Err(r) => (error(r), None),
    }
}

/// Most characters of peer text (escaped) a reply's message carries; more is cut (see [`shown`]).
const MAX_REPLY_TEXT: usize = 1024;
/// Most characters of peer text (escaped) a log line carries.
const MAX_LOG_TEXT: usize = 256;
/// Most characters of a client's name (escaped) kept with its leases for `shmbus clients`.
const MAX_CLIENT_NAME: usize = 64;

/// Peer text, escaped and cut to `max` characters. Refusal messages quote the names a peer sent: a name of a
/// megabyte of control characters escapes to six, which made a reply too large for a frame (the daemon dropped a
/// well-formed connection instead of refusing the request) and megabytes of log per request (found by the
/// control fuzz, `tests/tests/control_fuzz.rs`).
fn shown(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    shmbus_proto::text::excerpt(text, max)
}

fn error(r: Refusal) -> Response {
    Response::Error { kind: r.kind, message: shown(&r.message, MAX_REPLY_TEXT).into_owned() }
}

/// Admits an accepted connection within the connection limits and starts its thread; a connection over a limit
/// gets an error naming the limit and is closed. Returns a handle to shut the connection down and its thread;
/// `stop` (the daemon's shutdown flag) ends a closed connection's wait for its peer to read.
pub fn accept(
    conn: u64,
    stream: UnixStream,
    state: &Arc<Mutex<State>>,
    gate: &Gate,
    timeout: Duration,
    stop: &Arc<AtomicBool>,
) -> Option<(UnixStream, JoinHandle<()>)> {
    let _ = stream.set_nonblocking(false);
    let cred = match shmbus_os::peer_cred(stream.as_fd()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer credentials; closing connection");
            return None;
        }
    };
    // Recorded by the kernel at connect() like the credentials, so a peer that changes its groups, exits (its pid
    // reused) or hands the connection over cannot steer the policy checks. Failing, the peer gets no group.
    let groups = shmbus_os::peer_groups(stream.as_fd()).unwrap_or_else(|e| {
        tracing::warn!(conn, pid = cred.pid, uid = cred.uid, error = %e, "cannot read the peer's groups; admitting it without supplementary groups");
        Vec::new()
    });
    let permit = match gate.admit(cred.uid) {
        Ok(p) => p,
        Err(message) => {
            tracing::warn!(conn, pid = cred.pid, uid = cred.uid, "connection refused: {message}");
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = send(&stream, &Response::Error { kind: ErrorKind::ResourceExhausted, message }, &[]);
            return None;
        }
    };
    let keep = match stream.try_clone() {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "cannot accept connection");
            return None;
        }
    };
    let (st, stop) = (state.clone(), stop.clone());
    let who = Peer { cred, groups };
    // A thread that cannot be started (the task limit reached) costs this connection, never the daemon.
    match std::thread::Builder::new().spawn(move || serve(conn, stream, st, who, permit, timeout, stop)) {
        Ok(h) => Some((keep, h)),
        Err(e) => {
            tracing::warn!(conn, error = %e, "cannot start a thread for the connection; closing it");
            None
        }
    }
}

/// Who connected, as the kernel recorded it at connect(): credentials (`SO_PEERCRED`) and supplementary groups
/// (`SO_PEERGROUPS`).
struct Peer {
    cred: PeerCred,
    groups: Vec<u32>,
}

/// Serves one connection until it closes; then reclaims every lease it held.
fn serve(
    conn: u64,
    stream: UnixStream,
    state: Arc<Mutex<State>>,
    peer: Peer,
    permit: Permit,
    timeout: Duration,
    stop: Arc<AtomicBool>,
) {
    let Peer { cred, groups } = peer;
    tracing::debug!(conn, pid = cred.pid, uid = cred.uid, "client connected");
    // A client that does not read its replies must not hold this thread for ever (SO_SNDTIMEO).
    let _ = stream.set_write_timeout(Some(timeout));
    {
        // Releases the connection's leases however the conversation ends, a panic included (issue 16 item 4).
        let _release = Release { conn, state: &state };
        let Err(end) = conversation(conn, &stream, &cred, &groups, &state, timeout);
        match end {
            Ended::PeerClosed => tracing::debug!(conn, pid = cred.pid, "connection closed by the peer"),
            // One line per dropped connection, at the default level: a hostile or broken client is visible.
            Ended::Dropped(reason) => {
                tracing::info!(
                    conn,
                    pid = cred.pid,
                    uid = cred.uid,
                    "dropping connection: {}",
                    shown(&reason, MAX_LOG_TEXT)
                )
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    // The descriptors of a reply the peer never read stay charged to the daemon until it reads or closes: so
    // does the connection's place under the limits (issue 16 item 3).
    let mut told = false;
    while shmbus_os::unread_by_peer(stream.as_fd()).is_ok_and(|n| n > 0) && !stop.load(Ordering::Relaxed) {
        if !told {
            tracing::info!(
                conn,
                pid = cred.pid,
                uid = cred.uid,
                "closed connection keeps its place until its peer reads or closes"
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(permit);
}

/// How a conversation ended.
enum Ended {
    /// The peer closed the connection.
    PeerClosed,
    /// The daemon drops it: a malformed, oversized or unexpected frame, a timeout, a failed read or write.
    Dropped(String),
}

impl From<String> for Ended {
    fn from(reason: String) -> Ended {
        Ended::Dropped(reason)
    }
}

/// Waits until the peer has read every reply sent so far: one outstanding reply per connection. A peer that
/// leaves one unread for `timeout` is closed.
fn await_read(stream: &UnixStream, timeout: Duration) -> Result<(), String> {
    let since = Instant::now();
    let mut pause = Duration::from_millis(1);
    while shmbus_os::unread_by_peer(stream.as_fd()).map_err(|e| e.to_string())? > 0 {
        if since.elapsed() >= timeout {
            return Err(format!("a reply was left unread for {} ms", timeout.as_millis()));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    Ok(())
}

/// Reclaims a connection's leases when dropped, also during unwinding.
struct Release<'a> {
    conn: u64,
    state: &'a Mutex<State>,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(conn = self.conn, "connection handler panicked; releasing its leases");
        }
        lock(self.state).connection_closed(self.conn);
    }
}

/// Reads the next request. The handshake must arrive within `timeout` of `since` (the accept), and a frame that
/// started arriving must complete within `timeout`; between requests a greeted client may stay idle.
fn next_request(
    stream: &UnixStream,
    reader: &mut FrameReader,
    buf: &mut [u8],
    greeted: bool,
    since: Instant,
    timeout: Duration,
) -> Result<Request, Ended> {
    let mut started = (!greeted).then_some(since);
    loop {
        if let Some(r) = reader.next_frame().map_err(|e| format!("malformed request: {e}"))? {
            return Ok(r);
        }
        if reader.buffered() > 0 && started.is_none() {
            started = Some(Instant::now());
        }
        let wait = match started {
            None => None,
            Some(t) => {
                let left = timeout.saturating_sub(t.elapsed());
                if left.is_zero() {
                    return Err(format!("request not completed within {} ms", timeout.as_millis()).into());
                }
                Some(left.max(Duration::from_millis(1)))
            }
        };
        stream.set_read_timeout(wait).map_err(|e| e.to_string())?;
        let (n, fds) = shmbus_os::recv_with_fds(stream.as_fd(), buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("request not completed within {} ms", timeout.as_millis())
            }
            _ => e.to_string(),
        })?;
        drop(fds); // clients never send descriptors
        if n == 0 {
            return match reader.buffered() {
                0 => Err(Ended::PeerClosed),
                n => Err(format!("peer closed in the middle of a frame ({n} bytes buffered)").into()),
            };
        }
        reader.push(&buf[..n]);
    }
}

fn conversation(
    conn: u64,
    stream: &UnixStream,
    cred: &PeerCred,
    groups: &[u32],
    state: &Mutex<State>,
    timeout: Duration,
) -> Result<std::convert::Infallible, Ended> {
    let anonymous = Asker { conn, cred, groups, holder: shmbus_os::ProcessId::of(cred.pid), client: None };
    // The name the handshake gave, kept with the connection's leases (`shmbus clients`).
    let mut client_name: Option<String> = None;
    let mut reader = FrameReader::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut greeted = false;
    let since = Instant::now();
    loop {
        let req = next_request(stream, &mut reader, &mut buf, greeted, since, timeout)?;
        if !greeted {
            match req {
                Request::Hello { protocol, layout, client } => {
                    if protocol != PROTOCOL_VERSION || layout != shmbus_ring::LAYOUT_VERSION {
                        let msg = format!(
                            "version mismatch: client speaks protocol {protocol} layout {layout}, daemon speaks protocol {PROTOCOL_VERSION} layout {}",
                            shmbus_ring::LAYOUT_VERSION
                        );
                        let _ = send(
                            stream,
                            &Response::Error { kind: ErrorKind::VersionMismatch, message: msg.clone() },
                            &[],
                        );
                        return Err(msg.into());
                    }
                    // The client name is free text from the peer: escaped, so it cannot forge a log line or steer a terminal.
                    tracing::debug!(conn, client = %shown(&client, MAX_LOG_TEXT), "handshake");
                    client_name = Some(shown(&client, MAX_CLIENT_NAME).into_owned());
                    greeted = true;
                    let daemon = format!("shmbusd {}", env!("CARGO_PKG_VERSION"));
                    send(
                        stream,
                        &Response::Hello { protocol: PROTOCOL_VERSION, layout: shmbus_ring::LAYOUT_VERSION, daemon },
                        &[],
                    )?;
                    continue;
                }
                _ => {
                    let _ = send(
                        stream,
                        &Response::Error { kind: ErrorKind::VersionMismatch, message: "expected Hello first".into() },
                        &[],
                    );
                    return Err(Ended::Dropped("no handshake: the first request was not Hello".into()));
                }
            }
        }
        await_read(stream, timeout)?;
        let who = Asker { client: client_name.as_deref(), ..anonymous };
        let what = request_name(&req);
        let (resp, fds) = match req {
            Request::Hello { .. } => {
                (Response::Error { kind: ErrorKind::InvalidRequest, message: "duplicate Hello".into() }, None)
            }
            Request::CreateTopic { name, spec } => (
                drive(state, |st| st.create_topic(who, &name, &spec)).map(|_| Response::Done).unwrap_or_else(error),
                None,
            ),
            Request::DeleteTopic { name } => {
                (drive(state, |st| st.delete_topic(who, &name)).map(|_| Response::Done).unwrap_or_else(error), None)
            }
            Request::ListTopics => {
                let r = Response::Topics(lock(state).list(who));
                (crate::registry::whole_reply(r, "topic list", "ListTopicsPage"), None)
            }
            Request::Stats { topic } => {
                let r = lock(state).stats(who, topic.as_deref()).map(Response::Stats).unwrap_or_else(error);
                (crate::registry::whole_reply(r, "statistics", "StatsPage"), None)
            }
            Request::ListTopicsPage { after } => {
                let (topics, more) = lock(state).list_page(who, after.as_deref());
                (Response::TopicsPage { topics, more }, None)
            }
            Request::StatsPage { after } => {
                let (stats, more) = lock(state).stats_page(who, after.as_deref());
                (Response::StatsPage { stats, more }, None)
            }
            Request::DaemonInfo => (Response::DaemonInfo(lock(state).daemon_info()), None),
            Request::ListInvalid => {
                let (objects, omitted) = lock(state).list_invalid(who);
                (Response::Invalid { objects, omitted }, None)
            }
            Request::ClientsPage { topic, after } => {
                let r = lock(state).clients_page(who, topic.as_deref(), after);
                (r.map(|(clients, more)| Response::ClientsPage { clients, more }).unwrap_or_else(error), None)
            }
            Request::Report { topics } => {
                (lock(state).report(who, &topics).map(|_| Response::Done).unwrap_or_else(error), None)
            }
            Request::OpenPublisher { topic, payload_type, resume } => {
                let req =
                    LeaseRequest { topic: &topic, kind: LeaseKind::Publisher, payload_type: &payload_type, resume };
                granted(drive(state, |st| st.open_lease(who, req)))
            }
            Request::OpenSubscriber { topic, mode, from_oldest, payload_type, resume } => {
                let kind = LeaseKind::Subscriber { mode: &mode, from_oldest };
                let req = LeaseRequest { topic: &topic, kind, payload_type: &payload_type, resume };
                granted(drive(state, |st| st.open_lease(who, req)))
            }
            Request::Close { lease } => {
                let mut st = lock(state);
                let owned = st.leases.get(&lease).is_some_and(|l| l.conn == Some(conn));
                if owned {
                    (st.close_lease(lease).map(|_| Response::Done).unwrap_or_else(error), None)
                } else {
                    (
                        Response::Error {
                            kind: ErrorKind::InvalidRequest,
                            message: format!("no lease {lease} on this connection"),
                        },
                        None,
                    )
                }
            }
        };
        if let Response::Error { kind, message } = &resp {
            tracing::info!(
                conn,
                pid = cred.pid,
                uid = cred.uid,
                request = what,
                ?kind,
                "request refused: {}",
                shown(message, MAX_LOG_TEXT)
            );
        }
        match &fds {
            Some([d, r]) => send(stream, &resp, &[d.as_fd(), r.as_fd()])?,
            None => send(stream, &resp, &[])?,
        }
    }
}

/// The request's name and object for the log (names cut, see [`shown`]).
fn request_name(req: &Request) -> String {
    let q = |name: &str| match name.char_indices().nth(80) {
        None => format!("{name:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &name[..cut], name.len()),
    };
    match req {
        Request::Hello { .. } => "hello".into(),
        Request::CreateTopic { name, .. } => format!("create {}", q(name)),
        Request::DeleteTopic { name } => format!("delete {}", q(name)),
        Request::ListTopics => "list".into(),
        Request::Stats { .. } => "stats".into(),
        Request::ListTopicsPage { .. } => "list page".into(),
        Request::StatsPage { .. } => "stats page".into(),
        Request::DaemonInfo => "daemon info".into(),
        Request::ClientsPage { .. } => "clients page".into(),
        Request::ListInvalid => "list invalid".into(),
        Request::Report { topics } => format!("report on {} topics", topics.len()),
        Request::OpenPublisher { topic, .. } => format!("publish on {}", q(topic)),
        Request::OpenSubscriber { topic, .. } => format!("subscribe to {}", q(topic)),
        Request::Close { lease } => format!("close lease {lease}"),
    }
}
