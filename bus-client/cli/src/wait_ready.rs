//! `shmbus wait-ready`: wait until the daemon answers the handshake (for scripts and systemd `ExecStartPost`).

use crate::args::WaitReadyArgs;
use bus_client::{Bus, ConnectError, Transport};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Pause between two attempts.
const RETRY: Duration = Duration::from_millis(50);
/// Bound on one attempt's handshake.
const ATTEMPT: Duration = Duration::from_secs(2);

/// `wait-ready --timeout` elapsed before the daemon answered (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("the daemon did not answer within {within:?} (last attempt: {last})")]
pub struct NotReady {
    /// The timeout.
    pub within: Duration,
    /// Why the last attempt failed.
    pub last: String,
}

/// Waits; `quiet` leaves out the "ready" line on stderr.
pub fn run(socket: Option<PathBuf>, a: WaitReadyArgs, quiet: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + a.timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match attempt(socket.as_ref(), left.clamp(Duration::from_millis(100), ATTEMPT)) {
            Ok(daemon) => {
                if !quiet {
                    eprintln!("shmbus: daemon ready: {daemon}");
                }
                return Ok(());
            }
            Err(e) if !retryable(&e) => return Err(anyhow::Error::new(e).context("the daemon cannot be used")),
            Err(e) if Instant::now() + RETRY >= deadline => {
                return Err(NotReady { within: a.timeout, last: crate::exit::message_of(&e.into()) }.into());
            }
            Err(e) => tracing::debug!(error = %e, "daemon not ready yet"),
        }
        std::thread::sleep(RETRY);
    }
}

/// One handshake, without reconnection threads or fallbacks; the daemon's self-description.
fn attempt(socket: Option<&PathBuf>, timeout: Duration) -> Result<String, ConnectError> {
    let mut b = Bus::builder()
        .client_name(format!("shmbus {} wait-ready", env!("CARGO_PKG_VERSION")))
        .auto_reconnect(false)
        .request_timeout(timeout)
        .transport(Transport::Shm)
        .fallback_to_pipes(false);
    if let Some(s) = socket {
        b = b.socket(s);
    }
    Ok(b.connect()?.daemon().unwrap_or_default())
}

/// Whether waiting longer can help: a daemon not started yet, or still starting. An untrusted daemon, an unsafe
/// socket directory, another protocol version or a bad configuration will not fix themselves.
fn retryable(e: &ConnectError) -> bool {
    matches!(e, ConnectError::DaemonUnavailable { .. } | ConnectError::Timeout | ConnectError::Io(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_or_slow_daemon_is_waited_for() {
        let gone = ConnectError::DaemonUnavailable { path: "/x".into(), source: std::io::ErrorKind::NotFound.into() };
        assert!(retryable(&gone));
        assert!(retryable(&ConnectError::Timeout));
        assert!(!retryable(&ConnectError::VersionMismatch("v".into())));
        assert!(!retryable(&ConnectError::UntrustedDaemon { path: "/x".into(), uid: 7 }));
    }
}
