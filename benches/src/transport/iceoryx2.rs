//! iceoryx2 0.10 as a peer (`--features iceoryx2`): publish-subscribe of `[u8]` slices, one service per direction,
//! one publisher and one subscriber each, lossless (no safe overflow, the publisher retries until delivered),
//! busy-polling `receive`.
//!
//! Readiness: the peer creates its subscriber, then sends "ready" until the harness answers "go" (a publisher only
//! reaches subscribers that exist when it sends), then sends "start"; the harness drains up to "start".

use super::{Duplex, Params, Setup};
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use std::io;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Samples a subscriber buffers (as many as the other rings hold).
const DEPTH: usize = 256;

fn err(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("iceoryx2: {e:?}"))
}

/// One side: a node, a publisher on one service and a subscriber on the other.
struct IoxLink {
    tx: Publisher<ipc::Service, [u8], ()>,
    rx: Subscriber<ipc::Service, [u8], ()>,
    _node: Node<ipc::Service>,
}

impl Duplex for IoxLink {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let sample = self.tx.loan_slice_uninit(msg.len()).map_err(err)?;
        sample.write_from_slice(msg).send().map_err(err)?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(s) = self.rx.receive().map_err(err)? {
                let p = s.payload();
                buf[..p.len()].copy_from_slice(p);
                return Ok(p.len());
            }
            std::hint::spin_loop();
        }
    }
}

/// Opens this side's ports: publishing on `tx_name`, subscribed to `rx_name`.
fn link(size: usize, tx_name: &str, rx_name: &str) -> io::Result<IoxLink> {
    let node = NodeBuilder::new().create::<ipc::Service>().map_err(err)?;
    let service = |name: &str| {
        let name = ServiceName::new(name).map_err(err)?;
        node.service_builder(&name)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(DEPTH)
            .enable_safe_overflow(false)
            .open_or_create()
            .map_err(err)
    };
    let (txs, rxs) = (service(tx_name)?, service(rx_name)?);
    let rx = rxs.subscriber_builder().buffer_size(DEPTH).create().map_err(err)?;
    let tx = txs
        .publisher_builder()
        .initial_max_slice_len(size.max(8))
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .map_err(err)?;
    Ok(IoxLink { tx, rx, _node: node })
}

fn names(p: &Params) -> (String, String) {
    (format!("shbench/{}/down", p.name), format!("shbench/{}/up", p.name))
}

/// The harness side, its ports open before the peer starts.
struct IoxSetup(IoxLink);

impl Setup for IoxSetup {
    fn configure(&mut self, _cmd: &mut Command) {}

    fn connect(self: Box<Self>, peer: &mut Child) -> io::Result<Box<dyn Duplex>> {
        let mut link = self.0;
        let deadline = Instant::now() + Duration::from_secs(20);
        // One "go" for the first "ready"; another only if the peer still asks long after (the first was lost).
        let mut last_go: Option<Instant> = None;
        loop {
            if let Some(s) = link.rx.receive().map_err(err)? {
                let start = s.payload() == b"start";
                drop(s);
                if start {
                    return Ok(Box::new(link));
                }
                if last_go.is_none_or(|t| t.elapsed() > Duration::from_millis(200)) {
                    link.send(b"go")?;
                    last_go = Some(Instant::now());
                }
            } else if peer.try_wait()?.is_some() || Instant::now() > deadline {
                return Err(io::Error::other("the iceoryx2 peer did not get ready"));
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

pub(super) fn prepare(p: &Params) -> io::Result<Box<dyn Setup>> {
    let (down, up) = names(p);
    Ok(Box::new(IoxSetup(link(p.size, &down, &up)?)))
}

pub(super) fn open_peer(p: &Params) -> io::Result<Box<dyn Duplex>> {
    let (down, up) = names(p);
    let mut link = link(p.size, &up, &down)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        link.send(b"ready")?;
        std::thread::sleep(Duration::from_millis(1));
        if let Some(s) = link.rx.receive().map_err(err)? {
            if s.payload() == b"go" {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(io::Error::other("the harness never answered"));
        }
    }
    link.send(b"start")?;
    Ok(Box::new(link))
}
