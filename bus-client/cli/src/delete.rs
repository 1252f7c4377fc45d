//! `shmbus delete`: delete a topic.

use crate::args::DeleteArgs;
use anyhow::Context;
use std::path::PathBuf;

pub fn run(socket: Option<PathBuf>, a: DeleteArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    bus.delete_topic(&a.topic).with_context(|| format!("cannot delete topic {:?}", a.topic))?;
    eprintln!("shmbus: deleted topic {:?}", a.topic);
    Ok(())
}
