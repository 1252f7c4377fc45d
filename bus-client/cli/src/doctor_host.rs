//! The host checks of `shmbus doctor`: what breaks shared-memory buses in practice, each finding with how to fix
//! it. /dev/shm size and free space against the daemon's budget, the owner and mode of the prefix's objects,
//! objects no daemon owns, logind's `RemoveIPC` for the daemon's user, descriptor limits and `vm.max_map_count`.

use crate::parse::human_bytes;
use crate::shm_scan::{self, Entry, Kind, Mappers};
use bus_client::{DaemonInfoWire, TopicInfo};
use std::collections::HashSet;
use std::path::Path;

/// One thing doctor looked at.
#[derive(Debug)]
pub struct Finding {
    /// Whether it is fine.
    pub ok: bool,
    /// What was found.
    pub what: String,
    /// How to fix it (problems only).
    pub fix: Option<String>,
}

impl Finding {
    /// A fine finding.
    pub fn ok(what: String) -> Finding {
        Finding { ok: true, what, fix: None }
    }

    /// A problem and its fix.
    pub fn problem(what: String, fix: String) -> Finding {
        Finding { ok: false, what, fix: Some(fix) }
    }

    /// `ok       what` or `PROBLEM  what` and an indented `fix:` line.
    pub fn render(&self) -> String {
        match (&self.fix, self.ok) {
            (Some(fix), false) => format!("PROBLEM  {}\n         fix: {fix}\n", self.what),
            _ => format!("ok       {}\n", self.what),
        }
    }
}

/// What doctor knows of the daemon, when it answered.
pub struct Daemon<'a> {
    /// Its self-description.
    pub info: &'a DaemonInfoWire,
    /// The topics the caller may see.
    pub topics: &'a [TopicInfo],
}

/// Every host check for `prefix`.
pub fn check(prefix: &str, daemon: Option<&Daemon<'_>>) -> Vec<Finding> {
    let mut out = vec![dev_shm(daemon.map(|d| d.info))];
    match shm_scan::entries(prefix) {
        Ok(entries) => {
            out.extend(permissions(&entries, daemon.map(|d| d.info.uid)));
            out.extend(orphans(prefix, &entries, daemon));
        }
        Err(e) => out.push(Finding::problem(
            format!("cannot list {}: {e}", shm_scan::SHM_DIR),
            "mount a tmpfs on /dev/shm (systemd does by default)".into(),
        )),
    }
    out.push(remove_ipc(daemon.map(|d| d.info.uid).or_else(bus_client::discovery::daemon_user)));
    out.extend(limits(daemon.map(|d| d.info)));
    out
}

fn dev_shm(info: Option<&DaemonInfoWire>) -> Finding {
    let st = match nix::sys::statvfs::statvfs(shm_scan::SHM_DIR) {
        Ok(s) => s,
        Err(e) => {
            return Finding::problem(
                format!("cannot read the size of {}: {e}", shm_scan::SHM_DIR),
                "mount a tmpfs on /dev/shm".into(),
            )
        }
    };
    let frag = st.fragment_size() as u64;
    let (size, free) = (st.blocks() as u64 * frag, st.blocks_available() as u64 * frag);
    let head = format!("/dev/shm: {} free of {}", human_bytes(free), human_bytes(size));
    let Some(i) = info else { return Finding::ok(format!("{head} (no daemon to compare with)")) };
    let may_grow = i.shm_budget.saturating_sub(i.shm_in_use);
    let what = format!(
        "{head}; the daemon's topics use {} of its shm_budget {}",
        human_bytes(i.shm_in_use),
        human_bytes(i.shm_budget)
    );
    if free < may_grow {
        let short = may_grow - free;
        Finding::problem(
            format!("{what}: topics may need {} more than is free", human_bytes(short)),
            format!(
                "grow /dev/shm to at least {} bytes (`mount -o remount,size={} /dev/shm`, and in /etc/fstab), or \
                 lower shm_budget in the daemon's configuration to at most {}",
                size + short,
                size + short,
                free + i.shm_in_use
            ),
        )
    } else {
        Finding::ok(what)
    }
}

