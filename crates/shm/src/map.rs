//! Mapping a topic's two shared-memory objects as ring [`Region`]s, for the daemon and for clients alike.

use shmbus_os::{Access, Mapping, OsError};
use shmbus_ring::{AttachError, Geometry, Region, Topic};
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

/// Maps the data object with `data_access` and the readers object read-write, as regions that keep their mappings
/// alive. With `expect`, each mapping must have exactly the size the geometry gives. Pages are pre-faulted so the
/// first messages do not pay page faults.
pub(crate) fn map_regions(
    data: BorrowedFd<'_>,
    readers: BorrowedFd<'_>,
    data_access: Access,
    expect: Option<&Geometry>,
) -> Result<(Region, Region), OsError> {
    let dm = Arc::new(Mapping::map(data, data_access, expect.map(|g| g.data_len()), true)?);
    let rm = Arc::new(Mapping::map(readers, Access::ReadWrite, expect.map(|g| g.readers_len()), true)?);
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
    Ok((watch(d, &dm), watch(r, &rm)))
}

/// Maps a topic's two objects from the descriptors of a lease and validates them (magic, version, geometry,
/// generation).
///
/// `data_access` is `ReadOnly` for subscribers. The readers object is always mapped read-write. With `expect`, the
/// objects must have that geometry and generation (what the daemon's reply said).
pub fn map_topic(
    data: BorrowedFd<'_>,
    readers: BorrowedFd<'_>,
    data_access: Access,
    expect: Option<(&Geometry, u64)>,
) -> Result<Topic, MapError> {
    // Registered before attaching: a topic in membarrier mode admits only processes that are.
    crate::init_barrier();
    let (d, r) = map_regions(data, readers, data_access, expect.map(|(g, _)| g))?;
    let topic = match expect {
        Some((g, generation)) => Topic::attach_expecting(d, r, g, generation)?,
        None => Topic::attach(d, r)?,
    };
    Ok(topic)
}
