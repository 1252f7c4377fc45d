//! [`Bus`]: the connection to the daemon, from which handles are opened and topics administered.

use crate::control::{Config, Control};
use crate::error::{ConnectError, ControlError, OpenError};
use crate::pipe_io::inherit;
use crate::publisher::{Publisher, PublisherBuilder};
use crate::subscriber::{Subscriber, SubscriberBuilder};
use crate::transport::{self, Routing, Transport, TRANSPORT_ENV};
use crate::typed::{TypedPublisher, TypedSubscriber};
use serde::{de::DeserializeOwned, Serialize};
use shmbus_proto::msg::{ClientWire, DaemonInfoWire, InvalidObject, TopicInfo, TopicSpec, TopicStatsWire};
use shmbus_proto::{names, Request, Response};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default bound on one control request's round trip.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the shmbus daemon. Cheap to clone (`Send + Sync`); handles opened from it share its
/// connection and keep working when the daemon restarts (they are re-registered automatically).
///
/// It also routes topics to the [pipe transport](crate::pipe): topics a parent handed to this process over pipes
/// use them, and [`Bus::command`] spawns children connected by pipes when the bus uses pipes. `SHMBUS_TRANSPORT`
/// (or [`BusBuilder::transport`]) decides; see the [`pipe`](crate::pipe) module docs for the rules.
///
/// ```no_run
/// use bus_client::Bus;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = Bus::connect()?; // $SHMBUS_SOCKET, else the default locations
/// for t in bus.topics()? {
///     println!("{} ({} publishers, {} subscribers)", t.name, t.publishers, t.subscribers);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Bus {
    control: Arc<Control>,
    routing: Arc<Routing>,
}

/// Settings for [`Bus`]; from [`Bus::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `connect`"]
pub struct BusBuilder {
    socket: Option<PathBuf>,
    client: Option<String>,
    timeout: Duration,
    auto_reconnect: bool,
    transport: Option<Transport>,
    fallback: Option<bool>,
}

impl Default for BusBuilder {
    fn default() -> Self {
        BusBuilder {
            socket: None,
            client: None,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            auto_reconnect: true,
            transport: None,
            fallback: None,
        }
    }
}

impl BusBuilder {
    setters! {
        /// The control socket (default: `$SHMBUS_SOCKET`, else the first existing of
        /// `$XDG_RUNTIME_DIR/shmbus/control.sock`, `/run/shmbus/control.sock`, `<tmp>/shmbus-<uid>/control.sock`
        /// whose directory is owned by root, this user or the daemon user and writable by nobody else). Whatever
        /// the path, the daemon listening there must run as root, this user or the daemon user
        /// (`SHMBUS_DAEMON_USER`, default `shmbus`). A set-user-ID or set-group-ID program ignores
        /// `SHMBUS_SOCKET`, `SHMBUS_DAEMON_USER` and `SHMBUS_PIPES` (logged once, at warn level).
        socket(path: impl Into<PathBuf>) => socket = Some(path.into());
        /// How this client introduces itself to the daemon (default: program name and library version).
        client_name(name: impl Into<String>) => client = Some(name.into());
        /// Bound on one control request's round trip (default 10 s): connecting, opening a handle (unless its
        /// builder sets `open_timeout`), topic administration. A daemon that does not answer in time gives
        /// `Timeout` errors.
        request_timeout(timeout: Duration) => timeout = timeout;
        /// Whether a background thread reconnects and re-registers open handles after the daemon restarts (default
        /// `true`). Without it, reconnection happens on the next request only.
        auto_reconnect(on: bool) => auto_reconnect = on;
        /// Uses only this transport, whatever `SHMBUS_TRANSPORT` says: [`Transport::Shm`] ignores inherited pipes
        /// and never falls back; [`Transport::Pipe`] never contacts the daemon (handles come from inherited pipes,
        /// or from [`Bus::command`] for children).
        ///
        /// ```
        /// use bus_client::{Bus, Transport};
        /// let bus = Bus::builder().transport(Transport::Pipe).connect()?; // no daemon needed
        /// assert_eq!(bus.transport(), Transport::Pipe);
        /// # Ok::<(), bus_client::ConnectError>(())
        /// ```
        transport(transport: Transport) => transport = Some(transport);
        /// Falls back to pipes for the children spawned through [`Bus::command`] when shared memory is not usable:
        /// no daemon at connect (then `connect` succeeds anyway), or a handle that cannot be opened for want of
        /// shared memory. Logged once, at info level. Default: `SHMBUS_TRANSPORT=auto`, else off.
        ///
        /// ```
        /// use bus_client::{Bus, Transport};
        /// let bus = Bus::builder().socket("/nonexistent/shmbus.sock").fallback_to_pipes(true).connect()?;
        /// assert_eq!(bus.transport(), Transport::Pipe);
        /// # Ok::<(), bus_client::ConnectError>(())
        /// ```
        fallback_to_pipes(on: bool) => fallback = Some(on);
    }

