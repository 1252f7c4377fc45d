//! A segment whose own descriptors the daemon closed (issue 13): the mappings keep working, a use reopens the
//! objects by name only when the names still lead to them, and a replaced, unlinked or truncated object is
//! reported, never opened in the topic's place.

use shmbus_os::{Access, ShmObject};
use shmbus_proto::names;
use shmbus_ring::Geometry;
use shmbus_shm::{unlink_all, Health, Modes, Segment, SegmentError};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A unique prefix whose objects are unlinked on drop (also when the test fails).
struct Prefix(String);

impl Prefix {
    fn new() -> Prefix {
        static N: AtomicUsize = AtomicUsize::new(0);
        Prefix(format!("shmfd{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        unlink_all(&self.0, "t");
    }
}

fn segment(p: &Prefix) -> Segment {
    Segment::create(&p.0, "t", &Geometry::new(64, 256, 64 * 1024, 4, 8, 2), 1, Modes::default()).expect("create")
}

fn size_of(fd: std::os::fd::OwnedFd) -> u64 {
    ShmObject::from_fd(fd, "lease").stat().unwrap().size
}

/// Puts a file of the same size and mode under `name` (another inode).
fn replace(name: &str) {
    let size = shmbus_os::stat_by_name(name).unwrap().unwrap().size;
    ShmObject::unlink(name).unwrap();
    let planted = ShmObject::create_exclusive(name, size, 0o600).unwrap();
    drop(planted);
}

#[test]
fn closed_descriptors_reopen_by_name_and_the_mappings_keep_working() {
    let p = Prefix::new();
    let seg = segment(&p);
    assert!(seg.fds_open());
    seg.close_fds().expect("close");
    assert!(!seg.fds_open());
    assert_eq!(seg.health(), Health::Intact, "checked by name while closed");
    assert!(seg.committed() > 0, "committed bytes read by name");
    assert_eq!(seg.topic.stats().subscribers.len(), 0, "the mappings need no descriptor");
    assert!(!seg.holder_alive(true, 0), "a probe reopens: nobody holds slot 0");
    assert!(seg.fds_open());
    seg.close_fds().unwrap();
    let (d, r) = seg.lease_fds(Access::ReadOnly).expect("lease descriptors after a reopening");
    let g = seg.topic.geometry();
    assert_eq!((size_of(d), size_of(r)), (g.data_len() as u64, g.readers_len() as u64));
    seg.close_fds().unwrap();
    assert!(seg.open_fds().unwrap(), "reopened");
    assert!(!seg.open_fds().unwrap(), "already open");
}

#[test]
fn a_replaced_object_is_never_reopened() {
    let p = Prefix::new();
    let seg = segment(&p);
    seg.close_fds().unwrap();
    let data = names::data_object(&p.0, "t");
    replace(&data);
    assert!(matches!(seg.health(), Health::Unreachable(ref why) if why.contains("replaced")), "{:?}", seg.health());
    let e = seg.open_fds().unwrap_err();
    assert!(matches!(e, SegmentError::Unreachable { ref why, .. } if why.contains("replaced by another file")), "{e}");
    assert!(seg.lease_fds(Access::ReadWrite).is_err(), "no descriptor of the planted file");
    assert!(seg.holder_alive(false, 0), "a probe that cannot be made counts as alive");
    // Closing unlinks only what is the topic's: the planted data object stays for the invalid-object handling.
    seg.close_and_unlink(&shmbus_ring::wait::PollWaiter);
    assert!(shmbus_os::stat_by_name(&data).unwrap().is_some());
    assert_eq!(shmbus_os::stat_by_name(&names::readers_object(&p.0, "t")).unwrap(), None);
}

#[test]
fn open_descriptors_are_kept_when_the_names_were_replaced() {
    let p = Prefix::new();
    let seg = segment(&p);
    replace(&names::readers_object(&p.0, "t"));
    let why = seg.close_fds().unwrap_err();
    assert!(why.contains("replaced by another file"), "{why}");
    assert!(seg.fds_open(), "kept: the topic could not be reopened");
    assert_eq!(seg.health(), Health::Intact, "checked by descriptor while open");
    let (_, r) = seg.lease_fds(Access::ReadOnly).unwrap();
    assert_eq!(size_of(r), seg.topic.geometry().readers_len() as u64, "the topic's own object");
}

#[test]
fn a_truncated_or_unlinked_object_of_a_closed_topic_is_reported() {
    let p = Prefix::new();
    let seg = segment(&p);
    seg.close_fds().unwrap();
    let readers = names::readers_object(&p.0, "t");
    let f = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm{readers}")).unwrap();
    f.set_len(4096).unwrap();
    assert_eq!(seg.health(), Health::Truncated);
    let e = seg.open_fds().unwrap_err();
    assert!(matches!(e, SegmentError::Unreachable { ref why, .. } if why.contains("truncated")), "{e}");
    ShmObject::unlink(&names::data_object(&p.0, "t")).unwrap();
    assert!(matches!(seg.health(), Health::Unreachable(ref why) if why.contains("unlinked")), "{:?}", seg.health());
}
