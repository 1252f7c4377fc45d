//! Periodic duties and shutdown: reclaiming what dead clients held, demoting slow consumers, dropping topics whose
//! objects were truncated, and removing everything on `--cleanup-on-exit`.

use super::{State, TopicEntry};
use crate::remembered::Remembered;
use shmbus_proto::msg::Role;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long an open group may have no member before the upkeep closes it.
const GROUP_GRACE: Duration = Duration::from_secs(2);

impl State {
    /// Reclaims slots that the ring shows in use but no lease holds (their byte locks do not count: any
    /// subscriber can take those).
    pub(super) fn reclaim_unheld(&self, e: &TopicEntry) {
        let geo = e.geometry();
        let t = &e.segment.topic;
        let leased =
            |publisher: bool, slot: u32| self.leases.values().any(|l| l.holds(&e.segment.topic_name, publisher, slot));
        for p in 0..geo.max_publishers {
            if !leased(true, p) {
                if let Ok(n) = t.cancel_claims_of(p as usize, &*e.waiter) {
                    if n > 0 {
                        tracing::warn!(topic = %e.segment.topic_name, slot = p, cancelled = n, "cancelled claims of a dead publisher");
                    }
                }
            }
        }
        for s in 0..geo.max_subscribers {
            if t.subscriber_active(s as usize) && !leased(false, s) {
                let _ = t.release_subscriber(s as usize, &*e.waiter);
                tracing::warn!(topic = %e.segment.topic_name, slot = s, "released the slot of a dead subscriber");
            }
        }
    }

    /// Reclaims the leases whose holder died (whether or not its connection is still open: a forked child may
    /// keep it), then every slot no lease holds.
    pub fn reclaim_orphans(&mut self) {
        let dead: Vec<u64> = self.leases.iter().filter(|(_, l)| !l.holder.alive()).map(|(id, _)| *id).collect();
        for id in dead {
            let l = &self.leases[&id];
            tracing::info!(topic = %l.topic, role = ?l.role, pid = l.holder.pid, uid = l.uid, lease = id, "reclaiming the lease of a dead holder");
            let _ = self.close_lease(id);
        }
        for e in self.topics.values() {
            self.reclaim_unheld(e);
        }
        self.close_memberless_groups();
        self.persist_remembered();
    }

    /// Writes what is remembered of each topic (see [`crate::remembered`]) when it changed since the last write.
    fn persist_remembered(&mut self) {
        let now: BTreeMap<String, Remembered> = self
            .topics
            .iter()
            .map(|(n, e)| (n.clone(), Remembered { creator: e.creator, payload_type: e.type_info.clone() }))
            .filter(|(_, r)| *r != Remembered::default())
            .collect();
        if self.remembered_saved.as_ref() == Some(&now) {
            return;
        }
        match crate::remembered::save(&self.config.shm_prefix, &now) {
            Ok(()) => self.remembered_saved = Some(now),
            Err(e) => tracing::warn!(error = %e, "cannot write the remembered-topics file"),
        }
    }

    /// Gives adopted topics back what was remembered of them (after [`State::adopt_existing`]): the uid an
    /// on-demand topic is charged to, and its payload type (forgotten again if no typed lease is restored).
    pub fn restore_remembered(&mut self) {
        for (topic, r) in crate::remembered::load(&self.config.shm_prefix) {
            if let Some(e) = self.topics.get_mut(&topic) {
                if !e.declared {
                    e.creator = r.creator;
                }
                e.type_info = r.payload_type;
            }
        }
    }

    /// Closes groups that no lease joined within [`GROUP_GRACE`] of opening: the request that opened one can
    /// still be refused after the group opened (its uid's lease quota filled meanwhile, its connection ended).
    fn close_memberless_groups(&mut self) {
        let mut idle = Vec::new();
        for (name, e) in &self.topics {
            for (g, _) in e.groups.iter().enumerate().filter(|(_, n)| n.is_some()) {
                let old = e.group_opened.get(&g).is_none_or(|t| t.elapsed() >= GROUP_GRACE);
                let member = self.leases.values().any(|l| {
                    l.topic == *name && matches!(l.role, Role::Subscriber { group: Some(x), .. } if x as usize == g)
                });
                if old && !member && !e.opening.contains_key(&g) {
                    idle.push((name.clone(), g as u32));
                }
            }
        }
        for (topic, g) in idle {
            self.close_group_if_empty(&topic, g);
        }
    }

    /// Demotes lossless subscribers that held publishers back longer than the topic's bound.
    pub fn enforce_slow_consumers(&mut self, now: Instant) {
        for (name, e) in self.topics.iter_mut() {
            let Some(bound) = e.settings.slow_consumer else { continue };
            let st = e.segment.topic.stats();
            let cap = e.geometry().capacity as u64;
            let mut holding = Vec::new();
            for s in st.subscribers.iter().filter(|s| s.gating && s.group.is_none()) {
                if s.lag + 1 >= cap {
                    holding.push(s.slot as u32);
                    let since = *e.holding_since.entry(s.slot as u32).or_insert(now);
                    if now.duration_since(since) >= bound {
                        let _ = e.segment.topic.demote(s.slot, &*e.waiter);
                        e.holding_since.remove(&(s.slot as u32));
                        tracing::warn!(topic = %name, slot = s.slot, bound_ms = bound.as_millis() as u64, "demoted a slow lossless subscriber to lossy");
                    }
                }
            }
            e.holding_since.retain(|s, _| holding.contains(s));
        }
    }

    /// Drops topics whose objects were truncated under us: marks them closed (what is left of the shared pages
    /// tells attached clients; the daemon's own accesses to missing pages read zeros, see
    /// [`shmbus_os::sigbus`]), unlinks them and forgets their leases. Every other topic keeps working.
    pub fn drop_truncated(&mut self) {
        let broken: Vec<String> =
            self.topics.iter().filter(|(_, e)| !e.segment.intact()).map(|(n, _)| n.clone()).collect();
        for name in broken {
            if let Some(e) = self.topics.remove(&name) {
                tracing::error!(topic = %name, "topic objects were truncated; removing the topic");
                e.segment.close_and_unlink(&*e.waiter);
                self.forget_leases_of(&name);
            }
        }
    }

    /// Marks every topic closed and unlinks everything (`--cleanup-on-exit`).
    pub fn cleanup(&mut self) {
        for (name, e) in std::mem::take(&mut self.topics) {
            e.segment.close_and_unlink(&*e.waiter);
            tracing::info!(topic = %name, "removed topic");
        }
        let ids: Vec<u64> = self.leases.keys().copied().collect();
        for id in ids {
            self.forget_lease(id);
        }
    }
}
