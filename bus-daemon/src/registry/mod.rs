//! The daemon's state: topics, their segments and policies, and the lease table. Every control request is a
//! method of [`State`], called with the state locked for bookkeeping only: slow work (creating a topic, opening a
//! consumer group) is reserved under the lock and run without it (see [`work`]). The methods are grouped by
//! concern:
//!
//! * `topics`: creating, adopting, reloading and deleting topics;
//! * `leases`: the one grant path for both lease kinds, re-registration after a restart, closing;
//! * `groups`: consumer-group names and their ring slots;
//! * `restore`: the leases from before a restart, read back from the lease file;
//! * `fds`: which topics keep their descriptors open (those in use and a cache of recently used ones);
//! * `upkeep`: periodic duties (reclaiming what dead clients held, slow consumers, truncated objects, cleanup);
//! * `report`: listings and counters in wire form;
//! * [`work`]: slow work outside the lock, and the [`drive`] loop that runs a request through it.

mod clients;
mod fds;
mod groups;
mod invalid;
mod leases;
mod report;
mod reports;
mod restore;
mod topics;
mod upkeep;
mod vacancies;
pub mod work;

pub use leases::{Asker, LeaseKind, LeaseRequest};
pub use report::{whole_reply, PAGE_BYTES, PAGE_TOPICS};
pub use topics::{create_declared, Recreate};
pub use work::{drive, Blocked};

use crate::config::{Config, TopicSettings};
use crate::lease_file::{LeaseFile, Record};
use crate::policy::Action;
use crate::resume_key::ResumeKey;
use shmbus_os::{Access, PeerCred, ProcessId};
use shmbus_proto::msg::*;
use shmbus_ring::Geometry;
use shmbus_shm::{FutexWaiter, Segment, SegmentError};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

/// A refused request: the kind the client sees and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Error kind.
    pub kind: ErrorKind,
    /// Detail.
    pub message: String,
}

fn refuse<T>(kind: ErrorKind, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal { kind, message: message.into() })
}

impl From<SegmentError> for Refusal {
    fn from(e: SegmentError) -> Self {
        if let SegmentError::Os(o) = &e {
            if crate::fd_limit::exhausted(o.raw_os_error()) {
                let message = crate::fd_limit::exhausted_message(&format!("{} ({o})", o.object));
                return Refusal { kind: ErrorKind::ResourceExhausted, message };
            }
        }
        let kind = match &e {
            SegmentError::Os(o) if o.raw_os_error() == Some(libc::ENOSPC) => ErrorKind::ResourceExhausted,
            SegmentError::Unreachable { .. } => ErrorKind::NoSuchTopic,
            SegmentError::Os(o) if o.raw_os_error() == Some(libc::EEXIST) => ErrorKind::AlreadyExists,
            SegmentError::Name(_) => ErrorKind::InvalidRequest,
            _ => ErrorKind::Internal,
        };
        Refusal { kind, message: e.to_string() }
    }
}

/// A refusal for shared memory the daemon could not commit for `what` on `topic` (`ENOSPC`: /dev/shm is full).
pub(super) fn out_of_shm(topic: &str, what: &str, asked: usize, e: shmbus_os::OsError) -> Refusal {
    let kind = if e.raw_os_error() == Some(libc::ENOSPC) { ErrorKind::ResourceExhausted } else { ErrorKind::Internal };
    let free = crate::limits::free_bytes("/dev/shm").map(crate::limits::bytes).unwrap_or_else(|_| "?".into());
    let asked = crate::limits::bytes(asked as u64);
    Refusal {
        kind,
        message: format!(
            "cannot commit {asked} of shared memory for {what} of topic {topic:?} ({free} of /dev/shm free): {e}"
        ),
    }
}

