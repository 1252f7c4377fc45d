//! Import: Zenoh samples under `shmbus/<topic>` published on the local topic, one thread for all topics.
//!
//! Samples reach this thread through a bounded channel; when it is full, Zenoh's reception waits, so a slow
//! local bus slows the remote exporter (lossless streams, `Block`) instead of losing silently. A lossless
//! stream's message is published with a waiting send, as any local lossless publisher would, for at most
//! `import_block` (then dropped, counted as `import_full` and logged: the bound breaks the cycle of a topic
//! bridged both ways with both topics full); a lossy stream's with `try_send`, counting what a full topic drops.

use crate::config::Settings;
use crate::echo::Slots;
use crate::meta::Meta;
use crate::reporting::{add, Reporting};
use crate::sources::{Sources, Verdict};
use crate::stats::Stats;
use crate::Shared;
use bus_client::{OpenError, Publisher, SendError, TopicSpec, TypeInfo};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use zenoh::sample::{Locality, Sample};
use zenoh::Wait;

/// How long a wait lasts before looking at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// After a failed open, samples of the topic are refused (and counted) for this long before the next try.
const RETRY_OPEN: Duration = Duration::from_secs(1);
/// At most one "topic stayed full" line per topic this often (the counter has them all).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The local side of one imported topic.
struct Local {
    publisher: Option<Publisher>,
    /// The payload type the publisher registered.
    typed: Option<TypeInfo>,
    /// The last sequence it published (for the no-echo bookkeeping).
    last_seq: Option<u64>,
    slots: Arc<Slots>,
    /// The last refusal, for logging each reason once, and when it happened (open retries wait).
    refusal: Option<(String, Instant)>,
    /// When a lossless drop was last logged (at most one line per [`WARN_EVERY`]).
    full_warned: Option<Instant>,
    /// This topic's counters (reported to the daemon while the publisher is open).
    ts: Arc<Stats>,
}

impl Local {
    fn close(&mut self, topic: &str, reporting: &Reporting) {
        if let Some(p) = self.publisher.take() {
            self.slots.release(p.id(), self.last_seq.take());
            reporting.release(topic);
        }
    }

    fn refuse(&mut self, topic: &str, why: String, stats: &Stats) {
        add(stats, &self.ts, |s| &s.refused, 1);
        if self.refusal.as_ref().is_none_or(|(w, _)| *w != why) {
            tracing::warn!(topic, "refusing the imported stream: {why}");
        }
        self.refusal = Some((why, Instant::now()));
    }
}

/// Runs the import until shutdown.
pub fn run(sh: &Arc<Shared>, settings: &Settings) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::sync_channel::<Sample>(settings.import_queue);
    let mut keys: Vec<String> =
        settings.import.iter().filter_map(|g| g.literal()).map(|t| format!("shmbus/{t}")).collect();
    if settings.import.iter().any(|g| g.literal().is_none()) {
        keys = vec!["shmbus/*".to_string()]; // every topic, filtered by pattern below
    }
    keys.dedup();
    let mut subs = Vec::new();
    for k in &keys {
        let tx = tx.clone();
        let s = sh
            .session
            .declare_subscriber(k.as_str())
            .allowed_origin(Locality::Remote)
            // Blocks Zenoh's reception while the channel is full: back-pressure, not loss. A closed channel
            // (the import stopping) drops the sample.
            .callback(move |sample| drop(tx.send(sample)))
            .wait()
            .map_err(|e| anyhow::anyhow!("cannot subscribe to {k}: {e}"))?;
        subs.push(s);
    }
    drop(tx);
    // Exporters follow these to show this bridge as a remote subscriber of what it imports.
    let mut tokens = Vec::new();
    for g in &settings.import {
        let key = crate::remotes::token_key(&settings.id, g.as_str());
        match sh.session.liveliness().declare_token(key.as_str()).wait() {
            Ok(t) => tokens.push(t),
            Err(e) => {
                tracing::warn!(pattern = g.as_str(), error = %e, "cannot declare the importer's liveliness token")
            }
        }
    }
    tracing::info!(keys = ?keys, "importing");
    let mut imp = Importer { sh: sh.clone(), settings, locals: HashMap::new(), sources: Sources::default() };
    while !sh.shutdown.load(Ordering::Relaxed) {
        match rx.recv_timeout(POLL) {
            Ok(sample) => imp.handle(&sample),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for (topic, l) in imp.locals.iter_mut() {
        l.close(topic, &sh.reporting);
    }
    drop(tokens);
    drop(rx); // unblocks a callback waiting on a full channel before the subscribers are undeclared
    drop(subs);
    Ok(())
}

struct Importer<'a> {
    sh: Arc<Shared>,
    settings: &'a Settings,
    locals: HashMap<String, Local>,
    sources: Sources,
}

