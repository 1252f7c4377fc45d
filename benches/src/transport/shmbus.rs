//! shmbus through the library: a topic per direction on a private daemon, `max_publishers = 1`, one lossless
//! subscriber each, busy-polling or blocking.
//!
//! Readiness: the harness subscribes to `up` before the peer starts; the peer subscribes to `down`, opens its
//! publisher on `up` and sends one "ready" message; the harness opens its publisher on `down` once that message
//! arrives, so neither publisher sends before the other side's subscriber exists.

use super::{Duplex, Params, Setup};
use bus_client::{Bus, IdleStrategy, Publisher, Subscriber};
use std::io;
use std::process::{Child, Command};

use crate::daemon::PrivateBus;

/// The topics for messages of `size` bytes: (harness to peer, peer to harness).
pub(crate) fn topics(size: usize) -> (String, String) {
    (format!("down{size}"), format!("up{size}"))
}

/// One side: a publisher on one topic and a subscriber on the other.
struct BusLink {
    tx: Publisher,
    rx: Subscriber,
    _bus: Bus,
}

impl Duplex for BusLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg).map(drop).map_err(io::Error::other)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let m = self.rx.recv().map_err(io::Error::other)?;
        let n = m.len();
        buf[..n].copy_from_slice(m.payload());
        Ok(n)
    }
}

/// The harness side before the peer is ready: its subscriber on `up`.
struct BusSetup {
    bus: Bus,
    rx: Subscriber,
    down: String,
    socket: std::path::PathBuf,
    idle: IdleStrategy,
}

pub(super) fn prepare(p: &Params, daemon: &PrivateBus, idle: IdleStrategy) -> io::Result<Box<dyn Setup>> {
    let bus = Bus::connect_to(&daemon.socket).map_err(io::Error::other)?;
    let (down, up) = topics(p.size);
    let rx = bus.subscriber_builder(&up).idle(idle).open().map_err(io::Error::other)?;
    Ok(Box::new(BusSetup { bus, rx, down, socket: daemon.socket.clone(), idle }))
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
        Ok(Box::new(BusLink { tx, rx: self.rx, _bus: self.bus }))
    }
}

pub(super) fn open_peer(p: &Params, idle: IdleStrategy) -> io::Result<Box<dyn Duplex>> {
    let bus = Bus::connect().map_err(io::Error::other)?;
    let (down, up) = topics(p.size);
    let rx = bus.subscriber_builder(&down).idle(idle).open().map_err(io::Error::other)?;
    let mut tx = bus.publisher_builder(&up).idle(idle).open().map_err(io::Error::other)?;
    tx.send(b"ready").map_err(io::Error::other)?;
    Ok(Box::new(BusLink { tx, rx, _bus: bus }))
}
