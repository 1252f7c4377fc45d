//! Consumer groups: the daemon maps group names to the ring's group slots, opening a group when its first member
//! joins and closing it when the last one leaves. Opening waits (bounded) for publishers in their claim phase, so
//! it is reserved here and runs outside the state lock (see `work`).

use super::{Blocked, Refusal, State};
use shmbus_proto::msg::*;

impl State {
    /// The ring index of group `name` on `topic`, opening a free group slot on first use. A member re-registering
    /// after a restart (`resumed_slot`) teaches the daemon its group's name back from shared memory. A group that
    /// must be opened comes back as [`Blocked::Work`] (or [`Blocked::Wait`] while another request opens it).
    pub(super) fn group_index(
        &mut self,
        topic: &str,
        name: &str,
        from_oldest: bool,
        resumed_slot: Option<u32>,
    ) -> Result<u32, Blocked> {
        let refused = |kind, message: String| Blocked::Refused(Refusal { kind, message });
        if let Err(e) = shmbus_proto::names::validate_group(name) {
            return Err(refused(ErrorKind::InvalidRequest, e.to_string()));
        }
        let e = self.topics.get_mut(topic).expect("topic exists");
        if let Some(i) = e.groups.iter().position(|g| g.as_deref() == Some(name)) {
            return Ok(i as u32);
        }
        if let Some((_, ready)) = e.opening.values().find(|(n, _)| n == name) {
            return Err(Blocked::Wait(ready.clone()));
        }
        if let Some(slot) = resumed_slot {
            // After a restart the daemon learns group names back from the members that re-register. The index is
            // read from shared memory a subscriber writes: only a free, in-range group slot the ring has open is
            // taken (index 199 of 8 panicked this handler, issue 16 item 4); anything else joins by name below.
            let found =
                e.segment.topic.stats().subscribers.iter().find(|s| s.slot == slot as usize).and_then(|s| s.group);
            if let Some(g) = found.filter(|&g| e.groups.get(g).is_some_and(|n| n.is_none())) {
                if e.segment.topic.group_is_open(g) && !e.opening.contains_key(&g) {
                    e.groups[g] = Some(name.to_string());
                    return Ok(g as u32);
                }
            }
        }
        let t = e.segment.topic.clone();
        let free =
            (0..e.groups.len()).find(|&i| e.groups[i].is_none() && !e.opening.contains_key(&i) && !t.group_is_open(i));
        let Some(i) = free else {
            let n = e.groups.len();
            return Err(refused(ErrorKind::NoFreeSlot, format!("all {n} consumer groups of {topic:?} are in use")));
        };
        Err(Blocked::Work(e.reserve_group(topic, name, i, from_oldest)))
    }

    /// Closes group `g` of `topic` when no lease is a member of it any more.
    pub(super) fn close_group_if_empty(&mut self, topic: &str, g: u32) {
        let still = self
            .leases
            .values()
            .any(|o| o.topic == topic && matches!(o.role, Role::Subscriber { group: Some(x), .. } if x == g));
        if still {
            return;
        }
        let Some(e) = self.topics.get_mut(topic) else { return };
        let _ = e.segment.topic.close_group(g as usize, &*e.waiter);
        e.group_opened.remove(&(g as usize));
        if let Some(name) = e.groups.get_mut(g as usize).and_then(Option::take) {
            tracing::info!(topic = %topic, group = %name, "closed consumer group (no members left)");
        }
    }
}
