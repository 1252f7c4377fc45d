//! The daemon's state: topics, their segments and policies, and the lease table. Every control request is a
//! method here, called with the state locked.

use crate::config::{Config, TopicSettings};
use crate::policy::Action;
use crate::segment::{Modes, Segment, SegmentError};
use bus_client::shm::SemWaiter;
use shmbus_os::{Access, PeerCred};
use shmbus_proto::msg::*;
use shmbus_proto::names;
use shmbus_ring::{AttachError, Geometry};
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
        let kind = match &e {
            SegmentError::Os(o) if o.raw_os_error() == Some(libc::ENOSPC) => ErrorKind::ResourceExhausted,
            SegmentError::Os(o) if o.raw_os_error() == Some(libc::EEXIST) => ErrorKind::AlreadyExists,
            SegmentError::Name(_) => ErrorKind::InvalidRequest,
            _ => ErrorKind::Internal,
        };
        Refusal { kind, message: e.to_string() }
    }
}

/// One topic as the daemon knows it.
pub struct TopicEntry {
    /// Shared-memory objects.
    pub segment: Segment,
    /// Settings in force.
    pub settings: TopicSettings,
    /// Declared in the configuration.
    pub declared: bool,
    /// Payload type registered by the first typed handle.
    pub type_info: Option<TypeInfo>,
    /// Consumer-group names by index.
    pub groups: Vec<Option<String>>,
    /// Wakes the topic's sleepers (recovery, closing).
    pub waiter: Arc<SemWaiter>,
    /// Lossless subscribers currently holding publishers back, since when.
    pub holding_since: HashMap<u32, Instant>,
}

impl TopicEntry {
    fn geometry(&self) -> Geometry {
        self.segment.topic.geometry()
    }

    fn publisher_dead(&self, p: usize) -> bool {
        !shmbus_os::is_byte_locked(self.segment.readers_fd(), names::lock_offset(true, p as u32)).unwrap_or(false)
    }

