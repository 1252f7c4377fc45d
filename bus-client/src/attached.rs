//! A ring handle attached under a daemon lease, as shared-memory publishers and subscribers hold it.

use crate::error::{RecvError, SendError};
use crate::lease::{Lease, Usable};
use std::mem::ManuallyDrop;

/// A ring handle (`shmbus_ring::Publisher` or `Subscriber`) and the lease it was attached under.
pub(crate) struct Attached<R> {
    /// Dropped before `lease` (detach first, then unlock and close), and never in a forked child (it would
    /// detach the parent's slot or cursor).
    pub(crate) ring: ManuallyDrop<R>,
    pub(crate) lease: Lease,
}

/// The errors of an operation on a handle that can no longer be used.
pub(crate) trait Unusable {
    /// The topic was closed (deleted or recreated).
    const CLOSED: Self;
    /// The handle belongs to the parent of this forked process.
    const FORKED: Self;
}

impl Unusable for SendError {
    const CLOSED: Self = SendError::Closed;
    const FORKED: Self = SendError::Forked;
}

impl Unusable for RecvError {
    const CLOSED: Self = RecvError::Closed;
    const FORKED: Self = RecvError::Forked;
}

impl<R> Attached<R> {
    pub(crate) fn new(ring: R, lease: Lease) -> Attached<R> {
        Attached { ring: ManuallyDrop::new(ring), lease }
    }

    /// `Ok` while the lease is usable: not closed, and not inherited across `fork`.
    #[inline]
    pub(crate) fn check<E: Unusable>(&self) -> Result<(), E> {
        match self.lease.usable() {
            Usable::Yes => Ok(()),
            Usable::Closed => Err(E::CLOSED),
            Usable::Forked => Err(E::FORKED),
        }
    }

    /// Whether the daemon closed the lease (the ring may say so too).
    pub(crate) fn lease_closed(&self) -> bool {
        self.lease.usable() == Usable::Closed
    }
}

impl<R> Drop for Attached<R> {
    fn drop(&mut self) {
        if self.lease.forked() {
            // The slot is the parent's: leave its ring state alone (the mapping leaks in the child).
            return;
        }
        // SAFETY: `ring` is not used again; `lease` (dropped after this) does not touch it.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
    }
}
