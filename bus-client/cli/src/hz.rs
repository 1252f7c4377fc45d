//! `shmbus hz TOPIC`: the observed message rate, bandwidth and message-size distribution of a topic, one line
//! (or JSON object) per `--window`, until Ctrl-C or `--count` windows ([`crate::window`]).
//!
//! It attaches as a lossy subscriber, so it never holds publishers back; what it misses when it falls a lap behind
//! is counted as lapped, not guessed at.

use crate::args::HzArgs;
use crate::interrupt::Interrupt;
use crate::window::Window;
use anyhow::Context;
use bus_client::{RecvError, Subscriber};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Topic closed while being watched.
#[derive(Debug, thiserror::Error)]
#[error("topic {0:?} was closed")]
pub struct TopicClosed(pub String);

pub fn run(socket: Option<PathBuf>, a: HzArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    let what = || format!("cannot watch topic {:?}", a.topic);
    // Only an existing topic the caller may see: subscribing would create a missing one on first use.
    bus.stats(Some(&a.topic)).with_context(what)?;
    let mut sub = bus.subscriber_builder(&a.topic).lossy().open().with_context(what)?;
    let stop = Interrupt::install()?;
    let mut out = io::stdout().lock();
    let mut done = 0u64;
    while a.count.is_none_or(|n| done < n) {
        let start = Instant::now();
        let Some(w) = window(&mut sub, start + a.window, &stop)? else { break };
        let elapsed = start.elapsed();
        let r = if a.json {
            writeln!(out, "{}", w.json(&a.topic, elapsed))
        } else {
            writeln!(out, "{}", w.line(&a.topic, elapsed))
        };
        match r.and_then(|()| out.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            r => r?,
        }
        done += 1;
    }
    Ok(())
}

/// Counts what arrives until `end`; `None` when a signal came first (the partial window is not printed).
fn window(sub: &mut Subscriber, end: Instant, stop: &Interrupt) -> anyhow::Result<Option<Window>> {
    let topic = sub.topic().to_string();
    let mut w = Window::new();
    loop {
        if stop.is_set() {
            return Ok(None);
        }
        // A message available now is taken even past `end`, so look at the clock after each one too.
        let now = Instant::now();
        if now >= end {
            return Ok(Some(w));
        }
        match sub.recv_deadline(Interrupt::next_look(end)) {
            Ok(m) => w.message(m.len()),
            Err(RecvError::Timeout) => {}
            Err(RecvError::Lagged(n)) => w.lapped(n),
            Err(RecvError::Closed) => return Err(TopicClosed(topic).into()),
            Err(e) => return Err(e).with_context(|| format!("cannot receive from topic {topic:?}")),
        }
    }
}
