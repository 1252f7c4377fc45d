//! Helpers shared by the ring's in-process tests (`basic.rs`, `defects.rs`, `alloc_model.rs`, `untrusted.rs`,
//! `model.rs`); each test crate includes this module with `mod common;` and uses its own part of it.
#![allow(dead_code)]

use proptest::prelude::*;
use shmbus_ring::{Geometry, Mode, PollWaiter, Publisher, PublisherOptions, Subscriber, SubscriberOptions, Topic};
use std::sync::Arc;

/// A waiter without semaphores (sleeps poll).
pub fn w() -> Arc<PollWaiter> {
    Arc::new(PollWaiter)
}

/// A subscriber of `mode` in `slot`, with every publisher reported alive.
pub fn sub(t: &Topic, slot: usize, mode: Mode) -> Subscriber {
    Subscriber::attach(t, slot, SubscriberOptions { mode, ..Default::default() }, w(), &|_| false).unwrap()
}

/// A publisher in `slot` with the default options.
pub fn publ(t: &Topic, slot: usize) -> Publisher {
    Publisher::attach(t, slot, w(), PublisherOptions::default()).unwrap()
}

/// Sends each of `range` as a one-byte message and receives it on `s` at once: the topic flows.
pub fn flows(p: &mut Publisher, s: &mut Subscriber, range: std::ops::Range<u8>) {
    for i in range {
        p.try_send(&[i]).unwrap_or_else(|e| panic!("send {i}: {e}"));
        assert_eq!(s.try_recv().unwrap_or_else(|e| panic!("recv {i}: {e}")).payload(), &[i]);
    }
}

/// Proptest configuration: `default_cases` cases unless `PROPTEST_CASES` says otherwise, or 1,000,000
/// (`SHMBUS_FUZZ_CASES` if set) with `SHMBUS_LONG_FUZZ=1`. Failures persist next to the test file
/// (`tests/<name>.proptest-regressions`) and are replayed before new cases.
pub fn config(default_cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig {
        failure_persistence: Some(Box::new(prop::test_runner::FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    };
    let long = std::env::var("SHMBUS_LONG_FUZZ").is_ok_and(|v| !v.is_empty() && v != "0");
    if long {
        c.cases = std::env::var("SHMBUS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    } else if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    c
}

/// A geometry from generated knobs `(log2 capacity, log2(entry bytes / 32), max message, extra region lines,
/// publishers, subscribers, groups)`: regions hold at least one maximum message (none when every message fits
/// inline, except `extra / 2` lines), plus `extra` lines. Panics with `what` unless it validates.
pub fn shaped_geometry(
    (cap_log, entry_log, max_message, extra, max_publishers, max_subscribers, max_groups): (
        u32,
        u32,
        u32,
        u64,
        u32,
        u32,
        u32,
    ),
    what: &str,
) -> Geometry {
    let entry_bytes = 32 << entry_log;
    let inline = entry_bytes - 32;
    let region_bytes =
        if max_message <= inline { extra / 2 * 128 } else { (max_message as u64).div_ceil(128) * 128 + extra * 128 };
    let g = Geometry {
        capacity: 1 << cap_log,
        entry_bytes,
        max_message,
        region_bytes,
        max_publishers,
        max_subscribers,
        max_groups,
    };
    g.validate().expect(what);
    g
}

/// SplitMix64: a deterministic word generator (faster than generating thousands of words through proptest).
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next word.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
