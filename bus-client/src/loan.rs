//! Zero-copy [`Loan`]s: a message written in place, in shared memory or in a pipe publisher's buffer.

use crate::pipe_io::PipeLoan;
use crate::transport::OnTransport;

/// A zero-copy loan from [`Publisher::loan`](crate::Publisher::loan): write the message in place, then [`Loan::commit`].
///
/// Dropping it without committing aborts it. The loan took its sequence number ([`Loan::seq`]) when it was made
/// (on shared memory the position is claimed before the loan is written), and an aborted loan's number is
/// skipped: subscribers never see it, it is never reported as loss (no [`RecvError::Lagged`]), and the next
/// message carries a later number. The same rule holds on both transports, so sequence numbers increase but are
/// not necessarily consecutive (see [`Message::seq`]).
///
/// [`RecvError::Lagged`]: crate::RecvError::Lagged
/// [`Message::seq`]: crate::Message::seq
///
/// ```
/// let (mut p, mut s) = bus_client::pipe::channel("abort")?;
/// p.send(b"a")?; // seq 0
/// drop(p.loan(3)?); // aborted: seq 1 is skipped
/// p.send(b"b")?; // seq 2
/// assert_eq!(s.recv()?.seq(), 0);
/// assert_eq!(s.recv()?.seq(), 2, "no message and no Lagged for the aborted loan");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// On shared memory:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let bus = bus_client::Bus::connect()?;
/// let mut p = bus.publisher("frames")?;
/// let mut loan = p.loan(5)?;
/// loan.copy_from_slice(b"hello");
/// loan.commit();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Loan<'a>(pub(crate) OnTransport<shmbus_ring::Loan<'a>, PipeLoan<'a>>);

impl Loan<'_> {
    /// Copies `src` into the loan at `offset` (panics past the end).
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        match &mut self.0 {
            OnTransport::Shm(l) => l.write_at(offset, src),
            OnTransport::Pipe(l) => l.as_mut_slice()[offset..offset + src.len()].copy_from_slice(src),
        }
    }

    /// Fills the whole loan with `src`, which must be exactly as long as the loan (panics otherwise).
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        match &mut self.0 {
            OnTransport::Shm(l) => l.copy_from_slice(src),
            OnTransport::Pipe(l) => l.as_mut_slice().copy_from_slice(src),
        }
    }

    /// Lets `f` fill a buffer as long as the loan, then writes it into the loan; returns what `f` returns. For
    /// writers that need a `&mut [u8]` (serializers, `Read::read_exact`). On shared memory the buffer is private
    /// (zeroed, then copied into the loan); on a pipe it is the loan's own buffer.
    ///
    /// There is no `&mut [u8]` view of a shared-memory loan: subscribers in other processes may read those bytes
    /// while they are written, so the ring writes them with atomic stores (see `shmbus_ring::Loan`). Prefer
    /// [`Loan::write_at`] / [`Loan::copy_from_slice`], which need no extra copy.
    pub fn with_buffer<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        match &mut self.0 {
            OnTransport::Shm(l) => l.with_buffer(f),
            OnTransport::Pipe(l) => f(l.as_mut_slice()),
        }
    }

    /// Length of the loan.
    pub fn len(&self) -> usize {
        match &self.0 {
            OnTransport::Shm(l) => l.len(),
            OnTransport::Pipe(l) => l.len(),
        }
    }

    /// Whether the loan is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sequence number the message will carry (skipped if the loan is aborted).
    pub fn seq(&self) -> u64 {
        match &self.0 {
            OnTransport::Shm(l) => l.seq(),
            OnTransport::Pipe(l) => l.seq(),
        }
    }

    /// Publishes the message; returns its sequence number.
    pub fn commit(self) -> u64 {
        match self.0 {
            OnTransport::Shm(l) => l.commit(),
            OnTransport::Pipe(l) => {
                let len = l.len();
                l.commit_len(len)
            }
        }
    }

    /// Publishes only the first `len` bytes (panics if `len` exceeds the loan).
    ///
    /// On a pipe this writes the message, waiting as long as the reader needs; if every reader is gone, the
    /// message is dropped and the publisher reports `Closed` from then on.
    pub fn commit_len(self, len: usize) -> u64 {
        match self.0 {
            OnTransport::Shm(l) => l.commit_len(len),
            OnTransport::Pipe(l) => l.commit_len(len),
        }
    }
}
