//! How `shmbus top` prints the rows of [`crate::rates`]: a summary line and a table (the fastest topics that fit,
//! or all), or one JSON document with the same fields.

use crate::parse::human_bytes;
use crate::rates::Row;
use serde_json::{json, Value};
use std::time::Duration;

/// The table's columns.
pub const HEADER: [&str; 8] = ["TOPIC", "MSG/S", "BYTES/S", "PUBS", "SUBS", "MAX LAG", "FULL/S", "LAPPED/S"];

/// The summary line and the table of the first `limit` rows (all when `None`).
pub fn text(rows: &[Row], elapsed: Duration, limit: Option<usize>) -> String {
    let shown = limit.map_or(rows.len(), |n| n.min(rows.len()));
    let total = |f: fn(&Row) -> Option<f64>| rows.iter().filter_map(f).sum::<f64>();
    let mut s = format!(
        "{} topic{}{}: {} msg/s, {}/s over {:.2} s\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if shown < rows.len() { format!(" ({shown} fastest shown)") } else { String::new() },
        rate(Some(total(|r| r.msgs))),
        human_rate(Some(total(|r| r.bytes))),
        elapsed.as_secs_f64(),
    );
    let table: Vec<Vec<String>> = rows[..shown]
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                rate(r.msgs),
                human_rate(r.bytes),
                r.now.publishers.to_string(),
                r.now.subscribers.to_string(),
                r.now.max_lag.map_or_else(|| "-".to_string(), |l| l.to_string()),
                rate(r.full),
                rate(r.lapped),
            ]
        })
        .collect();
    s.push_str(&crate::table::render("", &HEADER, &table));
    s
}

/// One JSON document: the time between the samples and every row, totals and rates (`null`: no baseline).
pub fn json(rows: &[Row], elapsed: Duration) -> Value {
    let topics: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "generation": r.now.generation,
                "closed": r.now.closed,
                "publishers": r.now.publishers,
                "subscribers": r.now.subscribers,
                "messages_per_s": r.msgs,
                "bytes_per_s": r.bytes,
                "max_lag": r.now.max_lag,
                "full_per_s": r.full,
                "lapped_per_s": r.lapped,
                "published": r.now.published,
                "bytes": r.now.bytes,
                "full": r.now.full,
                "lapped": r.now.lapped_total(),
            })
        })
        .collect();
    json!({ "interval_s": elapsed.as_secs_f64(), "topics": topics })
}

/// A rate for people: `0`, `12.5`, `1.2k`, `3.40M`; `-` when there is none.
fn rate(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(0.0) => "0".to_string(),
        Some(v) if v < 1000.0 => format!("{v:.1}"),
        Some(v) if v < 1e6 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{:.2}M", v / 1e6),
    }
}

fn human_rate(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |b| human_bytes(b.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::TopicSample;

    fn row(name: &str, msgs: Option<f64>) -> Row {
        let now = TopicSample { publishers: 1, subscribers: 2, max_lag: Some(3), published: 9, ..Default::default() };
        Row { name: name.into(), now, msgs, bytes: msgs.map(|m| m * 100.0), full: Some(0.0), lapped: Some(0.0) }
    }

    #[test]
    fn the_table_has_a_summary_a_header_and_the_rows_that_fit() {
        let rows = [row("fast", Some(1500.0)), row("slow", Some(2.0)), row("new", None)];
        let t = text(&rows, Duration::from_millis(1000), Some(2));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert_eq!(lines[0], "3 topics (2 fastest shown): 1.5k msg/s, 146.7 KiB/s over 1.00 s");
        assert!(lines[1].starts_with("TOPIC  MSG/S  BYTES/S"), "{t}");
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cells, ["fast", "1.5k", "146.5", "KiB", "1", "2", "3", "0", "0"], "{t}");
        let all = text(&rows, Duration::from_secs(1), None);
        assert!(all.lines().nth(4).is_some_and(|l| l.starts_with("new    -")), "{all}");
    }

    #[test]
    fn the_json_has_the_same_fields() {
        let v = json(&[row("t", Some(10.0)), row("u", None)], Duration::from_millis(500));
        assert_eq!(v["interval_s"], 0.5);
        let t = &v["topics"][0];
        assert_eq!(
            (t["name"].as_str(), t["messages_per_s"].as_f64(), t["bytes_per_s"].as_f64()),
            (Some("t"), Some(10.0), Some(1000.0))
        );
        assert_eq!(
            (t["publishers"].as_u64(), t["subscribers"].as_u64(), t["max_lag"].as_u64()),
            (Some(1), Some(2), Some(3))
        );
        assert!(v["topics"][1]["messages_per_s"].is_null());
    }
}
