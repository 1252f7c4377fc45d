//! Mapping a topic's two shared-memory objects as ring [`Region`]s, for the daemon and for clients alike.

use shmbus_os::{Access, Mapping, OsError};
use shmbus_ring::{AttachError, Extents, Geometry, Region, Topic};
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// Mapping or validating a topic failed.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The OS refused.
    #[error(transparent)]
    Os(#[from] OsError),
    /// The objects did not validate.
    #[error(transparent)]
    Attach(#[from] AttachError),
}

/// Two mapped objects: the regions, and the mappings behind them (for [`Mapping::forget_pages`]).
pub(crate) struct Mapped {
    pub(crate) data: Region,
    pub(crate) readers: Region,
    pub(crate) maps: [Arc<Mapping>; 2],
}

/// Maps the data object with `data_access` and the readers object read-write, as regions that keep their mappings
/// alive. With `expect`, each mapping must have exactly the size the geometry gives. Pages are pre-faulted only
/// with `populate`: pre-faulting a whole shm mapping commits every page of the object (tmpfs allocates on read
/// faults too), payload regions and ledgers nobody uses included.
pub(crate) fn map_regions_with(
    data: BorrowedFd<'_>,
    readers: BorrowedFd<'_>,
    data_access: Access,
    expect: Option<&Geometry>,
    populate: bool,
) -> Result<Mapped, OsError> {
    let dm = Arc::new(Mapping::map(data, data_access, expect.map(|g| g.data_len()), populate)?);
    let rm = Arc::new(Mapping::map(readers, Access::ReadWrite, expect.map(|g| g.readers_len()), populate)?);
    let writable = data_access == Access::ReadWrite;
    // SAFETY: shared mappings of the whole objects, page-aligned and `len` bytes long, readable, writable exactly
    // when mapped read-write (the data object per `data_access`, the readers object always), and kept alive by the
    // `Arc` backings stored in the regions.
    let (d, r) = unsafe {
        (
            Region::from_raw(dm.as_mut_ptr(), dm.len(), writable, dm.clone()),
            Region::from_raw(rm.as_mut_ptr(), rm.len(), true, rm.clone()),
        )
    };
    // A truncated object makes the topic read as closed (its mapping now reads zeros; see shmbus_os::sigbus).
    let watch = |r: Region, m: &Mapping| match m.truncation_flag() {
        Some(flag) => r.watch_loss(flag),
        None => r,
    };
    Ok(Mapped { data: watch(d, &dm), readers: watch(r, &rm), maps: [dm, rm] })
}

/// Maps a topic's two objects from the descriptors of a lease and validates them (magic, version, geometry,
/// generation).
///
/// `data_access` is `ReadOnly` for subscribers. What every handle reads is pre-faulted; payload regions and group
/// ledgers are not (see the body). The readers object is always mapped read-write. With `expect`, the
/// objects must have that geometry and generation (what the daemon's reply said).
pub fn map_topic(
    data: BorrowedFd<'_>,
    readers: BorrowedFd<'_>,
    data_access: Access,
    expect: Option<(&Geometry, u64)>,
) -> Result<Topic, MapError> {
    // Registered before attaching: a topic in membarrier mode admits only processes that are.
    crate::init_barrier();
    let m = map_regions_with(data, readers, data_access, expect.map(|(g, _)| g), false)?;
    let topic = match expect {
        Some((g, generation)) => Topic::attach_expecting(m.data, m.readers, g, generation)?,
        None => Topic::attach(m.data, m.readers)?,
    };
    // Pre-fault what every handle reads from the start (header, slot lines, index ring; the readers object but
    // its group ledgers), so the first messages do not pay page faults there. The payload regions and ledgers
    // are faulted in as they are used (issue 13): pre-faulting them would commit every region of the topic to
    // /dev/shm as soon as anyone attached.
    let x = Extents::of(&topic.geometry());
    let [dm, rm] = &m.maps;
    dm.prefault(0, x.data_head.end);
    rm.prefault(0, x.ledgers.start);
    rm.prefault(x.ledgers.end, x.readers_len - x.ledgers.end);
    Ok(topic)
}
