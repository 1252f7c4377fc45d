//! The pipe transport: the same [`Publisher`] and [`Subscriber`] over pipes, for a parent and the children it
//! spawns, where shared memory is unavailable or unwanted (no writable `/dev/shm`, a sandbox, no daemon, a quick
//! parent/child pipeline).
//!
//! # What is the same, what differs
//!
//! Every operation works as on shared memory: `send`, `try_send`, `send_timeout`, `try_send_batch`, `loan`,
//! `send_value`, `recv`, `try_recv`, `recv_timeout`, `recv_value`, `iter`, typed handles, and the same errors
//! ([`SendError::Full`](crate::SendError::Full), `Timeout`, `TooLarge`, `Closed`, `Forked`, ...). Differences:
//!
//! * **Delivery.** A pipe has one reader, which gets every message, losslessly: writers wait for it (`send`), or
//!   get `Full` (`try_send`). There are no consumer groups, lossy readers or `Lagged`; a subscriber opened with
//!   those options on a pipe is served losslessly. A reader gets everything written into its pipe since the pipe
//!   was made, including what was sent before it opened its subscriber.
//! * **Order and metadata.** [`Message::seq`](crate::Message::seq) is the sequence number of the message among
//!   those of its writer (from 0), [`Message::publisher`](crate::Message::publisher) the writer's id
//!   ([`Publisher::id`]), and [`Message::timestamp`](crate::Message::timestamp) the writer's clock at sending.
//!   As on shared memory, an aborted [`Loan`](crate::Loan) skips its number (increasing, not necessarily
//!   consecutive; never reported as loss).
//!   Each writer's messages arrive in order; messages of different writers (several writers on one pipe, or one
//!   subscriber reading several pipes) interleave in no particular order, and `(publisher, seq)` identifies a
//!   message.
//! * **End.** When every writer of a pipe has closed it (dropped its publisher, or exited, or died), the
//!   subscriber reads what is left, then gets `Closed`. When the reader is gone, a publisher gets `Closed`
//!   (`EPIPE`; `SIGPIPE` is blocked in the writing thread for each send and the one a failed write raised is
//!   taken back, so it never kills the process, whatever the process's disposition for it). A publisher writing to several pipes drops those whose reader is gone and reports `Closed` when
//!   none is left.
//! * **Not checked:** payload types (a typed handle decodes, and a mismatch surfaces as `RecvError::Decode`), and
//!   who may publish or subscribe (whoever holds a pipe end may use it). The idle strategy does not apply: waits
//!   sleep in `poll(2)`.
//!
//! # Framing
//!
//! Each message is sent as frames of at most [`PIPE_BUF`] (4096) bytes: a 32-byte header (length, writer id,
//! sequence, timestamp, first/last flags; see `frame.rs`) and the payload. Writer ids are handed out by the
//! pipe's reader when the pipe is made (1, 2, 3, ...; never two alike for one reader, whatever the writers'
//! process ids or PID namespaces), or random at 2^31 and above for a writer on a pipe of unknown origin. A message of up to
//! [`MAX_FRAME_PAYLOAD`] bytes is one frame, written with one `writev`, which the kernel keeps atomic: several
//! writers can share one pipe without their messages interleaving. A longer message (up to [`MAX_MESSAGE`],
//! 64 MiB; beyond that `TooLarge`) is cut into `PIPE_BUF`-sized fragments tagged with the writer id, which the
//! reader reassembles per writer, so shared pipes carry large messages safely too.
//!
//! Descriptors are non-blocking; waiting is `poll(2)`. A frame write either writes everything or, when the pipe
//! is full (`EAGAIN`), nothing. `send` writes every fragment of a long message whatever it takes; `try_send`
//! sends a long message only if all of it fits now (an empty pipe with a page per frame; longer than the pipe:
//! always `Full`), and `send_timeout`'s timeout bounds every fragment. A message that cannot be finished in
//! time (`send_timeout`, or `try_send` racing another writer of a shared pipe) is abandoned part-way: `Full` or
//! `Timeout`, not sent. A reader never returns a torn message: an unfinished one (its writer gave up on it, or
//! died in the middle) is dropped, logged and counted by [`Subscriber::pipe_abandoned`], when its writer starts
//! another, when its pipe closes, or, for a [`SharedPipe`] writer, as soon as the writer is gone (each has a
//! liveness pipe whose hang-up the reader sees), while the pipe stays open for the others. A frame that does not
//! fit its writer's message drops that message (`Corrupted` once; the pipe and the other writers go on); only
//! an undecodable header ends a pipe. With
//! several pipes (fan-out), `try_send` sends only if every pipe has room, and a message that went into one pipe
//! goes into all. Interrupted calls (`EINTR`) are retried, short reads are buffered.
//!
//! # Children
//!
//! [`PipeCommand`] wraps a [`std::process::Command`]: [`publish_to_child`](PipeCommand::publish_to_child) and
//! [`subscribe_from_child`](PipeCommand::subscribe_from_child) make a pipe per topic, give this process its
//! handle, and pass the other end to the child, and only that end: every descriptor is made close-on-exec, and
//! the child's ends lose the flag only in the child, between `fork` and `exec`. The child finds them in
//! `SHMBUS_PIPES` (`topic=fd:r|w:inode`, see [`inherited`]). In the child, [`Bus::connect`](crate::Bus::connect)
//! claims them (once per process, making them close-on-exec again so they do not leak into grandchildren), and
//! `bus.publisher("topic")` / `bus.subscriber("topic")` use the pipe handed over for that topic. The same child
//! program therefore works under a daemon and under a parent with pipes.
//!
//! Fan-out (one publisher feeding several children) is [`PipeCommand::fan_out_to_child`]; fan-in (one
//! subscriber reading several children, a pipe each) is [`PipeCommand::fan_in_from_child`]; several children
//! writing into one pipe is [`SharedPipe`].
//!
//! # Choosing the transport
//!
//! `SHMBUS_TRANSPORT` (or [`BusBuilder::transport`](crate::BusBuilder::transport) and
//! [`BusBuilder::fallback_to_pipes`](crate::BusBuilder::fallback_to_pipes), which take precedence):
//!
//! | value | [`Bus::connect`](crate::Bus::connect) | a topic handed over in `SHMBUS_PIPES` | another topic | [`Bus::command`](crate::Bus::command) |
//! |---|---|---|---|---|
//! | unset | needs the daemon, unless pipes were inherited | pipe | daemon | shared memory |
//! | `shm` | needs the daemon | daemon (pipes ignored) | daemon | shared memory |
//! | `pipe` | never contacts the daemon | pipe | `NoSuchTopic` | pipes |
//! | `auto` | falls back to pipes without a daemon | pipe | daemon | shared memory, else pipes |
//!
//! With `auto`, a parent falls back to pipes when the daemon is unreachable at connect, or when opening a
//! handle through [`Bus::command`](crate::Bus::command) fails for want of shared memory (daemon gone, shared
//! memory exhausted or not mappable); this is logged once, at info level.
//!
//! ```
//! use bus_client::pipe;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A pipe inside one process (threads, or before handing ends to children yourself).
//! let (mut tx, mut rx) = pipe::channel("demo")?;
//! tx.send(b"small")?;
//! tx.send(&vec![7u8; 3 * pipe::PIPE_BUF])?; // fragmented and reassembled
//! assert_eq!(rx.recv()?.payload(), b"small");
//! assert_eq!(rx.recv()?.len(), 3 * pipe::PIPE_BUF);
//! drop(tx);
//! assert_eq!(rx.recv().unwrap_err(), bus_client::RecvError::Closed);
//! # Ok(()) }
//! ```
//!
//! [`Publisher`]: crate::Publisher
//! [`Publisher::id`]: crate::Publisher::id
//! [`Subscriber`]: crate::Subscriber
//! [`Subscriber::pipe_abandoned`]: crate::Subscriber::pipe_abandoned

