//! Who imports what, across the Zenoh network: every importer declares one liveliness token per import
//! pattern, `shmbus-bridge/import/<bridge id>/<pattern>` (both hex-encoded: a pattern's `*` and a name's `/`
//! cannot be key chunks), and exporters follow the tokens, so `shmbus stats` on the exporting host shows the
//! remote subscribers of each exported topic. A token disappears when its bridge stops, dies or loses the link.

use crate::glob::Glob;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use zenoh::sample::{Sample, SampleKind};

/// The key expression every importer token lives under.
pub const TOKENS: &str = "shmbus-bridge/import/**";

/// The token key of bridge `id` importing `pattern`.
pub fn token_key(id: &str, pattern: &str) -> String {
    format!("shmbus-bridge/import/{}/{}", hex(id), hex(pattern))
}

/// `(bridge id, pattern)` of a token key, or `None` for a key that is not one.
pub fn parse_key(key: &str) -> Option<(String, Glob)> {
    let rest = key.strip_prefix("shmbus-bridge/import/")?;
    let (id, pattern) = rest.split_once('/')?;
    let (id, pattern) = (unhex(id)?, unhex(pattern)?);
    Some((id, Glob::new(&pattern).ok()?))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) || s.len() > 2 * 256 {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

/// The importers alive now, by token key.
#[derive(Debug, Default)]
pub struct Remotes(Mutex<BTreeMap<String, (String, Glob)>>);

impl Remotes {
    /// Follows one liveliness sample: a token appearing or going away.
    pub fn observe(&self, sample: &Sample) {
        let key = sample.key_expr().as_str();
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match sample.kind() {
            SampleKind::Put => {
                if let Some(v) = parse_key(key) {
                    tracing::info!(bridge = %v.0, pattern = v.1.as_str(), "a remote importer appeared");
                    map.insert(key.to_string(), v);
                }
            }
            SampleKind::Delete => {
                if let Some((id, g)) = map.remove(key) {
                    tracing::info!(bridge = %id, pattern = g.as_str(), "a remote importer went away");
                }
            }
        }
    }

    /// The remote importers of `topic`: `bridge ID importing PATTERN`, skipping bridge `own` (a bridge that
    /// imports what it exports does not subscribe to itself).
    pub fn of(&self, topic: &str, own: &str) -> Vec<String> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.values()
            .filter(|(id, g)| id != own && g.matches(topic))
            .map(|(id, g)| format!("bridge {id} importing {}", g.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_keys_round_trip_names_and_patterns() {
        let k = token_key("host b/2", "sensors.*");
        assert!(!k["shmbus-bridge/import/".len()..].contains('*'), "{k}");
        let (id, g) = parse_key(&k).expect("a token key");
        assert_eq!((id.as_str(), g.as_str()), ("host b/2", "sensors.*"));
        assert!(parse_key("shmbus-bridge/import/zz/00").is_none());
        assert!(parse_key("shmbus/x").is_none());
    }
}
