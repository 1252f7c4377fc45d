//! The Prometheus text exposition (format 0.0.4) of a [`Snapshot`], encoded by `prometheus-client`.
//!
//! Every scrape encodes the snapshot through a `prometheus-client` collector: the daemon keeps no metric state of
//! its own, the counters live in the topics' shared memory (and in the registry's lease table), so there is
//! nothing to keep in step. Series come in a stable order: topics by name, then slots and groups by index. Names
//! follow the Prometheus conventions: the `shmbus_` prefix, base units in the name (`_bytes`, `_seconds`),
//! `_total` on counters (added by the encoder), and one label set per kind of object: `topic`; `topic` and `slot`
//! for publishers and subscribers; `topic` and `group` for consumer groups.

use super::snapshot::Snapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use shmbus_proto::msg::{GroupStatsWire, PublisherStatsWire, SubscriberStatsWire, TopicStatsWire};
use std::fmt::Result;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One series' labels, in the order they are printed.
type Labels = Vec<(String, String)>;
/// One series: its labels and its value.
type Row = (Labels, u64);

/// Renders `s`; `None` only if the encoder failed (it writes to a `String`, so it does not).
pub fn render(s: &Snapshot) -> Option<String> {
    let mut registry = Registry::with_prefix("shmbus");
    registry.register_collector(Box::new(Exposition(s.clone())));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).ok()?;
    Some(text)
}

/// The collector of one scrape: the snapshot it reports.
#[derive(Debug)]
struct Exposition(Snapshot);

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result {
        let out = &mut Families(&mut encoder);
        daemon(out, &self.0)?;
        topics(out, &self.0.topics)?;
        publishers(out, &self.0.topics)?;
        subscribers(out, &self.0.topics)?;
        groups(out, &self.0.topics)?;
        reports(out, &self.0.topics)
    }
}

/// The encoder being written, one family at a time.
struct Families<'a, 'b>(&'a mut DescriptorEncoder<'b>);

