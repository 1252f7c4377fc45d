//! `shmbus create`: create a topic.

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
    };
    bus.create_topic(&a.topic, spec).with_context(|| format!("cannot create topic {:?}", a.topic))?;
    eprintln!("shmbus: created topic {:?}", a.topic);
    Ok(())
}
