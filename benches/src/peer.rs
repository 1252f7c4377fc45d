//! The peer process: opens the link the harness prepared and serves one scenario, then leaves its peak
//! resident set in a file for the harness (two-process scenarios; the multi-process ones report it on stdout).

use crate::cli::PeerArgs;
use crate::measure::{serve, Counts};
use crate::transport::{open_peer, Params};
use std::io;
use std::path::PathBuf;

/// Where the peer of link `name` writes its peak resident set (bytes, decimal).
pub fn rss_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.peer-rss"))
}

/// Runs the peer side of one scenario.
pub fn run(a: &PeerArgs) -> io::Result<()> {
    if let Some(cpu) = a.cpu {
        crate::pin::pin(cpu);
    }
    if a.mode.is_multi() {
        return crate::multi::serve(a);
    }
    let p = Params { size: a.size, name: a.name.clone() };
    let mut link = open_peer(a.transport, &p)?;
    serve(&mut *link, a.mode, a.size, Counts { count: a.count, warmup: a.warmup })?;
    drop(link);
    if let Some(rss) = crate::memory::peak_rss() {
        std::fs::write(rss_file(&a.name), rss.to_string())?;
    }
    Ok(())
}