/// One topic as the daemon knows it.
pub struct TopicEntry {
    /// Shared-memory objects (shared with slow work running outside the lock, e.g. a group opening).
    pub segment: Arc<Segment>,
    /// The topic's footprint ([`Segment::memory`]), kept here so summing it over thousands of topics at every
    /// creation reads one word per topic rather than chasing each segment.
    pub memory: u64,
    /// Settings in force.
    pub settings: TopicSettings,
    /// Declared in the configuration.
    pub declared: bool,
    /// Payload type set by the first typed publisher lease; cleared when the topic's last typed lease closes.
    /// Typed subscribers are checked against it but never set it.
    pub type_info: Option<TypeInfo>,
    /// Consumer-group names by index.
    pub groups: Vec<Option<String>>,
    /// Wakes the topic's sleepers (recovery, closing).
    pub waiter: Arc<FutexWaiter>,
    /// Lossless subscribers currently holding publishers back, since when.
    pub holding_since: HashMap<u32, Instant>,
    /// Uid charged for creating the topic on demand (`None`: declared, created by an admin, or adopted).
    pub creator: Option<u32>,
    /// Created on first use (`auto_create`), not by a create request or the configuration; remembered across
    /// restarts (see [`crate::remembered`]).
    pub on_demand: bool,
    /// Since when no lease has held this on-demand topic, as the upkeep last saw (`remove_unused_after`).
    pub unused_since: Option<Instant>,
    /// Group slots being opened outside the lock: name and what waiters wait on.
    pub opening: HashMap<usize, (String, Arc<work::Ready>)>,
    /// When each open group was opened (a group no lease joined within a grace time is closed by the upkeep).
    pub group_opened: HashMap<usize, Instant>,
    /// Per publisher slot, the claim-phase counter when the upkeep last found (or made) the slot free of claims;
    /// a slot no lease holds whose counter has not moved since is skipped (see `State::reclaim_unheld`).
    pub claims_checked: Vec<u64>,
    /// Whether the index ring and payload pages were given back since the last lease was granted (a new topic
    /// has none committed), and since when no lease has held the topic (`[daemon] return_idle_after`).
    pub returned: bool,
    /// See `returned`.
    pub idle_since: Option<Instant>,
}

impl TopicEntry {
    fn geometry(&self) -> Geometry {
        self.segment.topic.geometry()
    }
}

/// A granted lease.
#[derive(Clone, Debug)]
pub struct Lease {
    /// Topic name.
    pub topic: String,
    /// Topic generation.
    pub generation: u64,
    /// Role and slot.
    pub role: Role,
    /// Connection that holds it; `None` once that connection closed while the holder lives on (it may resume
    /// on a new one), and for leases restored from the lease file after a restart.
    pub conn: Option<u64>,
    /// The holder: SO_PEERCRED pid and its start time. The authority on whether the lease is still held (the
    /// byte lock on the readers object is only a hint; see [`crate::lease_file`]).
    pub holder: ProcessId,
    /// Holder's uid (SO_PEERCRED), counted against `max_leases_per_uid`.
    pub uid: u32,
    /// Holder's primary gid (SO_PEERCRED).
    pub gid: u32,
    /// Holder's supplementary groups.
    pub groups: Vec<u32>,
    /// What the policy admitted the lease for; checked again when a reload changes the policy.
    pub action: Action,
    /// Opened by a typed handle.
    pub typed: bool,
    /// When this daemon run granted it, or restored it after a restart.
    pub since: std::time::SystemTime,
    /// The holder's client name (its handshake's, escaped); not kept across a restart.
    pub client: Option<String>,
    /// What the holding connection last reported about the topic (see `reports`); dropped with the connection.
    pub report: Option<Arc<shmbus_proto::report::TopicReport>>,
}

impl Lease {
    /// The lease as the lease file keeps it.
    fn record(&self) -> Record {
        Record {
            topic: self.topic.clone(),
            generation: self.generation,
            role: self.role,
            holder: self.holder,
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
            action: self.action,
            typed: self.typed,
        }
    }

    /// The lease a record describes (the inverse of [`Lease::record`]), on connection `conn`.
    fn from_record(r: Record, conn: Option<u64>) -> Lease {
        Lease {
            topic: r.topic,
            generation: r.generation,
            role: r.role,
            conn,
            holder: r.holder,
            uid: r.uid,
            gid: r.gid,
            groups: r.groups,
            action: r.action,
            typed: r.typed,
            since: std::time::SystemTime::now(),
            client: None,
            report: None,
        }
    }

    /// Whether `policy` still admits the holder to what the lease was granted for.
    fn admitted_by(&self, policy: &crate::policy::Policy) -> bool {
        let cred = PeerCred { pid: self.holder.pid, uid: self.uid, gid: self.gid };
        policy.allows(self.action, &cred, &self.groups)
    }
}

impl Lease {
    /// Whether this lease holds `slot` (publisher or subscriber) of `topic`.
    pub fn holds(&self, topic: &str, publisher: bool, slot: u32) -> bool {
        self.topic == topic
            && match self.role {
                Role::Publisher { slot: s } => publisher && s == slot,
                Role::Subscriber { slot: s, .. } => !publisher && s == slot,
            }
    }
}

