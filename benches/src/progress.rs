//! Progress of a run on stderr: an `indicatif` bar over the scenarios, hidden when stderr is not a terminal
//! (then only failures are printed).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// The bar of one run.
pub struct Progress {
    bar: ProgressBar,
    shown: bool,
}

impl Progress {
    /// A bar over `total` scenario runs.
    pub fn new(total: u64) -> Progress {
        let shown = std::io::stderr().is_terminal();
        let target = if shown { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress { bar, shown }
    }

    /// Names the scenario run now going on.
    pub fn start(&self, what: String) {
        self.bar.set_message(what);
    }

    /// One scenario run done.
    pub fn step(&self) {
        self.bar.inc(1);
    }

    /// Counts `n` runs as done without running them (the rest of a scenario's repeats after it failed).
    pub fn inc_skipped(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Prints a line above the bar (or alone, when the bar is hidden).
    pub fn note(&self, line: &str) {
        if self.shown {
            self.bar.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
