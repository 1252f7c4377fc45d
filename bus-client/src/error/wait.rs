//! [`WaitError`]: why a handle could not wait on its pollable descriptor.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::Arc;

/// Why a handle could not wait on its pollable descriptor ([`RecvError::Wait`](super::RecvError::Wait),
/// [`SendError::Wait`](super::SendError::Wait)): what failed, and the OS error behind it (also its
/// [`source`](std::error::Error::source)) when there is one. An OS failure is reported as this, never as a clean
/// `Closed`.
#[derive(Debug, Clone)]
pub struct WaitError {
    what: Cow<'static, str>,
    /// Shared so that the receive and send errors stay `Clone`.
    io: Option<Arc<io::Error>>,
}

impl WaitError {
    /// A failure without an OS error (e.g. a handle that has no descriptor).
    pub(crate) fn new(what: impl Into<Cow<'static, str>>) -> WaitError {
        WaitError { what: what.into(), io: None }
    }

    /// `what` failed with the OS error `e`.
    pub(crate) fn io(what: impl Into<Cow<'static, str>>, e: io::Error) -> WaitError {
        WaitError { what: what.into(), io: Some(Arc::new(e)) }
    }

    /// The OS error behind the failure, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.io.as_deref()
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.io {
            Some(e) => write!(f, "{}: {e}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io.as_deref().map(|e| e as _)
    }
}

/// Equal when they say the same thing: the same failure, and OS errors of the same kind and message (an
/// `io::Error` has no equality of its own).
impl PartialEq for WaitError {
    fn eq(&self, other: &WaitError) -> bool {
        let os = |w: &WaitError| w.io.as_ref().map(|e| (e.kind(), e.to_string()));
        self.what == other.what && os(self) == os(other)
    }
}

impl Eq for WaitError {}
