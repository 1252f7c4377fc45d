//! The reading side of the pipe transport: one or several pipes (fan-in), read in large chunks into a buffer per
//! pipe, parsed into frames, fragments reassembled per writer.
//!
//! What a bad frame costs: a header that does not decode (no magic, unknown version or flags, impossible length)
//! loses the frame boundaries of its pipe, which is then dropped (`Corrupted`, then the other pipes, or
//! `Closed`). A frame that decodes but does not fit the message its writer is sending (a fragment without its
//! start, of another message, or past its total) costs only that writer's message: it is dropped, counted in
//! [`PipeReader::abandoned`], reported once as `Corrupted`, and the rest of that message skipped; the pipe and
//! every other writer go on.
//!
//! A writer gone in the middle of a message: its unfinished message is dropped and counted when its pipe closes,
//! when it starts another message (a writer that gave up on one, see the writer), or, for a writer with a
//! liveness pipe (see [`Roster`]), once its liveness pipe hung up and its pipe was read to empty after that
//! (everything it wrote before dying has then been read).
//!
//! What a writer can make the reader hold (issue 16 item 13): a reassembly buffer grows as its fragments arrive,
//! never to the length a first fragment declares, and at most [`MAX_PARTIALS`] messages per pipe are reassembled
//! at once. A first fragment beyond that is dropped with the rest of its message and counted (the reader's
//! `refused`); the pipe and the messages already being reassembled go on.

use super::frame::{Header, HEADER, MAX_FRAME, MAX_MESSAGE};
use super::io::{poll, Wait};
use super::roster::Roster;
use crate::error::RecvError;
use crate::fork;
use shmbus_os::{PollFd, PollFlags};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

/// Bytes read from a pipe at once (a default pipe holds 64 KiB).
const READ_BUF: usize = 64 * 1024;
/// The largest reassembly buffer kept for reuse once its message is gone (larger ones are freed).
const KEEP: usize = 1 << 20;
/// Messages reassembled at once per pipe (one per writer in the middle of a fragmented message); a first
/// fragment beyond this is dropped with its message and counted, never a reason to stop reading the pipe.
pub(crate) const MAX_PARTIALS: usize = 64;

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
    /// Writers whose current message was dropped for a bad frame: their next fragments are skipped until their
    /// next first frame.
    skipping: HashSet<u32>,
}

/// A frame the reader could not use.
struct Bad {
    what: &'static str,
    /// The pipe's frame boundaries are lost: it cannot be read further.
    fatal: bool,
}

impl Bad {
    fn fatal(what: &'static str) -> Bad {
        Bad { what, fatal: true }
    }

