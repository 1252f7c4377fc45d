//! The optional Prometheus listener (loopback only, `metrics` in `[daemon]`): `GET /metrics` answers the
//! exposition of the daemon's counters, any other path 404 and any other method on it 405. No per-message work:
//! a scrape reads the counters the topics keep in shared memory.
//!
//! Each connection is served on a thread of its own, at most [`MAX_CONNECTIONS`] at once (one more is closed at
//! once), for one request: its head must arrive within [`http::TIMEOUT`] (parsed by `httparse`), each write of
//! the response may block [`http::TIMEOUT`], then the connection is closed. So an idle, slow or half-sent
//! connection holds up no other scrape, and a flood of them costs a bounded number of threads. A scrape takes a
//! [`Snapshot`] under the state lock (a page of topics at a time) and renders and sends it outside the lock.

mod http;
mod render;
mod snapshot;

pub use render::{render, CONTENT_TYPE};
pub use snapshot::{ShmSpace, Snapshot, PAGE};

use crate::conns::Gate;
use crate::registry::State;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How often the accept loop looks at the stop flag, in milliseconds.
const POLL_MS: u16 = 100;

/// What a request is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET` (or `HEAD`) `/metrics`: the exposition.
    Metrics,
    /// Another path: 404.
    NotFound,
    /// `/metrics` with another method: 405.
    MethodNotAllowed,
}

/// Routes a request by its method and its request target (a query string is ignored).
pub fn route(method: &str, target: &str) -> Route {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    match (path, method) {
        ("/metrics", "GET" | "HEAD") => Route::Metrics,
        ("/metrics", _) => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// What one connection shares with the listener.
struct Shared {
    state: Arc<Mutex<State>>,
    gate: Gate,
    started: Instant,
    busy: AtomicUsize,
}

/// Binds `addr` and serves `/metrics` on it until `stop` is set. A bind failure (the port taken) is returned for
/// the caller to report; the daemon then runs without metrics.
pub fn spawn(
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    gate: Gate,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    // The bound address, not the configured one: with port 0 the kernel picks the port, and this line says which.
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving Prometheus metrics");
    let shared = Arc::new(Shared { state, gate, started: Instant::now(), busy: AtomicUsize::new(0) });
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        // Relaxed: `stop` is a flag polled with nothing else published through it.
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = [nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN)];
            let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(POLL_MS));
            loop {
                match listener.accept() {
                    Ok((s, _)) => admit(s, &shared),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // Out of descriptors, say: the connection stays queued and poll() would wake at once.
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(POLL_MS.into()));
                        break;
                    }
                }
            }
        }
    })
}

/// Serves `s` on a thread of its own, or closes it when [`MAX_CONNECTIONS`] are being served or no thread can
/// be started.
fn admit(s: TcpStream, shared: &Arc<Shared>) {
    // Relaxed: `busy` is a counter bounding threads, ordering nothing else.
    if shared.busy.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
        shared.busy.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let mine = shared.clone();
    let spawned = std::thread::Builder::new().name("metrics-conn".into()).spawn(move || {
        serve(s, &mine);
        mine.busy.fetch_sub(1, Ordering::Relaxed);
    });
    if spawned.is_err() {
        shared.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers the one request of `s`, then closes it.
fn serve(mut s: TcpStream, shared: &Shared) {
    if s.set_nonblocking(false).is_err() {
        return;
    }
    let head = match http::read_head(&mut s) {
        http::Received::Head(h) => h,
        http::Received::Bad => {
            let bad = http::Reply { status: 400, headers: &[], body: "bad request\n", head_only: false };
            return http::send(&mut s, 1, &bad);
        }
        http::Received::Gone => return,
    };
    let head_only = head.method == "HEAD";
    let plain = |status, body| http::Reply { status, headers: &[], body, head_only };
    match http::route(&head) {
        Route::NotFound => http::send(&mut s, head.minor, &plain(404, "not found: the metrics are at /metrics\n")),
        Route::MethodNotAllowed => {
            let r =
                http::Reply { headers: &[("Allow", "GET, HEAD")], ..plain(405, "method not allowed: GET /metrics\n") };
            http::send(&mut s, head.minor, &r)
        }
        Route::Metrics => {
            let snapshot = Snapshot::take(&shared.state, &shared.gate, shared.started.elapsed());
            match render(&snapshot) {
                Some(body) => {
                    let r = http::Reply { headers: &[("Content-Type", CONTENT_TYPE)], ..plain(200, &body) };
                    http::send(&mut s, head.minor, &r)
                }
                None => http::send(&mut s, head.minor, &plain(500, "the metrics could not be encoded\n")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(route("GET", "/metrics"), Route::Metrics);
        assert_eq!(route("HEAD", "/metrics"), Route::Metrics);
        assert_eq!(route("GET", "/metrics?name[]=x"), Route::Metrics);
        assert_eq!(route("POST", "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route("get", "/metrics"), Route::MethodNotAllowed, "methods are case-sensitive");
        assert_eq!(route("DELETE", "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route("GET", "/"), Route::NotFound);
        assert_eq!(route("GET", "/metrics/x"), Route::NotFound);
        assert_eq!(route("POST", "/other"), Route::NotFound);
        assert_eq!(route("GET", ""), Route::NotFound);
    }
}
