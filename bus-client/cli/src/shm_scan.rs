//! What a prefix has in /dev/shm, and what uses it: the topics' objects (`PREFIX.TOPIC.data`, `.readers`), stray
//! semaphores (`sem.PREFIX.*`), the daemon's dot files (`.PREFIX.lock`, `.key`, `.leases`, `.topics`), which
//! processes map each (`/proc/*/maps`), and which process holds the prefix lock (`/proc/locks`). Shared by
//! `shmbus doctor` and `shmbus cleanup`.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The directory of POSIX shared memory.
pub const SHM_DIR: &str = "/dev/shm";

/// What an entry under a prefix is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A topic's data or readers object.
    Object {
        /// The topic.
        topic: String,
    },
    /// A named semaphore (topics have none since layout 2: a leftover).
    Semaphore,
    /// One of the daemon's dot files (`.PREFIX.lock`, `.key`, `.leases`, `.topics`).
    DaemonFile,
}

/// One file of a prefix in /dev/shm.
#[derive(Clone, Debug)]
pub struct Entry {
    /// File name in /dev/shm.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// Owner.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Last modification.
    pub modified: Option<SystemTime>,
}

impl Entry {
    /// Its path.
    pub fn path(&self) -> PathBuf {
        Path::new(SHM_DIR).join(&self.name)
    }
}

/// The files of `prefix` in /dev/shm, by name.
pub fn entries(prefix: &str) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(SHM_DIR)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else { continue };
        let Some(kind) = kind_of(prefix, &name) else { continue };
        let Ok(m) = e.metadata() else { continue };
        if !m.is_file() {
            continue;
        }
        out.push(Entry { name, kind, uid: m.uid(), mode: m.mode() & 0o7777, modified: m.modified().ok() });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn kind_of(prefix: &str, name: &str) -> Option<Kind> {
    if let Some(rest) = name.strip_prefix('.') {
        return rest.strip_prefix(prefix)?.strip_prefix('.').map(|_| Kind::DaemonFile);
    }
    if let Some(rest) = name.strip_prefix("sem.") {
        return rest.strip_prefix(prefix)?.strip_prefix('.').map(|_| Kind::Semaphore);
    }
    let (topic, _) = shmbus_proto::names::parse_object(prefix, &format!("/{name}"))?;
    Some(Kind::Object { topic })
}

/// Which processes map files of /dev/shm, from `/proc/*/maps`.
#[derive(Debug, Default)]
pub struct Mappers {
    /// File name in /dev/shm → pids mapping it.
    pub by_name: HashMap<String, Vec<i32>>,
    /// Processes whose maps could not be read (another user's, without privilege): what they map is unknown.
    pub unreadable: usize,
}

impl Mappers {
    /// Reads every process's maps.
    pub fn scan() -> Mappers {
        let mut m = Mappers::default();
        let Ok(procs) = std::fs::read_dir("/proc") else { return m };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            match std::fs::read_to_string(p.path().join("maps")) {
                Ok(text) => {
                    let mut seen = HashSet::new();
                    for line in text.lines() {
                        // address perms offset dev inode path (the path may end in " (deleted)")
                        let Some(path) = line.split_whitespace().nth(5) else { continue };
                        if let Some(name) = path.strip_prefix("/dev/shm/") {
                            if seen.insert(name.to_string()) {
                                m.by_name.entry(name.to_string()).or_default().push(pid);
                            }
                        }
                    }
                }
                // A process that exited meanwhile maps nothing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => m.unreadable += 1,
            }
        }
        m
    }

    /// The pids that map `name`.
    pub fn of(&self, name: &str) -> &[i32] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Files of /dev/shm someone holds a lock on (`flock`, POSIX or OFD: a client holds an OFD byte lock on its
/// topic's readers object for each lease), as `/proc/locks` names them: `major:minor:inode` in hex:hex:decimal.
pub fn locked_inodes() -> HashSet<String> {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else { return HashSet::new() };
    locks.lines().filter_map(|l| l.split_whitespace().filter(|w| *w != "->").nth(5).map(str::to_string)).collect()
}

/// The `/proc/locks` name of the file at `path` (see [`locked_inodes`]).
pub fn lock_key(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let (major, minor) = (nix::sys::stat::major(m.dev()), nix::sys::stat::minor(m.dev()));
    Some(format!("{major:02x}:{minor:02x}:{}", m.ino()))
}

/// The pid holding the prefix lock (`/dev/shm/.PREFIX.lock`, an exclusive `flock` the daemon holds for its life),
/// from `/proc/locks`; `None` when the file is missing or nobody holds it.
pub fn lock_holder(prefix: &str) -> Option<i32> {
    let want = lock_key(&Path::new(SHM_DIR).join(format!(".{prefix}.lock")))?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:8683766 0 EOF" (a blocked waiter's line has "->" after the id)
        let f: Vec<&str> = l.split_whitespace().filter(|w| *w != "->").collect();
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str())).then(|| f[4].parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_a_prefix() {
        assert_eq!(kind_of("bus", "bus.orders.data"), Some(Kind::Object { topic: "orders".into() }));
        assert_eq!(kind_of("bus", "bus.a.b.readers"), Some(Kind::Object { topic: "a.b".into() }));
        assert_eq!(kind_of("bus", ".bus.lock"), Some(Kind::DaemonFile));
        assert_eq!(kind_of("bus", ".bus.topics"), Some(Kind::DaemonFile));
        assert_eq!(kind_of("bus", "sem.bus.orders.wake"), Some(Kind::Semaphore));
        for other in ["busy.orders.data", ".busy.lock", "bus.orders.tmp", "sem.busy.x", "bus.", "x.bus.a.data"] {
            assert_eq!(kind_of("bus", other), None, "{other}");
        }
    }

    #[test]
    fn this_process_maps_what_it_maps() {
        let name = format!("shmbus-cli-scan-{}", std::process::id());
        let path = Path::new(SHM_DIR).join(&name);
        let f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
        f.set_len(4096).unwrap();
        // SAFETY: a private read-only mapping of a file this test created and nobody else writes.
        let map = unsafe { memmap_ro(&f) };
        let m = Mappers::scan();
        std::fs::remove_file(&path).unwrap();
        assert!(m.of(&name).contains(&(std::process::id() as i32)), "{:?}", m.by_name.get(&name));
        drop(map);
    }

    /// Maps `f` read-only; the mapping is released on drop.
    ///
    /// # Safety
    /// Nobody may truncate `f` while the mapping lives (reading it would fault).
    unsafe fn memmap_ro(f: &std::fs::File) -> Mapping {
        use std::os::fd::AsFd;
        let len = std::num::NonZeroUsize::new(4096).unwrap();
        // SAFETY: a fresh mapping (no address given), of a valid descriptor; the caller keeps the file whole.
        let p = unsafe {
            nix::sys::mman::mmap(
                None,
                len,
                nix::sys::mman::ProtFlags::PROT_READ,
                nix::sys::mman::MapFlags::MAP_SHARED,
                f.as_fd(),
                0,
            )
        }
        .unwrap();
        Mapping(p, 4096)
    }

    struct Mapping(std::ptr::NonNull<std::ffi::c_void>, usize);
    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `memmap_ro`, unmapped once.
            let _ = unsafe { nix::sys::mman::munmap(self.0, self.1) };
        }
    }
}
