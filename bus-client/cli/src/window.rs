//! One window of `shmbus hz`: messages and bytes seen, messages lost to laps, and the message-size
//! distribution (min, p50, p99, max, mean), printed as a line or a JSON object.

use crate::parse::human_bytes;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::time::Duration;

/// Counts of one window. Min, max and mean are exact; the percentiles come from an HDR histogram with three
/// significant digits (exact up to 2048 bytes, within 0.1% above), kept within min and max.
pub struct Window {
    messages: u64,
    bytes: u64,
    lapped: u64,
    min: u64,
    max: u64,
    sizes: Histogram<u64>,
}

impl Window {
    /// An empty window.
    pub fn new() -> Window {
        // A message is at most `max_message` (a u32) bytes; three digits over that range take about 180 KiB.
        let sizes = Histogram::new_with_bounds(1, u64::from(u32::MAX), 3).expect("valid bounds and precision");
        Window { messages: 0, bytes: 0, lapped: 0, min: u64::MAX, max: 0, sizes }
    }

    /// Counts a message of `len` bytes.
    pub fn message(&mut self, len: usize) {
        let len = len as u64;
        self.messages += 1;
        self.bytes = self.bytes.saturating_add(len);
        self.min = self.min.min(len);
        self.max = self.max.max(len);
        // Saturating: no message is larger than the histogram's bound.
        self.sizes.saturating_record(len);
    }

    /// Counts `n` messages passed over after this lossy observer was lapped.
    pub fn lapped(&mut self, n: u64) {
        self.lapped = self.lapped.saturating_add(n);
    }

    fn quantile(&self, q: f64) -> u64 {
        self.sizes.value_at_quantile(q).clamp(self.min, self.max)
    }

    /// One line for people: rate, bandwidth, sizes, lapped, the window's length.
    pub fn line(&self, topic: &str, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let sizes = if self.messages == 0 {
            "size -".to_string()
        } else {
            format!(
                "size min {} p50 {} p99 {} max {} mean {:.1} B",
                human_bytes(self.min),
                human_bytes(self.quantile(0.5)),
                human_bytes(self.quantile(0.99)),
                human_bytes(self.max),
                self.bytes as f64 / self.messages as f64
            )
        };
        format!(
            "{}: {:.1} msg/s  {}/s  {sizes}  lapped {}  ({} messages in {:.2} s)",
            bus_client::printable(topic),
            self.messages as f64 / secs,
            human_bytes((self.bytes as f64 / secs).round() as u64),
            self.lapped,
            self.messages,
            secs
        )
    }

    /// One JSON object with the same fields; `size` is `null` for a window without messages.
    pub fn json(&self, topic: &str, elapsed: Duration) -> Value {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let size = (self.messages > 0).then(|| {
            json!({
                "min": self.min,
                "p50": self.quantile(0.5),
                "p99": self.quantile(0.99),
                "max": self.max,
                "mean": self.bytes as f64 / self.messages as f64,
            })
        });
        json!({
            "topic": topic,
            "window_s": secs,
            "messages": self.messages,
            "messages_per_s": self.messages as f64 / secs,
            "bytes": self.bytes,
            "bytes_per_s": self.bytes as f64 / secs,
            "lapped": self.lapped,
            "size": size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_and_laps() {
        let mut w = Window::new();
        for len in (1..=100).chain([5000]) {
            w.message(len);
        }
        w.lapped(3);
        let j = w.json("t", Duration::from_millis(500));
        assert_eq!(
            (j["messages"].as_u64(), j["bytes"].as_u64(), j["lapped"].as_u64()),
            (Some(101), Some(10050), Some(3))
        );
        assert_eq!(j["messages_per_s"].as_f64(), Some(202.0));
        let s = &j["size"];
        assert_eq!((s["min"].as_u64(), s["p50"].as_u64(), s["max"].as_u64()), (Some(1), Some(51), Some(5000)));
        assert_eq!(s["p99"].as_u64(), Some(100));
        let line = w.line("t", Duration::from_millis(500));
        assert!(line.starts_with("t: 202.0 msg/s  19.6 KiB/s  size min 1 B p50 51 B"), "{line}");
        assert!(line.ends_with("lapped 3  (101 messages in 0.50 s)"), "{line}");
    }

    #[test]
    fn one_size_is_exact_at_every_percentile() {
        let mut w = Window::new();
        for _ in 0..10 {
            w.message(65_537);
        }
        let s = w.json("t", Duration::from_secs(1))["size"].clone();
        for k in ["min", "p50", "p99", "max"] {
            assert_eq!(s[k].as_u64(), Some(65_537), "{k}: {s}");
        }
        let empty = Window::new();
        assert!(empty.json("t", Duration::from_secs(1))["size"].is_null());
        assert!(empty.line("t", Duration::from_secs(1)).contains("0.0 msg/s  0 B/s  size -  lapped 0"));
    }
}
