//! The helper process of the multi-process tests (`ring-peer`): it opens a topic's objects by name, as a client
//! that received them from the daemon would map them, takes its lease's liveness lock, and plays one role.
//!
//! Output protocol (stdout, one line each, `key=value` words): `ready ...` once attached, `claimed ...`,
//! `stalled ...` or `holding ...` when a crash-test role reaches the point where it waits to be killed, and
//! `done ...` with its counts on success. Violations go to stderr with a non-zero exit code.

mod claim;
mod joiner;
mod lossless;
mod lossy;
pub mod member;
mod producer;

use crate::lease_lock_offset;
use clap::{Args, Parser, Subcommand, ValueEnum};
use shmbus_os::{Access, ShmObject};
use shmbus_proto::names;
use shmbus_ring::{IdleStrategy, Mode, Subscriber, SubscriberOptions, Topic};
use shmbus_shm::{map_topic, FutexWaiter};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Command line of `ring-peer`.
#[derive(Parser, Debug)]
#[command(name = "ring-peer", about = "Helper process of the shmbus multi-process tests")]
pub struct Cli {
    /// Shm prefix of the topic.
    #[arg(long)]
    pub prefix: String,
    /// Topic name.
    #[arg(long, default_value = crate::shm_fixture::TOPIC)]
    pub topic: String,
    /// Seed of the message sizes and contents (producers and consumers must agree).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fail when a send or receive makes no progress for this many seconds.
    #[arg(long, default_value_t = 60)]
    pub stall_secs: u64,
    /// Exit with code 4 after this many seconds, whatever the role is doing.
    #[arg(long, default_value_t = 600)]
    pub deadline_secs: u64,
    /// The role to play.
    #[command(subcommand)]
    pub role: Role,
}

/// Idle strategy names on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Idle {
    /// [`IdleStrategy::BusySpin`].
    BusySpin,
    /// [`IdleStrategy::SpinThenYield`].
    SpinThenYield,
    /// [`IdleStrategy::Blocking`].
    Blocking,
    /// [`IdleStrategy::Adaptive`].
    Adaptive,
}

impl From<Idle> for IdleStrategy {
    fn from(i: Idle) -> IdleStrategy {
        match i {
            Idle::BusySpin => IdleStrategy::BusySpin,
            Idle::SpinThenYield => IdleStrategy::SpinThenYield,
            Idle::Blocking => IdleStrategy::Blocking,
            Idle::Adaptive => IdleStrategy::Adaptive,
        }
    }
}

/// How many messages a consumer expects from one producer (`P=N` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Producer id (publisher slot).
    pub producer: u32,
    /// Messages it publishes.
    pub count: u64,
}

fn parse_expect(s: &str) -> Result<Expect, String> {
    let (p, n) = s.split_once('=').ok_or_else(|| format!("expected P=N, got {s:?}"))?;
    Ok(Expect {
        producer: p.parse().map_err(|e| format!("producer in {s:?}: {e}"))?,
        count: n.parse().map_err(|e| format!("count in {s:?}: {e}"))?,
    })
}

/// What the lossless and lossy consumer roles are told.
#[derive(Args, Debug)]
pub struct Consumer {
    /// Subscriber slot.
    #[arg(long)]
    pub slot: usize,
    /// Messages per producer, `P=N` (repeat): all of them for a lossless reader, those published while it is
    /// attached for a lossy one.
    #[arg(long, value_parser = parse_expect, required = true)]
    pub expect: Vec<Expect>,
    /// How `recv` waits for data.
    #[arg(long, value_enum, default_value = "adaptive")]
    pub idle: Idle,
}

/// The roles a peer can play.
#[derive(Subcommand, Debug)]
pub enum Role {
    /// Publish `count` messages (per-producer sequence 0..count) from publisher slot `slot`, waiting for room.
    Producer {
        /// Publisher slot (also the producer id).
        #[arg(long)]
        slot: usize,
        /// Messages to send.
        #[arg(long)]
        count: u64,
        /// How `send` waits for room.
        #[arg(long, value_enum, default_value = "spin-then-yield")]
        idle: Idle,
    },
    /// Lossless subscriber: every expected message exactly once, per producer in order, intact.
    Lossless {
        /// Slot, expected messages and idle strategy.
        #[command(flatten)]
        consumer: Consumer,
        /// After this many messages, stop reading (still gating) and wait to be killed.
        #[arg(long)]
        stall_after: Option<u64>,
    },
    /// Lossy subscriber: intact messages, per producer strictly increasing, and received + lagged == published.
    Lossy {
        /// Slot, messages published while attached and idle strategy.
        #[command(flatten)]
        consumer: Consumer,
    },
    /// Consumer-group member: records every message it completes to `out` until the group has handed out every
    /// ring position below `until`.
    Member {
        /// Subscriber slot.
        #[arg(long)]
        slot: usize,
        /// Group index (opened by the test before the member starts).
        #[arg(long, default_value_t = 0)]
        group: usize,
        /// The ring position the group must reach before the member stops.
        #[arg(long)]
        until: u64,
        /// File the records are written to.
        #[arg(long)]
        out: PathBuf,
        /// How `recv` waits for data.
        #[arg(long, value_enum, default_value = "adaptive")]
        idle: Idle,
        /// Take this many messages, then hold the last one without releasing it and wait to be killed.
        #[arg(long)]
        hold_after: Option<u64>,
    },
    /// Attach while producers run, take `per_round` positions, detach, and again, until the stream ends.
    Joiner {
        /// Subscriber slot.
        #[arg(long)]
        slot: usize,
        /// Messages published per producer in all, `P=N` (repeat).
        #[arg(long, value_parser = parse_expect, required = true)]
        expect: Vec<Expect>,
        /// Attach lossy instead of lossless.
        #[arg(long)]
        lossy: bool,
        /// Ring positions (messages or lagged) per round.
        #[arg(long, default_value_t = 1000)]
        per_round: u64,
        /// How `recv` waits for data.
        #[arg(long, value_enum, default_value = "adaptive")]
        idle: Idle,
    },
    /// Publish `before` messages, then claim an entry with a loan (or stop inside the claim, `--vanish`) and wait
    /// to be killed holding it.
    DieMidClaim {
        /// Publisher slot.
        #[arg(long)]
        slot: usize,
        /// Messages to publish normally first.
        #[arg(long, default_value_t = 0)]
        before: u64,
        /// Length of the loan.
        #[arg(long, default_value_t = 500)]
        len: usize,
        /// Stop right after the claim's tail compare-and-swap, before stamping the entry (a vacancy; topics
        /// with several publishers), instead of holding a loan.
        #[arg(long)]
        vanish: bool,
    },
}

