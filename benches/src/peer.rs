//! The peer process: opens the link the harness prepared and serves one scenario.

use crate::cli::PeerArgs;
use crate::measure::{serve, Counts};
use crate::transport::{open_peer, Params};
use std::io;

/// Runs the peer side of one scenario.
pub fn run(a: &PeerArgs) -> io::Result<()> {
    if let Some(cpu) = a.cpu {
        crate::pin::pin(cpu);
    }
    let mut link = open_peer(a.transport, &Params { size: a.size, name: a.name.clone() })?;
    serve(&mut *link, a.mode, a.size, Counts { count: a.count, warmup: a.warmup })
}
