//! The shmbus control protocol, shared by the daemon and its clients.
//!
//! * [`msg`]: versioned request and response enums (serde), the first exchange being a [`Request::Hello`]
//!   handshake that refuses mismatched versions with [`ErrorKind::VersionMismatch`];
//! * [`frame`]: length-prefixed frames with a size limit; a malformed or oversized frame is an error for that
//!   connection only;
//! * [`codec`]: the one place that knows the wire codec (bincode 2.0.1), so it can be swapped;
//! * [`names`]: topic-name rules, shared-memory object and semaphore names, and control-socket discovery (one
//!   function used by both sides, so they can never miss each other);
//! * [`trust`]: whom a client accepts as its daemon, and which socket directories are safe to use.
//!
//! # Example
//!
//! ```
//! use shmbus_proto::{frame, msg::{Request, PROTOCOL_VERSION}};
//!
//! let hello = Request::Hello { protocol: PROTOCOL_VERSION, layout: 1, client: "example".into() };
//! let bytes = frame::encode(&hello)?;
//! let mut reader = frame::FrameReader::new();
//! reader.push(&bytes);
//! let back: Request = reader.next_frame()?.expect("one whole frame");
//! assert_eq!(back, hello);
//! # Ok::<(), shmbus_proto::ProtoError>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

pub mod codec;
pub mod frame;
pub mod msg;
pub mod names;
pub mod report;
pub mod text;
pub mod trust;

pub use codec::ProtoError;
pub use msg::{ErrorKind, Request, Response, PROTOCOL_VERSION};
