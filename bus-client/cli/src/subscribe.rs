//! `shmbus sub`: print a topic's messages to standard output, one per line (see [`crate::format`]).

use crate::args::SubArgs;
use crate::exit::NoMessageWithin;
use crate::format::{Format, Shown};
use anyhow::Context;
use bus_client::{Message, RecvError, Subscriber};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

/// How the loop goes on after an error.
enum Next {
    Continue,
    /// The topic was closed: flush and exit 0.
    Stop,
}

pub fn run(socket: Option<PathBuf>, a: SubArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    let mut b = bus.subscriber_builder(&a.topic).idle(a.idle.into());
    if let Some(g) = &a.group {
        b = b.group(g);
    }
    if a.lossy {
        b = b.lossy();
    }
    if a.from_oldest {
        b = b.from_oldest();
    }
    let missing = crate::missing(&bus, &a.topic);
    let mut sub = b.open().with_context(|| format!("cannot subscribe to topic {:?}", a.topic))?;
    if missing {
        crate::say_created_on_demand(&a.topic);
    }
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    match pump(&mut sub, &mut out, &a) {
        Err(e) if crate::exit::is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

/// Receives and prints until `--count`, `Closed`, a timeout or an error. Output is buffered, and flushed
/// whenever no message is immediately available, so pipes get throughput and terminals see messages promptly.
fn pump(sub: &mut Subscriber, out: &mut impl Write, a: &SubArgs) -> anyhow::Result<()> {
    let mut got = 0u64;
    while a.count.is_none_or(|n| got < n) {
        match sub.try_recv() {
            Ok(m) => {
                write_message(out, a.format, &m)?;
                got += 1;
                continue;
            }
            Err(RecvError::Empty) => {}
            Err(e) => match on_error(e, &a.topic)? {
                Next::Continue => continue,
                Next::Stop => break,
            },
        }
        out.flush()?;
        let r = match a.timeout.or(a.idle_exit) {
            Some(d) => sub.recv_timeout(d),
            None => sub.recv(),
        };
        match r {
            Ok(m) => {
                write_message(out, a.format, &m)?;
                got += 1;
            }
            Err(RecvError::Timeout) if a.idle_exit.is_some() => break,
            Err(RecvError::Timeout) => {
                out.flush()?;
                let within = a.timeout.expect("only recv_timeout times out");
                return Err(NoMessageWithin { topic: a.topic.clone(), within, received: got }.into());
            }
            Err(e) => match on_error(e, &a.topic)? {
                Next::Continue => {}
                Next::Stop => break,
            },
        }
    }
    out.flush()?;
    Ok(())
}

fn write_message(out: &mut impl Write, f: Format, m: &Message<'_>) -> io::Result<()> {
    let shown = Shown { seq: m.seq(), publisher: m.publisher(), timestamp: m.timestamp(), payload: m.payload() };
    crate::format::write(out, f, &shown)
}

/// Reports gaps and demotion on stderr and goes on; `Closed` ends the loop; anything else is an error.
fn on_error(e: RecvError, topic: &str) -> anyhow::Result<Next> {
    match e {
        RecvError::Lagged(n) => {
            eprintln!("shmbus: {topic}: lagged, {n} messages missed");
            Ok(Next::Continue)
        }
        RecvError::Demoted => {
            eprintln!("shmbus: {topic}: demoted to lossy (held publishers back too long)");
            Ok(Next::Continue)
        }
        RecvError::Closed => {
            eprintln!("shmbus: {topic}: topic closed");
            Ok(Next::Stop)
        }
        e => Err(e).with_context(|| format!("cannot receive from topic {topic:?}")),
    }
}
