//! The blocking floor: a pair of POSIX named semaphores (`sem_open`), one per direction, posted and waited on.
//!
//! No payload crosses (latency only): a round trip is a post and a wait on each side, the least a sleeping
//! wake-up costs between two processes. The harness side hands the sequence stamp of the message it sent back as the echo once the
//! peer's post arrived, so the figure is the same at every size. The harness creates both semaphores (mode
//! 0600, names unique to the run; they live in `/dev/shm/sem.*`) and unlinks them when it is done.

use super::cacheline::{echo, stamp_of};
use super::{Duplex, Params, Setup};
use std::ffi::CString;
use std::io;
use std::process::{Child, Command};

/// Semaphore names: `/NAME.down` (harness to peer) and `/NAME.up`.
fn names(p: &Params) -> io::Result<(CString, CString)> {
    let c = |s: String| CString::new(s).map_err(|_| io::Error::other("a NUL in the name"));
    Ok((c(format!("/{}.down", p.name))?, c(format!("/{}.up", p.name))?))
}

/// An open named semaphore.
struct Sem(*mut libc::sem_t);

impl Sem {
    fn open(name: &CString, create: bool) -> io::Result<Sem> {
        let s = if create {
            // SAFETY: `name` is a NUL-terminated string; with O_CREAT the variadic mode and initial value are
            // passed as `mode_t` (promoted to c_uint) and `c_uint`, as sem_open expects.
            unsafe {
                libc::sem_open(name.as_ptr(), libc::O_CREAT | libc::O_EXCL, 0o600 as libc::c_uint, 0 as libc::c_uint)
            }
        } else {
            // SAFETY: `name` is a NUL-terminated string; without O_CREAT no further arguments are read.
            unsafe { libc::sem_open(name.as_ptr(), 0) }
        };
        if s == libc::SEM_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Sem(s))
    }

    fn post(&self) -> io::Result<()> {
        // SAFETY: `self.0` is a semaphore returned by sem_open and not yet closed.
        if unsafe { libc::sem_post(self.0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self) -> io::Result<()> {
        loop {
            // SAFETY: `self.0` is a semaphore returned by sem_open and not yet closed.
            if unsafe { libc::sem_wait(self.0) } == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Sem {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from sem_open and is closed exactly once, here.
        unsafe { libc::sem_close(self.0) };
    }
}

/// One side: the semaphore it posts and the one it waits on.
struct SemLink {
    tx: Sem,
    rx: Sem,
    /// The harness side: the stamp and length of the message to hand back as the echo.
    sent: Option<([u8; 8], usize)>,
    size: usize,
    /// Names to unlink on drop (the harness side only).
    owned: Vec<CString>,
}

impl Drop for SemLink {
    fn drop(&mut self) {
        for n in &self.owned {
            // SAFETY: `n` is a NUL-terminated name; sem_unlink has no other preconditions.
            unsafe { libc::sem_unlink(n.as_ptr()) };
        }
    }
}

impl Duplex for SemLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if let Some(sent) = &mut self.sent {
            *sent = stamp_of(msg);
        }
        self.tx.post()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rx.wait()?;
        match self.sent {
            Some(sent) => Ok(echo(sent, buf)),
            None => Ok(self.size.min(buf.len())),
        }
    }
}

/// The harness side is ready as soon as both semaphores exist.
struct SemSetup(SemLink);

impl Setup for SemSetup {
    fn configure(&mut self, _cmd: &mut Command) {}
    fn connect(self: Box<Self>, _peer: &mut Child) -> io::Result<Box<dyn Duplex>> {
        Ok(Box::new(self.0))
    }
}

pub(super) fn prepare(p: &Params) -> io::Result<Box<dyn Setup>> {
    let (down, up) = names(p)?;
    let tx = Sem::open(&down, true)?;
    let mut owned = vec![down];
    let rx = Sem::open(&up, true);
    owned.push(up);
    match rx {
        Ok(rx) => Ok(Box::new(SemSetup(SemLink { tx, rx, sent: Some(([0; 8], 0)), size: p.size, owned }))),
        Err(e) => {
            // SAFETY: a NUL-terminated name; unlinks the first semaphore, which was created above.
            unsafe { libc::sem_unlink(owned[0].as_ptr()) };
            Err(e)
        }
    }
}

pub(super) fn open_peer(p: &Params) -> io::Result<Box<dyn Duplex>> {
    let (down, up) = names(p)?;
    let rx = Sem::open(&down, false)?;
    let tx = Sem::open(&up, false)?;
    Ok(Box::new(SemLink { tx, rx, sent: None, size: p.size, owned: Vec::new() }))
}
