//! POSIX named semaphores (`sem_open` and friends, through glibc).
//!
//! glibc keeps the semaphore `/foo` in the file `/dev/shm/sem.foo`.

use std::ffi::CString;
use std::fmt;
use std::fs::Permissions;
use std::io::{self, ErrorKind};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Uid};

use crate::error::{OsError, Result};
use crate::shm::{check_mode, list_dev_shm, ShmObject, SHM_DIR};

/// Longest single `sem_timedwait` in [`NamedSemaphore::wait_until`], so a wall-clock
/// jump can delay noticing the monotonic deadline by at most this much.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// An open POSIX named semaphore. Closed (`sem_close`) on drop; the name stays until
/// [`NamedSemaphore::unlink`].
pub struct NamedSemaphore {
    sem: *mut libc::sem_t,
    name: String,
}

// SAFETY: a POSIX semaphore is designed to be operated on concurrently from any thread
// (sem_post/sem_wait/... are thread-safe); the pointer stays valid until sem_close in Drop.
unsafe impl Send for NamedSemaphore {}
// SAFETY: see `Send`; all methods take `&self` and only call thread-safe sem_* functions.
unsafe impl Sync for NamedSemaphore {}

/// The file glibc uses for the semaphore `name` (which must be valid).
fn sem_path(name: &str) -> String {
    format!("{SHM_DIR}/sem.{}", &name[1..])
}

fn c_name(name: &str) -> Result<CString> {
    ShmObject::validate_name(name)?;
    // validate_name rejects NUL bytes, so this cannot fail.
    CString::new(name).map_err(|e| OsError::invalid("sem_open", name, ErrorKind::InvalidInput, e.to_string()))
}

impl NamedSemaphore {
    /// Creates a new semaphore with initial `value` and permissions exactly `mode`.
    ///
    /// Uses `sem_open(O_CREAT|O_EXCL)`, so an existing semaphore is never adopted
    /// (`EEXIST`). Because the umask applies to `sem_open`, the mode is then set
    /// explicitly by `chmod`ing `/dev/shm/sem.<name without '/'>`; if that fails the
    /// semaphore is unlinked again. Same name rules as [`ShmObject::validate_name`].
    pub fn create_exclusive(name: &str, mode: u32, value: u32) -> Result<NamedSemaphore> {
        let c = c_name(name)?;
        check_mode("sem_open", name, mode)?;
        // SAFETY: `c` is a valid NUL-terminated string; with O_CREAT sem_open reads two
        // variadic arguments, a mode_t and an unsigned int, which is what we pass.
        let sem = unsafe {
            libc::sem_open(c.as_ptr(), libc::O_CREAT | libc::O_EXCL, mode as libc::mode_t, value as libc::c_uint)
        };
        if sem == libc::SEM_FAILED {
            return Err(OsError::last("sem_open(O_CREAT|O_EXCL)", name));
        }
        let s = NamedSemaphore { sem, name: name.to_owned() };
        let path = sem_path(name);
        if let Err(e) = std::fs::set_permissions(&path, Permissions::from_mode(mode)) {
            drop(s);
            // SAFETY: `c` is a valid NUL-terminated string.
            unsafe { libc::sem_unlink(c.as_ptr()) };
            return Err(OsError::new("chmod", path, e));
        }
        Ok(s)
    }

    /// Opens an existing semaphore.
    pub fn open(name: &str) -> Result<NamedSemaphore> {
        let c = c_name(name)?;
        // SAFETY: `c` is a valid NUL-terminated string; without O_CREAT no variadic
        // arguments are read.
        let sem = unsafe { libc::sem_open(c.as_ptr(), 0) };
        if sem == libc::SEM_FAILED {
            return Err(OsError::last("sem_open", name));
        }
        Ok(NamedSemaphore { sem, name: name.to_owned() })
    }

    /// The name the semaphore was created or opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Increments the semaphore, waking one waiter (`sem_post`).
    pub fn post(&self) -> Result<()> {
        // SAFETY: `self.sem` is a live semaphore from sem_open.
        if unsafe { libc::sem_post(self.sem) } == 0 {
            Ok(())
        } else {
            Err(OsError::last("sem_post", &self.name))
        }
    }

    /// Decrements the semaphore, blocking while it is 0 (`sem_wait`). Retries on `EINTR`.
    pub fn wait(&self) -> Result<()> {
        loop {
            // SAFETY: `self.sem` is a live semaphore from sem_open.
            if unsafe { libc::sem_wait(self.sem) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(OsError::new("sem_wait", &self.name, e));
            }
        }
    }

