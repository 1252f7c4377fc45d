//! A topic's shared-memory objects as their owner (the daemon) holds them: exclusive creation with explicit modes and memory
//! reserved up front, adoption after a restart, fresh descriptors per lease, closing and unlinking.

use crate::map::map_regions;
use shmbus_os::{Access, Expected, OsError, ShmObject};
use shmbus_proto::names;
use shmbus_ring::wait::Waiter;
use shmbus_ring::{Admin, AttachError, Geometry, Region};
use std::os::fd::{AsFd, OwnedFd};

/// Creating, adopting or opening a segment failed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The OS refused (the error names the object).
    #[error(transparent)]
    Os(#[from] OsError),
    /// The objects exist but do not validate.
    #[error("topic {topic}: {source}")]
    Invalid {
        /// Topic name.
        topic: String,
        /// Why.
        #[source]
        source: AttachError,
    },
    /// The name is not valid.
    #[error(transparent)]
    Name(#[from] names::NameError),
}

/// Modes applied to a topic's objects.
#[derive(Clone, Copy, Debug)]
pub struct Modes {
    /// Mode of the data and readers objects (clients get descriptors, so 0600 is enough). The wake-up words live
    /// in the readers object: a topic has no other file in /dev/shm.
    pub objects: u32,
}

impl Default for Modes {
    fn default() -> Self {
        Modes { objects: 0o600 }
    }
}

/// One topic's objects, mapped read-write by the daemon.
pub struct Segment {
    /// Shm prefix.
    pub prefix: String,
    /// Topic name.
    pub topic_name: String,
    data: ShmObject,
    readers: ShmObject,
    /// The validated ring view, with the owner's rights (admin and recovery operations): the daemon created or
    /// adopted the objects and maps both read-write.
    pub topic: Admin,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("topic", &self.topic_name).field("geometry", &self.topic.geometry()).finish()
    }
}

/// Both objects mapped read-write, the daemon's view.
fn map_both(data: &ShmObject, readers: &ShmObject, expect: Option<&Geometry>) -> Result<(Region, Region), OsError> {
    map_regions(data.fd(), readers.fd(), Access::ReadWrite, expect)
}

struct Undo(Vec<Box<dyn FnOnce()>>);
impl Undo {
    fn disarm(mut self) {
        self.0.clear();
    }
}
impl Drop for Undo {
    fn drop(&mut self) {
        while let Some(f) = self.0.pop() {
            f();
        }
    }
}

impl Segment {
    /// Creates a topic's objects exclusively (an existing name is an error), reserves their memory (a full
    /// /dev/shm fails here) and initializes the ring (its wake-up words included). Nothing is left behind on
    /// failure.
    pub fn create(
        prefix: &str,
        topic: &str,
        geo: &Geometry,
        generation: u64,
        modes: Modes,
    ) -> Result<Segment, SegmentError> {
        names::validate_prefix(prefix)?;
        names::validate_topic(topic)?;
        // The creator's registration decides the topic's barrier mode (see `shmbus_ring::Admin::create`).
        crate::init_barrier();
        geo.validate().map_err(|e| SegmentError::Invalid { topic: topic.into(), source: e })?;
        let mut undo = Undo(Vec::new());
        let dn = names::data_object(prefix, topic);
        let rn = names::readers_object(prefix, topic);
        let data = ShmObject::create_exclusive(&dn, geo.data_len() as u64, modes.objects)?;
        undo.0.push(Box::new(move || drop(ShmObject::unlink(&dn))));
        let readers = ShmObject::create_exclusive(&rn, geo.readers_len() as u64, modes.objects)?;
        undo.0.push(Box::new(move || drop(ShmObject::unlink(&rn))));
        let (d, r) = map_both(&data, &readers, Some(geo))?;
        let t = Admin::create(d, r, geo, 0, generation)
            .map_err(|e| SegmentError::Invalid { topic: topic.into(), source: e })?;
        undo.disarm();
        Ok(Segment { prefix: prefix.into(), topic_name: topic.into(), data, readers, topic: t })
    }

