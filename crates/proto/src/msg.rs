//! Control messages. Every enum is versioned through [`PROTOCOL_VERSION`]: a connection starts with
//! [`Request::Hello`], and a daemon answers a different version with [`ErrorKind::VersionMismatch`] before
//! anything else is read, so the two sides never misread each other.

use serde::{Deserialize, Serialize};

/// Version of this protocol. Bump on any change of these types.
///
/// 4: [`Request::ListTopicsPage`] and [`Request::StatsPage`] (with their replies), so listings of thousands of
/// topics come in pages that each fit a frame.
///
/// 5: [`TopicSpec`] carries the policy keys of the configuration's topic table (`publish`, `subscribe`, `gate`,
/// `admin`, `slow_consumer_ms`, `redeliver`, `payload_type`), so `shmbus create` can set them.
///
/// [`TopicSpec::principals`] splits a policy list. [`Request::DaemonInfo`] (version, uptime, shared memory, descriptor
/// limit, for `shmbus doctor`) and [`Request::ClientsPage`] (who holds which lease, for `shmbus clients`).
///
/// 6: [`TopicInfo::origin`] tells a topic created by a create request from one created on first use;
/// [`Request::ListInvalid`] lists the objects under the prefix that are no topic (refused as invalid at adoption,
/// or planted), for `shmbus topics --all`; the publisher and subscriber rows of the stats carry `sleeping` (the
/// handle's waiter bit).
///
/// 7: [`Request::Report`]: a client's word about topics it holds (a bridge's remote subscribers and counters),
/// shown in [`TopicStatsWire::reports`].
pub const PROTOCOL_VERSION: u32 = 7;

/// The shape of a topic on the wire (mirrors `shmbus_ring::Geometry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeometryWire {
    /// Index entries (messages in flight), a power of two.
    pub capacity: u32,
    /// Bytes of one index entry.
    pub entry_bytes: u32,
    /// Largest message.
    pub max_message: u32,
    /// Bytes of each publisher's payload region.
    pub region_bytes: u64,
    /// Publisher slots.
    pub max_publishers: u32,
    /// Subscriber slots.
    pub max_subscribers: u32,
    /// Consumer-group slots.
    pub max_groups: u32,
}

/// Requested properties of a topic; `None` takes the daemon's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    /// Messages in flight (rounded up to a power of two).
    pub capacity: Option<u32>,
    /// Largest message in bytes.
    pub max_message: Option<u32>,
    /// Payload bytes in flight, shared by the publishers.
    pub payload_budget: Option<u64>,
    /// Publisher limit.
    pub max_publishers: Option<u32>,
    /// Subscriber limit.
    pub max_subscribers: Option<u32>,
    /// Consumer-group limit.
    pub max_groups: Option<u32>,
    /// Who may publish: comma-separated principals as in the configuration (`*`, `uid:N`, `gid:N`, `user:NAME`,
    /// `group:NAME`); empty for nobody but root and the daemon's user. One string rather than a list: a list's
    /// declared length makes the decoder preallocate beyond the frame limit (found by the decode fuzz).
    pub publish: Option<String>,
    /// Who may subscribe (principals as for `publish`).
    pub subscribe: Option<String>,
    /// Who may subscribe losslessly, holding publishers back (principals as for `publish`).
    pub gate: Option<String>,
    /// Who may create and delete the topic besides root and the daemon's user (principals as for `publish`).
    pub admin: Option<String>,
    /// Milliseconds a lossless subscriber may hold publishers back before it is demoted (0: forever).
    pub slow_consumer_ms: Option<u64>,
    /// Whether a dead group member's message is redelivered (else counted abandoned).
    pub redeliver: Option<bool>,
    /// The payload type name every typed handle must register.
    pub payload_type: Option<String>,
}

impl TopicSpec {
    /// The principals of a comma-separated policy list (`publish` ... `admin`), blanks dropped.
    pub fn principals(list: &str) -> impl Iterator<Item = &str> {
        list.split(',').map(str::trim).filter(|p| !p.is_empty())
    }

    /// Whether any policy key (`publish` ... `payload_type`, everything but the geometry) is set.
    pub fn has_policy(&self) -> bool {
        self.publish.is_some()
            || self.subscribe.is_some()
            || self.gate.is_some()
            || self.admin.is_some()
            || self.slow_consumer_ms.is_some()
            || self.redeliver.is_some()
            || self.payload_type.is_some()
    }

    /// Whether any geometry key (`capacity` ... `max_groups`) is set.
    pub fn has_geometry(&self) -> bool {
        self.capacity.is_some()
            || self.max_message.is_some()
            || self.payload_budget.is_some()
            || self.max_publishers.is_some()
            || self.max_subscribers.is_some()
            || self.max_groups.is_some()
    }
}

