//! Periodic duties and shutdown: reclaiming what dead clients held, demoting slow consumers, dropping topics whose
//! objects were truncated, and removing everything on `--cleanup-on-exit`.

use super::{State, TopicEntry};
use crate::remembered::Remembered;
use shmbus_proto::msg::Role;
use shmbus_shm::Health;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long an open group may have no member before the upkeep closes it.
const GROUP_GRACE: Duration = Duration::from_secs(2);

/// Most topics one [`State::drop_truncated`] call checks (the upkeep runs it every 50 ms tick).
pub const TRUNCATION_CHECKS: usize = 64;
/// Most idle topics one reclaim pass gives the pages of back (see `State::return_idle`).
pub const RETURN_SLICE: usize = 256;
/// Topics without leases whose slots one periodic reclaim pass (every 500 ms) looks at.
pub const RECLAIM_SLICE: usize = 256;

/// The names of the next (at most) `n` topics after `cursor` in name order, wrapping around to the first name
/// but never past where it started; `cursor` becomes the last of them.
fn next_slice<V>(topics: &BTreeMap<String, V>, cursor: &mut Option<String>, n: usize) -> Vec<String> {
    use std::ops::Bound::{Excluded, Unbounded};
    let from = cursor.take();
    let after = topics.range::<str, _>((from.as_deref().map_or(Unbounded, Excluded), Unbounded));
    let mut names: Vec<String> = after.take(n).map(|(k, _)| k.clone()).collect();
    if let (Some(f), true) = (&from, names.len() < n) {
        let more = n - names.len();
        names.extend(topics.keys().take(more).take_while(|k| *k <= f).cloned());
    }
    *cursor = names.last().cloned();
    names
}

/// The slots the leases of one topic hold: publisher slots (at most 64) and subscriber slots (at most 256) as bit
/// masks, built once per upkeep pass instead of scanning every lease for every slot of every topic.
#[derive(Debug, Default)]
pub(super) struct Held {
    publishers: u64,
    subscribers: [u64; 4],
}

impl Held {
    /// What the given leases hold, by topic.
    pub(super) fn by_topic<'a>(leases: impl Iterator<Item = &'a super::Lease>) -> HashMap<&'a str, Held> {
        let mut by: HashMap<&str, Held> = HashMap::new();
        for l in leases {
            let h = by.entry(l.topic.as_str()).or_default();
            match l.role {
                Role::Publisher { slot } if slot < 64 => h.publishers |= 1 << slot,
                Role::Subscriber { slot, .. } if slot < 256 => h.subscribers[slot as usize / 64] |= 1 << (slot % 64),
                _ => {}
            }
        }
        by
    }

    /// Whether a lease holds publisher (`publisher`) or subscriber slot `slot`.
    pub(super) fn has(&self, publisher: bool, slot: u32) -> bool {
        match (publisher, slot) {
            (true, s) if s < 64 => self.publishers & (1 << s) != 0,
            (false, s) if s < 256 => self.subscribers[s as usize / 64] & (1 << (s % 64)) != 0,
            _ => false,
        }
    }
}

impl State {
    /// Reclaims slots that the ring shows in use but no lease holds (their byte locks do not count: any
    /// subscriber can take those). `held` is what the leases hold of this topic.
    ///
    /// Light on idle topics (issue 13): the claims of a publisher slot no lease holds are scanned for (the whole
    /// index ring) only when its claim-phase counter moved since the last scan found it free, or is odd (a
    /// holder died inside a claim). Every claim moves the counter, so nothing a well-behaved publisher left is
    /// missed; an idle topic costs a few loads of its slot lines per tick.
    fn reclaim_unheld(e: &mut TopicEntry, held: Option<&Held>) {
        let geo = e.geometry();
        let t = &e.segment.topic;
        let is_held = |publisher: bool, slot: u32| held.is_some_and(|h| h.has(publisher, slot));
        for p in 0..geo.max_publishers {
            let Some(phases) = t.claim_phases(p as usize) else { continue };
            let checked = e.claims_checked.get(p as usize).copied();
            if is_held(true, p) || (checked == Some(phases) && phases & 1 == 0) {
                continue;
            }
            let Some(n) = super::vacancies::reclaim_publisher(e, p, &|q| !is_held(true, q as u32)) else {
                continue;
            };
            if n > 0 {
                tracing::warn!(topic = %e.segment.topic_name, slot = p, cancelled = n, "cancelled claims of a dead publisher");
            }
            if let (Some(c), true) = (e.claims_checked.get_mut(p as usize), phases & 1 == 0) {
                *c = phases;
            }
        }
        // Only slots in the in-use mask: the gate scan reads no other cursor, and a slot handed out again is
        // released by `take_free_slot` whatever its mask bit says.
        let in_use = t.subscriber_slots_in_use();
        for s in 0..geo.max_subscribers {
            let used = in_use.get(s as usize / 64).is_some_and(|w| w & (1 << (s % 64)) != 0);
            if used && t.subscriber_active(s as usize) && !is_held(false, s) {
                let _ = t.release_subscriber(s as usize, &*e.waiter);
                tracing::warn!(topic = %e.segment.topic_name, slot = s, "released the slot of a dead subscriber");
            }
        }
    }

