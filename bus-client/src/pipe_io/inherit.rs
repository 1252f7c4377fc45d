//! Pipes inherited from a parent: the `SHMBUS_PIPES` environment protocol, and the process-wide registry that
//! takes ownership of each inherited descriptor exactly once.
//!
//! `SHMBUS_PIPES` is a comma-separated list of `TOPIC=FD:DIR:INODE[:ID[:LIVEFD:LIVEINODE]]` entries: the
//! descriptor number in the child, `r` if the child reads the pipe (it subscribes) or `w` if it writes it (it
//! publishes), and the pipe's inode number; for a `w` entry, optionally the writer id the pipe's reader handed
//! out for the child (see `roster.rs`) and, on a pipe shared by several writers, the descriptor and inode of the
//! child's liveness pipe (write end). A topic may appear once per direction. For example
//! `jobs=5:r:81234,results=7:w:81235:2:8:81240`.
//!
//! The inode makes the variable safe to inherit further: a grandchild started with a plain `Command` sees the
//! same variable, but the descriptors are close-on-exec again once this process has claimed them, so that number
//! is closed or names another file in the grandchild; an entry is used only if its descriptor is a pipe with that
//! inode, open in that direction. Anything else is ignored (with a debug log), never taken over. A set-user-ID or
//! set-group-ID process ignores the variable altogether (its caller chose the environment).

use crate::error::OpenError;
use shmbus_os::AccessMode;
use std::fmt::Write as _;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

/// The environment variable that lists inherited pipes (ignored in a set-user-ID or set-group-ID process: see
/// [`shmbus_proto::trust::env_var`]).
pub use shmbus_proto::trust::PIPES_ENV;

/// Which way an inherited pipe goes, seen from the process that inherits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The process reads the pipe: it subscribes to the topic.
    Read,
    /// The process writes the pipe: it publishes to the topic.
    Write,
}

impl Direction {
    fn letter(self) -> char {
        match self {
            Direction::Read => 'r',
            Direction::Write => 'w',
        }
    }

    pub(crate) fn verb(self) -> &'static str {
        match self {
            Direction::Read => "subscribing",
            Direction::Write => "publishing",
        }
    }
}

/// One entry of `SHMBUS_PIPES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) topic: String,
    pub(crate) fd: RawFd,
    pub(crate) dir: Direction,
    pub(crate) inode: u64,
    /// The writer id handed out for the child (`w` entries).
    pub(crate) id: Option<u32>,
    /// The child's liveness pipe: descriptor and inode (`w` entries on shared pipes).
    pub(crate) live: Option<(RawFd, u64)>,
}

/// Formats entries as the value of `SHMBUS_PIPES`.
pub(crate) fn format(entries: &[Entry]) -> String {
    let mut s = String::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{}={}:{}:{}", e.topic, e.fd, e.dir.letter(), e.inode);
        if let Some(id) = e.id {
            let _ = write!(s, ":{id}");
            if let Some((fd, inode)) = e.live {
                let _ = write!(s, ":{fd}:{inode}");
            }
        }
    }
    s
}

/// Parses the value of `SHMBUS_PIPES`.
pub(crate) fn parse(s: &str) -> Result<Vec<Entry>, String> {
    let mut out: Vec<Entry> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = |why: &str| format!("{PIPES_ENV} entry {item:?}: {why}");
        const SHAPE: &str = "expected TOPIC=FD:r|w:INODE[:ID[:LIVEFD:LIVEINODE]]";
        let (topic, rest) = item.split_once('=').ok_or_else(|| bad(SHAPE))?;
        shmbus_proto::names::validate_topic(topic).map_err(|e| bad(&e.to_string()))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let ([fd, dir, inode] | [fd, dir, inode, _] | [fd, dir, inode, _, _, _]) = parts[..] else {
            return Err(bad(SHAPE));
        };
        let fd: RawFd = fd.parse().ok().filter(|&f| f >= 0).ok_or_else(|| bad("bad descriptor number"))?;
        let dir = match dir {
            "r" => Direction::Read,
            "w" => Direction::Write,
            _ => return Err(bad("the direction must be r or w")),
        };
        let inode = inode.parse().map_err(|_| bad("bad inode number"))?;
        let id = match parts.get(3) {
            Some(id) => Some(id.parse().ok().filter(|&i| i > 0).ok_or_else(|| bad("bad writer id"))?),
            None => None,
        };
        let live = match (parts.get(4), parts.get(5)) {
            (Some(lfd), Some(lino)) => Some((
                lfd.parse()
                    .ok()
                    .filter(|&f: &RawFd| f >= 0 && f != fd)
                    .ok_or_else(|| bad("bad liveness descriptor"))?,
                lino.parse().map_err(|_| bad("bad liveness inode"))?,
            )),
            _ => None,
        };
        if (id.is_some() || live.is_some()) && dir != Direction::Write {
            return Err(bad("only a w entry has a writer id"));
        }
        if out.iter().any(|e| e.topic == topic && e.dir == dir) {
            return Err(bad("the topic is listed twice in this direction"));
        }
        let fds = |e: &Entry| [Some(e.fd), e.live.map(|l| l.0)];
        if out.iter().any(|e| fds(e).iter().flatten().any(|&f| f == fd || live.is_some_and(|l| l.0 == f))) {
            return Err(bad("the descriptor is listed twice"));
        }
        out.push(Entry { topic: topic.to_string(), fd, dir, inode, id, live });
    }
    Ok(out)
}