fn permissions(entries: &[Entry], daemon_uid: Option<u32>) -> Vec<Finding> {
    let mut bad = Vec::new();
    for e in entries {
        let foreign = daemon_uid.is_some_and(|u| e.uid != u && e.kind != Kind::Semaphore);
        if e.mode & 0o022 != 0 || foreign {
            bad.push(format!("{} (uid {}, mode {:04o})", e.path().display(), e.uid, e.mode));
        }
    }
    let n = entries.len();
    if bad.is_empty() {
        return vec![Finding::ok(format!(
            "{n} file(s) under the prefix, none writable by group or others{}",
            if daemon_uid.is_some() { ", all the daemon's" } else { "" }
        ))];
    }
    vec![Finding::problem(
        format!("files under the prefix that others may write or that are not the daemon's: {}", bad.join(", ")),
        "clients refuse such objects; remove them (`shmbus cleanup`, or rm) and let the daemon create them again"
            .into(),
    )]
}

fn orphans(prefix: &str, entries: &[Entry], daemon: Option<&Daemon<'_>>) -> Vec<Finding> {
    let holder = shm_scan::lock_holder(prefix);
    let served: Option<HashSet<&str>> = daemon.map(|d| d.topics.iter().map(|t| t.name.as_str()).collect());
    let hidden = daemon.is_some_and(|d| d.info.topics > d.topics.len() as u64);
    let mappers = Mappers::scan();
    let mut stale = Vec::new();
    for e in entries {
        let unowned = match (&e.kind, &served, holder) {
            (Kind::Object { topic }, Some(s), Some(_)) => !s.contains(topic.as_str()) && !hidden,
            (Kind::DaemonFile | Kind::Semaphore, _, Some(_)) => false,
            (_, _, None) => true,
            (Kind::Object { .. }, None, Some(_)) => false,
        };
        if unowned && mappers.of(&e.name).is_empty() {
            stale.push(e.name.clone());
        }
    }
    let who = match holder {
        Some(pid) => format!("held by pid {pid}"),
        None => "held by no daemon".into(),
    };
    let mut out = vec![];
    if stale.is_empty() {
        out.push(Finding::ok(format!("prefix {prefix:?} ({who}): no files that no daemon owns")));
    } else {
        out.push(Finding::problem(
            format!("prefix {prefix:?} ({who}): {} file(s) no daemon owns and nobody maps: {}", stale.len(), stale.join(", ")),
            format!("`shmbus cleanup --prefix {prefix} --dry-run` lists them, `shmbus cleanup --prefix {prefix}` removes them"),
        ));
    }
    if hidden {
        out.push(Finding::ok("the daemon serves topics you may not see: objects of theirs were not judged".into()));
    }
    if mappers.unreadable > 0 {
        out.push(Finding::ok(format!(
            "{} process(es) whose mappings you cannot read (run as root to judge every object)",
            mappers.unreadable
        )));
    }
    out
}

/// logind's `RemoveIPC` (default yes) removes a user's shared memory when their last session ends, except for
/// root and system users.
fn remove_ipc(uid: Option<u32>) -> Finding {
    let Some(uid) = uid else {
        return Finding::ok("logind RemoveIPC: no daemon user known (no daemon answered, no shmbus user)".into());
    };
    let (value, from) = logind_remove_ipc(Path::new("/etc/systemd"));
    let system = uid < system_uid_max();
    let no_login = cannot_log_in(uid);
    let what = format!("logind RemoveIPC={} ({from}) for the daemon's uid {uid}", if value { "yes" } else { "no" });
    if !value || system || no_login {
        let why = match (system, no_login) {
            (true, _) => ", a system user, which it spares",
            (false, true) => ", which cannot log in (its shell is nologin or false): no session ends for it",
            (false, false) => "",
        };
        return Finding::ok(format!("{what}{why}"));
    }
    Finding::problem(
        format!("{what}: logind removes the daemon's topics when that user's last session ends"),
        "run the daemon as a system user (the packaged `shmbus` user), or set RemoveIPC=no under [Login] in \
         /etc/systemd/logind.conf.d/shmbus.conf and restart systemd-logind"
            .into(),
    )
}

