//! Subscribing: [`Subscriber`] and its builder, over shared memory or a pipe (through a [`Source`]). Its
//! iterators are in `iter.rs`.

use crate::control::{Control, LeaseKind, LeaseSpec};
use crate::error::{OpenError, RecvError};
use crate::iter::{Iter, TryIter};
use crate::lease;
use crate::message::Message;
use crate::pipe_io::inherit::Direction;
use crate::pipe_io::io::Wait;
use crate::pipe_io::PipeReader;
use crate::source::{ShmSource, Source};
use crate::transport::{inherited_pipe, Routing, Transport};
use crate::wake::WakeFd;
use shmbus_proto::msg::{Role, SubMode, TypeInfo};
use shmbus_ring::{IdleStrategy, Mode, SubscriberOptions};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options for opening a [`Subscriber`]; from [`Bus::subscriber_builder`](crate::Bus::subscriber_builder).
#[derive(Debug)]
#[must_use = "a builder does nothing until `open`"]
pub struct SubscriberBuilder {
    pub(crate) control: Arc<Control>,
    routing: Arc<Routing>,
    pub(crate) topic: String,
    mode: SubMode,
    from_oldest: bool,
    idle: IdleStrategy,
    payload_type: Option<TypeInfo>,
    open_timeout: Option<Duration>,
}

impl SubscriberBuilder {
    pub(crate) fn new(control: Arc<Control>, routing: Arc<Routing>, topic: &str) -> SubscriberBuilder {
        SubscriberBuilder {
            control,
            routing,
            topic: topic.into(),
            mode: SubMode::Lossless,
            from_oldest: false,
            idle: IdleStrategy::default(),
            payload_type: None,
            open_timeout: None,
        }
    }

    /// Joins consumer group `name`: each message goes to one member of the group.
    pub fn group(mut self, name: &str) -> Self {
        self.mode = SubMode::Group { name: name.into() };
        self
    }

    /// Never holds publishers back; when lapped, [`RecvError::Lagged`] reports exactly how many messages were
    /// missed. (The default is lossless: publishers wait for this subscriber.)
    pub fn lossy(mut self) -> Self {
        self.mode = SubMode::Lossy;
        self
    }

    /// Starts from the oldest message the topic still retains instead of the next one published.
    pub fn from_oldest(mut self) -> Self {
        self.from_oldest = true;
        self
    }

    setters! {
        /// How [`Subscriber::recv`] waits on an empty topic (default [`IdleStrategy::Adaptive`]). Ignored on a
        /// pipe: waits there always sleep in `poll(2)`.
        idle(idle: IdleStrategy) => idle = idle;
        /// Registers a payload type with the daemon (see [`PublisherBuilder::payload_type`]).
        ///
        /// [`PublisherBuilder::payload_type`]: crate::PublisherBuilder::payload_type
        payload_type(info: TypeInfo) => payload_type = Some(info);
        /// Bound on the daemon's answer to this open (default: the bus's
        /// [`request_timeout`](crate::BusBuilder::request_timeout), 10 s); past it, `open` returns
        /// [`OpenError::Timeout`]. It also bounds the handshake when the bus has to reconnect first; the `Close`s
        /// of handles dropped just before go first and may add up to [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT).
        ///
        /// ```no_run
        /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// use std::time::Duration;
        /// let bus = bus_client::Bus::connect()?;
        /// match bus.subscriber_builder("orders").open_timeout(Duration::from_millis(200)).open() {
        ///     Err(bus_client::OpenError::Timeout(why)) => eprintln!("the daemon is busy or stopped: {why}"),
        ///     r => drop(r?),
        /// }
        /// # Ok(()) }
        /// ```
        open_timeout(timeout: Duration) => open_timeout = Some(timeout);
    }

    /// Opens the subscriber: on the pipe the parent handed over for this topic if there is one (see the
    /// [`pipe`](crate::pipe) module; a pipe subscriber is the pipe's only reader and lossless whatever the
    /// options), else through the daemon.
    pub fn open(self) -> Result<Subscriber, OpenError> {
        if let Some(t) = inherited_pipe(&self.routing, &self.topic, Direction::Read)? {
            return Subscriber::from_pipe(&self.topic, vec![t.fd]);
        }
        let kind = LeaseKind::Subscriber { mode: self.mode.clone(), from_oldest: self.from_oldest };
        let spec =
            LeaseSpec { topic: self.topic, kind, payload_type: self.payload_type, open_timeout: self.open_timeout };
        let a = lease::open(&self.control, spec)?;
        let Role::Subscriber { slot, group } = a.role else { unreachable!("lease::open checks the role") };
        let mode = match (&self.mode, group) {
            (SubMode::Lossless, None) => Mode::Lossless,
            (SubMode::Lossy, None) => Mode::Lossy,
            (SubMode::Group { .. }, Some(g)) => Mode::Group(g as usize),
            (asked, got) => {
                return Err(OpenError::Protocol(format!("asked for a {asked:?} subscriber, got group {got:?}")));
            }
        };
        let opts = SubscriberOptions { mode, from_oldest: self.from_oldest, idle: self.idle };
        let readers = a.lease.readers_fd();
        let is_dead = |p: usize| lease::publisher_is_dead(readers, p);
        let ring = shmbus_ring::Subscriber::attach(&a.topic, slot as usize, opts, a.waiter, &is_dead)?;
        Ok(Subscriber(Inner::Shm(Box::new(ShmSource::new(ring, a.lease))), None))
    }
}