/// What a handle takes from the registry: the pipe end, and for a writer the id and liveness pipe its reader
/// handed out.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) fd: OwnedFd,
    pub(crate) id: Option<u32>,
    pub(crate) live: Option<OwnedFd>,
}

/// Checks that descriptor `fd` is the pipe with `inode`, open for `dir`, and takes ownership of it. A
/// descriptor that is that pipe but open the other way is made close-on-exec (it was meant for this process but
/// is unusable: it must not leak into its children); any other number is left alone (it may name another file
/// of this process).
fn claim_fd(fd: RawFd, dir: Direction, inode: u64) -> Result<OwnedFd, String> {
    let (fifo, ino) = shmbus_os::fifo_inode(fd).map_err(|err| format!("descriptor {fd}: {}", err.source))?;
    if !fifo || ino != inode {
        return Err(format!("descriptor {fd} is not the pipe with inode {inode}"));
    }
    let want = match dir {
        Direction::Read => AccessMode::ReadOnly,
        Direction::Write => AccessMode::WriteOnly,
    };
    if shmbus_os::access_mode(fd).ok() != Some(want) {
        // SAFETY: `fd` is open (fstat just succeeded on it) and is only borrowed for one fcntl.
        let _ = shmbus_os::set_cloexec(unsafe { BorrowedFd::borrow_raw(fd) }, true);
        return Err(format!("descriptor {fd} is not open for {}", dir.verb()));
    }
    // SAFETY: the descriptor is open and is the pipe end the parent handed to this process for this entry (its
    // inode and access mode match). The registry is built once per process and refuses duplicate descriptor
    // numbers, so this is the only owner created for it; nothing else in this library closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Close-on-exec again: this process's own children must not inherit it by accident.
    shmbus_os::set_cloexec(owned.as_fd(), true).map_err(|err| err.to_string())?;
    Ok(owned)
}

/// Claims the entry's pipe (and liveness pipe).
fn claim(e: &Entry) -> Result<Taken, String> {
    let fd = claim_fd(e.fd, e.dir, e.inode)?;
    let live = match e.live {
        Some((lfd, inode)) => Some(claim_fd(lfd, Direction::Write, inode)?),
        None => None,
    };
    Ok(Taken { fd, id: e.id, live })
}

struct Slot {
    entry: Entry,
    /// `None` once taken.
    fd: Option<Taken>,
}

static REGISTRY: OnceLock<Mutex<Vec<Slot>>> = OnceLock::new();

fn registry() -> &'static Mutex<Vec<Slot>> {
    REGISTRY.get_or_init(|| {
        crate::verify::warn_ignored_env();
        let Some(value) = shmbus_proto::trust::env_var(PIPES_ENV) else { return Mutex::new(Vec::new()) };
        let entries = match value.to_str().ok_or_else(|| format!("{PIPES_ENV} is not UTF-8")).and_then(parse) {
            Ok(e) => e,
            Err(why) => {
                tracing::warn!(problem = %why, "ignoring the inherited pipes");
                return Mutex::new(Vec::new());
            }
        };
        let mut slots = Vec::new();
        for e in entries {
            match claim(&e) {
                Ok(fd) => {
                    tracing::debug!(topic = %e.topic, fd = e.fd, direction = ?e.dir, "inherited a pipe");
                    slots.push(Slot { entry: e, fd: Some(fd) });
                }
                Err(why) => {
                    tracing::debug!(topic = %e.topic, problem = %why, "not using a pipe listed in {PIPES_ENV}");
                }
            }
        }
        Mutex::new(slots)
    })
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Slot>> {
    registry().lock().unwrap_or_else(|p| p.into_inner())
}