mod command;

pub use crate::pipe_io::frame::{HEADER, MAX_FRAME_PAYLOAD, MAX_MESSAGE};
pub use crate::pipe_io::inherit::{inherited, Direction, InheritedPipe, PIPES_ENV};
pub use command::{PipeCommand, SharedPipe};

use crate::error::OpenError;
#[cfg(test)]
use crate::pipe_io::frame;
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;
use std::os::fd::OwnedFd;

/// The largest write the kernel keeps atomic on a pipe (`PIPE_BUF`, 4096 bytes on Linux): messages longer than
/// [`MAX_FRAME_PAYLOAD`] are sent as fragments of this size.
///
/// ```
/// assert_eq!(bus_client::pipe::PIPE_BUF, 4096);
/// assert!(bus_client::pipe::MAX_FRAME_PAYLOAD < bus_client::pipe::PIPE_BUF);
/// ```
pub const PIPE_BUF: usize = shmbus_os::PIPE_BUF;

/// A new pipe, `(read end, write end)`, both ends close-on-exec, for [`publisher_from_fd`] and
/// [`subscriber_from_fd`] (or to hand one end to a child yourself).
///
/// ```
/// let (read, write) = bus_client::pipe::os_pipe()?;
/// let mut rx = bus_client::pipe::subscriber_from_fd("mine", read)?;
/// let mut tx = bus_client::pipe::publisher_from_fd("mine", write)?;
/// tx.send(b"through my own pipe")?;
/// assert_eq!(rx.recv()?.payload(), b"through my own pipe");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn os_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let p = shmbus_os::pipe().map_err(crate::error::os_to_io)?;
    Ok((p.read, p.write))
}