/// The `RemoveIPC` in force under `dir` (`logind.conf`, then `logind.conf.d/*.conf` in name order, the last
/// assignment winning; default yes) and where it was set.
pub fn logind_remove_ipc(dir: &Path) -> (bool, String) {
    let mut files = vec![dir.join("logind.conf")];
    if let Ok(rd) = std::fs::read_dir(dir.join("logind.conf.d")) {
        let mut extra: Vec<_> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension() == Some("conf".as_ref())).collect();
        extra.sort();
        files.extend(extra);
    }
    let mut found = (true, "the default".to_string());
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        let mut in_login = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_login = line == "[Login]";
            } else if let Some(v) =
                line.strip_prefix("RemoveIPC").map(str::trim_start).and_then(|r| r.strip_prefix('='))
            {
                if in_login {
                    let v = v.trim().to_ascii_lowercase();
                    found = (matches!(v.as_str(), "yes" | "true" | "1" | "on"), f.display().to_string());
                }
            }
        }
    }
    found
}

/// Whether `uid` has no login shell (`nologin`, `false`): logind never has a session of it to end.
fn cannot_log_in(uid: u32) -> bool {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().is_some_and(|u| {
        let shell = u.shell.to_string_lossy().into_owned();
        shell.ends_with("/nologin") || shell.ends_with("/false")
    })
}

/// The first uid of regular users: `SYS_UID_MAX` + 1 from /etc/login.defs, else 1000.
fn system_uid_max() -> u32 {
    std::fs::read_to_string("/etc/login.defs")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("SYS_UID_MAX")).then(|| w.next()?.parse::<u32>().ok()).flatten()
            })
        })
        .map_or(1000, |m| m.saturating_add(1))
}

/// Topics in use (held by a lease) of headroom doctor wants the descriptor limit to leave beyond the daemon's
/// leases: a quarter more, at least [`MIN_MARGIN`].
fn margin(leases: u64) -> u64 {
    (leases / 4).max(MIN_MARGIN)
}

/// The least headroom doctor asks for, in topics in use.
const MIN_MARGIN: u64 = 64;

/// Descriptors of one topic whose descriptors are open (`bus-daemon/src/fd_limit.rs`, `PER_TOPIC`).
const PER_TOPIC: u64 = 2;

/// Descriptors the daemon keeps for idle topics under a soft limit of `nofile`: a quarter of it, 2 per topic
/// (the daemon's own cache, `fd_limit::cache_topics`).
pub fn cache_fds(nofile: u64) -> u64 {
    nofile / 4 / PER_TOPIC * PER_TOPIC
}

/// The daemon's descriptor limit against what it needs and has open. Its descriptors follow use, not its topics
/// (2 per topic in use or among the idle cache of a quarter of the limit; 3 per connection; a fixed reserve:
/// the daemon reports what that comes to as `nofile_needed`): a problem when the limit is below that plus a
/// margin of topics in use ([`margin`], counted from its leases), or when more than 80% of it is open.
pub fn descriptors(i: &DaemonInfoWire) -> Finding {
    let cache = cache_fds(i.nofile);
    // Fixed reserve, connections and the topics in use now: what does not shrink with the cache.
    let base = i.nofile_needed.saturating_sub(cache);
    let want = base.saturating_add(PER_TOPIC * margin(i.leases));
    let room = i.nofile.saturating_sub(cache);
    let what = format!(
        "daemon descriptors: {} open, soft limit {}, {} topics, {} leases (2 per topic in use, {cache} for idle \
         topics, 3 per connection and a reserve: up to {})",
        i.open_fds, i.nofile, i.topics, i.leases, i.nofile_needed
    );
    let mut why = Vec::new();
    if room < want {
        why.push(format!(
            "the limit leaves room for {} more topics in use, fewer than a margin of {}",
            room.saturating_sub(base) / PER_TOPIC,
            margin(i.leases)
        ));
    }
    if i.open_fds.saturating_mul(5) > i.nofile.saturating_mul(4) {
        why.push("more than 80% of it is open".into());
    }
    if why.is_empty() {
        return Finding::ok(format!("{what}; room for {} more topics in use", (room - base) / PER_TOPIC));
    }
    // Enough for what does not shrink and the margin in three quarters of the limit (the cache takes the last
    // quarter), and twice what is open; a power of two.
    let n = (want.saturating_mul(4).div_ceil(3)).max(i.open_fds.saturating_mul(2)).next_power_of_two();
    Finding::problem(
        format!("{what}: {}", why.join("; ")),
        format!(
            "raise it: set LimitNOFILE={n} in the unit (deploy/shmbus.service has 65536), or `ulimit -n {n}` \
             before starting shmbusd"
        ),
    )
}

