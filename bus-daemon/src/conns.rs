//! The connection limit: at most `max_connections` control connections at once, and `max_connections_per_uid`
//! of any one uid other than root and the daemon's own (so one local user's idle connections cannot lock others
//! out). A connection over a limit is answered with an error naming the limit and closed at once.

use crate::limits::Limits;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_uid: HashMap<u32, u32>,
}

/// Counts live connections against the limits.
#[derive(Clone, Debug)]
pub struct Gate {
    max_total: u32,
    max_per_uid: u32,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    uid: u32,
    counts: Arc<Mutex<Counts>>,
}

impl Gate {
    /// A gate for `limits`.
    pub fn new(limits: &Limits) -> Gate {
        Gate { max_total: limits.max_connections, max_per_uid: limits.max_connections_per_uid, counts: Arc::default() }
    }

    /// Admits a connection of `uid`, or says which limit it is over.
    pub fn admit(&self, uid: u32) -> Result<Permit, String> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.max_total {
            return Err(format!(
                "too many connections: the daemon's limit max_connections = {} is reached",
                self.max_total
            ));
        }
        let privileged = uid == 0 || uid == nix::unistd::geteuid().as_raw();
        let mine = c.per_uid.get(&uid).copied().unwrap_or(0);
        if !privileged && mine >= self.max_per_uid {
            return Err(format!(
                "too many connections of uid {uid}: {mine} open, the limit max_connections_per_uid = {}",
                self.max_per_uid
            ));
        }
        c.total += 1;
        *c.per_uid.entry(uid).or_insert(0) += 1;
        Ok(Permit { uid, counts: self.counts.clone() })
    }

    /// Control connections open now (for the metrics listener).
    pub fn open(&self) -> u32 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_uid_and_in_total() {
        let g = Gate::new(&Limits { max_connections: 3, max_connections_per_uid: 2, ..Limits::default() });
        let a = g.admit(65534).unwrap();
        let _b = g.admit(65534).unwrap();
        let e = g.admit(65534).unwrap_err();
        assert!(e.contains("max_connections_per_uid = 2"), "{e}");
        let _c = g.admit(0).unwrap();
        let e = g.admit(0).unwrap_err();
        assert!(e.contains("max_connections = 3"), "{e}");
        assert_eq!(g.open(), 3);
        drop(a);
        assert_eq!(g.open(), 2);
        assert!(g.admit(65534).is_ok());
    }
}
