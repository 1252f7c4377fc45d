//! The lease table on disk: which process holds which slot, kept across the daemon's own restarts.
//!
//! The daemon's lease table is the authority on who holds a slot (issue 16 item 5). A holder is identified by
//! its process ([`ProcessId`]: the SO_PEERCRED pid and its start time), which no other process can fake; the byte
//! locks on the readers object, which every subscriber of the topic can take, are only a hint for clients (see
//! ARCHITECTURE.md §9.6). So that a restarted daemon still knows the holders of the leases granted before it
//! went down, every grant writes a record here and every release clears it: `/dev/shm/.<prefix>.leases`, mode
//! 0600, the daemon's (see [`crate::private_file`]), next to the objects it describes and with their lifetime.
//!
//! The file is an array of 256-byte records, each written with one `pwrite` that never crosses a page, so a
//! daemon killed mid-write leaves the old or the new record. A record is only a claim of the daemon's past self:
//! at start it is used only if the topic exists with the record's generation, the slot is in range and the
//! process is still alive; everything else is cleared. A file that is not the daemon's own is replaced; if that
//! fails the table lives in memory only and leases from before a restart are reclaimed at the restart.

use crate::policy::Action;
use crate::private_file;
use shmbus_os::ProcessId;
use shmbus_proto::msg::Role;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const RECORD: usize = 256;
/// Most supplementary groups a record keeps (a holder with more is checked against the first ones only, which
/// can only make a policy reload revoke it, never admit it).
const MAX_GROUPS: usize = 32;
const MAGIC: &[u8; 4] = b"SBL2";
const MAX_TOPIC: usize = 64;
/// Most records read back at start (a bigger file is not the daemon's: it never holds this many leases).
const MAX_RECORDS: u64 = 1 << 20;
const NONE32: u32 = u32::MAX;
const NONE64: u64 = u64::MAX;

/// One lease as the file keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Topic name.
    pub topic: String,
    /// Topic generation the lease was granted in.
    pub generation: u64,
    /// Role and slot.
    pub role: Role,
    /// The holder.
    pub holder: ProcessId,
    /// The holder's uid.
    pub uid: u32,
    /// The holder's primary gid.
    pub gid: u32,
    /// The holder's supplementary groups (at most [`MAX_GROUPS`] are kept).
    pub groups: Vec<u32>,
    /// What the policy admitted the lease for.
    pub action: Action,
    /// Opened by a typed handle.
    pub typed: bool,
}

fn action_byte(a: Action) -> u8 {
    match a {
        Action::Publish => 0,
        Action::Subscribe => 1,
        Action::SubscribeGating => 2,
        Action::Admin => 3,
    }
}

fn byte_action(b: u8) -> Option<Action> {
    Some(match b {
        0 => Action::Publish,
        1 => Action::Subscribe,
        2 => Action::SubscribeGating,
        _ => return None,
    })
}

/// What identifies a record's place: one lease per slot of a topic.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    topic: String,
    publisher: bool,
    slot: u32,
}

fn key(topic: &str, role: Role) -> Key {
    let (publisher, slot) = match role {
        Role::Publisher { slot } => (true, slot),
        Role::Subscriber { slot, .. } => (false, slot),
    };
    Key { topic: topic.to_string(), publisher, slot }
}

fn encode(r: &Record) -> [u8; RECORD] {
    let mut b = [0u8; RECORD];
    let (publisher, slot, group) = match r.role {
        Role::Publisher { slot } => (true, slot, NONE32),
        Role::Subscriber { slot, group } => (false, slot, group.unwrap_or(NONE32)),
    };
    let name = r.topic.as_bytes();
    b[..4].copy_from_slice(MAGIC);
    b[4..12].copy_from_slice(&r.generation.to_le_bytes());
    b[12..16].copy_from_slice(&slot.to_le_bytes());
    b[16..20].copy_from_slice(&group.to_le_bytes());
    b[20..24].copy_from_slice(&r.holder.pid.to_le_bytes());
    b[24..28].copy_from_slice(&r.uid.to_le_bytes());
    b[28..36].copy_from_slice(&r.holder.start.unwrap_or(NONE64).to_le_bytes());
    b[36] = u8::from(publisher);
    b[37] = u8::from(r.typed);
    b[38] = name.len().min(MAX_TOPIC) as u8;
    b[39..39 + name.len().min(MAX_TOPIC)].copy_from_slice(&name[..name.len().min(MAX_TOPIC)]);
    b[103] = action_byte(r.action);
    b[104..108].copy_from_slice(&r.gid.to_le_bytes());
    let groups = &r.groups[..r.groups.len().min(MAX_GROUPS)];
    b[108] = groups.len() as u8;
    for (i, g) in groups.iter().enumerate() {
        b[112 + 4 * i..116 + 4 * i].copy_from_slice(&g.to_le_bytes());
    }
    b
}