/// A pipe inside this process: a publisher and the subscriber reading what it sends.
///
/// ```
/// let (mut tx, mut rx) = bus_client::pipe::channel("numbers")?;
/// std::thread::spawn(move || {
///     for i in 0u32..3 {
///         tx.send_value(&i).unwrap();
///     }
/// });
/// let got: Vec<u32> = (0..3).map(|_| rx.recv_value().unwrap()).collect();
/// assert_eq!(got, [0, 1, 2]);
/// # Ok::<(), bus_client::OpenError>(())
/// ```
pub fn channel(topic: &str) -> Result<(Publisher, Subscriber), OpenError> {
    shmbus_proto::names::validate_topic(topic).map_err(|e| OpenError::InvalidTopic(e.to_string()))?;
    let p = shmbus_os::pipe()?;
    let mut rx = subscriber_from_fd(topic, p.read)?;
    let id = rx.pipe_reader().expect("a pipe subscriber").roster().issue().map_err(OpenError::Io)?;
    Ok((Publisher::from_pipe_as(topic, vec![p.write], Some(id), None)?, rx))
}

/// A publisher writing into `fd`, the write end of a pipe or FIFO obtained some other way (the descriptor is
/// made non-blocking).
///
/// ```
/// let (read, write) = bus_client::pipe::os_pipe()?;
/// let mut tx = bus_client::pipe::publisher_from_fd("raw", write)?;
/// let mut rx = bus_client::pipe::subscriber_from_fd("raw", read)?;
/// tx.send(b"x")?;
/// assert_eq!(rx.recv()?.payload(), b"x");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn publisher_from_fd(topic: &str, fd: OwnedFd) -> Result<Publisher, OpenError> {
    Publisher::from_pipe(topic, vec![fd])
}

/// A subscriber reading `fd`, the read end of a pipe or FIFO obtained some other way (made non-blocking).
pub fn subscriber_from_fd(topic: &str, fd: OwnedFd) -> Result<Subscriber, OpenError> {
    Subscriber::from_pipe(topic, vec![fd])
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_frames;
#[cfg(test)]
mod tests_writers;
