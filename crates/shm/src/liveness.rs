//! The lease-holder liveness probe: one answer to "is somebody still holding this slot?".
//!
//! Every lease holds an OFD lock on one byte of the topic's readers object ([`shmbus_proto::names::lock_offset`]);
//! the kernel drops it when the holder's descriptor goes away, which is how a dead client is told from a live one.

use shmbus_proto::names::lock_offset;
use std::os::fd::BorrowedFd;

/// Whether the lease lock of a publisher (`publisher = true`) or subscriber slot is held by some process.
///
/// `readers` is any descriptor of the topic's readers object. A failed probe counts as **alive**: every caller
/// uses "dead" to reclaim, cancel or skip what the holder owns, and doing that to a live holder loses or corrupts
/// its messages, while treating a dead one as alive only delays the reclaim until the next probe (the daemon's
/// upkeep and a lossless attach both retry, bounded).
pub fn holder_alive(readers: BorrowedFd<'_>, publisher: bool, slot: u32) -> bool {
    shmbus_os::is_byte_locked(readers, lock_offset(publisher, slot)).unwrap_or(true)
}
