//! How a program should write its log lines to stderr: colour only on a terminal and never under `NO_COLOR`
//! (<https://no-color.org>), and neither colour nor a timestamp when stderr is the journal (journald stamps each
//! line itself), recognised as `systemd.exec(5)` says: `JOURNAL_STREAM` holds stderr's `device:inode`.

use std::io::IsTerminal;
use std::os::fd::AsFd;

/// What to put in log lines written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogStyle {
    /// ANSI colour escapes.
    pub ansi: bool,
    /// A timestamp at the start of each line.
    pub timestamps: bool,
}

/// The style for this process's stderr, from the environment and what stderr is.
///
/// ```
/// let style = shmbus_os::stderr_log_style();
/// assert!(!(style.ansi && !style.timestamps), "colour only where timestamps are kept (not the journal)");
/// ```
pub fn stderr_log_style() -> LogStyle {
    let journal = stderr_is_journal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    LogStyle { ansi: !journal && !no_color && std::io::stderr().is_terminal(), timestamps: !journal }
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` is set and names stderr's
/// device and inode (a child whose stderr was redirected inherits the variable but not the stream).
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let stderr = std::io::stderr();
    nix::sys::stat::fstat(stderr.as_fd()).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}
