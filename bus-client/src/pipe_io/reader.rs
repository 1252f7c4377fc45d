//! The reading side of the pipe transport: one or several pipes (fan-in), read in large chunks into a buffer per
//! pipe, parsed into frames, fragments reassembled per writer.

use super::frame::{Header, HEADER, MAX_FRAME, MAX_MESSAGE};
use super::io::{poll, Wait};
use crate::error::RecvError;
use crate::fork;
use shmbus_os::{PollFd, PollFlags};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};

/// Bytes read from a pipe at once (a default pipe holds 64 KiB).
const READ_BUF: usize = 64 * 1024;

/// Metadata of a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) seq: u64,
    pub(crate) writer: u32,
    pub(crate) timestamp: u64,
}

/// A received message, viewing the reader's buffers.
#[derive(Debug)]
pub(crate) struct PipeMessage<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) meta: Meta,
}

/// A message being reassembled.
struct Partial {
    seq: u64,
    timestamp: u64,
    total: usize,
    buf: Vec<u8>,
}

/// Where a parsed message is.
enum Found {
    /// In the input's read buffer.
    Buffered { start: usize, len: usize, meta: Meta },
    /// In the reader's `assembled` buffer.
    Assembled(Meta),
}

/// One pipe being read.
struct Input {
    file: File,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    partials: HashMap<u32, Partial>,
}

enum Fill {
    Bytes,
    WouldBlock,
    Eof,
}

impl Input {
    fn new(fd: OwnedFd) -> io::Result<Input> {
        shmbus_os::set_nonblocking(fd.as_fd(), true).map_err(crate::error::os_to_io)?;
        Ok(Input {
            file: File::from(fd),
            buf: vec![0; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            partials: HashMap::new(),
        })
    }

    /// Reads what the pipe has, after making room for at least one whole frame.
    fn fill(&mut self) -> io::Result<Fill> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.buf.len() - self.end < MAX_FRAME {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        loop {
            match (&self.file).read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => {
                    self.end += n;
                    return Ok(Fill::Bytes);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Fill::WouldBlock),
                Err(e) => return Err(e),
            }
        }
    }

    /// Parses the next complete message out of the buffered bytes (`None`: more bytes are needed).
    fn parse(&mut self, pool: &mut Pool, topic: &str) -> Result<Option<Found>, &'static str> {
        loop {
            if self.end - self.start < HEADER {
                return Ok(None);
            }
            let hdr: &[u8; HEADER] = self.buf[self.start..self.start + HEADER].try_into().expect("header length");
            let h = Header::decode(hdr)?;
            let len = h.len as usize;
            if self.end - self.start < HEADER + len {
                return Ok(None);
            }
            let payload = self.start + HEADER;
            self.start = payload + len;
            let meta = Meta { seq: h.seq, writer: h.writer, timestamp: h.timestamp };
            if h.first() {
                if let Some(old) = self.partials.remove(&h.writer) {
                    abandoned(topic, h.writer, &old, "it started another one");
                    pool.recycle(old.buf);
                    pool.abandoned += 1;
                }
                if h.last() {
                    return Ok(Some(Found::Buffered { start: payload, len, meta }));
                }
                let total = h.total as usize;
                if total > MAX_MESSAGE {
                    return Err("pipe message larger than the maximum message size");
                }
                let mut buf = pool.take();
                buf.reserve(total);
                buf.extend_from_slice(&self.buf[payload..payload + len]);
                self.partials.insert(h.writer, Partial { seq: h.seq, timestamp: h.timestamp, total, buf });
                continue;
            }
            let Some(p) = self.partials.get_mut(&h.writer) else {
                return Err("pipe fragment without the start of its message");
            };
            if p.seq != h.seq || p.total != h.total as usize {
                return Err("pipe fragment of another message than the one being reassembled");
            }
            if p.buf.len() + len > p.total || (h.last() && p.buf.len() + len != p.total) {
                return Err("pipe fragments that do not add up to their message");
            }
            p.buf.extend_from_slice(&self.buf[payload..payload + len]);
            if h.last() {
                let p = self.partials.remove(&h.writer).expect("present");
                let meta = Meta { seq: p.seq, writer: h.writer, timestamp: p.timestamp };
                pool.finish(p.buf);
                return Ok(Some(Found::Assembled(meta)));
            }
        }
    }

    /// Reports what a closed pipe leaves behind: messages whose writer died before finishing them.
    fn finish(&mut self, pool: &mut Pool, topic: &str) {
        if self.start != self.end {
            tracing::warn!(topic, bytes = self.end - self.start, "a pipe closed in the middle of a frame");
        }
        for (writer, p) in self.partials.drain() {
            abandoned(topic, writer, &p, "its pipe closed");
            pool.recycle(p.buf);
            pool.abandoned += 1;
        }
    }
}

fn abandoned(topic: &str, writer: u32, p: &Partial, why: &str) {
    tracing::warn!(
        topic,
        writer,
        seq = p.seq,
        received = p.buf.len(),
        total = p.total,
        "a writer left a message unfinished ({why}); it is dropped"
    );
}