/// A typed handle's payload type: refused at open when another type is already registered on the topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeInfo {
    /// The name handles agree on: the Rust type name without module paths, or one chosen with `open_typed_as`.
    pub name: String,
    /// Fingerprint of the serde shape (field names, order and types, enum variants); 0 when the shape could
    /// not be traced, and only the name is compared.
    pub hash: u64,
}

impl TypeInfo {
    /// Why a `role` handle typed `want` does not fit a topic carrying `have`, both sides named: the one wording
    /// of the daemon's refusal at open and of a late-checked subscriber's `TypeMismatch`.
    pub fn mismatch(have: &TypeInfo, want: &TypeInfo, role: &str) -> String {
        let shape =
            |t: &TypeInfo| if t.hash == 0 { "untraced shape".to_string() } else { format!("shape {:016x}", t.hash) };
        let why = if have.name == want.name {
            "same name, another shape: fields, order or types differ"
        } else {
            "another name"
        };
        format!(
            "topic carries {} ({}) but the {role} is typed {} ({}): {why}",
            have.name,
            shape(have),
            want.name,
            shape(want)
        )
    }
}

/// How a subscriber consumes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubMode {
    /// Gates publishers; receives everything.
    Lossless,
    /// Never gates; told `Lagged(n)` when lapped.
    Lossy,
    /// Member of the named consumer group.
    Group {
        /// Group name.
        name: String,
    },
}

/// The secret that proves a lease is the asker's own when it re-registers it (128 bits). The daemon hands it out
/// with the lease ([`LeaseReply::resume_token`]); the client keeps it in its memory only, never in shared memory,
/// and sends it back in [`Resume`]. Its `Debug` form hides the bytes, so logs never carry it.
#[derive(Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResumeToken(pub [u8; 16]);

impl std::fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeToken(..)")
    }
}

/// A lease a client already holds in shared memory, re-registered after the daemon restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// Generation of the topic the lease belongs to.
    pub generation: u64,
    /// The slot the client holds.
    pub slot: u32,
    /// The token the daemon granted the lease with.
    pub token: ResumeToken,
}

/// Client → daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message of every connection.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The client's shared-memory layout version.
        layout: u64,
        /// Free-form client description (program name and version).
        client: String,
    },
    /// Creates a topic (idempotent when it exists with a compatible spec).
    CreateTopic {
        /// Topic name.
        name: String,
        /// Requested properties.
        spec: TopicSpec,
    },
    /// Deletes a topic: attached clients get `Closed`.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// Lists topics.
    ListTopics,
    /// Counters of one topic or of all.
    Stats {
        /// Topic name, or all topics.
        topic: Option<String>,
    },
    /// Opens (or re-registers) a publisher lease.
    OpenPublisher {
        /// Topic name.
        topic: String,
        /// Payload type of a typed publisher.
        payload_type: Option<TypeInfo>,
        /// Re-register a slot held since before a daemon restart.
        resume: Option<Resume>,
    },
    /// Opens (or re-registers) a subscriber lease.
    OpenSubscriber {
        /// Topic name.
        topic: String,
        /// Lossless, lossy or group member.
        mode: SubMode,
        /// Start from the oldest retained message.
        from_oldest: bool,
        /// Payload type of a typed subscriber.
        payload_type: Option<TypeInfo>,
        /// Re-register a slot held since before a daemon restart.
        resume: Option<Resume>,
    },
    /// Releases a lease.
    Close {
        /// Lease id.
        lease: u64,
    },
    /// Lists topics a page at a time, in name order: the topics after `after` (from the first when `None`), as
    /// many as fit one reply frame. Answered with [`Response::TopicsPage`].
    ListTopicsPage {
        /// Name of the last topic of the previous page.
        after: Option<String>,
    },
    /// Counters of every topic a page at a time, like [`Request::ListTopicsPage`]. Answered with
    /// [`Response::StatsPage`].
    StatsPage {
        /// Name of the last topic of the previous page.
        after: Option<String>,
    },
    /// What the daemon is and how it runs. Answered with [`Response::DaemonInfo`].
    DaemonInfo,
    /// The leases of the topics the caller may see (of one topic, or all), a page at a time in lease-id order:
    /// the leases after lease `after`. Answered with [`Response::ClientsPage`].
    ClientsPage {
        /// Only this topic.
        topic: Option<String>,
        /// Id of the last lease of the previous page.
        after: Option<u64>,
    },
    /// Objects under the daemon's prefix that are no topic of it, on names whose `admin` policy admits the
    /// caller (protocol 6). Answered with [`Response::Invalid`].
    ListInvalid,
    /// Replaces this connection's reports (protocol 7): one per topic the connection holds a lease on, shown
    /// in the topic's stats until the next report, or until the lease or the connection ends. Answered with
    /// [`Response::Done`].
    Report {
        /// The reports; topics not listed lose theirs.
        topics: Vec<crate::report::TopicReport>,
    },
}

