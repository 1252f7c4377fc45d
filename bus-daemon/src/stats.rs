//! The Prometheus text exposition of the counters the registry reports (`State::stats`).

use shmbus_proto::msg::*;
use std::fmt::Write;

/// Renders counters in the Prometheus text exposition format.
pub fn prometheus(topics: &[TopicStatsWire]) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP shmbus_{name} {help}\n# TYPE shmbus_{name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "shmbus_{name}{{{labels}}} {v}");
        }
    };
    let per_topic =
        |f: &dyn Fn(&TopicStatsWire) -> u64| topics.iter().map(|t| (format!("topic=\"{}\"", t.name), f(t))).collect();
    metric("tail", "Next sequence number of the topic.", "gauge", per_topic(&|t| t.tail));
    metric("cancelled_total", "Claims of dead publishers cancelled.", "counter", per_topic(&|t| t.cancelled));
    metric("wakeups_total", "Semaphore posts issued to wake sleepers.", "counter", per_topic(&|t| t.wakeups));
    metric("demotions_total", "Slow lossless subscribers demoted to lossy.", "counter", per_topic(&|t| t.demotions));
    let per_pub = |f: &dyn Fn(&PublisherStatsWire) -> u64| per_slot(topics, |t| &t.publishers, |p| p.slot, f);
    metric("published_total", "Messages published.", "counter", per_pub(&|p| p.published));
    metric("published_bytes_total", "Payload bytes published.", "counter", per_pub(&|p| p.bytes));
    metric("full_total", "Sends that found the topic full.", "counter", per_pub(&|p| p.full));
    let per_sub = |f: &dyn Fn(&SubscriberStatsWire) -> u64| per_slot(topics, |t| &t.subscribers, |s| s.slot, f);
    metric("subscriber_lag", "Messages between a subscriber and the tail.", "gauge", per_sub(&|s| s.lag));
    metric("received_total", "Messages received.", "counter", per_sub(&|s| s.received));
    metric("lagged_total", "Messages a lossy subscriber was lapped by.", "counter", per_sub(&|s| s.lagged));
    out
}

/// One row per publisher or subscriber of every topic, labelled with the topic and the slot: `items` picks a
/// topic's publishers or subscribers, `slot` and `value` read one of them.
fn per_slot<T>(
    topics: &[TopicStatsWire],
    items: fn(&TopicStatsWire) -> &[T],
    slot: fn(&T) -> u32,
    value: &dyn Fn(&T) -> u64,
) -> Vec<(String, u64)> {
    let row = |t: &TopicStatsWire, x: &T| (format!("topic=\"{}\",slot=\"{}\"", t.name, slot(x)), value(x));
    topics.iter().flat_map(|t| items(t).iter().map(move |x| row(t, x))).collect()
}
