//! Which uid each on-demand topic is charged to, kept across the daemon's restarts, so `max_auto_topics_per_uid`
//! still counts the topics a uid created before a restart (they come back adopted).
//!
//! `/dev/shm/.<prefix>.charges`: one `<uid> <topic>` line per charged topic, a private file of the daemon (see
//! [`crate::private_file`]), rewritten by the upkeep when the set changed (a charge made less than one upkeep
//! period before a crash can be lost: the uid then gets one topic more). Lines that do not parse, and topics that
//! were not adopted, are ignored.

use crate::private_file;
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// The file of `prefix`.
pub fn path(prefix: &str) -> PathBuf {
    std::path::Path::new("/dev/shm").join(format!(".{prefix}.charges"))
}

/// The charges recorded for `prefix` (empty if there is no usable file).
pub fn load(prefix: &str) -> BTreeMap<String, u32> {
    let mut text = String::new();
    match private_file::open_own(&path(prefix), false) {
        Ok(Some(mut f)) => {
            if Read::by_ref(&mut f).take(16 << 20).read_to_string(&mut text).is_err() {
                return BTreeMap::new();
            }
        }
        Ok(None) => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(path = %path(prefix).display(), error = %e, "ignoring the on-demand charges file");
            return BTreeMap::new();
        }
    }
    text.lines()
        .filter_map(|l| {
            let (uid, topic) = l.split_once(' ')?;
            shmbus_proto::names::validate_topic(topic).ok()?;
            Some((topic.to_string(), uid.parse().ok()?))
        })
        .collect()
}

/// Writes `charges` as the file of `prefix` (replacing a file of ours; refusing one that is not).
pub fn save(prefix: &str, charges: &BTreeMap<String, u32>) -> std::io::Result<()> {
    let p = path(prefix);
    let mut f = match private_file::open_own(&p, true)? {
        Some(f) => f,
        None => private_file::create_own(&p)?,
    };
    let mut text = String::new();
    for (topic, uid) in charges {
        text.push_str(&format!("{uid} {topic}\n"));
    }
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(text.as_bytes())
}

/// Removes the file of `prefix` (`--cleanup-on-exit`).
pub fn remove(prefix: &str) {
    let _ = std::fs::remove_file(path(prefix));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_round_trip_and_garbage_is_ignored() {
        let prefix = format!("sbt{}xcharges", std::process::id());
        remove(&prefix);
        assert!(load(&prefix).is_empty());
        let mut c = BTreeMap::new();
        c.insert("a".to_string(), 65534);
        c.insert("b.c".to_string(), 1000);
        save(&prefix, &c).unwrap();
        assert_eq!(load(&prefix), c);
        std::fs::write(path(&prefix), "65534 a\nnot a line\nx ../etc\n7 ok\n").unwrap();
        let got = load(&prefix);
        assert_eq!(got.len(), 2, "{got:?}");
        c.remove("b.c");
        save(&prefix, &c).unwrap();
        assert_eq!(load(&prefix), c, "a shorter file replaces a longer one");
        remove(&prefix);
    }
}
