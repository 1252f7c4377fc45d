//! `DaemonInfo` (what the daemon is and how it runs, for `shmbus doctor`) and `ClientsPage` (who holds which lease,
//! for `shmbus clients`). Leases are shown only on the topics the caller may see, as `ListTopics` and `Stats` do
//! ([`crate::policy::Policy::shows`]); a topic the caller may not see answers as one that does not exist.

use super::{refuse, Asker, Lease, Refusal, State};
use shmbus_proto::msg::*;
use std::time::UNIX_EPOCH;

/// Most leases in one `ClientsPage` reply (each well under 200 bytes: a page stays far below a frame).
pub const PAGE_LEASES: usize = 2048;

impl State {
    /// `DaemonInfo`.
    pub fn daemon_info(&self) -> DaemonInfoWire {
        let nofile = crate::fd_limit::current().map_or(0, |(soft, _)| soft);
        let topics = self.topics.len() as u64;
        DaemonInfoWire {
            version: format!("shmbusd {}", env!("CARGO_PKG_VERSION")),
            pid: std::process::id(),
            uid: nix::unistd::geteuid().as_raw(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            shm_prefix: self.config.shm_prefix.clone(),
            shm_in_use: self.memory_in_use(),
            shm_budget: self.config.limits.shm_budget,
            topics,
            leases: self.leases.len() as u64,
            nofile,
            // Descriptors follow use (see `fd_limit`): the topics in use, the idle cache, the connections.
            nofile_needed: crate::fd_limit::needed(
                self.fd_use().1 as u64,
                self.config.limits.max_connections.into(),
                nofile,
            ),
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        }
    }

    /// `ClientsPage`: the leases after `after`, in id order, of `topic` (or of every topic) that `who` may see.
    pub fn clients_page(
        &self,
        who: Asker<'_>,
        topic: Option<&str>,
        after: Option<u64>,
    ) -> Result<(Vec<ClientWire>, bool), Refusal> {
        if let Some(t) = topic {
            if !self.topics.get(t).is_some_and(|e| e.settings.policy.shows(who.cred, who.groups)) {
                return refuse(ErrorKind::NoSuchTopic, format!("no such topic {t:?}"));
            }
        }
        let mut ids: Vec<u64> = self
            .leases
            .iter()
            .filter(|(id, l)| after.is_none_or(|a| **id > a) && topic.is_none_or(|t| l.topic == t))
            .filter(|(_, l)| self.topics.get(&l.topic).is_some_and(|e| e.settings.policy.shows(who.cred, who.groups)))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let more = ids.len() > PAGE_LEASES;
        ids.truncate(PAGE_LEASES);
        Ok((ids.iter().map(|id| self.client(*id, &self.leases[id])).collect(), more))
    }

    fn client(&self, id: u64, l: &Lease) -> ClientWire {
        let (kind, slot, group) = match l.role {
            Role::Publisher { slot } => ("publisher", slot, None),
            Role::Subscriber { slot, group: Some(g) } => {
                let name = self.topics.get(&l.topic).and_then(|e| e.groups.get(g as usize).cloned().flatten());
                ("group", slot, name)
            }
            Role::Subscriber { slot, group: None } => {
                let lossless = l.action == crate::policy::Action::SubscribeGating;
                (if lossless { "lossless" } else { "lossy" }, slot, None)
            }
        };
        ClientWire {
            lease: id,
            topic: l.topic.clone(),
            kind: kind.to_string(),
            slot,
            group,
            pid: l.holder.pid,
            uid: l.uid,
            since_ms: l.since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            typed: l.typed,
            name: l.client.clone(),
        }
    }
}