    /// Decrements the semaphore if it is positive (`sem_trywait`): `Ok(true)` if
    /// decremented, `Ok(false)` if it was 0 (`EAGAIN`). Retries on `EINTR`.
    pub fn try_wait(&self) -> Result<bool> {
        loop {
            // SAFETY: `self.sem` is a live semaphore from sem_open.
            if unsafe { libc::sem_trywait(self.sem) } == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(false),
                _ => return Err(OsError::new("sem_trywait", &self.name, e)),
            }
        }
    }

    /// Decrements the semaphore, waiting at most until the monotonic `deadline`.
    ///
    /// Returns `Ok(true)` if decremented, `Ok(false)` on timeout (a deadline in the past
    /// still tries once without blocking). `sem_timedwait` takes a `CLOCK_REALTIME`
    /// deadline, so this converts on every iteration and waits in slices of at most
    /// 50 ms, re-checking the monotonic deadline in between: a wall-clock jump can
    /// never extend the wait by more than one slice. Retries on `EINTR`.
    pub fn wait_until(&self, deadline: Instant) -> Result<bool> {
        loop {
            if self.try_wait()? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let slice = (deadline - now).min(WAIT_SLICE);
            let abs = realtime_after(slice);
            // SAFETY: `self.sem` is a live semaphore from sem_open; `abs` is a valid
            // timespec that outlives the call.
            if unsafe { libc::sem_timedwait(self.sem, &abs) } == 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::ETIMEDOUT) => continue,
                _ => return Err(OsError::new("sem_timedwait", &self.name, e)),
            }
        }
    }

    /// The current value (`sem_getvalue`). Only a snapshot: it may change at once.
    pub fn value(&self) -> Result<i32> {
        let mut v: libc::c_int = 0;
        // SAFETY: `self.sem` is a live semaphore; `v` is a valid place for the result.
        if unsafe { libc::sem_getvalue(self.sem, &mut v) } == 0 {
            Ok(v)
        } else {
            Err(OsError::last("sem_getvalue", &self.name))
        }
    }

    /// Removes the name (`sem_unlink`). Open semaphores stay usable.
    pub fn unlink(name: &str) -> Result<()> {
        let c = c_name(name)?;
        // SAFETY: `c` is a valid NUL-terminated string.
        if unsafe { libc::sem_unlink(c.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(OsError::last("sem_unlink", name))
        }
    }

    /// The uid owning the semaphore `name`, or `None` when no such semaphore exists.
    pub fn owner(name: &str) -> Result<Option<u32>> {
        use std::os::unix::fs::MetadataExt;
        ShmObject::validate_name(name)?;
        let path = sem_path(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) => Ok(Some(m.uid())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OsError::new("stat", path, e)),
        }
    }

    /// Changes owner and/or group of the semaphore's file `/dev/shm/sem.<name>`;
    /// `None` leaves that id unchanged.
    pub fn chown(name: &str, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        ShmObject::validate_name(name)?;
        let path = sem_path(name);
        nix::unistd::chown(path.as_str(), uid.map(Uid::from_raw), gid.map(Gid::from_raw))
            .map_err(|e| OsError::nix("chown", path, e))
    }
}

/// `CLOCK_REALTIME` now plus `d`, as a timespec.
fn realtime_after(d: Duration) -> libc::timespec {
    let now = crate::clock::realtime_ns();
    let t = now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    libc::timespec { tv_sec: (t / 1_000_000_000) as libc::time_t, tv_nsec: (t % 1_000_000_000) as libc::c_long }
}

impl Drop for NamedSemaphore {
    fn drop(&mut self) {
        // SAFETY: `self.sem` came from sem_open and is closed exactly once, here.
        unsafe { libc::sem_close(self.sem) };
    }
}

