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
