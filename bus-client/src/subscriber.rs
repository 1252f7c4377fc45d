//! Subscribing: [`Subscriber`], its builder, borrowed [`Message`]s, [`OwnedMessage`]s and the blocking
//! [`Iter`].

use crate::control::{Control, LeaseKind, LeaseSpec};
use crate::error::{OpenError, RecvError};
use crate::lease::{self, Lease, Usable};
use crate::typed::{type_info, TypedSubscriber};
use serde::de::DeserializeOwned;
use shmbus_proto::msg::{Role, SubMode, TypeInfo};
use shmbus_ring::{IdleStrategy, Mode, SubscriberOptions};
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::Duration;

/// Options for opening a [`Subscriber`]; from [`Bus::subscriber_builder`](crate::Bus::subscriber_builder).
#[derive(Debug)]
#[must_use = "a builder does nothing until `open`"]
pub struct SubscriberBuilder {
    control: Arc<Control>,
    topic: String,
    mode: SubMode,
    from_oldest: bool,
    idle: IdleStrategy,
    payload_type: Option<TypeInfo>,
}

impl SubscriberBuilder {
    pub(crate) fn new(control: Arc<Control>, topic: &str) -> SubscriberBuilder {
        SubscriberBuilder {
            control,
            topic: topic.into(),
            mode: SubMode::Lossless,
            from_oldest: false,
            idle: IdleStrategy::default(),
            payload_type: None,
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

    /// How [`Subscriber::recv`] waits on an empty topic (default [`IdleStrategy::Adaptive`]).
    pub fn idle(mut self, idle: IdleStrategy) -> Self {
        self.idle = idle;
        self
    }

    /// Registers a payload type with the daemon (see [`PublisherBuilder::payload_type`]).
    ///
    /// [`PublisherBuilder::payload_type`]: crate::PublisherBuilder::payload_type
    pub fn payload_type(mut self, info: TypeInfo) -> Self {
        self.payload_type = Some(info);
        self
    }

    /// Opens the subscriber.
    pub fn open(self) -> Result<Subscriber, OpenError> {
        let kind = LeaseKind::Subscriber { mode: self.mode.clone(), from_oldest: self.from_oldest };
        let spec = LeaseSpec { topic: self.topic, kind, payload_type: self.payload_type };
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
        Ok(Subscriber { ring: ManuallyDrop::new(ring), lease: a.lease })
    }

    /// Opens a subscriber of `T` values, registering `T` as the topic's payload type.
    pub fn open_typed<T: DeserializeOwned>(self) -> Result<TypedSubscriber<T>, OpenError> {
        Ok(TypedSubscriber::new(self.payload_type(type_info::<T>()).open()?))
    }
}

/// A subscriber on one topic. `Send` but not `Sync`.
///
/// Lossless by default: publishers never overwrite a message it has not read (they wait, or get `Full`). Lossy
/// subscribers never slow publishers and learn of every gap through [`RecvError::Lagged`]. Dropping the
/// subscriber stops it gating publishers at once and gives its lease back.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = bus_client::Bus::connect()?;
/// let mut s = bus.subscriber("orders")?;
/// let m = s.recv()?;
/// println!("#{} from publisher {}: {:?}", m.seq(), m.publisher(), m.payload());
/// # Ok(()) }
/// ```
pub struct Subscriber {
    /// Dropped before `lease`, and never in a forked child (it would detach the parent's cursor).
    ring: ManuallyDrop<shmbus_ring::Subscriber>,
    lease: Lease,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("topic", &self.lease.topic()).field("slot", &self.ring.slot()).finish()
    }
}

impl Subscriber {
    #[inline]
    fn check(&self) -> Result<(), RecvError> {
        match self.lease.usable() {
            Usable::Yes => Ok(()),
            Usable::Closed => Err(RecvError::Closed),
            Usable::Forked => Err(RecvError::Forked),
        }
    }

    /// Waits (per the idle strategy) for the next message. The message borrows the subscriber; dropping it
    /// releases the message to publishers.
    pub fn recv(&mut self) -> Result<Message<'_>, RecvError> {
        self.check()?;
        Ok(Message(self.ring.recv()?))
    }

