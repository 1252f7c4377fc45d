//! The control server: a Unix stream socket, one thread per connection, the version handshake, and dispatch of
//! requests to the [`State`]. Malformed or oversized frames close that connection only.

use crate::registry::{Asker, Granted, LeaseKind, LeaseRequest, Refusal, State};
use shmbus_os::PeerCred;
use shmbus_proto::frame::{self, FrameReader};
use shmbus_proto::msg::*;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

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

fn error(r: Refusal) -> Response {
    Response::Error { kind: r.kind, message: r.message }
}

/// Serves one connection until it closes; then reclaims every lease it held.
pub fn serve(conn: u64, stream: UnixStream, state: Arc<Mutex<State>>) {
    let cred = match shmbus_os::peer_cred(stream.as_fd()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer credentials; closing connection");
            return;
        }
    };
    let groups = shmbus_os::process_groups(cred.pid).unwrap_or_default();
    tracing::debug!(conn, pid = cred.pid, uid = cred.uid, "client connected");
    if let Err(e) = conversation(conn, &stream, &cred, &groups, &state) {
        tracing::debug!(conn, pid = cred.pid, reason = %e, "connection closed");
    }
    lock(&state).connection_closed(conn);
}

fn conversation(
    conn: u64,
    stream: &UnixStream,
    cred: &PeerCred,
    groups: &[u32],
    state: &Mutex<State>,
) -> Result<(), String> {
    let who = Asker { conn, cred, groups };
    let mut reader = FrameReader::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut greeted = false;
    loop {
        let req: Request = loop {
            if let Some(r) = reader.next_frame().map_err(|e| format!("malformed request: {e}"))? {
                break r;
            }
            let (n, fds) = shmbus_os::recv_with_fds(stream.as_fd(), &mut buf).map_err(|e| e.to_string())?;
            drop(fds); // clients never send descriptors
            if n == 0 {
                return Err("peer closed".into());
            }
            reader.push(&buf[..n]);
        };
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
                        return Err(msg);
                    }
                    tracing::debug!(conn, %client, "handshake");
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
                    return Err("no handshake".into());
                }
            }
        }
        let mut st = lock(state);
        let (resp, fds) = match req {
            Request::Hello { .. } => {
                (Response::Error { kind: ErrorKind::InvalidRequest, message: "duplicate Hello".into() }, None)
            }
            Request::CreateTopic { name, spec } => {
                (st.create_topic(&name, &spec).map(|_| Response::Done).unwrap_or_else(error), None)
            }
            Request::DeleteTopic { name } => {
                (st.delete_topic(&name).map(|_| Response::Done).unwrap_or_else(error), None)
            }
            Request::ListTopics => (Response::Topics(st.list()), None),
            Request::Stats { topic } => (st.stats(topic.as_deref()).map(Response::Stats).unwrap_or_else(error), None),
            Request::OpenPublisher { topic, payload_type, resume } => {
                let req =
                    LeaseRequest { topic: &topic, kind: LeaseKind::Publisher, payload_type: &payload_type, resume };
                granted(st.open_lease(who, req))
            }
            Request::OpenSubscriber { topic, mode, from_oldest, payload_type, resume } => {
                let kind = LeaseKind::Subscriber { mode: &mode, from_oldest };
                granted(st.open_lease(who, LeaseRequest { topic: &topic, kind, payload_type: &payload_type, resume }))
            }
            Request::Close { lease } => {
                let owned = st.leases.get(&lease).is_some_and(|l| l.conn == conn);
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
        drop(st);
        match &fds {
            Some([d, r]) => send(stream, &resp, &[d.as_fd(), r.as_fd()])?,
            None => send(stream, &resp, &[])?,
        }
    }
}
