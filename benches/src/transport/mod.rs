//! The transports under test: one duplex link between the harness and its peer process, set up on each side.
//!
//! Every transport moves whole messages of the scenario's size in both directions. The harness side
//! ([`prepare`]) creates the resources before the peer starts and connects after; the peer side ([`open_peer`])
//! opens what the harness created, by the name it is given on its command line.

mod cacheline;
#[cfg(feature = "iceoryx2")]
mod iceoryx2;
mod memcpy;
mod mq;
mod pipe;
mod ring;
mod sem;
mod shmbus;
mod stream;
mod uds;

use crate::measure::Mode;
use clap::ValueEnum;
use std::io;
use std::process::{Child, Command};

pub use crate::daemon::PrivateBus;
pub use memcpy::bandwidth as memcpy_bandwidth;
pub(crate) use shmbus::topics as shmbus_topics;

/// A transport the harness measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Two processes bouncing one atomic word in a shared mapping, busy-polling: the physical floor (latency
    /// only, no payload).
    CacheLine,
    /// A pair of POSIX named semaphores: the blocking floor (latency only, no payload).
    Sem,
    /// `memcpy` in one process: the floor for large-message throughput (throughput only).
    Memcpy,
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
    /// shmbus through the library and a private daemon, spinning then yielding the CPU
    /// (`IdleStrategy::SpinThenYield`): for more processes than CPUs.
    ShmbusYield,
    /// shmbus through the library and a private daemon, receiving with `AsyncSubscriber::recv().await` on a
    /// current-thread tokio runtime (the wait descriptor and the waker thread); sends are blocking sends.
    ShmbusAsync,
    /// iceoryx2 0.10 publish-subscribe, busy-polling (only in a build with `--features iceoryx2`).
    Iceoryx2,
}

impl Kind {
    /// Every transport this build has, baselines first.
    pub fn all() -> Vec<Kind> {
        let mut v = vec![
            Kind::CacheLine,
            Kind::Sem,
            Kind::Memcpy,
            Kind::ShmRing,
            Kind::Pipe,
            Kind::Uds,
            Kind::Mq,
            Kind::ShmbusBusy,
            Kind::ShmbusBlocking,
            Kind::ShmbusYield,
            Kind::ShmbusAsync,
        ];
        if cfg!(feature = "iceoryx2") {
            v.push(Kind::Iceoryx2);
        }
        v
    }

    /// The name in tables, JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::CacheLine => "cache-line",
            Kind::Sem => "sem",
            Kind::Memcpy => "memcpy",
            Kind::ShmRing => "shm-ring",
            Kind::Pipe => "pipe",
            Kind::Uds => "uds",
            Kind::Mq => "mq",
            Kind::ShmbusBusy => "shmbus-busy",
            Kind::ShmbusBlocking => "shmbus-blocking",
            Kind::ShmbusYield => "shmbus-yield",
            Kind::ShmbusAsync => "shmbus-async",
            Kind::Iceoryx2 => "iceoryx2",
        }
    }

    /// Whether this is a baseline that carries the payload (what the `×` ratios are taken against) rather than
    /// shmbus, a peer or a floor.
    pub fn is_baseline(self) -> bool {
        matches!(self, Kind::ShmRing | Kind::Pipe | Kind::Uds | Kind::Mq)
    }

    /// Whether this is a floor (cache-line, semaphore, memcpy): a lower bound that moves no message.
    pub fn is_floor(self) -> bool {
        matches!(self, Kind::CacheLine | Kind::Sem | Kind::Memcpy)
    }

    /// Whether the receiver sleeps in the kernel while waiting (rather than busy-polling).
    pub fn is_blocking(self) -> bool {
        matches!(self, Kind::Sem | Kind::Pipe | Kind::Uds | Kind::Mq | Kind::ShmbusBlocking | Kind::ShmbusAsync)
    }

    /// The floor this transport's latency is compared with: the semaphores for blocking ones, the cache line
    /// for busy-polling ones.
    pub fn latency_floor(self) -> Kind {
        if self.is_blocking() {
            Kind::Sem
        } else {
            Kind::CacheLine
        }
    }

    /// Whether this transport can run scenario `mode` with messages of `size` bytes (POSIX message queues are
    /// bounded by `/proc/sys/fs/mqueue/msgsize_max`; only shmbus runs the multi-process scenarios).
    pub fn supports(self, mode: Mode, size: usize) -> bool {
        match (self, mode) {
            (Kind::CacheLine | Kind::Sem, m) => m == Mode::Latency,
            (Kind::Memcpy, m) => m == Mode::Throughput,
            (Kind::ShmbusBusy | Kind::ShmbusBlocking | Kind::ShmbusYield, _) => true,
            // The two-process scenarios only: the multi-process peers receive with the blocking API.
            (Kind::ShmbusAsync, m) => m == Mode::Latency || m == Mode::Throughput,
            (_, Mode::Latency | Mode::Throughput) => self != Kind::Mq || size <= mq::msgsize_max(),
            _ => false,
        }
    }

    /// Whether this transport needs the private daemon.
    pub fn needs_daemon(self) -> bool {
        matches!(self, Kind::ShmbusBusy | Kind::ShmbusBlocking | Kind::ShmbusYield | Kind::ShmbusAsync)
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
        Kind::CacheLine => cacheline::prepare(p),
        Kind::Sem => sem::prepare(p),
        Kind::Memcpy => Err(in_process()),
        Kind::ShmRing => ring::prepare(p),
        Kind::Pipe => pipe::prepare(p),
        Kind::Uds => uds::prepare(p),
        Kind::Mq => mq::prepare(p),
        Kind::ShmbusBusy | Kind::ShmbusBlocking | Kind::ShmbusYield | Kind::ShmbusAsync => {
            let bus = bus.ok_or_else(|| io::Error::other("no private daemon"))?;
            shmbus::prepare(p, bus, kind)
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
        Kind::CacheLine => cacheline::open_peer(p),
        Kind::Sem => sem::open_peer(p),
        Kind::Memcpy => Err(in_process()),
        Kind::ShmRing => ring::open_peer(p),
        Kind::Pipe => pipe::open_peer(p),
        Kind::Uds => uds::open_peer(p),
        Kind::Mq => mq::open_peer(p),
        Kind::ShmbusBusy | Kind::ShmbusBlocking | Kind::ShmbusYield | Kind::ShmbusAsync => shmbus::open_peer(p, kind),
        #[cfg(feature = "iceoryx2")]
        Kind::Iceoryx2 => iceoryx2::open_peer(p),
        #[cfg(not(feature = "iceoryx2"))]
        Kind::Iceoryx2 => Err(without_iceoryx2()),
    }
}

/// The error for memcpy, which has no link (it runs in the harness alone).
fn in_process() -> io::Error {
    io::Error::other("memcpy runs in one process; it has no link")
}

/// The error for the iceoryx2 transport in a build without it.
#[cfg(not(feature = "iceoryx2"))]
fn without_iceoryx2() -> io::Error {
    io::Error::other("built without `--features iceoryx2`")
}
