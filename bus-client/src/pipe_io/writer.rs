//! The writing side of the pipe transport: one or several pipes (fan-out), frames of at most `PIPE_BUF` bytes,
//! each written with one `writev`.

use super::frame::{self, Header, HEADER, MAX_FRAME_PAYLOAD, MAX_MESSAGE};
use super::io::{poll, wait_for, Wait};
use crate::error::SendError;
use crate::fork;
use shmbus_os::{PollFd, PollFlags};
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// Writer ids at or above this are random (writers whose pipe has no known owner); those handed out by a
/// pipe's owner are below it.
pub(crate) const RANDOM_ID: u32 = 1 << 31;

/// An id for a writer whose pipe has no owner that hands ids out ([`crate::pipe::publisher_from_fd`], the
/// parent's end of [`PipeCommand::publish_to_child`](crate::pipe::PipeCommand::publish_to_child), whose reader
/// sees no other writer): 31 random bits above [`RANDOM_ID`], so it never equals an id an owner handed out.
fn random_id() -> u32 {
    RANDOM_ID | shmbus_os::pipe::random_u32()
}

/// Why writing to one pipe stopped.
enum Stop {
    /// Nothing was written: no room now.
    Full,
    /// Nothing was written: no room before the deadline.
    Timeout,
    /// The reader is gone (EPIPE) or the descriptor failed.
    Gone,
}

/// The pipe side of a [`Publisher`](crate::Publisher).
pub(crate) struct PipeWriter {
    topic: String,
    outs: Vec<File>,
    id: u32,
    /// The next sequence number (aborted loans skip theirs).
    seq: u64,
    /// Messages sent.
    sent: u64,
    fork_gen: u64,
    /// Set when every reader is gone.
    closed: bool,
    loan_buf: Vec<u8>,
    /// The write end of this writer's liveness pipe, when its pipe's owner gave it one (a [`SharedPipe`]
    /// writer): the reader sees it close when this writer is gone, and drops what it left unfinished.
    ///
    /// [`SharedPipe`]: crate::pipe::SharedPipe
    _live: Option<OwnedFd>,
    /// Outputs at the start of the current send (fewer at its end: a reader vanished, `EPIPE`).
    outputs_before_send: usize,
}

impl std::fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWriter")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .field("outputs", &self.outs.len())
            .finish()
    }
}

impl PipeWriter {
    /// A writer on the write ends `outs` (made non-blocking), with the id its pipe's owner handed out (`None`:
    /// a random one, see [`RANDOM_ID`]) and its liveness pipe if it has one. `SIGPIPE` is blocked in the writing
    /// thread around each send ([`shmbus_os::SigpipeBlocked`]), so a vanished reader is `EPIPE` (then
    /// [`SendError::Closed`]) whatever the process's disposition for the signal.
    pub(crate) fn new(
        topic: &str,
        outs: Vec<OwnedFd>,
        id: Option<u32>,
        live: Option<OwnedFd>,
    ) -> io::Result<PipeWriter> {
        fork::install();
        let mut w = PipeWriter {
            topic: topic.to_string(),
            outs: Vec::with_capacity(outs.len()),
            id: id.unwrap_or_else(random_id),
            seq: 0,
            sent: 0,
            fork_gen: fork::generation(),
            closed: false,
            loan_buf: Vec::new(),
            _live: live,
            outputs_before_send: 0,
        };
        for fd in outs {
            w.add_output(fd)?;
        }
        Ok(w)
    }

    /// One more pipe to write every message to (fan-out).
    pub(crate) fn add_output(&mut self, fd: OwnedFd) -> io::Result<()> {
        shmbus_os::set_nonblocking(fd.as_fd(), true).map_err(crate::error::os_to_io)?;
        self.outs.push(File::from(fd));
        self.closed = false;
        Ok(())
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Messages sent (the next sequence number, unless loans were aborted).
    pub(crate) fn published(&self) -> u64 {
        self.sent
    }

    pub(crate) fn max_message(&self) -> usize {
        MAX_MESSAGE
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed || self.outs.is_empty()
    }

    pub(crate) fn outputs(&self) -> usize {
        self.outs.len()
    }

    fn check(&self, len: usize) -> Result<(), SendError> {
        if fork::generation() != self.fork_gen {
            return Err(SendError::Forked);
        }
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        if len > MAX_MESSAGE {
            return Err(SendError::TooLarge { len, max: MAX_MESSAGE });
        }
        Ok(())
    }

    /// Sends `msg` to every output; see the module docs for what `wait` bounds.
    pub(crate) fn send(&mut self, msg: &[u8], wait: Wait) -> Result<u64, SendError> {
        self.check(msg.len())?;
        let mut sigpipe = shmbus_os::SigpipeBlocked::new();
        let r = self.send_blocked(msg, wait);
        if matches!(r, Err(SendError::Closed)) || self.outs.len() < self.outputs_before_send {
            sigpipe.epipe();
        }
        r
    }

    fn send_blocked(&mut self, msg: &[u8], wait: Wait) -> Result<u64, SendError> {
        self.outputs_before_send = self.outs.len();
        self.gate(wait, msg.len(), false)?;
        let seq = self.seq;
        let timestamp = shmbus_os::fast_realtime_ns();
        let mut delivered = 0;
        let mut i = 0;
        while i < self.outs.len() {
            // Once one reader has the message, every other one gets it too, however long that takes.
            let w = if delivered == 0 { wait } else { Wait::Forever };
            match write_message(&self.outs[i], msg, self.id, seq, timestamp, w) {
                Ok(()) => {
                    delivered += 1;
                    i += 1;
                }
                Err(Stop::Gone) => self.drop_output(i),
                Err(Stop::Full) => return Err(SendError::Full),
                Err(Stop::Timeout) => return Err(SendError::Timeout),
            }
        }
        if delivered == 0 {
            self.closed = true;
            return Err(SendError::Closed);
        }
        self.seq += 1;
        self.sent += 1;
        Ok(seq)
    }

    /// Sends as many of `msgs` as fit now.
    pub(crate) fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        for (i, m) in msgs.iter().enumerate() {
            match self.send(m, Wait::Now) {
                Ok(_) => {}
                Err(e) if i == 0 => return Err(e),
                Err(_) => return Ok(i),
            }
        }
        Ok(msgs.len())
    }

