//! What `shmbusd validate` checks beyond parsing, so that a configuration it accepts is one the daemon's start
//! accepts too: the declared topics fit in the free space of /dev/shm and within the descriptor limit the daemon
//! would run with (descriptors follow use; the topics are bounded by mappings, see [`crate::fd_limit`]). Geometry, policies (names resolved) and
//! budgets are checked by [`Config::parse`](crate::Config::parse) itself, for both.

use crate::Config;

/// Runs the start's checks on `c` in this process (which raises its descriptor limit as the daemon does).
pub fn check(c: &Config) -> Result<(), String> {
    fits_in_dev_shm(c)?;
    crate::fd_limit::raise();
    if let Some(maps) = crate::fd_limit::max_map_count() {
        let declared = c.topics.len() as u64;
        let max = crate::fd_limit::max_topics(maps);
        if declared > max {
            return Err(format!(
                "{declared} declared topics, more than the {max} vm.max_map_count = {maps} admits ({} mappings per \
                 topic): raise it (sysctl -w vm.max_map_count=…)",
                crate::fd_limit::MAPS_PER_TOPIC
            ));
        }
    }
    Ok(())
}

/// Whether the declared topics that do not exist yet fit in the free space of /dev/shm (statvfs).
fn fits_in_dev_shm(c: &Config) -> Result<(), String> {
    let need = c.declared_bytes_to_create();
    let free = crate::limits::free_bytes("/dev/shm")?;
    if need > free {
        return Err(format!(
            "the declared topics need {} of /dev/shm, but only {} are free",
            crate::limits::bytes(need),
            crate::limits::bytes(free)
        ));
    }
    Ok(())
}
