//! Leases: the one grant path for publishers and subscribers, re-registration after a daemon restart, and
//! reclaiming what a lease held when it ends.

use super::{data_access, refuse, Blocked, Granted, Lease, Refusal, State, TopicEntry};
use crate::policy::Action;
use crate::resume_key::TokenFor;
use shmbus_os::{PeerCred, ProcessId};
use shmbus_proto::msg::*;
use shmbus_proto::names;
use shmbus_shm::geometry_to_wire;

/// Who asks for a lease: the connection and its peer's credentials (SO_PEERCRED, and the supplementary groups
/// from SO_PEERGROUPS), both as the kernel recorded them when the peer connected.
#[derive(Clone, Copy, Debug)]
pub struct Asker<'a> {
    /// Connection id.
    pub conn: u64,
    /// Peer credentials.
    pub cred: &'a PeerCred,
    /// The peer's supplementary groups.
    pub groups: &'a [u32],
    /// The peer's process, identified while it is connected.
    pub holder: ProcessId,
    /// The name the peer gave in its handshake, escaped and cut (shown by `shmbus clients`; free text).
    pub client: Option<&'a str>,
}

/// The kind of lease asked for.
#[derive(Clone, Copy, Debug)]
pub enum LeaseKind<'a> {
    /// A publisher slot.
    Publisher,
    /// A subscriber slot.
    Subscriber {
        /// Lossless, lossy or group member.
        mode: &'a SubMode,
        /// Start from the oldest retained message (decides a new group's start).
        from_oldest: bool,
    },
}

impl LeaseKind<'_> {
    fn publisher(&self) -> bool {
        matches!(self, LeaseKind::Publisher)
    }

    /// The policy action this lease needs and how a refusal words it.
    fn action(&self) -> (Action, &'static str) {
        match self {
            LeaseKind::Publisher => (Action::Publish, "publish on"),
            LeaseKind::Subscriber { mode: SubMode::Lossy, .. } => (Action::Subscribe, "subscribe to"),
            LeaseKind::Subscriber { .. } => (Action::SubscribeGating, "hold publishers back on"),
        }
    }

    fn role_name(&self) -> &'static str {
        if self.publisher() {
            "publisher"
        } else {
            "subscriber"
        }
    }
}

/// A request for a lease (the fields of `OpenPublisher` / `OpenSubscriber`).
#[derive(Clone, Copy, Debug)]
pub struct LeaseRequest<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Publisher or subscriber, and how.
    pub kind: LeaseKind<'a>,
    /// Payload type of a typed handle.
    pub payload_type: &'a Option<TypeInfo>,
    /// Re-register a slot held since before a daemon restart.
    pub resume: Option<Resume>,
}

impl State {
    /// `OpenPublisher` and `OpenSubscriber`: checks the policy and the payload type, finds a free slot (or checks
    /// a re-registered one), joins the group of a member, records the lease and builds the reply with fresh
    /// descriptors. Nothing is recorded when any step fails. Creating the topic on first use and opening a new
    /// consumer group are slow: they come back as [`Blocked::Work`] for [`super::drive`] to run outside the lock
    /// before it calls this again.
    pub fn open_lease(&mut self, who: Asker<'_>, req: LeaseRequest<'_>) -> Result<Granted, Blocked> {
        let topic = req.topic;
        self.check_lease_quota(who.cred.uid)?;
        let (action, wording) = req.kind.action();
        let e = self.topic_for_use(who, action, topic)?;
        if !e.settings.policy.allows(action, who.cred, who.groups) {
            // A gating subscription needs the subscribe list and the gate list: name the one that refused.
            let may_subscribe = e.settings.policy.allows(Action::Subscribe, who.cred, who.groups);
            let message = match action {
                Action::SubscribeGating if !may_subscribe => {
                    format!("uid {} may not subscribe to {topic:?}", who.cred.uid)
                }
                Action::SubscribeGating => format!(
                    "uid {} may not {wording} {topic:?} (not in its gate list; it may subscribe --lossy)",
                    who.cred.uid
                ),
                _ => format!("uid {} may not {wording} {topic:?}", who.cred.uid),
            };
            return Err(Blocked::Refused(Refusal { kind: ErrorKind::PermissionDenied, message }));
        }
        Self::check_type(e, req.payload_type, req.kind.publisher())?;
        // A group opening, the slot's commit and the reply use the topic's own descriptors: reopened if closed.
        self.use_fds(topic)?;
        let group = match req.kind {
            LeaseKind::Subscriber { mode: SubMode::Group { name }, from_oldest } => {
                let resumed = req.resume.map(|r| r.slot);
                Some(self.group_index(topic, name, from_oldest, resumed)?)
            }
            _ => None,
        };
        let granted = self.lease_in_group(who, req, group);
        if let (Err(_), Some(g)) = (&granted, group) {
            self.close_group_if_empty(topic, g);
        }
        Ok(granted?)
    }

