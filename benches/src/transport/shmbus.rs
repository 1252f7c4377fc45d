//! shmbus through the library: a topic per direction on a private daemon, `max_publishers = 1`, one lossless
//! subscriber each, busy-polling, blocking, or receiving with `recv().await` (`shmbus-async`: a current-thread
//! tokio runtime per side, so the wait goes through the subscriber's wait descriptor and the waker thread).
//!
//! Readiness: the harness subscribes to `up` before the peer starts; the peer subscribes to `down`, opens its
//! publisher on `up` and sends one "ready" message; the harness opens its publisher on `down` once that message
//! arrives, so neither publisher sends before the other side's subscriber exists.

use super::{Duplex, Kind, Params, Setup};
use bus_client::{AsyncSubscriber, Bus, IdleStrategy, Publisher, Subscriber};
use std::io;
use std::process::{Child, Command};

use crate::daemon::PrivateBus;

/// The topics for messages of `size` bytes: (harness to peer, peer to harness).
pub(crate) fn topics(size: usize) -> (String, String) {
    (format!("down{size}"), format!("up{size}"))
}

/// How one side receives.
enum Rx {
    /// `Subscriber::recv` with the transport's idle strategy.
    Blocking(Subscriber),
    /// `AsyncSubscriber::recv().await`, driven by its own current-thread runtime.
    Async(Box<(tokio::runtime::Runtime, AsyncSubscriber)>),
}

impl Rx {
    fn new(sub: Subscriber, kind: Kind) -> io::Result<Rx> {
        if kind != Kind::ShmbusAsync {
            return Ok(Rx::Blocking(sub));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let sub = {
            let _inside = rt.enter();
            AsyncSubscriber::new(sub)?
        };
        Ok(Rx::Async(Box::new((rt, sub))))
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Rx::Blocking(rx) => {
                let m = rx.recv().map_err(io::Error::other)?;
                let n = m.len();
                buf[..n].copy_from_slice(m.payload());
                Ok(n)
            }
            Rx::Async(a) => {
                let (rt, rx) = &mut **a;
                let m = rt.block_on(rx.recv()).map_err(io::Error::other)?;
                buf[..m.len()].copy_from_slice(m.payload());
                Ok(m.len())
            }
        }
    }
}

/// One side: a publisher on one topic and a subscriber on the other.
struct BusLink {
    tx: Publisher,
    rx: Rx,
    _bus: Bus,
}

impl Duplex for BusLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg).map(drop).map_err(io::Error::other)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rx.recv(buf)
    }
}

/// The harness side before the peer is ready: its subscriber on `up`.
struct BusSetup {
    bus: Bus,
    rx: Subscriber,
    down: String,
    socket: std::path::PathBuf,
    idle: IdleStrategy,
    kind: Kind,
}

pub(super) fn prepare(p: &Params, daemon: &PrivateBus, kind: Kind) -> io::Result<Box<dyn Setup>> {
    let idle = crate::multi::idle(kind);
    let bus = Bus::connect_to(&daemon.socket).map_err(io::Error::other)?;
    let (down, up) = topics(p.size);
    let rx = bus.subscriber_builder(&up).idle(idle).open().map_err(io::Error::other)?;
    Ok(Box::new(BusSetup { bus, rx, down, socket: daemon.socket.clone(), idle, kind }))
}

impl Setup for BusSetup {
    fn configure(&mut self, cmd: &mut Command) {
        cmd.env("SHMBUS_SOCKET", &self.socket);
    }

    fn connect(mut self: Box<Self>, _peer: &mut Child) -> io::Result<Box<dyn Duplex>> {
        let ready = self.rx.recv().map_err(io::Error::other)?;
        if ready.payload() != b"ready" {
            return Err(io::Error::other("unexpected first message from the peer"));
        }
        drop(ready);
        let tx = self.bus.publisher_builder(&self.down).idle(self.idle).open().map_err(io::Error::other)?;
        Ok(Box::new(BusLink { tx, rx: Rx::new(self.rx, self.kind)?, _bus: self.bus }))
    }
}

pub(super) fn open_peer(p: &Params, kind: Kind) -> io::Result<Box<dyn Duplex>> {
    let idle = crate::multi::idle(kind);
    let bus = Bus::connect().map_err(io::Error::other)?;
    let (down, up) = topics(p.size);
    let rx = bus.subscriber_builder(&down).idle(idle).open().map_err(io::Error::other)?;
    let mut tx = bus.publisher_builder(&up).idle(idle).open().map_err(io::Error::other)?;
    tx.send(b"ready").map_err(io::Error::other)?;
    Ok(Box::new(BusLink { tx, rx: Rx::new(rx, kind)?, _bus: bus }))
}
