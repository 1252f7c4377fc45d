//! Topics: adopting what a previous run left, creating declared and requested topics, reloading the
//! configuration, deleting.

use super::{modes, refuse, Refusal, State, TopicEntry};
use crate::config::{Config, TopicSettings};
use shmbus_proto::msg::*;
use shmbus_proto::names;
use shmbus_shm::{Segment, SegmentError, SemWaiter};
use std::collections::HashMap;
use std::sync::Arc;

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
                        shmbus_shm::unlink_all(&prefix, &t, None);
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
    pub(super) fn topic_for_use(&mut self, name: &str) -> Result<&mut TopicEntry, Refusal> {
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
}
