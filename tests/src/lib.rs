//! Multi-process integration, stress and crash tests of shmbus on real shared memory.
//!
//! * [`bridge`]: a real `shmbus-bridge` process (`it-bridge`) for the two-bus tests (`tests/bridge*.rs`).
//! * [`cli`]: running the `shmbus` CLI against a test daemon, as root or as `nobody`.
//! * [`shm_fixture`]: a topic under a unique shm prefix, created as the daemon would and removed on drop.
//! * [`control_fuzz`]: the hostile side of the control-plane fuzz (`tests/control_fuzz.rs`, helper `control-fuzzer`).
//! * [`hostile`]: a second account (`nobody`) for the trust tests: scratch directories and a fake daemon.
//! * [`peers`]: spawning and supervising helper processes, with a deadline and SIGKILL on drop.
//! * [`bus_run`]: a fault-test run: a real daemon, `bus-peer` processes, and the checks of what they report.
//! * [`bus_peer`]: the client helper process of the fault tests (`bus-peer`), a real client of a real daemon.
//! * [`peer`]: the helper process itself (`ring-peer`), which opens a topic by name and plays one role.
//! * [`msg`]: the self-checking message format of the ring tests.
//! * [`kid`]: one pipe-test helper process (`pipe-child`) under test.
//! * [`stopped`]: a process held with `SIGSTOP`, continued on drop (a daemon that does not answer).
//! * [`stream`]: the self-checking message stream of the pipe tests (shared by `tests/pipe.rs` and `pipe-child`).
//!
//! The ring tests live in `tests/`: `stress.rs` (a million messages, many producers and consumers of every kind),
//! `churn.rs` (subscribers attaching and detaching mid-stream) and `crash.rs` (clients SIGKILLed mid-claim, while
//! gating, and while holding a group message), with the test process playing the daemon. The fault suite runs the
//! same faults against a real daemon with `bus_client` processes: `faults.rs` (SIGKILL and SIGSTOP of every kind of
//! client, the daemon killed and restarted ten times mid-stream, clients killed while it is down, a minute of
//! churn checked for leaks) and `soak.rs` (2 million messages, or 50 million under `SHMBUS_LONG=1`, with flat
//! resident sets).

pub mod bridge;
pub mod bus_peer;
pub mod bus_run;
pub mod cli;
pub mod control_fuzz;
pub mod daemon;
pub mod hostile;
pub mod kid;
pub mod msg;
pub mod peer;
pub mod peers;
pub mod shm_fixture;
pub mod stopped;
pub mod stream;

/// Byte of the readers object whose OFD lock a peer holds for its lease: the daemon's own rule
/// ([`shmbus_proto::names::lock_offset`]), so the daemon and the tests agree on which byte proves a holder alive.
pub fn lease_lock_offset(publisher: bool, slot: usize) -> u64 {
    shmbus_proto::names::lock_offset(publisher, slot as u32)
}