/// Objects in /dev/shm under the daemon's prefix that are no topic ([`Request::ListInvalid`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidObject {
    /// The topic name the objects are named after.
    pub name: String,
    /// Why they are no topic (the validation error, or that they appeared after the start).
    pub reason: String,
}

/// Most [`InvalidObject`]s one [`Response::Invalid`] carries (names up to 64 bytes, reasons cut to 200).
pub const MAX_INVALID_LISTED: usize = 200;

/// The daemon, for `shmbus doctor` ([`Request::DaemonInfo`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfoWire {
    /// Program and version (`shmbusd 0.1.0`).
    pub version: String,
    /// Process id (in the daemon's pid namespace).
    pub pid: u32,
    /// User id it runs as.
    pub uid: u32,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Its shared-memory prefix.
    pub shm_prefix: String,
    /// Bytes of shared memory its topics use (all topics, including ones hidden from the caller).
    pub shm_in_use: u64,
    /// `shm_budget`: the most its topics may use together.
    pub shm_budget: u64,
    /// Topics it serves (all of them).
    pub topics: u64,
    /// Leases held (all topics).
    pub leases: u64,
    /// Its soft `RLIMIT_NOFILE`.
    pub nofile: u64,
    /// Descriptors it needs at most for its topics (2 each) and `max_connections`, plus a fixed reserve.
    pub nofile_needed: u64,
    /// Descriptors it has open now.
    pub open_fds: u64,
}

/// One lease, for `shmbus clients` ([`Request::ClientsPage`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientWire {
    /// Lease id.
    pub lease: u64,
    /// Topic name.
    pub topic: String,
    /// `publisher`, `lossless`, `lossy` or `group`.
    pub kind: String,
    /// Publisher or subscriber slot.
    pub slot: u32,
    /// Group name, for members.
    pub group: Option<String>,
    /// Holder's pid.
    pub pid: i32,
    /// Holder's uid.
    pub uid: u32,
    /// When this daemon run granted (or, after a restart, restored) the lease: milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Opened by a typed handle.
    pub typed: bool,
    /// The holder's client name, as its handshake gave it (escaped; free text: not an identity). `None` for a
    /// lease restored after a daemon restart (protocol 6).
    pub name: Option<String>,
}

/// What a lease lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Publisher in this slot.
    Publisher {
        /// Publisher slot.
        slot: u32,
    },
    /// Subscriber in this slot.
    Subscriber {
        /// Subscriber slot.
        slot: u32,
        /// Consumer group index, for members.
        group: Option<u32>,
    },
}

/// A granted lease. The reply frame carries two descriptors (SCM_RIGHTS): the data object (read-only for
/// subscribers) and the readers object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseReply {
    /// Lease id (unique per daemon run).
    pub lease: u64,
    /// Topic name.
    pub topic: String,
    /// Generation of the topic.
    pub generation: u64,
    /// Geometry the client must find when validating the objects.
    pub geometry: GeometryWire,
    /// Publisher or subscriber slot.
    pub role: Role,
    /// Byte of the readers object the client must keep locked (OFD lock) while it holds the lease.
    pub lock_offset: u64,
    /// The secret to send back in [`Resume`] when re-registering this lease after a daemon restart.
    pub resume_token: ResumeToken,
}

/// A topic in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Generation.
    pub generation: u64,
    /// Geometry.
    pub geometry: GeometryWire,
    /// Publisher leases held.
    pub publishers: u32,
    /// Subscriber leases held.
    pub subscribers: u32,
    /// Declared in the configuration (rather than created on request).
    pub declared: bool,
    /// Bytes of shared memory the topic uses.
    pub memory: u64,
    /// How the topic came to be (protocol 6).
    pub origin: TopicOrigin,
}

/// How a topic came to be, as `shmbus topics` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicOrigin {
    /// Declared in the configuration.
    Config,
    /// Created by a create request (`shmbus create`, `Bus::create_topic`), or adopted with nothing remembered.
    Request,
    /// Created on first use (`auto_create`).
    OnDemand,
}

impl TopicOrigin {
    /// The label `shmbus topics` prints: `config`, `created by request`, `on demand`.
    pub fn label(self) -> &'static str {
        match self {
            TopicOrigin::Config => "config",
            TopicOrigin::Request => "created by request",
            TopicOrigin::OnDemand => "on demand",
        }
    }
}

/// One publisher's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherStatsWire {
    /// Slot.
    pub slot: u32,
    /// Messages published.
    pub published: u64,
    /// Payload bytes published.
    pub bytes: u64,
    /// Full (back-pressure) events.
    pub full: u64,
    /// Loans aborted.
    pub aborted: u64,
    /// Asleep waiting for space (protocol 6).
    pub sleeping: bool,
    /// Holder pid, when leased in this daemon run.
    pub pid: Option<i32>,
}

