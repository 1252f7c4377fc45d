//! A Unix domain stream socket: the harness listens on a private path, the peer connects.

use super::stream::Stream;
use super::{Duplex, Params, Setup};
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The listening socket, unlinked when the harness side is done with it.
struct UdsSetup {
    listener: UnixListener,
    path: PathBuf,
    size: usize,
}

fn path(p: &Params) -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", p.name))
}

pub(super) fn prepare(p: &Params) -> io::Result<Box<dyn Setup>> {
    let path = path(p);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    listener.set_nonblocking(true)?;
    Ok(Box::new(UdsSetup { listener, path, size: p.size }))
}

impl Setup for UdsSetup {
    fn configure(&mut self, _cmd: &mut Command) {}

    fn connect(self: Box<Self>, peer: &mut Child) -> io::Result<Box<dyn Duplex>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if peer.try_wait()?.is_some() || Instant::now() > deadline {
                        return Err(io::Error::other("the peer did not connect"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        let _ = std::fs::remove_file(&self.path);
        Ok(Box::new(Stream::new(stream, self.size)))
    }
}

pub(super) fn open_peer(p: &Params) -> io::Result<Box<dyn Duplex>> {
    Ok(Box::new(Stream::new(UnixStream::connect(path(p))?, p.size)))
}
