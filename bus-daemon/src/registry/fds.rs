//! Which topics keep their descriptors open (issue 13; the bound is in [`crate::fd_limit`]): every topic a
//! lease holds, and the [`crate::fd_limit::cache_topics`] idle topics used last; every other topic keeps only
//! its mappings. A topic needed again is reopened by name and checked ([`shmbus_shm::Segment::open_fds`]); one
//! whose names no longer lead to its objects (unlinked, e.g. by logind's RemoveIPC, or replaced) is dropped like a
//! truncated one and its names reported as invalid objects, never handed out.

use super::{refuse, Refusal, State};
use shmbus_proto::msg::ErrorKind;
use shmbus_shm::SegmentError;
use std::collections::{BTreeMap, HashMap};

/// The idle topics with open descriptors, least recently used first, and how many leases each topic has.
#[derive(Debug, Default)]
pub(super) struct FdCache {
    /// Most idle topics kept open.
    cap: usize,
    /// Idle open topics by their last use.
    order: BTreeMap<u64, String>,
    /// The last use of each idle open topic (its key in `order`).
    stamp: HashMap<String, u64>,
    next: u64,
    /// Leases per topic (a topic with any is in use).
    leases: HashMap<String, u32>,
}

impl FdCache {
    /// A cache of at most `cap` idle topics.
    pub(super) fn new(cap: usize) -> FdCache {
        FdCache { cap, ..FdCache::default() }
    }

    /// Whether a lease holds something of `topic`.
    pub(super) fn in_use(&self, topic: &str) -> bool {
        self.leases.contains_key(topic)
    }

    /// Whether `topic` is counted as an idle open topic.
    pub(super) fn cached(&self, topic: &str) -> bool {
        self.stamp.contains_key(topic)
    }

    /// Idle topics counted as open.
    pub(super) fn idle_open(&self) -> usize {
        self.order.len()
    }

    /// Topics in use.
    pub(super) fn topics_in_use(&self) -> usize {
        self.leases.len()
    }

    /// `topic`'s descriptors are open and it was just used: an idle one becomes the most recently used.
    pub(super) fn used(&mut self, topic: &str) {
        if self.in_use(topic) {
            return;
        }
        self.forget(topic);
        self.next += 1;
        self.order.insert(self.next, topic.to_string());
        self.stamp.insert(topic.to_string(), self.next);
    }

    /// `topic` is no topic any more, or is in use (not counted among the idle ones).
    pub(super) fn forget(&mut self, topic: &str) {
        if let Some(s) = self.stamp.remove(topic) {
            self.order.remove(&s);
        }
    }

    /// A lease of `topic` was recorded.
    pub(super) fn lease_added(&mut self, topic: &str) {
        *self.leases.entry(topic.to_string()).or_default() += 1;
        self.forget(topic);
    }

    /// A lease of `topic` was forgotten; `open`: the topic exists and its descriptors are open (it becomes the
    /// most recently used idle topic when that was its last lease).
    pub(super) fn lease_removed(&mut self, topic: &str, open: bool) {
        let Some(n) = self.leases.get_mut(topic) else { return };
        *n -= 1;
        if *n == 0 {
            self.leases.remove(topic);
            if open {
                self.used(topic);
            }
        }
    }

    /// The least recently used idle topic past the cap (taken out of the cache), if any; with `all`, past 0.
    fn over(&mut self, all: bool) -> Option<String> {
        if self.order.len() <= if all { 0 } else { self.cap } {
            return None;
        }
        let (_, name) = self.order.pop_first()?;
        self.stamp.remove(&name);
        Some(name)
    }
}

impl State {
    /// Closes the descriptors of the least recently used idle topics past the cache's size. A topic whose names
    /// no longer lead to its objects is dropped instead (it could not be reopened).
    pub(super) fn trim_fds(&mut self) {
        self.close_idle(false);
    }

    /// Closes the descriptors of every idle topic (the descriptors ran out). Returns how many it closed.
    pub(super) fn shed_fds(&mut self) -> usize {
        self.close_idle(true)
    }

    fn close_idle(&mut self, all: bool) -> usize {
        let mut closed = 0;
        while let Some(name) = self.fds.over(all) {
            let Some(e) = self.topics.get(&name) else { continue };
            if !e.opening.is_empty() || self.creating.contains_key(&name) {
                continue; // work under way reopens as needed; counted again once it is done
            }
            match e.segment.close_fds() {
                Ok(()) => closed += 1,
                Err(why) => self.drop_unreachable(&name, &why),
            }
        }
        closed
    }

