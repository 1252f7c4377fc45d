//! Access policy: who may publish, subscribe, gate publishers and administer a topic (create, delete), checked
//! against the peer's credentials (SO_PEERCRED on the accepted connection). Root and the daemon's own user are
//! always admitted. A topic is visible (in `ListTopics` and `Stats`) to whomever one of its publish, subscribe
//! or admin lists admits.

use shmbus_os::PeerCred;

/// One entry of a policy list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Everyone (`"*"`).
    Anyone,
    /// A user id (`"uid:1000"` or `"user:alice"`).
    Uid(u32),
    /// A group id, primary or supplementary (`"gid:100"` or `"group:audio"`).
    Gid(u32),
}

impl Principal {
    /// Parses `*`, `uid:N`, `gid:N`, `user:NAME`, `group:NAME` (names resolved now).
    pub fn parse(s: &str) -> Result<Principal, String> {
        if s == "*" {
            return Ok(Principal::Anyone);
        }
        let (kind, v) = s
            .split_once(':')
            .ok_or_else(|| format!("invalid principal {s:?} (use *, uid:N, gid:N, user:NAME, group:NAME)"))?;
        let num = |v: &str| v.parse::<u32>().map_err(|_| format!("invalid id in {s:?}"));
        match kind {
            "uid" => Ok(Principal::Uid(num(v)?)),
            "gid" => Ok(Principal::Gid(num(v)?)),
            "user" => nix::unistd::User::from_name(v)
                .ok()
                .flatten()
                .map(|u| Principal::Uid(u.uid.as_raw()))
                .ok_or_else(|| format!("unknown user {v:?}")),
            "group" => nix::unistd::Group::from_name(v)
                .ok()
                .flatten()
                .map(|g| Principal::Gid(g.gid.as_raw()))
                .ok_or_else(|| format!("unknown group {v:?}")),
            _ => Err(format!("invalid principal {s:?} (use *, uid:N, gid:N, user:NAME, group:NAME)")),
        }
    }

    fn admits(&self, cred: &PeerCred, groups: &[u32]) -> bool {
        match self {
            Principal::Anyone => true,
            Principal::Uid(u) => cred.uid == *u,
            Principal::Gid(g) => cred.gid == *g || groups.contains(g),
        }
    }
}

/// A topic's access policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Who may publish.
    pub publish: Vec<Principal>,
    /// Who may subscribe.
    pub subscribe: Vec<Principal>,
    /// Who may subscribe losslessly (hold publishers back); others may only subscribe lossy.
    pub gate: Vec<Principal>,
    /// Who may create and delete the topic (besides root and the daemon's own user, who always may).
    pub admin: Vec<Principal>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            publish: vec![Principal::Anyone],
            subscribe: vec![Principal::Anyone],
            gate: vec![Principal::Anyone],
            admin: Vec::new(),
        }
    }
}

/// What a client asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Publish.
    Publish,
    /// Subscribe lossy.
    Subscribe,
    /// Subscribe losslessly or in a group (gates publishers).
    SubscribeGating,
    /// Create or delete the topic.
    Admin,
}

impl Policy {
    /// Whether the peer may do `action`. Root and the daemon's own user are always admitted.
    pub fn allows(&self, action: Action, cred: &PeerCred, groups: &[u32]) -> bool {
        let me = nix::unistd::geteuid().as_raw();
        if cred.uid == 0 || cred.uid == me {
            return true;
        }
        let any = |l: &[Principal]| l.iter().any(|p| p.admits(cred, groups));
        match action {
            Action::Publish => any(&self.publish),
            Action::Subscribe => any(&self.subscribe),
            Action::SubscribeGating => any(&self.subscribe) && any(&self.gate),
            Action::Admin => any(&self.admin),
        }
    }

    /// Whether the peer may see the topic in listings and counters (`ListTopics`, `Stats`): its publish,
    /// subscribe or admin list admits the peer. Root and the daemon's own user see every topic.
    pub fn shows(&self, cred: &PeerCred, groups: &[u32]) -> bool {
        [Action::Publish, Action::Subscribe, Action::Admin].into_iter().any(|a| self.allows(a, cred, groups))
    }

    /// Whether everyone may both publish and subscribe.
    pub fn is_open(&self) -> bool {
        self.publish.contains(&Principal::Anyone) && self.subscribe.contains(&Principal::Anyone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        assert_eq!(Principal::parse("*").unwrap(), Principal::Anyone);
        assert_eq!(Principal::parse("uid:12").unwrap(), Principal::Uid(12));
        assert_eq!(Principal::parse("user:root").unwrap(), Principal::Uid(0));
        assert!(Principal::parse("user:no-such-user-xyz").is_err());
        assert!(Principal::parse("bogus").is_err());
        let p = Policy {
            publish: vec![Principal::Uid(1000)],
            subscribe: vec![Principal::Gid(50)],
            gate: vec![],
            admin: vec![Principal::Gid(7)],
        };
        let c = PeerCred { pid: 1, uid: 1000, gid: 1000 };
        assert!(p.allows(Action::Publish, &c, &[]));
        assert!(!p.allows(Action::Subscribe, &c, &[]));
        assert!(p.allows(Action::Subscribe, &c, &[50]));
        assert!(!p.allows(Action::SubscribeGating, &c, &[50]));
        let nobody = PeerCred { pid: 1, uid: 65534, gid: 65534 };
        assert!(!p.allows(Action::Publish, &nobody, &[]));
        assert!(!p.allows(Action::Admin, &c, &[50]), "admin needs the admin list");
        assert!(p.allows(Action::Admin, &c, &[7]));
        assert!(Policy::default().allows(Action::Admin, &PeerCred { pid: 1, uid: 0, gid: 0 }, &[]), "root");
        assert!(!Policy::default().allows(Action::Admin, &nobody, &[]), "default admin: root and the daemon only");
    }

    #[test]
    fn shown_to_whom_any_list_admits() {
        let p = Policy {
            publish: vec![Principal::Uid(1000)],
            subscribe: vec![Principal::Gid(50)],
            gate: vec![Principal::Anyone],
            admin: vec![Principal::Uid(7)],
        };
        let who = |uid| PeerCred { pid: 1, uid, gid: uid };
        assert!(p.shows(&who(1000), &[]), "a publisher");
        assert!(p.shows(&who(2000), &[50]), "a subscriber by group");
        assert!(p.shows(&who(7), &[]), "an admin");
        assert!(!p.shows(&who(2000), &[]), "gate alone admits nothing");
        assert!(p.shows(&who(0), &[]), "root");
    }
}
