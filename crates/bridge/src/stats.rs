//! The bridge's counters: logged every `stats_interval`, at exit, and written to `stats_file` as JSON.
//!
//! Every counter is a monotonic `Relaxed` atomic: each is read on its own for reporting, and no other memory is
//! published through it, so no ordering between counters is promised (a report may be a few messages stale).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counters shared by the export and import threads.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Stats {
            /// `(name, value)` for every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Messages read on the local bus and published to Zenoh.
    exported,
    /// Messages a lossy export's local subscriber missed (forwarded as gaps in the bridge sequence).
    export_lagged,
    /// Zenoh puts that failed (the message is lost, and the bridge sequence skips it: the importer sees a gap).
    export_failed,
    /// Local messages not exported because this bridge's importer published them (no echo).
    echo_skipped,
    /// Local topics being exported right now.
    export_topics,
    /// Samples received from Zenoh and published on the local bus.
    imported,
    /// Gaps detected in an incoming stream (one per jump).
    gaps,
    /// Messages missing across those gaps (for a restarted exporter: from its topic sequence, an upper bound).
    lost,
    /// Streams whose exporter restarted (a new run of the same bridge id).
    source_restarts,
    /// Samples older than the stream's position (out of order or duplicated); published anyway.
    out_of_order,
    /// Samples refused: bad key, bad attachment, payload type mismatch, too large, or no local topic.
    refused,
    /// Imports dropped because the local topic was full (lossy streams at once, lossless ones after
    /// `import_block`).
    import_full,
    /// Distinct incoming streams seen (bridge id and topic).
    sources,
}

impl Stats {
    /// Adds one to `c`.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// The counters as one JSON object.
    pub fn to_json(&self) -> String {
        let fields: Vec<String> = self.snapshot().iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", fields.join(","))
    }

    /// Logs the counters at info level, one line.
    pub fn log(&self, what: &str) {
        let s = self.snapshot();
        let line: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v}")).collect();
        tracing::info!(counters = %line.join(" "), "{what}");
    }

    /// Writes the JSON to `path` through a temporary file and a rename, so readers never see half of it.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_json() + "\n")?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_every_counter() {
        let s = Stats::default();
        Stats::bump(&s.gaps);
        let j = s.to_json();
        assert!(j.contains("\"gaps\":1"), "{j}");
        assert!(j.contains("\"lost\":0"), "{j}");
        assert!(j.starts_with('{') && j.ends_with('}'));
    }
}
