//! The `scale` scenario (issue 13): for each topic count, a fresh private daemon, that many idle topics of the
//! default geometry created over one connection, and what they cost: the create rate, how long listing them and
//! their counters takes, how long a daemon started again after a `SIGKILL` takes to answer with all of them, and
//! per topic the daemon's resident set and descriptors (after the listings, which read every topic's header) and
//! the /dev/shm objects and committed bytes.
//!
//! A count the host cannot hold is a record with `skipped` and the reason, not a failure: its `vm.max_map_count`
//! (two mappings per topic; the daemon's descriptors follow use, not the count, `bus_daemon::fd_limit`), or
//! /dev/shm's free space for the topics' whole footprint (a creation checks it).

pub mod plot;
pub mod table;

use crate::daemon::PrivateBus;
use crate::measure::Mode;
use crate::record::{Record, Scale};
use crate::transport::Kind;
use bus_client::{Bus, TopicSpec, Transport};
use std::io;
use std::time::{Duration, Instant};

/// Topic counts of the scenario unless `--scale-counts` says otherwise.
pub const COUNTS: [u64; 4] = [10, 100, 1_000, 10_000];
/// The longest a restarted daemon may take to answer with every topic.
const ADOPT_LIMIT: Duration = Duration::from_secs(300);

/// The transport the records name (the first shmbus one `--transports` asks for, else `shmbus-blocking`): the
/// daemon's, though no message moves.
pub fn kind(asked: &[Kind]) -> Kind {
    asked.iter().copied().find(|k| k.needs_daemon()).unwrap_or(Kind::ShmbusBlocking)
}

/// Why `n` topics cannot be held here, checked before starting (the mappings they need).
pub fn too_many(n: u64) -> Option<String> {
    let maps = bus_daemon::fd_limit::max_map_count()?;
    let admits = bus_daemon::fd_limit::max_topics(maps);
    (n > admits).then(|| {
        format!(
            "vm.max_map_count {maps} admits {admits} topics ({} mappings each); {n} need at least {}",
            bus_daemon::fd_limit::MAPS_PER_TOPIC,
            n * bus_daemon::fd_limit::MAPS_PER_TOPIC + bus_daemon::fd_limit::MAP_RESERVE
        )
    })
}

/// One record of `kind` for `n` topics; `index` makes the daemon's prefix unique within the run; `pinned`: the
/// harness is pinned to CPU 0 (the daemon it starts inherits that).
pub fn measure(kind: Kind, n: u64, index: usize, pinned: bool) -> Record {
    let mut r = Record::new(kind, Mode::Scale, 0, n, 0, 0);
    r.pinning = if pinned { "harness and daemon on CPU 0" } else { "none" }.into();
    r.scale.topics = Some(n);
    if let Some(why) = too_many(n) {
        r.skipped = Some(why);
        return r;
    }
    match run(n, index, &mut r) {
        Ok(None) => {}
        Ok(Some(why)) => {
            r.scale = Scale { topics: Some(n), ..Scale::default() };
            r.shm_bytes = None;
            r.skipped = Some(why);
        }
        Err(e) => r.error = Some(e.to_string()),
    }
    r
}

fn connect(bus: &PrivateBus) -> io::Result<Bus> {
    Bus::builder()
        .socket(&bus.socket)
        .auto_reconnect(false)
        .request_timeout(Duration::from_secs(60))
        .transport(Transport::Shm)
        .fallback_to_pipes(false)
        .connect()
        .map_err(|e| io::Error::other(format!("connecting to the private daemon: {e}")))
}

fn daemon_figures(bus: &PrivateBus) -> io::Result<(u64, u64)> {
    crate::memory::process(bus.pid()).ok_or_else(|| io::Error::other("cannot read the daemon's /proc entries"))
}

