//! Showing text that came from a peer: names and messages a client chose reach the daemon's log and the CLI's
//! terminal, so control characters (newline, ESC, BEL, ...) are shown escaped, never raw.

use std::borrow::Cow;

/// `s` with every control character escaped as Rust does (`\n`, `\u{1b}`); the rest, quotes included, as is.
///
/// ```
/// assert_eq!(shmbus_proto::text::printable("a\nb\x1b[2J"), "a\\nb\\u{1b}[2J");
/// assert_eq!(shmbus_proto::text::printable("plain \"name\""), "plain \"name\"");
/// ```
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` shown as [`printable`] shows it, cut to at most `max` characters of that form; when cut, an ellipsis and
/// the length of `s` in bytes follow. For peer text on its way into a log line or a reply: a hostile name of a
/// megabyte (six when escaped) must cost neither a megabyte of log nor a reply too large for a frame.
///
/// ```
/// use shmbus_proto::text::excerpt;
/// assert_eq!(excerpt("short", 8), "short");
/// assert_eq!(excerpt("abcdefghij", 4), "abcd… (10 bytes)");
/// assert_eq!(excerpt("\u{1}\u{1}\u{1}", 12), "\\u{1}\\u{1}… (3 bytes)");
/// ```
pub fn excerpt(s: &str, max: usize) -> Cow<'_, str> {
    let mut out = String::new();
    let mut shown = 0;
    for c in s.chars() {
        let width = if c.is_control() { c.escape_debug().count() } else { 1 };
        if shown + width > max {
            out.push_str(&format!("… ({} bytes)", s.len()));
            return Cow::Owned(out);
        }
        shown += width;
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    printable(s)
}
