//! Slow work outside the state lock. The lock guards bookkeeping only; creating a topic (fallocate and
//! initialization) and opening a consumer group (which waits, bounded, for publishers to leave their claim phase)
//! run unlocked, in three steps:
//!
//! 1. under the lock, a request method reserves what the work will produce (the topic name and its bytes of the
//!    shm budget, or the group slot) and returns [`Blocked::Work`];
//! 2. [`drive`] runs the work with the lock released;
//! 3. under the lock again, [`State::finish`] commits the result (or drops the reservation) and wakes anyone who
//!    asked for the same topic or group meanwhile: those got [`Blocked::Wait`] and retry once it is done.
//!
//! The request is then retried from the start, so whatever changed meanwhile (a delete, a policy reload) is seen.

use super::{Refusal, State, TopicEntry};
use crate::config::TopicSettings;
use shmbus_proto::msg::ErrorKind;
use shmbus_shm::{FutexWaiter, Modes, Segment, SegmentError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Rounds of reserve/work/commit one request may take before it is refused as busy.
const MAX_ROUNDS: usize = 8;
/// Longest a request waits for someone else's work on the same topic or group.
const WAIT_BOUND: Duration = Duration::from_secs(30);

/// Set once a reserved piece of work is committed or dropped.
#[derive(Debug, Default)]
pub struct Ready {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Ready {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    fn wait(&self, bound: Duration) {
        let deadline = Instant::now() + bound;
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            done = self.cv.wait_timeout(done, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// Why a request method could not finish under the lock.
pub enum Blocked {
    /// Refused for good.
    Refused(Refusal),
    /// Slow work reserved for this request: run it unlocked, commit it, retry.
    Work(Box<Work>),
    /// Someone else's work on the same topic or group is under way: wait for it, retry.
    Wait(Arc<Ready>),
}

impl From<Refusal> for Blocked {
    fn from(r: Refusal) -> Self {
        Blocked::Refused(r)
    }
}

/// A topic creation reserved under the lock.
pub struct TopicPlan {
    pub(super) name: String,
    pub(super) settings: TopicSettings,
    pub(super) declared: bool,
    pub(super) generation: u64,
    pub(super) prefix: String,
    /// Uid charged for an on-demand creation (`None`: declared, or created by an admin).
    pub(super) creator: Option<u32>,
    /// Created on first use (see [`TopicEntry::on_demand`](super::TopicEntry)).
    pub(super) on_demand: bool,
    /// Who asked (`None`: the configuration), for the log.
    pub(super) by: Option<shmbus_os::PeerCred>,
    pub(super) ready: Arc<Ready>,
}

/// A consumer-group opening reserved under the lock.
pub struct GroupPlan {
    pub(super) topic: String,
    pub(super) generation: u64,
    pub(super) name: String,
    pub(super) index: usize,
    pub(super) from_oldest: bool,
    pub(super) redeliver: bool,
    pub(super) segment: Arc<Segment>,
    pub(super) waiter: Arc<FutexWaiter>,
    pub(super) ready: Arc<Ready>,
}

/// Slow work reserved under the lock.
pub enum Work {
    /// Create a topic's objects (fallocate, initialization).
    CreateTopic(TopicPlan),
    /// Open a consumer group (waits, bounded, for publishers in their claim phase).
    OpenGroup(GroupPlan),
}

/// The result of a piece of work, to commit under the lock.
pub enum Done {
    /// A topic creation and its segment.
    Topic(Box<(TopicPlan, Result<Segment, Refusal>)>),
    /// A group opening and its outcome.
    Group(GroupPlan, Result<(), Refusal>),
}

/// Test hook (debug builds only): with `SHMBUSD_TEST_PARK_DIR` set and `<dir>/park-<what>` present (`what`:
/// `topic` or `group`), that slow work writes `<dir>/parked-<what>` and waits (bounded) until
/// `<dir>/release-<what>` exists, so a test can hold it mid-way deterministically.
fn test_park(what: &str) {
    #[cfg(debug_assertions)]
    if let Some(dir) = std::env::var_os("SHMBUSD_TEST_PARK_DIR") {
        let dir = std::path::PathBuf::from(dir);
        if !dir.join(format!("park-{what}")).exists() {
            return;
        }
        let _ = std::fs::write(dir.join(format!("parked-{what}")), b"");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dir.join(format!("release-{what}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = what;
}

impl Work {
    /// Runs the work; call it with the state lock released.
    pub fn run(self: Box<Self>) -> Done {
        match *self {
            Work::CreateTopic(p) => {
                test_park("topic");
                let r = create_segment(&p);
                Done::Topic(Box::new((p, r)))
            }
            Work::OpenGroup(p) => {
                test_park("group");
                let seg = &p.segment;
                let is_dead = |pub_slot: usize| !seg.holder_alive(true, pub_slot as u32);
                // The group's ledger is committed only now (issue 13); opening writes every word of it.
                let r = seg.commit_group(p.index).map_err(|x| {
                    super::out_of_shm(&p.topic, "a consumer group", seg.extents().ledger(p.index).len(), x)
                });
                let r = r.and_then(|()| {
                    seg.topic
                        .open_group(p.index, p.from_oldest, &*p.waiter, &is_dead)
                        .map(|()| seg.topic.set_group_redelivery(p.index, p.redeliver))
                        .map_err(|x| Refusal { kind: ErrorKind::Internal, message: x.to_string() })
                });
                Done::Group(p, r)
            }
        }
    }
}

fn create_segment(p: &TopicPlan) -> Result<Segment, Refusal> {
    let need = crate::limits::footprint(&p.settings.geometry);
    if let Ok(free) = crate::limits::free_bytes("/dev/shm") {
        if need > free {
            return Err(Refusal {
                kind: ErrorKind::ResourceExhausted,
                message: format!(
                    "topic {:?} needs {} of /dev/shm, but only {} are free",
                    p.name,
                    crate::limits::bytes(need),
                    crate::limits::bytes(free)
                ),
            });
        }
    }
    match Segment::create(&p.prefix, &p.name, &p.settings.geometry, p.generation, Modes::default()) {
        Ok(s) => Ok(s),
        Err(SegmentError::Os(e)) if e.raw_os_error() == Some(libc::EEXIST) => Err(Refusal {
            kind: ErrorKind::AlreadyExists,
            // Left over from a run that could not adopt it (it failed validation): say so.
            message: format!(
                "objects for topic {:?} already exist and could not be adopted ({e}); remove them with `shmbus delete {0}` (admin) or `shmbus cleanup`, or set remove_invalid = true in the daemon's [daemon] table",
                p.name
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Runs `step` under the lock until it finishes, doing the slow work it reserves with the lock released.
pub fn drive<T>(state: &Mutex<State>, mut step: impl FnMut(&mut State) -> Result<T, Blocked>) -> Result<T, Refusal> {
    for _ in 0..MAX_ROUNDS {
        let r = step(&mut crate::server::lock(state));
        match r {
            Ok(v) => return Ok(v),
            Err(Blocked::Refused(r)) => return Err(r),
            Err(Blocked::Wait(ready)) => ready.wait(WAIT_BOUND),
            Err(Blocked::Work(w)) => {
                let done = w.run();
                crate::server::lock(state).finish(done)?;
            }
        }
    }
    Err(Refusal { kind: ErrorKind::Internal, message: "too many concurrent changes to this topic; try again".into() })
}

impl State {
    /// Commits finished work (or drops its reservation) and wakes whoever waits for it.
    pub fn finish(&mut self, done: Done) -> Result<(), Refusal> {
        match done {
            Done::Topic(b) => {
                let (p, r) = *b;
                self.creating.remove(&p.name);
                p.ready.set();
                let seg = r?;
                let g = p.settings.geometry;
                tracing::info!(topic = %p.name, uid = p.by.map(|c| c.uid), pid = p.by.map(|c| c.pid), on_demand = p.on_demand, capacity = g.capacity,
                    max_message = g.max_message, memory = seg.memory(), "created topic");
                let requested = p.settings.requested.is_some();
                let mut entry = self.entry_for(seg, p.settings, p.declared);
                // Created just now: nothing of the index ring or the payload regions is committed to give back.
                entry.returned = true;
                entry.creator = p.creator;
                entry.on_demand = p.on_demand;
                self.insert_topic(p.name, entry);
                if requested {
                    // Written now, not at the next upkeep: a restart in between must not open the topic to
                    // whatever `[defaults]` admits.
                    self.persist_remembered();
                }
                Ok(())
            }
            Done::Group(p, r) => {
                p.ready.set();
                let entry = self.topics.get_mut(&p.topic).filter(|e| e.segment.topic.generation() == p.generation);
                let Some(e) = entry else {
                    return Err(Refusal {
                        kind: ErrorKind::Closed,
                        message: format!("topic {:?} was deleted", p.topic),
                    });
                };
                e.opening.remove(&p.index);
                if e.segment.fds_open() {
                    // Reopened outside the lock if closed meanwhile: counted again (and bounded).
                    self.fds.used(&p.topic);
                }
                r?;
                tracing::info!(topic = %p.topic, group = %p.name, index = p.index, "opened consumer group");
                e.groups[p.index] = Some(p.name);
                e.group_opened.insert(p.index, Instant::now());
                Ok(())
            }
        }
    }

    /// Reserves the creation of topic `name` with `settings`: checks the shm limits (with what is being created
    /// already counted) and, for an on-demand creation charged to `creator`, that uid's topic quota.
    pub(super) fn reserve_topic(
        &mut self,
        name: &str,
        settings: TopicSettings,
        declared: bool,
        creator: Option<u32>,
        by: Option<shmbus_os::PeerCred>,
        on_demand: bool,
    ) -> Result<Box<Work>, Refusal> {
        let exhausted = |message: String| Refusal { kind: ErrorKind::ResourceExhausted, message };
        if let Some(uid) = creator {
            let max = self.config.limits.max_auto_topics_per_uid;
            let have = self.topics.values().filter(|e| e.creator == Some(uid)).count()
                + self.creating.values().filter(|c| c.creator == Some(uid)).count();
            if have >= max as usize {
                return Err(exhausted(format!(
                    "uid {uid} has created {have} topics on demand, the limit max_auto_topics_per_uid = {max}; \
                     cannot create {name:?}"
                )));
            }
        }
        self.config
            .limits
            .check_topic(&format!("topic {name:?}"), &settings.geometry, Some(self.memory_in_use()))
            .map_err(exhausted)?;
        let topics = (self.topics.len() + self.creating.len()) as u64;
        // Mappings bound the topics, not descriptors (see `fd_limit`).
        crate::fd_limit::check_topic(topics).map_err(|m| exhausted(format!("cannot create topic {name:?}: {m}")))?;
        let ready = Arc::new(Ready::default());
        let bytes = crate::limits::footprint(&settings.geometry);
        self.creating.insert(name.to_string(), Creating { ready: ready.clone(), bytes, creator });
        let generation = self.next_generation;
        self.next_generation += 1;
        let prefix = self.config.shm_prefix.clone();
        let plan =
            TopicPlan { name: name.into(), settings, declared, generation, prefix, creator, on_demand, by, ready };
        Ok(Box::new(Work::CreateTopic(plan)))
    }

    /// Bytes of shared memory held by topics and reserved by creations under way.
    pub fn memory_in_use(&self) -> u64 {
        let held = self.topics_memory;
        held + self.creating.values().map(|c| c.bytes).sum::<u64>()
    }
}

/// A topic creation under way: what waiters wait on and what it is charged.
pub(super) struct Creating {
    pub(super) ready: Arc<Ready>,
    pub(super) bytes: u64,
    pub(super) creator: Option<u32>,
}

impl TopicEntry {
    /// Reserves opening group slot `index` of this topic as `name`.
    pub(super) fn reserve_group(&mut self, topic: &str, name: &str, index: usize, from_oldest: bool) -> Box<Work> {
        let ready = Arc::new(Ready::default());
        self.opening.insert(index, (name.to_string(), ready.clone()));
        Box::new(Work::OpenGroup(GroupPlan {
            topic: topic.to_string(),
            generation: self.segment.topic.generation(),
            name: name.to_string(),
            index,
            from_oldest,
            redeliver: self.settings.redeliver,
            segment: self.segment.clone(),
            waiter: self.waiter.clone(),
            ready,
        }))
    }
}
