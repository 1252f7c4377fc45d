//! Listings and counters in wire form (`ListTopics`, `Stats`), read from the leases and from shared memory. A
//! peer sees only the topics whose policy admits it for something ([`crate::policy::Policy::shows`]): the others
//! (their names, generations, holders' pids) are left out, and `Stats` of one answers as for a topic that does
//! not exist.
//!
//! Listings of many topics come in pages (`ListTopicsPage`, `StatsPage`, issue 13): each page holds the topics
//! after a name, in name order, as many as keep the reply within [`PAGE_BYTES`] (as the decoder counts it) and at
//! most [`PAGE_TOPICS`], so every reply fits a frame and the state lock is held for one page at a time. The
//! whole-listing requests answer an error naming the paged ones when their reply would not fit a frame, rather
//! than a reply the daemon cannot send.

use super::{refuse, Asker, Lease, Refusal, State, TopicEntry};
use shmbus_proto::codec::{claimed_len, MAX_FRAME};
use shmbus_proto::msg::*;
use shmbus_ring::{GroupStats, PublisherStats, SubscriberStats};
use shmbus_shm::geometry_to_wire;
use std::collections::HashMap;
use std::ops::Bound::{Excluded, Unbounded};

/// Most bytes of topics in one page (as the decoder counts them), half a frame: room for the reply around them.
pub const PAGE_BYTES: usize = MAX_FRAME / 2;
/// Most topics in one page.
pub const PAGE_TOPICS: usize = 1024;

/// Publisher and subscriber lease counts and holders' pids, by topic and slot, from one pass over the leases.
#[derive(Default)]
struct Holders<'a> {
    counts: HashMap<&'a str, (u32, u32)>,
    pids: HashMap<(&'a str, bool, u32), i32>,
    /// The leases that carry a report, by topic (few: bridges).
    reported: HashMap<&'a str, Vec<&'a Lease>>,
}

