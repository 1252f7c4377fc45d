//! Asymmetric memory barriers through `membarrier(2)`.
//!
//! Readers on the hot path use only compiler barriers; a rare writer calls
//! [`global_expedited`] to force a full barrier on every running thread of every
//! process that called [`register_global_expedited`].

use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{OsError, Result};

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// Cached result of `MEMBARRIER_CMD_QUERY`; -1 = not queried yet.
static SUPPORTED: AtomicI32 = AtomicI32::new(-1);

fn membarrier(cmd: libc::c_int) -> std::io::Result<libc::c_long> {
    // SAFETY: membarrier takes (int cmd, unsigned flags, int cpu_id) and touches no
    // user memory; any cmd value is safe to pass (unknown ones give EINVAL).
    let r = unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint, 0 as libc::c_int) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The supported-commands mask (0 if `membarrier` is missing or forbidden).
fn supported() -> libc::c_int {
    let cached = SUPPORTED.load(Ordering::Relaxed);
    if cached >= 0 {
        return cached;
    }
    let mask = membarrier(MEMBARRIER_CMD_QUERY).map_or(0, |m| m as libc::c_int);
    SUPPORTED.store(mask, Ordering::Relaxed);
    mask
}

fn has(cmds: libc::c_int) -> bool {
    supported() & cmds == cmds
}

/// Registers this process for `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, so its threads take
/// part in barriers issued by any process. Idempotent. Returns `Ok(false)` if the
/// kernel lacks it (checked with `MEMBARRIER_CMD_QUERY` first).
pub fn register_global_expedited() -> Result<bool> {
    if !has(MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) {
        return Ok(false);
    }
    membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)
        .map(|_| true)
        .map_err(|e| OsError::new("membarrier", "MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED", e))
}

/// Issues `MEMBARRIER_CMD_GLOBAL_EXPEDITED`: every running thread of every registered
/// process executes a full memory barrier before this returns. Returns `Ok(false)`
/// (having done nothing) if unsupported; the caller must then fall back to
/// symmetric fences.
pub fn global_expedited() -> Result<bool> {
    if !has(MEMBARRIER_CMD_GLOBAL_EXPEDITED) {
        return Ok(false);
    }
    loop {
        match membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) {
            Ok(_) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(OsError::new("membarrier", "MEMBARRIER_CMD_GLOBAL_EXPEDITED", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_and_issue() {
        let registered = register_global_expedited().unwrap();
        assert_eq!(register_global_expedited().unwrap(), registered, "idempotent");
        let issued = global_expedited().unwrap();
        assert_eq!(issued, has(MEMBARRIER_CMD_GLOBAL_EXPEDITED));
        if registered {
            assert!(issued);
        }
    }
}
