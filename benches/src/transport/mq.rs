//! Two POSIX message queues (`mq_open`): one per direction, created by the harness, unlinked when it is done.

use super::{Duplex, Params, Setup};
use nix::mqueue::{mq_open, mq_receive, mq_send, mq_unlink, MQ_OFlag, MqAttr, MqdT};
use nix::sys::stat::Mode;
use std::io;
use std::process::{Child, Command};

/// Messages a queue holds (the kernel's default `msg_max` for unprivileged users is 10).
const DEPTH: i64 = 10;

/// Queue names: `/NAME.down` (harness to peer) and `/NAME.up`.
fn names(p: &Params) -> (String, String) {
    (format!("/{}.down", p.name), format!("/{}.up", p.name))
}

/// One end: the queue it sends on and the one it receives from.
struct Mq {
    tx: MqdT,
    rx: MqdT,
    /// Names to unlink on drop (the harness side only).
    owned: Vec<String>,
}

impl Drop for Mq {
    fn drop(&mut self) {
        for n in &self.owned {
            let _ = mq_unlink(n.as_str());
        }
    }
}

impl Duplex for Mq {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        Ok(mq_send(&self.tx, msg, 0)?)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut prio = 0;
        Ok(mq_receive(&self.rx, buf, &mut prio)?)
    }
}

/// The harness side is ready as soon as both queues exist.
struct MqSetup(Mq);

impl Setup for MqSetup {
    fn configure(&mut self, _cmd: &mut Command) {}
    fn connect(self: Box<Self>, _peer: &mut Child) -> io::Result<Box<dyn Duplex>> {
        Ok(Box::new(self.0))
    }
}

pub(super) fn prepare(p: &Params) -> io::Result<Box<dyn Setup>> {
    let (down, up) = names(p);
    let attr = MqAttr::new(0, DEPTH as _, p.size as _, 0);
    let flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR;
    let mode = Mode::S_IRUSR | Mode::S_IWUSR;
    let tx = mq_open(down.as_str(), flags, mode, Some(&attr))?;
    let mut owned = vec![down];
    let rx = mq_open(up.as_str(), flags, mode, Some(&attr));
    owned.push(up);
    match rx {
        Ok(rx) => Ok(Box::new(MqSetup(Mq { tx, rx, owned }))),
        Err(e) => {
            let _ = mq_unlink(owned[0].as_str());
            Err(e.into())
        }
    }
}

pub(super) fn open_peer(p: &Params) -> io::Result<Box<dyn Duplex>> {
    let (down, up) = names(p);
    let rx = mq_open(down.as_str(), MQ_OFlag::O_RDWR, Mode::empty(), None)?;
    let tx = mq_open(up.as_str(), MQ_OFlag::O_RDWR, Mode::empty(), None)?;
    Ok(Box::new(Mq { tx, rx, owned: Vec::new() }))
}

/// The largest message a queue may be created for without privileges (`/proc/sys/fs/mqueue/msgsize_max`; 8192
/// when it cannot be read).
pub(super) fn msgsize_max() -> usize {
    std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(8192)
}
