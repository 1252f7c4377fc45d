//! The peer side of the multi-process scenarios: a publisher (fan-in) or a subscriber (fan-out: lossless; group:
//! a member of group `bench`; lossy), talking to the harness on its standard input and output.
//!
//! Protocol, one line each: the peer prints `ready` once its handle is open; a publisher then waits for `go` on
//! its standard input and sends `count` messages; a subscriber reads until the empty stop message. At the end
//! the peer prints `done RECEIVED LAPPED DEMOTED END_NS PEAK_RSS` (`END_NS`: `CLOCK_MONOTONIC` when it finished,
//! comparable across processes).

use super::{idle, now_ns, Done};
use crate::cli::PeerArgs;
use crate::measure::Mode;
use bus_client::{Bus, RecvError};
use std::io::{self, BufRead, Write};

/// Prints one protocol line.
fn say(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Runs one multi-process peer (the topic is `a.name`, the daemon's socket is in `SHMBUS_SOCKET`).
pub fn serve(a: &PeerArgs) -> io::Result<()> {
    let bus = Bus::connect().map_err(io::Error::other)?;
    let idle = idle(a.transport);
    let mut done = Done::default();
    if a.mode == Mode::FanIn {
        let mut p = bus.publisher_builder(&a.name).idle(idle).open().map_err(io::Error::other)?;
        say("ready")?;
        let mut go = String::new();
        io::stdin().lock().read_line(&mut go)?;
        if go.trim() != "go" {
            return Err(io::Error::other("the harness did not say go"));
        }
        let mut msg = vec![0x5a; a.size];
        for i in 0..a.count {
            crate::measure::stamp(&mut msg, i);
            p.send(&msg).map_err(io::Error::other)?;
        }
        done.end_ns = now_ns();
    } else {
        let b = bus.subscriber_builder(&a.name).idle(idle);
        let b = match a.mode {
            Mode::Group => b.group("bench"),
            Mode::Lossy => b.lossy(),
            _ => b,
        };
        let mut s = b.open().map_err(io::Error::other)?;
        say("ready")?;
        let mut buf = vec![0; a.size];
        loop {
            match s.recv() {
                Ok(m) if m.is_empty() => break,
                Ok(m) => {
                    if m.len() != a.size {
                        return Err(io::Error::other("a message of the wrong size"));
                    }
                    buf.copy_from_slice(m.payload());
                    done.received += 1;
                }
                Err(RecvError::Lagged(n)) => done.lapped += n,
                Err(RecvError::Demoted) => done.demoted = true,
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        done.end_ns = now_ns();
        // Leave the group at once, so the next stop message goes to another member.
        drop(s);
    }
    done.peak_rss = crate::memory::peak_rss().unwrap_or(0);
    say(&done.line())
}
