//! The transports under test: one duplex link between the harness and its peer process, set up on each side.
//!
//! Every transport moves whole messages of the scenario's size in both directions. The harness side
//! ([`prepare`]) creates the resources before the peer starts and connects after; the peer side ([`open_peer`])
//! opens what the harness created, by the name it is given on its command line.

#[cfg(feature = "iceoryx2")]
mod iceoryx2;
mod mq;
mod pipe;
mod ring;
mod shmbus;
mod stream;
mod uds;

use clap::ValueEnum;
use std::io;
use std::process::{Child, Command};

pub use crate::daemon::PrivateBus;
pub(crate) use shmbus::topics as shmbus_topics;

/// A transport the harness measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A minimal framed single-producer ring over shared memory, busy-polling (the floor).
    ShmRing,
    /// Two anonymous pipes.
    Pipe,
    /// A Unix domain stream socket.
    Uds,
    /// Two POSIX message queues.
    Mq,
    /// shmbus through the library and a private daemon, busy-polling (`IdleStrategy::BusySpin`).
    ShmbusBusy,
    /// shmbus through the library and a private daemon, sleeping on the wake-up (`IdleStrategy::Blocking`).
    ShmbusBlocking,
    /// iceoryx2 0.10 publish-subscribe, busy-polling (only in a build with `--features iceoryx2`).
    Iceoryx2,
}

impl Kind {
    /// Every transport this build has, baselines first.
    pub fn all() -> Vec<Kind> {
        let mut v = vec![Kind::ShmRing, Kind::Pipe, Kind::Uds, Kind::Mq, Kind::ShmbusBusy, Kind::ShmbusBlocking];
        if cfg!(feature = "iceoryx2") {
            v.push(Kind::Iceoryx2);
        }
        v
    }

    /// The name in tables, JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ShmRing => "shm-ring",
            Kind::Pipe => "pipe",
            Kind::Uds => "uds",
            Kind::Mq => "mq",
            Kind::ShmbusBusy => "shmbus-busy",
            Kind::ShmbusBlocking => "shmbus-blocking",
            Kind::Iceoryx2 => "iceoryx2",
        }
    }

    /// Whether this is a baseline (what ratios are taken against) rather than shmbus or a peer.
    pub fn is_baseline(self) -> bool {
        matches!(self, Kind::ShmRing | Kind::Pipe | Kind::Uds | Kind::Mq)
    }

    /// Whether this transport needs the private daemon.
    pub fn needs_daemon(self) -> bool {
        matches!(self, Kind::ShmbusBusy | Kind::ShmbusBlocking)
    }
}

/// One end of a link: whole messages in both directions.
pub trait Duplex {
    /// Sends `msg` whole, waiting while the link is full.
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// Receives the next message whole into `buf` (at least as long as the scenario's size); returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// The harness side of a link before the peer runs.
pub trait Setup {
    /// Arguments and file descriptors the peer needs (its `--name`, its standard input and output).
    fn configure(&mut self, cmd: &mut Command);
    /// Finishes the link once the peer runs (accepts its connection, waits for it to be ready).
    fn connect(self: Box<Self>, peer: &mut Child) -> io::Result<Box<dyn Duplex>>;
}

/// What a transport needs to know of the scenario.
#[derive(Clone, Debug)]
pub struct Params {
    /// Message size in bytes.
    pub size: usize,
    /// A name unique to this run and scenario (files, queues, topics derive from it).
    pub name: String,
}

/// Creates the harness side of a `kind` link. `bus` is the private daemon (for the shmbus transports).
pub fn prepare(kind: Kind, p: &Params, bus: Option<&PrivateBus>) -> io::Result<Box<dyn Setup>> {
    match kind {
        Kind::ShmRing => ring::prepare(p),
        Kind::Pipe => pipe::prepare(p),
        Kind::Uds => uds::prepare(p),
        Kind::Mq => mq::prepare(p),
        Kind::ShmbusBusy | Kind::ShmbusBlocking => {
            let bus = bus.ok_or_else(|| io::Error::other("no private daemon"))?;
            shmbus::prepare(p, bus, kind == Kind::ShmbusBlocking)
        }
        #[cfg(feature = "iceoryx2")]
        Kind::Iceoryx2 => iceoryx2::prepare(p),
        #[cfg(not(feature = "iceoryx2"))]
        Kind::Iceoryx2 => Err(without_iceoryx2()),
    }
}

/// Opens the peer side of a `kind` link that the harness prepared under `p.name` (for shmbus: the socket path).
pub fn open_peer(kind: Kind, p: &Params) -> io::Result<Box<dyn Duplex>> {
    match kind {
        Kind::ShmRing => ring::open_peer(p),
        Kind::Pipe => pipe::open_peer(p),
        Kind::Uds => uds::open_peer(p),
        Kind::Mq => mq::open_peer(p),
        Kind::ShmbusBusy | Kind::ShmbusBlocking => shmbus::open_peer(p, kind == Kind::ShmbusBlocking),
        #[cfg(feature = "iceoryx2")]
        Kind::Iceoryx2 => iceoryx2::open_peer(p),
        #[cfg(not(feature = "iceoryx2"))]
        Kind::Iceoryx2 => Err(without_iceoryx2()),
    }
}

/// The error for the iceoryx2 transport in a build without it.
#[cfg(not(feature = "iceoryx2"))]
fn without_iceoryx2() -> io::Error {
    io::Error::other("built without `--features iceoryx2`")
}
