//! The floor: a minimal framed single-producer single-consumer ring over shared memory, one per direction.
//!
//! Each ring is a header of two indices on their own cache lines (`head`: messages published, written by the
//! producer; `tail`: messages consumed, written by the consumer) followed by up to `SLOTS` fixed-size slots (fewer for large messages) of an 8-byte
//! length and the payload. Both sides busy-poll with cached copies of the other's index. No metadata, no gating
//! of several readers, no wake-ups: what shared memory costs at the least for framed messages.
//!
//! The memory is a file in `/dev/shm` (mode 0600, a name unique to the run) that only the harness and its own
//! peer map; it is reached through raw pointers and atomics only, never as a `&mut [u8]`.

use super::{Duplex, Params, Setup};
use crossbeam_utils::CachePadded;
use memmap2::MmapRaw;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots per ring at most (a power of two).
const SLOTS: u64 = 256;
/// Bytes of slots per ring at most: large messages get fewer slots (down to 2), not a huge file.
const SLOT_BYTES: usize = 16 << 20;
/// Bytes of the length prefix of a slot (8, so that the payload is 8-byte aligned for the copy).
const LEN: usize = 8;

/// The two indices at the start of a ring.
#[repr(C)]
struct Header {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
}

/// Bytes of one slot for messages of up to `size` bytes (whole cache lines).
fn stride(size: usize) -> usize {
    (LEN + size).div_ceil(64) * 64
}

/// Slots of one ring for messages of up to `size` bytes: a power of two, 2 to `SLOTS`.
fn slots(size: usize) -> u64 {
    let fit = (SLOT_BYTES / stride(size)).clamp(2, SLOTS as usize) as u64;
    1 << fit.ilog2()
}

/// Bytes of one ring.
fn ring_bytes(size: usize) -> usize {
    std::mem::size_of::<Header>() + slots(size) as usize * stride(size)
}

fn path(p: &Params) -> PathBuf {
    PathBuf::from(format!("/dev/shm/{}.ring", p.name))
}

/// One direction of the link, seen from one side (the side decides whether it sends or receives on it).
struct SpscRing {
    /// Start of the ring (its header) in the mapping.
    base: *mut u8,
    stride: usize,
    /// Slots (a power of two).
    slots: u64,
    /// This side's own index (head for the producer, tail for the consumer).
    mine: u64,
    /// The other side's index as last read.
    cached: u64,
}

impl SpscRing {
    /// The ring whose header starts at `base`.
    ///
    /// # Safety
    /// `base` must point to `ring_bytes(size)` bytes of a live shared mapping, 64-byte aligned, zeroed at
    /// creation, with one producer and one consumer for as long as the handle is used.
    unsafe fn new(base: *mut u8, size: usize) -> SpscRing {
        SpscRing { base, stride: stride(size), slots: slots(size), mine: 0, cached: 0 }
    }

    fn header(&self) -> &Header {
        // SAFETY: `base` points to a header of atomics inside the live mapping (the contract of `new`); atomics
        // may be shared with the other process.
        unsafe { &*(self.base as *const Header) }
    }

    fn slot(&self, index: u64) -> *mut u8 {
        let off = std::mem::size_of::<Header>() + (index % self.slots) as usize * self.stride;
        // SAFETY: `off + stride` is within the ring's `ring_bytes` (index is reduced modulo the slots).
        unsafe { self.base.add(off) }
    }