    /// Connects and performs the version handshake (see [`Bus::connect`] for when the daemon is optional).
    pub fn connect(self) -> Result<Bus, ConnectError> {
        let mut sel = match (self.transport, self.fallback) {
            (Some(_), Some(_)) => transport::Selection::default(),
            _ => transport::from_env().map_err(ConnectError::Config)?,
        };
        if let Some(t) = self.transport {
            sel.only = Some(t);
        }
        if let Some(f) = self.fallback {
            sel.fallback = f;
        }
        crate::verify::warn_ignored_env();
        let found = names::client_socket(self.socket.as_deref(), &shmbus_proto::trust::trusted_uids());
        for c in found.candidates.iter().filter(|c| c.exists && c.problem.is_some()) {
            let why = c.problem.as_deref().unwrap_or_default();
            tracing::debug!(socket = %c.path.display(), "skipping a socket in an unsafe directory: {why}");
        }
        let config = Config {
            path: found.path,
            discovered: found.discovered,
            client: self.client.unwrap_or_else(default_client_name),
            timeout: self.timeout,
            auto_reconnect: self.auto_reconnect,
        };
        let bus = Bus { control: Control::new(config), routing: Arc::new(Routing::new(sel)) };
        // Claim inherited pipes now, whatever the transport, before this process spawns anything that could
        // inherit them: claiming makes them close-on-exec, so unused ones (`shm`) do not leak into grandchildren.
        let any_inherited = inherit::any();
        let inherited = bus.routing.uses_inherited() && any_inherited;
        if bus.routing.only == Some(Transport::Pipe) {
            return Ok(bus);
        }
        match bus.control.connect().map_err(ConnectError::from) {
            Ok(()) => Ok(bus),
            Err(e) if inherited => {
                tracing::debug!(error = %e, "no daemon; the topics handed over by the parent use their pipes");
                Ok(bus)
            }
            Err(e) if bus.routing.fallback && transport::connect_unusable(&e) => {
                bus.routing.fall_back(&e);
                Ok(bus)
            }
            Err(e) => Err(e),
        }
    }
}

fn default_client_name() -> String {
    let prog = std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "bus-client".into());
    format!("{prog} {}", env!("CARGO_PKG_VERSION"))
}

impl Bus {
    /// Connects to the daemon found by the default discovery (see [`BusBuilder::socket`]).
    ///
    /// The daemon is optional when this process inherited pipes from its parent (`SHMBUS_PIPES`), when
    /// `SHMBUS_TRANSPORT=pipe`, and with `SHMBUS_TRANSPORT=auto` (the fallback to pipes); see the
    /// [`pipe`](crate::pipe) module docs.
    pub fn connect() -> Result<Bus, ConnectError> {
        Bus::builder().connect()
    }