    /// A buffer of `len` bytes, written on commit, once every output has room (per `wait`).
    pub(crate) fn loan(&mut self, len: usize, wait: Wait) -> Result<PipeLoan<'_>, SendError> {
        self.check(len)?;
        // Unlike `send`, a loan cannot try the write first: check for room on every output.
        self.gate(wait, len, true)?;
        let mut buf = std::mem::take(&mut self.loan_buf);
        buf.clear();
        buf.resize(len, 0);
        Ok(PipeLoan { writer: self, buf, committed: false })
    }

    fn drop_output(&mut self, i: usize) {
        self.outs.remove(i);
        tracing::debug!(topic = %self.topic, left = self.outs.len(), "a pipe reader is gone");
        if self.outs.is_empty() {
            self.closed = true;
        }
    }

    /// Checks (`Now`) or waits (otherwise) until the outputs can take the message's first frame, so that a
    /// message is not sent to some outputs and then refused by another:
    /// * one output (unless `always`): only a fragmented `try_send` is checked here: the whole message must fit
    ///   now, which [`fits_now`] decides (an empty pipe with a page per frame); otherwise the write itself tells;
    /// * several outputs: all must poll writable (and, for a fragmented `try_send`, fit whole); outputs whose
    ///   reader is gone are dropped.
    fn gate(&mut self, wait: Wait, len: usize, always: bool) -> Result<(), SendError> {
        let fragmented = len > MAX_FRAME_PAYLOAD;
        let frames = frame::frame_count(len);
        let empty = |f: &File| fits_now(f, frames);
        if self.outs.len() == 1 && !always {
            if wait == Wait::Now && fragmented && !empty(&self.outs[0]) {
                return Err(SendError::Full);
            }
            return Ok(());
        }
        let mut pending: Vec<usize> = (0..self.outs.len()).collect();
        loop {
            let mut pfds: Vec<PollFd<'_>> =
                pending.iter().map(|&i| PollFd::new(self.outs[i].as_fd(), PollFlags::POLLOUT)).collect();
            // A deadline already passed still gets one look without waiting.
            let left = wait.poll_timeout();
            if let Err(e) = poll(&mut pfds, left.unwrap_or(Some(Duration::ZERO))) {
                tracing::debug!(error = %e, "poll on pipe writers failed; writing without waiting");
                return Ok(());
            }
            let mut gone = Vec::new();
            let mut still = Vec::new();
            for (k, &i) in pending.iter().enumerate() {
                let r = pfds[k].revents();
                if r.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL) {
                    gone.push(i);
                } else if !r.contains(PollFlags::POLLOUT) || (wait == Wait::Now && fragmented && !empty(&self.outs[i]))
                {
                    still.push(i);
                }
            }
            drop(pfds);
            for &i in gone.iter().rev() {
                self.drop_output(i);
                still.iter_mut().for_each(|j| *j -= usize::from(*j > i));
            }
            if self.outs.is_empty() {
                return Err(SendError::Closed);
            }
            if still.is_empty() {
                return Ok(());
            }
            match (wait, left) {
                (Wait::Now, _) => return Err(SendError::Full),
                (_, None) => return Err(SendError::Timeout),
                _ => pending = still,
            }
        }
    }
}

