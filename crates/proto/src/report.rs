//! What a client tells the daemon about a topic it holds a lease on, for `shmbus stats` and the metrics: a
//! bridge's remote subscribers of an exported topic and its counters of an imported one (gaps, lost, refused).
//!
//! A report is the client's word, shown as such (with its client name and pid), never used for any decision.
//! The daemon accepts it only for topics the reporting connection holds a lease on, cuts every text to
//! [`MAX_REPORT_TEXT`] and refuses more than [`MAX_REPORTED_ITEMS`] items of each kind per topic, so a report
//! can neither reach another user's topics nor grow the daemon's memory.

use serde::{Deserialize, Serialize};

/// Longest remote-subscriber or counter name kept (longer ones are cut).
pub const MAX_REPORT_TEXT: usize = 64;

/// Most remote subscribers, and most counters, one topic's report may carry.
pub const MAX_REPORTED_ITEMS: usize = 32;

/// One topic's report, as a client sends it ([`crate::Request::Report`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicReport {
    /// The topic (the connection must hold a lease on it).
    pub topic: String,
    /// Who consumes this topic elsewhere through the reporter (e.g. a remote bridge and its import pattern).
    pub remote_subscribers: Vec<String>,
    /// Named counters (e.g. `gaps`, `lost`), monotonic for the reporter's run.
    pub counters: Vec<(String, u64)>,
}

/// A report as `shmbus stats` shows it: the topic report and who made it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportWire {
    /// The reporter's client name (its handshake's, escaped).
    pub client: Option<String>,
    /// The reporter's pid.
    pub pid: i32,
    /// Its remote subscribers of the topic.
    pub remote_subscribers: Vec<String>,
    /// Its counters of the topic.
    pub counters: Vec<(String, u64)>,
}

impl TopicReport {
    /// Checks the limits; `Err` names the first one exceeded.
    pub fn check(&self) -> Result<(), String> {
        if self.remote_subscribers.len() > MAX_REPORTED_ITEMS || self.counters.len() > MAX_REPORTED_ITEMS {
            return Err(format!(
                "a report of {} remote subscribers and {} counters; at most {MAX_REPORTED_ITEMS} of each",
                self.remote_subscribers.len(),
                self.counters.len()
            ));
        }
        Ok(())
    }

    /// The report with every text escaped and cut to [`MAX_REPORT_TEXT`] (peer text: it reaches logs and
    /// terminals).
    pub fn sanitized(&self) -> TopicReport {
        let cut = |s: &str| crate::text::excerpt(s, MAX_REPORT_TEXT).into_owned();
        TopicReport {
            topic: self.topic.clone(),
            remote_subscribers: self.remote_subscribers.iter().map(|s| cut(s)).collect(),
            counters: self.counters.iter().map(|(k, v)| (cut(k), *v)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_text_is_cut_and_escaped() {
        let mut r = TopicReport { topic: "t".into(), ..TopicReport::default() };
        assert!(r.check().is_ok());
        r.counters = (0..=MAX_REPORTED_ITEMS as u64).map(|i| (format!("c{i}"), i)).collect();
        assert!(r.check().unwrap_err().contains("at most 32"));
        r.counters.clear();
        r.remote_subscribers = vec!["x".repeat(1000), "a\u{1b}[2Jb".into()];
        let s = r.sanitized();
        assert!(s.remote_subscribers[0].chars().count() <= MAX_REPORT_TEXT + 24, "{}", s.remote_subscribers[0]);
        assert!(!s.remote_subscribers[1].contains('\u{1b}'), "{}", s.remote_subscribers[1]);
    }
}
