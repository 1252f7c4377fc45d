//! Lock-free message rings over raw shared-memory regions: the data plane of shmbus.
//!
//! This crate does no I/O and makes no system calls: it lays out a topic's two shared objects, validates them
//! when attaching, and implements publishing, subscribing, consumer groups, recovery of dead clients and the
//! waiting protocol over them. The OS layer (`shmbus-os`) maps the objects and supplies the wake-ups (futex words in the readers object).
//!
//! # Guarantees
//!
//! * **One total order.** Every message gets a ring sequence number; every subscriber sees messages in that
//!   order, across all publishers.
//! * **Lossless by default.** A lossless subscriber (or consumer group) gates publishers: they never overwrite a
//!   message it has not released. `try_send` then returns [`SendError::Full`]; `send` waits.
//! * **Lossy, but never silently.** A lossy subscriber never slows publishers. When lapped it gets
//!   [`RecvError::Lagged`] with the exact number of positions passed over, then resumes at the oldest message
//!   still available. It never returns a torn message.
//! * **Consumer groups.** Each message goes to one member; a message held by a dead member is redelivered or
//!   counted abandoned ([`Admin::release_subscriber`]).
//! * **Dead clients never stall anyone.** A dead publisher's unfinished claim is cancelled into a counted skip
//!   marker ([`Admin::cancel_claims_of`]), and so is the entry it took without stamping if it died inside a
//!   multi-producer claim ([`Admin::settle_vacancies`]); a dead subscriber stops gating when its slot is released.
//! * **Untrusted memory.** Everything read from shared memory is validated before use: a garbage header is an
//!   [`AttachError`], a garbage entry a [`RecvError::Corrupted`], never an out-of-bounds access.
//! * **Memory follows bytes in flight**: a small index ring plus one payload region per publisher.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use shmbus_ring::{Geometry, Topic, Publisher, PublisherOptions, Subscriber, SubscriberOptions, PollWaiter};
//!
//! let topic = Topic::heap(&Geometry::new(64, 4096, 64 * 1024, 2, 4, 1), 0)?;
//! let waiter = Arc::new(PollWaiter);
//! let mut sub = Subscriber::attach(&topic, 0, SubscriberOptions::default(), waiter.clone(), &|_| false)?;
//! let mut publisher = Publisher::attach(&topic, 0, waiter, PublisherOptions::default())?;
//!
//! publisher.try_send(b"hello")?;
//! let msg = sub.try_recv()?;
//! assert_eq!(msg.payload(), b"hello");
//! assert_eq!(msg.publisher(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

mod admin;
#[cfg(all(target_arch = "x86_64", not(loom)))]
mod bulk;
mod error;
mod extents;
mod idle;
mod layout;
mod publisher;
mod recovery;
mod region;
#[doc(hidden)]
pub mod stamp;
mod stats;
mod subscriber;
mod sync;
mod topic;
pub mod wait;

pub use admin::Admin;
pub use error::{AttachError, RecvError, SendError};
pub use extents::Extents;
pub use idle::NotIdle;
/// Layout internals for the property tests and for the daemon's size sanity checks; not a stable API.
#[doc(hidden)]
pub use layout::{initialize, parse_header, read_header, Header, DATA_MAGIC, LINE, READERS_MAGIC};
pub use layout::{Geometry, LAYOUT_VERSION, MAX_CAPACITY, MAX_GROUPS, MAX_MESSAGE, MAX_PUBLISHERS, MAX_SUBSCRIBERS};
pub use publisher::{realtime_ns, Loan, Publisher, PublisherOptions};
pub use recovery::Released;
pub use region::{Backing, Region};
pub use stats::{GroupStats, PublisherStats, SubscriberStats, TopicStats};
pub use subscriber::{Message, Mode, Subscriber, SubscriberOptions};
pub use topic::{Topic, ATTACH_TIMEOUT};
pub use wait::{IdleStrategy, PollWaiter, Target, Waiter};