    /// The next message if one is available now, else [`RecvError::Empty`].
    pub fn try_recv(&mut self) -> Result<Message<'_>, RecvError> {
        self.check()?;
        Ok(Message(self.ring.try_recv()?))
    }

    /// Waits at most `timeout` for the next message ([`RecvError::Timeout`]).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>, RecvError> {
        self.check()?;
        Ok(Message(self.ring.recv_timeout(timeout)?))
    }

    /// Receives the next message and decodes it with the bus codec (the counterpart of
    /// [`Publisher::send_value`](crate::Publisher::send_value)).
    pub fn recv_value<T: DeserializeOwned>(&mut self) -> Result<T, RecvError> {
        let m = self.recv()?;
        crate::typed::decode(m.payload())
    }

    /// Like [`Subscriber::recv_value`], without waiting.
    pub fn try_recv_value<T: DeserializeOwned>(&mut self) -> Result<T, RecvError> {
        let m = self.try_recv()?;
        crate::typed::decode(m.payload())
    }

    /// Like [`Subscriber::recv_value`], waiting at most `timeout`.
    pub fn recv_value_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T, RecvError> {
        let m = self.recv_timeout(timeout)?;
        crate::typed::decode(m.payload())
    }

    /// A blocking iterator of owned messages. `Lagged` and `Demoted` come through as `Err` items and the
    /// iteration goes on; it ends after `Closed` (no item), or after yielding a `Corrupted` or `Forked` error.
    pub fn iter(&mut self) -> Iter<'_> {
        Iter { sub: self, done: false }
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        self.lease.topic()
    }

    /// The subscriber slot.
    pub fn slot(&self) -> u32 {
        self.ring.slot() as u32
    }

    /// The next sequence number this subscriber looks at.
    pub fn position(&self) -> u64 {
        self.ring.position()
    }

    /// Whether this subscriber currently holds publishers back (lossless, and not demoted). Groups gate through
    /// their members' held messages.
    pub fn is_lossless(&self) -> bool {
        self.ring.mode() == Mode::Lossless
    }

    /// Whether the handle is closed: the topic was deleted or recreated.
    pub fn is_closed(&self) -> bool {
        self.lease.usable() == Usable::Closed || self.ring.topic().is_closed()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.lease.forked() {
            return;
        }
        // SAFETY: `ring` is not used again; `lease` (dropped after this) does not touch it.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
    }
}

/// A received message, borrowing its [`Subscriber`] until dropped (lossless payloads are read in place, in
/// shared memory).
#[derive(Debug)]
pub struct Message<'a>(shmbus_ring::Message<'a>);

impl Message<'_> {
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        self.0.payload()
    }

    /// Ring sequence number: one total order across all publishers of the topic.
    pub fn seq(&self) -> u64 {
        self.0.seq()
    }

    /// Id of the publisher that sent it ([`Publisher::id`](crate::Publisher::id)).
    pub fn publisher(&self) -> u32 {
        self.0.publisher()
    }

    /// Publish time, nanoseconds since the Unix epoch (the publisher's clock).
    pub fn timestamp(&self) -> u64 {
        self.0.timestamp()
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes the payload with the bus codec.
    pub fn value<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        crate::typed::decode(self.payload())
    }

    /// Copies the message out, releasing it.
    pub fn to_owned_message(&self) -> OwnedMessage {
        OwnedMessage {
            seq: self.seq(),
            publisher: self.publisher(),
            timestamp: self.timestamp(),
            payload: self.payload().to_vec(),
        }
    }
}

/// A message copied out of shared memory (from [`Subscriber::iter`] or [`Message::to_owned_message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    /// Ring sequence number.
    pub seq: u64,
    /// Publisher id.
    pub publisher: u32,
    /// Publish time, nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Blocking iterator from [`Subscriber::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    sub: &'a mut Subscriber,
    done: bool,
}

impl Iterator for Iter<'_> {
    type Item = Result<OwnedMessage, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.sub.recv() {
            Ok(m) => Some(Ok(m.to_owned_message())),
            Err(RecvError::Closed) => {
                self.done = true;
                None
            }
            Err(e @ (RecvError::Lagged(_) | RecvError::Demoted)) => Some(Err(e)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
