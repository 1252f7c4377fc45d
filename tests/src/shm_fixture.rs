//! A topic on real shared memory with a prefix no other test uses, removed again when the fixture is dropped
//! (also when the test panics).

use shmbus_ring::Geometry;
use shmbus_shm::{self as segment, FutexWaiter, Modes, Segment};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The topic name every fixture uses (prefixes keep fixtures apart).
pub const TOPIC: &str = "stress";

/// A freshly created topic, as the daemon would create it: the test process plays the daemon (it holds the
/// segment read-write and calls the recovery hooks), helper processes open the objects by name.
pub struct ShmFixture {
    /// The unique shm prefix (`[A-Za-z0-9_-]{1,32}`).
    pub prefix: String,
    /// The topic name.
    pub topic: String,
    /// The daemon-side segment.
    pub segment: Segment,
    /// The futex waiter (wake-up words in the readers object) the daemon side uses for wake-ups.
    pub waiter: Arc<FutexWaiter>,
    scratch: PathBuf,
    done: bool,
}

impl std::fmt::Debug for ShmFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmFixture").field("prefix", &self.prefix).field("topic", &self.topic).finish()
    }
}

/// A prefix no other fixture of this process uses; the process id keeps concurrent test processes apart.
pub fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("sbt{}x{n}", std::process::id())
}

/// Names in /dev/shm (objects, and any named semaphore, without the leading '/') that belong to topics under
/// `prefix`. Topics have no semaphores since layout 2; one showing up here is a leftover all the same.
pub fn leftovers(prefix: &str) -> Vec<String> {
    let mine = format!("{prefix}.");
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/dev/shm") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let bare = name.strip_prefix("sem.").unwrap_or(&name);
            if bare.starts_with(&mine) {
                v.push(name);
            }
        }
    }
    v.sort();
    v
}

impl ShmFixture {
    /// Creates the topic `geo` under a new unique prefix. A leftover of a dead process that had the same process
    /// id is removed first.
    pub fn new(geo: Geometry) -> ShmFixture {
        let prefix = unique_prefix();
        let create = || Segment::create(&prefix, TOPIC, &geo, 1, Modes::default());
        let segment = match create() {
            Ok(s) => s,
            Err(_) if !leftovers(&prefix).is_empty() => {
                segment::unlink_all(&prefix, TOPIC);
                create().unwrap_or_else(|e| panic!("create topic under {prefix}: {e}"))
            }
            Err(e) => panic!("create topic under {prefix}: {e}"),
        };
        let waiter = Arc::new(FutexWaiter::new(segment.topic.topic()));
        let scratch = std::env::temp_dir().join(format!("shmbus-tests-{prefix}"));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("create {}: {e}", scratch.display()));
        ShmFixture { prefix, topic: TOPIC.to_string(), segment, waiter, scratch, done: false }
    }

    /// The geometry of the topic.
    pub fn geometry(&self) -> Geometry {
        self.segment.topic.geometry()
    }

    /// A private scratch directory for this fixture (removed on drop).
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// Unlinks everything and asserts that nothing under the prefix is left in /dev/shm.
    pub fn finish(mut self) {
        self.cleanup();
        self.done = true;
        let left = leftovers(&self.prefix);
        assert!(left.is_empty(), "left behind in /dev/shm: {left:?}");
    }

    fn cleanup(&self) {
        segment::unlink_all(&self.prefix, &self.topic);
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Drop for ShmFixture {
    fn drop(&mut self) {
        if !self.done {
            self.cleanup();
        }
    }
}