    /// Opens and validates existing objects (after a daemon restart). Each object must be this process's own
    /// (opened without following symlinks; `fstat`: owner, exact mode `modes.objects`, one link, the size its
    /// header gives) and its header must validate, read with `pread`, before anything is mapped: a planted or
    /// foreign object is refused without touching its pages. Never deletes an object.
    pub fn adopt(prefix: &str, topic: &str, modes: Modes) -> Result<Segment, SegmentError> {
        crate::init_barrier();
        names::validate_prefix(prefix)?;
        names::validate_topic(topic)?;
        let me = nix::unistd::geteuid().as_raw();
        let expected = Expected { uid: me, mode: modes.objects };
        let invalid = |e| SegmentError::Invalid { topic: topic.into(), source: e };
        let header = |name: String, magic: u64| -> Result<(ShmObject, shmbus_ring::Header), SegmentError> {
            let (obj, size) = ShmObject::open_owned(&name, expected)?;
            let mut bytes = [0u8; shmbus_ring::LINE];
            if size < bytes.len() as u64 {
                return Err(invalid(AttachError::Corrupted { what: "object smaller than its header" }));
            }
            obj.read_at(0, &mut bytes)?;
            let h = shmbus_ring::parse_header(&bytes, magic, size).map_err(invalid)?;
            Ok((obj, h))
        };
        let (data, dh) = header(names::data_object(prefix, topic), shmbus_ring::DATA_MAGIC)?;
        let (readers, rh) = header(names::readers_object(prefix, topic), shmbus_ring::READERS_MAGIC)?;
        if dh != rh {
            return Err(invalid(AttachError::Corrupted { what: "the two objects' headers disagree" }));
        }
        // Validated: mapping (and pre-faulting) now touches exactly the pages the geometry gives.
        let (d, r) = map_both(&data, &readers, Some(&dh.geometry))?;
        let t = Admin::adopt(d, r).map_err(invalid)?;
        Ok(Segment { prefix: prefix.into(), topic_name: topic.into(), data, readers, topic: t })
    }

    /// Fresh descriptors for one lease (its own open file descriptions, so its OFD lock is its own): the data
    /// object read-write for publishers or read-only for subscribers, and the readers object read-write. Both are
    /// reopened through the descriptors this segment holds, never by name: a name unlinked (logind's RemoveIPC)
    /// and replaced by another user's object still yields this topic's objects.
    pub fn lease_fds(&self, data_access: Access) -> Result<(OwnedFd, OwnedFd), OsError> {
        let data = match data_access {
            Access::ReadOnly => self.data.reopen_read_only()?,
            Access::ReadWrite => self.data.reopen(Access::ReadWrite)?,
        };
        Ok((data, self.readers.reopen(Access::ReadWrite)?))
    }

    /// The readers object's descriptor (the daemon's own; used to probe lease locks).
    pub fn readers_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.readers.fd()
    }

    /// Whether the lease lock of a publisher or subscriber slot is held (see [`crate::holder_alive`]).
    pub fn holder_alive(&self, publisher: bool, slot: u32) -> bool {
        crate::holder_alive(self.readers.fd(), publisher, slot)
    }

    /// Whether both objects still have the size the mapping expects. An authorized client can truncate an object
    /// (POSIX shm cannot be sealed); touching the missing pages reads zeros instead of faulting the daemon (the
    /// mappings are guarded, see [`shmbus_os::sigbus`]), and the topic is dropped once this says so.
    pub fn intact(&self) -> bool {
        let g = self.topic.geometry();
        self.data.size().ok() == Some(g.data_len() as u64) && self.readers.size().ok() == Some(g.readers_len() as u64)
    }

    /// Bytes of shared memory the topic uses.
    pub fn memory(&self) -> u64 {
        let g = self.topic.geometry();
        (g.data_len() + g.readers_len()) as u64
    }

    /// Marks the topic closed (attached clients get `Closed`), then unlinks its objects.
    pub fn close_and_unlink(&self, waiter: &dyn Waiter) {
        let _ = self.topic.close(waiter);
        unlink_all(&self.prefix, &self.topic_name);
    }
}

/// Unlinks a topic's two objects (since layout version 2 a topic has no other file).
pub fn unlink_all(prefix: &str, topic: &str) {
    let _ = ShmObject::unlink(&names::data_object(prefix, topic));
    let _ = ShmObject::unlink(&names::readers_object(prefix, topic));
}

impl AsFd for Segment {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.data.fd()
    }
}
