//! Listings and counters in wire form (`ListTopics`, `Stats`), read from the leases and from shared memory. A
//! peer sees only the topics whose policy admits it for something ([`crate::policy::Policy::shows`]): the others
//! (their names, generations, holders' pids) are left out, and `Stats` of one answers as for a topic that does
//! not exist.

use super::{refuse, Asker, Lease, Refusal, State, TopicEntry};
use shmbus_proto::msg::*;
use shmbus_ring::{GroupStats, PublisherStats, SubscriberStats};
use shmbus_shm::geometry_to_wire;
use std::collections::HashMap;

impl State {
    /// `ListTopics`: the topics `who` may see.
    pub fn list(&self, who: Asker<'_>) -> Vec<TopicInfo> {
        self.topics
            .iter()
            .filter(|(_, e)| shown(e, who))
            .map(|(name, e)| {
                let count = |publisher: bool| {
                    self.leases
                        .values()
                        .filter(|l| l.topic == *name && matches!(l.role, Role::Publisher { .. }) == publisher)
                        .count() as u32
                };
                TopicInfo {
                    name: name.clone(),
                    generation: e.segment.topic.generation(),
                    geometry: geometry_to_wire(&e.geometry()),
                    publishers: count(true),
                    subscribers: count(false),
                    declared: e.declared,
                    memory: e.segment.memory(),
                }
            })
            .collect()
    }

    /// `Stats`: the counters of `topic`, or of every topic, that `who` may see. A topic `who` may not see is
    /// refused exactly like one that does not exist.
    pub fn stats(&self, who: Asker<'_>, topic: Option<&str>) -> Result<Vec<TopicStatsWire>, Refusal> {
        if let Some(t) = topic {
            if !self.topics.get(t).is_some_and(|e| shown(e, who)) {
                return refuse(ErrorKind::NoSuchTopic, format!("no topic {t:?}"));
            }
        }
        Ok(self
            .topics
            .iter()
            .filter(|(n, e)| topic.is_none_or(|t| t == n.as_str()) && shown(e, who))
            .map(|(n, e)| stats_wire(n, e, &self.leases))
            .collect())
    }

    /// The counters of every topic, for the daemon's own metrics listener.
    pub fn all_stats(&self) -> Vec<TopicStatsWire> {
        self.topics.iter().map(|(n, e)| stats_wire(n, e, &self.leases)).collect()
    }
}

/// Whether `who` may see topic `e` in listings and counters.
fn shown(e: &TopicEntry, who: Asker<'_>) -> bool {
    e.settings.policy.shows(who.cred, who.groups)
}

fn holder(leases: &HashMap<u64, Lease>, topic: &str, publisher: bool, slot: u32) -> Option<i32> {
    leases.values().find(|l| l.holds(topic, publisher, slot)).map(|l| l.holder.pid)
}

/// One topic's counters in wire form.
fn stats_wire(name: &str, e: &TopicEntry, leases: &HashMap<u64, Lease>) -> TopicStatsWire {
    let st = e.segment.topic.stats();
    let group_name = |g: usize| e.groups.get(g).cloned().flatten().unwrap_or_else(|| format!("#{g}"));
    let publisher = |p: &PublisherStats| PublisherStatsWire {
        slot: p.slot as u32,
        published: p.published,
        bytes: p.bytes,
        full: p.full,
        aborted: p.aborted,
        pid: holder(leases, name, true, p.slot as u32),
    };
    let subscriber = |s: &SubscriberStats| SubscriberStatsWire {
        slot: s.slot as u32,
        position: s.position,
        lag: s.lag,
        gating: s.gating,
        group: s.group.map(group_name),
        received: s.received,
        lagged: s.lagged,
        skipped: s.skipped,
        demoted: s.demoted,
        pid: holder(leases, name, false, s.slot as u32),
    };
    let group = |g: &GroupStats| GroupStatsWire {
        name: group_name(g.index),
        next: g.next,
        redelivered: g.redelivered,
        abandoned: g.abandoned,
    };
    TopicStatsWire {
        name: name.to_string(),
        generation: e.segment.topic.generation(),
        tail: st.tail,
        closed: st.closed,
        cancelled: st.cancelled,
        wakeups: st.wakeups,
        demotions: st.demotions,
        publishers: st.publishers.iter().map(publisher).collect(),
        subscribers: st.subscribers.iter().map(subscriber).collect(),
        groups: st.groups.iter().map(group).collect(),
        payload_type: e
            .type_info
            .clone()
            .or_else(|| e.settings.payload_type.as_ref().map(|name| TypeInfo { name: name.clone(), hash: 0 })),
    }
}
