//! Where a [`Publisher`](crate::Publisher) puts its messages: the [`Sink`] trait, and its two transports (a ring
//! in shared memory attached under a lease, and pipes). The shm/pipe dispatch lives here, once.

use crate::attached::Attached;
use crate::endpoint::Endpoint;
use crate::error::SendError;
use crate::loan::Loan;
use crate::pipe_io::io::Wait;
use crate::pipe_io::PipeWriter;
use crate::transport::OnTransport;
use std::time::Duration;

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
}

/// A publisher on shared memory.
pub(crate) type ShmSink = Attached<shmbus_ring::Publisher>;

impl Sink for ShmSink {
    fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.check::<SendError>()?;
        Ok(self.ring.send(msg)?)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.check::<SendError>()?;
        Ok(self.ring.try_send(msg)?)
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError> {
        self.check::<SendError>()?;
        Ok(self.ring.send_timeout(msg, timeout)?)
    }

    fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.check::<SendError>()?;
        Ok(self.ring.try_send_batch(msgs)?)
    }

    fn loan(&mut self, len: usize, wait: Wait) -> Result<Loan<'_>, SendError> {
        self.check::<SendError>()?;
        let ring = match wait {
            Wait::Now => self.ring.try_loan(len)?,
            Wait::Until(d) => self.ring.loan(len, Some(d))?,
            Wait::Forever => self.ring.loan(len, None)?,
        };
        Ok(Loan(OnTransport::Shm(ring)))
    }

    fn max_message(&self) -> usize {
        self.ring.max_message()
    }

    fn id(&self) -> u32 {
        self.ring.slot() as u32
    }

    fn published(&self) -> u64 {
        self.ring.published()
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
