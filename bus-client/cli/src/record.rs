//! `shmbus record`: subscribe to a topic and write its messages, with their metadata and receive times, into a
//! record file ([`crate::record_file`], docs/record-format.md).

use crate::args::RecordArgs;
use crate::record_file::{Header, Msg, Writer};
use anyhow::{bail, Context};
use bus_client::{Bus, RecvError, Subscriber};
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the loop looks at the stop flag and the deadline while the topic is quiet.
const POLL: Duration = Duration::from_millis(100);

/// Why recording stopped.
enum Stop {
    Count,
    Duration,
    Signal,
    Closed,
}

pub fn run(socket: Option<PathBuf>, a: RecordArgs) -> anyhow::Result<()> {
    if !a.force && a.file.symlink_metadata().is_ok() {
        bail!("{} exists (use --force to overwrite it)", a.file.display());
    }
    let bus = crate::connect(socket)?;
    let mut b = bus.subscriber_builder(&a.topic).idle(a.idle.into());
    if a.lossy {
        b = b.lossy();
    }
    if a.from_oldest {
        b = b.from_oldest();
    }
    let mut sub = b.open().with_context(|| format!("cannot subscribe to topic {:?}", a.topic))?;
    let mut header = describe(&bus, &a.topic, a.lossy)?;
    let start = Instant::now();
    header.start_unix_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    // From here on a signal stops the recording cleanly; a second one ends the process (exit 1) as usual.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone()).context("cannot handle signals")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot handle signals")?;
    }
    let file = create(&a.file, a.force)?;
    let mut w = match Writer::new(BufWriter::with_capacity(256 * 1024, file), &header) {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&a.file);
            return Err(e).with_context(|| format!("cannot write the header of {}", a.file.display()));
        }
    };
    let what = || format!("cannot write {}", a.file.display());
    let result = pump(&mut sub, &mut w, &a, start, &stop);
    // Finish the file whatever ended the loop, so that what was received is kept.
    let (messages, bytes, gaps, lost) = (w.messages(), w.bytes(), w.gaps(), w.lost());
    let finished = w
        .finish(nanos_since(start))
        .and_then(|out| out.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_data())
        .with_context(what);
    // A receive or write error is the one to report; the file holds what was written before it.
    let why = result?;
    finished?;
    let stopped = match why {
        Stop::Count => "--count reached",
        Stop::Duration => "--duration elapsed",
        Stop::Signal => "interrupted",
        Stop::Closed => "the topic was closed",
    };
    eprintln!(
        "shmbus: recorded {messages} messages ({bytes} payload bytes) from {:?} into {} in {:.3}s; {gaps} gaps \
         ({lost} messages lost); stopped: {stopped}",
        a.topic,
        a.file.display(),
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Receives and writes until `--count`, `--duration`, a signal or `Closed`. Gaps (a lossy recorder lapped)
/// become gap records; a demotion is reported on stderr.
fn pump(
    sub: &mut Subscriber,
    w: &mut Writer<BufWriter<File>>,
    a: &RecordArgs,
    start: Instant,
    stop: &AtomicBool,
) -> anyhow::Result<Stop> {
    let deadline = a.duration.map(|d| start + d);
    let what = || format!("cannot write {}", a.file.display());
    loop {
        if a.count.is_some_and(|n| w.messages() >= n) {
            return Ok(Stop::Count);
        }
        // Relaxed: a flag polled for its own sake, guarding no other data.
        if stop.load(Ordering::Relaxed) {
            return Ok(Stop::Signal);
        }
        let now = Instant::now();
        let until = match deadline {
            Some(d) if d <= now => return Ok(Stop::Duration),
            Some(d) => d.min(now + POLL),
            None => now + POLL,
        };
        let e = match sub.recv_deadline(until) {
            Ok(m) => {
                let (seq, publisher, timestamp_ns) = (m.seq(), m.publisher(), m.timestamp());
                let msg = Msg { seq, publisher, timestamp_ns, offset_ns: nanos_since(start), payload: m.payload() };
                w.message(&msg).with_context(what)?;
                continue;
            }
            Err(e) => e,
        };
        match e {
            RecvError::Timeout => {}
            RecvError::Lagged(n) => w.gap(n, sub.position(), nanos_since(start)).with_context(what)?,
            RecvError::Demoted => {
                eprintln!(
                    "shmbus: {}: demoted to lossy (held publishers back too long); losses are recorded as gaps",
                    a.topic
                );
            }
            RecvError::Closed => return Ok(Stop::Closed),
            e => return Err(e).with_context(|| format!("cannot receive from topic {:?}", a.topic)),
        }
    }
}

/// The header fields the daemon knows: geometry and generation (from the topic list), payload type (stats).
fn describe(bus: &Bus, topic: &str, lossy: bool) -> anyhow::Result<Header> {
    let what = || format!("cannot describe topic {topic:?}");
    let info = bus.topics().with_context(what)?.into_iter().find(|t| t.name == topic);
    let Some(info) = info else { bail!("topic {topic:?} is not in the topic list") };
    let stats = bus.stats(Some(topic)).with_context(what)?;
    let payload_type = stats.into_iter().find(|s| s.name == topic).and_then(|s| s.payload_type);
    Ok(Header {
        topic: topic.to_string(),
        generation: info.generation,
        payload_type,
        geometry: info.geometry,
        start_unix_ns: 0,
        lossy,
    })
}

/// Opens `path` for writing: a new file, or with `force` an existing one emptied.
fn create(path: &Path, force: bool) -> anyhow::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).with_context(|| format!("cannot create {}", path.display()))
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let dir = std::env::temp_dir().join(format!("shmbus-record-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.rec");
        std::fs::write(&p, b"keep me").unwrap();
        let e = create(&p, false).unwrap_err();
        assert!(format!("{e:#}").contains("exists"), "{e:#}");
        assert_eq!(std::fs::read(&p).unwrap(), b"keep me");
        create(&p, true).unwrap().write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