impl<'a> Holders<'a> {
    fn of(leases: &'a HashMap<u64, Lease>) -> Holders<'a> {
        let mut h = Holders::default();
        for l in leases.values() {
            let (publisher, slot) = match l.role {
                Role::Publisher { slot } => (true, slot),
                Role::Subscriber { slot, .. } => (false, slot),
            };
            let c = h.counts.entry(l.topic.as_str()).or_default();
            if publisher {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
            h.pids.entry((l.topic.as_str(), publisher, slot)).or_insert(l.holder.pid);
            if l.report.is_some() {
                h.reported.entry(l.topic.as_str()).or_default().push(l);
            }
        }
        h
    }

    fn pid(&self, topic: &str, publisher: bool, slot: u32) -> Option<i32> {
        self.pids.get(&(topic, publisher, slot)).copied()
    }
}

/// Takes items from `items` while they fit a page; `more` tells whether any were left.
fn page<T: serde::Serialize>(items: impl Iterator<Item = T>) -> (Vec<T>, bool) {
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut items = items.peekable();
    while let Some(item) = items.peek() {
        let len = claimed_len(item).unwrap_or(usize::MAX);
        // A page always takes its first item (one topic's reply is far below a frame).
        if !out.is_empty() && (out.len() >= PAGE_TOPICS || bytes + len > PAGE_BYTES) {
            return (out, true);
        }
        bytes = bytes.saturating_add(len);
        out.extend(items.next());
    }
    (out, false)
}

/// A whole-listing reply, or an error when it would not fit one frame.
pub fn whole_reply(r: Response, what: &str, paged: &str) -> Response {
    match claimed_len(&r) {
        Ok(len) if len <= MAX_FRAME - 64 => r,
        _ => Response::Error {
            kind: ErrorKind::ResourceExhausted,
            message: format!("the {what} does not fit one reply; ask for it a page at a time ({paged})"),
        },
    }
}

impl State {
    /// `ListTopics`: the topics `who` may see.
    pub fn list(&self, who: Asker<'_>) -> Vec<TopicInfo> {
        let holders = Holders::of(&self.leases);
        self.shown_after(who, None).map(|(n, e)| info(n, e, &holders)).collect()
    }

    /// `ListTopicsPage`: the next page of the topics `who` may see, after `after`, and whether more follow.
    pub fn list_page(&self, who: Asker<'_>, after: Option<&str>) -> (Vec<TopicInfo>, bool) {
        let holders = Holders::of(&self.leases);
        page(self.shown_after(who, after).map(|(n, e)| info(n, e, &holders)))
    }

    /// The topics `who` may see whose names come after `after`, in name order (one page's candidates).
    fn shown_after<'a>(
        &'a self,
        who: Asker<'a>,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a TopicEntry)> + 'a {
        self.topics.range::<str, _>((after.map_or(Unbounded, Excluded), Unbounded)).filter(move |(_, e)| shown(e, who))
    }

    /// `StatsPage`: the counters of the next page of the topics `who` may see, after `after`, and whether more
    /// follow.
    pub fn stats_page(&self, who: Asker<'_>, after: Option<&str>) -> (Vec<TopicStatsWire>, bool) {
        let holders = Holders::of(&self.leases);
        page(self.shown_after(who, after).map(|(n, e)| stats_wire(n, e, &holders)))
    }

    /// `Stats`: the counters of `topic`, or of every topic, that `who` may see. A topic `who` may not see is
    /// refused exactly like one that does not exist.
    pub fn stats(&self, who: Asker<'_>, topic: Option<&str>) -> Result<Vec<TopicStatsWire>, Refusal> {
        if let Some(t) = topic {
            if !self.topics.get(t).is_some_and(|e| shown(e, who)) {
                return refuse(ErrorKind::NoSuchTopic, format!("no such topic {t:?}"));
            }
        }
        let holders = Holders::of(&self.leases);
        Ok(self
            .topics
            .iter()
            .filter(|(n, e)| topic.is_none_or(|t| t == n.as_str()) && shown(e, who))
            .map(|(n, e)| stats_wire(n, e, &holders))
            .collect())
    }

    /// The counters of every topic, for the daemon's own metrics listener.
    pub fn all_stats(&self) -> Vec<TopicStatsWire> {
        self.all_stats_page(None, usize::MAX).0
    }

    /// The counters of at most `n` topics after `after`, in name order, and whether more follow: the metrics
    /// listener reads every topic a page at a time, so the state lock is held for one page at a time.
    pub fn all_stats_page(&self, after: Option<&str>, n: usize) -> (Vec<TopicStatsWire>, bool) {
        let holders = Holders::of(&self.leases);
        let from = after.map_or(Unbounded, Excluded);
        let mut topics = self.topics.range::<str, _>((from, Unbounded)).peekable();
        let page = topics.by_ref().take(n).map(|(name, e)| stats_wire(name, e, &holders)).collect();
        (page, topics.peek().is_some())
    }
}

/// Whether `who` may see topic `e` in listings and counters.
fn shown(e: &TopicEntry, who: Asker<'_>) -> bool {
    e.settings.policy.shows(who.cred, who.groups)
}

/// One topic in a listing.
fn info(name: &str, e: &TopicEntry, holders: &Holders<'_>) -> TopicInfo {
    let (publishers, subscribers) = holders.counts.get(name).copied().unwrap_or_default();
    TopicInfo {
        name: name.to_string(),
        generation: e.segment.topic.generation(),
        geometry: geometry_to_wire(&e.geometry()),
        publishers,
        subscribers,
        declared: e.declared,
        memory: e.segment.memory(),
        origin: match (e.declared, e.on_demand) {
            (true, _) => TopicOrigin::Config,
            (false, true) => TopicOrigin::OnDemand,
            (false, false) => TopicOrigin::Request,
        },
    }
}

/// One topic's counters in wire form.
fn stats_wire(name: &str, e: &TopicEntry, holders: &Holders<'_>) -> TopicStatsWire {
    let st = e.segment.topic.stats();
    let group_name = |g: usize| e.groups.get(g).cloned().flatten().unwrap_or_else(|| format!("#{g}"));
    let publisher = |p: &PublisherStats| PublisherStatsWire {
        slot: p.slot as u32,
        published: p.published,
        bytes: p.bytes,
        full: p.full,
        aborted: p.aborted,
        sleeping: p.sleeping,
        pid: holders.pid(name, true, p.slot as u32),
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
        sleeping: s.sleeping,
        pid: holders.pid(name, false, s.slot as u32),
    };
    let group = |g: &GroupStats| GroupStatsWire {
        name: group_name(g.index),
        next: g.next,
        redelivered: g.redelivered,
        abandoned: g.abandoned,
        // Wrapping: untrusted counters (a corrupted one near u64::MAX must not overflow the sum).
        delivered: st
            .subscribers
            .iter()
            .filter(|s| s.group == Some(g.index))
            .fold(0u64, |n, s| n.wrapping_add(s.received)),
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
        reports: super::reports::reports_of(holders.reported.get(name).into_iter().flatten().copied()),
    }
}