impl fmt::Debug for NamedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedSemaphore").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Lists semaphore names (with leading '/') in /dev/shm whose name starts with
/// `prefix` (given without '/'; a leading '/' is tolerated). The order is unspecified.
pub fn list_semaphores(prefix: &str) -> Result<Vec<String>> {
    let prefix = prefix.strip_prefix('/').unwrap_or(prefix);
    Ok(list_dev_shm()?
        .into_iter()
        .filter_map(|n| n.strip_prefix("sem.").map(str::to_owned))
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("/{n}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_send_sync, temp_sem, unique_name, SemGuard};
    use std::os::unix::fs::MetadataExt;
    use std::sync::Arc;

    #[test]
    fn semaphore_is_send_and_sync() {
        assert_send_sync::<NamedSemaphore>();
    }

    #[test]
    fn create_post_try_wait_value() {
        let name = unique_name("sem-basic");
        let _g = SemGuard(name.clone());
        let s = NamedSemaphore::create_exclusive(&name, 0o600, 2).unwrap();
        assert_eq!(s.name(), name);
        assert_eq!(s.value().unwrap(), 2);
        assert!(s.try_wait().unwrap());
        assert!(s.try_wait().unwrap());
        assert!(!s.try_wait().unwrap());
        s.post().unwrap();
        assert_eq!(s.value().unwrap(), 1);
        s.wait().unwrap();
        assert_eq!(s.value().unwrap(), 0);

        // A second handle sees the same counter.
        let t = NamedSemaphore::open(&name).unwrap();
        t.post().unwrap();
        assert!(s.try_wait().unwrap());
        assert!(format!("{t:?}").contains(&name));
    }

    #[test]
    fn exclusive_create_fails_on_existing() {
        let (_g, s) = temp_sem("sem-excl", 5);
        let name = s.name().to_owned();
        let e = NamedSemaphore::create_exclusive(&name, 0o600, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(e.to_string().contains(&name), "{e}");
        assert_eq!(s.value().unwrap(), 5);
    }

    #[test]
    fn mode_is_exact_and_chown_works() {
        let name = unique_name("sem-mode");
        let _g = SemGuard(name.clone());
        let _s = NamedSemaphore::create_exclusive(&name, 0o660, 0).unwrap();
        let meta = std::fs::metadata(sem_path(&name)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o660);
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        NamedSemaphore::chown(&name, Some(uid), Some(gid)).unwrap();
        NamedSemaphore::chown(&name, None, None).unwrap();
        let meta = std::fs::metadata(sem_path(&name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        assert_eq!(NamedSemaphore::owner(&name).unwrap(), Some(uid));
    }

    #[test]
    fn open_missing_and_unlink() {
        let name = unique_name("sem-missing");
        let _g = SemGuard(name.clone());
        let e = NamedSemaphore::open(&name).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let s = NamedSemaphore::create_exclusive(&name, 0o600, 0).unwrap();
        assert_eq!(list_semaphores(&name[1..]).unwrap(), vec![name.clone()]);
        NamedSemaphore::unlink(&name).unwrap();
        assert!(list_semaphores(&name[1..]).unwrap().is_empty());
        assert_eq!(NamedSemaphore::owner(&name).unwrap(), None);
        // Still usable after unlink.
        s.post().unwrap();
        assert!(s.try_wait().unwrap());
        assert!(NamedSemaphore::open(&name).is_err());
        assert!(NamedSemaphore::create_exclusive("bad", 0o600, 0).is_err());
    }

    #[test]
    fn wait_until_times_out() {
        let (_g, s) = temp_sem("sem-timeout", 0);
        // Longer than one slice, so the loop runs several times.
        let deadline = Instant::now() + Duration::from_millis(120);
        assert!(!s.wait_until(deadline).unwrap());
        assert!(Instant::now() >= deadline);
        // Past deadline: no blocking, but an available count is still taken.
        assert!(!s.wait_until(Instant::now()).unwrap());
        s.post().unwrap();
        assert!(s.wait_until(Instant::now() - Duration::from_millis(1)).unwrap());
    }

    #[test]
    fn cross_thread_wakeup() {
        let (_g, s) = temp_sem("sem-wake", 0);
        let s = Arc::new(s);
        let name = s.name().to_owned();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let waiter = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
                let ok = s.wait_until(Instant::now() + Duration::from_secs(30)).unwrap();
                s.wait().unwrap();
                ok
            })
        };
        // Post only once the waiter is certainly asleep in the kernel (after a mere sleep it might not have
        // started waiting yet, and the test would pass without any wake-up).
        let tid = tid_rx.recv().unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while !crate::testutil::blocked_in_syscall(tid, libc::SYS_futex) {
            assert!(Instant::now() < until, "the waiter never blocked");
            std::thread::sleep(Duration::from_millis(1));
        }
        s.post().unwrap();
        let other = NamedSemaphore::open(&name).unwrap();
        other.post().unwrap();
        assert!(waiter.join().unwrap());
        assert_eq!(s.value().unwrap(), 0);
    }
}
