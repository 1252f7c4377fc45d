//! The physical floor of busy-polling latency: two processes bouncing one atomic word in a shared mapping.
//!
//! The word holds a round counter times two plus the side that wrote it last (1: the harness, 0: the peer).
//! The harness writes `2r + 1`, the peer waits for that odd value and writes `2r + 2`; the harness waits for it.
//! No payload crosses (latency only): the harness side hands the sequence stamp of the message it sent back as
//! the echo once the peer's answer to that round arrived (no copy of the payload is timed), so the figure is the same at every size. The word is in a file in
//! `/dev/shm` (mode 0600, a name unique to the run), on its own cache line, reached through an atomic only.

use super::{Duplex, Params, Setup};
use memmap2::MmapRaw;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};

fn path(p: &Params) -> PathBuf {
    PathBuf::from(format!("/dev/shm/{}.line", p.name))
}

/// One side of the bounce.
struct Line {
    _map: MmapRaw,
    word: *const AtomicU64,
    /// Which side this is.
    harness: bool,
    /// The harness: the answer it waits for (twice the round). The peer: the last odd value it answered.
    last: u64,
    /// The harness: the first bytes (the sequence stamp) of the message it sent, and its length.
    sent: ([u8; 8], usize),
    size: usize,
    /// The file to unlink on drop (the harness side only).
    owned: Option<PathBuf>,
}

impl Line {
    fn word(&self) -> &AtomicU64 {
        // SAFETY: `word` points to the first 8 bytes of the live, page-aligned mapping held in `_map`; the
        // word is only ever accessed atomically, by this process and its peer.
        unsafe { &*self.word }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Some(p) = &self.owned {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Duplex for Line {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.harness {
            // Round r is written as 2r - 1 (odd), answered as 2r.
            self.last += 2;
            self.sent = stamp_of(msg);
            // Release: pairs with the peer's Acquire load (nothing else to publish, but keeps the order).
            self.word().store(self.last - 1, Ordering::Release);
        } else {
            self.word().store(self.last + 1, Ordering::Release);
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.harness {
            let want = self.last;
            while self.word().load(Ordering::Acquire) != want {
                std::hint::spin_loop();
            }
            Ok(echo(self.sent, buf))
        } else {
            loop {
                let w = self.word().load(Ordering::Acquire);
                if w % 2 == 1 && w != self.last {
                    self.last = w;
                    return Ok(self.size);
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// The sequence stamp of `msg` (its first 8 bytes, as many as it has) and its length: all of a message the
/// floors keep, so that no copy of the payload is timed.
pub(super) fn stamp_of(msg: &[u8]) -> ([u8; 8], usize) {
    let mut s = [0; 8];
    let n = msg.len().min(8);
    s[..n].copy_from_slice(&msg[..n]);
    (s, msg.len())
}

/// Writes the kept stamp back into `buf` as the echo; returns the message's length (at most `buf`'s).
pub(super) fn echo((stamp, len): ([u8; 8], usize), buf: &mut [u8]) -> usize {
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&stamp[..n]);
    len.min(buf.len())
}

fn line(path: PathBuf, size: usize, create: bool) -> io::Result<Line> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).mode(0o600);
    if create {
        opts.create_new(true);
    }
    let file = opts.open(&path)?;
    if create {
        file.set_len(64)?;
    } else if file.metadata()?.len() < 64 {
        return Err(io::Error::other("cache-line file too small"));
    }
    let map = MmapRaw::map_raw(&file)?;
    let word = map.as_mut_ptr() as *const AtomicU64;
    // The word starts at 0: round 0 answered, nothing to answer yet.
    let last = 0;
    let owned = create.then_some(path);
    Ok(Line { _map: map, word, harness: create, last, sent: ([0; 8], 0), size, owned })
}

/// The harness side is ready once the file exists.
struct LineSetup(Line);

impl Setup for LineSetup {
    fn configure(&mut self, _cmd: &mut Command) {}
    fn connect(self: Box<Self>, _peer: &mut Child) -> io::Result<Box<dyn Duplex>> {
        Ok(Box::new(self.0))
    }
}

pub(super) fn prepare(p: &Params) -> io::Result<Box<dyn Setup>> {
    Ok(Box::new(LineSetup(line(path(p), p.size, true)?)))
}

pub(super) fn open_peer(p: &Params) -> io::Result<Box<dyn Duplex>> {
    Ok(Box::new(line(path(p), p.size, false)?))
}
