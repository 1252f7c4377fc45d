//! `shmbus topics`: list the topics.

use crate::args::TopicsArgs;
use crate::parse::human_bytes;
use anyhow::Context;
use bus_client::{InvalidObject, TopicInfo};
use std::path::PathBuf;

pub fn run(socket: Option<PathBuf>, a: TopicsArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    let topics = bus.topics().context("cannot list topics")?;
    let (invalid, omitted) =
        if a.all { bus.invalid_objects().context("cannot list invalid objects")? } else { (Vec::new(), 0) };
    if a.json && a.all {
        let v = serde_json::json!({ "topics": topics, "invalid": invalid, "invalid_omitted": omitted });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if a.json {
        println!("{}", serde_json::to_string_pretty(&topics)?);
    } else {
        print!("{}", render(&topics, &invalid));
        if omitted > 0 {
            println!("... and {omitted} more invalid objects");
        }
    }
    Ok(())
}

fn render(topics: &[TopicInfo], invalid: &[InvalidObject]) -> String {
    let mut rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                crate::table::short_generation(t.generation),
                t.geometry.capacity.to_string(),
                human_bytes(t.geometry.max_message as u64),
                format!("{}/{}", t.publishers, t.geometry.max_publishers),
                format!("{}/{}", t.subscribers, t.geometry.max_subscribers),
                human_bytes(t.memory),
                t.origin.label().to_string(),
            ]
        })
        .collect();
    for o in invalid {
        let mut row = vec!["-".to_string(); 8];
        row[0] = o.name.clone();
        row[7] = format!("invalid: {}", o.reason);
        rows.push(row);
    }
    crate::table::render("", &["NAME", "GEN", "CAPACITY", "MAX MSG", "PUBS", "SUBS", "MEMORY", "ORIGIN"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_client::GeometryWire;

    #[test]
    fn table_has_a_row_per_topic() {
        let geometry = GeometryWire {
            capacity: 1024,
            entry_bytes: 128,
            max_message: 65536,
            region_bytes: 1 << 20,
            max_publishers: 8,
            max_subscribers: 32,
            max_groups: 8,
        };
        let t = TopicInfo {
            name: "orders".into(),
            generation: 1_764_650_098_123_456_789,
            geometry,
            publishers: 1,
            subscribers: 2,
            declared: true,
            memory: 9 << 20,
            origin: bus_client::TopicOrigin::Config,
        };
        let bad = InvalidObject { name: "ghost".into(), reason: "failed validation: bad magic".into() };
        let s = render(&[t], &[bad]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("ghost ") && lines[2].ends_with("invalid: failed validation: bad magic"), "{s}");
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].contains("orders") && lines[1].contains("1/8") && lines[1].contains("2/32"), "{s}");
        assert!(lines[1].contains("64.0 KiB") && lines[1].contains("9.0 MiB"), "{s}");
        assert!(lines[1].ends_with("config"), "{s}");
        assert!(lines[1].contains(" 81c115 ") && !lines[1].contains("1764650098"), "6 hex digits: {s}");
    }
}