/// Measures `n` topics into `r`; `Ok(Some(why))` when /dev/shm turns out too small for them.
fn run(n: u64, index: usize, r: &mut Record) -> io::Result<Option<String>> {
    let prefix = format!("shbench{}-s{index}", std::process::id());
    // The default shm_budget (2 GiB of footprint) would stop the default geometry at about 480 topics.
    let mut daemon =
        PrivateBus::with_config(&prefix, "[daemon]\nauto_create = false\nshm_budget = 1125899906842624\n")?;
    let (rss0, fds0) = daemon_figures(&daemon)?;
    let client = connect(&daemon)?;
    let name = |i: u64| format!("s{i:05}");
    let create = |i: u64| {
        client
            .create_topic(&name(i), TopicSpec::default())
            .map_err(|e| io::Error::other(format!("creating topic {} of {n}: {e}", i + 1)))
    };
    let t = Instant::now();
    create(0)?;
    if let Some(why) = no_room(&prefix, n)? {
        return Ok(Some(why));
    }
    for i in 1..n {
        create(i)?;
    }
    let took = t.elapsed().as_secs_f64();
    let (objects, bytes) = crate::memory::shm_objects(&prefix)?;

    let t = Instant::now();
    let listed = client.topics().map_err(|e| io::Error::other(format!("listing: {e}")))?.len() as u64;
    let list_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let counted = client.stats(None).map_err(|e| io::Error::other(format!("stats: {e}")))?.len() as u64;
    let stats_secs = t.elapsed().as_secs_f64();
    if listed != n || counted != n {
        return Err(io::Error::other(format!("{n} topics created, {listed} listed, {counted} in the stats")));
    }
    // After the listings, which read every topic's header: the daemon's steady idle state.
    let (rss, fds) = daemon_figures(&daemon)?;
    drop(client);

    let t = Instant::now();
    daemon.kill_and_restart()?;
    let adopt_secs = loop {
        if let Ok(b) = connect(&daemon) {
            if b.topics().is_ok_and(|t| t.len() as u64 == n) {
                break t.elapsed().as_secs_f64();
            }
        }
        if daemon.exited() || t.elapsed() > ADOPT_LIMIT {
            return Err(io::Error::other(format!(
                "the restarted daemon did not list {n} topics; log:\n{}",
                daemon.log()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };

    let per = |v: u64, base: u64| v.saturating_sub(base) as f64 / n as f64;
    r.shm_bytes = Some(bytes);
    r.scale = Scale {
        topics: Some(n),
        create_per_sec: Some(n as f64 / took.max(1e-9)),
        list_secs: Some(list_secs),
        stats_secs: Some(stats_secs),
        adopt_secs: Some(adopt_secs),
        daemon_rss: Some(rss),
        daemon_rss_per_topic: Some(per(rss, rss0)),
        daemon_fds: Some(fds),
        daemon_fds_per_topic: Some(per(fds, fds0)),
        shm_objects: Some(objects),
        shm_objects_per_topic: Some(objects as f64 / n as f64),
        shm_bytes_per_topic: Some(bytes as f64 / n as f64),
    };
    Ok(None)
}

/// Why /dev/shm cannot hold `n` topics like the first one under `prefix`, if it cannot: each commits what the
/// first commits idle (its `st_blocks`; layout 4: 16 KiB of the default geometry), and the creation of the last
/// one needs its whole footprint free (the daemon's check at creation).
fn no_room(prefix: &str, n: u64) -> io::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let (mut footprint, mut committed) = (0, 0);
    for e in std::fs::read_dir("/dev/shm")?.flatten() {
        if e.file_name().to_string_lossy().strip_prefix(prefix).is_some_and(|r| r.starts_with('.')) {
            let m = e.metadata();
            footprint += m.as_ref().map_or(0, |m| m.len());
            committed += m.map_or(0, |m| m.blocks() * 512);
        }
    }
    let v = nix::sys::statvfs::statvfs("/dev/shm").map_err(io::Error::from)?;
    let free = v.blocks_available() as u64 * v.fragment_size() as u64;
    let need = committed.saturating_mul(n.saturating_sub(1)).saturating_add(footprint);
    Ok((need > free).then(|| {
        format!(
            "/dev/shm has {} MiB free, {n} topics committing {} KiB each (and one {} KiB footprint) need {} MiB more",
            free >> 20,
            committed >> 10,
            footprint >> 10,
            need >> 20
        )
    }))
}