fn limits(info: Option<&DaemonInfoWire>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(i) = info {
        out.push(descriptors(i));
    }
    if let Ok(t) = std::fs::read_to_string("/proc/sys/vm/max_map_count") {
        if let Ok(max) = t.trim().parse::<u64>() {
            let topics = info.map_or(0, |i| i.topics);
            let need = 2 * topics + 1024;
            let what = format!("vm.max_map_count {max}, the daemon maps 2 per topic ({topics} topics) besides its own");
            out.push(if max < need {
                Finding::problem(
                    what,
                    format!("sysctl -w vm.max_map_count={} (and in /etc/sysctl.d/ to keep it)", need.max(65530)),
                )
            } else {
                Finding::ok(what)
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_ipc_follows_the_last_assignment_in_login() {
        let dir = std::env::temp_dir().join(format!("shmbus-logind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logind.conf.d")).unwrap();
        assert!(logind_remove_ipc(&dir).0, "default yes");
        std::fs::write(dir.join("logind.conf"), "[Login]\n#RemoveIPC=no\nRemoveIPC = no\n").unwrap();
        assert!(!logind_remove_ipc(&dir).0);
        std::fs::write(dir.join("logind.conf.d/50-x.conf"), "[Other]\nRemoveIPC=no\n[Login]\nRemoveIPC=yes\n").unwrap();
        let (v, from) = logind_remove_ipc(&dir);
        assert!(v && from.ends_with("50-x.conf"), "{from}");
        std::fs::write(dir.join("logind.conf.d/90-y.conf"), "[Login]\nRemoveIPC=no\n").unwrap();
        std::fs::write(dir.join("logind.conf.d/99-z.txt"), "[Login]\nRemoveIPC=yes\n").unwrap();
        assert!(!logind_remove_ipc(&dir).0, "only *.conf counts");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What a daemon under soft limit `nofile` with 512 connections and `in_use` topics in use reports.
    fn info(nofile: u64, topics: u64, leases: u64, in_use: u64, open_fds: u64) -> DaemonInfoWire {
        let nofile_needed = 64 + 3 * 512 + cache_fds(nofile) + 2 * in_use;
        DaemonInfoWire { nofile, topics, leases, open_fds, nofile_needed, ..Default::default() }
    }

    #[test]
    fn descriptor_limit_against_topics_in_use_and_open_descriptors() {
        assert_eq!(cache_fds(20_000), 5_000);
        // 10,000 idle topics under 20,000: descriptors follow use, not the count.
        let f = descriptors(&info(20_000, 10_000, 0, 0, 5_200));
        assert!(f.ok, "{f:?}");
        assert!(f.what.contains("room for 6700 more topics in use"), "{f:?}");
        // 6,700 topics in use leave no margin.
        let f = descriptors(&info(20_000, 10_000, 6_700, 6_700, 9_900));
        assert!(!f.ok && f.what.contains("room for 0 more topics in use"), "{f:?}");
        let fix = f.fix.unwrap();
        assert!(fix.contains("LimitNOFILE=32768"), "{fix}");
        // A soft limit of 1,024 cannot hold 512 connections' descriptors at all.
        let f = descriptors(&info(1_024, 10, 0, 0, 30));
        assert!(!f.ok && f.fix.as_deref().unwrap_or("").contains("LimitNOFILE=4096"), "{f:?}");
        // Enough room, but 85% of the limit open.
        let f = descriptors(&info(20_000, 100, 10, 10, 17_000));
        assert!(!f.ok && f.what.contains("more than 80%") && !f.what.contains("fewer than"), "{f:?}");
        assert!(f.fix.unwrap().contains("LimitNOFILE=65536"));
        assert!(descriptors(&info(20_000, 100, 10, 10, 15_900)).ok, "79.5% open");
    }

    #[test]
    fn findings_render_with_a_fix() {
        let p = Finding::problem("x is wrong".into(), "do y".into());
        assert_eq!(p.render(), "PROBLEM  x is wrong\n         fix: do y\n");
        assert_eq!(Finding::ok("fine".into()).render(), "ok       fine\n");
    }
}