/// Reassembly buffers, reused (the last assembled message, and a spare), and the count of messages dropped
/// unfinished.
#[derive(Default)]
struct Pool {
    assembled: Vec<u8>,
    spare: Vec<u8>,
    abandoned: u64,
}

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        let mut b = std::mem::take(&mut self.spare);
        b.clear();
        b
    }

    fn recycle(&mut self, b: Vec<u8>) {
        if b.capacity() > self.spare.capacity() {
            self.spare = b;
        }
    }

    fn finish(&mut self, b: Vec<u8>) {
        let old = std::mem::replace(&mut self.assembled, b);
        self.recycle(old);
    }
}

/// The pipe side of a [`Subscriber`](crate::Subscriber).
pub(crate) struct PipeReader {
    topic: String,
    inputs: Vec<Input>,
    /// The input to look at first (round robin, so that no pipe starves the others).
    next: usize,
    fork_gen: u64,
    pool: Pool,
    received: u64,
}

impl std::fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeReader").field("topic", &self.topic).field("inputs", &self.inputs.len()).finish()
    }
}

impl PipeReader {
    /// A reader of the read ends `ins` (made non-blocking).
    pub(crate) fn new(topic: &str, ins: Vec<OwnedFd>) -> io::Result<PipeReader> {
        fork::install();
        let mut r = PipeReader {
            topic: topic.to_string(),
            inputs: Vec::with_capacity(ins.len()),
            next: 0,
            fork_gen: fork::generation(),
            pool: Pool::default(),
            received: 0,
        };
        for fd in ins {
            r.add_input(fd)?;
        }
        Ok(r)
    }

    /// One more pipe to read (fan-in).
    pub(crate) fn add_input(&mut self, fd: OwnedFd) -> io::Result<()> {
        self.inputs.push(Input::new(fd)?);
        Ok(())
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// Messages received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Messages dropped because their writer never finished them (it died mid-message).
    pub(crate) fn abandoned(&self) -> u64 {
        self.pool.abandoned
    }

    /// Whether every pipe is closed and drained.
    pub(crate) fn is_closed(&self) -> bool {
        self.inputs.is_empty()
    }

    pub(crate) fn inputs(&self) -> usize {
        self.inputs.len()
    }

    /// The next message, waiting as `wait` allows.
    pub(crate) fn recv(&mut self, wait: Wait) -> Result<PipeMessage<'_>, RecvError> {
        if fork::generation() != self.fork_gen {
            return Err(RecvError::Forked);
        }
        let (input, found) = loop {
            if let Some(f) = self.scan()? {
                break f;
            }
            if self.inputs.is_empty() {
                return Err(RecvError::Closed);
            }
            self.wait_readable(wait)?;
        };
        self.received += 1;
        Ok(match found {
            Found::Buffered { start, len, meta } => {
                PipeMessage { payload: &self.inputs[input].buf[start..start + len], meta }
            }
            Found::Assembled(meta) => PipeMessage { payload: &self.pool.assembled, meta },
        })
    }

    /// One pass over the inputs without waiting: parses what is buffered, reads what the pipes have. Inputs
    /// closed and drained are dropped at the end of a pass that found nothing.
    fn scan(&mut self) -> Result<Option<(usize, Found)>, RecvError> {
        let n = self.inputs.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let input = &mut self.inputs[i];
            loop {
                match input.parse(&mut self.pool, &self.topic) {
                    Ok(Some(found)) => {
                        self.next = (i + 1) % n;
                        return Ok(Some((i, found)));
                    }
                    Ok(None) => {}
                    Err(what) => {
                        tracing::warn!(topic = %self.topic, problem = what, "corrupted pipe; no longer reading it");
                        self.inputs.remove(i).finish(&mut self.pool, &self.topic);
                        self.next = 0;
                        return Err(RecvError::Corrupted(what));
                    }
                }
                if input.eof {
                    break;
                }
                match input.fill() {
                    Ok(Fill::Bytes) => {}
                    Ok(Fill::WouldBlock) => break,
                    Ok(Fill::Eof) => input.eof = true,
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, "reading a pipe failed; treating it as closed");
                        input.eof = true;
                    }
                }
            }
        }
        let before = self.inputs.len();
        let mut i = 0;
        while i < self.inputs.len() {
            if self.inputs[i].eof {
                self.inputs.remove(i).finish(&mut self.pool, &self.topic);
            } else {
                i += 1;
            }
        }
        if self.inputs.len() != before {
            self.next = 0;
        }
        Ok(None)
    }

    fn wait_readable(&mut self, wait: Wait) -> Result<(), RecvError> {
        if wait == Wait::Now {
            return Err(RecvError::Empty);
        }
        let Some(timeout) = wait.poll_timeout() else { return Err(RecvError::Timeout) };
        let mut pfds: Vec<PollFd<'_>> =
            self.inputs.iter().map(|i| PollFd::new(i.file.as_fd(), PollFlags::POLLIN)).collect();
        if let Err(e) = poll(&mut pfds, timeout) {
            // Only EINVAL/ENOMEM are possible here; back off instead of spinning.
            tracing::debug!(error = %e, "poll on pipe readers failed");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }
}
