//! The lease-holder liveness probe: one answer to "is somebody still holding this slot?".
//!
//! Every lease tries to hold an OFD lock on one byte of the topic's readers object
//! ([`shmbus_proto::names::lock_offset`]); the kernel drops it when the holder's descriptor goes away. Any
//! subscriber of the topic can lock any byte, so this is only a hint between clients (a lossless attach, a group
//! opening waiting out publishers in their claim phase); the daemon's lease table, by process identity, decides
//! who holds a slot (ARCHITECTURE.md §9.6, lease liveness).

use shmbus_proto::names::lock_offset;
use std::os::fd::BorrowedFd;

/// Whether the lease lock of a publisher (`publisher = true`) or subscriber slot is held by some process.
///
/// `readers` is any descriptor of the topic's readers object. A failed probe counts as **alive**: every caller
/// uses "dead" to reclaim, cancel or skip what the holder owns, and doing that to a live holder loses or corrupts
/// its messages, while treating a dead one as alive only delays the wait until the daemon's upkeep cancels the
/// dead holder's claim (a lossless attach and a group opening both wait, bounded).
pub fn holder_alive(readers: BorrowedFd<'_>, publisher: bool, slot: u32) -> bool {
    shmbus_os::is_byte_locked(readers, lock_offset(publisher, slot)).unwrap_or(true)
}
