//! [`Bus`]: the connection to the daemon, from which handles are opened and topics administered.

use crate::control::{Config, Control};
use crate::error::{ConnectError, ControlError, OpenError};
use crate::publisher::{Publisher, PublisherBuilder};
use crate::subscriber::{Subscriber, SubscriberBuilder};
use crate::typed::{TypedPublisher, TypedSubscriber};
use serde::{de::DeserializeOwned, Serialize};
use shmbus_proto::msg::{TopicInfo, TopicSpec, TopicStatsWire};
use shmbus_proto::{names, Request, Response};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default bound on one control request's round trip.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the `Close` a dropping handle sends.
pub const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A connection to the shmbus daemon. Cheap to clone (`Send + Sync`); handles opened from it share its
/// connection and keep working when the daemon restarts (they are re-registered automatically).
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
}

/// Settings for [`Bus`]; from [`Bus::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `connect`"]
pub struct BusBuilder {
    socket: Option<PathBuf>,
    client: Option<String>,
    timeout: Duration,
    auto_reconnect: bool,
}

impl Default for BusBuilder {
    fn default() -> Self {
        BusBuilder { socket: None, client: None, timeout: DEFAULT_REQUEST_TIMEOUT, auto_reconnect: true }
    }
}

impl BusBuilder {
    /// The control socket (default: `$SHMBUS_SOCKET`, else the first existing of
    /// `$XDG_RUNTIME_DIR/shmbus/control.sock`, `/run/shmbus/control.sock`, `<tmp>/shmbus-<uid>/control.sock`).
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = Some(path.into());
        self
    }

    /// How this client introduces itself to the daemon (default: program name and library version).
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client = Some(name.into());
        self
    }

    /// Bound on one control request's round trip (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether a background thread reconnects and re-registers open handles after the daemon restarts (default
    /// `true`). Without it, reconnection happens on the next request only.
    pub fn auto_reconnect(mut self, on: bool) -> Self {
        self.auto_reconnect = on;
        self
    }

    /// Connects and performs the version handshake.
    pub fn connect(self) -> Result<Bus, ConnectError> {
        let config = Config {
            path: names::client_socket(self.socket.as_deref()),
            client: self.client.unwrap_or_else(default_client_name),
            timeout: self.timeout,
            close_timeout: CLOSE_TIMEOUT.min(self.timeout),
            auto_reconnect: self.auto_reconnect,
        };
        let control = Control::new(config);
        control.connect()?;
        Ok(Bus { control })
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

    /// Opens a publisher with default options.
    pub fn publisher(&self, topic: &str) -> Result<Publisher, OpenError> {
        self.publisher_builder(topic).open()
    }

    /// Options for a publisher.
    pub fn publisher_builder(&self, topic: &str) -> PublisherBuilder {
        PublisherBuilder::new(self.control.clone(), topic)
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
    ///         Ok(m) => println!("job #{}: {} bytes", m.seq, m.payload.len()),
    ///         Err(e) => eprintln!("{e}"), // lagged or demoted: reported, then the iteration goes on
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscriber_builder(&self, topic: &str) -> SubscriberBuilder {
        SubscriberBuilder::new(self.control.clone(), topic)
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
    pub fn typed_publisher<T: Serialize>(&self, topic: &str) -> Result<TypedPublisher<T>, OpenError> {
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

    /// Lists the topics.
    pub fn topics(&self) -> Result<Vec<TopicInfo>, ControlError> {
        match self.request(Request::ListTopics)? {
            Response::Topics(t) => Ok(t),
            other => Err(unexpected("a topic list", &other)),
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
        }
        match self.request(Request::Stats { topic: topic.map(Into::into) })? {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected("stats", &other)),
        }
    }

    fn request(&self, req: Request) -> Result<Response, ControlError> {
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
