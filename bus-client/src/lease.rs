//! A handle's lease: asking the daemon for it, mapping and validating the topic, holding the liveness lock, and
//! giving it all back in the right order when the handle drops.
//!
//! A lease has one owner at a time: handles are `Send` but not `Sync`.
//!
//! ```compile_fail
//! fn shared<T: Sync>() {}
//! shared::<bus_client::Publisher>();
//! ```
//!
//! ```compile_fail
//! fn shared<T: Sync>() {}
//! shared::<bus_client::Subscriber>();
//! ```

use crate::control::{Control, Granted, LeaseKind, LeaseSpec};
use crate::error::OpenError;
use crate::fork;
use shmbus_os::Access;
use shmbus_proto::msg::{GeometryWire, LeaseReply, Role};
use shmbus_proto::names;
use shmbus_ring::{Geometry, Topic};
use shmbus_shm::{map_topic, FutexWaiter};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether a handle may operate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Usable {
    Yes,
    /// The lease could not be re-registered after a daemon restart (topic deleted or recreated).
    Closed,
    /// The handle was inherited across `fork`.
    Forked,
}

/// The client side of a granted lease. Dropping it unlocks the lease byte and tells the daemon, except in a
/// forked child, where the lock (shared with the parent through the inherited open file description) and the
/// registration belong to the parent and are left alone.
pub(crate) struct Lease {
    control: Arc<Control>,
    local: u64,
    /// The readers object: the lease lock lives on this open file description, so it stays open as long as
    /// the handle does.
    readers: OwnedFd,
    lock_offset: u64,
    locked: bool,
    closed: Arc<AtomicBool>,
    fork_gen: u64,
    topic: String,
    lease_id: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("topic", &self.topic).field("lease", &self.lease_id).finish()
    }
}

impl Lease {
    /// One Relaxed load of the fork generation and one of the closed flag.
    #[inline]
    pub(crate) fn usable(&self) -> Usable {
        if fork::generation() != self.fork_gen {
            Usable::Forked
        } else if self.closed.load(Ordering::Relaxed) {
            // Relaxed: a flag; the ring's own closed word carries the memory ordering that matters.
            Usable::Closed
        } else {
            Usable::Yes
        }
    }

    /// Whether this process is a fork of the one that opened the lease.
    pub(crate) fn forked(&self) -> bool {
        fork::generation() != self.fork_gen
    }

    /// Topic name.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn readers_fd(&self) -> BorrowedFd<'_> {
        self.readers.as_fd()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.forked() {
            return;
        }
        if self.locked {
            if let Err(e) = shmbus_os::unlock_byte(self.readers.as_fd(), self.lock_offset) {
                tracing::debug!(error = %e, "unlocking a lease byte failed (closing the descriptor releases it)");
            }
        }
        self.control.release(self.local);
    }
}

/// A lease with its topic mapped and lock taken: what a handle attaches its ring side to.
pub(crate) struct Attached {
    pub(crate) lease: Lease,
    pub(crate) topic: Topic,
    pub(crate) waiter: Arc<FutexWaiter>,
    pub(crate) role: Role,
}

/// Converts the wire geometry field by field and checks it.
pub(crate) fn geometry(w: &GeometryWire) -> Result<Geometry, OpenError> {
    shmbus_shm::geometry_from_wire(w)
        .map_err(|e| OpenError::Protocol(format!("the daemon sent an invalid geometry: {e}")))
}

/// Asks for a lease, then maps the topic, takes the lease lock and builds the waiter.
pub(crate) fn open(control: &Arc<Control>, spec: LeaseSpec) -> Result<Attached, OpenError> {
    names::validate_topic(&spec.topic).map_err(|e| OpenError::InvalidTopic(e.to_string()))?;
    let control = control.for_this_process();
    let publisher = matches!(spec.kind, LeaseKind::Publisher);
    let Granted { reply, fds, local, closed } = control.open_lease(&spec)?;
    let LeaseReply { lease: lease_id, topic: _, generation, geometry: wire, role, lock_offset, resume_token: _ } =
        reply;
    let mut fds = fds.into_iter();
    let (Some(data), Some(readers)) = (fds.next(), fds.next()) else {
        control.release(local);
        return Err(OpenError::Protocol("lease reply without its two descriptors".into()));
    };
    // From here on, dropping `lease` gives everything back (unlock if locked, forget, Close).
    let mut lease = Lease {
        control: control.clone(),
        local,
        readers,
        lock_offset,
        locked: false,
        closed,
        fork_gen: fork::generation(),
        topic: spec.topic.clone(),
        lease_id,
    };
    let role_fits = matches!((publisher, role), (true, Role::Publisher { .. }) | (false, Role::Subscriber { .. }));
    if !role_fits {
        return Err(OpenError::Protocol(format!(
            "asked for a {} lease, got {role:?}",
            if publisher { "publisher" } else { "subscriber" }
        )));
    }
    let geo = geometry(&wire)?;
    let access = if publisher { Access::ReadWrite } else { Access::ReadOnly };
    let topic = map_topic(data.as_fd(), lease.readers.as_fd(), access, Some((&geo, generation)))?;
    drop(data);
    // The byte lock is a hint for other clients (a lossless subscriber attaching waits out a publisher whose
    // byte is locked); the daemon's lease table decides who holds the slot. Any subscriber of the topic can take
    // any byte (issue 16 item 5), so a taken byte costs the hint, never the lease.
    lease.locked = shmbus_os::try_lock_byte(lease.readers.as_fd(), lock_offset)?;
    if !lease.locked {
        tracing::debug!(topic = %spec.topic, lease = lease_id, lock_offset, "lease byte locked by another process");
    }
    let waiter = Arc::new(FutexWaiter::new(&topic));
    tracing::debug!(topic = %spec.topic, lease = lease_id, ?role, "lease granted");
    Ok(Attached { lease, topic, waiter, role })
}

/// `is_dead` for attaching a lossless subscriber: publisher slot `p` is dead when nobody holds its lease byte
/// (see [`shmbus_shm::holder_alive`]: a failed probe counts as alive, so attaching waits, bounded, rather than
/// risk missing a claim).
pub(crate) fn publisher_is_dead(readers: BorrowedFd<'_>, p: usize) -> bool {
    !shmbus_shm::holder_alive(readers, true, p as u32)
}
