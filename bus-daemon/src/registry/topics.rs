//! Topics: adopting what a previous run left, creating declared and requested topics, reloading the
//! configuration, deleting.

use super::{drive, Asker, Blocked, Refusal, State, TopicEntry};
use crate::config::{Config, TopicSettings};
use crate::policy::Action;
use shmbus_proto::msg::*;
use shmbus_proto::names;
use shmbus_shm::{FutexWaiter, Modes, Segment};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

impl State {
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
            match Segment::adopt(&prefix, &t, Modes::default()) {
                Ok(seg) => {
                    let declared = self.config.topics.iter().any(|(n, _)| *n == t);
                    let mut settings = settings;
                    if settings.geometry != seg.topic.geometry() {
                        // Only a declared topic's geometry is the configuration's: [defaults] is for topics not
                        // created yet, and a created one kept the geometry it was asked for.
                        if declared {
                            tracing::warn!(topic = %t, "adopted topic keeps its existing geometry, which differs from the configuration");
                        }
                        settings.geometry = seg.topic.geometry();
                    }
                    let entry = self.entry_for(seg, settings, declared);
                    self.next_generation = self.next_generation.max(entry.segment.topic.generation() + 1);
                    // What no lease holds is reclaimed once the leases from before are restored.
                    tracing::info!(topic = %t, "adopted existing topic");
                    self.insert_topic(t, entry);
                    ok += 1;
                }
                Err(e) => {
                    bad += 1;
                    if self.config.remove_invalid {
                        tracing::error!(topic = %t, error = %e, "removing objects that fail validation");
                        shmbus_shm::unlink_all(&prefix, &t);
                    } else {
                        tracing::error!(topic = %t, error = %e, "refusing to adopt objects that fail validation; left in place (shmbus topics --all lists them, shmbus delete removes them)");
                        self.invalid.insert(t.clone(), format!("failed validation: {e}"));
                    }
                }
            }
        }
        (ok, bad)
    }

    pub(super) fn entry_for(&self, segment: Segment, settings: TopicSettings, declared: bool) -> TopicEntry {
        let geo = segment.topic.geometry();
        let waiter = Arc::new(FutexWaiter::new(segment.topic.topic()));
        segment.topic.set_group_redelivery_all(settings.redeliver);
        TopicEntry {
            memory: segment.memory(),
            segment: Arc::new(segment),
            settings,
            declared,
            type_info: None,
            groups: vec![None; geo.max_groups as usize],
            waiter,
            holding_since: HashMap::new(),
            creator: None,
            on_demand: false,
            unused_since: None,
            opening: HashMap::new(),
            group_opened: HashMap::new(),
            // 0: a slot that never claimed (new topics, and adopted slots nobody used) needs no scan.
            claims_checked: vec![0; geo.max_publishers as usize],
            // An adopted topic may hold committed pages of its last run: the upkeep looks at it once.
            returned: false,
            idle_since: None,
        }
    }

    /// Creates every declared topic that does not exist yet; used at start, before the state is shared, so the
    /// slow part runs inline (see [`create_declared`] for the running daemon). A topic whose names are taken by
    /// objects that could not be adopted (anyone can plant a file in /dev/shm) is logged and skipped: a planted
    /// file never stops the daemon. Any other failure does.
    pub fn create_declared(&mut self) -> Result<(), Refusal> {
        let names: Vec<String> = self.config.topics.iter().map(|(n, _)| n.clone()).collect();
        for name in names {
            let r = match self.ensure_declared(&name) {
                Ok(()) => Ok(()),
                Err(Blocked::Refused(r)) => Err(r),
                Err(Blocked::Work(w)) => self.finish(w.run()),
                Err(Blocked::Wait(_)) => unreachable!("nothing else runs before the state is shared"),
            };
            match r {
                Err(r) if r.kind == ErrorKind::AlreadyExists => {
                    tracing::error!(topic = %name, "skipping declared topic: {}", r.message);
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Brings declared topic `name` in line with the configuration: an existing topic takes the declared
    /// settings (but keeps its geometry); a missing one is reserved for creation.
    fn ensure_declared(&mut self, name: &str) -> Result<(), Blocked> {
        let Some(settings) = self.config.topics.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone()) else {
            return Ok(()); // no longer declared (a reload raced with us)
        };
        if let Some(e) = self.topics.get_mut(name) {
            e.declared = true;
            let geo = e.geometry();
            if settings.geometry != geo {
                tracing::warn!(topic = %name, "configured geometry differs from the existing topic's; keeping the existing one while clients may be attached");
            }
            e.settings = TopicSettings { geometry: geo, ..settings };
            e.segment.topic.set_group_redelivery_all(e.settings.redeliver);
            return Ok(());
        }
        if let Some(c) = self.creating.get(name) {
            return Err(Blocked::Wait(c.ready.clone()));
        }
        Err(Blocked::Work(self.reserve_topic(name, settings, true, None, None, false)?))
    }

    /// Applies a new configuration (SIGHUP): new topics appear, and every existing topic takes its new policy and
    /// bounds (declared ones their declared settings, the others `[defaults]`); the geometry of an existing topic
    /// never changes under its clients (reported instead). A lease the new policy no longer admits is revoked
    /// (issue 16 item 7): its holder keeps descriptors the daemon cannot take back, so the topic is closed (every
    /// handle gets `Closed`), unlinked and recreated as a new generation, which only admitted clients can open.
    /// Declared topics that do not exist (any more) are created afterwards by [`create_declared`], the others
    /// that were revoked by [`State::recreate`]; both outside the lock. Returns notes to log and the undeclared
    /// topics to recreate.
    pub fn reload(&mut self, config: Config) -> (Vec<String>, Vec<Recreate>) {
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
        let names: Vec<String> = self.topics.keys().cloned().collect();
        let recreate = names.into_iter().filter_map(|n| self.apply_settings(&n)).collect();
        (notes, recreate)
    }

    /// Gives existing topic `name` the settings of the configuration in force (keeping its geometry), and revokes
    /// the leases its policy no longer admits by closing the topic. Returns what to recreate for an undeclared
    /// topic that was closed (a declared one is recreated by [`create_declared`]).
    fn apply_settings(&mut self, name: &str) -> Option<Recreate> {
        let declared = self.config.topics.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone());
        let requested = self.topics.get(name)?.settings.requested.clone();
        let undeclared = || self.config.undeclared_settings(requested.as_deref());
        let settings = declared.clone().unwrap_or_else(undeclared);
        let e = self.topics.get_mut(name)?;
        e.declared = declared.is_some();
        e.settings = TopicSettings { geometry: e.geometry(), ..settings };
        e.segment.topic.set_group_redelivery_all(e.settings.redeliver);
        let policy = &e.settings.policy;
        let revoked: Vec<u32> =
            self.leases.values().filter(|l| l.topic == name && !l.admitted_by(policy)).map(|l| l.uid).collect();
        if revoked.is_empty() {
            return None;
        }
        let e = self.remove_topic(name).expect("found above");
        e.segment.close_and_unlink(&*e.waiter);
        self.forget_leases_of(name);
        tracing::warn!(topic = %name, revoked = revoked.len(), uids = ?revoked, generation = e.segment.topic.generation(),
            "the new policy does not admit some leases: topic closed, to be recreated as a new generation");
        (!e.declared).then(|| Recreate {
            name: name.to_string(),
            settings: e.settings,
            creator: e.creator,
            on_demand: e.on_demand,
        })
    }

    /// Recreates an undeclared topic that a reload closed (see [`State::reload`]), unless it exists again.
    pub fn recreate(&mut self, r: &Recreate) -> Result<(), Blocked> {
        if self.topics.contains_key(&r.name) {
            return Ok(());
        }
        if let Some(c) = self.creating.get(&r.name) {
            return Err(Blocked::Wait(c.ready.clone()));
        }
        Err(Blocked::Work(self.reserve_topic(&r.name, r.settings.clone(), false, r.creator, None, r.on_demand)?))
    }

    /// Finds a topic, creating it on first use when allowed: on-demand creation is open to users the topic's
    /// policy (the `[defaults]` one for an undeclared topic) admits for `action`, within the uid's quota unless
    /// they are an admin of it.
    pub(super) fn topic_for_use(
        &mut self,
        who: Asker<'_>,
        action: Action,
        name: &str,
    ) -> Result<&mut TopicEntry, Blocked> {
        if names::validate_topic(name).is_err() {
            return Err(refusal(ErrorKind::InvalidRequest, format!("invalid topic name {name:?}")));
        }
        if !self.topics.contains_key(name) {
            if let Some(c) = self.creating.get(name) {
                return Err(Blocked::Wait(c.ready.clone()));
            }
            if !self.config.auto_create {
                return Err(refusal(ErrorKind::NoSuchTopic, format!("no such topic {name:?} (auto-create is off)")));
            }
            let s = self.config.topic_settings(name, None).map_err(|m| refusal(ErrorKind::InvalidRequest, m))?;
            let uid = who.cred.uid;
            if !s.policy.allows(action, who.cred, who.groups) {
                return Err(refusal(
                    ErrorKind::PermissionDenied,
                    format!("uid {uid} may not create {name:?} on first use (its policy does not admit uid {uid})"),
                ));
            }
            let admin = s.policy.allows(Action::Admin, who.cred, who.groups);
            let declared = self.config.topics.iter().any(|(n, _)| n == name);
            let charged = if admin { None } else { Some(uid) };
            return Err(Blocked::Work(self.reserve_topic(name, s, declared, charged, Some(*who.cred), !declared)?));
        }
        Ok(self.topics.get_mut(name).expect("just ensured"))
    }

    /// `CreateTopic`: needs the `admin` policy of the topic (its declared one, else `[defaults]`).
    pub fn create_topic(&mut self, who: Asker<'_>, name: &str, spec: &TopicSpec) -> Result<(), Blocked> {
        if let Err(e) = names::validate_topic(name) {
            return Err(refusal(ErrorKind::InvalidRequest, e.to_string()));
        }
        let s = self.config.topic_settings(name, Some(spec)).map_err(|m| refusal(ErrorKind::InvalidRequest, m))?;
        let uid = who.cred.uid;
        let policy = self.topics.get(name).map(|e| &e.settings.policy).unwrap_or(&s.policy);
        if !policy.allows(Action::Admin, who.cred, who.groups) {
            return Err(refusal(
                ErrorKind::PermissionDenied,
                format!("uid {uid} may not create topic {name:?} (not admitted by its admin policy)"),
            ));
        }
        let declared = self.config.topics.iter().any(|(n, _)| n == name);
        if declared && spec.has_policy() {
            return Err(refusal(
                ErrorKind::InvalidRequest,
                format!("topic {name:?} is declared in the configuration: its policy is set there, not by create"),
            ));
        }
        if let Some(e) = self.topics.get(name) {
            let differs = geometry_differences(spec, &e.geometry(), &s.geometry);
            if !differs.is_empty() {
                return Err(refusal(
                    ErrorKind::AlreadyExists,
                    format!("topic {name:?} exists with another geometry: {differs} (delete it to create it anew)"),
                ));
            }
            if spec.has_policy() && !same_policy(&e.settings, &s) {
                return Err(refusal(
                    ErrorKind::AlreadyExists,
                    format!("topic {name:?} exists with another policy (delete it to create it anew)"),
                ));
            }
            return Ok(());
        }
        if let Some(c) = self.creating.get(name) {
            return Err(Blocked::Wait(c.ready.clone()));
        }
        Err(Blocked::Work(self.reserve_topic(name, s, declared, None, Some(*who.cred), false)?))
    }

    /// `DeleteTopic`: needs the topic's `admin` policy; closes the topic (attached clients see `Closed`), unlinks
    /// it, drops its leases.
    pub fn delete_topic(&mut self, who: Asker<'_>, name: &str) -> Result<(), Blocked> {
        let uid = who.cred.uid;
        let Some(e) = self.topics.get(name) else {
            if let Some(c) = self.creating.get(name) {
                return Err(Blocked::Wait(c.ready.clone()));
            }
            return self.delete_invalid(who, name);
        };
        if !e.settings.policy.allows(Action::Admin, who.cred, who.groups) {
            return Err(refusal(
                ErrorKind::PermissionDenied,
                format!("uid {uid} may not delete topic {name:?} (not admitted by its admin policy)"),
            ));
        }
        let e = self.remove_topic(name).expect("just found");
        e.segment.close_and_unlink(&*e.waiter);
        self.forget_leases_of(name);
        tracing::info!(topic = %name, uid, pid = who.cred.pid, "deleted topic");
        Ok(())
    }
}

/// Creates every declared topic that does not exist yet, holding the state lock only for bookkeeping.
pub fn create_declared(state: &Mutex<State>) -> Result<(), Refusal> {
    let names: Vec<String> = crate::server::lock(state).config.topics.iter().map(|(n, _)| n.clone()).collect();
    for name in names {
        drive(state, |st| st.ensure_declared(&name))?;
    }
    Ok(())
}

/// An undeclared topic a reload closed to revoke leases, to be created again with the same settings.
#[derive(Clone, Debug)]
pub struct Recreate {
    /// Topic name.
    pub name: String,
    /// Its settings (geometry kept).
    pub settings: TopicSettings,
    /// Uid charged for it, if it was created on demand.
    pub creator: Option<u32>,
    /// It was created on first use.
    pub on_demand: bool,
}

/// Whether two settings admit the same users and treat subscribers and groups alike (the geometry aside).
fn same_policy(a: &TopicSettings, b: &TopicSettings) -> bool {
    a.policy == b.policy
        && a.slow_consumer == b.slow_consumer
        && a.redeliver == b.redeliver
        && a.payload_type == b.payload_type
}

/// The asked geometry keys of `spec` in which the existing topic (`have`) differs from what the request makes of
/// them (`asked`), as `capacity 1024 (asked 64), max_message 65536 (asked 1024)`; empty when none differs.
fn geometry_differences(spec: &TopicSpec, have: &shmbus_ring::Geometry, asked: &shmbus_ring::Geometry) -> String {
    let budget = |g: &shmbus_ring::Geometry| g.region_bytes * g.max_publishers as u64;
    let keys: [(&str, bool, u64, u64); 6] = [
        ("capacity", spec.capacity.is_some(), have.capacity.into(), asked.capacity.into()),
        ("max_message", spec.max_message.is_some(), have.max_message.into(), asked.max_message.into()),
        ("payload_budget", spec.payload_budget.is_some(), budget(have), budget(asked)),
        ("max_publishers", spec.max_publishers.is_some(), have.max_publishers.into(), asked.max_publishers.into()),
        ("max_subscribers", spec.max_subscribers.is_some(), have.max_subscribers.into(), asked.max_subscribers.into()),
        ("max_groups", spec.max_groups.is_some(), have.max_groups.into(), asked.max_groups.into()),
    ];
    let differs: Vec<String> =
        keys.iter().filter(|k| k.1 && k.2 != k.3).map(|(key, _, h, a)| format!("{key} {h} (asked {a})")).collect();
    differs.join(", ")
}

fn refusal(kind: ErrorKind, message: impl Into<String>) -> Blocked {
    Blocked::Refused(Refusal { kind, message: message.into() })
}
