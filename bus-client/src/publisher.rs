//! Publishing: [`Publisher`], its builder, and zero-copy [`Loan`]s, over shared memory or a pipe.

use crate::control::{Control, LeaseKind, LeaseSpec};
use crate::error::{OpenError, SendError};
use crate::lease::{self, Lease, Usable};
use crate::pipe::io::Wait;
use crate::pipe::{Direction, PipeLoan, PipeWriter};
use crate::transport::{inherited_pipe, Routing, Transport};
use crate::typed::{type_info, TypedPublisher};
use serde::Serialize;
use shmbus_proto::msg::{Role, TypeInfo};
use shmbus_ring::{IdleStrategy, PublisherOptions};
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::Duration;

/// Options for opening a [`Publisher`]; from [`Bus::publisher_builder`](crate::Bus::publisher_builder).
#[derive(Debug)]
#[must_use = "a builder does nothing until `open`"]
pub struct PublisherBuilder {
    control: Arc<Control>,
    routing: Arc<Routing>,
    topic: String,
    idle: IdleStrategy,
    payload_type: Option<TypeInfo>,
}

impl PublisherBuilder {
    pub(crate) fn new(control: Arc<Control>, routing: Arc<Routing>, topic: &str) -> PublisherBuilder {
        PublisherBuilder { control, routing, topic: topic.into(), idle: IdleStrategy::default(), payload_type: None }
    }

    /// How [`Publisher::send`] waits while the topic is full (default [`IdleStrategy::Adaptive`]; on a pipe,
    /// waits always sleep in `poll`).
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

    /// Opens the publisher: on the pipe the parent handed over for this topic if there is one (see the
    /// [`pipe`](crate::pipe) module), else through the daemon.
    pub fn open(self) -> Result<Publisher, OpenError> {
        if let Some(fd) = inherited_pipe(&self.routing, &self.topic, Direction::Write)? {
            return Ok(Publisher::from_pipe(PipeWriter::new(&self.topic, vec![fd]).map_err(OpenError::Io)?));
        }
        let spec = LeaseSpec { topic: self.topic, kind: LeaseKind::Publisher, payload_type: self.payload_type };
        let a = lease::open(&self.control, spec)?;
        let Role::Publisher { slot } = a.role else { unreachable!("lease::open checks the role") };
        let opts = PublisherOptions { idle: self.idle, ..PublisherOptions::default() };
        let ring = shmbus_ring::Publisher::attach(&a.topic, slot as usize, a.waiter, opts)?;
        Ok(Publisher(Kind::Shm(ShmPublisher { ring: ManuallyDrop::new(ring), lease: a.lease })))
    }

    /// Opens a publisher of `T` values, registering `T` as the topic's payload type.
    pub fn open_typed<T: Serialize>(self) -> Result<TypedPublisher<T>, OpenError> {
        Ok(TypedPublisher::new(self.payload_type(type_info::<T>()).open()?))
    }
}

/// A publisher on one topic. `Send` but not `Sync`: one thread at a time drives it.
///
/// Messages go straight into shared memory; the daemon is not involved after opening. Dropping the publisher
/// detaches it and gives its lease back. On the [pipe transport](crate::pipe), messages go into one pipe, or
/// into each of several (fan-out); dropping the publisher closes them.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = bus_client::Bus::connect()?;
/// let mut p = bus.publisher("orders")?;
/// let seq = p.send(b"hello")?;
/// println!("published as #{seq}");
/// # Ok(()) }
/// ```
pub struct Publisher(Kind);

enum Kind {
    Shm(ShmPublisher),
    Pipe(PipeWriter),
}

/// A publisher on shared memory.
struct ShmPublisher {
    /// Dropped before `lease` (detach first, then unlock and close), and never in a forked child.
    ring: ManuallyDrop<shmbus_ring::Publisher>,
    lease: Lease,
}

impl ShmPublisher {
    #[inline]
    fn check(&self) -> Result<(), SendError> {
        match self.lease.usable() {
            Usable::Yes => Ok(()),
            Usable::Closed => Err(SendError::Closed),
            Usable::Forked => Err(SendError::Forked),
        }
    }
}

impl Drop for ShmPublisher {
    fn drop(&mut self) {
        if self.lease.forked() {
            // The slot is the parent's: leave its ring state alone (the mapping leaks in the child).
            return;
        }
        // SAFETY: `ring` is not used again; `lease` (dropped after this) does not touch it.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Shm(s) => {
                f.debug_struct("Publisher").field("topic", &s.lease.topic()).field("slot", &s.ring.slot()).finish()
            }
            Kind::Pipe(p) => f.debug_struct("Publisher").field("pipe", p).finish(),
        }
    }
}

