//! Export: one thread per local topic, reading it with a bus subscriber and publishing each message to Zenoh
//! under `shmbus/<topic>` with its [`Meta`] as the attachment.
//!
//! Back-pressure. A lossless export reads with a lossless subscriber and publishes with congestion control
//! `Block`: when the network is slower than the topic, `put` waits for room in Zenoh's bounded transmission
//! queue, the subscriber stops reading, and local publishers are held back exactly as by any slow lossless
//! subscriber (the topic's `slow_consumer_ms` demotion applies to the bridge too; a demoted export turns lossy
//! and reports what it misses). Zenoh closes a link that stays blocked past its `wait_before_close` (5 s by
//! default), after which puts go nowhere and the importer sees the gap. A lossy export never holds local
//! publishers back: it reads with a lossy subscriber, publishes with `Drop`, and every message it misses, on
//! the bus or in Zenoh's queue, leaves a hole in the bridge sequence, so the importer counts it.

use crate::echo::Slots;
use crate::meta::Meta;
use crate::reporting::add;
use crate::stats::Stats;
use crate::Shared;
use bus_client::{RecvError, Subscriber, TypeInfo};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

/// How often an export re-reads its topic's payload type (typed handles may come and go).
const TYPE_REFRESH: Duration = Duration::from_secs(1);
/// How long a receive waits before looking at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);

/// What an export needs to know about its topic.
#[derive(Clone, Debug)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Read lossily.
    pub lossy: bool,
    /// Capacity, forwarded so an importer can create the topic alike.
    pub capacity: u32,
    /// Largest message, likewise.
    pub max_message: u32,
}

/// Why an export ended.
#[derive(Debug, thiserror::Error)]
pub enum ExportEnd {
    /// The bridge is stopping.
    #[error("stopping")]
    Shutdown,
    /// The topic was deleted or recreated; the next scan reopens it if it is back.
    #[error("topic closed")]
    Closed,
    /// Opening or reading failed.
    #[error("{0}")]
    Failed(String),
}

/// Runs the export of `t` until shutdown, the topic's end, or an error.
pub fn run(sh: &Arc<Shared>, t: &Topic) -> ExportEnd {
    let b = sh.bus.subscriber_builder(&t.name);
    let b = if t.lossy { b.lossy() } else { b };
    let mut sub = match b.open() {
        Ok(s) => s,
        Err(e) => return ExportEnd::Failed(format!("cannot subscribe: {e}")),
    };
    let cc = if t.lossy { CongestionControl::Drop } else { CongestionControl::Block };
    let publisher = match sh.session.declare_publisher(format!("shmbus/{}", t.name)).congestion_control(cc).wait() {
        Ok(p) => p,
        Err(e) => return ExportEnd::Failed(format!("cannot declare the Zenoh publisher: {e}")),
    };
    tracing::info!(topic = %t.name, lossy = t.lossy, "exporting");
    let _held = Held::new(sh, &t.name);
    let slots = sh.echo.slots(&t.name);
    let meta = Meta {
        bridge: sh.bridge,
        run: sh.run,
        bridge_seq: 0,
        topic_seq: 0,
        publisher: 0,
        timestamp: 0,
        lossy: t.lossy,
        capacity: t.capacity,
        max_message: t.max_message,
        payload_type: payload_type(sh, &t.name).flatten(),
    };
    let mut ex = Export {
        sh,
        topic: t.name.clone(),
        slots,
        meta,
        att: Vec::with_capacity(128),
        refreshed: Instant::now(),
        seen: Vec::new(),
        ts: sh.reporting.stats(&t.name),
    };
    loop {
        if sh.shutdown.load(Ordering::Relaxed) {
            return ExportEnd::Shutdown;
        }
        if ex.refreshed.elapsed() >= TYPE_REFRESH {
            ex.refresh_type();
        }
        match ex.forward(&mut sub, &publisher) {
            Ok(()) => {}
            Err(e) if e.lagged().is_some() => {
                let n = e.lagged().unwrap_or(0);
                // The numbers are skipped so the importer sees exactly this gap.
                ex.meta.bridge_seq = ex.meta.bridge_seq.saturating_add(n);
                add(&sh.stats, &ex.ts, |s| &s.export_lagged, n);
                tracing::warn!(topic = %t.name, missed = n, "the export fell behind the topic; the gap is forwarded");
            }
            Err(e) if e.is_timeout() || e.is_empty() => {}
            Err(e) if e.is_closed() => return ExportEnd::Closed,
            Err(e) if e.is_transient() => tracing::warn!(topic = %t.name, error = %e, "export"),
            Err(e) => return ExportEnd::Failed(format!("cannot read: {e}")),
        }
    }
}

/// One export's state between messages.
struct Export<'a> {
    sh: &'a Shared,
    topic: String,
    slots: Arc<Slots>,
    meta: Meta,
    att: Vec<u8>,
    refreshed: Instant,
    /// Publisher slots seen: a new one may be a typed publisher that just set the topic's type.
    seen: Vec<u32>,
    /// This topic's counters (reported to the daemon).
    ts: Arc<Stats>,
}

/// The export's subscriber as the daemon report knows it: held from its opening to the export's end.
struct Held<'a>(&'a Shared, &'a str);

impl<'a> Held<'a> {
    fn new(sh: &'a Shared, topic: &'a str) -> Held<'a> {
        sh.reporting.hold(topic);
        Held(sh, topic)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.reporting.release(self.1);
    }
}

impl Export<'_> {
    fn refresh_type(&mut self) {
        if let Some(now) = payload_type(self.sh, &self.topic) {
            self.meta.payload_type = now;
        }
        self.refreshed = Instant::now();
    }

    /// Receives one message (waiting at most [`POLL`]) and publishes it, unless this bridge imported it.
    fn forward(&mut self, sub: &mut Subscriber, publisher: &zenoh::pubsub::Publisher<'_>) -> Result<(), RecvError> {
        let stats = &self.sh.stats;
        let m = sub.recv_timeout(POLL)?;
        if self.slots.is_ours(m.publisher(), m.seq()) {
            add(stats, &self.ts, |s| &s.echo_skipped, 1);
            return Ok(());
        }
        if !self.seen.contains(&m.publisher()) {
            self.seen.push(m.publisher());
            self.refresh_type();
        }
        let meta = &mut self.meta;
        meta.topic_seq = m.seq();
        meta.publisher = m.publisher();
        meta.timestamp = m.timestamp();
        meta.encode_into(&mut self.att);
        let r = publisher.put(m.payload()).attachment(self.att.as_slice()).wait();
        meta.bridge_seq = meta.bridge_seq.saturating_add(1);
        match r {
            Ok(()) => add(stats, &self.ts, |s| &s.exported, 1),
            Err(e) => {
                add(stats, &self.ts, |s| &s.export_failed, 1);
                tracing::warn!(error = %e, "a Zenoh put failed; the importer will count the gap");
            }
        }
        Ok(())
    }
}

/// The payload type typed handles registered on `topic` (`Some(None)`: untyped), or `None` when the daemon did
/// not answer (the export keeps what it had).
fn payload_type(sh: &Shared, topic: &str) -> Option<Option<TypeInfo>> {
    Some(sh.bus.stats(Some(topic)).ok()?.into_iter().next()?.payload_type)
}
