//! No echo: the local publisher slots this bridge's importer holds, so its exporter can skip what came from Zenoh.
//!
//! The importer registers a slot before its first message and, when it closes the publisher, records the last
//! sequence it published there: the exporter skips messages from that slot up to that sequence, and exports
//! those of whoever takes the slot afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One importer publisher: its slot, and its last sequence once closed.
#[derive(Clone, Copy, Debug)]
struct Held {
    slot: u32,
    closed_after: Option<u64>,
}

/// The slots of one topic. A short list behind a mutex held for a lookup only.
#[derive(Debug, Default)]
pub struct Slots(Mutex<Vec<Held>>);

impl Slots {
    /// Whether the message `seq` from publisher `slot` was published by this bridge's importer.
    pub fn is_ours(&self, slot: u32, seq: u64) -> bool {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.iter().any(|h| h.slot == slot && h.closed_after.is_none_or(|last| seq <= last))
    }

    /// Records an importer publisher on `slot` (before it publishes).
    pub fn hold(&self, slot: u32) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // An older closed holder of the same slot is superseded: this one covers every sequence from now on.
        held.retain(|h| h.slot != slot);
        held.push(Held { slot, closed_after: None });
    }

    /// Records that the importer publisher on `slot` closed after publishing up to `last` (`None`: nothing).
    pub fn release(&self, slot: u32, last: Option<u64>) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match last {
            Some(last) => held.iter_mut().filter(|h| h.slot == slot).for_each(|h| h.closed_after = Some(last)),
            None => held.retain(|h| h.slot != slot),
        }
    }
}

/// The slots of every topic, shared by the importer and the exporters of one bridge.
#[derive(Debug, Default)]
pub struct Echo(Mutex<HashMap<String, Arc<Slots>>>);

impl Echo {
    /// The slots of `topic` (created empty on first use).
    pub fn slots(&self, topic: &str) -> Arc<Slots> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(topic.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_the_importer_until_it_closes_then_exports_the_next_holder() {
        let s = Slots::default();
        assert!(!s.is_ours(2, 10));
        s.hold(2);
        assert!(s.is_ours(2, 10));
        assert!(!s.is_ours(3, 10), "another publisher is exported");
        s.release(2, Some(15));
        assert!(s.is_ours(2, 15), "what it published before closing is still skipped");
        assert!(!s.is_ours(2, 16), "the slot's next holder is exported");
        s.hold(2);
        assert!(s.is_ours(2, 99));
        s.release(2, None);
        assert!(!s.is_ours(2, 99));
    }
}