impl Publisher {
    pub(crate) fn from_pipe(writer: PipeWriter) -> Publisher {
        Publisher(Kind::Pipe(writer))
    }

    /// The pipe side, if this publisher runs on pipes.
    pub(crate) fn pipe_writer(&mut self) -> Option<&mut PipeWriter> {
        match &mut self.0 {
            Kind::Pipe(p) => Some(p),
            Kind::Shm(_) => None,
        }
    }

    /// Publishes `msg`, waiting (per the idle strategy) while lossless subscribers hold the topic full. Returns
    /// the message's sequence number.
    ///
    /// ```
    /// let (mut p, mut s) = bus_client::pipe::channel("doc")?;
    /// assert_eq!(p.send(b"first")?, 0);
    /// assert_eq!(p.send(b"second")?, 1);
    /// assert_eq!(s.recv()?.payload(), b"first");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        match &mut self.0 {
            Kind::Shm(s) => {
                s.check()?;
                Ok(s.ring.send(msg)?)
            }
            Kind::Pipe(p) => p.send(msg, Wait::Forever),
        }
    }

    /// Publishes `msg` if there is room now, else [`SendError::Full`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        match &mut self.0 {
            Kind::Shm(s) => {
                s.check()?;
                Ok(s.ring.try_send(msg)?)
            }
            Kind::Pipe(p) => p.send(msg, Wait::Now),
        }
    }

    /// Publishes `msg`, waiting at most `timeout` for room ([`SendError::Timeout`]).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError> {
        match &mut self.0 {
            Kind::Shm(s) => {
                s.check()?;
                Ok(s.ring.send_timeout(msg, timeout)?)
            }
            Kind::Pipe(p) => p.send(msg, Wait::timeout(timeout)),
        }
    }

    /// Publishes as many of `msgs` as fit now, in order, waking subscribers once; returns how many were sent (an
    /// error only if not even the first fit).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        match &mut self.0 {
            Kind::Shm(s) => {
                s.check()?;
                Ok(s.ring.try_send_batch(msgs)?)
            }
            Kind::Pipe(p) => p.try_send_batch(msgs),
        }
    }

    /// Encodes `value` with the bus codec (bincode via serde) and publishes it like [`Publisher::send`].
    /// Subscribers read it back with [`Subscriber::recv_value`](crate::Subscriber::recv_value).
    pub fn send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<u64, SendError> {
        let bytes = crate::typed::encode(value)?;
        self.send(&bytes)
    }

    /// Lends `len` bytes of shared memory to write a message in place, waiting for room like `send`.
    /// [`Loan::commit`] publishes it; dropping the loan aborts it (subscribers pass over it; nobody stalls).
    ///
    /// On a pipe the loan is a buffer of this publisher, written like `send` on commit (once every pipe has
    /// room); an aborted loan uses no sequence number.
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>, SendError> {
        self.loan_with(len, Wait::Forever)
    }

    /// Like [`Publisher::loan`], but [`SendError::Full`] instead of waiting.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>, SendError> {
        self.loan_with(len, Wait::Now)
    }

    /// Like [`Publisher::loan`], waiting at most `timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>, SendError> {
        self.loan_with(len, Wait::timeout(timeout))
    }

    fn loan_with(&mut self, len: usize, wait: Wait) -> Result<Loan<'_>, SendError> {
        match &mut self.0 {
            Kind::Shm(s) => {
                s.check()?;
                let ring = match wait {
                    Wait::Now => s.ring.try_loan(len)?,
                    Wait::Until(d) => s.ring.loan(len, Some(d))?,
                    Wait::Forever => s.ring.loan(len, None)?,
                };
                Ok(Loan(LoanKind::Shm(ring)))
            }
            Kind::Pipe(p) => Ok(Loan(LoanKind::Pipe(p.loan(len, wait)?))),
        }
    }

    /// The topic's largest message in bytes ([`pipe::MAX_MESSAGE`](crate::pipe::MAX_MESSAGE) on pipes).
    pub fn max_message(&self) -> usize {
        match &self.0 {
            Kind::Shm(s) => s.ring.max_message(),
            Kind::Pipe(p) => p.max_message(),
        }
    }

    /// This publisher's id: the publisher slot every message it sends carries ([`Message::publisher`]). On a
    /// pipe, the writer id: unique among the live writers of the pipe (the process id for a process's first
    /// pipe publisher).
    ///
    /// [`Message::publisher`]: crate::Message::publisher
    pub fn id(&self) -> u32 {
        match &self.0 {
            Kind::Shm(s) => s.ring.slot() as u32,
            Kind::Pipe(p) => p.id(),
        }
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        match &self.0 {
            Kind::Shm(s) => s.lease.topic(),
            Kind::Pipe(p) => p.topic(),
        }
    }

    /// Messages published through this publisher's slot (on a pipe: by this publisher).
    pub fn published(&self) -> u64 {
        match &self.0 {
            Kind::Shm(s) => s.ring.published(),
            Kind::Pipe(p) => p.published(),
        }
    }

    /// Whether the handle is closed: the topic was deleted or recreated (on pipes: every reader is gone).
    pub fn is_closed(&self) -> bool {
        match &self.0 {
            Kind::Shm(s) => s.lease.usable() == Usable::Closed || s.ring.topic().is_closed(),
            Kind::Pipe(p) => p.is_closed(),
        }
    }

    /// The transport this publisher runs on.
    pub fn transport(&self) -> Transport {
        match &self.0 {
            Kind::Shm(_) => Transport::Shm,
            Kind::Pipe(_) => Transport::Pipe,
        }
    }

    /// On a pipe, how many pipes this publisher writes to (more than one with fan-out; readers that are gone
    /// are no longer counted once a send noticed). `None` on shared memory.
    pub fn pipe_outputs(&self) -> Option<usize> {
        match &self.0 {
            Kind::Pipe(p) => Some(p.outputs()),
            Kind::Shm(_) => None,
        }
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
/// loan.copy_from_slice(b"hello");
/// loan.commit();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Loan<'a>(LoanKind<'a>);

#[derive(Debug)]
enum LoanKind<'a> {
    Shm(shmbus_ring::Loan<'a>),
    Pipe(PipeLoan<'a>),
}

impl Loan<'_> {
    /// Copies `src` into the loan at `offset` (panics past the end).
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        match &mut self.0 {
            LoanKind::Shm(l) => l.write_at(offset, src),
            LoanKind::Pipe(l) => l.as_mut_slice()[offset..offset + src.len()].copy_from_slice(src),
        }
    }

    /// Fills the whole loan with `src`, which must be exactly as long as the loan (panics otherwise).
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        match &mut self.0 {
            LoanKind::Shm(l) => l.copy_from_slice(src),
            LoanKind::Pipe(l) => l.as_mut_slice().copy_from_slice(src),
        }
    }

    /// Lets `f` fill a buffer as long as the loan, then writes it into the loan; returns what `f` returns. For
    /// writers that need a `&mut [u8]` (serializers, `Read::read_exact`). On shared memory the buffer is private
    /// (zeroed, then copied into the loan); on a pipe it is the loan's own buffer.
    ///
    /// There is no `&mut [u8]` view of a shared-memory loan: subscribers in other processes may read those bytes
    /// while they are written, so the ring writes them with atomic stores (see `shmbus_ring::Loan`). Prefer
    /// [`Loan::write_at`] / [`Loan::copy_from_slice`], which need no extra copy.
    pub fn with_buffer<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        match &mut self.0 {
            LoanKind::Shm(l) => l.with_buffer(f),
            LoanKind::Pipe(l) => f(l.as_mut_slice()),
        }
    }

    /// Length of the loan.
    pub fn len(&self) -> usize {
        match &self.0 {
            LoanKind::Shm(l) => l.len(),
            LoanKind::Pipe(l) => l.len(),
        }
    }

    /// Whether the loan is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sequence number the message will carry.
    pub fn seq(&self) -> u64 {
        match &self.0 {
            LoanKind::Shm(l) => l.seq(),
            LoanKind::Pipe(l) => l.seq(),
        }
    }

    /// Publishes the message; returns its sequence number.
    pub fn commit(self) -> u64 {
        match self.0 {
            LoanKind::Shm(l) => l.commit(),
            LoanKind::Pipe(l) => {
                let len = l.len();
                l.commit_len(len)
            }
        }
    }

    /// Publishes only the first `len` bytes (panics if `len` exceeds the loan).
    ///
    /// On a pipe this writes the message, waiting as long as the reader needs; if every reader is gone, the
    /// message is dropped and the publisher reports `Closed` from then on.
    pub fn commit_len(self, len: usize) -> u64 {
        match self.0 {
            LoanKind::Shm(l) => l.commit_len(len),
            LoanKind::Pipe(l) => l.commit_len(len),
        }
    }
}
