//! Per-topic counters and what the bridge reports to its daemon (protocol 7, `Bus::report`): for each topic
//! it holds a handle on, its counters (`gaps`, `lost`, `imported`, `exported`, …) and, for an exported topic,
//! the remote importers ([`crate::remotes`]). `shmbus stats` shows them under the topic, and the daemon's
//! metrics as `shmbus_client_reported` and `shmbus_topic_remote_subscribers`.

use crate::remotes::Remotes;
use crate::stats::Stats;
use bus_client::TopicReport;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

/// One topic's counters and how many of the bridge's handles hold it (the daemon takes a report only on a
/// topic the connection holds).
#[derive(Debug, Default)]
struct Entry {
    stats: Arc<Stats>,
    holds: u32,
}

/// The per-topic counters of the bridge.
#[derive(Debug, Default)]
pub struct Reporting(Mutex<BTreeMap<String, Entry>>);

impl Reporting {
    /// The counters of `topic` (kept across the handle's reopening, so they stay monotonic for this run).
    pub fn stats(&self, topic: &str) -> Arc<Stats> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(topic.to_string()).or_default().stats.clone()
    }

    /// Records that a handle on `topic` is open.
    pub fn hold(&self, topic: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(topic.to_string()).or_default().holds += 1;
    }

    /// Records that a handle on `topic` closed.
    pub fn release(&self, topic: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get_mut(topic) {
            e.holds = e.holds.saturating_sub(1);
        }
    }

    /// The reports of every held topic: its nonzero counters and its remote importers (without bridge `own`).
    pub fn reports(&self, remotes: &Remotes, own: &str) -> Vec<TopicReport> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .filter(|(_, e)| e.holds > 0)
            .map(|(topic, e)| TopicReport {
                topic: topic.clone(),
                remote_subscribers: remotes.of(topic, own),
                counters: e
                    .stats
                    .snapshot()
                    .into_iter()
                    .filter(|(k, v)| *v > 0 && *k != "export_topics")
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            })
            .collect()
    }
}

/// A counter bumped twice: in the bridge's totals and in its topic's.
pub fn add(global: &Stats, topic: &Stats, counter: fn(&Stats) -> &AtomicU64, n: u64) {
    counter(global).fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    counter(topic).fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_held_topics_and_nonzero_counters() {
        let (r, total) = (Reporting::default(), Stats::default());
        let a = r.stats("a");
        add(&total, &a, |s| &s.gaps, 2);
        assert!(r.reports(&Remotes::default(), "me").is_empty(), "a topic not held is not reported");
        r.hold("a");
        let rep = r.reports(&Remotes::default(), "me");
        assert_eq!(rep.len(), 1);
        assert_eq!(rep[0].counters, vec![("gaps".to_string(), 2)]);
        r.release("a");
        assert!(r.reports(&Remotes::default(), "me").is_empty());
        assert_eq!(r.stats("a").gaps.load(std::sync::atomic::Ordering::Relaxed), 2, "kept across a reopen");
    }
}