/// A subscriber on one topic. `Send` but not `Sync`.
///
/// Lossless by default: publishers never overwrite a message it has not read (they wait, or get `Full`). Lossy
/// subscribers never slow publishers and learn of every gap through [`RecvError::Lagged`]. Dropping the
/// subscriber stops it gating publishers at once and gives its lease back, without waiting for the daemon (as
/// for a [`Publisher`](crate::Publisher)). On the [pipe transport](crate::pipe) it reads one pipe, or several
/// in turn (fan-in), and is always lossless.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = bus_client::Bus::connect()?;
/// let mut s = bus.subscriber("orders")?;
/// let m = s.recv()?;
/// println!("#{} from publisher {}: {:?}", m.seq(), m.publisher(), m.payload());
/// # Ok(()) }
/// ```
pub struct Subscriber(pub(crate) Inner, pub(crate) Option<Box<WakeFd>>);

/// The transport, as an enum rather than a `dyn Source`: the shared-memory receive is inlined down to the ring.
/// Through a trait object the message came back through memory at each level and was copied with 16-byte loads
/// of 8-byte stores, failed store-to-load forwards that cost a sizeable part of a 64-byte receive (issue 10).
pub(crate) enum Inner {
    Shm(Box<ShmSource>),
    Pipe(Box<PipeReader>),
}

impl Inner {
    fn source(&self) -> &dyn Source {
        match self {
            Inner::Shm(s) => &**s,
            Inner::Pipe(p) => &**p,
        }
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::endpoint::debug_handle(f, "Subscriber", self.0.source())
    }
}

impl Subscriber {
    /// A subscriber reading the pipes `ins` in turn (fan-in when there are several).
    pub(crate) fn from_pipe(topic: &str, ins: Vec<OwnedFd>) -> Result<Subscriber, OpenError> {
        Ok(Subscriber(Inner::Pipe(Box::new(PipeReader::new(topic, ins).map_err(OpenError::Io)?)), None))
    }

    /// Whether this subscriber reads shared memory through a daemon lease (not pipes).
    pub(crate) fn is_shm(&self) -> bool {
        matches!(self.0, Inner::Shm(_))
    }

    /// The pipe side, if this subscriber runs on pipes.
    pub(crate) fn pipe_reader(&mut self) -> Option<&mut PipeReader> {
        match &mut self.0 {
            Inner::Shm(_) => None,
            Inner::Pipe(p) => Some(p),
        }
    }

