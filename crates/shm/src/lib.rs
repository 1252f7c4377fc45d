//! Binds a shmbus ring ([`shmbus_ring`]) to the OS objects that hold it ([`shmbus_os`]), in one place for both
//! sides of a lease: the daemon that creates and owns a topic's objects ([`Segment`]) and the clients that map the
//! descriptors it hands them ([`map_topic`]).
//!
//! What lives here, and nowhere else:
//!
//! * mapping a topic's two objects (data and readers) and validating them ([`map_topic`], [`Segment`]);
//! * the [`FutexWaiter`]: blocking waits on one futex word per slot in the readers object, and the `membarrier`
//!   set-up that makes the publish path's light barrier cheap ([`init_barrier`]);
//! * creating, adopting and unlinking a topic's objects ([`Segment::create`], [`Segment::adopt`], [`unlink_all`]);
//! * the geometry's wire conversion ([`geometry_to_wire`], [`geometry_from_wire`]);
//! * the lease-holder liveness probe ([`holder_alive`]).
//!
//! # Example
//!
//! A geometry survives the trip through the control protocol, and a bad one is refused on the way back:
//!
//! ```
//! use shmbus_ring::Geometry;
//! use shmbus_shm::{geometry_from_wire, geometry_to_wire};
//!
//! let geo = Geometry::new(64, 256, 64 * 1024, 4, 8, 2);
//! geo.validate()?;
//! let wire = geometry_to_wire(&geo);
//! assert_eq!(geometry_from_wire(&wire)?, geo);
//!
//! let mut bad = wire.clone();
//! bad.capacity = 3; // not a power of two
//! assert!(geometry_from_wire(&bad).is_err());
//! # Ok::<(), shmbus_ring::AttachError>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

mod geometry;
mod liveness;
mod map;
mod objects;
mod segment;
mod waiter;

pub use geometry::{geometry_from_wire, geometry_to_wire};
pub use liveness::holder_alive;
pub use map::{map_topic, MapError};
pub use segment::{unlink_all, Health, Modes, ReturnRefused, Segment, SegmentError};
pub use waiter::{init_barrier, FutexWaiter};
