//! The terminal of `shmbus top`'s live view: the alternate screen with the cursor hidden while it runs, both
//! restored when the view ends (Ctrl-C, an error, a panic unwinding), and the terminal's size.

use std::io::{self, Write};

/// The alternate screen, entered on creation and left on drop.
pub struct Screen(());

impl Screen {
    /// Switches to the alternate screen and hides the cursor.
    pub fn enter() -> io::Result<Screen> {
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[?1049h\x1b[?25l")?;
        out.flush()?;
        Ok(Screen(()))
    }

    /// Replaces what the screen shows with `text`, cut to the terminal's width and height.
    pub fn draw(&self, text: &str) -> io::Result<()> {
        let (rows, cols) = size().unwrap_or((24, 80));
        let mut frame = String::from("\x1b[H\x1b[2J");
        for (i, line) in text.lines().take(rows as usize).enumerate() {
            if i > 0 {
                frame.push_str("\r\n");
            }
            frame.extend(line.chars().take(cols as usize));
        }
        let mut out = io::stdout().lock();
        out.write_all(frame.as_bytes())?;
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = io::stdout().lock();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
    }
}

/// Rows and columns of the terminal on standard output, if it is one and says.
pub fn size() -> Option<(u16, u16)> {
    let w = rustix::termios::tcgetwinsize(io::stdout()).ok()?;
    (w.ws_row > 0 && w.ws_col > 0).then_some((w.ws_row, w.ws_col))
}
