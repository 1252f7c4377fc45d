//! Publishing: [`Publisher`], its builder, and zero-copy [`Loan`]s.

use crate::control::{Control, LeaseKind, LeaseSpec};
use crate::error::{OpenError, SendError};
use crate::lease::{self, Lease, Usable};
use crate::typed::{type_info, TypedPublisher};
use serde::Serialize;
use shmbus_proto::msg::{Role, TypeInfo};
use shmbus_ring::{IdleStrategy, PublisherOptions};
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options for opening a [`Publisher`]; from [`Bus::publisher_builder`](crate::Bus::publisher_builder).
#[derive(Debug)]
#[must_use = "a builder does nothing until `open`"]
pub struct PublisherBuilder {
    control: Arc<Control>,
    topic: String,
    idle: IdleStrategy,
    payload_type: Option<TypeInfo>,
}

impl PublisherBuilder {
    pub(crate) fn new(control: Arc<Control>, topic: &str) -> PublisherBuilder {
        PublisherBuilder { control, topic: topic.into(), idle: IdleStrategy::default(), payload_type: None }
    }

    /// How [`Publisher::send`] waits while the topic is full (default [`IdleStrategy::Adaptive`]).
    pub fn idle(mut self, idle: IdleStrategy) -> Self {
        self.idle = idle;
        self
    }

    /// Registers a payload type with the daemon; a topic refuses handles of another type
    /// ([`OpenError::TypeMismatch`]). [`PublisherBuilder::open_typed`] sets it from the Rust type.
    pub fn payload_type(mut self, info: TypeInfo) -> Self {
        self.payload_type = Some(info);
        self
    }

    /// Opens the publisher.
    pub fn open(self) -> Result<Publisher, OpenError> {
        let spec = LeaseSpec { topic: self.topic, kind: LeaseKind::Publisher, payload_type: self.payload_type };
        let a = lease::open(&self.control, spec)?;
        let Role::Publisher { slot } = a.role else { unreachable!("lease::open checks the role") };
        let opts = PublisherOptions { idle: self.idle, ..PublisherOptions::default() };
        let ring = shmbus_ring::Publisher::attach(&a.topic, slot as usize, a.waiter, opts)?;
        Ok(Publisher { ring: ManuallyDrop::new(ring), lease: a.lease })
    }

    /// Opens a publisher of `T` values, registering `T` as the topic's payload type.
    pub fn open_typed<T: Serialize>(self) -> Result<TypedPublisher<T>, OpenError> {
        Ok(TypedPublisher::new(self.payload_type(type_info::<T>()).open()?))
    }
}

/// A publisher on one topic. `Send` but not `Sync`: one thread at a time drives it.
///
/// Messages go straight into shared memory; the daemon is not involved after opening. Dropping the publisher
/// detaches it and gives its lease back.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = bus_client::Bus::connect()?;
/// let mut p = bus.publisher("orders")?;
/// let seq = p.send(b"hello")?;
/// println!("published as #{seq}");
/// # Ok(()) }
/// ```
pub struct Publisher {
    /// Dropped before `lease` (detach first, then unlock and close), and never in a forked child.
    ring: ManuallyDrop<shmbus_ring::Publisher>,
    lease: Lease,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("topic", &self.lease.topic()).field("slot", &self.ring.slot()).finish()
    }
}

impl Publisher {
    #[inline]
    fn check(&self) -> Result<(), SendError> {
        match self.lease.usable() {
            Usable::Yes => Ok(()),
            Usable::Closed => Err(SendError::Closed),
            Usable::Forked => Err(SendError::Forked),
        }
    }

    /// Publishes `msg`, waiting (per the idle strategy) while lossless subscribers hold the topic full. Returns
    /// the message's sequence number.
    pub fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.check()?;
        Ok(self.ring.send(msg)?)
    }

    /// Publishes `msg` if there is room now, else [`SendError::Full`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.check()?;
        Ok(self.ring.try_send(msg)?)
    }

    /// Publishes `msg`, waiting at most `timeout` for room ([`SendError::Timeout`]).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError> {
        self.check()?;
        Ok(self.ring.send_timeout(msg, timeout)?)
    }

    /// Publishes as many of `msgs` as fit now, in order, waking subscribers once; returns how many were sent (an
    /// error only if not even the first fit).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.check()?;
        Ok(self.ring.try_send_batch(msgs)?)
    }

    /// Encodes `value` with the bus codec (bincode via serde) and publishes it like [`Publisher::send`].
    /// Subscribers read it back with [`Subscriber::recv_value`](crate::Subscriber::recv_value).
    pub fn send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<u64, SendError> {
        let bytes = crate::typed::encode(value)?;
        self.send(&bytes)
    }

    /// Lends `len` bytes of shared memory to write a message in place, waiting for room like `send`.
    /// [`Loan::commit`] publishes it; dropping the loan aborts it (subscribers pass over it; nobody stalls).
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>, SendError> {
        self.check()?;
        Ok(Loan(self.ring.loan(len, None)?))
    }

    /// Like [`Publisher::loan`], but [`SendError::Full`] instead of waiting.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>, SendError> {
        self.check()?;
        Ok(Loan(self.ring.try_loan(len)?))
    }

    /// Like [`Publisher::loan`], waiting at most `timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>, SendError> {
        self.check()?;
        Ok(Loan(self.ring.loan(len, Some(Instant::now() + timeout))?))
    }

    /// The topic's largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.ring.max_message()
    }

    /// This publisher's id: the publisher slot every message it sends carries ([`Message::publisher`]).
    ///
    /// [`Message::publisher`]: crate::Message::publisher
    pub fn id(&self) -> u32 {
        self.ring.slot() as u32
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        self.lease.topic()
    }

    /// Messages published through this publisher's slot.
    pub fn published(&self) -> u64 {
        self.ring.published()
    }

    /// Whether the handle is closed: the topic was deleted or recreated.
    pub fn is_closed(&self) -> bool {
        self.lease.usable() == Usable::Closed || self.ring.topic().is_closed()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.lease.forked() {
            // The slot is the parent's: leave its ring state alone (the mapping leaks in the child).
            return;
        }
        // SAFETY: `ring` is not used again; `lease` (dropped after this) does not touch it.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
    }
}

/// A zero-copy loan from [`Publisher::loan`]: write the message in place, then [`Loan::commit`].
/// Dropping it without committing aborts it (subscribers pass over a counted skip marker).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let bus = bus_client::Bus::connect()?;
/// let mut p = bus.publisher("frames")?;
/// let mut loan = p.loan(5)?;
/// loan.as_mut_slice().copy_from_slice(b"hello");
/// loan.commit();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Loan<'a>(shmbus_ring::Loan<'a>);

impl Loan<'_> {
    /// The loaned bytes (their previous contents are unspecified).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.0.as_mut_slice()
    }

    /// Copies `src` into the loan at `offset` (panics past the end).
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        self.0.write_at(offset, src)
    }

    /// Length of the loan.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the loan is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sequence number the message will carry.
    pub fn seq(&self) -> u64 {
        self.0.seq()
    }

    /// Publishes the message; returns its sequence number.
    pub fn commit(self) -> u64 {
        self.0.commit()
    }

    /// Publishes only the first `len` bytes (panics if `len` exceeds the loan).
    pub fn commit_len(self, len: usize) -> u64 {
        self.0.commit_len(len)
    }
}
