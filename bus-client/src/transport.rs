//! Choosing the transport: [`Transport`], `SHMBUS_TRANSPORT`, and the opt-in fallback to pipes. The rules are
//! in the [`pipe`](crate::pipe) module docs.

use crate::error::{ConnectError, OpenError};
use crate::pipe_io::inherit::{self, Direction};
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that selects the transport: `shm`, `pipe` or `auto`.
pub const TRANSPORT_ENV: &str = "SHMBUS_TRANSPORT";

/// How messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Shared memory, with leases from the daemon.
    Shm,
    /// Pipes between related processes (see [`pipe`](crate::pipe)).
    Pipe,
}

/// A value that lives on one transport or the other: what a [`Loan`](crate::Loan) or a
/// [`Message`](crate::Message) holds.
#[derive(Debug)]
pub(crate) enum OnTransport<S, P> {
    /// In shared memory, through the ring.
    Shm(S),
    /// On a pipe.
    Pipe(P),
}

/// What the environment asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    /// `shm` or `pipe`: only that transport.
    pub(crate) only: Option<Transport>,
    /// `auto`: fall back to pipes when shared memory is not usable.
    pub(crate) fallback: bool,
}

/// Parses a value of `SHMBUS_TRANSPORT` (empty: the default).
pub(crate) fn parse(value: &str) -> Result<Selection, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(Selection::default()),
        "shm" => Ok(Selection { only: Some(Transport::Shm), fallback: false }),
        "pipe" => Ok(Selection { only: Some(Transport::Pipe), fallback: false }),
        "auto" => Ok(Selection { only: None, fallback: true }),
        other => Err(format!("{TRANSPORT_ENV}={other:?}: expected shm, pipe or auto")),
    }
}

/// `SHMBUS_TRANSPORT` from the environment.
pub(crate) fn from_env() -> Result<Selection, String> {
    match std::env::var(TRANSPORT_ENV) {
        Ok(v) => parse(&v),
        Err(std::env::VarError::NotPresent) => Ok(Selection::default()),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{TRANSPORT_ENV} is not UTF-8")),
    }
}

/// The routing decisions of one [`Bus`](crate::Bus) and its clones.
#[derive(Debug)]
pub(crate) struct Routing {
    pub(crate) only: Option<Transport>,
    pub(crate) fallback: bool,
    fell_back: AtomicBool,
}

impl Routing {
    pub(crate) fn new(sel: Selection) -> Routing {
        Routing { only: sel.only, fallback: sel.fallback && sel.only.is_none(), fell_back: AtomicBool::new(false) }
    }

    /// Whether topics handed over through `SHMBUS_PIPES` use their pipes.
    pub(crate) fn uses_inherited(&self) -> bool {
        self.only != Some(Transport::Shm)
    }

    /// Whether handles made for children (through `Bus::command`) use pipes.
    pub(crate) fn children_use_pipes(&self) -> bool {
        // Relaxed: a one-way flag; a stale `false` only means one more attempt through the daemon.
        self.only == Some(Transport::Pipe) || self.fell_back.load(Ordering::Relaxed)
    }

    /// Switches to pipes for children from now on (logged once per process, at info level).
    pub(crate) fn fall_back(&self, reason: &dyn std::fmt::Display) {
        // Relaxed: see `children_use_pipes`.
        self.fell_back.store(true, Ordering::Relaxed);
        static LOGGED: AtomicBool = AtomicBool::new(false);
        // Relaxed: only decides who logs.
        if !LOGGED.swap(true, Ordering::Relaxed) {
            tracing::info!(
                reason = %reason,
                "shared memory is not usable; this process talks to the children it spawns over pipes"
            );
        }
    }
}

/// The pipe a parent handed to this process for `topic` in direction `dir`, when the routing uses it: `None`
/// means "through the daemon". Without one, `SHMBUS_TRANSPORT=pipe` is a [`OpenError::NoSuchTopic`].
pub(crate) fn inherited_pipe(
    routing: &Routing,
    topic: &str,
    dir: Direction,
) -> Result<Option<inherit::Taken>, OpenError> {
    if !routing.uses_inherited() {
        return Ok(None);
    }
    shmbus_proto::names::validate_topic(topic).map_err(|e| OpenError::InvalidTopic(e.to_string()))?;
    match inherit::take(topic, dir) {
        Some(fd) => fd.map(Some),
        None if routing.only == Some(Transport::Pipe) => Err(OpenError::NoSuchTopic(format!(
            "no such topic {topic:?}: it was not handed to this process over a pipe for {} (inherited: {}), and the transport is \
             pipe ({TRANSPORT_ENV}=pipe or BusBuilder::transport), which rules out the daemon",
            dir.verb(),
            inherit::describe()
        ))),
        None => Ok(None),
    }
}

/// Whether a failure to open a handle means shared memory is not usable here (rather than a refusal).
pub(crate) fn shm_unusable(e: &OpenError) -> bool {
    matches!(
        e,
        OpenError::DaemonUnavailable { .. }
            | OpenError::ResourceExhausted(_)
            | OpenError::Timeout(_)
            | OpenError::Io(_)
            | OpenError::Daemon(_)
    )
}

/// Whether a failure to connect means shared memory is not usable here.
pub(crate) fn connect_unusable(e: &ConnectError) -> bool {
    matches!(e, ConnectError::DaemonUnavailable { .. } | ConnectError::Timeout | ConnectError::Io(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse("").unwrap(), Selection::default());
        assert_eq!(parse("shm").unwrap().only, Some(Transport::Shm));
        assert_eq!(parse(" Pipe ").unwrap().only, Some(Transport::Pipe));
        assert_eq!(parse("auto").unwrap(), Selection { only: None, fallback: true });
        assert!(parse("tcp").unwrap_err().contains("expected shm, pipe or auto"));
    }

    #[test]
    fn routing() {
        let shm = Routing::new(parse("shm").unwrap());
        assert!(!shm.uses_inherited() && !shm.children_use_pipes());
        let pipe = Routing::new(parse("pipe").unwrap());
        assert!(pipe.uses_inherited() && pipe.children_use_pipes());
        let auto = Routing::new(parse("auto").unwrap());
        assert!(auto.uses_inherited() && !auto.children_use_pipes() && auto.fallback);
        auto.fall_back(&"test");
        assert!(auto.children_use_pipes());
        assert!(!Routing::new(Selection { only: Some(Transport::Shm), fallback: true }).fallback);
    }

    #[test]
    fn which_failures_fall_back() {
        let unavailable =
            OpenError::DaemonUnavailable { path: "/x".into(), source: std::io::ErrorKind::NotFound.into() };
        assert!(shm_unusable(&unavailable));
        assert!(shm_unusable(&OpenError::ResourceExhausted("full".into())));
        assert!(!shm_unusable(&OpenError::PermissionDenied("no".into())));
        assert!(!shm_unusable(&OpenError::TypeMismatch("u32".into())));
    }
}
