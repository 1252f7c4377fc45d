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
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Bits of a writer id taken by the process id (Linux's `PID_MAX_LIMIT` is 2^22).
const PID_BITS: u32 = 22;
static NEXT_WRITER: AtomicU32 = AtomicU32::new(0);
static SIGPIPE: Once = Once::new();

/// A fresh writer id, unique among the live writers of a pipe: the process id in the low 22 bits, and in the
/// high 10 bits how many pipe publishers this process made before (mod 1024). A process's first publisher has
/// its pid as id.
fn writer_id() -> u32 {
    // Relaxed: a counter; only uniqueness matters.
    let n = NEXT_WRITER.fetch_add(1, Ordering::Relaxed) & ((1 << (32 - PID_BITS)) - 1);
    (std::process::id() & ((1 << PID_BITS) - 1)) | (n << PID_BITS)
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
    seq: u64,
    fork_gen: u64,
    /// Set when every reader is gone.
    closed: bool,
    loan_buf: Vec<u8>,
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
    /// A writer on the write ends `outs` (made non-blocking). Ignores `SIGPIPE` process-wide, once, so that a
    /// vanished reader is `EPIPE` (then [`SendError::Closed`]) rather than death.
    pub(crate) fn new(topic: &str, outs: Vec<OwnedFd>) -> io::Result<PipeWriter> {
        fork::install();
        SIGPIPE.call_once(shmbus_os::ignore_sigpipe);
        let mut w = PipeWriter {
            topic: topic.to_string(),
            outs: Vec::with_capacity(outs.len()),
            id: writer_id(),
            seq: 0,
            fork_gen: fork::generation(),
            closed: false,
            loan_buf: Vec::new(),
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

    /// Messages sent (the next sequence number).
    pub(crate) fn published(&self) -> u64 {
        self.seq
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
        let fragmented = msg.len() > MAX_FRAME_PAYLOAD;
        self.gate(wait, fragmented, false)?;
        let seq = self.seq;
        let timestamp = shmbus_os::realtime_ns();
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
        self.gate(wait, len > MAX_FRAME_PAYLOAD, true)?;
        let mut buf = std::mem::take(&mut self.loan_buf);
        buf.clear();
        buf.resize(len, 0);
        Ok(PipeLoan { writer: self, buf })
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
    /// * one output (unless `always`): only a fragmented `try_send` is checked here (the pipe must be empty);
    ///   otherwise the write itself tells;
    /// * several outputs: all must poll writable (and, for a fragmented `try_send`, be empty); outputs whose
    ///   reader is gone are dropped.
    fn gate(&mut self, wait: Wait, fragmented: bool, always: bool) -> Result<(), SendError> {
        let empty = |f: &File| shmbus_os::pipe::queued(f.as_fd()).map_or(true, |n| n == 0);
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

/// Writes every frame of one message to `out`. `wait` bounds only the first frame: after it, the others follow
/// whatever it takes, so a reader never holds half a message from a live writer.
fn write_message(out: &File, msg: &[u8], writer: u32, seq: u64, timestamp: u64, wait: Wait) -> Result<(), Stop> {
    for (h, chunk) in frame::frames(msg, writer, seq, timestamp) {
        let w = if h.first() { wait } else { Wait::Forever };
        write_frame(out, &h, chunk, w)?;
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

/// A pipe [`Loan`](crate::Loan): a buffer written as one message on commit.
pub(crate) struct PipeLoan<'a> {
    writer: &'a mut PipeWriter,
    buf: Vec<u8>,
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
        // Give the buffer back for the next loan.
        self.writer.loan_buf = std::mem::take(&mut self.buf);
    }
}
