//! Objects under the prefix that are no topic: refused as invalid when adopted (and left in place, unless
//! `remove_invalid`), or planted since. `shmbus topics --all` lists them ([`State::list_invalid`]) and
//! `shmbus delete NAME` removes them ([`State::delete_invalid`]), both only on names whose `admin` policy (the
//! declared one, else `[defaults]`) admits the caller.

use super::{Asker, Blocked, Refusal, State};
use crate::policy::Action;
use shmbus_proto::msg::{ErrorKind, InvalidObject, MAX_INVALID_LISTED};
use shmbus_proto::names;
use std::collections::BTreeSet;

/// What a reason is cut to in a listing.
const MAX_REASON: usize = 200;

impl State {
    /// Names under the prefix with objects in /dev/shm that are neither a topic nor being created.
    fn names_without_topic(&self) -> BTreeSet<String> {
        let prefix = &self.config.shm_prefix;
        shmbus_os::list_shm(prefix)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| names::parse_object(prefix, n).map(|(t, _)| t))
            .filter(|t| !self.topics.contains_key(t) && !self.creating.contains_key(t))
            .collect()
    }

    /// Whether `who` administers name `name` (its declared policy, else `[defaults]`).
    fn administers(&self, who: Asker<'_>, name: &str) -> bool {
        let policy = match self.config.topics.iter().find(|(n, _)| n == name) {
            Some((_, s)) => &s.policy,
            None => &self.config.defaults.policy,
        };
        policy.allows(Action::Admin, who.cred, who.groups)
    }

    /// `ListInvalid`: the objects that are no topic, on names `who` administers, at most [`MAX_INVALID_LISTED`]
    /// (and how many more). Forgets the reasons of names whose objects are gone.
    pub fn list_invalid(&mut self, who: Asker<'_>) -> (Vec<InvalidObject>, u32) {
        let found = self.names_without_topic();
        self.invalid.retain(|n, _| found.contains(n));
        let mine: Vec<&String> = found.iter().filter(|n| self.administers(who, n)).collect();
        let objects = mine
            .iter()
            .take(MAX_INVALID_LISTED)
            .map(|n| {
                let reason =
                    self.invalid.get(*n).map_or("not a topic of this daemon (appeared after its start)", |r| r);
                let reason = match reason.char_indices().nth(MAX_REASON) {
                    Some((cut, _)) => format!("{}…", &reason[..cut]),
                    None => reason.to_string(),
                };
                InvalidObject { name: n.to_string(), reason }
            })
            .collect();
        (objects, mine.len().saturating_sub(MAX_INVALID_LISTED) as u32)
    }

    /// `DeleteTopic` of a name that is no topic: unlinks its objects if there are any and `who` administers the
    /// name; else "no such topic".
    pub(super) fn delete_invalid(&mut self, who: Asker<'_>, name: &str) -> Result<(), Blocked> {
        let refused = |kind, message: String| Err(Blocked::Refused(Refusal { kind, message }));
        if names::validate_topic(name).is_err() || !self.names_without_topic().contains(name) {
            return refused(ErrorKind::NoSuchTopic, format!("no such topic {name:?}"));
        }
        let uid = who.cred.uid;
        if !self.administers(who, name) {
            return refused(
                ErrorKind::PermissionDenied,
                format!("uid {uid} may not delete the invalid objects of {name:?} (not admitted by its admin policy)"),
            );
        }
        shmbus_shm::unlink_all(&self.config.shm_prefix, name);
        let reason = self.invalid.remove(name);
        tracing::info!(topic = %name, uid, pid = who.cred.pid, reason = reason.as_deref().unwrap_or("-"),
            "deleted objects that were no topic");
        Ok(())
    }
}
