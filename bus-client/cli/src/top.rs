//! `shmbus top`: message and byte rates, publishers, subscribers, the slowest subscriber's lag, back-pressure and
//! lapped messages of every topic the caller may see, sampled every `--interval` ([`crate::rates`]).
//!
//! On a terminal the view is redrawn in place (the alternate screen, the fastest topics that fit); otherwise a
//! table is printed per interval. `--once` takes two samples and prints one table of all topics (or, with
//! `--json`, one JSON document) and exits.

use crate::args::TopArgs;
use crate::interrupt::Interrupt;
use crate::rates::{rows, Sample};
use crate::screen::Screen;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

/// Lines of the live view that are not topic rows: the summary, the column header and the footer.
const FRAME_LINES: usize = 3;

pub fn run(socket: Option<PathBuf>, a: TopArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    let stop = Interrupt::install()?;
    let r = if a.once { once(&bus, &a, &stop) } else { live(&bus, &a, &stop) };
    match r {
        Err(e) if crate::exit::is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

/// Two samples `--interval` apart, one table (or JSON document) of every topic.
fn once(bus: &bus_client::Bus, a: &TopArgs, stop: &Interrupt) -> anyhow::Result<()> {
    let first = Sample::take(bus)?;
    if !stop.sleep_until(first.at + a.interval) {
        return Ok(());
    }
    let second = Sample::take(bus)?;
    let elapsed = second.at.saturating_duration_since(first.at);
    let rows = rows(&first, &second);
    let mut out = io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&crate::top_view::json(&rows, elapsed))?)?;
    } else {
        out.write_all(crate::top_view::text(&rows, elapsed, None).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// A table per interval until Ctrl-C: redrawn in place on a terminal, one after another otherwise.
fn live(bus: &bus_client::Bus, a: &TopArgs, stop: &Interrupt) -> anyhow::Result<()> {
    let screen = if io::stdout().is_terminal() { Some(Screen::enter()?) } else { None };
    let footer = format!("every {:?}; Ctrl-C quits", a.interval);
    if let Some(s) = &screen {
        s.draw(&format!("sampling...\n\n{footer}"))?;
    }
    let mut prev = Sample::take(bus)?;
    while stop.sleep_until(prev.at + a.interval) {
        let cur = Sample::take(bus)?;
        let elapsed = cur.at.saturating_duration_since(prev.at);
        let rows = rows(&prev, &cur);
        match &screen {
            Some(s) => {
                let height = crate::screen::size().map_or(24, |(r, _)| r as usize);
                let limit = height.saturating_sub(FRAME_LINES).max(1);
                s.draw(&format!("{}{footer}", crate::top_view::text(&rows, elapsed, Some(limit))))?;
            }
            None => {
                let mut out = io::stdout().lock();
                writeln!(out, "{}", crate::top_view::text(&rows, elapsed, None))?;
                out.flush()?;
            }
        }
        prev = cur;
    }
    Ok(())
}