impl Importer<'_> {
    fn handle(&mut self, sample: &Sample) {
        let sh = self.sh.clone();
        let stats = &sh.stats;
        let Some(topic) = sample.key_expr().as_str().strip_prefix("shmbus/") else { return };
        if shmbus_proto::names::validate_topic(topic).is_err() || !self.settings.imports(topic) {
            return; // not a topic name, or not one this bridge imports: not ours to count
        }
        let topic = topic.to_string();
        let meta = match sample.attachment().map(|a| Meta::decode(&a.to_bytes())) {
            Some(Ok(m)) => m,
            Some(Err(e)) => return self.local(&topic).refuse(&topic, format!("bad attachment: {e}"), stats),
            None => return self.local(&topic).refuse(&topic, "a sample without attachment".into(), stats),
        };
        if meta.bridge == sh.bridge && meta.run == sh.run {
            return; // our own export (Zenoh delivers remote samples only; this is a second guard)
        }
        self.account(&topic, &meta);
        let payload = sample.payload().to_bytes();
        self.publish(&topic, &meta, &payload);
    }

    fn local(&mut self, topic: &str) -> &mut Local {
        let slots = self.sh.echo.slots(topic);
        let ts = self.sh.reporting.stats(topic);
        self.locals.entry(topic.to_string()).or_insert_with(|| Local {
            publisher: None,
            typed: None,
            last_seq: None,
            slots,
            refusal: None,
            full_warned: None,
            ts,
        })
    }

    /// Counts and logs what the sample says about its stream.
    fn account(&mut self, topic: &str, m: &Meta) {
        let sh = self.sh.clone();
        let stats = &sh.stats;
        let ts = self.local(topic).ts.clone();
        let count = |c: fn(&Stats) -> &std::sync::atomic::AtomicU64, n| add(stats, &ts, c, n);
        match self.sources.observe(topic, m) {
            Verdict::Next => {}
            Verdict::First { at } => {
                count(|s| &s.sources, 1);
                tracing::info!(topic, bridge = format_args!("{:016x}", m.bridge), at, "new incoming stream");
            }
            Verdict::Gap { missed } => {
                count(|s| &s.gaps, 1);
                count(|s| &s.lost, missed);
                tracing::warn!(topic, bridge = format_args!("{:016x}", m.bridge), missed, "gap in the incoming stream");
            }
            Verdict::Restarted { missed } => {
                count(|s| &s.source_restarts, 1);
                count(|s| &s.gaps, 1);
                count(|s| &s.lost, missed.unwrap_or(0));
                match missed {
                    Some(missed) => tracing::warn!(
                        topic,
                        bridge = format_args!("{:016x}", m.bridge),
                        missed,
                        "the exporter restarted; messages published meanwhile are missing (at most this many)"
                    ),
                    None => tracing::warn!(
                        topic,
                        bridge = format_args!("{:016x}", m.bridge),
                        "the exporter restarted and its topic sequence went back; an unknown number is missing"
                    ),
                }
            }
            Verdict::Old => count(|s| &s.out_of_order, 1),
        }
    }

    fn publish(&mut self, topic: &str, m: &Meta, payload: &[u8]) {
        let sh = self.sh.clone();
        let create = self.settings.create_topics;
        let block = self.settings.import_block;
        let l = self.local(topic);
        if l.publisher.is_some() && l.typed != m.payload_type {
            tracing::info!(topic, "the incoming payload type changed; reopening the local publisher");
            l.close(topic, &sh.reporting);
            l.refusal = None;
        }
        if l.publisher.is_none() {
            if l.refusal.as_ref().is_some_and(|(_, at)| at.elapsed() < RETRY_OPEN) {
                add(&sh.stats, &l.ts, |s| &s.refused, 1);
                return;
            }
            match open(&sh, topic, m, create) {
                Ok(p) => {
                    l.slots.hold(p.id());
                    sh.reporting.hold(topic);
                    l.publisher = Some(p);
                    l.typed = m.payload_type.clone();
                    l.refusal = None;
                }
                Err(why) => return l.refuse(topic, why, &sh.stats),
            }
        }
        let Some(p) = l.publisher.as_mut() else { return };
        let r = if m.lossy {
            p.try_send(payload)
        } else {
            let start = Instant::now();
            loop {
                match p.send_timeout(payload, POLL) {
                    Err(SendError::Timeout) if sh.shutdown.load(Ordering::Relaxed) => break Err(SendError::Timeout),
                    Err(SendError::Timeout) if block.is_zero() || start.elapsed() < block => continue,
                    Err(SendError::Timeout) => break Err(SendError::Full),
                    r => break r,
                }
            }
        };
        match r {
            Ok(seq) => {
                l.last_seq = Some(seq);
                add(&sh.stats, &l.ts, |s| &s.imported, 1);
            }
            Err(SendError::Full) => {
                add(&sh.stats, &l.ts, |s| &s.import_full, 1);
                if !m.lossy && l.full_warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    l.full_warned = Some(Instant::now());
                    tracing::warn!(
                        topic,
                        waited_ms = block.as_millis() as u64,
                        "the local topic stayed full; dropping imported messages (counted as import_full)"
                    );
                }
            }
            Err(SendError::Closed) => {
                l.close(topic, &sh.reporting);
                l.refuse(topic, "the local topic closed (deleted or recreated); reopening".into(), &sh.stats);
                l.refusal = None; // reopen at the next sample
            }
            Err(e) => l.refuse(topic, format!("cannot publish locally: {e}"), &sh.stats),
        }
    }
}

