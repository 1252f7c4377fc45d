//! `shmbus pub`: publish arguments, generated messages, standard-input lines, or all of standard input or a file
//! as one message (`--raw`, `--file`).

use crate::args::PubArgs;
use crate::exit::NoRoomWithin;
use anyhow::Context;
use bus_client::SendError;
use std::io::BufRead;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the messages come from.
enum Source {
    /// The command-line messages, repeated until `count` (once each without a count).
    Given { msgs: Vec<Vec<u8>>, count: u64 },
    /// `msg-0`, `msg-1`, ... up to `count`.
    Generated { count: u64 },
    /// One message per line of standard input.
    Stdin,
    /// All of standard input, or of a file, as one message.
    Whole(Option<PathBuf>),
}

impl Source {
    fn from_args(a: &PubArgs) -> Source {
        if a.raw || a.file.is_some() {
            return Source::Whole(a.file.clone());
        }
        match (a.messages.is_empty(), a.count) {
            (false, count) => Source::Given {
                msgs: a.messages.iter().map(|m| m.as_bytes().to_vec()).collect(),
                count: count.unwrap_or(a.messages.len() as u64),
            },
            (true, Some(count)) => Source::Generated { count },
            (true, None) => Source::Stdin,
        }
    }
}

/// Spaces messages evenly at `rate` per second (no pacing without a rate).
struct Pacer {
    start: Instant,
    interval: Option<f64>,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Pacer {
        Pacer { start: Instant::now(), interval: rate.map(|r| 1.0 / r) }
    }

    /// Sleeps until message `i` is due.
    fn wait(&self, i: u64) {
        if let Some(iv) = self.interval {
            let due = self.start + Duration::from_secs_f64(iv * i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

pub fn run(socket: Option<PathBuf>, a: PubArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    let missing = crate::missing(&bus, &a.topic);
    let mut p = bus
        .publisher_builder(&a.topic)
        .idle(a.idle.into())
        .open()
        .with_context(|| format!("cannot open a publisher on topic {:?}", a.topic))?;
    if missing {
        crate::say_created_on_demand(&a.topic);
    }
    let max = p.max_message();
    let pacer = Pacer::new(a.rate);
    let mut sent = 0u64;
    let mut send = |msg: &[u8]| -> anyhow::Result<()> {
        pacer.wait(sent);
        let r = match a.timeout {
            Some(d) => p.send_timeout(msg, d),
            None => p.send(msg),
        };
        match r {
            Err(SendError::Timeout) if a.timeout.is_some() => {
                let within = a.timeout.expect("matched");
                return Err(
                    NoRoomWithin { topic: a.topic.clone(), within, sent, held_by: holder(&bus, &a.topic) }.into()
                );
            }
            r => r.with_context(|| format!("cannot publish message {sent} on {:?}", a.topic))?,
        };
        sent += 1;
        Ok(())
    };
    match Source::from_args(&a) {
        Source::Whole(file) => {
            let msg = read_whole(file.as_deref(), max)?;
            send(&msg)?;
        }
        Source::Given { msgs, count } => {
            for m in msgs.iter().cycle().take(count as usize) {
                send(m)?;
            }
        }
        Source::Generated { count } => {
            for i in 0..count {
                send(format!("msg-{i}").as_bytes())?;
            }
        }
        Source::Stdin => {
            let mut input = std::io::stdin().lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                if input.read_until(b'\n', &mut line).context("cannot read standard input")? == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                send(&line)?;
            }
        }
    }
    tracing::info!(topic = %a.topic, messages = sent, "published");
    Ok(())
}

/// A message larger than the topic's largest (`pub --raw`, `pub --file`).
#[derive(Debug, thiserror::Error)]
#[error("{what} is {len} bytes or more, larger than the topic's largest message ({max} bytes; see `shmbus topics`)")]
pub struct TooLarge {
    /// Standard input or the file.
    pub what: String,
    /// Bytes read (at least).
    pub len: u64,
    /// The topic's largest message.
    pub max: usize,
}

/// All of `file` (standard input when `None`), refused without reading more than `max + 1` bytes when it is
/// larger than `max`.
/// The lossless subscriber furthest behind on `topic` (the one holding it full), as the daemon's stats show it.
fn holder(bus: &bus_client::Bus, topic: &str) -> Option<String> {
    let stats = bus.stats(Some(topic)).ok()?;
    let s = stats.first()?.subscribers.iter().filter(|s| s.gating).max_by_key(|s| s.lag)?;
    let pid = s.pid.map(|p| format!("pid {p}, ")).unwrap_or_default();
    Some(format!("the lossless subscriber in slot {} ({pid}{} messages behind)", s.slot, s.lag))
}

fn read_whole(file: Option<&std::path::Path>, max: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let (what, input): (String, Box<dyn Read>) = match file {
        Some(f) => {
            let what = format!("file {}", f.display());
            let h = std::fs::File::open(f).with_context(|| format!("cannot open {what}"))?;
            let len = h.metadata().with_context(|| format!("cannot stat {what}"))?.len();
            if len > max as u64 {
                return Err(TooLarge { what, len, max }.into());
            }
            (what, Box::new(h))
        }
        None => ("standard input".to_string(), Box::new(std::io::stdin().lock())),
    };
    let mut msg = Vec::new();
    input.take(max as u64 + 1).read_to_end(&mut msg).with_context(|| format!("cannot read {what}"))?;
    if msg.len() > max {
        return Err(TooLarge { what, len: msg.len() as u64, max }.into());
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Idle;

    fn args(messages: &[&str], count: Option<u64>) -> PubArgs {
        PubArgs {
            topic: "t".into(),
            messages: messages.iter().map(Into::into).collect(),
            rate: None,
            count,
            idle: Idle::Adaptive,
            timeout: None,
            raw: false,
            file: None,
        }
    }

    #[test]
    fn sources() {
        assert!(matches!(Source::from_args(&args(&[], None)), Source::Stdin));
        assert!(matches!(Source::from_args(&args(&[], Some(3))), Source::Generated { count: 3 }));
        assert!(matches!(Source::from_args(&args(&["a", "b"], None)), Source::Given { count: 2, .. }));
        assert!(matches!(Source::from_args(&args(&["a"], Some(5))), Source::Given { count: 5, .. }));
        let raw = PubArgs { raw: true, ..args(&[], None) };
        assert!(matches!(Source::from_args(&raw), Source::Whole(None)));
    }

    #[test]
    fn pacer_spaces_messages() {
        let p = Pacer::new(Some(100.0));
        p.wait(3);
        assert!(p.start.elapsed() >= Duration::from_millis(30));
    }
}