    fn writer(what: &'static str) -> Bad {
        Bad { what, fatal: false }
    }
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
            skipping: HashSet::new(),
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
    fn parse(&mut self, pool: &mut Pool, topic: &str) -> Result<Option<Found>, Bad> {
        loop {
            if self.end - self.start < HEADER {
                return Ok(None);
            }
            let hdr: &[u8; HEADER] = self.buf[self.start..self.start + HEADER].try_into().expect("header length");
            let h = Header::decode(hdr).map_err(Bad::fatal)?;
            let len = h.len as usize;
            if self.end - self.start < HEADER + len {
                return Ok(None);
            }
            let payload = self.start + HEADER;
            self.start = payload + len;
            let meta = Meta { seq: h.seq, writer: h.writer, timestamp: h.timestamp };
            if h.first() {
                self.skipping.remove(&h.writer);
                if let Some(old) = self.partials.remove(&h.writer) {
                    abandoned(topic, h.writer, &old, "it started another one");
                    pool.drop_partial(old);
                }
                if h.last() {
                    return Ok(Some(Found::Buffered { start: payload, len, meta }));
                }
                let total = h.total as usize;
                if total > MAX_MESSAGE {
                    self.skip(h.writer, h.last());
                    pool.abandoned += 1;
                    return Err(Bad::writer("pipe message larger than the maximum message size"));
                }
                if self.partials.len() >= MAX_PARTIALS {
                    self.skip(h.writer, h.last());
                    pool.refused += 1;
                    if pool.refused.is_power_of_two() {
                        tracing::warn!(topic, refused = pool.refused, "too many unfinished pipe messages; one dropped");
                    }
                    continue;
                }
                // Grown as fragments arrive, never reserved at the declared total (issue 16 item 13).
                let mut buf = pool.take();
                buf.extend_from_slice(&self.buf[payload..payload + len]);
                self.partials.insert(h.writer, Partial { seq: h.seq, timestamp: h.timestamp, total, buf });
                continue;
            }
            if self.skipping.contains(&h.writer) {
                if h.last() {
                    self.skipping.remove(&h.writer);
                }
                continue;
            }
            let Some(p) = self.partials.get_mut(&h.writer) else {
                self.skip(h.writer, h.last());
                return Err(Bad::writer("pipe fragment without the start of its message"));
            };
            let problem = if p.seq != h.seq || p.total != h.total as usize {
                Some("pipe fragment of another message than the one being reassembled")
            } else if p.buf.len() + len > p.total || (h.last() && p.buf.len() + len != p.total) {
                Some("pipe fragments that do not add up to their message")
            } else {
                None
            };
            if let Some(what) = problem {
                let p = self.partials.remove(&h.writer).expect("present");
                abandoned(topic, h.writer, &p, what);
                pool.drop_partial(p);
                self.skip(h.writer, h.last());
                return Err(Bad::writer(what));
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

    /// Skips the rest of `writer`'s current message (after a bad frame that was not its last).
    fn skip(&mut self, writer: u32, last: bool) {
        if !last {
            self.skipping.insert(writer);
        }
    }

    /// Drops the unfinished messages of the `gone` writers (their pipe has just been read to empty).
    fn drop_gone(&mut self, gone: &HashSet<u32>, pool: &mut Pool, topic: &str) {
        for w in gone {
            if let Some(p) = self.partials.remove(w) {
                abandoned(topic, *w, &p, "it is gone");
                pool.drop_partial(p);
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
            pool.drop_partial(p);
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
    /// Messages dropped at their first fragment because [`MAX_PARTIALS`] were already being reassembled.
    refused: u64,
}

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        let mut b = std::mem::take(&mut self.spare);
        b.clear();
        b
    }

    /// Keeps `b` as the spare if it is the larger one, up to [`KEEP`] bytes: a buffer that held one huge
    /// message is freed, not kept for ever.
    fn recycle(&mut self, b: Vec<u8>) {
        if b.capacity() > self.spare.capacity() && b.capacity() <= KEEP {
            self.spare = b;
        }
    }

    /// A message dropped unfinished: counted, its buffer recycled.
    fn drop_partial(&mut self, p: Partial) {
        self.recycle(p.buf);
        self.abandoned += 1;
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
    /// Hands out the ids of this reader's writers and watches their liveness pipes.
    roster: Arc<Roster>,
    /// Writers seen gone whose pipe has not been read to empty since: their unfinished messages are dropped
    /// once it has.
    gone: HashSet<u32>,
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
            roster: Arc::default(),
            gone: HashSet::new(),
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

    /// The roster that hands out the ids of this reader's writers.
    pub(crate) fn roster(&self) -> &Arc<Roster> {
        &self.roster
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

    /// The one pipe this reader reads (readable when data or end-of-file is there); `None` on fan-in.
    pub(crate) fn only_input(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match &self.inputs[..] {
            [only] => Some(only.file.as_fd()),
            _ => None,
        }
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
        self.watch_writers();
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
                    Err(Bad { what, fatal: false }) => {
                        tracing::warn!(topic = %self.topic, problem = what, "bad pipe frame; its message is dropped");
                        return Err(RecvError::Corrupted(what));
                    }
                    Err(Bad { what, fatal: true }) => {
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
                    Ok(Fill::WouldBlock) => {
                        // Read to empty after the writers in `gone` were seen gone: all they wrote is read.
                        input.drop_gone(&self.gone, &mut self.pool, &self.topic);
                        break;
                    }
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
        let inputs = &self.inputs;
        self.gone.retain(|w| inputs.iter().any(|i| i.partials.contains_key(w)));
        Ok(None)
    }

    /// Notes the writers with an unfinished message whose liveness pipe hung up (one `poll`, only while such a
    /// message exists).
    fn watch_writers(&mut self) {
        if !self.roster.has_lives() {
            return;
        }
        let unfinished: Vec<u32> =
            self.inputs.iter().flat_map(|i| i.partials.keys().copied()).filter(|w| !self.gone.contains(w)).collect();
        if !unfinished.is_empty() {
            self.gone.extend(self.roster.gone(&unfinished));
        }
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

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
