//! Saying who holds a publisher back: a `send` that has waited [`WARN_AFTER`] for room logs, at warn level and at
//! most once per [`EVERY`] per publisher, which lossless subscriber slots gate it (the ones at the oldest
//! position). The library does not know their process ids; `shmbus stats TOPIC` and `shmbus clients` do.

use shmbus_ring::{Topic, TopicStats};
use std::time::{Duration, Instant};

/// How long a `send` waits before it says who holds it back.
pub(crate) const WARN_AFTER: Duration = Duration::from_secs(1);
/// At most one such warning per publisher this often.
pub(crate) const EVERY: Duration = Duration::from_secs(10);

/// One publisher's rate limit for the warning.
#[derive(Debug, Default)]
pub(crate) struct HeldLog {
    last: Option<Instant>,
}

impl HeldLog {
    /// The send of `publisher` on `topic` has waited `waited` so far: warn unless warned within [`EVERY`].
    pub(crate) fn waited(&mut self, ring: &Topic, topic: &str, publisher: usize, waited: Duration) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        self.last = Some(now);
        let st = ring.stats();
        let (slots, position) = holders(&st);
        let waited_ms = waited.as_millis() as u64;
        if slots.is_empty() {
            tracing::warn!(
                topic,
                publisher,
                waited_ms,
                groups = st.groups.len(),
                "a send has waited for room; no single lossless subscriber gates it (a consumer group's members \
                 may hold it); see `shmbus stats`"
            );
        } else {
            tracing::warn!(
                topic,
                publisher,
                waited_ms,
                subscriber_slots = ?slots,
                position,
                behind = st.tail.saturating_sub(position),
                "a send has waited for room: held back by the lossless subscriber in slot {slots:?}, which has not \
                 read past position {position}; `shmbus stats {topic}` and `shmbus clients` show its process"
            );
        }
    }
}

/// The gating subscriber slots at the oldest position, and that position.
fn holders(st: &TopicStats) -> (Vec<usize>, u64) {
    let gating = st.subscribers.iter().filter(|s| s.gating);
    let Some(oldest) = gating.clone().map(|s| s.position).min() else { return (Vec::new(), 0) };
    (gating.filter(|s| s.position == oldest).map(|s| s.slot).collect(), oldest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmbus_ring::SubscriberStats;

    #[test]
    fn the_holders_are_the_gating_subscribers_at_the_oldest_position() {
        let sub = |slot, position, gating| SubscriberStats { slot, position, gating, ..Default::default() };
        let st = TopicStats {
            tail: 20,
            subscribers: vec![sub(0, 3, false), sub(1, 5, true), sub(2, 9, true), sub(4, 5, true)],
            ..Default::default()
        };
        assert_eq!(holders(&st), (vec![1, 4], 5), "slot 0 is lossy; slot 2 is further on");
        assert_eq!(holders(&TopicStats::default()), (vec![], 0));
    }
}