/// Opens the local publisher. With `create`, first creates the topic with the exporter's capacity and largest
/// message: an existing topic keeps its own (the daemon answers `AlreadyExists` when they differ), and a
/// refusal (policy) leaves it to the daemon's `auto_create` or to an existing topic.
fn open(sh: &Shared, topic: &str, m: &Meta, create: bool) -> Result<Publisher, String> {
    if create {
        let spec = TopicSpec {
            capacity: (m.capacity > 0).then_some(m.capacity),
            max_message: (m.max_message > 0).then_some(m.max_message),
            ..TopicSpec::default()
        };
        match sh.bus.create_topic(topic, spec) {
            Ok(()) => tracing::info!(topic, capacity = m.capacity, max_message = m.max_message, "imported topic ready"),
            Err(bus_client::ControlError::AlreadyExists(_)) => {}
            Err(e) => tracing::debug!(topic, error = %e, "not creating the imported topic; opening it as it is"),
        }
    }
    let b = sh.bus.publisher_builder(topic);
    let b = match &m.payload_type {
        Some(t) => b.payload_type(t.clone()),
        None => b,
    };
    b.open().map_err(|e| match e {
        OpenError::TypeMismatch(why) => format!("payload type mismatch: {why}"),
        e => format!("cannot open a local publisher: {e}"),
    })
}
