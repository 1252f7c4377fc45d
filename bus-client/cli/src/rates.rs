//! What `shmbus top` shows: a sample of every visible topic's counters (from the daemon's paged `stats` and
//! topic listings), and the rates between two samples. The daemon is never in the data path: the counters are
//! the segments' own (published messages and bytes and full events per publisher slot, lapped messages per
//! subscriber slot), so a rate is the change of a counter between two samples over the time between them.

use anyhow::Context;
use bus_client::{Bus, TopicStatsWire};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// One topic's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicSample {
    /// Generation (a recreated topic starts its counters again).
    pub generation: u64,
    /// Closed flag.
    pub closed: bool,
    /// Publisher leases held.
    pub publishers: u32,
    /// Subscriber leases held.
    pub subscribers: u32,
    /// Messages published, over every publisher slot.
    pub published: u64,
    /// Payload bytes published, over every publisher slot.
    pub bytes: u64,
    /// Sends that found the topic full (back-pressure), over every publisher slot.
    pub full: u64,
    /// Messages each attached subscriber was lapped by, by slot (counted since it attached).
    pub lapped: BTreeMap<u32, u64>,
    /// The slowest subscriber's lag (messages behind the tail), if there is a subscriber.
    pub max_lag: Option<u64>,
}

impl TopicSample {
    /// The counters of one topic's stats reply, with the lease counts of its listing entry.
    pub fn of(t: &TopicStatsWire, leases: Option<(u32, u32)>) -> TopicSample {
        // Counters come from shared memory the daemon does not trust: add without overflowing.
        let sum =
            |f: fn(&bus_client::PublisherStatsWire) -> u64| t.publishers.iter().map(f).fold(0u64, u64::saturating_add);
        let (publishers, subscribers) = leases.unwrap_or_else(|| {
            (t.publishers.iter().filter(|p| p.pid.is_some()).count() as u32, t.subscribers.len() as u32)
        });
        TopicSample {
            generation: t.generation,
            closed: t.closed,
            publishers,
            subscribers,
            published: sum(|p| p.published),
            bytes: sum(|p| p.bytes),
            full: sum(|p| p.full),
            lapped: t.subscribers.iter().map(|s| (s.slot, s.lagged)).collect(),
            max_lag: t.subscribers.iter().map(|s| s.lag).max(),
        }
    }

    /// Lapped messages of the subscribers attached now, summed.
    pub fn lapped_total(&self) -> u64 {
        self.lapped.values().copied().fold(0, u64::saturating_add)
    }
}

/// Every visible topic's counters at one moment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the counters were asked for.
    pub at: Instant,
    /// The topics, by name.
    pub topics: BTreeMap<String, TopicSample>,
}

impl Sample {
    /// Reads the counters and lease counts of every topic the caller may see, a page at a time.
    pub fn take(bus: &Bus) -> anyhow::Result<Sample> {
        let at = Instant::now();
        let stats = bus.stats(None).context("cannot read statistics")?;
        let leases: HashMap<String, (u32, u32)> = bus
            .topics()
            .context("cannot list topics")?
            .into_iter()
            .map(|t| (t.name, (t.publishers, t.subscribers)))
            .collect();
        let topics = stats.iter().map(|t| (t.name.clone(), TopicSample::of(t, leases.get(&t.name).copied()))).collect();
        Ok(Sample { at, topics })
    }
}

/// One topic between two samples. A rate is `None` when the first sample has no baseline for it (the topic
/// is new, or was recreated: another generation) or a counter went backwards.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Topic name.
    pub name: String,
    /// The counters of the second sample.
    pub now: TopicSample,
    /// Messages per second.
    pub msgs: Option<f64>,
    /// Payload bytes per second.
    pub bytes: Option<f64>,
    /// Full (back-pressure) events per second.
    pub full: Option<f64>,
    /// Messages per second lost to lapped (lossy) subscribers.
    pub lapped: Option<f64>,
}

