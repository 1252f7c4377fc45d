//! Received messages: [`Message`], borrowed from its subscriber until dropped, and [`OwnedMessage`], copied out.
//! Both have the same accessors (`payload()`, `seq()`, `publisher()`, `timestamp()`, `len()`, `is_empty()`,
//! `value()`), so code reading one reads the other.

use crate::pipe_io::PipeMessage;
use crate::transport::OnTransport;

/// A received message, borrowing its [`Subscriber`](crate::Subscriber) until dropped (lossless payloads are read in place, in
/// shared memory; on a pipe, in the subscriber's buffer).
///
/// `Send`: a message may be handed to another thread (a scoped one: it borrows the subscriber), read and dropped
/// there; dropping it releases it wherever that happens.
///
/// ```
/// let (mut p, mut s) = bus_client::pipe::channel("moved")?;
/// p.send(b"over there")?;
/// let m = s.recv()?;
/// std::thread::scope(|t| t.spawn(move || assert_eq!(m.payload(), b"over there")).join().expect("reader"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Message<'a>(pub(crate) OnTransport<shmbus_ring::Message<'a>, PipeMessage<'a>>);

impl Message<'_> {
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        match &self.0 {
            OnTransport::Shm(m) => m.payload(),
            OnTransport::Pipe(m) => m.payload,
        }
    }

    /// Ring sequence number: one total order across all publishers of the topic. On a pipe: the message's
    /// number among its publisher's messages (from 0).
    ///
    /// Sequence numbers increase but need not be consecutive: an aborted [`Loan`](crate::Loan) had its number
    /// taken and it is skipped, on both transports. Subscribers never see an aborted loan and it is never
    /// reported as loss; lost messages are reported only by [`RecvError::Lagged`](crate::RecvError::Lagged), so
    /// do not count gaps in `seq` to detect loss.
    pub fn seq(&self) -> u64 {
        match &self.0 {
            OnTransport::Shm(m) => m.seq(),
            OnTransport::Pipe(m) => m.meta.seq,
        }
    }

    /// Id of the publisher that sent it ([`Publisher::id`](crate::Publisher::id)).
    pub fn publisher(&self) -> u32 {
        match &self.0 {
            OnTransport::Shm(m) => m.publisher(),
            OnTransport::Pipe(m) => m.meta.writer,
        }
    }

    /// Publish time, nanoseconds since the Unix epoch (the publisher's clock).
    pub fn timestamp(&self) -> u64 {
        match &self.0 {
            OnTransport::Shm(m) => m.timestamp(),
            OnTransport::Pipe(m) => m.meta.timestamp,
        }
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        match &self.0 {
            OnTransport::Shm(m) => m.len(),
            OnTransport::Pipe(m) => m.payload.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the payload and metadata into an [`OwnedMessage`]. This does not release the message: it stays
    /// borrowed (and, for a lossless subscriber, keeps holding publishers back) until `self` is dropped. Drop it
    /// right after copying to let publishers reuse its space.
    ///
    /// ```
    /// let (mut p, mut s) = bus_client::pipe::channel("copy")?;
    /// p.send(b"kept")?;
    /// let m = s.recv()?;
    /// let owned = m.to_owned_message();
    /// drop(m); // releases the message; `owned` is independent of the subscriber
    /// assert_eq!((owned.payload(), owned.seq()), (&b"kept"[..], 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_owned_message(&self) -> OwnedMessage {
        OwnedMessage {
            seq: self.seq(),
            publisher: self.publisher(),
            timestamp: self.timestamp(),
            payload: self.payload().to_vec(),
        }
    }
}

impl From<Message<'_>> for OwnedMessage {
    /// Copies the message out, then releases it (drops the borrowed [`Message`]).
    fn from(m: Message<'_>) -> OwnedMessage {
        m.to_owned_message()
    }
}

/// A message copied out of the subscriber (from [`Subscriber::iter`](crate::Subscriber::iter) or
/// [`Message::to_owned_message`]), independent of it. It has the same accessor methods as [`Message`]; the
/// public fields hold the same values.
///
/// ```
/// let (mut p, mut s) = bus_client::pipe::channel("owned")?;
/// p.send(b"a")?;
/// p.send(b"bc")?;
/// let mut batch: Vec<bus_client::OwnedMessage> = Vec::new();
/// batch.push(s.recv()?.into()); // copied out, then released
/// batch.push(s.recv()?.into());
/// assert_eq!(batch[0].payload(), b"a");
/// assert_eq!((batch[1].seq(), batch[1].len()), (1, 2));
/// assert_eq!(batch[1].publisher(), p.id());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    /// Ring sequence number (see [`OwnedMessage::seq`]).
    pub seq: u64,
    /// Publisher id (see [`OwnedMessage::publisher`]).
    pub publisher: u32,
    /// Publish time, nanoseconds since the Unix epoch (see [`OwnedMessage::timestamp`]).
    pub timestamp: u64,
    /// The payload (see [`OwnedMessage::payload`]).
    pub payload: Vec<u8>,
}

impl OwnedMessage {
    /// The payload, as [`Message::payload`].
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, taken out without copying.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// Sequence number, as [`Message::seq`].
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Id of the publisher that sent it, as [`Message::publisher`].
    pub fn publisher(&self) -> u32 {
        self.publisher
    }

    /// Publish time, nanoseconds since the Unix epoch, as [`Message::timestamp`].
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_and_borrowed_messages_have_one_shape() {
        let (mut p, mut s) = crate::pipe::channel("shape").unwrap();
        p.send(b"xyz").unwrap();
        p.send(b"").unwrap();
        let m = s.recv().unwrap();
        let borrowed = (m.payload().to_vec(), m.seq(), m.publisher(), m.timestamp(), m.len(), m.is_empty());
        let o = OwnedMessage::from(m);
        assert_eq!(borrowed, (o.payload().to_vec(), o.seq(), o.publisher(), o.timestamp(), o.len(), o.is_empty()));
        let second: OwnedMessage = s.recv().unwrap().into();
        let batch = [o, second];
        assert_eq!(batch[0].payload(), b"xyz");
        assert!(batch[1].is_empty());
        assert_eq!(batch[1].seq(), 1);
        assert_eq!(batch[0].clone().into_payload(), b"xyz".to_vec());
    }
}