/// A topic opened by name, with the lease's liveness lock held for the life of the process.
pub(crate) struct Opened {
    pub(crate) topic: Topic,
    pub(crate) waiter: Arc<FutexWaiter>,
    _data: ShmObject,
    _readers: ShmObject,
}

fn open(cli: &Cli, data_access: Access, publisher: bool, slot: usize) -> Result<Opened, String> {
    let data = ShmObject::open(&names::data_object(&cli.prefix, &cli.topic), data_access).map_err(|e| e.to_string())?;
    let readers = ShmObject::open(&names::readers_object(&cli.prefix, &cli.topic), Access::ReadWrite)
        .map_err(|e| e.to_string())?;
    let off = lease_lock_offset(publisher, slot);
    if !shmbus_os::try_lock_byte(readers.fd(), off).map_err(|e| e.to_string())? {
        return Err(format!("lease byte {off} is locked by a live holder"));
    }
    let topic = map_topic(data.fd(), readers.fd(), data_access, None).map_err(|e| e.to_string())?;
    let waiter = Arc::new(FutexWaiter::new(&topic));
    Ok(Opened { topic, waiter, _data: data, _readers: readers })
}

/// Waits to be killed (the crash-test roles' last state); the deadline thread ends the process otherwise.
pub(crate) fn park_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The failure of consumer `role` at `slot` that waited `stall` for a message in vain; `progress` says how far it
/// had got.
pub(crate) fn stalled(role: &str, slot: usize, stall: Duration, progress: String) -> String {
    format!("{role} {slot}: nothing for {}s {progress}", stall.as_secs())
}

/// Expected counts indexed by producer id.
pub(crate) fn expected_counts(expect: &[Expect]) -> Vec<u64> {
    let n = expect.iter().map(|e| e.producer as usize + 1).max().unwrap_or(0);
    let mut v = vec![0; n];
    for e in expect {
        v[e.producer as usize] += e.count;
    }
    v
}

/// Attaches the subscriber of a consumer role in `mode` and announces it (`ready role= slot= position=`).
/// Returns it with the expected message count of each producer (indexed by producer id).
pub(crate) fn attach_consumer(
    o: &Opened,
    c: &Consumer,
    mode: Mode,
    role: &str,
) -> Result<(Subscriber, Vec<u64>), String> {
    let opts = SubscriberOptions { mode, from_oldest: false, idle: c.idle.into() };
    let sub = Subscriber::attach(&o.topic, c.slot, opts, o.waiter.clone(), &|_| false)
        .map_err(|e| format!("{role} {}: attach: {e}", c.slot))?;
    println!("ready role={role} slot={} position={}", c.slot, sub.position());
    Ok((sub, expected_counts(&c.expect)))
}

/// Runs the role; an error describes the violation or failure.
pub fn run(cli: Cli) -> Result<(), String> {
    let deadline = Duration::from_secs(cli.deadline_secs);
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!("ring-peer: deadline of {}s passed; exiting", deadline.as_secs());
        std::process::exit(4);
    });
    let stall = Duration::from_secs(cli.stall_secs);
    match &cli.role {
        Role::Producer { slot, count, idle } => {
            let o = open(&cli, Access::ReadWrite, true, *slot)?;
            producer::run(&o, cli.seed, *slot, *count, (*idle).into(), stall)
        }
        Role::Lossless { consumer, stall_after } => {
            let o = open(&cli, Access::ReadOnly, false, consumer.slot)?;
            lossless::run(&o, cli.seed, consumer, stall, *stall_after)
        }
        Role::Lossy { consumer } => {
            let o = open(&cli, Access::ReadOnly, false, consumer.slot)?;
            lossy::run(&o, cli.seed, consumer, stall)
        }
        Role::Member { slot, group, until, out, idle, hold_after } => {
            let o = open(&cli, Access::ReadOnly, false, *slot)?;
            let m = member::Member { slot: *slot, group: *group, until: *until, out, hold_after: *hold_after };
            member::run(&o, cli.seed, &m, (*idle).into(), stall)
        }
        Role::Joiner { slot, expect, lossy, per_round, idle } => {
            let o = open(&cli, Access::ReadOnly, false, *slot)?;
            let j = joiner::Joiner {
                slot: *slot,
                expect,
                lossy: *lossy,
                per_round: *per_round,
                idle: (*idle).into(),
                stall,
            };
            joiner::run(&o, cli.seed, &j)
        }
        Role::DieMidClaim { slot, before, len, vanish } => {
            let o = open(&cli, Access::ReadWrite, true, *slot)?;
            claim::run(&o, cli.seed, *slot, *before, if *vanish { None } else { Some(*len) }, stall)
        }
    }
}