/// The rows of the topics of `cur`, fastest first (by messages per second, then name); `prev` is the sample
/// before it.
pub fn rows(prev: &Sample, cur: &Sample) -> Vec<Row> {
    let secs = cur.at.saturating_duration_since(prev.at).max(Duration::from_micros(1)).as_secs_f64();
    let mut rows: Vec<Row> = cur
        .topics
        .iter()
        .map(|(name, now)| {
            let before = prev.topics.get(name).filter(|b| b.generation == now.generation);
            let rate =
                |f: fn(&TopicSample) -> u64| before.and_then(|b| f(now).checked_sub(f(b))).map(|d| d as f64 / secs);
            Row {
                name: name.clone(),
                msgs: rate(|t| t.published),
                bytes: rate(|t| t.bytes),
                full: rate(|t| t.full),
                lapped: before.map(|b| lapped_since(b, now) as f64 / secs),
                now: now.clone(),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.msgs.unwrap_or(-1.0).total_cmp(&a.msgs.unwrap_or(-1.0)).then_with(|| a.name.cmp(&b.name)));
    rows
}

/// Messages lapped between `before` and `now`, per subscriber slot: a slot attached since (absent before, or its
/// counter lower, as a new holder starts it from zero) counts all it has.
fn lapped_since(before: &TopicSample, now: &TopicSample) -> u64 {
    now.lapped
        .iter()
        .map(|(slot, &n)| match before.lapped.get(slot) {
            Some(&b) if b <= n => n - b,
            _ => n,
        })
        .fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, topics: &[(&str, TopicSample)]) -> Sample {
        Sample { at, topics: topics.iter().map(|(n, t)| (n.to_string(), t.clone())).collect() }
    }

    fn topic(published: u64, bytes: u64, lapped: &[(u32, u64)]) -> TopicSample {
        TopicSample { generation: 1, published, bytes, lapped: lapped.iter().copied().collect(), ..Default::default() }
    }

    #[test]
    fn rates_are_deltas_over_the_elapsed_time_fastest_first() {
        let t0 = Instant::now();
        let prev = sample(t0, &[("a", topic(10, 1000, &[])), ("b", topic(0, 0, &[(0, 5), (1, 7)]))]);
        let t1 = t0 + Duration::from_secs(2);
        let mut recreated = topic(50, 50, &[]);
        recreated.generation = 2;
        let cur = sample(
            t1,
            &[("a", topic(10, 1000, &[])), ("b", topic(400, 4000, &[(0, 9), (1, 2), (3, 4)])), ("c", recreated)],
        );
        let rows = rows(&prev, &cur);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"], "fastest first, no baseline last");
        assert_eq!((rows[0].msgs, rows[0].bytes), (Some(200.0), Some(2000.0)));
        // Slot 0: 4 more; slot 1 was taken by a new holder (2 since); slot 3 is new (4).
        assert_eq!(rows[0].lapped, Some(5.0));
        assert_eq!((rows[1].msgs, rows[1].bytes, rows[1].lapped), (Some(0.0), Some(0.0), Some(0.0)));
        assert_eq!((rows[2].msgs, rows[2].lapped), (None, None), "another generation has no baseline");
    }

    #[test]
    fn a_sample_sums_the_slots_without_overflow() {
        use bus_client::{PublisherStatsWire, SubscriberStatsWire};
        let t = TopicStatsWire {
            name: "t".into(),
            publishers: vec![
                PublisherStatsWire {
                    slot: 0,
                    published: u64::MAX,
                    bytes: 3,
                    full: 1,
                    pid: Some(1),
                    ..Default::default()
                },
                PublisherStatsWire { slot: 1, published: 2, bytes: 4, full: 2, ..Default::default() },
            ],
            subscribers: vec![
                SubscriberStatsWire { slot: 2, lag: 7, lagged: 3, ..Default::default() },
                SubscriberStatsWire { slot: 5, lag: 9, lagged: 1, ..Default::default() },
            ],
            ..Default::default()
        };
        let s = TopicSample::of(&t, None);
        assert_eq!((s.published, s.bytes, s.full), (u64::MAX, 7, 3));
        assert_eq!((s.publishers, s.subscribers, s.max_lag, s.lapped_total()), (1, 2, Some(9), 4));
        assert_eq!(TopicSample::of(&t, Some((4, 6))).publishers, 4, "the listing's lease counts win");
    }
}
