//! The helper process of the fault tests (`bus-peer`): a real client of a real daemon, through `bus_client`
//! (connect, lease, reconnect and re-register after a daemon restart), playing one role on one topic with the
//! self-checking messages of [`crate::msg`].
//!
//! Output protocol (stdout, one line each, `key=value` words): `ready ...` once open, `claimed ...`, `stalled ...`
//! or `holding ...` when a fault role reaches the point where it waits to be killed, and `done ...` with its
//! counts on success. Violations go to stderr with exit code 3; the deadline ends the process with code 4.

mod publish;
mod subscribe;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Command line of `bus-peer`.
#[derive(Parser, Debug)]
#[command(name = "bus-peer", about = "Client helper process of the shmbus fault tests")]
pub struct Cli {
    /// The daemon's control socket.
    #[arg(long)]
    pub socket: PathBuf,
    /// Topic name.
    #[arg(long)]
    pub topic: String,
    /// Seed of the message sizes and contents (publishers and subscribers must agree).
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

/// Subscription modes on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SubMode {
    /// Holds publishers back; every message exactly once, per producer in order.
    Lossless,
    /// Never holds publishers back; every position received or counted in a `Lagged(n)`.
    Lossy,
    /// A member of the consumer group `--group`.
    Group,
}

/// The roles a peer can play.
#[derive(Subcommand, Debug)]
pub enum Role {
    /// Publish messages 0..count of the producer id the daemon assigns (the publisher slot).
    Publish {
        /// Messages to send.
        #[arg(long)]
        count: u64,
        /// At most this many messages a second (0: as fast as the topic takes them).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// After this many messages, take a loan, write half of it and wait to be killed holding the claim.
        #[arg(long)]
        claim_after: Option<u64>,
        /// After this many messages, stop inside a claim (after the tail's compare-and-swap, before the stamp:
        /// a vacancy) and wait to be killed there.
        #[arg(long)]
        vanish_after: Option<u64>,
    },
    /// Subscribe and check every message.
    Subscribe {
        /// Lossless, lossy or group member.
        #[arg(long, value_enum)]
        mode: SubMode,
        /// Group name (with `--mode group`).
        #[arg(long)]
        group: Option<String>,
        /// Ring positions to account for before finishing (lossless: messages plus skip markers; lossy: also
        /// what was lagged). Not for group members, which stop on `--stop-file`.
        #[arg(long)]
        total: Option<u64>,
        /// Finish (cleanly) once this file exists and nothing arrived for a while.
        #[arg(long)]
        stop_file: Option<PathBuf>,
        /// After this many messages, stop reading (a lossless reader keeps gating) and wait to be killed.
        #[arg(long)]
        stall_after: Option<u64>,
        /// Take this many messages and hold the last one without completing it, waiting to be killed.
        #[arg(long)]
        hold_after: Option<u64>,
        /// Detach cleanly after this many messages.
        #[arg(long)]
        exit_after: Option<u64>,
        /// Write `(seq, producer, pseq)` records of every completed message here (see `peer::member`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Start from the oldest retained message.
        #[arg(long)]
        from_oldest: bool,
        /// Attached mid-stream: each producer's first message sets where its sequence starts.
        #[arg(long)]
        joined: bool,
    },
}

/// Waits to be killed (the fault roles' last state); the deadline thread ends the process otherwise.
pub(crate) fn park_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Runs the role; an error describes the violation or failure.
pub fn run(cli: Cli) -> Result<(), String> {
    let deadline = Duration::from_secs(cli.deadline_secs);
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!("bus-peer: deadline of {}s passed; exiting", deadline.as_secs());
        std::process::exit(4);
    });
    let bus = bus_client::Bus::connect_to(&cli.socket).map_err(|e| format!("connect: {e}"))?;
    let stall = Duration::from_secs(cli.stall_secs);
    match &cli.role {
        Role::Publish { count, rate, claim_after, vanish_after } => {
            let p = publish::Publish {
                count: *count,
                rate: *rate,
                claim_after: *claim_after,
                vanish_after: *vanish_after,
                stall,
            };
            publish::run(&bus, &cli.topic, cli.seed, &p)
        }
        Role::Subscribe {
            mode,
            group,
            total,
            stop_file,
            stall_after,
            hold_after,
            exit_after,
            out,
            from_oldest,
            joined,
        } => {
            let s = subscribe::Subscribe {
                mode: *mode,
                group: group.clone(),
                total: *total,
                stop_file: stop_file.clone(),
                stall_after: *stall_after,
                hold_after: *hold_after,
                exit_after: *exit_after,
                out: out.clone(),
                from_oldest: *from_oldest,
                joined: *joined,
                stall,
            };
            subscribe::run(&bus, &cli.topic, cli.seed, &s)
        }
    }
}