    /// Producer: copies `msg` into the next slot and publishes it, spinning while the ring is full.
    fn send(&mut self, msg: &[u8]) {
        assert!(msg.len() + LEN <= self.stride, "message larger than the ring's slots");
        while self.mine - self.cached == self.slots {
            // TAIL: pairs with the consumer's Release store; its reads of the slot happened before.
            self.cached = self.header().tail.load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        let slot = self.slot(self.mine);
        // SAFETY: slot `mine` is free (head - tail < slots) and owned by this producer until the head store
        // below; it holds `LEN + msg.len()` bytes (checked above); the source is a local slice.
        unsafe {
            slot.cast::<u64>().write_unaligned(msg.len() as u64);
            std::ptr::copy_nonoverlapping(msg.as_ptr(), slot.add(LEN), msg.len());
        }
        self.mine += 1;
        // HEAD: Release publishes the slot's bytes to the consumer's Acquire load.
        self.header().head.store(self.mine, Ordering::Release);
    }

    /// Consumer: copies the next message into `buf`, spinning while the ring is empty; returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        while self.cached == self.mine {
            // HEAD: pairs with the producer's Release store, so the slot's bytes are visible.
            self.cached = self.header().head.load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        let slot = self.slot(self.mine);
        // SAFETY: slot `mine` was published (tail < head) and the producer does not touch it until the tail
        // store below; the length is bounded by the slot and by `buf` before the copy.
        let len = unsafe {
            let len = (slot.cast::<u64>().read_unaligned() as usize).min(self.stride - LEN).min(buf.len());
            std::ptr::copy_nonoverlapping(slot.add(LEN), buf.as_mut_ptr(), len);
            len
        };
        self.mine += 1;
        // TAIL: Release hands the slot back after the reads above; pairs with the producer's Acquire load.
        self.header().tail.store(self.mine, Ordering::Release);
        len
    }
}

/// Both rings of one side and the mapping they live in.
struct RingLink {
    _map: MmapRaw,
    tx: SpscRing,
    rx: SpscRing,
    /// The file to unlink on drop (the harness side only).
    owned: Option<PathBuf>,
}

impl Drop for RingLink {
    fn drop(&mut self) {
        if let Some(p) = &self.owned {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Duplex for RingLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg);
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.rx.recv(buf))
    }
}

/// Maps the file at `path` (two rings: down, then up); `create` is the harness side, which sends down.
fn link(path: PathBuf, size: usize, create: bool) -> io::Result<RingLink> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).mode(0o600);
    if create {
        opts.create_new(true);
    }
    let file = opts.open(&path)?;
    let bytes = 2 * ring_bytes(size);
    if create {
        file.set_len(bytes as u64)?;
    } else if file.metadata()?.len() < bytes as u64 {
        return Err(io::Error::other("ring file too small"));
    }
    let map = MmapRaw::map_raw(&file)?;
    let base = map.as_mut_ptr();
    // SAFETY: the mapping is page-aligned, `bytes` long, zero-filled by ftruncate, and stays alive inside the
    // link; `ring_bytes` is a multiple of 64, so the second ring is aligned too; one side produces on each ring.
    let (down, up) = unsafe { (SpscRing::new(base, size), SpscRing::new(base.add(ring_bytes(size)), size)) };
    let (tx, rx, owned) = if create { (down, up, Some(path)) } else { (up, down, None) };
    Ok(RingLink { _map: map, tx, rx, owned })
}

/// The harness side is ready once the file exists.
struct RingSetup(RingLink);

impl Setup for RingSetup {
    fn configure(&mut self, _cmd: &mut Command) {}
    fn connect(self: Box<Self>, _peer: &mut Child) -> io::Result<Box<dyn Duplex>> {
        Ok(Box::new(self.0))
    }
}

pub(super) fn prepare(p: &Params) -> io::Result<Box<dyn Setup>> {
    Ok(Box::new(RingSetup(link(path(p), p.size, true)?)))
}

pub(super) fn open_peer(p: &Params) -> io::Result<Box<dyn Duplex>> {
    Ok(Box::new(link(path(p), p.size, false)?))
}

#[cfg(test)]
mod tests {
    use super::{ring_bytes, slots, SLOTS};

    #[test]
    fn large_messages_get_fewer_slots_not_a_huge_file() {
        assert_eq!(slots(64), SLOTS);
        assert_eq!(slots(1 << 20), 8);
        assert_eq!(slots(1 << 30), 2);
        assert!(ring_bytes(1 << 20) <= 17 << 20);
        assert!(slots(65536).is_power_of_two());
    }
}
