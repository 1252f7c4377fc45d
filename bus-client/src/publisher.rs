//! Publishing: [`Publisher`] and its builder, over shared memory or a pipe (through a [`Sink`]).

use crate::control::{Control, LeaseKind, LeaseSpec};
use crate::error::{OpenError, SendError};
use crate::lease;
use crate::loan::Loan;
use crate::pipe_io::inherit::Direction;
use crate::pipe_io::io::Wait;
use crate::pipe_io::PipeWriter;
use crate::sink::{ShmSink, Sink};
use crate::transport::{inherited_pipe, Routing, Transport};
use crate::wake::WakeFd;
use shmbus_proto::msg::{Role, TypeInfo};
use shmbus_ring::{IdleStrategy, PublisherOptions};
use std::os::fd::OwnedFd;
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
    open_timeout: Option<Duration>,
}

impl PublisherBuilder {
    pub(crate) fn new(control: Arc<Control>, routing: Arc<Routing>, topic: &str) -> PublisherBuilder {
        PublisherBuilder {
            control,
            routing,
            topic: topic.into(),
            idle: IdleStrategy::default(),
            payload_type: None,
            open_timeout: None,
        }
    }

    setters! {
        /// How [`Publisher::send`] waits while the topic is full (default [`IdleStrategy::Adaptive`]; on a pipe,
        /// waits always sleep in `poll`).
        idle(idle: IdleStrategy) => idle = idle;
        /// Registers a payload type with the daemon; a topic refuses handles of another type
        /// ([`OpenError::TypeMismatch`]). [`PublisherBuilder::open_typed`] sets it from the Rust type.
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
        /// match bus.publisher_builder("orders").open_timeout(Duration::from_millis(200)).open() {
        ///     Err(bus_client::OpenError::Timeout(why)) => eprintln!("the daemon is busy or stopped: {why}"),
        ///     r => drop(r?),
        /// }
        /// # Ok(()) }
        /// ```
        open_timeout(timeout: Duration) => open_timeout = Some(timeout);
    }

    /// Opens the publisher: on the pipe the parent handed over for this topic if there is one (see the
    /// [`pipe`](crate::pipe) module), else through the daemon.
    pub fn open(self) -> Result<Publisher, OpenError> {
        if let Some(t) = inherited_pipe(&self.routing, &self.topic, Direction::Write)? {
            return Publisher::from_pipe_as(&self.topic, vec![t.fd], t.id, t.live);
        }
        let spec = LeaseSpec {
            topic: self.topic,
            kind: LeaseKind::Publisher,
            payload_type: self.payload_type,
            open_timeout: self.open_timeout,
        };
        let a = lease::open(&self.control, spec)?;
        let Role::Publisher { slot } = a.role else { unreachable!("lease::open checks the role") };
        // The counter-extrapolated wall clock: a vDSO read per message cost as much as the rest of a send.
        shmbus_os::fast_clock::warm_up();
        let opts = PublisherOptions { idle: self.idle, clock: shmbus_os::fast_realtime_ns };
        let ring = shmbus_ring::Publisher::attach(&a.topic, slot as usize, a.waiter, opts)?;
        Ok(Publisher(Box::new(ShmSink::new(ring, a.lease)), None))
    }
}

/// A publisher on one topic. `Send` but neither `Sync` nor `Clone`: one thread at a time drives it, and it holds
/// one of the topic's publisher slots; for several publishing threads, open one each (see [`Bus::publisher`]
/// for the slot limit and an example).
///
/// Messages go straight into shared memory; the daemon is not involved after opening. Dropping the publisher
/// detaches it and gives its lease back without waiting for the daemon (a background thread sends the
/// `Close`, and any later request of this process comes after it). On the [pipe transport](crate::pipe), messages go into one pipe, or
/// into each of several (fan-out); dropping the publisher closes them.
///
/// [`Bus::publisher`]: crate::Bus::publisher
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = bus_client::Bus::connect()?;
/// let mut p = bus.publisher("orders")?;
/// let seq = p.send(b"hello")?;
/// println!("published as #{seq}");
/// # Ok(()) }
/// ```
pub struct Publisher(pub(crate) Box<dyn Sink>, pub(crate) Option<Box<WakeFd>>);

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::endpoint::debug_handle(f, "Publisher", &*self.0)
    }
}

impl Publisher {
    /// A publisher writing the pipes `outs` (fan-out when there are several).
    pub(crate) fn from_pipe(topic: &str, outs: Vec<OwnedFd>) -> Result<Publisher, OpenError> {
        Publisher::from_pipe_as(topic, outs, None, None)
    }

    /// A publisher writing the pipes `outs` with the writer id its pipe's owner handed out (`None`: a random
    /// one) and, on a shared pipe, the write end of its liveness pipe.
    pub(crate) fn from_pipe_as(
        topic: &str,
        outs: Vec<OwnedFd>,
        id: Option<u32>,
        live: Option<OwnedFd>,
    ) -> Result<Publisher, OpenError> {
        Ok(Publisher(Box::new(PipeWriter::new(topic, outs, id, live).map_err(OpenError::Io)?), None))
    }

    /// The pipe side, if this publisher runs on pipes.
    pub(crate) fn pipe_writer(&mut self) -> Option<&mut PipeWriter> {
        self.0.pipe_writer()
    }

