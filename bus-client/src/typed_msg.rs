//! Decoded values with their metadata: [`TypedMessage`], from [`TypedSubscriber::recv_message`] and
//! [`TypedSubscriber::iter_messages`], for typed subscribers that need the sequence, publisher or timestamp.

use crate::error::RecvError;
use crate::iter::TypedMessageIter;
use crate::message::Message;
use crate::type_check::TypeCheck;
use crate::typed::{decode, TypedSubscriber};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A decoded value and the metadata of the message that carried it (as [`Message`] has them).
///
/// ```
/// let (mut p, s) = bus_client::pipe::channel("typed-meta")?;
/// let mut typed = bus_client::TypedSubscriber::<u32>::from_untyped(s);
/// p.send_value(&7u32)?;
/// let m = typed.recv_message()?;
/// assert_eq!((m.value, m.seq, m.publisher), (7, 0, p.id()));
/// assert!(m.timestamp > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedMessage<T> {
    /// The decoded value.
    pub value: T,
    /// Sequence number, as [`Message::seq`].
    pub seq: u64,
    /// Id of the publisher that sent it, as [`Message::publisher`].
    pub publisher: u32,
    /// Publish time, nanoseconds since the Unix epoch, as [`Message::timestamp`].
    pub timestamp: u64,
}

impl<T: DeserializeOwned> TypedMessage<T> {
    /// Decodes `m`'s payload (in place, without copying it first) and keeps its metadata.
    pub(crate) fn decode(check: &mut TypeCheck, m: &Message<'_>) -> Result<TypedMessage<T>, RecvError> {
        check.verify()?;
        Ok(TypedMessage {
            value: decode(m.payload())?,
            seq: m.seq(),
            publisher: m.publisher(),
            timestamp: m.timestamp(),
        })
    }
}

impl<T: DeserializeOwned> TypedSubscriber<T> {
    /// Waits for the next value, with its metadata. Errors as for [`TypedSubscriber::recv`].
    pub fn recv_message(&mut self) -> Result<TypedMessage<T>, RecvError> {
        let (sub, check) = self.parts();
        TypedMessage::decode(check, &sub.recv()?)
    }

    /// The next value with its metadata if one is available now, else [`RecvError::Empty`].
    pub fn try_recv_message(&mut self) -> Result<TypedMessage<T>, RecvError> {
        let (sub, check) = self.parts();
        TypedMessage::decode(check, &sub.try_recv()?)
    }

    /// Waits at most `timeout` for the next value with its metadata ([`RecvError::Timeout`]).
    pub fn recv_message_timeout(&mut self, timeout: Duration) -> Result<TypedMessage<T>, RecvError> {
        let (sub, check) = self.parts();
        TypedMessage::decode(check, &sub.recv_timeout(timeout)?)
    }

    /// A blocking iterator of values with their metadata; it behaves as [`TypedSubscriber::iter`] (a payload
    /// that does not decode, or a lap, comes through as an `Err` item and the iteration goes on).
    ///
    /// ```
    /// let (mut p, s) = bus_client::pipe::channel("typed-iter-meta")?;
    /// let mut prices = bus_client::TypedSubscriber::<(String, f64)>::from_untyped(s);
    /// p.send_value(&("ACME".to_string(), 1.5))?;
    /// drop(p); // ends the loop after the last message
    /// for m in prices.iter_messages() {
    ///     let m = m?;
    ///     let (symbol, price) = &m.value;
    ///     println!("#{} from {} at {}: {symbol} {price}", m.seq, m.publisher, m.timestamp);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter_messages(&mut self) -> TypedMessageIter<'_, T> {
        let (sub, check) = self.parts();
        TypedMessageIter::new(sub, check)
    }
}
