//! The daemon's descriptor bound and its topic bound (issue 13).
//!
//! Descriptors follow use, not the number of topics. The daemon holds, and documents:
//!
//! * [`PER_TOPIC`] descriptors (its data and readers objects) per topic **in use**: one some lease holds, or one
//!   a request is working on (creation, a group opening, a lease reply);
//! * the same for at most [`cache_topics`]`(soft)` recently used idle topics (a quarter of the soft limit in
//!   descriptors), least recently used closed first (`registry/fds.rs`); every other topic keeps only its
//!   mappings, and its objects are reopened by name, checked, when needed (`shmbus_shm::Segment::open_fds`);
//! * [`PER_CONNECTION`] per control connection (the connection, and at most one reply's two lease descriptors in
//!   flight, see `server`; a creation or reopening on behalf of a connection fits in the same two);
//! * [`FIXED`] more (listener, prefix lock, key, lease and topics files, metrics, standard streams, slack).
//!
//! So at most [`needed`]`(topics in use, max_connections, soft)` descriptors, whatever the number of topics.
//! When they really run out (`EMFILE` at an `accept` or a reopening), the daemon closes every idle topic's
//! descriptors and tries again, and otherwise refuses that request naming the limit: it never fails otherwise.
//!
//! Topics are bounded by mappings instead: [`MAPS_PER_TOPIC`] each, within `vm.max_map_count` less
//! [`MAP_RESERVE`] ([`max_topics`]: 32,253 topics under the default 65,530). At start the soft `RLIMIT_NOFILE` is
//! raised to the hard one (systemd's default soft limit is 1,024).

/// Descriptors of one topic whose descriptors are open.
pub const PER_TOPIC: u64 = 2;
/// Descriptors one control connection may hold at once.
pub const PER_CONNECTION: u64 = 3;
/// Descriptors held whatever the topics and connections.
pub const FIXED: u64 = 64;
/// Mappings the daemon holds per topic (its data and readers objects).
pub const MAPS_PER_TOPIC: u64 = 2;
/// Mappings left for everything else in the daemon (code, heap, thread stacks, metrics).
pub const MAP_RESERVE: u64 = 1_024;

/// Idle topics whose descriptors the daemon keeps open under a soft limit of `soft`: their descriptors a
/// quarter of the limit.
pub fn cache_topics(soft: u64) -> u64 {
    soft / 4 / PER_TOPIC
}

/// Descriptors the daemon may hold with `in_use` topics in use, at most `max_connections` connections and a
/// soft limit of `soft` (which sizes the idle cache).
pub fn needed(in_use: u64, max_connections: u64, soft: u64) -> u64 {
    in_use
        .saturating_add(cache_topics(soft))
        .saturating_mul(PER_TOPIC)
        .saturating_add(max_connections.saturating_mul(PER_CONNECTION))
        .saturating_add(FIXED)
}

/// How many topics may be in use at once before the descriptors of `soft` run out (with every connection open).
pub fn in_use_room(soft: u64, max_connections: u64) -> u64 {
    soft.saturating_sub(needed(0, max_connections, soft)) / PER_TOPIC
}

/// The soft and hard `RLIMIT_NOFILE` (`None` if they cannot be read).
pub fn current() -> Option<(u64, u64)> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a valid pointer to a local.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0).then_some((r.rlim_cur, r.rlim_max))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Returns the soft limit in force afterwards.
pub fn raise() -> Option<u64> {
    let (soft, hard) = current()?;
    if soft < hard {
        let r = libc::rlimit { rlim_cur: hard, rlim_max: hard };
        // SAFETY: setrlimit reads one rlimit through a valid pointer to a local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
            return Some(hard);
        }
    }
    Some(soft)
}

/// `vm.max_map_count` (`None` if it cannot be read).
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

/// Most topics a `vm.max_map_count` of `maps` admits: [`MAPS_PER_TOPIC`] each, less [`MAP_RESERVE`].
pub fn max_topics(maps: u64) -> u64 {
    maps.saturating_sub(MAP_RESERVE) / MAPS_PER_TOPIC
}

/// Refuses one more topic when `topics` existing ones (creations under way included) are already
/// [`max_topics`] of `vm.max_map_count`.
pub fn check_topic(topics: u64) -> Result<(), String> {
    let Some(maps) = max_map_count() else { return Ok(()) };
    let max = max_topics(maps);
    if topics >= max {
        return Err(format!(
            "the daemon holds {topics} topics, the most vm.max_map_count = {maps} admits ({MAPS_PER_TOPIC} mappings \
             per topic, {MAP_RESERVE} kept for the rest): raise it (sysctl -w vm.max_map_count=…)"
        ));
    }
    Ok(())
}

/// Whether an error is the process or the system running out of descriptors (`EMFILE`, `ENFILE`).
pub fn exhausted(errno: Option<i32>) -> bool {
    matches!(errno, Some(libc::EMFILE | libc::ENFILE))
}

/// The refusal's wording when the descriptors ran out.
pub fn exhausted_message(what: &str) -> String {
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let soft = current().map_or(0, |(s, _)| s);
    format!(
        "the daemon is out of descriptors for {what} ({open} open, RLIMIT_NOFILE = {soft}; each topic in use \
         holds {PER_TOPIC}): raise the limit (LimitNOFILE= in the unit)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_topics_in_use_the_cache_and_connections() {
        assert_eq!(cache_topics(20_000), 2_500);
        assert_eq!(needed(100, 512, 20_000), (100 + 2_500) * 2 + 1_536 + 64);
        assert_eq!(needed(u64::MAX, 1, 1), u64::MAX);
        assert_eq!(in_use_room(20_000, 512), (20_000 - 5_000 - 1_536 - 64) / 2);
        assert_eq!(in_use_room(512, 512), 0, "a limit below the connections' share leaves no room");
        let (soft, hard) = current().unwrap();
        assert!(soft <= hard);
        assert_eq!(max_topics(65_530), 32_253);
        assert_eq!(max_topics(1_000), 0);
        assert!(exhausted(Some(libc::EMFILE)) && exhausted(Some(libc::ENFILE)) && !exhausted(Some(libc::ENOENT)));
        if let Some(maps) = max_map_count() {
            assert!(check_topic(0).is_ok() || max_topics(maps) == 0);
            assert!(check_topic(maps).is_err(), "past the mappings");
        }
    }
}