    fn slot_locked(&self, publisher: bool, slot: u32) -> bool {
        shmbus_os::is_byte_locked(self.segment.readers_fd(), names::lock_offset(publisher, slot)).unwrap_or(true)
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
    /// Connection that holds it.
    pub conn: u64,
    /// Holder's pid (SO_PEERCRED).
    pub pid: i32,
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
    /// Topics by name.
    pub topics: BTreeMap<String, TopicEntry>,
    /// Leases by id.
    pub leases: HashMap<u64, Lease>,
    next_lease: u64,
    next_generation: u64,
}

/// A lease reply and the two descriptors that go with it.
pub type Granted = (LeaseReply, [OwnedFd; 2]);

use bus_client::shm::geometry_to_wire as geometry_wire;

fn modes(settings: &TopicSettings) -> Modes {
    Modes { objects: 0o600, semaphores: if settings.policy.is_open() { 0o666 } else { 0o660 }, sem_group: None }
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
        }
    }

    /// Adopts objects under the prefix whose headers validate (after a restart). Returns (adopted, refused).
    /// Refused objects are logged and kept, unless the configuration says to remove them.
    pub fn adopt_existing(&mut self) -> (usize, usize) {
        let prefix = self.config.shm_prefix.clone();
        let mut names_found: Vec<String> = shmbus_os::list_shm(&prefix)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| names::parse_object(&prefix, n).map(|(t, _)| t))
            .collect();
        names_found.sort();
        names_found.dedup();
        let (mut ok, mut bad) = (0, 0);
        for t in names_found {
            let settings = match self.config.topic_settings(&t, None) {
                Ok(s) => s,
                Err(_) => self.config.defaults.clone(),
            };
            match Segment::adopt(&prefix, &t, modes(&settings)) {
                Ok(seg) => {
                    let declared = self.config.topics.iter().any(|(n, _)| *n == t);
                    let mut settings = settings;
                    if settings.geometry != seg.topic.geometry() {
                        tracing::warn!(topic = %t, "adopted topic keeps its existing geometry, which differs from the configuration");
                        settings.geometry = seg.topic.geometry();
                    }
                    let entry = self.entry_for(seg, settings, declared);
                    self.next_generation = self.next_generation.max(entry.segment.topic.generation() + 1);
                    self.reclaim_unheld(&entry);
                    tracing::info!(topic = %t, "adopted existing topic");
                    self.topics.insert(t, entry);
                    ok += 1;
                }
                Err(e) => {
                    bad += 1;
                    if self.config.remove_invalid {
                        tracing::error!(topic = %t, error = %e, "removing objects that fail validation");
                        crate::segment::unlink_all(&prefix, &t, None);
                    } else {
                        tracing::error!(topic = %t, error = %e, "refusing to adopt objects that fail validation; left in place");
                    }
                }
            }
        }
        (ok, bad)
    }

    fn entry_for(&self, segment: Segment, settings: TopicSettings, declared: bool) -> TopicEntry {
        let geo = segment.topic.geometry();
        let waiter = Arc::new(SemWaiter::new(&names::sem_prefix(&segment.prefix, &segment.topic_name), &geo));
        segment.topic.set_group_redelivery_all(settings.redeliver);
        TopicEntry {
            segment,
            settings,
            declared,
            type_info: None,
            groups: vec![None; geo.max_groups as usize],
            waiter,
            holding_since: HashMap::new(),
        }
    }

    /// Reclaims slots that the ring shows in use but whose holder is gone (no lease lock held, no lease).
    fn reclaim_unheld(&self, e: &TopicEntry) {
        let geo = e.geometry();
        let t = &e.segment.topic;
        let leased =
            |publisher: bool, slot: u32| self.leases.values().any(|l| l.holds(&e.segment.topic_name, publisher, slot));
        for p in 0..geo.max_publishers {
            if !leased(true, p) && !e.slot_locked(true, p) {
                if let Ok(n) = t.cancel_claims_of(p as usize, &*e.waiter) {
                    if n > 0 {
                        tracing::warn!(topic = %e.segment.topic_name, slot = p, cancelled = n, "cancelled claims of a dead publisher");
                    }
                }
            }
        }
        for s in 0..geo.max_subscribers {
            if t.subscriber_active(s as usize) && !leased(false, s) && !e.slot_locked(false, s) {
                let _ = t.release_subscriber(s as usize, &*e.waiter);
                tracing::warn!(topic = %e.segment.topic_name, slot = s, "released the slot of a dead subscriber");
            }
        }
    }

    /// Creates every declared topic that does not exist yet.
    pub fn create_declared(&mut self) -> Result<(), Refusal> {
        let declared: Vec<(String, TopicSettings)> = self.config.topics.clone();
        for (name, settings) in declared {
            if let Some(e) = self.topics.get_mut(&name) {
                e.declared = true;
                let geo = e.geometry();
                if settings.geometry != geo {
                    tracing::warn!(topic = %name, "configured geometry differs from the existing topic's; keeping the existing one while clients may be attached");
                }
                e.settings = TopicSettings { geometry: geo, ..settings };
                e.segment.topic.set_group_redelivery_all(e.settings.redeliver);
                continue;
            }
            self.create(&name, settings, true)?;
        }
        Ok(())
    }

    fn create(&mut self, name: &str, settings: TopicSettings, declared: bool) -> Result<(), Refusal> {
        let generation = self.next_generation;
        self.next_generation += 1;
        let prefix = self.config.shm_prefix.clone();
        let seg = match Segment::create(&prefix, name, &settings.geometry, generation, modes(&settings)) {
            Ok(s) => s,
            Err(SegmentError::Os(e)) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Left over from a run that could not adopt it (it failed validation): say so.
                return refuse(ErrorKind::AlreadyExists, format!("objects for topic {name:?} already exist and could not be adopted ({e}); remove them or start with remove_invalid"));
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(topic = %name, capacity = settings.geometry.capacity, max_message = settings.geometry.max_message, memory = seg.memory(), "created topic");
        let entry = self.entry_for(seg, settings, declared);
        self.topics.insert(name.to_string(), entry);
        Ok(())
    }

    /// Applies a new configuration (SIGHUP): new topics appear, policies and bounds change; the geometry of an
    /// existing topic never changes under its clients (reported instead).
    pub fn reload(&mut self, config: Config) -> Vec<String> {
        let mut notes = Vec::new();
        if config.shm_prefix != self.config.shm_prefix {
            notes.push("shm_prefix cannot change on reload; keeping the old one".to_string());
        }
        let prefix = self.config.shm_prefix.clone();
        let socket = self.config.socket.clone();
        self.config = Config { shm_prefix: prefix, socket, ..config };
        for (name, settings) in self.config.topics.clone() {
            if let Some(e) = self.topics.get(&name) {
                if e.geometry() != settings.geometry {
                    notes.push(format!("topic {name:?}: geometry change not applied (clients may be attached; delete and recreate the topic to change it)"));
                }
            }
        }
        if let Err(r) = self.create_declared() {
            notes.push(format!("creating declared topics: {}", r.message));
        }
        notes
    }

    /// Finds a topic, creating it on first use when allowed.
    fn topic_for_use(&mut self, name: &str) -> Result<&mut TopicEntry, Refusal> {
        if names::validate_topic(name).is_err() {
            return refuse(ErrorKind::InvalidRequest, format!("invalid topic name {name:?}"));
        }
        if !self.topics.contains_key(name) {
            if !self.config.auto_create {
                return refuse(ErrorKind::NoSuchTopic, format!("no topic {name:?} (auto-create is off)"));
            }
            let s = self
                .config
                .topic_settings(name, None)
                .map_err(|m| Refusal { kind: ErrorKind::InvalidRequest, message: m })?;
            self.create(name, s, false)?;
        }
        Ok(self.topics.get_mut(name).expect("just ensured"))
    }

    /// `CreateTopic`.
    pub fn create_topic(&mut self, name: &str, spec: &TopicSpec) -> Result<(), Refusal> {
        if let Err(e) = names::validate_topic(name) {
            return refuse(ErrorKind::InvalidRequest, e.to_string());
        }
        let s = self
            .config
            .topic_settings(name, Some(spec))
            .map_err(|m| Refusal { kind: ErrorKind::InvalidRequest, message: m })?;
        if let Some(e) = self.topics.get(name) {
            if spec == &TopicSpec::default() || e.geometry() == s.geometry {
                return Ok(());
            }
            return refuse(ErrorKind::AlreadyExists, format!("topic {name:?} exists with another geometry"));
        }
        let declared = self.config.topics.iter().any(|(n, _)| n == name);
        self.create(name, s, declared)
    }

    /// `DeleteTopic`: closes the topic (attached clients see `Closed`), unlinks it, drops its leases.
    pub fn delete_topic(&mut self, name: &str) -> Result<(), Refusal> {
        let Some(e) = self.topics.remove(name) else {
            return refuse(ErrorKind::NoSuchTopic, format!("no topic {name:?}"));
        };
        e.segment.close_and_unlink(&*e.waiter);
        self.leases.retain(|_, l| l.topic != name);
        tracing::info!(topic = %name, "deleted topic");
        Ok(())
    }

    fn check_type(e: &mut TopicEntry, t: &Option<TypeInfo>) -> Result<(), Refusal> {
        if let Some(t) = t {
            match &e.type_info {
                Some(have) if have != t => {
                    return refuse(
                        ErrorKind::TypeMismatch,
                        format!("topic carries {} but the handle is typed {}", have.name, t.name),
                    );
                }
                Some(_) => {}
                None => e.type_info = Some(t.clone()),
            }
        }
        Ok(())
    }

    fn new_lease(&mut self, topic: &str, generation: u64, role: Role, conn: u64, pid: i32) -> u64 {
        let id = self.next_lease;
        self.next_lease += 1;
        self.leases.insert(id, Lease { topic: topic.to_string(), generation, role, conn, pid });
        id
    }

    fn slot_free(&self, e: &TopicEntry, publisher: bool, slot: u32) -> bool {
        let taken = self.leases.values().any(|l| l.holds(&e.segment.topic_name, publisher, slot));
        !taken && !e.slot_locked(publisher, slot)
    }

    fn reply(&self, e: &TopicEntry, lease: u64, role: Role, access: Access) -> Result<Granted, Refusal> {
        let (publisher, slot) = match role {
            Role::Publisher { slot } => (true, slot),
            Role::Subscriber { slot, .. } => (false, slot),
        };
        let (d, r) =
            e.segment.lease_fds(access).map_err(|x| Refusal { kind: ErrorKind::Internal, message: x.to_string() })?;
        Ok((
            LeaseReply {
                lease,
                topic: e.segment.topic_name.clone(),
                generation: e.segment.topic.generation(),
                geometry: geometry_wire(&e.geometry()),
                role,
                lock_offset: names::lock_offset(publisher, slot),
                sem_prefix: names::sem_prefix(&e.segment.prefix, &e.segment.topic_name),
            },
            [d, r],
        ))
    }

    /// `OpenPublisher`.
    pub fn open_publisher(
        &mut self,
        conn: u64,
        cred: &PeerCred,
        groups: &[u32],
        topic: &str,
        payload_type: &Option<TypeInfo>,
        resume: Option<Resume>,
    ) -> Result<Granted, Refusal> {
        let e = self.topic_for_use(topic)?;
        if !e.settings.policy.allows(Action::Publish, cred, groups) {
            return refuse(ErrorKind::PermissionDenied, format!("uid {} may not publish on {topic:?}", cred.uid));
        }
        Self::check_type(e, payload_type)?;
        let slot = match resume {
            Some(r) => self.resumable(topic, true, r, cred.pid)?,
            None => {
                let e = &self.topics[topic];
                let geo = e.geometry();
                let Some(p) = (0..geo.max_publishers).find(|&p| self.slot_free(e, true, p)) else {
                    return refuse(
                        ErrorKind::NoFreeSlot,
                        format!("all {} publisher slots of {topic:?} are taken", geo.max_publishers),
                    );
                };
                // A previous holder may have died mid-claim: cancel before handing the slot over.
                let _ = e.segment.topic.cancel_claims_of(p as usize, &*e.waiter);
                p
            }
        };
        let role = Role::Publisher { slot };
        let generation = self.topics[topic].segment.topic.generation();
        let id = self.new_lease(topic, generation, role, conn, cred.pid);
        let e = &self.topics[topic];
        let r = self.reply(e, id, role, Access::ReadWrite);
        if r.is_err() {
            self.leases.remove(&id);
        }
        tracing::info!(topic = %topic, slot, pid = cred.pid, uid = cred.uid, lease = id, resumed = resume.is_some(), "publisher lease granted");
        r
    }

    /// Checks a re-registration: same generation, slot in range, its lease lock held, and not leased to another
    /// process. A lease of the same process on a connection that has not been noticed closed yet moves over.
    fn resumable(&mut self, topic: &str, publisher: bool, r: Resume, pid: i32) -> Result<u32, Refusal> {
        let e = &self.topics[topic];
        let geo = e.geometry();
        let max = if publisher { geo.max_publishers } else { geo.max_subscribers };
        if r.generation != e.segment.topic.generation() {
            return refuse(ErrorKind::Closed, "the topic was recreated since the lease was granted");
        }
        if r.slot >= max {
            return refuse(ErrorKind::InvalidRequest, "slot out of range");
        }
        if !e.slot_locked(publisher, r.slot) {
            return refuse(ErrorKind::InvalidRequest, "that slot is not held (its lease lock is free)");
        }
        let holder = self.leases.iter().find(|(_, l)| l.holds(topic, publisher, r.slot)).map(|(id, l)| (*id, l.pid));
        match holder {
            Some((id, p)) if p == pid => {
                self.leases.remove(&id);
            }
            Some(_) => return refuse(ErrorKind::InvalidRequest, "that slot is leased to another client"),
            None => {}
        }
        Ok(r.slot)
    }

    /// `OpenSubscriber`.
    #[allow(clippy::too_many_arguments)]
    pub fn open_subscriber(
        &mut self,
        conn: u64,
        cred: &PeerCred,
        groups: &[u32],
        topic: &str,
        mode: &SubMode,
        from_oldest: bool,
        payload_type: &Option<TypeInfo>,
        resume: Option<Resume>,
    ) -> Result<Granted, Refusal> {
        let e = self.topic_for_use(topic)?;
        let action = if matches!(mode, SubMode::Lossy) { Action::Subscribe } else { Action::SubscribeGating };
        if !e.settings.policy.allows(action, cred, groups) {
            let what = if action == Action::Subscribe { "subscribe to" } else { "hold publishers back on" };
            return refuse(ErrorKind::PermissionDenied, format!("uid {} may not {what} {topic:?}", cred.uid));
        }
        Self::check_type(e, payload_type)?;
        let slot = match resume {
            Some(r) => self.resumable(topic, false, r, cred.pid)?,
            None => {
                let e = &self.topics[topic];
                let geo = e.geometry();
                let Some(s) = (0..geo.max_subscribers).find(|&s| self.slot_free(e, false, s)) else {
                    return refuse(
                        ErrorKind::NoFreeSlot,
                        format!("all {} subscriber slots of {topic:?} are taken", geo.max_subscribers),
                    );
                };
                if e.segment.topic.subscriber_active(s as usize) {
                    let _ = e.segment.topic.release_subscriber(s as usize, &*e.waiter);
                }
                s
            }
        };
        let group = match mode {
            SubMode::Group { name } => Some(self.group_index(topic, name, from_oldest, resume.map(|_| slot))?),
            _ => None,
        };
        let role = Role::Subscriber { slot, group };
        let e = &self.topics[topic];
        let generation = e.segment.topic.generation();
        let id = self.new_lease(topic, generation, role, conn, cred.pid);
        let e = &self.topics[topic];
        let r = self.reply(e, id, role, Access::ReadOnly);
        if r.is_err() {
            self.leases.remove(&id);
        }
        tracing::info!(topic = %topic, slot, ?mode, pid = cred.pid, uid = cred.uid, lease = id, resumed = resume.is_some(), "subscriber lease granted");
        r
    }

    fn group_index(
        &mut self,
        topic: &str,
        name: &str,
        from_oldest: bool,
        resumed_slot: Option<u32>,
    ) -> Result<u32, Refusal> {
        if name.is_empty() || name.len() > 64 {
            return refuse(ErrorKind::InvalidRequest, "group names are 1 to 64 bytes");
        }
        let e = self.topics.get_mut(topic).expect("topic exists");
        if let Some(i) = e.groups.iter().position(|g| g.as_deref() == Some(name)) {
            return Ok(i as u32);
        }
        if let Some(slot) = resumed_slot {
            // After a restart the daemon learns group names back from the members that re-register.
            if let Some(g) =
                e.segment.topic.stats().subscribers.iter().find(|s| s.slot == slot as usize).and_then(|s| s.group)
            {
                e.groups[g] = Some(name.to_string());
                return Ok(g as u32);
            }
        }
        let t = e.segment.topic.clone();
        let free = (0..e.groups.len()).find(|&i| e.groups[i].is_none() && !t.group_is_open(i));
        let Some(i) = free else {
            return refuse(
                ErrorKind::NoFreeSlot,
                format!("all {} consumer groups of {topic:?} are in use", e.groups.len()),
            );
        };
        let is_dead = |p: usize| e.publisher_dead(p);
        t.open_group(i, from_oldest, &*e.waiter, &is_dead)
            .map_err(|x: AttachError| Refusal { kind: ErrorKind::Internal, message: x.to_string() })?;
        t.set_group_redelivery(i, e.settings.redeliver);
        e.groups[i] = Some(name.to_string());
        tracing::info!(topic = %topic, group = %name, index = i, "opened consumer group");
        Ok(i as u32)
    }

    /// `Close`, or the end of a connection: reclaims what the lease held through the ring's recovery hooks.
    pub fn close_lease(&mut self, id: u64) -> Result<(), Refusal> {
        let Some(l) = self.leases.remove(&id) else {
            return refuse(ErrorKind::InvalidRequest, format!("no lease {id}"));
        };
        let Some(e) = self.topics.get(&l.topic) else { return Ok(()) };
        if e.segment.topic.generation() != l.generation {
            return Ok(());
        }
        match l.role {
            Role::Publisher { slot } => {
                if !e.slot_locked(true, slot) {
                    let n = e.segment.topic.cancel_claims_of(slot as usize, &*e.waiter).unwrap_or(0);
                    if n > 0 {
                        tracing::warn!(topic = %l.topic, slot, cancelled = n, "cancelled claims of a departed publisher");
                    }
                }
            }
            Role::Subscriber { slot, group } => {
                if !e.slot_locked(false, slot) {
                    if let Ok(Some(what)) = e.segment.topic.release_subscriber(slot as usize, &*e.waiter) {
                        tracing::warn!(topic = %l.topic, slot, ?what, "a departed group member held a message");
                    }
                }
                if let Some(g) = group {
                    let still = self.leases.values().any(|o| {
                        o.topic == l.topic && matches!(o.role, Role::Subscriber { group: Some(x), .. } if x == g)
                    });
                    if !still {
                        let e = self.topics.get_mut(&l.topic).expect("present");
                        let _ = e.segment.topic.close_group(g as usize, &*e.waiter);
                        if let Some(name) = e.groups[g as usize].take() {
                            tracing::info!(topic = %l.topic, group = %name, "closed consumer group (no members left)");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A connection ended: every lease it held is reclaimed at once.
    pub fn connection_closed(&mut self, conn: u64) {
        let ids: Vec<u64> = self.leases.iter().filter(|(_, l)| l.conn == conn).map(|(id, _)| *id).collect();
        for id in ids {
            let _ = self.close_lease(id);
        }
    }

    /// `ListTopics`.
    pub fn list(&self) -> Vec<TopicInfo> {
        self.topics
            .iter()
            .map(|(name, e)| {
                let count = |publisher: bool| {
                    self.leases
                        .values()
                        .filter(|l| l.topic == *name && matches!(l.role, Role::Publisher { .. }) == publisher)
                        .count() as u32
                };
                TopicInfo {
                    name: name.clone(),
                    generation: e.segment.topic.generation(),
                    geometry: geometry_wire(&e.geometry()),
                    publishers: count(true),
                    subscribers: count(false),
                    declared: e.declared,
                    memory: e.segment.memory(),
                }
            })
            .collect()
    }

    /// `Stats`.
    pub fn stats(&self, topic: Option<&str>) -> Result<Vec<TopicStatsWire>, Refusal> {
        if let Some(t) = topic {
            if !self.topics.contains_key(t) {
                return refuse(ErrorKind::NoSuchTopic, format!("no topic {t:?}"));
            }
        }
        Ok(self
            .topics
            .iter()
            .filter(|(n, _)| topic.is_none_or(|t| t == n.as_str()))
            .map(|(n, e)| crate::stats::wire(n, e, &self.leases))
            .collect())
    }

    /// Periodic duties: demote lossless subscribers that held publishers back longer than the topic's bound.
    pub fn enforce_slow_consumers(&mut self, now: Instant) {
        for (name, e) in self.topics.iter_mut() {
            let Some(bound) = e.settings.slow_consumer else { continue };
            let st = e.segment.topic.stats();
            let cap = e.geometry().capacity as u64;
            let mut holding = Vec::new();
            for s in st.subscribers.iter().filter(|s| s.gating && s.group.is_none()) {
                if s.lag + 1 >= cap {
                    holding.push(s.slot as u32);
                    let since = *e.holding_since.entry(s.slot as u32).or_insert(now);
                    if now.duration_since(since) >= bound {
                        let _ = e.segment.topic.demote(s.slot, &*e.waiter);
                        e.holding_since.remove(&(s.slot as u32));
                        tracing::warn!(topic = %name, slot = s.slot, bound_ms = bound.as_millis() as u64, "demoted a slow lossless subscriber to lossy");
                    }
                }
            }
            e.holding_since.retain(|s, _| holding.contains(s));
        }
    }

    /// Drops topics whose objects were truncated under us (only unlinking their names: touching their memory could
    /// fault). Every other topic keeps working.
    pub fn drop_truncated(&mut self) {
        let broken: Vec<String> =
            self.topics.iter().filter(|(_, e)| !e.segment.intact()).map(|(n, _)| n.clone()).collect();
        for name in broken {
            if let Some(e) = self.topics.remove(&name) {
                tracing::error!(topic = %name, "topic objects were truncated; removing the topic");
                crate::segment::unlink_all(&e.segment.prefix, &name, Some(&e.geometry()));
                self.leases.retain(|_, l| l.topic != name);
            }
        }
    }

    /// Leases held by clients from before a restart that have since died (their lock is free): reclaim.
    pub fn reclaim_orphans(&self) {
        for e in self.topics.values() {
            self.reclaim_unheld(e);
        }
    }

    /// Marks every topic closed and unlinks everything (`--cleanup-on-exit`).
    pub fn cleanup(&mut self) {
        for (name, e) in std::mem::take(&mut self.topics) {
            e.segment.close_and_unlink(&*e.waiter);
            tracing::info!(topic = %name, "removed topic");
        }
        self.leases.clear();
    }

    /// One-line summary for systemd's STATUS=.
    pub fn summary(&self) -> String {
        format!("{} topics, {} leases", self.topics.len(), self.leases.len())
    }
}
