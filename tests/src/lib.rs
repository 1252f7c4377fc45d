//! Multi-process integration, stress and crash tests of shmbus on real shared memory.
//!
//! * [`shm_fixture`]: a topic under a unique shm prefix, created as the daemon would and removed on drop.
//! * [`peers`]: spawning and supervising helper processes, with a deadline and SIGKILL on drop.
//! * [`peer`]: the helper process itself (`ring-peer`), which opens a topic by name and plays one role.
//! * [`msg`]: the self-checking message format.
//!
//! The tests live in `tests/`: `stress.rs` (many producers and consumers of every kind) and `crash.rs` (clients
//! SIGKILLed mid-claim, while gating, and while holding a group message).

pub mod daemon;
pub mod msg;
pub mod peer;
pub mod peers;
pub mod shm_fixture;

/// Byte of the readers object whose OFD lock a peer holds for its lease (far beyond the object's end, so it never
/// overlaps data): the tests' stand-in for the daemon's per-lease liveness lock.
pub fn lease_lock_offset(publisher: bool, slot: usize) -> u64 {
    (1 << 40) + if publisher { 1 << 16 } else { 0 } + slot as u64
}
