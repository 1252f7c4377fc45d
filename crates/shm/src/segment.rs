//! A topic's shared-memory objects as their owner (the daemon) holds them: exclusive creation with explicit modes,
//! memory committed as the parts of the topic come into use, adoption after a restart, fresh descriptors per
//! lease, closing and unlinking.
//!
//! What an idle topic commits (issue 13): the objects are created sparse, and only the parts every participant
//! touches from the start are reserved (`fallocate`): the data object's header and publisher slots, and the
//! readers object outside the group ledgers. The index ring is reserved when the first lease is granted
//! ([`Segment::commit_index`]; layout 4 writes nothing of it at creation), a group's ledger when the group opens
//! ([`Segment::commit_group`]), a publisher slot's payload region when a publisher lease takes the slot
//! ([`Segment::commit_publisher`]); a full /dev/shm is then a refusal of that request, never a `SIGBUS`. A topic
//! idle long enough gives the index ring and payload pages back ([`Segment::return_idle`]). The daemon maps the
//! objects without pre-faulting and drops the pages initialization touched from its resident set, so its RSS
//! follows what it reads (headers and slot lines), not the topics' sizes.
//!
//! The segment's own descriptors live in `objects.rs`: the daemon closes those of idle topics
//! ([`Segment::close_fds`]) and every use reopens them by name, checked to be the very files created or adopted
//! ([`Segment::open_fds`]). Code here that needs a descriptor goes through `self.objects.with(|data, readers| …)`.

use crate::map::{map_regions_with, Mapped};
pub use crate::objects::Health;
use crate::objects::Objects;
use shmbus_os::{Access, Expected, Mapping, OsError, ReopenError, ShmObject};
use shmbus_proto::names;
use shmbus_ring::wait::Waiter;
use shmbus_ring::{Admin, AttachError, Extents, Geometry};
use std::os::fd::OwnedFd;
use std::sync::Arc;

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
    /// The descriptors were closed and a name no longer leads to the topic's object (unlinked, or replaced by
    /// another file): the topic cannot be reopened, and no other file is ever handed out in its place.
    #[error("topic {topic}: its objects can no longer be reached by name: {why}")]
    Unreachable {
        /// Topic name.
        topic: String,
        /// What was found under the name.
        why: String,
    },
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
    /// The data and readers objects; their descriptors are closed while the daemon says so (issue 13, see
    /// [`Segment::close_fds`]) and reopened by name, checked, when needed.
    objects: Objects,
    maps: [Arc<Mapping>; 2],
    extents: Extents,
    /// The validated ring view, with the owner's rights (admin and recovery operations): the daemon created or
    /// adopted the objects and maps both read-write.
    pub topic: Admin,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("topic", &self.topic_name).field("geometry", &self.topic.geometry()).finish()
    }
}