    /// Connects to the daemon listening at `path`.
    pub fn connect_to(path: impl AsRef<Path>) -> Result<Bus, ConnectError> {
        Bus::builder().socket(path.as_ref()).connect()
    }

    /// Settings for connecting.
    pub fn builder() -> BusBuilder {
        BusBuilder::default()
    }

    /// The control socket this bus talks to.
    pub fn socket_path(&self) -> &Path {
        &self.control.config.path
    }

    /// The daemon's self-description from the handshake (`None` while disconnected).
    pub fn daemon(&self) -> Option<String> {
        self.control.for_this_process().daemon()
    }

    /// Where handles made through [`Bus::command`] go: [`Transport::Pipe`] with `SHMBUS_TRANSPORT=pipe` or after
    /// the fallback to pipes, else [`Transport::Shm`]. (Topics handed over by a parent use their pipes either way
    /// unless the transport is `shm`.)
    pub fn transport(&self) -> Transport {
        if self.routing.children_use_pipes() {
            Transport::Pipe
        } else {
            Transport::Shm
        }
    }

    pub(crate) fn children_use_pipes(&self) -> bool {
        self.routing.children_use_pipes()
    }

    pub(crate) fn may_fall_back(&self) -> bool {
        self.routing.fallback
    }

    pub(crate) fn fall_back(&self, reason: &dyn std::fmt::Display) {
        self.routing.fall_back(reason)
    }

    /// Opens a publisher with default options.
    ///
    /// **Slots.** On shared memory every open publisher holds one of the topic's publisher slots
    /// (`max_publishers` in the daemon's configuration, 8 by default, or
    /// [`TopicSpec::max_publishers`](crate::TopicSpec::max_publishers) when creating a topic). When all are
    /// held, opening another fails with [`OpenError::NoFreeSlot`]; dropping a publisher frees its slot, and so
    /// does the death of the process holding it (the daemon reclaims it). `shmbus stats` shows who holds them.
    /// The pipe transport has no slot limit.
    ///
    /// **Threads.** A [`Publisher`] is `Send` but neither `Sync` nor `Clone`: one thread drives it at a time,
    /// because its slot is a single-producer lane. To publish from several threads, open one publisher per
    /// thread (each takes a slot; all share the topic's one total order), or move one publisher between threads
    /// (behind a `Mutex` if they take turns). [`Bus`] itself is `Clone`, `Send` and `Sync`, so each thread can
    /// open its own:
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = bus_client::Bus::connect()?;
    /// let workers: Vec<_> = (0..4)
    ///     .map(|i| {
    ///         let bus = bus.clone();
    ///         std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    ///             let mut p = bus.publisher("events")?; // one slot per thread
    ///             p.send(format!("hello from {i}").as_bytes())?;
    ///             Ok(())
    ///         })
    ///     })
    ///     .collect();
    /// for w in workers {
    ///     w.join().expect("worker panicked").map_err(|e| e.to_string())?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// ```compile_fail
    /// fn clone<T: Clone>() {}
    /// clone::<bus_client::Publisher>(); // one publisher, one slot: open another instead
    /// ```
    pub fn publisher(&self, topic: &str) -> Result<Publisher, OpenError> {
        self.publisher_builder(topic).open()
    }

    /// Options for a publisher.
    pub fn publisher_builder(&self, topic: &str) -> PublisherBuilder {
        PublisherBuilder::new(self.control.clone(), self.routing.clone(), topic)
    }

    /// Opens a lossless subscriber that starts at the next message.
    pub fn subscriber(&self, topic: &str) -> Result<Subscriber, OpenError> {
        self.subscriber_builder(topic).open()
    }

