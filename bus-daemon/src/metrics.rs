//! The optional Prometheus listener (loopback only): one tiny HTTP/1.0 responder, no per-message work.

use crate::registry::State;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves `/metrics` on `addr` until `stop` is set.
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
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let body = {
                        let st = state.lock().unwrap_or_else(|p| p.into_inner());
                        crate::stats::prometheus(&st.stats(None).unwrap_or_default())
                    };
                    let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }))
}
