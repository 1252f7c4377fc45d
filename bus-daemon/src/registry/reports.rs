//! Clients' reports about the topics they hold (protocol 7, [`Request::Report`]): kept on the reporting
//! connection's leases, so a report ends with the lease it rides on, and shown in the topic's stats.
//!
//! Only a topic the connection holds a lease on can be reported about, so a user cannot decorate another's
//! topics it was never admitted to; texts are escaped and cut, and the item counts bounded
//! ([`shmbus_proto::report`]).

use super::{refuse, Asker, Lease, Refusal, State};
use shmbus_proto::msg::ErrorKind;
use shmbus_proto::report::{ReportWire, TopicReport};
use std::collections::HashMap;
use std::sync::Arc;

impl State {
    /// Replaces connection `who.conn`'s reports with `topics` (one per topic; topics not listed lose theirs).
    pub fn report(&mut self, who: Asker<'_>, topics: &[TopicReport]) -> Result<(), Refusal> {
        let mut by_topic: HashMap<&str, Arc<TopicReport>> = HashMap::new();
        for t in topics {
            t.check().or_else(|e| refuse(ErrorKind::InvalidRequest, format!("report on {:?}: {e}", t.topic)))?;
            let held = self.leases.values().any(|l| l.conn == Some(who.conn) && l.topic == t.topic);
            if !held {
                return refuse(
                    ErrorKind::InvalidRequest,
                    format!("a report on {:?}, which this connection holds no lease on", t.topic),
                );
            }
            if by_topic.insert(t.topic.as_str(), Arc::new(t.sanitized())).is_some() {
                return refuse(ErrorKind::InvalidRequest, format!("two reports on {:?}", t.topic));
            }
        }
        for l in self.leases.values_mut().filter(|l| l.conn == Some(who.conn)) {
            l.report = by_topic.get(l.topic.as_str()).cloned();
        }
        Ok(())
    }
}

/// The reports on `topic` among `leases`, one per reporting connection.
pub(super) fn reports_of<'a>(leases: impl Iterator<Item = &'a Lease>) -> Vec<ReportWire> {
    let mut seen: Vec<u64> = Vec::new();
    let mut out = Vec::new();
    for l in leases {
        let (Some(conn), Some(r)) = (l.conn, &l.report) else { continue };
        if seen.contains(&conn) {
            continue;
        }
        seen.push(conn);
        out.push(ReportWire {
            client: l.client.clone(),
            pid: l.holder.pid,
            remote_subscribers: r.remote_subscribers.clone(),
            counters: r.counters.clone(),
        });
    }
    out
}