    /// Options for a subscriber: group, lossy, from the oldest message, idle strategy.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let bus = bus_client::Bus::connect()?;
    /// // One of several workers sharing the "jobs" messages, starting with what is still retained.
    /// let mut worker = bus.subscriber_builder("jobs").group("workers").from_oldest().open()?;
    /// for item in worker.iter() {
    ///     match item {
    ///         Ok(m) => println!("job #{}: {} bytes", m.seq(), m.len()),
    ///         Err(e) => eprintln!("{e}"), // lagged or demoted: reported, then the iteration goes on
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscriber_builder(&self, topic: &str) -> SubscriberBuilder {
        SubscriberBuilder::new(self.control.clone(), self.routing.clone(), topic)
    }

    /// Opens a publisher of `T` values; the topic refuses handles of another type.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Order { id: u64, qty: u32 }
    ///
    /// let bus = bus_client::Bus::connect()?;
    /// let mut orders = bus.typed_subscriber::<Order>("orders")?;
    /// let mut p = bus.typed_publisher::<Order>("orders")?;
    /// p.send(&Order { id: 1, qty: 3 })?;
    /// assert_eq!(orders.recv()?.qty, 3);
    /// # Ok(()) }
    /// ```
    pub fn typed_publisher<T: Serialize + DeserializeOwned>(
        &self,
        topic: &str,
    ) -> Result<TypedPublisher<T>, OpenError> {
        self.publisher_builder(topic).open_typed()
    }

    /// Opens a lossless subscriber of `T` values.
    pub fn typed_subscriber<T: DeserializeOwned>(&self, topic: &str) -> Result<TypedSubscriber<T>, OpenError> {
        self.subscriber_builder(topic).open_typed()
    }

    /// Creates a topic (succeeds if it exists with a compatible spec; [`ControlError::AlreadyExists`] otherwise).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use bus_client::{Bus, TopicSpec};
    /// let bus = Bus::connect()?;
    /// bus.create_topic("frames", TopicSpec { capacity: Some(256), max_message: Some(1 << 20), ..TopicSpec::default() })?;
    /// # Ok(()) }
    /// ```
    pub fn create_topic(&self, name: &str, spec: TopicSpec) -> Result<(), ControlError> {
        check_name(name)?;
        self.expect_done(Request::CreateTopic { name: name.into(), spec })
    }

    /// Deletes a topic; handles attached to it get `Closed`.
    pub fn delete_topic(&self, name: &str) -> Result<(), ControlError> {
        check_name(name)?;
        self.expect_done(Request::DeleteTopic { name: name.into() })
    }

    /// Tells the daemon about topics this connection holds a lease on (a handle opened from this `Bus` or a
    /// clone): e.g. a bridge's remote subscribers of an exported topic and its counters of an imported one,
    /// shown in `shmbus stats` and the metrics until the next report, the handle's close or the connection's
    /// end. Each call replaces the previous reports; a topic without a lease here is refused
    /// ([`ControlError::InvalidRequest`]), and so are more than
    /// [`MAX_REPORTED_ITEMS`](shmbus_proto::report::MAX_REPORTED_ITEMS) items of a kind.
    pub fn report(&self, topics: Vec<crate::TopicReport>) -> Result<(), ControlError> {
        self.expect_done(Request::Report { topics })
    }

    /// Lists the topics, in name order. The daemon answers a page at a time (each reply fits a frame however
    /// many topics there are); this asks for every page.
    pub fn topics(&self) -> Result<Vec<TopicInfo>, ControlError> {
        let mut all: Vec<TopicInfo> = Vec::new();
        loop {
            let after = all.last().map(|t| t.name.clone());
            match self.request(Request::ListTopicsPage { after: after.clone() })? {
                Response::TopicsPage { topics, more } => {
                    let progress = topics.last().is_some_and(|t| Some(&t.name) > after.as_ref());
                    all.extend(topics);
                    if !more || !progress {
                        return Ok(all);
                    }
                }
                other => return Err(unexpected("a topic list", &other)),
            }
        }
    }

