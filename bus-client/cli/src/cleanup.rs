//! `shmbus cleanup`: removes the files of a prefix in /dev/shm that no live daemon or client uses: topics' objects
//! (also ones the daemon refused as invalid), stray semaphores, and the daemon's dot files (`.PREFIX.*`) — never
//! one in use. In use means: mapped by a process (`/proc/*/maps`), locked (`/proc/locks`: a client locks a byte of
//! its topic's readers object per lease), modified in the last `--min-age` (default 10 s: a creation may be under way), or,
//! while a daemon holds the prefix lock, one of its topics (asked over the control socket; without an answer
//! from that daemon no object is removed) or one of its dot files.

use crate::args::CleanupArgs;
use crate::shm_scan::{self, Entry, Kind, Mappers};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Some files could not be removed (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0} file(s) could not be removed")]
pub struct NotRemoved(pub usize);

/// Why a file stays.
fn keep_reason(
    e: &Entry,
    holder: Option<i32>,
    served: &Option<HashSet<String>>,
    busy_topics: &HashMap<String, String>,
    now: SystemTime,
    min_age: Duration,
) -> Option<String> {
    if let (Kind::Object { topic }, Some(why)) = (&e.kind, topic_of(e).and_then(|t| busy_topics.get(t))) {
        return Some(format!("topic {topic:?} in use: {why}"));
    }
    if let Some(why) = busy_topics.get(&format!("file:{}", e.name)) {
        return Some(format!("in use: {why}"));
    }
    if e.modified.and_then(|m| now.duration_since(m).ok()).is_none_or(|age| age < min_age) {
        return Some(format!("modified less than {min_age:?} ago (a creation may be under way)"));
    }
    match (&e.kind, holder) {
        (_, None) => None,
        (Kind::DaemonFile | Kind::Semaphore, Some(pid)) => Some(format!("the daemon (pid {pid}) holds the prefix")),
        (Kind::Object { topic }, Some(pid)) => match served {
            None => Some(format!("the daemon (pid {pid}) holds the prefix and did not list its topics to you")),
            Some(s) if s.contains(topic) => Some(format!("a topic of the daemon (pid {pid})")),
            Some(_) => None,
        },
    }
}

fn topic_of(e: &Entry) -> Option<&str> {
    match &e.kind {
        Kind::Object { topic } => Some(topic),
        _ => None,
    }
}

/// The topics of the daemon holding `prefix`, when it answers at `socket`, serves that prefix and shows the
/// caller every topic it has.
fn served_topics(socket: Option<PathBuf>, prefix: &str) -> Option<HashSet<String>> {
    let bus = crate::connect(socket).ok()?;
    let info = bus.daemon_info().ok()?;
    let topics = bus.topics().ok()?;
    if info.shm_prefix != prefix || info.topics != topics.len() as u64 {
        return None;
    }
    Some(topics.into_iter().map(|t| t.name).collect())
}

pub fn run(socket: Option<PathBuf>, a: CleanupArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let prefix = a.prefix;
    let entries = shm_scan::entries(&prefix).with_context(|| format!("cannot list {}", shm_scan::SHM_DIR))?;
    let holder = shm_scan::lock_holder(&prefix);
    let served = holder.and_then(|_| served_topics(socket, &prefix));
    let mappers = Mappers::scan();
    let locked = shm_scan::locked_inodes();
    // A topic is in use when either of its objects is: its readers object carries the leases' locks.
    let mut busy: HashMap<String, String> = HashMap::new();
    for e in &entries {
        let pids = mappers.of(&e.name);
        let why = if !pids.is_empty() {
            Some(format!("mapped by pid {}", pids.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")))
        } else if shm_scan::lock_key(&e.path()).is_some_and(|k| locked.contains(&k)) {
            Some("locked by a process".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            let key = topic_of(e).map_or_else(|| format!("file:{}", e.name), str::to_string);
            busy.entry(key).or_insert(why);
        }
    }
    let now = SystemTime::now();
    let (mut removed, mut kept, mut failed) = (0, 0, 0);
    for e in &entries {
        let path = e.path();
        match keep_reason(e, holder, &served, &busy, now, a.min_age) {
            Some(why) => {
                kept += 1;
                println!("keep    {} ({why})", path.display());
            }
            None if a.dry_run => {
                removed += 1;
                println!("would remove {}", path.display());
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => {
                    removed += 1;
                    println!("removed {}", path.display());
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    failed += 1;
                    eprintln!("shmbus: cannot remove {}: {err}", path.display());
                }
            },
        }
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    eprintln!("shmbus: prefix {prefix:?}: {verb} {removed}, kept {kept} in use");
    if mappers.unreadable > 0 {
        eprintln!(
            "shmbus: {} process(es) whose mappings could not be read; their leases' locks were still honoured",
            mappers.unreadable
        );
    }
    if failed > 0 {
        return Err(NotRemoved(failed).into());
    }
    Ok(())
}
