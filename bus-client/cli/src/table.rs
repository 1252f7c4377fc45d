//! A minimal left-aligned text table for the human output of `topics` and `stats`.

use std::fmt::Write;

/// Renders `rows` under `headers`, columns separated by two spaces, with the given indent.
/// Cells are shown with control characters escaped ([`bus_client::printable`]): names come from other users.
pub fn render(indent: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().map(|c| bus_client::printable(c).into_owned()).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from(indent);
        for (i, c) in cells.enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let _ = write!(s, "{c:<w$}", w = widths[i]);
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

/// A topic generation as the tables show it: its low 24 bits in hex (`3fa9c2`). Generations start from the
/// daemon's clock in nanoseconds and grow by one per creation, so the low digits tell two generations of a topic
/// apart while staying short; `--json` keeps the full value.
pub fn short_generation(g: u64) -> String {
    format!("{:06x}", g & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let t = super::render("", &["NAME", "N"], &[vec!["orders".into(), "1".into()], vec!["x".into(), "200".into()]]);
        assert_eq!(t, "NAME    N\norders  1\nx       200\n");
    }

    #[test]
    fn control_characters_are_escaped() {
        let t = super::render("", &["GROUP"], &[vec!["g\n\x1b[2J".into()]]);
        assert_eq!(t, "GROUP\ng\\n\\u{1b}[2J\n");
    }
}