    /// Counters, positions and lag of one topic or of all of them.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let bus = bus_client::Bus::connect()?;
    /// for t in bus.stats(Some("orders"))? {
    ///     for s in &t.subscribers {
    ///         println!("{} subscriber {}: position {}, lag {}", t.name, s.slot, s.position, s.lag);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stats(&self, topic: Option<&str>) -> Result<Vec<TopicStatsWire>, ControlError> {
        if let Some(t) = topic {
            check_name(t)?;
            return match self.request(Request::Stats { topic: Some(t.into()) })? {
                Response::Stats(s) => Ok(s),
                other => Err(unexpected("stats", &other)),
            };
        }
        // Every topic: a page at a time, like `topics`.
        let mut all: Vec<TopicStatsWire> = Vec::new();
        loop {
            let after = all.last().map(|t| t.name.clone());
            match self.request(Request::StatsPage { after: after.clone() })? {
                Response::StatsPage { stats, more } => {
                    let progress = stats.last().is_some_and(|t| Some(&t.name) > after.as_ref());
                    all.extend(stats);
                    if !more || !progress {
                        return Ok(all);
                    }
                }
                other => return Err(unexpected("stats", &other)),
            }
        }
    }

    /// The objects under the daemon's prefix that are no topic (refused as invalid, or planted), on names you
    /// administer, and how many more were left out; `delete` removes them.
    pub fn invalid_objects(&self) -> Result<(Vec<InvalidObject>, u32), ControlError> {
        match self.request(Request::ListInvalid)? {
            Response::Invalid { objects, omitted } => Ok((objects, omitted)),
            other => Err(unexpected("invalid objects", &other)),
        }
    }

    /// What the daemon is and how it runs: version, pid, uptime, shared memory in use and budget, descriptors.
    pub fn daemon_info(&self) -> Result<DaemonInfoWire, ControlError> {
        match self.request(Request::DaemonInfo)? {
            Response::DaemonInfo(i) => Ok(i),
            other => Err(unexpected("daemon information", &other)),
        }
    }

    /// Who holds which lease (pid, uid, kind, slot, since), on `topic` or on every topic, in lease-id order;
    /// only the topics [`Bus::topics`] lists (another topic is "no topic"). Asked for a page at a time.
    pub fn clients(&self, topic: Option<&str>) -> Result<Vec<ClientWire>, ControlError> {
        if let Some(t) = topic {
            check_name(t)?;
        }
        let mut all: Vec<ClientWire> = Vec::new();
        loop {
            let after = all.last().map(|c| c.lease);
            match self.request(Request::ClientsPage { topic: topic.map(Into::into), after })? {
                Response::ClientsPage { clients, more } => {
                    let progress = clients.last().is_some_and(|c| Some(c.lease) > after);
                    all.extend(clients);
                    if !more || !progress {
                        return Ok(all);
                    }
                }
                other => return Err(unexpected("the clients", &other)),
            }
        }
    }

    fn request(&self, req: Request) -> Result<Response, ControlError> {
        if self.routing.only == Some(Transport::Pipe) {
            let why = format!("the transport is pipe ({TRANSPORT_ENV}=pipe or BusBuilder::transport): no daemon");
            return Err(ControlError::DaemonUnavailable {
                path: self.socket_path().into(),
                source: std::io::Error::other(why),
            });
        }
        Ok(self.control.for_this_process().request(&req)?)
    }

    fn expect_done(&self, req: Request) -> Result<(), ControlError> {
        match self.request(req)? {
            Response::Done => Ok(()),
            other => Err(unexpected("done", &other)),
        }
    }
}

fn check_name(name: &str) -> Result<(), ControlError> {
    names::validate_topic(name).map_err(|e| ControlError::InvalidRequest(e.to_string()))
}

fn unexpected(wanted: &str, got: &Response) -> ControlError {
    ControlError::Protocol(format!("expected {wanted}, the daemon sent {}", crate::conn::describe(got)))
}