    #[inline]
    fn recv_with(&mut self, wait: Wait) -> Result<Message<'_>, RecvError> {
        match &mut self.0 {
            Inner::Shm(s) => s.recv_inline(wait),
            Inner::Pipe(p) => Source::recv(&mut **p, wait),
        }
    }

    /// Waits (per the idle strategy) for the next message. The message borrows the subscriber; dropping it
    /// releases the message to publishers. Never returns `Empty` or `Timeout` (see [`RecvError`] for which
    /// variants each call can return).
    ///
    /// ```
    /// let (mut p, mut s) = bus_client::pipe::channel("doc")?;
    /// p.send(b"hi")?;
    /// let m = s.recv()?;
    /// assert_eq!((m.payload(), m.seq(), m.publisher()), (&b"hi"[..], 0, p.id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn recv(&mut self) -> Result<Message<'_>, RecvError> {
        self.recv_with(Wait::Forever)
    }

    /// The next message if one is available now, else [`RecvError::Empty`] (never `Timeout`).
    #[inline]
    pub fn try_recv(&mut self) -> Result<Message<'_>, RecvError> {
        self.recv_with(Wait::Now)
    }

    /// Waits at most `timeout` for the next message ([`RecvError::Timeout`], never `Empty`). A timeout too long
    /// to represent waits for ever. A zero-copy loop that also does other work:
    ///
    /// ```
    /// # let (mut p, mut sub) = bus_client::pipe::channel("zero-copy-timeout")?;
    /// # p.send(b"a")?;
    /// # drop(p);
    /// use std::time::Duration;
    /// loop {
    ///     match sub.recv_timeout(Duration::from_millis(100)) {
    ///         Ok(m) => println!("{} bytes, read in place", m.len()), // released when `m` drops
    ///         Err(e) if e.is_timeout() => { /* housekeeping */ }
    ///         Err(e) if e.is_transient() => eprintln!("{e}"), // a lap: reported, reading goes on
    ///         Err(e) if e.is_closed() => break,
    ///         Err(e) => return Err(e.into()),
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>, RecvError> {
        self.recv_with(Wait::timeout(timeout))
    }

    /// Waits until `deadline` for the next message ([`RecvError::Timeout`]); a deadline already past still takes
    /// a message that is available now. One deadline for several calls, where a `recv_timeout` per call would
    /// add up:
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (mut p, mut s) = bus_client::pipe::channel("deadline")?;
    /// p.send(b"one")?;
    /// let deadline = Instant::now() + Duration::from_millis(20);
    /// assert_eq!(s.recv_deadline(deadline)?.payload(), b"one");
    /// assert_eq!(s.recv_deadline(deadline).unwrap_err(), bus_client::RecvError::Timeout);
    /// assert!(Instant::now() >= deadline);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Message<'_>, RecvError> {
        self.recv_with(Wait::Until(deadline))
    }

    /// A blocking iterator of owned messages (each is copied out; for a zero-copy loop use
    /// `while let` on [`recv`](Subscriber::recv)). `&mut Subscriber` is also [`IntoIterator`], so
    /// `for m in &mut sub` is the same loop.
    ///
    /// `Lagged` and `Demoted` come through as `Err` items and the iteration goes on; it ends after `Closed` (no
    /// item), or after yielding a `Corrupted` or `Forked` error. So `let m = m?;` in the loop body stops at the
    /// first lap of a lossy subscriber; to report lag and go on, let [`RecvError::is_transient`] decide (or
    /// [`RecvError::lagged`] count what was missed):
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut p, mut sub) = bus_client::pipe::channel("loop")?;
    /// p.send(b"a")?;
    /// drop(p); // the subscriber gets `Closed` after the last message, which ends the loop
    /// for m in sub.iter() {
    ///     let m = match m {
    ///         Ok(m) => m,
    ///         Err(e) if e.is_transient() => {
    ///             eprintln!("{e}"); // "lagged behind by 3 messages": messages were missed, reading goes on
    ///             continue;
    ///         }
    ///         Err(e) => return Err(e.into()), // the subscriber cannot go on
    ///     };
    ///     println!("#{}: {:?}", m.seq(), m.payload());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Zero copy, the same rules:
    ///
    /// ```
    /// # use bus_client::RecvError;
    /// # let (mut p, mut sub) = bus_client::pipe::channel("zero-copy")?;
    /// # p.send(b"a")?;
    /// # drop(p);
    /// loop {
    ///     match sub.recv() {
    ///         Ok(m) => println!("{} bytes, read in place", m.len()), // released when `m` drops
    ///         Err(e) if e.is_transient() => eprintln!("{e}"),
    ///         Err(RecvError::Closed) => break,
    ///         Err(e) => return Err(e.into()),
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_> {
        Iter::new(self)
    }

    /// An iterator over the messages available now: it ends when none is left ([`RecvError::Empty`], no item)
    /// instead of waiting. Errors come through as for [`iter`](Subscriber::iter). Handy to drain a batch:
    ///
    /// ```
    /// let (mut p, mut s) = bus_client::pipe::channel("drain")?;
    /// p.send(b"a")?;
    /// p.send(b"b")?;
    /// let batch: Vec<_> = s.try_iter().collect::<Result<_, _>>()?;
    /// assert_eq!(batch.len(), 2);
    /// assert_eq!(batch[1].payload(), b"b");
    /// assert_eq!(s.try_iter().count(), 0, "nothing left: the iterator ends at once");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter::new(self)
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        self.0.source().topic()
    }

    /// The subscriber slot (0 on a pipe).
    pub fn slot(&self) -> u32 {
        self.0.source().slot()
    }

    /// The next sequence number this subscriber looks at (on a pipe: how many messages it received).
    pub fn position(&self) -> u64 {
        self.0.source().position()
    }

    /// Whether this subscriber currently holds publishers back (lossless, and not demoted). Groups gate through
    /// their members' held messages. Always `true` on a pipe.
    pub fn is_lossless(&self) -> bool {
        self.0.source().is_lossless()
    }

    /// Whether the handle is closed: the topic was deleted or recreated (on pipes: every writer closed its end
    /// and everything was read).
    pub fn is_closed(&self) -> bool {
        self.0.source().is_closed()
    }

    /// The transport this subscriber runs on.
    pub fn transport(&self) -> Transport {
        self.0.source().transport()
    }

    /// On a pipe, how many pipes this subscriber still reads (fan-in); `None` on shared memory.
    pub fn pipe_inputs(&self) -> Option<usize> {
        self.0.source().pipes()
    }

    /// On a pipe, how many messages were dropped unfinished because their writer died in the middle of writing
    /// them (each is also logged); `None` on shared memory, where the ring counts skipped claims instead.
    pub fn pipe_abandoned(&self) -> Option<u64> {
        self.0.source().pipe_abandoned()
    }
}
