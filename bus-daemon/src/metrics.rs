//! The optional Prometheus listener (loopback only): one tiny HTTP/1.0 responder, no per-message work.
//!
//! Each scrape is served on its own short-lived thread with read and write timeouts, so one idle or slow
//! connection delays no other scrape (issue 16 item 12). At most [`MAX_SCRAPES`] are served at once; a connection
//! beyond that is closed at once.

use crate::registry::State;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Scrapes served at once.
pub const MAX_SCRAPES: usize = 16;
/// How long a scrape may take to send its request line, and to take the response.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds `addr` and serves `/metrics` on it until `stop` is set. A bind failure (the port taken) is returned for
/// the caller to report; the daemon then runs without metrics.
pub fn spawn(
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    // The bound address, not the configured one: with port 0 the kernel picks the port, and this line says which.
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving Prometheus metrics");
    let busy = Arc::new(AtomicUsize::new(0));
    Ok(std::thread::spawn(move || {
        // Relaxed: `stop` is a flag polled with nothing else published through it.
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                // Relaxed: `busy` is a counter bounding threads, ordering nothing else.
                Ok((s, _)) if busy.fetch_add(1, Ordering::Relaxed) < MAX_SCRAPES => {
                    let (state, busy) = (state.clone(), busy.clone());
                    std::thread::spawn(move || {
                        scrape(s, &state);
                        busy.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Ok(_) => {
                    busy.fetch_sub(1, Ordering::Relaxed);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }))
}

/// Answers one scrape, whatever it asked.
fn scrape(mut s: TcpStream, state: &Mutex<State>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(SCRAPE_TIMEOUT));
    let _ = s.set_write_timeout(Some(SCRAPE_TIMEOUT));
    let mut buf = [0u8; 1024];
    let _ = s.read(&mut buf);
    let body = {
        let st = state.lock().unwrap_or_else(|p| p.into_inner());
        crate::stats::prometheus(&st.all_stats())
    };
    let _ = write!(
        s,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}