/// One subscriber's position and counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberStatsWire {
    /// Slot.
    pub slot: u32,
    /// Next sequence it reads.
    pub position: u64,
    /// Messages behind the tail.
    pub lag: u64,
    /// Whether it gates publishers.
    pub gating: bool,
    /// Group name, for members.
    pub group: Option<String>,
    /// Messages received.
    pub received: u64,
    /// Messages passed over after being lapped.
    pub lagged: u64,
    /// Skip markers passed over.
    pub skipped: u64,
    /// Demoted by the slow-consumer bound.
    pub demoted: bool,
    /// Asleep waiting for data (protocol 6).
    pub sleeping: bool,
    /// Holder pid, when leased in this daemon run.
    pub pid: Option<i32>,
}

/// One group's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatsWire {
    /// Group name.
    pub name: String,
    /// Claim cursor.
    pub next: u64,
    /// Messages redelivered after a member died.
    pub redelivered: u64,
    /// Messages abandoned by dead members.
    pub abandoned: u64,
    /// Messages the current members received (the sum of their counters: a member that left takes its count
    /// with it; protocol 6).
    pub delivered: u64,
}

/// A topic's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicStatsWire {
    /// Topic name.
    pub name: String,
    /// Generation.
    pub generation: u64,
    /// Next sequence to be claimed.
    pub tail: u64,
    /// Closed flag.
    pub closed: bool,
    /// Dead publishers' claims cancelled.
    pub cancelled: u64,
    /// Semaphore posts.
    pub wakeups: u64,
    /// Slow-consumer demotions.
    pub demotions: u64,
    /// Publishers.
    pub publishers: Vec<PublisherStatsWire>,
    /// Subscribers.
    pub subscribers: Vec<SubscriberStatsWire>,
    /// Groups.
    pub groups: Vec<GroupStatsWire>,
    /// The payload type typed handles registered (or the configuration declared), if any.
    pub payload_type: Option<TypeInfo>,
    /// What clients holding the topic reported about it (protocol 7), e.g. a bridge's remote subscribers.
    pub reports: Vec<crate::report::ReportWire>,
}

/// Why a request failed; variants a client can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Protocol or layout versions differ.
    VersionMismatch,
    /// No such topic, and the daemon does not create topics on first use.
    NoSuchTopic,
    /// The caller's uid/gid is not admitted by the topic's policy.
    PermissionDenied,
    /// The topic exists with a different geometry.
    AlreadyExists,
    /// Every publisher or subscriber slot is taken.
    NoFreeSlot,
    /// A typed handle's payload type differs from the one registered on the topic.
    TypeMismatch,
    /// A bad name or argument.
    InvalidRequest,
    /// The topic was closed.
    Closed,
    /// Shared memory is exhausted (e.g. /dev/shm is full).
    ResourceExhausted,
    /// Anything else.
    Internal,
}

/// Daemon → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Handshake accepted.
    Hello {
        /// The daemon's [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The daemon's layout version.
        layout: u64,
        /// Daemon description.
        daemon: String,
    },
    /// A granted lease (two descriptors attached).
    Lease(LeaseReply),
    /// Topic listing.
    Topics(Vec<TopicInfo>),
    /// Counters.
    Stats(Vec<TopicStatsWire>),
    /// Success without data.
    Done,
    /// One page of a topic listing ([`Request::ListTopicsPage`]).
    TopicsPage {
        /// Topics, in name order.
        topics: Vec<TopicInfo>,
        /// More topics follow: ask again after the last name of this page.
        more: bool,
    },
    /// One page of counters ([`Request::StatsPage`]).
    StatsPage {
        /// Topics' counters, in name order.
        stats: Vec<TopicStatsWire>,
        /// More topics follow: ask again after the last name of this page.
        more: bool,
    },
    /// Failure.
    Error {
        /// What kind of failure.
        kind: ErrorKind,
        /// Human-readable detail.
        message: String,
    },
    // New variants go last: the position of `Error` (the version-mismatch reply) must never move.
    /// The daemon ([`Request::DaemonInfo`]).
    DaemonInfo(DaemonInfoWire),
    /// One page of leases ([`Request::ClientsPage`]).
    ClientsPage {
        /// Leases, in id order.
        clients: Vec<ClientWire>,
        /// More follow: ask again after the last id of this page.
        more: bool,
    },
    /// Objects that are no topic ([`Request::ListInvalid`]), at most [`MAX_INVALID_LISTED`].
    Invalid {
        /// In name order.
        objects: Vec<InvalidObject>,
        /// How many more were left out.
        omitted: u32,
    },
}