    /// Reclaims the leases whose holder died (whether or not its connection is still open: a forked child may
    /// keep it), then the slots no lease holds: of every topic a lease holds something of, and of the next
    /// [`RECLAIM_SLICE`] other topics in name order (a lease that ends reclaims its own slots as it closes, so
    /// what is left on a topic without leases is only what a holder left behind it; every topic is still looked
    /// at within `topics / RECLAIM_SLICE` passes). Also refreshes the list of topics with a slow-consumer bound.
    pub fn reclaim_orphans(&mut self) {
        self.reclaim(false);
    }

    /// [`State::reclaim_orphans`]; with `every_topic`, the slots of every topic (after a restart).
    pub(super) fn reclaim(&mut self, every_topic: bool) {
        let dead: Vec<u64> = self.leases.iter().filter(|(_, l)| !l.holder.alive()).map(|(id, _)| *id).collect();
        for id in dead {
            let l = &self.leases[&id];
            tracing::info!(topic = %l.topic, role = ?l.role, pid = l.holder.pid, uid = l.uid, lease = id, "reclaiming the lease of a dead holder");
            let _ = self.close_lease(id);
        }
        let held = Held::by_topic(self.leases.values());
        if every_topic {
            for (name, e) in self.topics.iter_mut() {
                Self::reclaim_unheld(e, held.get(name.as_str()));
            }
        } else {
            for (name, h) in &held {
                if let Some(e) = self.topics.get_mut(*name) {
                    Self::reclaim_unheld(e, Some(h));
                }
            }
            let idle = next_slice(&self.topics, &mut self.reclaim_cursor, RECLAIM_SLICE);
            for name in idle.iter().filter(|n| !held.contains_key(n.as_str())) {
                if let Some(e) = self.topics.get_mut(name) {
                    Self::reclaim_unheld(e, None);
                }
            }
        }
        self.slow_topics =
            self.topics.iter().filter(|(_, e)| e.settings.slow_consumer.is_some()).map(|(n, _)| n.clone()).collect();
        self.close_memberless_groups();
        self.remove_unused();
        self.return_idle();
        self.count_reopened();
        self.persist_remembered();
    }

    /// Gives the index ring and payload pages of topics no lease has held for `[daemon] return_idle_after` back
    /// to /dev/shm (issue 13): an idle topic then commits only its header page and readers object, whatever it
    /// carried before. What it retained is forgotten (no reader attached could still read it: the ring refuses
    /// while a subscriber slot is in use, a group has unread messages, or a claim is in flight; see
    /// `Admin::forget_retained`). Under the state lock, which every lease grant takes, so no lease appears
    /// meanwhile; the time counts from when this daemon run saw the topic unused.
    fn return_idle(&mut self) {
        let Some(after) = self.config.return_idle_after else { return };
        let now = Instant::now();
        // A bounded number per pass, so a restart that adopted many topics does not stall the control plane
        // in one pass (each return is a punch and two `madvise` calls).
        let mut budget = RETURN_SLICE;
        let mut unreachable = Vec::new();
        for (name, e) in self.topics.iter_mut().filter(|(_, e)| !e.returned) {
            // `fds` counts the leases of each topic (no per-pass set of the leases' topics).
            if self.fds.in_use(name) || self.creating.contains_key(name) || !e.opening.is_empty() {
                e.idle_since = None;
                continue;
            }
            let since = *e.idle_since.get_or_insert(now);
            if now.duration_since(since) < after || budget == 0 {
                continue;
            }
            budget -= 1;
            // Returning reopens closed descriptors (the punch needs one); a topic the cache had closed is closed
            // again after, so returns neither push recently used topics out of the cache nor hold descriptors.
            let was_open = e.segment.fds_open();
            match e.segment.return_idle() {
                Ok(bytes) => {
                    e.returned = true;
                    // The ring reset every claim-phase counter: nothing to scan for until a publisher claims.
                    e.claims_checked.iter_mut().for_each(|c| *c = 0);
                    if bytes > 0 {
                        tracing::info!(topic = %name, bytes, after_ms = after.as_millis() as u64,
                            "gave an idle topic's index and payload pages back to /dev/shm");
                    }
                }
                Err(why) => {
                    // Looked at again after another `after` (a group with unread messages stays as it is).
                    e.idle_since = Some(now);
                    tracing::debug!(topic = %name, %why, "idle topic keeps its pages");
                }
            }
            if !was_open {
                if let Err(why) = e.segment.close_fds() {
                    unreachable.push((name.clone(), why));
                }
            }
        }
        for (name, why) in unreachable {
            self.drop_unreachable(&name, &why);
        }
    }

