//! The daemon's descriptor bound (issue 13). The daemon holds, and documents:
//!
//! * [`PER_TOPIC`] descriptors per topic (its data and readers objects: every lease descriptor is reopened
//!   through them, never by name, and the readers one carries the lease-lock probes);
//! * [`PER_CONNECTION`] per control connection (the connection, and at most one reply's two lease descriptors in
//!   flight, see `server`);
//! * [`FIXED`] more (listener, prefix lock, key, lease and topics files, metrics, standard streams, slack).
//!
//! So `needed(topics, connections)` descriptors. At start the soft `RLIMIT_NOFILE` is raised to the hard one
//! (systemd's default soft limit is 1,024, its hard one 524,288; the unit sets `LimitNOFILE=65536`), and a topic
//! is created only while the topics' descriptors stay within half of the soft limit, the other half kept for
//! connections and replies in flight ([`max_topics`]: 16,352 topics under 65,536): a creation past it is refused,
//! naming the limit, instead of failing later in an `accept` or a lease reply.

/// Descriptors the daemon holds per topic.
pub const PER_TOPIC: u64 = 2;
/// Descriptors one control connection may hold at once.
pub const PER_CONNECTION: u64 = 3;
/// Descriptors held whatever the topics and connections.
pub const FIXED: u64 = 64;

/// Descriptors needed for `topics` topics and `max_connections` connections.
pub fn needed(topics: u64, max_connections: u64) -> u64 {
    topics
        .saturating_mul(PER_TOPIC)
        .saturating_add(max_connections.saturating_mul(PER_CONNECTION))
        .saturating_add(FIXED)
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

/// Most topics a soft limit of `soft` descriptors admits: their descriptors within half of it, less [`FIXED`].
pub fn max_topics(soft: u64) -> u64 {
    (soft / 2).saturating_sub(FIXED) / PER_TOPIC
}

/// Refuses one more topic when `topics` existing ones (creations under way included) are already
/// [`max_topics`] of the soft limit.
pub fn check_topic(topics: u64) -> Result<(), String> {
    let Some((soft, _)) = current() else { return Ok(()) };
    let max = max_topics(soft);
    if topics >= max {
        return Err(format!(
            "the daemon holds {topics} topics, the most its RLIMIT_NOFILE = {soft} admits ({PER_TOPIC} descriptors \
             per topic within half of the limit, the rest for connections): raise the limit (LimitNOFILE= in the \
             unit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_topics_and_connections() {
        assert_eq!(needed(10_000, 512), 20_000 + 1_536 + 64);
        assert_eq!(needed(u64::MAX, 1), u64::MAX);
        let (soft, hard) = current().unwrap();
        assert!(soft <= hard);
        assert_eq!(max_topics(65_536), 16_352);
        assert_eq!(max_topics(256), 32);
        assert_eq!(max_topics(10), 0);
        assert!(check_topic(0).is_ok() || max_topics(soft) == 0);
        assert!(check_topic(soft).is_err(), "past the soft limit");
    }
}