    /// Refuses a lease to a uid other than root and the daemon's that holds `max_leases_per_uid` already
    /// (issue 16 item 3: every lease costs descriptors in flight and slots).
    fn check_lease_quota(&self, uid: u32) -> Result<(), Refusal> {
        let max = self.config.limits.max_leases_per_uid;
        if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
            return Ok(());
        }
        let held = self.leases.values().filter(|l| l.uid == uid).count();
        if held >= max as usize {
            let message = format!("uid {uid} holds {held} leases, the limit max_leases_per_uid = {max}");
            return Err(Refusal { kind: ErrorKind::ResourceExhausted, message });
        }
        Ok(())
    }

    /// The rest of [`State::open_lease`] once the topic and the group are there: slot, reply, record.
    fn lease_in_group(
        &mut self,
        who: Asker<'_>,
        req: LeaseRequest<'_>,
        group: Option<u32>,
    ) -> Result<Granted, Refusal> {
        let topic = req.topic;
        let publisher = req.kind.publisher();
        // Every participant reads the index ring (layout 4 commits none of it at creation, and an idle topic's
        // is given back): reserve it first, so a full /dev/shm refuses the lease rather than faulting a client.
        let e = self.topics.get_mut(topic).expect("topic exists");
        let asked = e.segment.extents().index.len();
        e.segment.commit_index().map_err(|x| super::out_of_shm(topic, "the index ring", asked, x))?;
        e.returned = false;
        e.idle_since = None;
        let slot = match req.resume {
            Some(r) => self.resumable(topic, publisher, r, who.cred)?,
            None => self.take_free_slot(topic, publisher)?,
        };
        let role = if publisher { Role::Publisher { slot } } else { Role::Subscriber { slot, group } };
        let generation = self.topics[topic].segment.topic.generation();
        let id = self.next_lease;
        let granted = match self.reply(&self.topics[topic], id, role, who.cred.uid) {
            // Out of descriptors: close the idle topics' (this one is about to be in use) and try once more.
            Err(r) if r.kind == ErrorKind::ResourceExhausted => {
                self.fds.forget(topic);
                self.shed_fds();
                self.reply(&self.topics[topic], id, role, who.cred.uid)
            }
            other => other,
        }?;
        self.next_lease += 1;
        let typed = req.payload_type.is_some();
        if let (true, Some(t)) = (publisher, req.payload_type) {
            let e = self.topics.get_mut(topic).expect("topic exists");
            e.type_info.get_or_insert_with(|| t.clone());
        }
        let lease = Lease {
            topic: topic.to_string(),
            generation,
            role,
            conn: Some(who.conn),
            holder: who.holder,
            uid: who.cred.uid,
            gid: who.cred.gid,
            groups: who.groups.to_vec(),
            action: req.kind.action().0,
            typed,
            since: std::time::SystemTime::now(),
            client: who.client.map(str::to_string),
            report: None,
        };
        self.record_lease(id, lease);
        tracing::info!(topic = %topic, role = req.kind.role_name(), slot, group, pid = who.cred.pid, uid = who.cred.uid,
            lease = id, resumed = req.resume.is_some(), "lease granted");
        Ok(granted)
    }

    /// Checks a typed handle's payload type against the topic's. Only a publisher lease (admitted to publish by
    /// the policy, checked before this) sets the type, and only once it is granted; a typed subscriber is
    /// checked against a type already set and never sets one, so a mere reader cannot squat a topic's type.
    fn check_type(e: &TopicEntry, t: &Option<TypeInfo>, publisher: bool) -> Result<(), Refusal> {
        let Some(t) = t else { return Ok(()) };
        if !names::type_name_ok(&t.name) {
            return refuse(ErrorKind::InvalidRequest, names::TYPE_NAME_RULE);
        }
        let role = if publisher { "publisher" } else { "subscriber" };
        if let Some(declared) = e.settings.payload_type.as_deref().filter(|d| *d != t.name) {
            let message = format!("topic is declared for payload type {declared} but the {role} is typed {}", t.name);
            return refuse(ErrorKind::TypeMismatch, message);
        }
        match &e.type_info {
            Some(have) if have != t => refuse(ErrorKind::TypeMismatch, TypeInfo::mismatch(have, t, role)),
            _ => Ok(()),
        }
    }

    /// Forgets the topic's payload type once no typed lease of it is left.
    pub(super) fn clear_type_if_untyped(&mut self, topic: &str) {
        if self.leases.values().any(|l| l.topic == topic && l.typed) {
            return;
        }
        if let Some(e) = self.topics.get_mut(topic) {
            if let Some(t) = e.type_info.take() {
                tracing::info!(topic = %topic, payload_type = ?t.name, "payload type cleared (no typed lease left)");
            }
        }
    }

    /// Whether no lease holds the slot. The lease table decides, not the slot's byte lock: any subscriber of the
    /// topic can take that lock (issue 16 item 5), so it is only a hint for clients.
    fn slot_free(&self, e: &TopicEntry, publisher: bool, slot: u32) -> bool {
        !self.leases.values().any(|l| l.holds(&e.segment.topic_name, publisher, slot))
    }

    /// The first slot no lease holds, with whatever a dead previous holder left reclaimed.
    fn take_free_slot(&self, topic: &str, publisher: bool) -> Result<u32, Refusal> {
        let e = &self.topics[topic];
        let geo = e.geometry();
        let max = if publisher { geo.max_publishers } else { geo.max_subscribers };
        let Some(slot) = (0..max).find(|&s| self.slot_free(e, publisher, s)) else {
            let role = if publisher { "publisher" } else { "subscriber" };
            return refuse(ErrorKind::NoFreeSlot, format!("all {max} {role} slots of {topic:?} are taken"));
        };
        let t = &e.segment.topic;
        if publisher {
            // The slot's payload region is committed only once a publisher takes it (issue 13): a full /dev/shm
            // refuses the lease here instead of faulting the publisher later.
            let asked = e.segment.extents().region(slot as usize).len();
            e.segment.commit_publisher(slot as usize).map_err(|x| super::out_of_shm(topic, "a publisher", asked, x))?;
            // A previous holder may have died mid-claim: cancel before handing the slot over.
            if super::vacancies::reclaim_publisher(e, slot, &|q| self.slot_free(e, true, q as u32)).is_none() {
                let message = format!("publisher slot {slot} of {topic:?} is still being recovered (a live publisher is inside a claim); try again");
                return refuse(ErrorKind::ResourceExhausted, message);
            }
        } else if t.subscriber_active(slot as usize) {
            let _ = t.release_subscriber(slot as usize, &*e.waiter);
        }
        Ok(slot)
    }

    /// The reply for lease `lease` of `uid` with fresh descriptors of the topic's objects and the lease's resume
    /// token.
    fn reply(&self, e: &TopicEntry, lease: u64, role: Role, uid: u32) -> Result<Granted, Refusal> {
        let (publisher, slot) = match role {
            Role::Publisher { slot } => (true, slot),
            Role::Subscriber { slot, .. } => (false, slot),
        };
        let (d, r) = e.segment.lease_fds(data_access(publisher)).map_err(|x| {
            if crate::fd_limit::exhausted(x.raw_os_error()) {
                let what = format!("a lease of topic {:?}", e.segment.topic_name);
                Refusal { kind: ErrorKind::ResourceExhausted, message: crate::fd_limit::exhausted_message(&what) }
            } else {
                Refusal { kind: ErrorKind::Internal, message: x.to_string() }
            }
        })?;
        let generation = e.segment.topic.generation();
        let resume_token =
            self.resume_key.token(TokenFor { topic: &e.segment.topic_name, generation, publisher, slot, uid });
        Ok((
            LeaseReply {
                lease,
                topic: e.segment.topic_name.clone(),
                generation,
                geometry: geometry_to_wire(&e.geometry()),
                role,
                lock_offset: names::lock_offset(publisher, slot),
                resume_token,
            },
            [d, r],
        ))
    }

    /// Checks a re-registration: same generation, slot in range, the resume token of this slot and the asker's
    /// uid (see [`crate::resume_key`]), and a lease of the slot held by the asking process (from before a
    /// restart, from a connection that closed, or from one not noticed closed yet), which moves over.
    fn resumable(&mut self, topic: &str, publisher: bool, r: Resume, cred: &PeerCred) -> Result<u32, Refusal> {
        let pid = cred.pid;
        let e = &self.topics[topic];
        let geo = e.geometry();
        let max = if publisher { geo.max_publishers } else { geo.max_subscribers };
        if r.generation != e.segment.topic.generation() {
            return refuse(ErrorKind::Closed, "the topic was recreated since the lease was granted");
        }
        if r.slot >= max {
            return refuse(ErrorKind::InvalidRequest, "slot out of range");
        }
        let bound = TokenFor { topic, generation: r.generation, publisher, slot: r.slot, uid: cred.uid };
        if !self.resume_key.verify(bound, &r.token) {
            let message = format!("uid {} has no resume token for that slot (not its lease)", cred.uid);
            return refuse(ErrorKind::PermissionDenied, message);
        }
        let holder =
            self.leases.iter().find(|(_, l)| l.holds(topic, publisher, r.slot)).map(|(id, l)| (*id, l.holder.pid));
        match holder {
            Some((id, p)) if p == pid => {
                // The lease moves over (recorded again by the caller): not counted as idle meanwhile.
                self.leases.remove(&id);
                self.fds.lease_removed(topic, false);
                Ok(r.slot)
            }
            Some(_) => refuse(ErrorKind::InvalidRequest, "that slot is leased to another client"),
            None => refuse(ErrorKind::Closed, "the lease was reclaimed (its holder was gone)"),
        }
    }

    /// `Close`, or the end of a connection: reclaims what the lease held through the ring's recovery hooks.
    pub fn close_lease(&mut self, id: u64) -> Result<(), Refusal> {
        let Some(l) = self.forget_lease(id) else {
            return refuse(ErrorKind::InvalidRequest, format!("no lease {id}"));
        };
        tracing::info!(topic = %l.topic, role = ?l.role, pid = l.holder.pid, uid = l.uid, lease = id, "lease released");
        if l.typed {
            self.clear_type_if_untyped(&l.topic);
        }
        let Some(e) = self.topics.get(&l.topic) else { return Ok(()) };
        if e.segment.topic.generation() != l.generation {
            return Ok(());
        }
        match l.role {
            Role::Publisher { slot } => {
                // `None`: left for the upkeep's sweep (the slot, now unheld, keeps its odd counter).
                let n =
                    super::vacancies::reclaim_publisher(e, slot, &|q| self.slot_free(e, true, q as u32)).unwrap_or(0);
                if n > 0 {
                    tracing::warn!(topic = %l.topic, slot, cancelled = n, "cancelled claims of a departed publisher");
                }
            }
            Role::Subscriber { slot, group } => {
                if let Ok(Some(what)) = e.segment.topic.release_subscriber(slot as usize, &*e.waiter) {
                    tracing::warn!(topic = %l.topic, slot, ?what, "a departed group member held a message");
                }
                if let Some(g) = group {
                    self.close_group_if_empty(&l.topic, g);
                }
            }
        }
        // The topic may be idle now: keep the idle ones within the cache.
        self.trim_fds();
        Ok(())
    }

    /// A connection ended: every lease it held is reclaimed at once if its holder is gone, else kept without a
    /// connection until the holder resumes it on another or dies (see [`State::reclaim_orphans`]).
    pub fn connection_closed(&mut self, conn: u64) {
        let ids: Vec<u64> = self.leases.iter().filter(|(_, l)| l.conn == Some(conn)).map(|(id, _)| *id).collect();
        for id in ids {
            let alive = self.leases[&id].holder.alive();
            if alive {
                let l = self.leases.get_mut(&id).expect("listed above");
                l.conn = None;
                l.report = None;
            } else {
                let _ = self.close_lease(id);
            }
        }
    }
}
