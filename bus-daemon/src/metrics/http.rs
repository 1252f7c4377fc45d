//! One metrics connection: read one request head within a deadline, parse it with `httparse`, answer, close.
//!
//! No keep-alive: every response says `Connection: close` (Prometheus reconnects per scrape), so a connection
//! costs its thread for one request at most, bounded by [`TIMEOUT`] to read the head and [`TIMEOUT`] per write.
//! Whatever arrives (bytes that are not HTTP, a head larger than [`MAX_HEAD`], a client that stops sending) is
//! answered 400 or dropped, never a panic.

use super::Route;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a client may take to send its request head, and each write of the response may block.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Most headers in a request head.
const MAX_HEADERS: usize = 32;

/// A parsed request head: what routing needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// The method, as sent.
    pub method: String,
    /// The request target, as sent.
    pub path: String,
    /// The HTTP minor version (0 or 1), echoed in the response's status line.
    pub minor: u8,
}

/// What reading a request head gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A whole, valid head.
    Head(Head),
    /// Bytes that are not an HTTP/1.x request head, or one over [`MAX_HEAD`]: answer 400.
    Bad,
    /// The client closed, or did not finish in time: drop the connection.
    Gone,
}

/// Parses `buf` as far as it goes: `Some` once the head is complete or known bad, `None` while more is needed.
pub fn parse(buf: &[u8]) -> Option<Received> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut rq = httparse::Request::new(&mut headers);
    match rq.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Some(Received::Head(Head {
            method: rq.method.unwrap_or_default().to_string(),
            path: rq.path.unwrap_or_default().to_string(),
            minor: rq.version.unwrap_or(0).min(1),
        })),
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => None,
        Ok(httparse::Status::Partial) | Err(_) => Some(Received::Bad),
    }
}

/// Reads one request head from `s` within [`TIMEOUT`] of now.
pub fn read_head(s: &mut TcpStream) -> Received {
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Received::Gone;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return Received::Gone,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(r) = parse(&buf) {
            return r;
        }
    }
}

/// A response: status, extra headers, body, and whether the body is left out (`HEAD`).
pub struct Reply<'a> {
    /// Status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (its length is sent also when it is left out).
    pub body: &'a str,
    /// Leave the body out (a `HEAD` request).
    pub head_only: bool,
}

/// The reason phrase of the statuses this listener sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

/// Writes `r` to `s` as HTTP/1.`minor` (each write bounded by [`TIMEOUT`]); errors are the client's problem.
pub fn send(s: &mut TcpStream, minor: u8, r: &Reply<'_>) {
    let _ = s.set_write_timeout(Some(TIMEOUT));
    let mut head = format!("HTTP/1.{minor} {} {}\r\n", r.status, reason(r.status));
    for (name, value) in r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", r.body.len()));
    let _ = s.write_all(head.as_bytes());
    if !r.head_only {
        let _ = s.write_all(r.body.as_bytes());
    }
    let _ = s.flush();
}

/// Routes a parsed head (see [`super::route`]).
pub fn route(h: &Head) -> Route {
    super::route(&h.method, &h.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_whole_partial_or_bad() {
        let whole = parse(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        assert_eq!(whole, Some(Received::Head(Head { method: "GET".into(), path: "/metrics".into(), minor: 0 })));
        assert_eq!(parse(b"GET /metr"), None, "more is needed");
        assert_eq!(parse(b"\x00\xff garbage\r\n\r\n"), Some(Received::Bad));
        let mut long = b"GET /metrics HTTP/1.1\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(parse(&long), Some(Received::Bad), "a head past MAX_HEAD is refused, not read on");
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()), Some(Received::Bad));
    }
}
