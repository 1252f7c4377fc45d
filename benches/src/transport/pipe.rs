//! Two anonymous pipes: the peer reads its standard input and writes its standard output.

use super::stream::Stream;
use super::{Duplex, Params, Setup};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};

/// A read end and a write end used as one duplex byte stream.
struct Pair {
    rx: File,
    tx: File,
}

impl Read for Pair {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rx.read(buf)
    }
}

impl Write for Pair {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tx.flush()
    }
}

/// The harness side: its own ends, and the peer's until they are handed over.
struct PipeSetup {
    mine: Pair,
    theirs: Option<(OwnedFd, OwnedFd)>,
    size: usize,
}

pub(super) fn prepare(p: &Params) -> io::Result<Box<dyn Setup>> {
    let (down_rx, down_tx) = nix::unistd::pipe()?;
    let (up_rx, up_tx) = nix::unistd::pipe()?;
    let mine = Pair { rx: File::from(up_rx), tx: File::from(down_tx) };
    Ok(Box::new(PipeSetup { mine, theirs: Some((down_rx, up_tx)), size: p.size }))
}

impl Setup for PipeSetup {
    fn configure(&mut self, cmd: &mut Command) {
        let (stdin, stdout) = self.theirs.take().expect("configured once");
        cmd.stdin(Stdio::from(stdin)).stdout(Stdio::from(stdout));
    }

    fn connect(self: Box<Self>, _peer: &mut Child) -> io::Result<Box<dyn Duplex>> {
        Ok(Box::new(Stream::new(self.mine, self.size)))
    }
}

pub(super) fn open_peer(p: &Params) -> io::Result<Box<dyn Duplex>> {
    let rx = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let tx = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    Ok(Box::new(Stream::new(Pair { rx, tx }, p.size)))
}