/// A pipe this process inherited (see [`inherited`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InheritedPipe {
    /// The topic it carries.
    pub topic: String,
    /// Whether this process reads or writes it.
    pub direction: Direction,
    /// Whether a handle already took it (each inherited pipe backs one handle).
    pub taken: bool,
}

/// The pipes this process inherited through `SHMBUS_PIPES`, claiming them on first call: from then on they are
/// close-on-exec, so this process's own children do not inherit them. [`Bus::connect`](crate::Bus::connect)
/// calls it; a program that spawns processes before connecting should call it first.
///
/// ```
/// // Without SHMBUS_PIPES in the environment there is nothing to claim.
/// # if std::env::var_os("SHMBUS_PIPES").is_none() {
/// assert!(bus_client::pipe::inherited().is_empty());
/// # }
/// ```
pub fn inherited() -> Vec<InheritedPipe> {
    lock()
        .iter()
        .map(|s| InheritedPipe { topic: s.entry.topic.clone(), direction: s.entry.dir, taken: s.fd.is_none() })
        .collect()
}

/// Whether this process inherited any pipe.
pub(crate) fn any() -> bool {
    !lock().is_empty()
}

/// Takes the inherited pipe of `topic` in direction `dir`: `None` if there is none.
pub(crate) fn take(topic: &str, dir: Direction) -> Option<Result<Taken, OpenError>> {
    let mut slots = lock();
    let slot = slots.iter_mut().find(|s| s.entry.topic == topic && s.entry.dir == dir)?;
    Some(slot.fd.take().ok_or_else(|| {
        OpenError::NoFreeSlot(format!(
            "the pipe inherited for {} topic {topic:?} was taken by an earlier handle of this process (each \
             inherited pipe backs one handle; dropping that handle closed the pipe for good)",
            dir.verb()
        ))
    }))
}

/// The inherited topics, for error messages: `jobs (subscribing), results (publishing)`.
pub(crate) fn describe() -> String {
    let slots = lock();
    if slots.is_empty() {
        return "none".into();
    }
    slots.iter().map(|s| format!("{} ({})", s.entry.topic, s.entry.dir.verb())).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn entry(topic: &str, fd: RawFd, dir: Direction, inode: u64) -> Entry {
        Entry { topic: topic.into(), fd, dir, inode, id: None, live: None }
    }

    #[test]
    fn format_and_parse_roundtrip() {
        let es = vec![entry("jobs", 5, Direction::Read, 81234), entry("results.v1", 7, Direction::Write, 9)];
        let s = format(&es);
        assert_eq!(s, "jobs=5:r:81234,results.v1=7:w:9");
        assert_eq!(parse(&s).unwrap(), es);
        assert_eq!(parse("").unwrap(), vec![]);
        // The same topic both ways is fine (a child that answers on the topic it is fed).
        assert_eq!(parse("t=3:r:1,t=4:w:2").unwrap().len(), 2);
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "jobs",
            "jobs=5",
            "jobs=5:r",
            "jobs=x:r:1",
            "jobs=-1:r:1",
            "jobs=5:x:1",
            "jobs=5:r:y",
            "jobs=5:r:1:2",
            "bad/name=5:r:1",
            "jobs=5:r:1,jobs=6:r:2",
            "a=5:r:1,b=5:w:1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn claim_checks_the_descriptor() {
        let p = shmbus_os::pipe().unwrap();
        let (fifo, ino) = shmbus_os::fifo_inode(p.read.as_raw_fd()).unwrap();
        assert!(fifo);
        let wrong_dir = entry("t", p.read.as_raw_fd(), Direction::Write, ino);
        assert!(claim(&wrong_dir).unwrap_err().contains("not open for publishing"));
        let wrong_inode = entry("t", p.read.as_raw_fd(), Direction::Read, ino + 1);
        assert!(claim(&wrong_inode).unwrap_err().contains("not the pipe"));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let not_pipe = entry("t", file.as_raw_fd(), Direction::Read, ino);
        assert!(claim(&not_pipe).is_err());
        // A descriptor number nobody has open.
        assert!(claim(&entry("t", 1 << 20, Direction::Read, ino)).is_err());
        // The real thing: ownership moves to the returned OwnedFd (forget ours so it is closed once).
        let raw = p.read.as_raw_fd();
        std::mem::forget(p.read);
        let owned = claim(&entry("t", raw, Direction::Read, ino)).unwrap().fd;
        assert_eq!(owned.as_raw_fd(), raw);
    }
}
