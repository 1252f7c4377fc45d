//! The thin OS layer of shmbus: safe wrappers over the Linux facilities the bus is
//! built on, and nothing about topics.
//!
//! - [`shm`]: POSIX shared memory objects (create exclusively with exact mode and
//!   reserved memory, open, reopen read-only, list).
//! - [`map`]: shared mappings of them, exposed as raw pointers, guarded against truncation ([`sigbus`]).
//! - [`futex`]: waiting and waking on 32-bit words in shared memory (process-shared futexes); [`futex_waitv`]:
//!   waiting on up to 128 of them at once.
//! - [`event`]: an eventfd, to wake a `poll(2)` or an async reactor from another thread.
//! - [`fdpass`]: passing descriptors over Unix sockets (`SCM_RIGHTS`).
//! - [`lock`]: liveness through open-file-description byte locks.
//! - [`mod@poll`]: waiting for descriptors; [`fd`]: descriptor numbers handed to children.
//! - [`process`]: whether a process is still the one it was (pid and start time).
//! - [`fork`]: a fork generation, so that values a forked child must not use can tell.
//! - [`stat`]: who owns a descriptor or path and who may write it.
//! - [`secure`]: whether the environment may be trusted (set-user-ID and set-group-ID programs).
//! - [`log_style`]: colour and timestamps for log lines on stderr (a terminal, `NO_COLOR`, the journal).
//! - [`mod@pipe`], [`sigpipe`] (writing without `SIGPIPE`), [`cred`], [`membarrier`], [`clock`]: the small rest.
//!
//! Every failure is an [`OsError`] saying which operation failed on which object.
//!
//! ```
//! use shmbus_os::{Access, Mapping, ShmObject};
//!
//! # fn main() -> shmbus_os::Result<()> {
//! let name = format!("/shmbus-doc-{}", std::process::id());
//! let obj = ShmObject::create_exclusive(&name, 4096, 0o600)?;
//! let map = Mapping::map(obj.fd(), Access::ReadWrite, Some(4096), false)?;
//!
//! // Another process could open `name` and see this byte.
//! // SAFETY: offset 0 is inside the 4096-byte read-write mapping.
//! unsafe { map.as_mut_ptr().write_volatile(7) };
//! let reader = ShmObject::open(&name, Access::ReadOnly)?;
//! let view = Mapping::map(reader.fd(), Access::ReadOnly, None, false)?;
//! // SAFETY: as above, reading only.
//! assert_eq!(unsafe { view.as_ptr().read_volatile() }, 7);
//!
//! ShmObject::unlink(&name)?; // the mappings stay valid until dropped
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]
#![cfg(target_os = "linux")]

pub mod clock;
pub mod cred;
pub mod error;
pub mod event;
pub mod fast_clock;
pub mod fd;
pub mod fdpass;
pub mod fork;
pub mod futex;
pub mod futex_waitv;
pub mod lock;
pub mod log_style;
pub mod map;
pub mod membarrier;
pub mod pipe;
pub mod poll;
pub mod process;
pub mod secure;
pub mod shm;
pub mod shm_extent;
pub mod shm_identity;
pub mod shm_owned;
pub mod sigbus;
pub mod sigpipe;
pub mod stat;

#[cfg(test)]
mod testutil;

pub use clock::{monotonic_ns, realtime_ns};
pub use cred::{peer_cred, peer_groups, PeerCred};
pub use error::{OsError, Result};
pub use event::Event;
pub use fast_clock::fast_realtime_ns;
pub use fd::{access_mode, fifo_inode, inherit_in_child, AccessMode};
pub use fdpass::{recv_with_fds, send_with_fds, unread_by_peer, MAX_FDS};
pub use fork::{count_forks, fork_generation};
pub use futex::FutexWait;
pub use lock::{is_byte_locked, try_lock_byte, unlock_byte};
pub use log_style::{stderr_is_journal, stderr_log_style, LogStyle};
pub use map::Mapping;
pub use membarrier::{global_expedited, register_global_expedited};
pub use pipe::{default_sighup, ignore_sigpipe, pipe, set_cloexec, set_nonblocking, Pipe, PIPE_BUF};
pub use poll::{poll, PollFd, PollFlags, POLLRDHUP};
pub use process::ProcessId;
pub use secure::secure_execution;
pub use shm::{list_shm, Access, ShmObject};
pub use shm_extent::page_size;
pub use shm_identity::{stat_by_name, unlink_if_identical, Identity, ObjectStat, ReopenError};
pub use shm_owned::Expected;
pub use sigpipe::SigpipeBlocked;
pub use stat::{fd_owner, path_owner, Owner};