    /// Publishes `msg`, waiting (per the idle strategy) while lossless subscribers hold the topic full. Returns
    /// the message's sequence number.
    ///
    /// On shared memory, a send that has waited a second logs (at warn level, at most once per 10 s per
    /// publisher) which lossless subscriber slot holds it back; `shmbus clients` maps the slot to a process.
    ///
    /// ```
    /// let (mut p, mut s) = bus_client::pipe::channel("doc")?;
    /// assert_eq!(p.send(b"first")?, 0);
    /// assert_eq!(p.send(b"second")?, 1);
    /// assert_eq!(s.recv()?.payload(), b"first");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.0.send(msg)
    }

    /// Publishes `msg` if there is room now, else [`SendError::Full`].
    ///
    /// On a pipe it never waits for the reader: a message of more than
    /// [`pipe::MAX_FRAME_PAYLOAD`](crate::pipe::MAX_FRAME_PAYLOAD) bytes goes only if all of it fits now, which
    /// means an empty pipe with a page per 4 KiB frame; a message longer than the pipe (64 KiB by default) is
    /// therefore always `Full` here (use `send` or `send_timeout`). If another writer of a shared pipe takes the
    /// room meanwhile, the message is abandoned part-way and `Full` returned: it counts as not sent, and the
    /// reader drops the fragments it got.
    ///
    /// ```
    /// let (mut p, _s) = bus_client::pipe::channel("doc")?;
    /// assert_eq!(p.try_send(&vec![0; 1 << 20]), Err(bus_client::SendError::Full));
    /// # Ok::<(), bus_client::OpenError>(())
    /// ```
    pub fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.0.try_send(msg)
    }

    /// Publishes `msg`, waiting at most `timeout` for room ([`SendError::Timeout`]).
    ///
    /// On a pipe the timeout bounds the whole message, every fragment of a long one: if the reader has not
    /// taken enough of it by then, the message is abandoned part-way and `Timeout` returned. It counts as not
    /// sent (the next message reuses its sequence number), and the reader drops the fragments it got when this
    /// publisher sends again or goes away (counted in
    /// [`Subscriber::pipe_abandoned`](crate::Subscriber::pipe_abandoned)).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError> {
        self.0.send_timeout(msg, timeout)
    }

    /// Publishes as many of `msgs` as fit now, in order, waking subscribers once; returns how many were sent (an
    /// error only if not even the first fit).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.0.try_send_batch(msgs)
    }

    /// Lends `len` bytes of shared memory to write a message in place, waiting for room like `send`.
    /// [`Loan::commit`] publishes it; dropping the loan aborts it: subscribers pass over it, nobody stalls, and
    /// its sequence number is skipped without being reported as loss (see [`Loan`]).
    ///
    /// On a pipe the loan is a buffer of this publisher, written like `send` on commit (once every pipe has
    /// room); an aborted loan skips its sequence number there too.
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
        self.0.loan(len, wait)
    }

    /// The topic's largest message in bytes ([`pipe::MAX_MESSAGE`](crate::pipe::MAX_MESSAGE) on pipes).
    pub fn max_message(&self) -> usize {
        self.0.max_message()
    }

    /// This publisher's id: the publisher slot every message it sends carries ([`Message::publisher`]). On a
    /// pipe, the writer id, handed out by the pipe's reader when the pipe was made ([`pipe::channel`],
    /// [`SharedPipe`](crate::pipe::SharedPipe), `PipeCommand::subscribe_from_child`): 1, 2, 3, ... and unique
    /// among all the writers that reader ever had, whatever their process ids. A publisher on a pipe with no
    /// known reader ([`pipe::publisher_from_fd`], `PipeCommand::publish_to_child`) has a random id of 2^31 or
    /// more.
    ///
    /// [`pipe::channel`]: crate::pipe::channel
    /// [`pipe::publisher_from_fd`]: crate::pipe::publisher_from_fd
    ///
    /// [`Message::publisher`]: crate::Message::publisher
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Fault injection for tests only: stops this shared-memory publisher inside a claim, right after the tail's
    /// compare-and-swap and before the entry's stamp, as a process killed there would (a multi-producer topic's
    /// vacancy, which the daemon settles once the holder is dead). The handle must then be leaked with its
    /// process, never used or dropped; the caller parks until it is killed. `Err(Closed)` on a pipe.
    #[doc(hidden)]
    pub fn vanish_after_claim_for_tests(&mut self) -> Result<u64, SendError> {
        match self.0.shm() {
            Some(a) => a.ring.vanish_in_place().map_err(SendError::from),
            None => Err(SendError::Closed),
        }
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        self.0.topic()
    }

    /// Messages published through this publisher's slot (on a pipe: by this publisher).
    pub fn published(&self) -> u64 {
        self.0.published()
    }

    /// Whether the handle is closed: the topic was deleted or recreated (on pipes: every reader is gone).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// The transport this publisher runs on.
    pub fn transport(&self) -> Transport {
        self.0.transport()
    }

    /// On a pipe, how many pipes this publisher writes to (more than one with fan-out; readers that are gone
    /// are no longer counted once a send noticed). `None` on shared memory.
    pub fn pipe_outputs(&self) -> Option<usize> {
        self.0.pipes()
    }
}
