//! What one scrape reports, copied out of the daemon's state under its lock so that the exposition is rendered
//! (and sent) with the lock released: the lock is held for one pass over the topics' counters and the leases.

use crate::conns::Gate;
use crate::registry::State;
use shmbus_proto::msg::{Role, TopicStatsWire};
use std::sync::Mutex;
use std::time::Duration;

/// Topics whose counters are read under one hold of the state lock.
pub const PAGE: usize = 256;

/// The daemon's counters at one instant (counter loads are Relaxed: a snapshot, not a consistent cut).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every topic's counters, in name order.
    pub topics: Vec<TopicStatsWire>,
    /// Publisher leases held.
    pub publisher_leases: u64,
    /// Subscriber leases held (group members included).
    pub subscriber_leases: u64,
    /// Control connections open.
    pub connections: u64,
    /// The topics' shared-memory footprints summed, in bytes.
    pub topics_memory: u64,
    /// How long the daemon has been serving.
    pub uptime: Duration,
    /// The file system of the shared-memory objects, when statvfs answered.
    pub shm: Option<ShmSpace>,
}

/// Size and use of the file system holding the shared-memory objects (statvfs of /dev/shm).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShmSpace {
    /// Total size in bytes.
    pub size: u64,
    /// Bytes in use (by anyone, not only this daemon).
    pub used: u64,
    /// Bytes free for unprivileged use.
    pub free: u64,
}

impl ShmSpace {
    /// Reads the file system of `path`; `None` when statvfs fails.
    pub fn of(path: &str) -> Option<ShmSpace> {
        let st = nix::sys::statvfs::statvfs(path).ok()?;
        let frag = st.fragment_size() as u64;
        let blocks = |n: u64| n.saturating_mul(frag);
        let (total, free_all) = (st.blocks() as u64, st.blocks_free() as u64);
        Some(ShmSpace {
            size: blocks(total),
            used: blocks(total.saturating_sub(free_all)),
            free: blocks(st.blocks_available() as u64),
        })
    }
}

impl Snapshot {
    /// Takes a snapshot: the state's part under its lock (a poisoned lock still reports), the topics' counters
    /// [`PAGE`] topics at a time with the lock released between pages, the rest outside it.
    pub fn take(state: &Mutex<State>, gate: &Gate, uptime: Duration) -> Snapshot {
        let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = {
            let st = lock();
            let publishers = st.leases.values().filter(|l| matches!(l.role, Role::Publisher { .. })).count() as u64;
            Snapshot {
                publisher_leases: publishers,
                subscriber_leases: (st.leases.len() as u64).saturating_sub(publishers),
                topics_memory: st.topics_memory(),
                ..Snapshot::default()
            }
        };
        loop {
            let after = s.topics.last().map(|t| t.name.clone());
            let (page, more) = lock().all_stats_page(after.as_deref(), PAGE);
            s.topics.extend(page);
            if !more {
                break;
            }
        }
        s.connections = u64::from(gate.open());
        s.uptime = uptime;
        s.shm = ShmSpace::of("/dev/shm");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_shm_space_adds_up() {
        let s = ShmSpace::of("/dev/shm").expect("statvfs /dev/shm");
        assert!(s.size > 0 && s.used <= s.size && s.free <= s.size, "{s:?}");
        assert_eq!(ShmSpace::of("/no/such/dir"), None);
    }
}
