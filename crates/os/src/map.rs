//! Memory mappings of shared memory objects.
//!
//! Mappings are handed out as raw pointers ([`memmap2::MmapRaw`]), never as `&mut [u8]`:
//! other processes write the same memory concurrently, so Rust references to it would
//! be unsound. Callers access it through atomics or volatile/raw-pointer operations.

use std::fmt;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, BorrowedFd};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{fd_object, OsError, Result};
use crate::shm::Access;

/// A shared (`MAP_SHARED`) mapping of a whole object, guarded against truncation ([`crate::sigbus`]). Unmapped
/// on drop.
pub struct Mapping {
    /// Registered with the `SIGBUS` guard (see [`crate::sigbus`]); declared first, so it is unregistered
    /// before `raw` unmaps the range.
    guard: Option<crate::sigbus::Guard>,
    raw: MmapRaw,
    access: Access,
}

impl Mapping {
    /// Maps the whole object behind `fd`.
    ///
    /// The length comes from `fstat`; it is an error if it is 0, or differs from
    /// `expected_len` when that is `Some` (kind `InvalidData`). [`Access::ReadWrite`]
    /// gives a `MAP_SHARED` read-write mapping (the fd must be open read-write, else
    /// `EACCES`); [`Access::ReadOnly`] gives a `PROT_READ` mapping.
    ///
    /// `populate` pre-faults the pages (`MAP_POPULATE`), so the first accesses don't
    /// take page faults.
    pub fn map(fd: BorrowedFd<'_>, access: Access, expected_len: Option<usize>, populate: bool) -> Result<Mapping> {
        let object = || fd_object("shm", fd);
        let st = nix::sys::stat::fstat(fd).map_err(|e| OsError::nix("fstat", object(), e))?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size == 0 {
            return Err(OsError::invalid("mmap", object(), ErrorKind::InvalidData, "object is empty (size 0)"));
        }
        let len = usize::try_from(size).map_err(|_| {
            OsError::invalid(
                "mmap",
                object(),
                ErrorKind::InvalidData,
                format!("object size {size} does not fit in usize"),
            )
        })?;
        if let Some(expected) = expected_len {
            if expected != len {
                return Err(OsError::invalid(
                    "mmap",
                    object(),
                    ErrorKind::InvalidData,
                    format!("object size is {len} bytes, expected {expected}"),
                ));
            }
        }
        let mut opts = MmapOptions::new();
        opts.len(len);
        if populate {
            opts.populate();
        }
        let raw_fd = fd.as_raw_fd();
        let raw = match access {
            Access::ReadWrite => opts.map_raw(raw_fd),
            Access::ReadOnly => opts.map_raw_read_only(raw_fd),
        }
        .map_err(|e| OsError::new("mmap", object(), e))?;
        let guard = crate::sigbus::Guard::register(raw.as_ptr(), raw.len(), access == Access::ReadWrite);
        Ok(Mapping { guard, raw, access })
    }

    /// Start of the mapping, for reading.
    pub fn as_ptr(&self) -> *const u8 {
        self.raw.as_ptr()
    }

    /// Start of the mapping, for writing.
    ///
    /// Only meaningful for [`Access::ReadWrite`] mappings: writing through the pointer
    /// of an [`Access::ReadOnly`] mapping faults (`SIGSEGV`).
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.raw.as_mut_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the mapping has length 0 (never true: empty objects are refused).
    pub fn is_empty(&self) -> bool {
        self.raw.len() == 0
    }

    /// Drops this process's page-table entries for the whole pages inside `[offset, offset + len)`
    /// (`MADV_DONTNEED`), so they no longer count in its resident set. The mapping is shared and backed by the
    /// object, so nothing is lost: the next access maps the same page again (or, for a page nobody committed,
    /// commits it). Out-of-range parts are clipped; errors are ignored (it is only advice).
    pub fn forget_pages(&self, offset: usize, len: usize) {
        let page = crate::page_size();
        let start = offset.div_ceil(page) * page;
        let end = (offset.saturating_add(len).min(self.len()) / page) * page;
        if end <= start {
            return;
        }
        // SAFETY: MADV_DONTNEED on a MAP_SHARED mapping of a shm object only drops page-table entries: the pages
        // stay in the object, and a later access faults the same contents back in, so no reference or pointer
        // into the mapping observes a change. The range is inside the mapping (clipped above).
        let _ = unsafe { self.raw.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
    }

    /// Pre-faults the pages of `[offset, offset + len)` readable (`MADV_POPULATE_READ`, Linux 5.14 and later),
    /// as `populate` does for a whole mapping at [`Mapping::map`]: the first accesses there do not take page
    /// faults. Out-of-range parts are clipped; errors (an older kernel, a page past a truncated end) are ignored,
    /// the pages are then faulted in on first touch.
    pub fn prefault(&self, offset: usize, len: usize) {
        let page = crate::page_size();
        let start = offset / page * page;
        let end = offset.saturating_add(len).min(self.len());
        if end > start {
            let _ = self.raw.advise_range(memmap2::Advice::PopulateRead, start, end - start);
        }
    }

    /// How the memory is mapped.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether the object was truncated under the mapping: an access faulted and the rest of the mapping now
    /// reads private zeros (see [`crate::sigbus`]).
    pub fn truncated(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.truncated())
    }

    /// The flag behind [`Mapping::truncated`] (`None` if the guard could not be installed), valid while the
    /// mapping lives: hand it only to what keeps the mapping alive.
    pub fn truncation_flag(&self) -> Option<&'static std::sync::atomic::AtomicBool> {
        self.guard.as_ref().map(|g| g.flag())
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("ptr", &self.as_ptr())
            .field("len", &self.len())
            .field("access", &self.access)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::ShmObject;
    use crate::testutil::{assert_send_sync, temp_shm};

    #[test]
    fn mapping_is_send_and_sync() {
        assert_send_sync::<Mapping>();
    }

    #[test]
    fn two_mappings_share_memory() {
        let (_g, obj) = temp_shm("share", 3 * 4096);
        let a = Mapping::map(obj.fd(), Access::ReadWrite, Some(3 * 4096), true).unwrap();
        let other = ShmObject::open(obj.name(), Access::ReadWrite).unwrap();
        let b = Mapping::map(other.fd(), Access::ReadWrite, None, false).unwrap();
        assert_eq!(a.len(), 3 * 4096);
        assert!(!a.is_empty());
        assert_eq!(b.access(), Access::ReadWrite);
        assert_ne!(a.as_ptr(), b.as_ptr());
        // SAFETY: offsets are inside both 12 KiB mappings; only this test uses them.
        unsafe {
            a.as_mut_ptr().add(5000).write_volatile(0xAB);
            assert_eq!(b.as_ptr().add(5000).read_volatile(), 0xAB);
        }
        // Fresh objects are zero-filled.
        // SAFETY: offset 0 is inside the mapping.
        assert_eq!(unsafe { b.as_ptr().read_volatile() }, 0);
        assert!(format!("{a:?}").contains("ReadWrite"));
    }

    #[test]
    fn wrong_or_zero_length_is_refused() {
        let (_g, obj) = temp_shm("len", 4096);
        let e = Mapping::map(obj.fd(), Access::ReadOnly, Some(8192), false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(e.to_string().contains("expected 8192"), "{e}");

        let (_g0, empty) = temp_shm("len0", 0);
        let e = Mapping::map(empty.fd(), Access::ReadWrite, None, false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
    }
}