    /// Removes the topics created on first use that no lease has held for `[daemon] remove_unused_after` (off by
    /// default): a typo such as `shmbus sub ordres` under `auto_create` does not stay for ever. Declared topics
    /// and topics created by request are never removed; the time counts from when this daemon run saw the topic
    /// unused.
    fn remove_unused(&mut self) {
        let Some(after) = self.config.remove_unused_after else { return };
        let now = Instant::now();
        let mut unused = Vec::new();
        for (name, e) in self.topics.iter_mut().filter(|(_, e)| e.on_demand && !e.declared) {
            if self.fds.in_use(name) || self.creating.contains_key(name) {
                e.unused_since = None;
                continue;
            }
            let since = *e.unused_since.get_or_insert(now);
            if now.duration_since(since) >= after {
                unused.push(name.clone());
            }
        }
        for name in unused {
            if let Some(e) = self.remove_topic(&name) {
                e.segment.close_and_unlink(&*e.waiter);
                tracing::info!(topic = %name, after_ms = after.as_millis() as u64,
                    "removed a topic created on demand that no one used for remove_unused_after");
            }
        }
    }

    /// Writes what is remembered of each topic (see [`crate::remembered`]) when it changed since the last write.
    pub(super) fn persist_remembered(&mut self) {
        // Only topics with something to remember are copied (most have nothing: no per-tick copy of every name).
        let now: BTreeMap<String, Remembered> = self
            .topics
            .iter()
            .filter(|(_, e)| {
                e.creator.is_some() || e.on_demand || e.type_info.is_some() || e.settings.requested.is_some()
            })
            .map(|(n, e)| {
                let requested = if e.declared { None } else { e.settings.requested.as_deref().cloned() };
                let on_demand = e.on_demand && !e.declared;
                (n.clone(), Remembered { creator: e.creator, payload_type: e.type_info.clone(), requested, on_demand })
            })
            .filter(|(_, r)| *r != Remembered::default())
            .collect();
        if self.remembered_saved.as_ref() == Some(&now) {
            return;
        }
        match crate::remembered::save(&self.config.shm_prefix, &now) {
            Ok(()) => self.remembered_saved = Some(now),
            Err(e) => tracing::warn!(error = %e, "cannot write the remembered-topics file"),
        }
    }

    /// Gives adopted topics back what was remembered of them (after [`State::adopt_existing`]): the uid an
    /// on-demand topic is charged to, the policy keys its creator set, and its payload type (forgotten again if no typed lease is restored).
    pub fn restore_remembered(&mut self) {
        for (topic, r) in crate::remembered::load(&self.config.shm_prefix) {
            let Some(e) = self.topics.get(&topic) else { continue };
            let requested = (!e.declared).then_some(r.requested).flatten();
            let settings = requested.as_ref().map(|spec| self.config.undeclared_settings(Some(spec)));
            let e = self.topics.get_mut(&topic).expect("found above");
            if !e.declared {
                e.creator = r.creator;
                e.on_demand = r.on_demand;
            }
            if let Some(s) = settings {
                e.settings = crate::config::TopicSettings { geometry: e.settings.geometry, ..s };
                e.segment.topic.set_group_redelivery_all(e.settings.redeliver);
            }
            e.type_info = r.payload_type;
        }
    }

    /// Closes groups that no lease joined within [`GROUP_GRACE`] of opening: the request that opened one can
    /// still be refused after the group opened (its uid's lease quota filled meanwhile, its connection ended).
    fn close_memberless_groups(&mut self) {
        let mut idle = Vec::new();
        for (name, e) in &self.topics {
            for (g, _) in e.groups.iter().enumerate().filter(|(_, n)| n.is_some()) {
                let old = e.group_opened.get(&g).is_none_or(|t| t.elapsed() >= GROUP_GRACE);
                let member = self.leases.values().any(|l| {
                    l.topic == *name && matches!(l.role, Role::Subscriber { group: Some(x), .. } if x as usize == g)
                });
                if old && !member && !e.opening.contains_key(&g) {
                    idle.push((name.clone(), g as u32));
                }
            }
        }
        for (topic, g) in idle {
            self.close_group_if_empty(&topic, g);
        }
    }

