//! Never silent: where each incoming stream stands, and what a new sample says about what was missed.
//!
//! A stream is one exporter's (bridge id) export of one topic. Within one run of that exporter its bridge
//! sequence is 0, 1, 2, …, so a jump is a gap of exactly that many messages (a lossy export skips the numbers
//! it lost, so its local losses show up here too). A new run (the exporter restarted) restarts the bridge
//! sequence; what it missed meanwhile is estimated from the exporter's topic sequence (an upper bound: an
//! aborted loan also skips a number), or reported as unknown when that went back (the remote bus restarted).

use crate::meta::Meta;
use std::collections::HashMap;

/// What one sample tells about its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The next sample, as expected.
    Next,
    /// The first sample of a stream not seen before, at this bridge sequence.
    First {
        /// Its bridge sequence (nonzero: this importer joined the stream late).
        at: u64,
    },
    /// Samples are missing before this one.
    Gap {
        /// How many.
        missed: u64,
    },
    /// The exporter restarted (new run).
    Restarted {
        /// Messages missed across the restart, when the topic sequence tells.
        missed: Option<u64>,
    },
    /// Older than the stream's position (duplicate or reordered).
    Old,
}

#[derive(Debug)]
struct Position {
    run: u64,
    next: u64,
    topic_seq: u64,
}

/// The positions of every stream this importer has seen.
#[derive(Debug, Default)]
pub struct Sources(HashMap<(u64, String), Position>);

impl Sources {
    /// Advances the stream of `topic` that `m` belongs to and says what `m` tells.
    pub fn observe(&mut self, topic: &str, m: &Meta) -> Verdict {
        let key = (m.bridge, topic.to_string());
        let Some(p) = self.0.get_mut(&key) else {
            self.0.insert(key, Position { run: m.run, next: m.bridge_seq.saturating_add(1), topic_seq: m.topic_seq });
            return Verdict::First { at: m.bridge_seq };
        };
        if m.run != p.run {
            if m.run < p.run {
                return Verdict::Old; // a straggler of a run already replaced
            }
            let missed = m.topic_seq.checked_sub(p.topic_seq).map(|d| d.saturating_sub(1));
            *p = Position { run: m.run, next: m.bridge_seq.saturating_add(1), topic_seq: m.topic_seq };
            return Verdict::Restarted { missed };
        }
        if m.bridge_seq < p.next {
            return Verdict::Old;
        }
        let missed = m.bridge_seq - p.next;
        p.next = m.bridge_seq.saturating_add(1);
        p.topic_seq = m.topic_seq;
        if missed == 0 {
            Verdict::Next
        } else {
            Verdict::Gap { missed }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(bridge: u64, run: u64, bridge_seq: u64, topic_seq: u64) -> Meta {
        Meta {
            bridge,
            run,
            bridge_seq,
            topic_seq,
            publisher: 0,
            timestamp: 0,
            lossy: false,
            capacity: 0,
            max_message: 0,
            payload_type: None,
        }
    }

    #[test]
    fn counts_gaps_restarts_and_stragglers() {
        let mut s = Sources::default();
        assert_eq!(s.observe("t", &m(1, 10, 0, 100)), Verdict::First { at: 0 });
        assert_eq!(s.observe("t", &m(1, 10, 1, 101)), Verdict::Next);
        assert_eq!(s.observe("t", &m(1, 10, 5, 105)), Verdict::Gap { missed: 3 });
        assert_eq!(s.observe("t", &m(1, 10, 4, 104)), Verdict::Old);
        assert_eq!(s.observe("t", &m(1, 11, 0, 120)), Verdict::Restarted { missed: Some(14) });
        assert_eq!(s.observe("t", &m(1, 11, 1, 121)), Verdict::Next);
        assert_eq!(s.observe("t", &m(1, 10, 6, 106)), Verdict::Old, "the old run is over");
        assert_eq!(s.observe("t", &m(1, 12, 0, 3)), Verdict::Restarted { missed: None });
    }

    #[test]
    fn tells_two_exporters_and_two_topics_apart() {
        let mut s = Sources::default();
        assert_eq!(s.observe("t", &m(1, 10, 0, 0)), Verdict::First { at: 0 });
        assert_eq!(s.observe("t", &m(2, 10, 7, 0)), Verdict::First { at: 7 });
        assert_eq!(s.observe("u", &m(1, 10, 3, 0)), Verdict::First { at: 3 });
        assert_eq!(s.observe("t", &m(1, 10, 1, 1)), Verdict::Next);
        assert_eq!(s.observe("t", &m(2, 10, 8, 1)), Verdict::Next);
    }
}