fn decode(b: &[u8]) -> Option<Record> {
    if b.len() != RECORD || &b[..4] != MAGIC || b[36] > 1 || b[37] > 1 || b[38] as usize > MAX_TOPIC {
        return None;
    }
    if b[108] as usize > MAX_GROUPS {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let topic = std::str::from_utf8(&b[39..39 + b[38] as usize]).ok()?.to_string();
    shmbus_proto::names::validate_topic(&topic).ok()?;
    let (slot, group) = (u32_at(12), u32_at(16));
    let role = match b[36] {
        1 => Role::Publisher { slot },
        _ => Role::Subscriber { slot, group: (group != NONE32).then_some(group) },
    };
    let start = u64_at(28);
    let holder = ProcessId { pid: u32_at(20) as i32, start: (start != NONE64).then_some(start) };
    let groups = (0..b[108] as usize).map(|i| u32_at(112 + 4 * i)).collect();
    let action = byte_action(b[103])?;
    Some(Record {
        topic,
        generation: u64_at(4),
        role,
        holder,
        uid: u32_at(24),
        gid: u32_at(104),
        groups,
        action,
        typed: b[37] == 1,
    })
}

/// The lease table's file (or nothing, when it cannot be used), and where each slot's record lives in it.
#[derive(Debug, Default)]
pub struct LeaseFile {
    file: Option<File>,
    places: HashMap<Key, u64>,
    free: Vec<u64>,
    len: u64,
}

/// The file of `prefix`: `/dev/shm/.<prefix>.leases`.
pub fn path(prefix: &str) -> PathBuf {
    Path::new("/dev/shm").join(format!(".{prefix}.leases"))
}

fn read_all(f: &File) -> std::io::Result<Vec<Option<Record>>> {
    let len = f.metadata()?.len();
    if len % RECORD as u64 != 0 || len / RECORD as u64 > MAX_RECORDS {
        return Err(std::io::Error::other(format!(
            "{len} bytes is not a whole number of records (at most {MAX_RECORDS})"
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    f.read_exact_at(&mut bytes, 0)?;
    Ok(bytes.chunks_exact(RECORD).map(decode).collect())
}

impl LeaseFile {
    /// A table kept in memory only (tests; a daemon that cannot use its file).
    pub fn memory() -> LeaseFile {
        LeaseFile::default()
    }

    /// Opens the file of `prefix` and returns the records it holds, or creates it (see the module docs). Call it
    /// with the prefix lock held. The records are the caller's to check; each one not given back with
    /// [`LeaseFile::keep`] is cleared by [`LeaseFile::forget_the_rest`].
    pub fn load_or_create(prefix: &str) -> (LeaseFile, Vec<(u64, Record)>) {
        let path = path(prefix);
        let warn = |e: &dyn std::fmt::Display, what: &str| {
            tracing::warn!(path = %path.display(), error = %e, "{what}");
        };
        match private_file::open_own(&path, true).map(|f| f.map(|f| read_all(&f).map(|r| (f, r)))) {
            Ok(Some(Ok((file, records)))) => {
                let len = records.len() as u64;
                let found = records.into_iter().enumerate().filter_map(|(i, r)| Some((i as u64, r?))).collect();
                return (LeaseFile { file: Some(file), places: HashMap::new(), free: Vec::new(), len }, found);
            }
            Ok(None) => {}
            Ok(Some(Err(e))) | Err(e) => {
                warn(&e, "refusing the lease file; replacing it (leases from before this start are reclaimed)");
                if let Err(e) = std::fs::remove_file(&path) {
                    warn(&e, "cannot remove the refused lease file");
                }
            }
        }
        match private_file::create_own(&path) {
            Ok(file) => (LeaseFile { file: Some(file), ..LeaseFile::default() }, Vec::new()),
            Err(e) => {
                warn(
                    &e,
                    "cannot write the lease file; the lease table lives in memory (leases are reclaimed at a restart)",
                );
                (LeaseFile::memory(), Vec::new())
            }
        }
    }

    /// Keeps record `place` (from [`LeaseFile::load_or_create`]) for the lease it describes.
    pub fn keep(&mut self, place: u64, r: &Record) {
        self.places.insert(key(&r.topic, r.role), place);
    }

    /// Clears every record not kept, and makes their places free.
    pub fn forget_the_rest(&mut self) {
        let kept: std::collections::HashSet<u64> = self.places.values().copied().collect();
        for place in (0..self.len).filter(|p| !kept.contains(p)) {
            self.write(place, &[0u8; RECORD]);
            self.free.push(place);
        }
    }

    /// Records lease `r` (replacing what its slot had).
    pub fn put(&mut self, r: &Record) {
        let k = key(&r.topic, r.role);
        let place = match self.places.get(&k) {
            Some(&p) => p,
            None => {
                let p = self.free.pop().unwrap_or_else(|| {
                    self.len += 1;
                    self.len - 1
                });
                self.places.insert(k, p);
                p
            }
        };
        self.write(place, &encode(r));
    }

    /// Clears the record of `role` in `topic`.
    pub fn clear(&mut self, topic: &str, role: Role) {
        if let Some(place) = self.places.remove(&key(topic, role)) {
            self.write(place, &[0u8; RECORD]);
            self.free.push(place);
        }
    }

    fn write(&mut self, place: u64, bytes: &[u8; RECORD]) {
        let Some(f) = &self.file else { return };
        if let Err(e) = f.write_all_at(bytes, place * RECORD as u64) {
            // The table in memory stays right; only a restart would reclaim what this record described.
            tracing::warn!(error = %e, "cannot write the lease file");
        }
    }
}

/// Removes the file of `prefix` (`--cleanup-on-exit`).
pub fn remove(prefix: &str) {
    let _ = std::fs::remove_file(path(prefix));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, role: Role, pid: i32) -> Record {
        Record {
            topic: topic.into(),
            generation: 42,
            role,
            holder: ProcessId { pid, start: Some(777) },
            uid: 65534,
            gid: 65534,
            groups: vec![10, 20],
            action: if matches!(role, Role::Publisher { .. }) { Action::Publish } else { Action::SubscribeGating },
            typed: true,
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        for role in [
            Role::Publisher { slot: 3 },
            Role::Subscriber { slot: 7, group: Some(2) },
            Role::Subscriber { slot: 0, group: None },
        ] {
            let r = rec("orders.eu-1", role, 4321);
            assert_eq!(decode(&encode(&r)), Some(r));
        }
        let r = Record { holder: ProcessId { pid: 9, start: None }, ..rec("t", Role::Publisher { slot: 0 }, 9) };
        assert_eq!(decode(&encode(&r)), Some(r));
        let many =
            Record { groups: (0..40).collect(), action: Action::Subscribe, ..rec("t", Role::Publisher { slot: 0 }, 9) };
        assert_eq!(decode(&encode(&many)).unwrap().groups, (0..32).collect::<Vec<u32>>(), "the first 32 groups");
        assert_eq!(decode(&[0u8; RECORD]), None, "a cleared record");
        let mut bad = encode(&rec("t", Role::Publisher { slot: 0 }, 1));
        bad[38] = 200;
        assert_eq!(decode(&bad), None, "topic length out of range");
        let mut bad = encode(&rec("t", Role::Publisher { slot: 0 }, 1));
        bad[39] = b'/';
        assert_eq!(decode(&bad), None, "not a topic name");
    }

    #[test]
    fn the_file_keeps_what_was_put_and_forgets_what_was_cleared() {
        let prefix = format!("sbt{}xleasefile", std::process::id());
        remove(&prefix);
        let (mut f, found) = LeaseFile::load_or_create(&prefix);
        assert!(found.is_empty());
        let a = rec("a", Role::Publisher { slot: 0 }, 1);
        let b = rec("b", Role::Subscriber { slot: 1, group: None }, 2);
        let c = rec("c", Role::Subscriber { slot: 2, group: Some(0) }, 3);
        f.put(&a);
        f.put(&b);
        f.put(&c);
        f.clear("b", b.role);
        f.put(&Record { uid: 0, ..a.clone() });
        drop(f);
        let (mut f, found) = LeaseFile::load_or_create(&prefix);
        let got: Vec<Record> = found.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(got, vec![Record { uid: 0, ..a.clone() }, c.clone()]);
        // Keep only c; a is forgotten, and its place reused by the next record.
        let (place_c, _) = found.iter().find(|(_, r)| r.topic == "c").unwrap();
        f.keep(*place_c, &c);
        f.forget_the_rest();
        f.put(&b);
        drop(f);
        let (_, found) = LeaseFile::load_or_create(&prefix);
        let mut got: Vec<String> = found.iter().map(|(_, r)| r.topic.clone()).collect();
        got.sort();
        assert_eq!(got, vec!["b", "c"]);
        assert_eq!(std::fs::metadata(path(&prefix)).unwrap().len(), 3 * RECORD as u64, "places are reused");
        remove(&prefix);
    }

    #[test]
    fn a_planted_file_is_replaced_not_believed() {
        use std::os::unix::fs::PermissionsExt;
        let prefix = format!("sbt{}xleaseplant", std::process::id());
        remove(&prefix);
        std::fs::write(path(&prefix), encode(&rec("a", Role::Publisher { slot: 0 }, 1))).unwrap();
        std::fs::set_permissions(path(&prefix), std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, found) = LeaseFile::load_or_create(&prefix);
        assert!(found.is_empty(), "a 0644 file is not the daemon's");
        let m = std::fs::metadata(path(&prefix)).unwrap();
        assert_eq!((m.permissions().mode() & 0o777, m.len()), (0o600, 0), "replaced by an empty 0600 file");
        remove(&prefix);
    }
}
