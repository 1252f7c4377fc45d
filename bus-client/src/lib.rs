//! The shmbus client library: publish and subscribe through shared memory, with the daemon (`shmbusd`) only on
//! the control path, or through pipes between a parent and its children (the [`pipe`] transport), with the same
//! handles.
//!
//! # Guarantees
//!
//! * **One total order.** Every message of a topic gets a sequence number; every subscriber sees messages in
//!   that order, across all publishers. Each message carries its sequence, publisher id and publish timestamp.
//!   Sequence numbers increase but are not necessarily consecutive: an aborted [`Loan`] skips its number,
//!   unseen by subscribers and never reported as loss (loss is reported only as [`RecvError::Lagged`]).
//! * **Lossless by default.** A lossless subscriber (or consumer group) holds publishers back: they never
//!   overwrite what it has not read. [`Publisher::try_send`] then returns [`SendError::Full`]; [`Publisher::send`]
//!   waits (per its [`IdleStrategy`]); [`Publisher::send_timeout`] waits at most a bound.
//! * **Lossy, never silently.** A [lossy](SubscriberBuilder::lossy) subscriber never slows publishers; when it is
//!   lapped it gets [`RecvError::Lagged`] with the exact number of messages missed, then goes on (in a loop,
//!   [`RecvError::is_transient`] tells such reports from the end; see [`Subscriber::iter`]).
//! * **Consumer groups.** Subscribers naming the same [group](SubscriberBuilder::group) share the messages: each
//!   goes to one member.
//! * **No daemon on the data path.** Once a handle is open, messages flow through shared memory without system
//!   calls (except to wake sleepers). If the daemon stops or restarts, open handles keep working; a background
//!   thread reconnects with back-off (10 ms up to 1 s) and re-registers them. A handle whose topic was deleted or
//!   recreated meanwhile reports `Closed`.
//! * **Dead peers never stall anyone.** Every lease is tied to a lock the kernel drops when its holder dies.
//! * **Typed handles.** [`Bus::typed_publisher`] and [`Bus::typed_subscriber`] register their payload type; a
//!   topic refuses handles of another type ([`OpenError::TypeMismatch`]).
//! * **Fork-aware.** Handles are `Send` but not `Sync`. A handle inherited across `fork` returns
//!   [`SendError::Forked`] / [`RecvError::Forked`] in the child and, when dropped there, leaves the parent's lease
//!   alone: the child must open its own handles. An inherited [`Bus`] opens its own connection in the child, so
//!   `bus.publisher(..)` works there (or call [`Bus::connect`] again).
//! * **Pipes when shared memory is not an option.** [`pipe::PipeCommand`] spawns a child with pipes for its
//!   topics; in the child, [`Bus::connect`] finds them by topic name, so the same program runs under a daemon or
//!   under a parent with pipes. `SHMBUS_TRANSPORT=shm|pipe|auto` chooses; see [`pipe`] for what differs (one
//!   lossless reader per pipe, per-publisher sequence numbers).
//!
//! # Example
//!
//! Publishing and subscribing (needs a running daemon):
//!
//! ```no_run
//! use bus_client::{Bus, IdleStrategy};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Bus::connect()?;
//! let mut sub = bus.subscriber_builder("orders").from_oldest().open()?;
//! let mut publisher = bus.publisher_builder("orders").idle(IdleStrategy::Blocking).open()?;
//!
//! publisher.send(b"hello")?;
//! let msg = sub.recv()?;
//! assert_eq!(msg.payload(), b"hello");
//! println!("#{} from publisher {} at {} ns", msg.seq(), msg.publisher(), msg.timestamp());
//! # Ok(()) }
//! ```
//!
//! Typed values travel encoded with the bus codec, which works without a daemon:
//!
//! ```
//! use bus_client::{typed, RecvError, SendError};
//!
//! let bytes = typed::encode(&("order", 42u32))?;
//! let back: (String, u32) = typed::decode(&bytes)?;
//! assert_eq!(back, ("order".to_string(), 42));
//!
//! // Errors say what happened in a few lowercase words.
//! assert_eq!(SendError::Full.to_string(), "topic is full");
//! assert_eq!(RecvError::Lagged(3).to_string(), "lagged behind by 3 messages");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Waiting on several topics, and async
//!
//! [`Select`] waits on several subscribers at once (fairly; an [`Interrupter`] ends a wait from another thread);
//! each result comes with the index [`Select::add`] gave (here over pipes, which need no daemon):
//!
//! ```
//! use std::time::Duration;
//! let (mut orders_tx, mut orders) = bus_client::pipe::channel("orders")?;
//! let (_quotes_tx, mut quotes) = bus_client::pipe::channel("quotes")?;
//! orders_tx.send(b"order 1")?;
//! let mut sel = bus_client::Select::new();
//! let o = sel.add(&mut orders);
//! sel.add(&mut quotes);
//! let (i, m) = sel.recv_timeout(Duration::from_secs(1))?;
//! assert_eq!((i, m?.payload()), (o, &b"order 1"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `tokio` feature, `AsyncSubscriber` (`recv().await`, a `Stream` of owned messages) and
//! `AsyncPublisher` (`send().await` waits for room) wait in tokio's reactor; both are cancel-safe, and made inside a
//! runtime with its I/O driver (`#[tokio::main]`, or a `Builder` with `.enable_io()`). Needs a running daemon:
//!
#![cfg_attr(feature = "tokio", doc = "```no_run")]
#![cfg_attr(not(feature = "tokio"), doc = "```ignore")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
//! rt.block_on(async {
//!     let bus = bus_client::Bus::connect()?;
//!     let mut sub = bus_client::AsyncSubscriber::new(bus.subscriber("orders")?)?;
//!     let mut publisher = bus_client::AsyncPublisher::new(bus.publisher("orders")?)?;
//!     publisher.send(b"order 1").await?;
//!     while let Ok(m) = sub.recv().await {
//!         println!("#{}: {:?}", m.seq(), m.payload()); // until Err(Closed): the topic was deleted
//!     }
//!     Ok(())
//! })
//! # }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