/// Both objects mapped read-write, the daemon's view: not pre-faulted (see the module docs).
fn map_both(data: &ShmObject, readers: &ShmObject, expect: &Geometry) -> Result<Mapped, OsError> {
    map_regions_with(data.fd(), readers.fd(), Access::ReadWrite, Some(expect), false)
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
    /// Creates a topic's objects exclusively (an existing name is an error), reserves the memory every participant
    /// touches (a full /dev/shm fails here; see the module docs for what is committed later) and initializes the
    /// ring (its wake-up words included). Nothing is left behind on failure.
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
        let data = ShmObject::create_sparse(&dn, geo.data_len() as u64, modes.objects)?;
        undo.0.push(Box::new(move || drop(ShmObject::unlink(&dn))));
        let readers = ShmObject::create_sparse(&rn, geo.readers_len() as u64, modes.objects)?;
        undo.0.push(Box::new(move || drop(ShmObject::unlink(&rn))));
        let extents = Extents::of(geo);
        // Initialization writes the headers, the tail and the floor (layout 4: nothing of the index ring or the
        // ledgers), and every participant touches the slot lines and wake-up words: reserve those, so a full
        // /dev/shm fails here and no write below can fault.
        data.reserve_range(0, extents.index.start as u64)?;
        readers.reserve_range(0, extents.ledgers.start as u64)?;
        readers.reserve_range(extents.ledgers.end as u64, (extents.readers_len - extents.ledgers.end) as u64)?;
        let m = map_both(&data, &readers, geo)?;
        let t = Admin::create(m.data, m.readers, geo, 0, generation)
            .map_err(|e| SegmentError::Invalid { topic: topic.into(), source: e })?;
        let objects = Objects::new(data, readers, modes.objects)?;
        let seg = Segment { prefix: prefix.into(), topic_name: topic.into(), objects, maps: m.maps, extents, topic: t };
        seg.forget_pages();
        undo.disarm();
        Ok(seg)
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
        // Validated: the mappings have exactly the size the geometry gives (nothing is pre-faulted).
        let m = map_both(&data, &readers, &dh.geometry)?;
        let t = Admin::adopt(m.data, m.readers).map_err(invalid)?;
        let extents = Extents::of(&dh.geometry);
        let objects = Objects::new(data, readers, modes.objects)?;
        Ok(Segment { prefix: prefix.into(), topic_name: topic.into(), objects, maps: m.maps, extents, topic: t })
    }

    /// Fresh descriptors for one lease (its own open file descriptions, so its OFD lock is its own): the data
    /// object read-write for publishers or read-only for subscribers, and the readers object read-write. Both are
    /// reopened through the descriptors this segment holds, never by name: a name unlinked (logind's RemoveIPC)
    /// and replaced by another user's object still yields this topic's objects. Closed descriptors are reopened
    /// first, by name and only if the name still leads to the topic's object (see [`Segment::open_fds`]).
    pub fn lease_fds(&self, data_access: Access) -> Result<(OwnedFd, OwnedFd), OsError> {
        self.objects.with(|data, readers| {
            let data = match data_access {
                Access::ReadOnly => data.reopen_read_only()?,
                Access::ReadWrite => data.reopen(Access::ReadWrite)?,
            };
            Ok((data, readers.reopen(Access::ReadWrite)?))
        })
    }

    /// Opens the segment's own descriptors unless they are open: by name (`O_NOFOLLOW`), and only if `fstat` of
    /// what opened shows the recorded device and inode, this process's uid, the exact mode, one link and the
    /// geometry's size. Returns whether it reopened them. A name that no longer leads to the topic's object is
    /// [`SegmentError::Unreachable`]; running out of descriptors is [`SegmentError::Os`] (`EMFILE`).
    pub fn open_fds(&self) -> Result<bool, SegmentError> {
        self.objects.open().map_err(|e| match e {
            ReopenError::Os(o) => SegmentError::Os(o),
            ReopenError::NotTheObject { name, why } => {
                SegmentError::Unreachable { topic: self.topic_name.clone(), why: format!("{name}: {why}") }
            }
        })
    }

    /// Closes the segment's own descriptors (the mappings stay, so headers, counters and stats still read),
    /// if both names still lead to its objects; otherwise keeps them and says what was found instead (such a
    /// topic could not be reopened: the daemon drops it rather than close it).
    pub fn close_fds(&self) -> Result<(), String> {
        self.objects.close()
    }

    /// Whether the segment's own descriptors are open.
    pub fn fds_open(&self) -> bool {
        self.objects.is_open()
    }

    /// Where the parts of the topic's objects lie (what each commit reserves).
    pub fn extents(&self) -> &Extents {
        &self.extents
    }

    /// Reserves the index ring before a lease is granted (every participant reads it, a publisher writes it; a
    /// read fault on a hole commits a page too): a full /dev/shm refuses the lease instead of faulting a client
    /// later. Idempotent, and cheap once reserved.
    pub fn commit_index(&self) -> Result<(), OsError> {
        let r = &self.extents.index;
        self.objects.with(|data, _| data.reserve_range(r.start as u64, r.len() as u64))
    }

    /// Gives an idle topic's index ring and payload regions back to /dev/shm, if the ring agrees that nothing
    /// is retained that anyone could still read ([`Admin::forget_retained`]). The caller guarantees that no
    /// lease of the topic exists (and none is granted meanwhile). Returns the bytes of /dev/shm given back, or
    /// why the topic is not idle.
    pub fn return_idle(&self) -> Result<u64, ReturnRefused> {
        let page = shmbus_os::page_size();
        self.topic.forget_retained().map_err(ReturnRefused::NotIdle)?;
        let before = self.committed();
        let x = &self.extents;
        // Through the end of the last page (past the object's end is allowed), so no partial page is kept.
        let end = self.topic.geometry().data_len().div_ceil(page) * page;
        let len = (end - x.index.start) as u64;
        self.objects.with(|data, _| data.release_range(x.index.start as u64, len)).map_err(ReturnRefused::Os)?;
        self.forget_pages();
        Ok(before.saturating_sub(self.committed()))
    }

    /// Reserves the ledger of group slot `g` before the group opens (opening writes every word of it): a full
    /// /dev/shm is `ENOSPC` here rather than a fault. Idempotent.
    pub fn commit_group(&self, g: usize) -> Result<(), OsError> {
        let r = self.extents.ledger(g);
        self.objects.with(|_, readers| readers.reserve_range(r.start as u64, r.len() as u64))
    }

    /// Reserves the payload region of publisher slot `p` before a publisher lease takes the slot: a full
    /// /dev/shm refuses the lease instead of faulting the publisher later. Idempotent (a slot used before is
    /// already committed).
    pub fn commit_publisher(&self, p: usize) -> Result<(), OsError> {
        let r = self.extents.region(p);
        self.objects.with(|data, _| data.reserve_range(r.start as u64, r.len() as u64))
    }

    /// Bytes of /dev/shm the topic's objects commit now (their `st_blocks`), at most [`Segment::memory`].
    pub fn committed(&self) -> u64 {
        self.objects.committed()
    }

    /// Drops the daemon's page-table entries of both objects, so its resident set holds none of the topic's
    /// pages until it reads them again. The objects keep their contents.
    pub fn forget_pages(&self) {
        for m in &self.maps {
            m.forget_pages(0, m.len());
        }
    }

    /// A fresh read-write descriptor of the readers object (to probe lease locks from elsewhere).
    pub fn readers_fd(&self) -> Result<OwnedFd, OsError> {
        self.objects.with(|_, readers| readers.reopen(Access::ReadWrite))
    }

    /// Whether the lease lock of a publisher or subscriber slot is held (see [`crate::holder_alive`]). A probe
    /// that cannot be made (the descriptors cannot be reopened) counts as alive, as a failed probe does.
    pub fn holder_alive(&self, publisher: bool, slot: u32) -> bool {
        self.objects.with(|_, readers| Ok(crate::holder_alive(readers.fd(), publisher, slot))).unwrap_or(true)
    }

    /// Whether both objects still have the size the mapping expects. An authorized client can truncate an object
    /// (POSIX shm cannot be sealed); touching the missing pages reads zeros instead of faulting the daemon (the
    /// mappings are guarded, see [`shmbus_os::sigbus`]), and the topic is dropped once this says so.
    pub fn intact(&self) -> bool {
        self.health() == Health::Intact
    }

    /// [`Segment::intact`], telling a truncated object from one that can no longer be reached by name while the
    /// descriptors are closed (checked with `fstat` while they are open, `lstat` by name otherwise: nothing is
    /// opened).
    pub fn health(&self) -> Health {
        self.objects.health()
    }

    /// Bytes of shared memory the topic may use (its objects' sizes; what it commits is [`Segment::committed`]).
    pub fn memory(&self) -> u64 {
        let g = self.topic.geometry();
        (g.data_len() + g.readers_len()) as u64
    }

    /// Marks the topic closed (attached clients get `Closed`), then unlinks its objects: the names that still
    /// lead to them (a file put in their place is no topic's; see the daemon's invalid-object handling).
    pub fn close_and_unlink(&self, waiter: &dyn Waiter) {
        let _ = self.topic.close(waiter);
        self.objects.unlink_own();
    }
}

/// Why [`Segment::return_idle`] gave nothing back.
#[derive(Debug, thiserror::Error)]
pub enum ReturnRefused {
    /// The ring still retains something someone could read, or a claim is in flight.
    #[error("not idle: {0}")]
    NotIdle(shmbus_ring::NotIdle),
    /// Punching the pages out failed (nothing was lost: the floor moved, the pages stay as they were).
    #[error(transparent)]
    Os(OsError),
}

/// Unlinks a topic's two objects (since layout version 2 a topic has no other file).
pub fn unlink_all(prefix: &str, topic: &str) {
    let _ = ShmObject::unlink(&names::data_object(prefix, topic));
    let _ = ShmObject::unlink(&names::readers_object(prefix, topic));
}
