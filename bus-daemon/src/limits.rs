//! Resource limits of the daemon (the `[daemon]` keys `max_topic_bytes`, `shm_budget`, `max_auto_topics_per_uid`,
//! `max_connections`, `max_connections_per_uid`, `max_leases_per_uid`,
//! `request_timeout_ms`) and the checks that apply them. Every refusal
//! names the limit and the size asked.

use shmbus_ring::Geometry;
use std::time::Duration;

/// Default largest shared-memory footprint of one topic: 256 MiB.
pub const DEFAULT_MAX_TOPIC_BYTES: u64 = 256 << 20;
/// Default total shared memory of all the daemon's topics: 2 GiB.
pub const DEFAULT_SHM_BUDGET: u64 = 2 << 30;
/// Default number of topics one (non-admin) uid may have created on demand.
pub const DEFAULT_AUTO_TOPICS_PER_UID: u32 = 16;
/// Default number of control connections at once.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 512;
/// Default number of control connections of one (non-admin) uid at once.
pub const DEFAULT_MAX_CONNECTIONS_PER_UID: u32 = 64;
/// Default number of leases one (non-admin) uid may hold at once.
pub const DEFAULT_MAX_LEASES_PER_UID: u32 = 256;
/// Default time a client has to complete its handshake or a started request frame.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The daemon's resource limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest footprint (data + readers object) of one topic, in bytes.
    pub max_topic_bytes: u64,
    /// Total footprint of all topics the daemon holds, in bytes.
    pub shm_budget: u64,
    /// Topics one uid may have created on demand (`auto_create`); admins of a topic are not counted.
    pub max_auto_topics_per_uid: u32,
    /// Control connections at once (further ones are answered with an error and closed).
    pub max_connections: u32,
    /// Control connections of one uid at once (root and the daemon's user are bound only by `max_connections`).
    pub max_connections_per_uid: u32,
    /// Leases of one uid at once (root and the daemon's user are not counted).
    pub max_leases_per_uid: u32,
    /// Time to complete the handshake after connecting, and a request frame once it started arriving; also the
    /// time a client has to read a reply before the daemon closes its connection.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_topic_bytes: DEFAULT_MAX_TOPIC_BYTES,
            shm_budget: DEFAULT_SHM_BUDGET,
            max_auto_topics_per_uid: DEFAULT_AUTO_TOPICS_PER_UID,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_uid: DEFAULT_MAX_CONNECTIONS_PER_UID,
            max_leases_per_uid: DEFAULT_MAX_LEASES_PER_UID,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Bytes of shared memory a topic of geometry `g` occupies (both objects). Only meaningful for a validated geometry.
pub fn footprint(g: &Geometry) -> u64 {
    (g.data_len() as u64).saturating_add(g.readers_len() as u64)
}

impl Limits {
    /// Checks one topic's footprint against `max_topic_bytes`, and against `shm_budget` with `in_use` bytes
    /// already held (`None`: only the per-topic limit). `what` names the topic in the message ("topic \"t\"").
    pub fn check_topic(&self, what: &str, g: &Geometry, in_use: Option<u64>) -> Result<(), String> {
        let need = footprint(g);
        if need > self.max_topic_bytes {
            return Err(format!(
                "{what} needs {} of shared memory, over the per-topic limit max_topic_bytes = {}",
                bytes(need),
                bytes(self.max_topic_bytes)
            ));
        }
        if let Some(used) = in_use {
            if used.saturating_add(need) > self.shm_budget {
                return Err(format!(
                    "{what} needs {}, but the daemon's shm_budget = {} has only {} left ({} in use)",
                    bytes(need),
                    bytes(self.shm_budget),
                    bytes(self.shm_budget.saturating_sub(used)),
                    bytes(used)
                ));
            }
        }
        Ok(())
    }
}

/// Checks that the payload regions of `g` fit an explicitly configured `payload_budget`: each publisher's region
/// holds at least one maximum-size message, so a small budget cannot be honoured with a large `max_message`.
pub fn check_payload_budget(g: &Geometry, budget: u64) -> Result<(), String> {
    let need = g.region_bytes.saturating_mul(g.max_publishers as u64);
    if need > budget {
        return Err(format!(
            "payload_budget = {} cannot hold one max_message = {} per publisher for {} publishers ({} needed); \
             raise payload_budget or lower max_message or max_publishers",
            bytes(budget),
            bytes(g.max_message as u64),
            g.max_publishers,
            bytes(need)
        ));
    }
    Ok(())
}

/// A geometry refused by `Geometry::validate`, worded as the limit it breaks and the values asked (the ring words
/// it for an attach, as corrupted memory; here it is a bad request or configuration).
pub fn check_geometry(g: &Geometry) -> Result<(), String> {
    g.validate().map_err(|e| {
        let why = match e {
            shmbus_ring::AttachError::Corrupted { what } => what.to_string(),
            other => other.to_string(),
        };
        format!(
            "invalid topic geometry: {why} (asked: capacity {}, max_message {}, {} publishers, {} subscribers, \
             {} groups, payload region {})",
            g.capacity,
            g.max_message,
            g.max_publishers,
            g.max_subscribers,
            g.max_groups,
            bytes(g.region_bytes)
        )
    })
}

/// `n` bytes, exact, with a binary-unit approximation when large ("8388608 bytes (8.0 MiB)").
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let (mut v, mut u) = (n as f64 / 1024.0, 0);
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{n} bytes ({v:.1} {})", UNITS[u])
}

/// Bytes free for unprivileged use on the file system of `path` (statvfs).
pub fn free_bytes(path: &str) -> Result<u64, String> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| format!("statvfs {path}: {e}"))?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_limit_and_the_size() {
        let l = Limits { max_topic_bytes: 1 << 20, shm_budget: 3 << 20, ..Limits::default() };
        let big = Geometry::new(64, 1 << 20, 8 << 20, 8, 4, 1);
        let e = l.check_topic("topic \"t\"", &big, None).unwrap_err();
        assert!(e.contains("max_topic_bytes = 1048576") && e.contains(&footprint(&big).to_string()), "{e}");
        let small = Geometry::new(64, 1024, 512 << 10, 2, 4, 1);
        assert!(l.check_topic("topic \"t\"", &small, Some(0)).is_ok());
        let e = l.check_topic("topic \"t\"", &small, Some(3 << 20)).unwrap_err();
        assert!(e.contains("shm_budget = 3145728") && e.contains(&footprint(&small).to_string()), "{e}");
        let e = check_payload_budget(&Geometry::new(64, 1 << 20, 64 << 10, 8, 4, 1), 64 << 10).unwrap_err();
        assert!(e.contains("payload_budget = 65536") && e.contains("8388608"), "{e}");
        let e = check_geometry(&Geometry::new(1 << 25, 1024, 1 << 20, 8, 4, 1)).unwrap_err();
        assert!(e.contains("2^24") && e.contains("33554432") && !e.contains("corrupt"), "{e}");
    }
}