/// Whether a fragmented message of `frames` frames certainly fits into `out` now, without waiting for the
/// reader: the pipe is empty and has a page per frame (a frame is one `PIPE_BUF` write, which takes a page of its
/// own). Only an empty pipe gives that certainty: `FIONREAD` counts bytes, not the pages they occupy. A message
/// with more frames than the pipe has pages never fits (`try_send` refuses it; `send` waits for the reader).
fn fits_now(out: &File, frames: usize) -> bool {
    let fd = out.as_fd();
    let empty = shmbus_os::pipe::queued(fd).is_ok_and(|n| n == 0);
    let pages = shmbus_os::pipe::capacity(fd).map_or(0, |c| c / shmbus_os::PIPE_BUF);
    empty && frames <= pages
}

/// Writes every frame of one message to `out`, each frame waiting as `wait` allows (`Forever` for `send`). If a
/// later frame cannot go in time (`try_send` on a pipe another writer filled meanwhile, `send_timeout` with a
/// stalled reader), the message is abandoned where it stands: `Full`/`Timeout`, nothing more of it is written,
/// and the reader drops the fragments it got when this writer starts its next message or goes away (counted in
/// [`Subscriber::pipe_abandoned`](crate::Subscriber::pipe_abandoned)). A reader never gets a torn message.
fn write_message(out: &File, msg: &[u8], writer: u32, seq: u64, timestamp: u64, wait: Wait) -> Result<(), Stop> {
    for (h, chunk) in frame::frames(msg, writer, seq, timestamp) {
        match write_frame(out, &h, chunk, wait) {
            Ok(()) => {}
            Err(Stop::Full | Stop::Timeout) if !h.first() => {
                tracing::debug!(writer, seq, "a pipe message was abandoned part-way: no room in time");
                return Err(if wait == Wait::Now { Stop::Full } else { Stop::Timeout });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes one frame (header and payload, at most `PIPE_BUF` bytes) with one `writev`: all of it or, on a full
/// pipe (`EAGAIN`), nothing.
fn write_frame(out: &File, h: &Header, chunk: &[u8], wait: Wait) -> Result<(), Stop> {
    let hdr = h.encode();
    let total = HEADER + chunk.len();
    loop {
        match (&*out).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(chunk)]) {
            Ok(n) if n == total => return Ok(()),
            Ok(n) => {
                // Not done by Linux for pipe writes up to PIPE_BUF; finish the frame rather than tear it.
                let rest: Vec<u8> = hdr.iter().chain(chunk).copied().skip(n).collect();
                return write_rest(out, &rest);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match wait {
                Wait::Now => return Err(Stop::Full),
                w => match wait_for(out.as_fd(), PollFlags::POLLOUT, w) {
                    Ok(true) => {}
                    Ok(false) => return Err(Stop::Timeout),
                    Err(e) => return Err(gone(e)),
                },
            },
            Err(e) => return Err(gone(e)),
        }
    }
}

fn write_rest(out: &File, mut rest: &[u8]) -> Result<(), Stop> {
    while !rest.is_empty() {
        match (&*out).write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_for(out.as_fd(), PollFlags::POLLOUT, Wait::Forever).map_err(gone)?;
            }
            Err(e) => return Err(gone(e)),
        }
    }
    Ok(())
}

fn gone(e: io::Error) -> Stop {
    if e.kind() != io::ErrorKind::BrokenPipe {
        tracing::debug!(error = %e, "writing to a pipe failed; treating its reader as gone");
    }
    Stop::Gone
}

/// A pipe [`Loan`](crate::Loan): a buffer written as one message on commit. Its sequence number is taken when
/// it ends, committed or not: an aborted loan's number is skipped, as on shared memory, where the position is
/// claimed before the loan is written.
pub(crate) struct PipeLoan<'a> {
    writer: &'a mut PipeWriter,
    buf: Vec<u8>,
    committed: bool,
}

impl std::fmt::Debug for PipeLoan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeLoan").field("topic", &self.writer.topic).field("len", &self.buf.len()).finish()
    }
}

impl PipeLoan<'_> {
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn seq(&self) -> u64 {
        self.writer.seq
    }

    /// Writes the first `len` bytes as one message, waiting as long as it takes. If every reader is gone the
    /// message is dropped and the publisher reports `Closed` from then on.
    pub(crate) fn commit_len(mut self, len: usize) -> u64 {
        assert!(len <= self.buf.len(), "commit_len({len}) exceeds the loan of {} bytes", self.buf.len());
        let seq = self.writer.seq;
        self.committed = true;
        let buf = std::mem::take(&mut self.buf);
        if let Err(e) = self.writer.send(&buf[..len], Wait::Forever) {
            tracing::debug!(topic = %self.writer.topic, error = %e, "a committed pipe loan was not delivered");
            self.writer.seq += 1;
        }
        self.buf = buf;
        seq
    }
}

impl Drop for PipeLoan<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // Aborted: its number is skipped (subscribers see a gap, never a loss report), as on shared memory.
            self.writer.seq += 1;
        }
        // Give the buffer back for the next loan.
        self.writer.loan_buf = std::mem::take(&mut self.buf);
    }
}
