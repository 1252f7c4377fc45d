//! The values of the configuration that are more than a field: limits, durations, geometries, principals and a
//! topic's settings, each checked with an error that names what is wrong.

use super::{RawDaemon, RawTopic, TopicSettings, DEFAULT_BUDGET, DEFAULT_CAPACITY, DEFAULT_GROUPS};
use super::{DEFAULT_MAX_MESSAGE, DEFAULT_PUBLISHERS, DEFAULT_SUBSCRIBERS};
use crate::limits::{self, Limits};
use crate::policy::{Policy, Principal};
use shmbus_ring::Geometry;
use std::time::Duration;

pub(super) fn daemon_limits(d: &RawDaemon) -> Result<Limits, (&'static str, String)> {
    let l = Limits::default();
    let positive = |key: &'static str, v: Option<u64>, dflt: u64| match v {
        Some(0) => Err((key, format!("{key} must be positive"))),
        v => Ok(v.unwrap_or(dflt)),
    };
    let timeout = positive("request_timeout_ms", d.request_timeout_ms, l.request_timeout.as_millis() as u64)?;
    Ok(Limits {
        max_topic_bytes: positive("max_topic_bytes", d.max_topic_bytes, l.max_topic_bytes)?,
        shm_budget: positive("shm_budget", d.shm_budget, l.shm_budget)?,
        max_auto_topics_per_uid: d.max_auto_topics_per_uid.unwrap_or(l.max_auto_topics_per_uid),
        max_connections: positive("max_connections", d.max_connections.map(u64::from), l.max_connections.into())?
            as u32,
        max_connections_per_uid: positive(
            "max_connections_per_uid",
            d.max_connections_per_uid.map(u64::from),
            l.max_connections_per_uid.into(),
        )? as u32,
        max_leases_per_uid: positive(
            "max_leases_per_uid",
            d.max_leases_per_uid.map(u64::from),
            l.max_leases_per_uid.into(),
        )? as u32,
        request_timeout: Duration::from_millis(timeout),
    })
}

/// Default of `[daemon] return_idle_after`.
pub const RETURN_IDLE_AFTER: Duration = Duration::from_secs(300);

/// A duration as `"90s"`, `"30m"`, `"1h"`, `"500ms"` or `"2d"`: positive, one number and one unit.
pub(super) fn parse_duration(key: &str, v: &str) -> Result<Duration, String> {
    let bad = || format!("{key} = {v:?} is not a duration (e.g. \"90s\", \"30m\", \"1h\")");
    let split = v.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = v[..split].parse().map_err(|_| bad())?;
    let ms = match &v[split..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    match n.checked_mul(ms) {
        Some(0) | None => Err(bad()),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

/// The line and column of the first line that starts with `needle` (a key or a table header); (0, 0) if none.
pub(super) fn find_line(src: &str, needle: &str) -> (usize, usize) {
    src.lines()
        .enumerate()
        .find(|(_, l)| l.trim_start().starts_with(needle))
        .map_or((0, 0), |(i, l)| (i + 1, l.len() - l.trim_start().len() + 1))
}

/// The geometry of `t` with defaults `d`; `fallback_budget` applies when neither sets `payload_budget`. A budget
/// that is set is honoured: refused when it cannot hold one maximum-size message per publisher.
pub(super) fn geometry(t: &RawTopic, d: &RawTopic, fallback_budget: u64) -> Result<Geometry, String> {
    let capacity = t.capacity.or(d.capacity).unwrap_or(DEFAULT_CAPACITY);
    if !capacity.is_power_of_two() {
        let hint = capacity.checked_next_power_of_two().filter(|_| capacity > 1).unwrap_or(2);
        return Err(format!("capacity {capacity} is not a power of two (try {hint})"));
    }
    let budget = t.payload_budget.or(d.payload_budget);
    let g = Geometry::new(
        capacity,
        t.max_message.or(d.max_message).unwrap_or(DEFAULT_MAX_MESSAGE),
        budget.unwrap_or(fallback_budget),
        t.max_publishers.or(d.max_publishers).unwrap_or(DEFAULT_PUBLISHERS),
        t.max_subscribers.or(d.max_subscribers).unwrap_or(DEFAULT_SUBSCRIBERS),
        t.max_groups.or(d.max_groups).unwrap_or(DEFAULT_GROUPS),
    );
    limits::check_geometry(&g)?;
    if let Some(b) = budget {
        limits::check_payload_budget(&g, b)?;
    }
    Ok(g)
}

pub(super) fn principals(list: &Option<Vec<String>>, fallback: &Option<Vec<String>>) -> Result<Vec<Principal>, String> {
    match list.as_ref().or(fallback.as_ref()) {
        None => Ok(vec![Principal::Anyone]),
        Some(v) => v.iter().map(|s| Principal::parse(s)).collect(),
    }
}

pub(super) fn settings(t: &RawTopic, d: &RawTopic) -> Result<TopicSettings, String> {
    let geometry = geometry(t, d, DEFAULT_BUDGET)?;
    let policy = Policy {
        publish: principals(&t.publish, &d.publish).map_err(|e| format!("publish: {e}"))?,
        subscribe: principals(&t.subscribe, &d.subscribe).map_err(|e| format!("subscribe: {e}"))?,
        gate: match t.gate.as_ref().or(d.gate.as_ref()) {
            None => vec![Principal::Anyone],
            Some(v) => {
                v.iter().map(|s| Principal::parse(s)).collect::<Result<_, _>>().map_err(|e| format!("gate: {e}"))?
            }
        },
        admin: match t.admin.as_ref().or(d.admin.as_ref()) {
            None => Vec::new(),
            Some(v) => {
                v.iter().map(|s| Principal::parse(s)).collect::<Result<_, _>>().map_err(|e| format!("admin: {e}"))?
            }
        },
    };
    let slow = t.slow_consumer_ms.or(d.slow_consumer_ms).filter(|&ms| ms > 0).map(Duration::from_millis);
    let payload_type = t.payload_type.clone();
    if let Some(n) = &payload_type {
        if !shmbus_proto::names::type_name_ok(n) {
            return Err(format!("payload_type {n:?}: {}", shmbus_proto::names::TYPE_NAME_RULE));
        }
    }
    let redeliver = t.redeliver.or(d.redeliver).unwrap_or(true);
    Ok(TopicSettings { geometry, policy, slow_consumer: slow, redeliver, payload_type, requested: None })
}
