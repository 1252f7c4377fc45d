//! `shmbus stats`: publishers, subscribers (positions and lag) and counters.

use crate::args::StatsArgs;
use crate::table::render;
use anyhow::Context;
use bus_client::TopicStatsWire;
use std::fmt::Write;
use std::path::PathBuf;

pub fn run(socket: Option<PathBuf>, a: StatsArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    let stats = bus.stats(a.topic.as_deref()).context("cannot read statistics")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        for (i, t) in stats.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print!("{}", human(t));
        }
    }
    Ok(())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), ToString::to_string)
}

/// Appends to `s` a table of `items`, one row each under `header`, or `none` when there are none.
fn table<T>(s: &mut String, items: &[T], none: &str, header: &[&str], row: impl Fn(&T) -> Vec<String>) {
    if items.is_empty() {
        s.push_str(none);
    } else {
        let rows: Vec<Vec<String>> = items.iter().map(row).collect();
        s.push_str(&render("  ", header, &rows));
    }
}

/// A handle's wait state: asleep on its wake-up word, or running (sending, receiving, spinning or idle between
/// calls; the segment only knows the sleepers).
fn state(sleeping: bool) -> String {
    if sleeping { "asleep" } else { "-" }.to_string()
}

fn human(t: &TopicStatsWire) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "topic {} (generation {}){}: tail {} (the next sequence), cancelled claims {}, wakeups {}, demotions {}",
        bus_client::printable(&t.name),
        crate::table::short_generation(t.generation),
        if t.closed { " CLOSED" } else { "" },
        t.tail,
        t.cancelled,
        t.wakeups,
        t.demotions
    );
    if let Some(ty) = &t.payload_type {
        let shape = if ty.hash == 0 { "shape not fixed".to_string() } else { format!("shape {:016x}", ty.hash) };
        let _ = writeln!(s, "  payload type {} ({shape})", bus_client::printable(&ty.name));
    }
    let header = ["PUBLISHER", "PID", "PUBLISHED", "BYTES", "FULL", "ABORTED", "STATE"];
    table(&mut s, &t.publishers, "  no publishers\n", &header, |p| {
        vec![
            p.slot.to_string(),
            opt(&p.pid),
            p.published.to_string(),
            p.bytes.to_string(),
            p.full.to_string(),
            p.aborted.to_string(),
            state(p.sleeping),
        ]
    });
    let header = ["SUBSCRIBER", "PID", "MODE", "GROUP", "POSITION", "LAG", "RECEIVED", "LAGGED", "SKIPPED", "STATE"];
    table(&mut s, &t.subscribers, "  no subscribers\n", &header, |x| {
        let mode = match (&x.group, x.gating, x.demoted) {
            (Some(_), _, _) => "group",
            (None, _, true) => "demoted",
            (None, true, false) => "lossless",
            (None, false, false) => "lossy",
        };
        vec![
            x.slot.to_string(),
            opt(&x.pid),
            mode.to_string(),
            opt(&x.group),
            x.position.to_string(),
            x.lag.to_string(),
            x.received.to_string(),
            x.lagged.to_string(),
            x.skipped.to_string(),
            state(x.sleeping),
        ]
    });
    table(&mut s, &t.groups, "", &["GROUP", "NEXT", "DELIVERED", "REDELIVERED", "ABANDONED"], |g| {
        let name = bus_client::printable(&g.name).into_owned();
        vec![name, g.next.to_string(), g.delivered.to_string(), g.redelivered.to_string(), g.abandoned.to_string()]
    });
    for r in &t.reports {
        reported(&mut s, r);
    }
    s
}

/// A client's report on the topic (a bridge's remote subscribers and counters): its word, labelled as such.
fn reported(s: &mut String, r: &bus_client::ReportWire) {
    let who = r.client.as_deref().map_or_else(|| "a client".to_string(), |c| bus_client::printable(c).into_owned());
    let _ = writeln!(s, "  reported by {who} (pid {}):", r.pid);
    if !r.remote_subscribers.is_empty() {
        let names: Vec<String> = r.remote_subscribers.iter().map(|n| bus_client::printable(n).into_owned()).collect();
        let _ = writeln!(s, "    remote subscribers: {}", names.join(", "));
    }
    if !r.counters.is_empty() {
        let c: Vec<String> = r.counters.iter().map(|(k, v)| format!("{}={v}", bus_client::printable(k))).collect();
        let _ = writeln!(s, "    {}", c.join(" "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_client::{PublisherStatsWire, SubscriberStatsWire};

    #[test]
    fn human_output_shows_positions_and_lag() {
        let t = TopicStatsWire {
            name: "orders".into(),
            generation: 0x1234_5678_9abc,
            tail: 100,
            publishers: vec![PublisherStatsWire { slot: 0, published: 100, pid: Some(42), ..Default::default() }],
            subscribers: vec![SubscriberStatsWire {
                slot: 3,
                position: 90,
                lag: 10,
                gating: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = human(&t);
        assert!(s.starts_with("topic orders (generation 789abc): tail 100 (the next sequence)"), "{s}");
        assert!(s.contains("PUBLISHER") && s.contains("42"), "{s}");
        let sub = s.lines().find(|l| l.trim_start().starts_with('3')).expect("subscriber row");
        assert!(sub.contains("lossless") && sub.contains("90") && sub.contains("10"), "{s}");
    }
}