impl Families<'_, '_> {
    /// A counter family (`_total` is added to `name`).
    fn counter(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = Row>) -> Result {
        let mut family = self.0.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, v) in rows {
            ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// A gauge family of whole numbers.
    fn gauge(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = Row>) -> Result {
        let mut family = self.0.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in rows {
            ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// A gauge without labels.
    fn single(&mut self, name: &str, help: &str, v: u64) -> Result {
        self.gauge(name, help, [(Labels::new(), v)])
    }
}

/// `key="value"` pairs as labels.
fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn daemon(out: &mut Families<'_, '_>, s: &Snapshot) -> Result {
    out.single("up", "Whether the daemon is up (always 1 when it answers)", 1)?;
    out.gauge(
        "build_info",
        "The daemon's build, in labels (value 1)",
        [(labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1)],
    )?;
    let uptime = out.0.encode_descriptor(
        "uptime_seconds",
        "Seconds since the daemon started serving",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(s.uptime.as_secs_f64()).encode(uptime)?;
    out.single("topics", "Topics the daemon holds", s.topics.len() as u64)?;
    out.gauge(
        "leases",
        "Leases held, by role",
        [
            (labels(&[("role", "publisher")]), s.publisher_leases),
            (labels(&[("role", "subscriber")]), s.subscriber_leases),
        ],
    )?;
    out.single("connections", "Control connections open", s.connections)?;
    out.single("topics_memory_bytes", "Shared-memory footprint of every topic summed", s.topics_memory)?;
    if let Some(shm) = s.shm {
        out.single("shm_size_bytes", "Size of the file system of the shared-memory objects (/dev/shm)", shm.size)?;
        out.single("shm_used_bytes", "Bytes used on /dev/shm, by anyone", shm.used)?;
        out.single("shm_free_bytes", "Bytes free on /dev/shm for unprivileged use", shm.free)?;
    }
    Ok(())
}

fn topics(out: &mut Families<'_, '_>, topics: &[TopicStatsWire]) -> Result {
    let per = |f: &dyn Fn(&TopicStatsWire) -> u64| -> Vec<Row> {
        topics.iter().map(|t| (labels(&[("topic", &t.name)]), f(t))).collect()
    };
    let sum = |f: fn(&PublisherStatsWire) -> u64| move |t: &TopicStatsWire| t.publishers.iter().map(f).sum();
    out.counter("messages_published", "Messages published to the topic", per(&sum(|p| p.published)))?;
    out.counter("published_bytes", "Payload bytes published to the topic", per(&sum(|p| p.bytes)))?;
    out.counter("publish_full", "Sends that found the topic full (back-pressure)", per(&sum(|p| p.full)))?;
    out.counter("publish_aborted", "Loans dropped without committing", per(&sum(|p| p.aborted)))?;
    out.gauge("topic_tail", "Next sequence number the topic will hand out", per(&|t| t.tail))?;
    out.gauge("topic_closed", "Whether the topic is closed (1) or open (0)", per(&|t| u64::from(t.closed)))?;
    out.gauge("topic_subscribers", "Subscriber slots in use", per(&|t| t.subscribers.len() as u64))?;
    out.counter("cancelled_claims", "Claims of dead publishers cancelled", per(&|t| t.cancelled))?;
    out.counter("wakeups", "Wake-ups posted to sleeping handles", per(&|t| t.wakeups))?;
    out.counter("demotions", "Slow lossless subscribers demoted to lossy", per(&|t| t.demotions))?;
    Ok(())
}

/// One row per publisher or subscriber of every topic, labelled with the topic and the slot: `items` picks a
/// topic's publishers or subscribers, `slot` and `value` read one of them.
fn per_slot<T>(
    topics: &[TopicStatsWire],
    items: fn(&TopicStatsWire) -> &[T],
    slot: fn(&T) -> u32,
    value: &dyn Fn(&T) -> u64,
) -> Vec<Row> {
    let row = |t: &TopicStatsWire, x: &T| (labels(&[("topic", &t.name), ("slot", &slot(x).to_string())]), value(x));
    topics.iter().flat_map(|t| items(t).iter().map(move |x| row(t, x))).collect()
}

fn publishers(out: &mut Families<'_, '_>, topics: &[TopicStatsWire]) -> Result {
    let per = |f: &dyn Fn(&PublisherStatsWire) -> u64| per_slot(topics, |t| &t.publishers, |p| p.slot, f);
    out.counter("publisher_messages_published", "Messages published by one publisher slot", per(&|p| p.published))?;
    out.counter("publisher_published_bytes", "Payload bytes published by one publisher slot", per(&|p| p.bytes))?;
    out.counter("publisher_full", "Sends of one publisher slot that found the topic full", per(&|p| p.full))?;
    out.gauge(
        "publisher_sleeping",
        "Whether the publisher is asleep waiting for space (1) or not (0)",
        per(&|p| u64::from(p.sleeping)),
    )?;
    Ok(())
}

fn subscribers(out: &mut Families<'_, '_>, topics: &[TopicStatsWire]) -> Result {
    let per = |f: &dyn Fn(&SubscriberStatsWire) -> u64| per_slot(topics, |t| &t.subscribers, |s| s.slot, f);
    out.gauge("subscriber_position", "Next sequence number the subscriber will read", per(&|s| s.position))?;
    out.gauge("subscriber_lag", "Messages between the subscriber and the topic's tail", per(&|s| s.lag))?;
    out.gauge(
        "subscriber_gating",
        "Whether the subscriber holds publishers back (1) or not (0)",
        per(&|s| u64::from(s.gating)),
    )?;
    out.gauge(
        "subscriber_demoted",
        "Whether the slow-consumer bound demoted the subscriber",
        per(&|s| u64::from(s.demoted)),
    )?;
    out.gauge(
        "subscriber_sleeping",
        "Whether the subscriber is asleep waiting for data (1) or not (0)",
        per(&|s| u64::from(s.sleeping)),
    )?;
    out.counter("subscriber_received", "Messages the subscriber received", per(&|s| s.received))?;
    out.counter("subscriber_lagged", "Messages a lossy subscriber was lapped by", per(&|s| s.lagged))?;
    out.counter("subscriber_skipped", "Skip markers the subscriber passed over", per(&|s| s.skipped))?;
    Ok(())
}

fn groups(out: &mut Families<'_, '_>, topics: &[TopicStatsWire]) -> Result {
    let per = |f: &dyn Fn(&TopicStatsWire, &GroupStatsWire) -> u64| -> Vec<Row> {
        let row = |t: &TopicStatsWire, g: &GroupStatsWire| (labels(&[("topic", &t.name), ("group", &g.name)]), f(t, g));
        topics.iter().flat_map(|t| t.groups.iter().map(move |g| row(t, g))).collect()
    };
    let members = |t: &TopicStatsWire, g: &GroupStatsWire| {
        t.subscribers.iter().filter(|s| s.group.as_deref() == Some(g.name.as_str())).count() as u64
    };
    out.gauge("group_members", "Subscribers that are members of the group", per(&members))?;
    out.gauge(
        "group_claim_position",
        "The group's claim cursor: the next sequence number a member takes",
        per(&|_, g| g.next),
    )?;
    out.counter("group_redelivered", "Messages redelivered after a member died", per(&|_, g| g.redelivered))?;
    out.counter("group_abandoned", "Messages abandoned by dead members", per(&|_, g| g.abandoned))?;
    out.gauge(
        "group_delivered_to_members",
        "Messages the group's current members received (a member that leaves takes its count along)",
        per(&|_, g| g.delivered),
    )?;
    Ok(())
}

/// What clients reported about their topics (protocol 7): a bridge's remote subscribers and counters.
fn reports(out: &mut Families<'_, '_>, topics: &[TopicStatsWire]) -> Result {
    let remote = topics
        .iter()
        .filter(|t| !t.reports.is_empty())
        .map(|t| (labels(&[("topic", &t.name)]), t.reports.iter().map(|r| r.remote_subscribers.len() as u64).sum()));
    out.gauge(
        "topic_remote_subscribers",
        "Remote subscribers of the topic, as bridges holding it report them",
        remote,
    )?;
    let mut rows = Vec::new();
    for t in topics {
        for r in &t.reports {
            let (client, pid) = (r.client.as_deref().unwrap_or(""), r.pid.to_string());
            for (counter, v) in &r.counters {
                rows.push((labels(&[("topic", &t.name), ("client", client), ("pid", &pid), ("counter", counter)]), *v));
            }
        }
    }
    out.gauge("client_reported", "A counter a client holding the topic reports (a bridge's gaps, lost, ...)", rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> Snapshot {
        let sub = |slot, group: Option<&str>| SubscriberStatsWire {
            slot,
            position: 3,
            lag: 2,
            gating: true,
            group: group.map(str::to_string),
            received: 3,
            ..Default::default()
        };
        Snapshot {
            topics: vec![TopicStatsWire {
                name: "a\"b\\c".into(),
                tail: 5,
                wakeups: 4,
                publishers: vec![
                    PublisherStatsWire { slot: 0, published: 3, bytes: 30, full: 1, ..Default::default() },
                    PublisherStatsWire { slot: 1, published: 2, bytes: 20, ..Default::default() },
                ],
                subscribers: vec![sub(0, None), sub(1, Some("g"))],
                groups: vec![GroupStatsWire { name: "g".into(), next: 4, redelivered: 1, abandoned: 0, delivered: 3 }],
                reports: vec![shmbus_proto::report::ReportWire {
                    client: Some("shmbus-bridge b".into()),
                    pid: 7,
                    remote_subscribers: vec!["x".into(), "y".into()],
                    counters: vec![("gaps".into(), 2)],
                }],
                ..Default::default()
            }],
            publisher_leases: 2,
            subscriber_leases: 2,
            connections: 1,
            uptime: Duration::from_millis(1500),
            ..Default::default()
        }
    }

    #[test]
    fn series_are_named_by_the_conventions_and_labels_are_escaped() {
        let text = render(&sample()).unwrap();
        // The encoder ends each help text with a full stop of its own.
        assert!(text.lines().filter(|l| l.starts_with("# HELP")).all(|l| !l.ends_with("..")), "{text}");
        let t = r#"topic="a\"b\\c""#;
        for line in [
            "shmbus_up 1".to_string(),
            format!("shmbus_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
            "shmbus_uptime_seconds 1.5".into(),
            "shmbus_topics 1".into(),
            "shmbus_leases{role=\"publisher\"} 2".into(),
            "shmbus_connections 1".into(),
            format!("shmbus_messages_published_total{{{t}}} 5"),
            format!("shmbus_published_bytes_total{{{t}}} 50"),
            format!("shmbus_publish_full_total{{{t}}} 1"),
            format!("shmbus_wakeups_total{{{t}}} 4"),
            format!("shmbus_publisher_messages_published_total{{{t},slot=\"1\"}} 2"),
            format!("shmbus_subscriber_lag{{{t},slot=\"0\"}} 2"),
            format!("shmbus_subscriber_received_total{{{t},slot=\"1\"}} 3"),
            format!("shmbus_group_members{{{t},group=\"g\"}} 1"),
            format!("shmbus_group_redelivered_total{{{t},group=\"g\"}} 1"),
            format!("shmbus_topic_remote_subscribers{{{t}}} 2"),
            format!("shmbus_client_reported{{{t},client=\"shmbus-bridge b\",pid=\"7\",counter=\"gaps\"}} 2"),
            "# TYPE shmbus_messages_published_total counter".into(),
            "# TYPE shmbus_subscriber_lag gauge".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }

    #[test]
    fn series_come_in_the_snapshots_order() {
        let text = render(&sample()).unwrap();
        let at = |line: &str| text.find(line).unwrap_or_else(|| panic!("no {line:?} in\n{text}"));
        assert!(at("shmbus_leases{role=\"publisher\"}") < at("shmbus_leases{role=\"subscriber\"}"));
        assert!(
            at("shmbus_subscriber_lag{topic=\"a\\\"b\\\\c\",slot=\"0\"}")
                < at("shmbus_subscriber_lag{topic=\"a\\\"b\\\\c\",slot=\"1\"}")
        );
        assert_eq!(text, render(&sample()).unwrap(), "the same snapshot renders the same text");
    }

    #[test]
    fn an_empty_daemon_still_renders() {
        let text = render(&Snapshot::default()).unwrap();
        assert!(text.contains("shmbus_up 1") && text.contains("shmbus_topics 0"), "{text}");
    }
}
