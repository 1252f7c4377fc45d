//! `shmbus create`: create topics (one or many, over one connection), with a geometry and the policy keys of the
//! configuration's topic table.

use crate::args::CreateArgs;
use anyhow::Context;
use bus_client::TopicSpec;
use std::path::PathBuf;

pub fn run(socket: Option<PathBuf>, a: CreateArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    let spec = TopicSpec {
        capacity: a.capacity,
        max_message: a.max_message,
        payload_budget: a.payload_budget,
        max_publishers: a.max_publishers,
        max_subscribers: a.max_subscribers,
        max_groups: a.max_groups,
        publish: CreateArgs::principals(&a.publish),
        subscribe: CreateArgs::principals(&a.subscribe),
        gate: CreateArgs::principals(&a.gate),
        admin: CreateArgs::principals(&a.admin),
        slow_consumer_ms: a.slow_consumer_ms,
        redeliver: a.redeliver,
        payload_type: a.payload_type.clone(),
    };
    // Which exist already, to say so: the daemon answers an existing topic it would create the same way with
    // success (idempotent), and one whose asked geometry or policy differs with a refusal naming the difference.
    let existing: Vec<String> = bus.topics().map(|t| t.into_iter().map(|t| t.name).collect()).unwrap_or_default();
    let mut created = Vec::new();
    for topic in &a.topics {
        bus.create_topic(topic, spec.clone()).with_context(|| format!("cannot create topic {topic:?}"))?;
        if existing.contains(topic) {
            let how = if spec.has_geometry() { "with the geometry asked" } else { "(nothing changed)" };
            eprintln!("shmbus: topic {topic:?} exists already {how}");
        } else {
            created.push(topic);
        }
    }
    match created.as_slice() {
        [] => {}
        [one] => eprintln!("shmbus: created topic {one:?}"),
        many => eprintln!("shmbus: created {} topics", many.len()),
    }
    Ok(())
}
