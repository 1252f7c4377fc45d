//! After a restart: the leases granted before it, read back from the lease file (see [`crate::lease_file`]).

use super::{Lease, State};
use crate::lease_file::{LeaseFile, Record};
use shmbus_proto::msg::Role;

impl State {
    /// Loads the lease file of the prefix (with the prefix lock held, after [`State::adopt_existing`]): every
    /// record of an adopted topic's current generation, with its slot in range and its holder alive, becomes a
    /// lease without a connection, for the holder to resume; the rest are cleared. Then everything no lease holds
    /// is reclaimed. Returns how many leases were restored.
    pub fn restore_leases(&mut self) -> usize {
        let (mut file, found) = LeaseFile::load_or_create(&self.config.shm_prefix);
        let mut restored = 0;
        for (place, r) in found {
            if !self.believable(&r) {
                continue;
            }
            file.keep(place, &r);
            let id = self.next_lease;
            self.next_lease += 1;
            let lease = Lease::from_record(r, None);
            self.fds.lease_added(&lease.topic);
            self.leases.insert(id, lease);
            restored += 1;
        }
        file.forget_the_rest();
        self.lease_file = file;
        // A remembered payload type stays only while a typed lease that registered it is back.
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            self.clear_type_if_untyped(&name);
        }
        // The topics in use keep their descriptors (adoption closed all but the cache's).
        let in_use: std::collections::BTreeSet<String> = self.leases.values().map(|l| l.topic.clone()).collect();
        for name in in_use {
            if let Err(r) = self.use_fds(&name) {
                tracing::error!(topic = %name, "cannot reopen a topic with restored leases: {}", r.message);
            }
        }
        self.reclaim(true);
        restored
    }

    /// Whether a record read back describes a lease that may still be held: its topic adopted in the same
    /// generation, its slot (and group) in range, no other record for the slot, and its holder alive.
    fn believable(&self, r: &Record) -> bool {
        let Some(e) = self.topics.get(&r.topic) else { return false };
        let geo = e.geometry();
        let in_range = match r.role {
            Role::Publisher { slot } => slot < geo.max_publishers,
            Role::Subscriber { slot, group } => slot < geo.max_subscribers && group.is_none_or(|g| g < geo.max_groups),
        };
        let (publisher, slot) = match r.role {
            Role::Publisher { slot } => (true, slot),
            Role::Subscriber { slot, .. } => (false, slot),
        };
        let taken = self.leases.values().any(|l| l.holds(&r.topic, publisher, slot));
        e.segment.topic.generation() == r.generation && in_range && !taken && r.holder.alive()
    }
}
