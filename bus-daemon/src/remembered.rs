//! What the daemon remembers about its topics across its own restarts, beyond what the objects themselves say:
//! the uid an on-demand topic is charged to (so `max_auto_topics_per_uid` still counts topics created before a
//! restart, which come back adopted), the policy keys `shmbus create` set for an undeclared topic (so a restart
//! does not open it to `[defaults]`), and the payload type its typed handles registered (so a typed lease resumed
//! after the restart is still checked against it).
//!
//! `/dev/shm/.<prefix>.topics`: one line per topic, `<topic>\t<uid or ->\t<hash or ->\t<type name>` and, when
//! the creator set policy keys, `\t<the create request's spec, in the wire codec, as hex>` (`-` when none), then for
//! a topic created on first use `\ton-demand` (a file without it loads as "created by request"), a private
//! file of the daemon (see [`crate::private_file`]), rewritten by the upkeep when something changed (what changed
//! less than one upkeep period before a crash can be lost: a uid then gets one topic more, a type is set again by
//! the next typed publisher). Lines that do not parse, and topics that were not adopted, are ignored.

use crate::private_file;
use shmbus_proto::msg::{TopicSpec, TypeInfo};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// What is remembered of one topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remembered {
    /// Uid charged for creating it on demand.
    pub creator: Option<u32>,
    /// Payload type registered by its typed handles.
    pub payload_type: Option<TypeInfo>,
    /// The policy keys its creator set (undeclared topics only).
    pub requested: Option<TopicSpec>,
    /// Created on first use (`auto_create`), not by a create request.
    pub on_demand: bool,
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// The file of `prefix`.
pub fn path(prefix: &str) -> PathBuf {
    std::path::Path::new("/dev/shm").join(format!(".{prefix}.topics"))
}

fn parse(line: &str) -> Option<(String, Remembered)> {
    let mut f = line.splitn(6, '\t');
    let topic = f.next()?;
    shmbus_proto::names::validate_topic(topic).ok()?;
    let creator = match f.next()? {
        "-" => None,
        s => Some(s.parse::<u32>().ok()?),
    };
    let hash = match f.next()? {
        "-" => None,
        s => Some(s.parse::<u64>().ok()?),
    };
    let name = f.next()?;
    let requested = match f.next() {
        None | Some("-") => None,
        Some(h) => Some(shmbus_proto::codec::decode::<TopicSpec>(&from_hex(h)?).ok()?),
    };
    let payload_type = match hash {
        Some(hash) if shmbus_proto::names::type_name_ok(name) => Some(TypeInfo { name: name.to_string(), hash }),
        Some(_) => return None,
        None => None,
    };
    let on_demand = match f.next() {
        None => false,
        Some("on-demand") => true,
        Some(_) => return None,
    };
    Some((topic.to_string(), Remembered { creator, payload_type, requested, on_demand }))
}

/// What is recorded for `prefix` (empty if there is no usable file).
pub fn load(prefix: &str) -> BTreeMap<String, Remembered> {
    let mut text = String::new();
    match private_file::open_own(&path(prefix), false) {
        Ok(Some(mut f)) => {
            if Read::by_ref(&mut f).take(16 << 20).read_to_string(&mut text).is_err() {
                return BTreeMap::new();
            }
        }
        Ok(None) => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(path = %path(prefix).display(), error = %e, "ignoring the remembered-topics file");
            return BTreeMap::new();
        }
    }
    text.lines().filter_map(parse).collect()
}

/// Writes `topics` as the file of `prefix` (replacing a file of ours; refusing one that is not).
pub fn save(prefix: &str, topics: &BTreeMap<String, Remembered>) -> std::io::Result<()> {
    let p = path(prefix);
    let mut f = match private_file::open_own(&p, true)? {
        Some(f) => f,
        None => private_file::create_own(&p)?,
    };
    let mut text = String::new();
    for (topic, r) in topics {
        let uid = r.creator.map_or("-".to_string(), |u| u.to_string());
        let (hash, name) = r.payload_type.as_ref().map_or(("-".to_string(), ""), |t| (t.hash.to_string(), &t.name));
        text.push_str(&format!("{topic}\t{uid}\t{hash}\t{name}"));
        if let Some(spec) = &r.requested {
            match shmbus_proto::codec::encode(spec) {
                Ok(b) => text.push_str(&format!("\t{}", to_hex(&b))),
                Err(e) => tracing::warn!(topic = %topic, error = %e, "cannot remember the topic's requested policy"),
            }
        }
        if r.on_demand {
            if r.requested.is_none() {
                text.push_str("\t-");
            }
            text.push_str("\ton-demand");
        }
        text.push('\n');
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
    fn what_is_remembered_round_trips_and_garbage_is_ignored() {
        let prefix = format!("sbt{}xremembered", std::process::id());
        remove(&prefix);
        assert!(load(&prefix).is_empty());
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), Remembered { creator: Some(65534), ..Default::default() });
        m.insert("d".to_string(), Remembered { creator: Some(1), on_demand: true, ..Default::default() });
        let spec = TopicSpec { subscribe: Some("uid:1000".into()), redeliver: Some(false), ..Default::default() };
        m.insert(
            "p".to_string(),
            Remembered { creator: Some(7), requested: Some(spec), on_demand: true, ..Default::default() },
        );
        let t = TypeInfo { name: "Vec<Order, 3>".into(), hash: 42 };
        m.insert("b.c".to_string(), Remembered { payload_type: Some(t), ..Default::default() });
        save(&prefix, &m).unwrap();
        assert_eq!(load(&prefix), m);
        std::fs::write(path(&prefix), "a\t65534\t-\t\nnot a line\n../etc\t1\t-\t\nok\tx\t-\t\nt\t-\t7\tbad\x1b\n")
            .unwrap();
        assert_eq!(load(&prefix).len(), 1, "only the first line is valid");
        std::fs::write(path(&prefix), "a\t1\t-\t\tzz\n").unwrap();
        assert!(load(&prefix).is_empty(), "a requested spec that does not decode drops the line");
        m.remove("b.c");
        m.remove("p");
        m.remove("d");
        save(&prefix, &m).unwrap();
        assert_eq!(load(&prefix), m, "a shorter file replaces a longer one");
        remove(&prefix);
    }
}
