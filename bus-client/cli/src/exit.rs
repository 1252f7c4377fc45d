//! Exit codes, chosen from the error that ended the command, and the message printed for it.

use bus_client::{ConnectError, ControlError, OpenError, RecvError, SendError};

/// Any other runtime failure.
pub const RUNTIME: u8 = 1;
/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;
/// The daemon is unavailable or the connection to it failed.
pub const UNAVAILABLE: u8 = 3;
/// The daemon refused: no such topic, permission denied, no free slot, type mismatch, invalid name, exists.
pub const REFUSED: u8 = 4;
/// Something did not happen in time (`sub --timeout`, a send or request timeout).
pub const TIMEOUT: u8 = 5;

/// `sub --timeout` elapsed without a message.
#[derive(Debug, thiserror::Error)]
#[error("no message on topic {topic:?} within {within:?} ({received} received before)")]
pub struct NoMessageWithin {
    /// The topic.
    pub topic: String,
    /// The timeout.
    pub within: std::time::Duration,
    /// Messages received before the silence.
    pub received: u64,
}

/// `pub --timeout` elapsed while the topic was full.
#[derive(Debug, thiserror::Error)]
#[error("no room on topic {topic:?} within {within:?} ({sent} messages sent before){}", held_by.as_deref().map(|h| format!(": held back by {h}")).unwrap_or_default())]
pub struct NoRoomWithin {
    /// The topic.
    pub topic: String,
    /// The timeout.
    pub within: std::time::Duration,
    /// Messages sent before.
    pub sent: u64,
    /// The lossless subscriber that holds the topic full, if the daemon's stats name one.
    pub held_by: Option<String>,
}

/// The exit code for `err`: the first error in its chain that says more than "runtime error".
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(code) = classify(cause) {
            return code;
        }
    }
    RUNTIME
}

/// The error's chain as one line, `outer: cause: cause`, leaving out a cause whose text the line already holds
/// (the library puts the OS reason of `DaemonUnavailable` in its message and also returns it as its source).
pub fn message_of(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Whether `err` is standard output closed by its reader (`| head`): the end of the output, not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

fn classify(e: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if e.is::<crate::wait_ready::NotReady>() {
        return Some(RUNTIME);
    }
    if e.is::<NoMessageWithin>() || e.is::<NoRoomWithin>() {
        return Some(TIMEOUT);
    }
    if let Some(e) = e.downcast_ref::<ConnectError>() {
        return Some(match e {
            ConnectError::Timeout => TIMEOUT,
            ConnectError::Config(_) => USAGE,
            _ => UNAVAILABLE,
        });
    }
    if let Some(e) = e.downcast_ref::<OpenError>() {
        use OpenError::*;
        return Some(match e {
            NoSuchTopic(_) | PermissionDenied(_) | NoFreeSlot(_) | TypeMismatch(_) | InvalidTopic(_) | Closed
            | ResourceExhausted(_) => REFUSED,
            Timeout(_) => TIMEOUT,
            Corrupted(_) | Daemon(_) | Io(_) => RUNTIME,
            // The variants every control-path error has: the daemon is missing, untrusted or not understood.
            _ => UNAVAILABLE,
        });
    }
    if let Some(e) = e.downcast_ref::<ControlError>() {
        use ControlError::*;
        return Some(match e {
            NoSuchTopic(_) | PermissionDenied(_) | AlreadyExists(_) | InvalidRequest(_) | ResourceExhausted(_)
            | Daemon(_) => REFUSED,
            Timeout => TIMEOUT,
            // I/O on the control connection, and the variants every control-path error has (as for `OpenError`).
            _ => UNAVAILABLE,
        });
    }
    if let Some(e) = e.downcast_ref::<SendError>() {
        return Some(if *e == SendError::Timeout { TIMEOUT } else { RUNTIME });
    }
    if let Some(e) = e.downcast_ref::<RecvError>() {
        return Some(if *e == RecvError::Timeout { TIMEOUT } else { RUNTIME });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn code(e: impl std::error::Error + Send + Sync + 'static) -> u8 {
        code_of(&Err::<(), _>(e).context("while testing").unwrap_err())
    }

    #[test]
    fn the_message_names_each_cause_once() {
        let unavailable =
            OpenError::DaemonUnavailable { path: "/x.sock".into(), source: std::io::Error::from_raw_os_error(111) };
        let e = Err::<(), _>(unavailable).context("cannot connect to the shmbus daemon").unwrap_err();
        let m = message_of(&e);
        assert!(m.starts_with("cannot connect to the shmbus daemon: daemon unavailable at /x.sock: "), "{m}");
        assert!(m.contains("SHMBUS_SOCKET"), "{m}");
        assert_eq!(m.matches("Connection refused").count(), 1, "{m}");
        let e = Err::<(), _>(std::io::Error::other("disk on fire")).context("writing").unwrap_err();
        assert_eq!(message_of(&e), "writing: disk on fire");
    }

    #[test]
    fn codes_follow_the_cause() {
        let unavailable =
            OpenError::DaemonUnavailable { path: "/x".into(), source: std::io::ErrorKind::NotFound.into() };
        assert_eq!(code(unavailable), UNAVAILABLE);
        assert_eq!(code(OpenError::NoSuchTopic("t".into())), REFUSED);
        assert_eq!(code(OpenError::PermissionDenied("t".into())), REFUSED);
        assert_eq!(code(ControlError::AlreadyExists("t".into())), REFUSED);
        assert_eq!(code(ControlError::Timeout), TIMEOUT);
        let silent = NoMessageWithin { topic: "t".into(), within: std::time::Duration::from_secs(1), received: 0 };
        assert_eq!(code(silent), TIMEOUT);
        assert_eq!(code(SendError::Closed), RUNTIME);
        assert_eq!(code(std::io::Error::other("disk on fire")), RUNTIME);
    }
}