/// Everything the daemon knows.
pub struct State {
    /// Configuration in force.
    pub config: Config,
    /// Topics by name (added and removed through [`State::insert_topic`] and [`State::remove_topic`]).
    pub topics: BTreeMap<String, TopicEntry>,
    /// Leases by id.
    pub leases: HashMap<u64, Lease>,
    next_lease: u64,
    next_generation: u64,
    /// Topics being created outside the lock.
    creating: HashMap<String, work::Creating>,
    /// Why the objects of a name could not be adopted or created over (see [`State::list_invalid`]).
    invalid: BTreeMap<String, String>,
    /// Derives and checks resume tokens (an in-memory key until [`crate::run`] loads the prefix's key file).
    pub resume_key: ResumeKey,
    /// The lease table on disk (in memory only until [`State::restore_leases`] loads the prefix's file).
    lease_file: LeaseFile,
    /// What is remembered of each topic, as last written to its file (`None`: not written yet).
    remembered_saved: Option<BTreeMap<String, crate::remembered::Remembered>>,
    /// The last topic [`State::drop_truncated`] checked (it goes on after it).
    truncation_cursor: Option<String>,
    /// The last topic without leases the periodic reclaim looked at (it goes on after it).
    reclaim_cursor: Option<String>,
    /// Topics with a slow-consumer bound (refreshed by every reclaim pass).
    slow_topics: Vec<String>,
    /// The footprints of `topics` summed (kept by [`State::insert_topic`] and [`State::remove_topic`], so a
    /// creation does not sum thousands of them).
    topics_memory: u64,
    /// Which topics keep their descriptors open (see `fds`).
    fds: fds::FdCache,
    /// When this daemon run started (`DaemonInfo` uptime).
    pub started: Instant,
}

/// A lease reply and the two descriptors that go with it.
pub type Granted = (LeaseReply, [OwnedFd; 2]);

/// Access a lease of each kind gets to the data object.
fn data_access(publisher: bool) -> Access {
    if publisher {
        Access::ReadWrite
    } else {
        Access::ReadOnly
    }
}

impl State {
    /// Fresh state for `config` (no topics yet; see [`State::adopt_existing`] and [`State::create_declared`]).
    pub fn new(config: Config) -> State {
        State {
            config,
            topics: BTreeMap::new(),
            leases: HashMap::new(),
            next_lease: 1,
            next_generation: shmbus_os::realtime_ns(),
            creating: HashMap::new(),
            resume_key: ResumeKey::ephemeral(),
            lease_file: LeaseFile::memory(),
            remembered_saved: None,
            truncation_cursor: None,
            reclaim_cursor: None,
            slow_topics: Vec::new(),
            topics_memory: 0,
            fds: fds::FdCache::new(
                crate::fd_limit::current().map_or(256, |(soft, _)| crate::fd_limit::cache_topics(soft) as usize),
            ),
            started: Instant::now(),
            invalid: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a topic, keeping the footprint total; its descriptors (just opened) count as the most
    /// recently used, and the least recently used idle ones past the cache are closed.
    fn insert_topic(&mut self, name: String, entry: TopicEntry) {
        self.topics_memory += entry.memory;
        let open = entry.segment.fds_open();
        if let Some(old) = self.topics.insert(name.clone(), entry) {
            self.topics_memory = self.topics_memory.saturating_sub(old.memory);
        }
        self.fds.forget(&name);
        if open {
            self.fds.used(&name);
        }
        self.trim_fds();
    }

    /// Removes a topic, keeping the footprint total.
    fn remove_topic(&mut self, name: &str) -> Option<TopicEntry> {
        let e = self.topics.remove(name)?;
        self.topics_memory = self.topics_memory.saturating_sub(e.memory);
        self.fds.forget(name);
        Some(e)
    }

    /// Records a granted lease, in the table and in the lease file.
    fn record_lease(&mut self, id: u64, lease: Lease) {
        self.lease_file.put(&lease.record());
        self.fds.lease_added(&lease.topic);
        self.leases.insert(id, lease);
    }

    /// Forgets a lease, in the table and in the lease file.
    fn forget_lease(&mut self, id: u64) -> Option<Lease> {
        let l = self.leases.remove(&id)?;
        self.lease_file.clear(&l.topic, l.role);
        let open = self.topics.get(&l.topic).is_some_and(|e| e.segment.fds_open());
        self.fds.lease_removed(&l.topic, open);
        Some(l)
    }

    /// Forgets every lease of `topic` (the topic is gone).
    fn forget_leases_of(&mut self, topic: &str) {
        let ids: Vec<u64> = self.leases.iter().filter(|(_, l)| l.topic == topic).map(|(id, _)| *id).collect();
        for id in ids {
            self.forget_lease(id);
        }
    }

    /// One-line summary for systemd's STATUS= and the ready log line: topics, leases, and the client
    /// processes holding them (`3 topics, 5 leases held by 2 clients`).
    pub fn summary(&self) -> String {
        let clients: std::collections::HashSet<i32> = self.leases.values().map(|l| l.holder.pid).collect();
        format!("{} topics, {} leases held by {} clients", self.topics.len(), self.leases.len(), clients.len())
    }

    /// The shared-memory footprints of every topic summed, in bytes.
    pub fn topics_memory(&self) -> u64 {
        self.topics_memory
    }
}
