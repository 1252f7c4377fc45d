//! A topic's two objects as the daemon holds them (issue 13): the descriptors only while the topic is in use or
//! recently used, the identity (device, inode), names and expected sizes always. Whoever needs a descriptor goes
//! through [`Objects::with`], which reopens closed ones by name, safely (see
//! [`shmbus_os::ShmObject::reopen_identical`]); the daemon decides when to [`Objects::close`] them. The mappings
//! are the segment's and need no descriptor, so headers, counters and stats never reopen anything.

use shmbus_os::{Expected, Identity, ObjectStat, OsError, ReopenError, ShmObject};
use std::sync::{Mutex, MutexGuard};

/// What a periodic check finds of a topic's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Both objects are the topic's, with the sizes its geometry gives.
    Intact,
    /// An object is the topic's but no longer has its size (a client with a descriptor truncated it).
    Truncated,
    /// The descriptors are closed and a name no longer leads to the topic's object (unlinked or replaced): the
    /// topic cannot be reopened. Says what was found.
    Unreachable(String),
}

/// The two objects: names, identities, sizes, and the descriptors when open.
pub(crate) struct Objects {
    names: [String; 2],
    ids: [Identity; 2],
    sizes: [u64; 2],
    expected: Expected,
    /// Data and readers descriptors, or `None` while closed. Held locked for as long as a caller uses them, so
    /// a close never pulls a descriptor from under a user.
    open: Mutex<Option<[ShmObject; 2]>>,
}

impl Objects {
    /// Takes the descriptors of freshly created or adopted objects, recording which files they are.
    pub(crate) fn new(data: ShmObject, readers: ShmObject, mode: u32) -> Result<Objects, OsError> {
        let (d, r) = (data.stat()?, readers.stat()?);
        Ok(Objects {
            names: [data.name().to_string(), readers.name().to_string()],
            ids: [d.identity, r.identity],
            sizes: [d.size, r.size],
            expected: Expected { uid: nix::unistd::geteuid().as_raw(), mode },
            open: Mutex::new(Some([data, readers])),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<[ShmObject; 2]>> {
        // A panic while holding the lock leaves the descriptors as they were: still usable.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reopens both objects by name unless open. Returns whether it reopened them.
    fn ensure(&self, open: &mut Option<[ShmObject; 2]>) -> Result<bool, ReopenError> {
        if open.is_some() {
            return Ok(false);
        }
        let one = |i: usize| ShmObject::reopen_identical(&self.names[i], self.expected, self.ids[i], self.sizes[i]);
        *open = Some([one(0)?, one(1)?]);
        Ok(true)
    }

    /// Opens the descriptors unless they are (see the module docs). Returns whether it reopened them.
    pub(crate) fn open(&self) -> Result<bool, ReopenError> {
        self.ensure(&mut self.lock())
    }

    /// Runs `f` on the data and readers objects, reopening them first if they are closed (a name that no longer
    /// leads to the topic's object is an error of kind `NotFound`, never someone else's file).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&ShmObject, &ShmObject) -> Result<T, OsError>) -> Result<T, OsError> {
        let mut open = self.lock();
        self.ensure(&mut open).map_err(|e| match e {
            ReopenError::Os(o) => o,
            ReopenError::NotTheObject { name, why } => {
                OsError::new("reopen", name, std::io::Error::new(std::io::ErrorKind::NotFound, why))
            }
        })?;
        let [d, r] = open.as_ref().expect("just ensured");
        f(d, r)
    }

    /// Whether the descriptors are open.
    pub(crate) fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Closes the descriptors, if both names still lead to the topic's objects (so they can be reopened when
    /// needed); otherwise keeps them and says what was found.
    pub(crate) fn close(&self) -> Result<(), String> {
        let mut open = self.lock();
        if open.is_none() {
            return Ok(());
        }
        for i in 0..2 {
            if let Some(why) = self.by_name_differs(i) {
                return Err(why);
            }
        }
        *open = None;
        Ok(())
    }

    /// What is wrong with name `i` as a way back to the object (`None`: it is the object).
    fn by_name_differs(&self, i: usize) -> Option<String> {
        let name = &self.names[i];
        match shmbus_os::stat_by_name(name) {
            Ok(Some(s)) if s.identity == self.ids[i] => None,
            Ok(Some(_)) => Some(format!("{name}: replaced by another file")),
            Ok(None) => Some(format!("{name}: unlinked (no object of that name)")),
            Err(e) => Some(e.to_string()),
        }
    }

    /// Sizes against the recorded ones: by descriptor when open, else by name (without opening anything).
    pub(crate) fn health(&self) -> Health {
        let open = self.lock();
        let stats: [Result<ObjectStat, String>; 2] = match &*open {
            Some(objs) => [0, 1].map(|i| objs[i].stat().map_err(|e| e.to_string())),
            None => [0, 1].map(|i| match shmbus_os::stat_by_name(&self.names[i]) {
                Ok(Some(s)) if s.identity == self.ids[i] => Ok(s),
                Ok(Some(_)) => Err(format!("{}: replaced by another file", self.names[i])),
                Ok(None) => Err(format!("{}: unlinked (no object of that name)", self.names[i])),
                Err(e) => Err(e.to_string()),
            }),
        };
        let mut truncated = false;
        for (i, s) in stats.into_iter().enumerate() {
            match s {
                Ok(s) => truncated |= s.size != self.sizes[i],
                // A failed fstat on a held descriptor: treated as before (not the size expected).
                Err(_) if open.is_some() => truncated = true,
                Err(why) => return Health::Unreachable(why),
            }
        }
        if truncated {
            Health::Truncated
        } else {
            Health::Intact
        }
    }

    /// Bytes the objects commit (`st_blocks`), by descriptor or, while closed, by name when the name is the
    /// object's (else 0).
    pub(crate) fn committed(&self) -> u64 {
        let open = self.lock();
        (0..2)
            .map(|i| match &*open {
                Some(objs) => objs[i].stat().map_or(0, |s| s.committed),
                None => match shmbus_os::stat_by_name(&self.names[i]) {
                    Ok(Some(s)) if s.identity == self.ids[i] => s.committed,
                    _ => 0,
                },
            })
            .sum()
    }

    /// Unlinks the names that still lead to the topic's objects; a file someone put in their place is left to
    /// the invalid-object handling (listed by `shmbus topics --all`, removed by `shmbus delete`).
    pub(crate) fn unlink_own(&self) {
        for i in 0..2 {
            let _ = shmbus_os::unlink_if_identical(&self.names[i], self.ids[i]);
        }
    }
}