    /// Demotes lossless subscribers that held publishers back longer than the topic's bound.
    ///
    /// Only the topics with a bound are looked at (the list the reclaim pass refreshes every 500 ms), so the
    /// 50 ms tick does not walk every topic.
    pub fn enforce_slow_consumers(&mut self, now: Instant) {
        for name in &self.slow_topics {
            let Some(e) = self.topics.get_mut(name) else { continue };
            let Some(bound) = e.settings.slow_consumer else { continue };
            let st = e.segment.topic.stats();
            let cap = e.geometry().capacity as u64;
            let mut holding = Vec::new();
            for s in st.subscribers.iter().filter(|s| s.gating && s.group.is_none()) {
                if s.lag + 1 >= cap {
                    holding.push(s.slot as u32);
                    let since = *e.holding_since.entry(s.slot as u32).or_insert(now);
                    if now.duration_since(since) >= bound {
                        let _ = e.segment.topic.demote(s.slot, &*e.waiter);
                        e.holding_since.remove(&(s.slot as u32));
                        tracing::warn!(topic = %name, slot = s.slot, bound_ms = bound.as_millis() as u64, "demoted a slow lossless subscriber to lossy");
                    }
                }
            }
            e.holding_since.retain(|s, _| holding.contains(s));
        }
    }

    /// Drops topics whose objects were truncated under us: marks them closed (what is left of the shared pages
    /// tells attached clients; the daemon's own accesses to missing pages read zeros, see
    /// [`shmbus_os::sigbus`]), unlinks them and forgets their leases. Every other topic keeps working.
    ///
    /// Each call checks at most [`TRUNCATION_CHECKS`] topics (two `fstat`s each, or two `lstat`s by name of a
    /// topic whose descriptors are closed), the next ones in name order after where the previous call stopped, so
    /// the upkeep's cost per tick stays bounded whatever the number of topics: every topic is checked once per
    /// `topics / TRUNCATION_CHECKS` ticks (every tick up to that many). A closed topic whose names no longer lead
    /// to its objects is dropped too (it could not be reopened), its names reported as invalid objects.
    /// Also closes the descriptors of idle topics past the cache (see `fds`).
    pub fn drop_truncated(&mut self) {
        let checked = next_slice(&self.topics, &mut self.truncation_cursor, TRUNCATION_CHECKS);
        let broken: Vec<(String, Health)> = checked
            .into_iter()
            .filter_map(|n| {
                let h = self.topics.get(&n)?.segment.health();
                (h != Health::Intact).then_some((n, h))
            })
            .collect();
        for (name, health) in broken {
            if let Health::Unreachable(why) = health {
                self.drop_unreachable(&name, &why);
            } else if let Some(e) = self.remove_topic(&name) {
                tracing::error!(topic = %name, "topic objects were truncated; removing the topic");
                e.segment.close_and_unlink(&*e.waiter);
                self.forget_leases_of(&name);
            }
        }
        self.trim_fds();
    }

    /// Marks every topic closed and unlinks everything (`--cleanup-on-exit`).
    pub fn cleanup(&mut self) {
        self.topics_memory = 0;
        for (name, e) in std::mem::take(&mut self.topics) {
            e.segment.close_and_unlink(&*e.waiter);
            tracing::info!(topic = %name, "removed topic");
        }
        let ids: Vec<u64> = self.leases.keys().copied().collect();
        for id in ids {
            self.forget_lease(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_slice;
    use std::collections::BTreeMap;

    #[test]
    fn slices_go_round_every_name_once() {
        let topics: BTreeMap<String, ()> = ["a", "b", "c", "d", "e"].iter().map(|n| (n.to_string(), ())).collect();
        let mut cursor = None;
        assert_eq!(next_slice(&topics, &mut cursor, 2), ["a", "b"]);
        assert_eq!(next_slice(&topics, &mut cursor, 2), ["c", "d"]);
        assert_eq!(next_slice(&topics, &mut cursor, 2), ["e", "a"]);
        assert_eq!(next_slice(&topics, &mut cursor, 9), ["b", "c", "d", "e", "a", "b"].map(String::from)[..5].to_vec());
        let mut cursor = Some("zz".to_string());
        assert_eq!(next_slice(&topics, &mut cursor, 3), ["a", "b", "c"], "a cursor past the end wraps");
        let empty: BTreeMap<String, ()> = BTreeMap::new();
        assert!(next_slice(&empty, &mut cursor, 3).is_empty());
        assert_eq!(cursor, None);
    }
}
