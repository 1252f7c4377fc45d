//! Errors, one type per operation, with short lowercase messages and variants a caller can act on.
//!
//! * [`ConnectError`]: [`Bus::connect`](crate::Bus::connect) and friends;
//! * [`OpenError`]: opening a publisher or subscriber;
//! * [`ControlError`]: topic administration (create, delete, list, stats);
//! * [`SendError`] and [`RecvError`]: the data path, and [`WaitError`] behind their `Wait` variants.
//!
//! One file per concept; `daemon` holds what the control-path errors share.

// First, so that the modules below can use its macro.
#[macro_use]
mod daemon;
mod connect;
mod control;
mod open;
mod recv;
mod send;
mod wait;

pub use connect::ConnectError;
pub use control::ControlError;
pub(crate) use daemon::ConnError;
pub use open::OpenError;
pub use recv::RecvError;
pub use send::SendError;
pub use wait::WaitError;

use std::io;

/// Keeps the OS error's operation and object in the message.
pub(crate) fn os_to_io(e: shmbus_os::OsError) -> io::Error {
    io::Error::new(e.kind(), e)
}

#[cfg(test)]
mod tests;
