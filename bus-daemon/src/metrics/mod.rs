//! The optional Prometheus listener (loopback only, `metrics` in `[daemon]`): `GET /metrics` answers the
//! exposition of the daemon's counters, any other path 404 and any other method on it 405. No per-message work:
//! a scrape reads the counters the topics keep in shared memory.
//!
//! HTTP is `tiny_http`'s: its accept thread reads each connection on a thread of its own, so an idle or slow
//! connection holds up no other, and hands whole requests to [`WORKERS`] threads of ours, which answer them one
//! at a time. A worker takes a [`Snapshot`] under the state lock (one pass over the topics and the leases) and
//! renders and sends outside it. Every accepted socket has a send timeout (inherited from the listening socket),
//! so a scraper that stops reading holds a worker for at most [`SEND_TIMEOUT`].

mod render;
mod snapshot;

pub use render::{render, CONTENT_TYPE};
pub use snapshot::{ShmSpace, Snapshot, PAGE};

use crate::conns::Gate;
use crate::registry::State;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response};

/// Threads answering scrapes.
pub const WORKERS: usize = 2;
/// How long sending one response may block on a scraper that does not read.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle worker looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

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

/// Routes a request by its method and its URL (a query string is ignored).
pub fn route(method: &Method, url: &str) -> Route {
    let path = url.split_once('?').map_or(url, |(p, _)| p);
    match (path, method) {
        ("/metrics", Method::Get | Method::Head) => Route::Metrics,
        ("/metrics", _) => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
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
    // Linux copies SO_SNDTIMEO to every socket accept() returns; tiny_http does not expose those sockets.
    let timeout = nix::sys::time::TimeVal::new(SEND_TIMEOUT.as_secs() as _, 0);
    nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::SendTimeout, &timeout)?;
    // The bound address, not the configured one: with port 0 the kernel picks the port, and this line says which.
    let addr = listener.local_addr()?;
    let server = tiny_http::Server::from_listener(listener, None).map_err(std::io::Error::other)?;
    tracing::info!(%addr, "serving Prometheus metrics");
    let started = Instant::now();
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        std::thread::scope(|s| {
            for _ in 0..WORKERS {
                s.spawn(|| {
                    // Relaxed: `stop` is a flag polled with nothing else published through it.
                    while !stop.load(Ordering::Relaxed) {
                        match server.recv_timeout(POLL) {
                            Ok(Some(rq)) => answer(rq, &state, &gate, started),
                            Ok(None) => {}
                            // The accept thread stopped (it logged why): nothing more will come.
                            Err(_) => std::thread::sleep(POLL),
                        }
                    }
                });
            }
        });
        // Dropping the server stops its accept thread.
        drop(server);
    })
}

/// Answers one request. A failure to send (the scraper went away, or stopped reading) is the scraper's problem.
fn answer(rq: Request, state: &Mutex<State>, gate: &Gate, started: Instant) {
    let plain = |status: u16, text: &str| Response::from_string(text).with_status_code(status);
    let response = match route(rq.method(), rq.url()) {
        Route::NotFound => plain(404, "not found: the metrics are at /metrics\n"),
        Route::MethodNotAllowed => with_header(plain(405, "method not allowed: GET /metrics\n"), "Allow", "GET, HEAD"),
        Route::Metrics => match render(&Snapshot::take(state, gate, started.elapsed())) {
            Some(body) => with_header(Response::from_string(body), "Content-Type", CONTENT_TYPE),
            None => plain(500, "the metrics could not be encoded\n"),
        },
    };
    let _ = rq.respond(response);
}

/// `r` with one more header (the names and values here are constants, valid HTTP).
fn with_header<R: std::io::Read>(r: Response<R>, name: &str, value: &str) -> Response<R> {
    match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(h) => r.with_header(h),
        Err(()) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(route(&Method::Get, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::Head, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::Get, "/metrics?name[]=x"), Route::Metrics);
        assert_eq!(route(&Method::Post, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::Delete, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::Get, "/"), Route::NotFound);
        assert_eq!(route(&Method::Get, "/metrics/x"), Route::NotFound);
        assert_eq!(route(&Method::Post, "/other"), Route::NotFound);
        assert_eq!(route(&Method::Get, ""), Route::NotFound);
    }
}