// First, so that the modules below can use its macro.
#[macro_use]
mod setters;
mod shape;

#[cfg(feature = "tokio")]
mod asynch;
mod attached;
mod bus;
mod closer;
mod conn;
mod control;
mod endpoint;
mod error;
mod fork;
mod held;
mod iter;
mod keeper;
mod lease;
mod loan;
mod message;
pub mod pipe;
mod pipe_io;
mod publisher;
mod select;
mod sink;
mod source;
mod subscriber;
mod transport;
mod type_check;
pub mod typed;
mod typed_msg;
mod verify;
mod wait_fd;
mod wake;

/// Socket discovery and the checks behind it, for diagnostics such as `shmbus doctor`: which candidates exist,
/// which directories are unsafe (owned by another user, or writable by group or others), and whom a client trusts
/// as its daemon.
///
/// ```
/// use bus_client::discovery::{client_candidates, trusted_uids};
/// for c in client_candidates(&trusted_uids()) {
///     println!("{}: exists {}, problem {:?}", c.path.display(), c.exists, c.problem);
/// }
/// ```
pub mod discovery {
    pub use shmbus_proto::names::{client_candidates, client_socket, Candidate, ClientSocket, SOCKET_ENV};
    pub use shmbus_proto::trust::{
        daemon_user, dir_problem, ignored_env, own_uid, trusted_uids, DAEMON_USER_ENV, DEFAULT_DAEMON_USER,
        REDIRECTING_ENV,
    };
}

#[cfg(feature = "tokio")]
pub use asynch::{AsyncPublisher, AsyncSubscriber};
pub use bus::{Bus, BusBuilder, DEFAULT_REQUEST_TIMEOUT};
pub use control::CLOSE_TIMEOUT;
pub use error::{ConnectError, ControlError, OpenError, RecvError, SendError, WaitError};
pub use fork::generation as fork_generation;
pub use iter::{Iter, TryIter, TypedIter, TypedMessageIter};
pub use loan::Loan;
pub use message::{Message, OwnedMessage};
pub use publisher::{Publisher, PublisherBuilder};
pub use select::{Interrupter, Select, Selected};
pub use shmbus_proto::msg::{
    ClientWire, DaemonInfoWire, GeometryWire, GroupStatsWire, InvalidObject, PublisherStatsWire, SubscriberStatsWire,
    TopicInfo, TopicOrigin, TopicSpec, TopicStatsWire, TypeInfo,
};
pub use shmbus_proto::report::{ReportWire, TopicReport};
pub use shmbus_proto::text::printable;
pub use shmbus_ring::IdleStrategy;
pub use subscriber::{Subscriber, SubscriberBuilder};
pub use transport::{Transport, TRANSPORT_ENV};
pub use typed::{TypedPublisher, TypedSubscriber};
pub use typed_msg::TypedMessage;

/// `poll(2)` over descriptors such as [`Subscriber::wait_fd`]'s (re-exported from the OS layer).
pub mod poll {
    pub use shmbus_os::poll::{poll, PollFd, PollFlags};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_move_between_threads_and_the_bus_is_shared() {
        send::<Publisher>();
        send::<Subscriber>();
        send::<TypedPublisher<u32>>();
        send::<TypedSubscriber<String>>();
        send_sync::<Bus>();
    }
}
