//! Where a [`Publisher`](crate::Publisher) puts its messages: the [`Sink`] trait, and its two transports (a ring
//! in shared memory attached under a lease, and pipes). The shm/pipe dispatch lives here, once.

use crate::attached::Attached;
use crate::endpoint::Endpoint;
use crate::error::SendError;
use crate::held::{HeldLog, WARN_AFTER};
use crate::lease::Lease;
use crate::loan::Loan;
use crate::pipe_io::io::Wait;
use crate::pipe_io::PipeWriter;
use crate::transport::{OnTransport, Transport};
use std::time::{Duration, Instant};

/// The transport side of a publisher: what [`Publisher`](crate::Publisher)'s operations do on it.
pub(crate) trait Sink: Endpoint + Send {
    /// Publishes, waiting for room as long as it takes.
    fn send(&mut self, msg: &[u8]) -> Result<u64, SendError>;
    /// Publishes if there is room now.
    fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError>;
    /// Publishes, waiting at most `timeout` for room.
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError>;
    /// Publishes as many as fit now; an error only if not even the first did.
    fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError>;
    /// Lends `len` bytes to write a message in place, waiting for room as `wait` allows.
    fn loan(&mut self, len: usize, wait: Wait) -> Result<Loan<'_>, SendError>;
    /// The largest message.
    fn max_message(&self) -> usize;
    /// The id every message carries.
    fn id(&self) -> u32;
    /// Messages published.
    fn published(&self) -> u64;
    /// The pipe side, if this is one.
    fn pipe_writer(&mut self) -> Option<&mut PipeWriter> {
        None
    }
    /// The shared-memory side, if this is one.
    fn shm(&mut self) -> Option<&mut Attached<shmbus_ring::Publisher>> {
        None
    }
}

/// A publisher on shared memory, and the rate limit of its "who holds me back" warning.
pub(crate) struct ShmSink {
    at: Attached<shmbus_ring::Publisher>,
    held: HeldLog,
}

impl ShmSink {
    pub(crate) fn new(ring: shmbus_ring::Publisher, lease: Lease) -> ShmSink {
        ShmSink { at: Attached::new(ring, lease), held: HeldLog::default() }
    }
}

impl Endpoint for ShmSink {
    fn topic(&self) -> &str {
        self.at.topic()
    }

    fn is_closed(&self) -> bool {
        self.at.is_closed()
    }

    fn transport(&self) -> Transport {
        self.at.transport()
    }

    fn debug_fields(&self, d: &mut std::fmt::DebugStruct<'_, '_>) {
        self.at.debug_fields(d)
    }
}

impl Sink for ShmSink {
    fn shm(&mut self) -> Option<&mut Attached<shmbus_ring::Publisher>> {
        Some(&mut self.at)
    }

    fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.at.check::<SendError>()?;
        match self.at.ring.try_send(msg) {
            Err(shmbus_ring::SendError::Full) => {}
            r => return Ok(r?),
        }
        // Held back: wait in steps of `WARN_AFTER`, saying (rate-limited) who holds the topic full.
        let start = Instant::now();
        loop {
            match self.at.ring.send_timeout(msg, WARN_AFTER) {
                Err(shmbus_ring::SendError::Timeout) => {
                    let slot = self.at.ring.slot();
                    self.held.waited(self.at.ring.topic(), self.at.lease.topic(), slot, start.elapsed());
                    self.at.check::<SendError>()?;
                }
                r => return Ok(r?),
            }
        }
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.at.check::<SendError>()?;
        Ok(self.at.ring.try_send(msg)?)
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError> {
        self.at.check::<SendError>()?;
        Ok(self.at.ring.send_timeout(msg, timeout)?)
    }

    fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.at.check::<SendError>()?;
        Ok(self.at.ring.try_send_batch(msgs)?)
    }

    fn loan(&mut self, len: usize, wait: Wait) -> Result<Loan<'_>, SendError> {
        self.at.check::<SendError>()?;
        let ring = match wait {
            Wait::Now => self.at.ring.try_loan(len)?,
            Wait::Until(d) => self.at.ring.loan(len, Some(d))?,
            Wait::Forever => self.at.ring.loan(len, None)?,
        };
        Ok(Loan(OnTransport::Shm(ring)))
    }

    fn max_message(&self) -> usize {
        self.at.ring.max_message()
    }

    fn id(&self) -> u32 {
        self.at.ring.slot() as u32
    }

    fn published(&self) -> u64 {
        self.at.ring.published()
    }
}

impl Sink for PipeWriter {
    fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        PipeWriter::send(self, msg, Wait::Forever)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        PipeWriter::send(self, msg, Wait::Now)
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError> {
        PipeWriter::send(self, msg, Wait::timeout(timeout))
    }

    fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        PipeWriter::try_send_batch(self, msgs)
    }

    fn loan(&mut self, len: usize, wait: Wait) -> Result<Loan<'_>, SendError> {
        Ok(Loan(OnTransport::Pipe(PipeWriter::loan(self, len, wait)?)))
    }

    fn max_message(&self) -> usize {
        PipeWriter::max_message(self)
    }

    fn id(&self) -> u32 {
        PipeWriter::id(self)
    }

    fn published(&self) -> u64 {
        PipeWriter::published(self)
    }

    fn pipe_writer(&mut self) -> Option<&mut PipeWriter> {
        Some(self)
    }
}
