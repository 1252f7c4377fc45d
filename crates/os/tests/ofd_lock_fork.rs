//! A lock held by another process is released when that process is SIGKILLed.
//!
//! Kept in its own test binary: `fork` in a multi-threaded test harness would let
//! the child inherit other tests' descriptors (and so their OFD locks) for a moment.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use shmbus_os::{is_byte_locked, pipe, Access, ShmObject};

struct ShmGuard(String);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = ShmObject::unlink(&self.0);
    }
}

const LEASE_BYTE: u64 = 1 << 20;

#[test]
fn lock_of_killed_child_is_released() {
    let name = format!("/shmbus-ostest-{}-fork-lock", std::process::id());
    let _g = ShmGuard(name.clone());
    let _obj = ShmObject::create_exclusive(&name, 4096, 0o600).unwrap();
    let prober = ShmObject::open(&name, Access::ReadOnly).unwrap();

    // Everything the child needs is prepared before fork: it only makes raw,
    // async-signal-safe calls and never returns into Rust test code.
    let path = CString::new(format!("/dev/shm/{}", &name[1..])).unwrap();
    let ready = pipe().unwrap();
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: LEASE_BYTE as libc::off_t,
        l_len: 1,
        l_pid: 0,
    };
    let write_fd = ready.write.as_raw_fd();

    // SAFETY: the child only calls async-signal-safe functions (open, fcntl, write,
    // pause, _exit) on data prepared before the fork, and never returns.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            // SAFETY: all pointers refer to memory prepared before fork and copied
            // into the child; these calls are async-signal-safe.
            unsafe {
                // A fresh open: a new open file description owned by the child only.
                let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                if fd < 0 || libc::fcntl(fd, libc::F_OFD_SETLK, &lock) != 0 {
                    libc::_exit(2);
                }
                if libc::write(write_fd, b"L".as_ptr().cast(), 1) != 1 {
                    libc::_exit(3);
                }
                loop {
                    libc::pause();
                }
            }
        }
        ForkResult::Parent { child } => {
            drop(ready.write);
            let mut byte = [0u8; 1];
            let n = nix::unistd::read(ready.read.as_fd(), &mut byte).unwrap();
            if n != 1 {
                let status = waitpid(child, None).unwrap();
                panic!("child failed to take the lock: {status:?}");
            }
            assert!(is_byte_locked(prober.fd(), LEASE_BYTE).unwrap());
            assert!(!is_byte_locked(prober.fd(), LEASE_BYTE + 1).unwrap());

            kill(child, Signal::SIGKILL).unwrap();
            let status = waitpid(child, None).unwrap();
            assert_eq!(status, WaitStatus::Signaled(child, Signal::SIGKILL, false));

            // The kernel drops the child's files before it becomes reapable, so the lock
            // is gone now; poll briefly anyway rather than assert on exact timing.
            let until = Instant::now() + Duration::from_secs(5);
            while is_byte_locked(prober.fd(), LEASE_BYTE).unwrap() {
                assert!(Instant::now() < until, "lock survived its holder");
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(shmbus_os::try_lock_byte(_obj.fd(), LEASE_BYTE).unwrap());
        }
    }
}