    /// Counts the idle topics whose descriptors some work reopened outside the lock (a group opening), so the
    /// cache bounds them too. Run by the periodic upkeep (one load per topic).
    pub(super) fn count_reopened(&mut self) {
        let open: Vec<String> = self
            .topics
            .iter()
            .filter(|(n, e)| !self.fds.in_use(n) && !self.fds.cached(n) && e.segment.fds_open())
            .map(|(n, _)| n.clone())
            .collect();
        for n in open {
            self.fds.used(&n);
        }
        self.trim_fds();
    }

    /// Makes sure topic `name`'s descriptors are open before a request uses them: reopened by name and checked if
    /// they were closed (a topic whose names no longer lead to its objects is dropped and the request refused);
    /// out of descriptors, every idle topic's are closed and it tries once more, else the request is refused.
    pub(super) fn use_fds(&mut self, name: &str) -> Result<(), Refusal> {
        for attempt in 0..2 {
            let Some(e) = self.topics.get(name) else {
                return refuse(ErrorKind::NoSuchTopic, format!("no such topic {name:?}"));
            };
            match e.segment.open_fds() {
                Ok(_) => {
                    self.fds.used(name);
                    return Ok(());
                }
                Err(SegmentError::Unreachable { why, .. }) => {
                    self.drop_unreachable(name, &why);
                    // The topic is gone now (`NoSuchTopic`, whose message clients show; `Closed` carries none).
                    return refuse(
                        ErrorKind::NoSuchTopic,
                        format!("topic {name:?} was removed: its objects can no longer be reached by name ({why})"),
                    );
                }
                Err(SegmentError::Os(o)) if crate::fd_limit::exhausted(o.raw_os_error()) => {
                    if attempt == 0 && self.shed_fds() > 0 {
                        continue;
                    }
                    let what = format!("topic {name:?}");
                    return refuse(ErrorKind::ResourceExhausted, crate::fd_limit::exhausted_message(&what));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let what = format!("topic {name:?}");
        refuse(ErrorKind::ResourceExhausted, crate::fd_limit::exhausted_message(&what))
    }

    /// Drops topic `name` whose objects can no longer be reached by name (`why`): like a truncated topic, it is
    /// marked closed (through the mappings), the names that are still its objects are unlinked and its leases
    /// forgotten; a file found in its place is kept and listed as an invalid object (`shmbus topics --all`;
    /// `shmbus delete` removes it), or removed under `remove_invalid`.
    pub(super) fn drop_unreachable(&mut self, name: &str, why: &str) {
        let Some(e) = self.remove_topic(name) else { return };
        tracing::error!(topic = %name, reason = %why, "topic objects can no longer be reached by name; removing the topic");
        e.segment.close_and_unlink(&*e.waiter);
        self.forget_leases_of(name);
        if self.config.remove_invalid {
            shmbus_shm::unlink_all(&self.config.shm_prefix, name);
        } else {
            self.invalid.insert(name.to_string(), format!("replaced or removed under the daemon: {why}"));
        }
    }

    /// Closes the descriptors of every idle topic, when the daemon ran out of them (at an `accept`). Returns how
    /// many topics it closed.
    pub fn shed_idle_fds(&mut self) -> usize {
        let n = self.shed_fds();
        if n > 0 {
            tracing::warn!(closed = n, "out of descriptors: closed the idle topics' descriptors");
        }
        n
    }

    /// Idle topics with open descriptors and topics in use (the descriptor bound's two terms).
    pub fn fd_use(&self) -> (usize, usize) {
        (self.fds.idle_open(), self.fds.topics_in_use())
    }
}

#[cfg(test)]
mod tests {
    use super::FdCache;

    #[test]
    fn idle_topics_past_the_cap_go_least_recently_used_first() {
        let mut c = FdCache::new(2);
        for t in ["a", "b", "c"] {
            c.used(t);
        }
        c.used("a");
        assert_eq!(c.over(false).as_deref(), Some("b"));
        assert_eq!(c.over(false), None);
        c.lease_added("a");
        assert!(c.in_use("a") && !c.cached("a"), "a topic in use is not an idle one");
        c.used("a");
        assert_eq!(c.idle_open(), 1);
        c.lease_added("a");
        c.lease_removed("a", true);
        assert!(c.in_use("a"));
        c.lease_removed("a", true);
        assert!(!c.in_use("a") && c.cached("a"));
        c.lease_removed("x", true);
        assert!(!c.cached("x"), "a lease never counted changes nothing");
        assert_eq!(c.over(true).as_deref(), Some("c"));
        assert_eq!(c.over(true).as_deref(), Some("a"));
        assert_eq!(c.over(true), None);
    }
}
