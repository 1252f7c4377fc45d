//! A non-blocking, lossy writer for the daemon's log: each event's line goes to a bounded queue that a thread of its
//! own writes to stderr; when the queue is full the line is dropped and counted, and the next line queued says how
//! many were lost before it.
//!
//! Log lines are written where they happen, some under the registry lock: with a plain stderr writer, a stderr
//! that blocks (a stuck journald, a pipe nobody reads) stopped every connection of the daemon once 64 KiB were
//! unread, `shmbus topics` included (`tests/tests/log_blocked.rs`). A log line is worth less than the control plane.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// What the writer thread is sent: a line, or a request to say when all before it is written.
enum Item {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The `MakeWriter` of the daemon's log (cheap to clone: a queue sender and the drop counter).
#[derive(Clone)]
pub struct LogQueue {
    tx: SyncSender<Item>,
    dropped: Arc<AtomicU64>,
}

/// Flushes what is queued when dropped, waiting at most a second (a stderr that stays blocked does not keep the
/// daemon from exiting).
pub struct FlushOnDrop(LogQueue);

impl LogQueue {
    /// Starts the writer thread for `out` with room for `lines` lines.
    ///
    /// # Errors
    /// If the thread cannot be started.
    pub fn start(out: impl Write + Send + 'static, lines: usize) -> std::io::Result<(LogQueue, FlushOnDrop)> {
        let (tx, rx) = sync_channel(lines);
        let dropped = Arc::new(AtomicU64::new(0));
        std::thread::Builder::new().name("shmbusd-log".into()).spawn(move || write_all(rx, out))?;
        let q = LogQueue { tx, dropped };
        Ok((q.clone(), FlushOnDrop(q)))
    }
}

/// The writer thread: writes each line as it comes.
fn write_all(rx: Receiver<Item>, mut out: impl Write) {
    for item in rx {
        match item {
            Item::Line(line) => {
                let _ = out.write_all(&line);
            }
            Item::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

impl LogQueue {
    /// Waits until every line queued before this call is written, or `within` has passed; returns which.
    pub fn flush(&self, within: Duration) -> bool {
        let (done, wait) = sync_channel(1);
        // Not a blocking send: a blocked stderr may never make room; retried until the deadline instead.
        let deadline = std::time::Instant::now() + within;
        let mut item = Item::Flush(done);
        loop {
            match self.tx.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                    item = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
        wait.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).is_ok()
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.0.flush(Duration::from_secs(1));
    }
}

/// One event's line, queued when the formatter drops it.
pub struct QueuedLine {
    buf: Vec<u8>,
    queue: LogQueue,
}

impl Write for QueuedLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut line = std::mem::take(&mut self.buf);
        // The loss is said where it happened: before the first line queued after it. Relaxed: a count, not a
        // synchronization (two events racing here may swap which of them carries it).
        let lost = self.queue.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let mut said = format!("shmbusd: {lost} log lines dropped (stderr did not keep up)\n").into_bytes();
            said.append(&mut line);
            line = said;
        }
        if let Err(TrySendError::Full(_)) = self.queue.tx.try_send(Item::Line(line)) {
            self.queue.dropped.fetch_add(lost + 1, Ordering::Relaxed);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogQueue {
    type Writer = QueuedLine;

    fn make_writer(&'a self) -> QueuedLine {
        QueuedLine { buf: Vec::new(), queue: self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer that blocks until released, then records what it is given.
    struct Gate(Arc<Mutex<Vec<u8>>>, Receiver<()>);
    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _ = self.1.recv();
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_writer_costs_lines_not_the_caller_and_the_loss_is_said() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = std::sync::mpsc::channel();
        let (q, flush) = LogQueue::start(Gate(got.clone(), gate), 4).unwrap();
        let line = |s: &str| {
            let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&q);
            w.write_all(s.as_bytes()).unwrap();
        };
        // The writer is blocked: 100 lines return at once, all but what the queue (and the thread's hand) holds
        // are dropped.
        let t0 = std::time::Instant::now();
        for i in 0..100 {
            line(&format!("line {i}\n"));
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "the caller waited for the blocked writer");
        for _ in 0..1000 {
            let _ = open.send(());
        }
        assert!(q.flush(Duration::from_secs(10)), "the queued lines were written once the writer went on");
        line("after\n");
        drop(flush);
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("line 0\n"), "{text}");
        assert!(text.contains("log lines dropped (stderr did not keep up)\nafter\n"), "{text}");
    }
}
