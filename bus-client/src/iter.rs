//! Iterating over a subscriber: [`Iter`] (blocking), [`TryIter`] (what is available now), [`TypedIter`] (decoded
//! values), [`TypedMessageIter`] (decoded values with their metadata), and `for m in &mut sub`.

use crate::error::RecvError;
use crate::message::OwnedMessage;
use crate::subscriber::Subscriber;
use crate::type_check::TypeCheck;
use crate::typed::{checked, TypedSubscriber};
use crate::typed_msg::TypedMessage;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// The item for one receive: `None` ends the iteration (after `Closed`, with no item); a
/// [transient](RecvError::is_transient) error (lag, demotion, one undecodable payload) is yielded and the
/// iteration goes on; any other error is yielded, then the iteration ends.
fn item<T>(done: &mut bool, r: Result<T, RecvError>) -> Option<Result<T, RecvError>> {
    match r {
        Ok(v) => Some(Ok(v)),
        Err(RecvError::Closed) => {
            *done = true;
            None
        }
        Err(e) if e.is_transient() => Some(Err(e)),
        Err(e) => {
            *done = true;
            Some(Err(e))
        }
    }
}

/// Blocking iterator of owned messages, from [`Subscriber::iter`] or `for m in &mut sub`.
#[derive(Debug)]
pub struct Iter<'a> {
    sub: &'a mut Subscriber,
    done: bool,
}

impl<'a> Iter<'a> {
    pub(crate) fn new(sub: &'a mut Subscriber) -> Iter<'a> {
        Iter { sub, done: false }
    }
}

impl Iterator for Iter<'_> {
    type Item = Result<OwnedMessage, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.sub.recv().map(|m| m.to_owned_message());
        item(&mut self.done, r)
    }
}

/// `for m in &mut sub` is `for m in sub.iter()`.
///
/// ```
/// let (mut p, mut sub) = bus_client::pipe::channel("for")?;
/// p.send(b"x")?;
/// drop(p);
/// let mut n = 0;
/// for m in &mut sub {
///     assert_eq!(m?.payload(), b"x");
///     n += 1;
/// }
/// assert_eq!(n, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<'a> IntoIterator for &'a mut Subscriber {
    type Item = Result<OwnedMessage, RecvError>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the messages available now, from [`Subscriber::try_iter`]: ends at the first `Empty`.
#[derive(Debug)]
pub struct TryIter<'a> {
    sub: &'a mut Subscriber,
    done: bool,
}

impl<'a> TryIter<'a> {
    pub(crate) fn new(sub: &'a mut Subscriber) -> TryIter<'a> {
        TryIter { sub, done: false }
    }
}

impl Iterator for TryIter<'_> {
    type Item = Result<OwnedMessage, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.sub.try_recv().map(|m| m.to_owned_message()) {
            Err(RecvError::Empty) => {
                self.done = true;
                None
            }
            r => item(&mut self.done, r),
        }
    }
}

/// Blocking iterator of decoded values, from [`TypedSubscriber::iter`] or `for v in &mut typed_sub`. Each value is
/// decoded straight from the message, without copying it first. A payload that does not decode is yielded as
/// [`RecvError::Decode`] and the iteration goes on; otherwise it behaves as [`Iter`].
#[derive(Debug)]
pub struct TypedIter<'a, T> {
    sub: &'a mut Subscriber,
    check: &'a mut TypeCheck,
    done: bool,
    _t: PhantomData<fn() -> T>,
}

impl<'a, T> TypedIter<'a, T> {
    pub(crate) fn new(sub: &'a mut Subscriber, check: &'a mut TypeCheck) -> TypedIter<'a, T> {
        TypedIter { sub, check, done: false, _t: PhantomData }
    }
}

impl<T: DeserializeOwned> Iterator for TypedIter<'_, T> {
    type Item = Result<T, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let check = &mut *self.check;
        let r = self.sub.recv().and_then(|m| checked(check, &m));
        item(&mut self.done, r)
    }
}

/// Blocking iterator of decoded values with their metadata, from [`TypedSubscriber::iter_messages`]; it behaves
/// as [`TypedIter`].
#[derive(Debug)]
pub struct TypedMessageIter<'a, T> {
    sub: &'a mut Subscriber,
    check: &'a mut TypeCheck,
    done: bool,
    _t: PhantomData<fn() -> T>,
}

impl<'a, T> TypedMessageIter<'a, T> {
    pub(crate) fn new(sub: &'a mut Subscriber, check: &'a mut TypeCheck) -> TypedMessageIter<'a, T> {
        TypedMessageIter { sub, check, done: false, _t: PhantomData }
    }
}

impl<T: DeserializeOwned> Iterator for TypedMessageIter<'_, T> {
    type Item = Result<TypedMessage<T>, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let check = &mut *self.check;
        let r = self.sub.recv().and_then(|m| TypedMessage::decode(check, &m));
        item(&mut self.done, r)
    }
}

/// `for v in &mut typed_sub` is `for v in typed_sub.iter()`.
impl<'a, T: DeserializeOwned> IntoIterator for &'a mut TypedSubscriber<T> {
    type Item = Result<T, RecvError>;
    type IntoIter = TypedIter<'a, T>;

    fn into_iter(self) -> TypedIter<'a, T> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use crate::{pipe, RecvError};
    use std::time::{Duration, Instant};

    #[test]
    fn try_iter_drains_what_is_there_and_ends_without_waiting() {
        let (mut p, mut s) = pipe::channel("drain").unwrap();
        assert_eq!(s.try_iter().count(), 0);
        for i in 0..3u8 {
            p.send(&[i]).unwrap();
        }
        let got: Vec<u8> = s.try_iter().map(|m| m.unwrap().payload()[0]).collect();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(s.try_recv().unwrap_err(), RecvError::Empty, "all taken");
        drop(p);
        assert_eq!(s.try_iter().count(), 0, "closed: no item");
    }

    #[test]
    fn for_loops_over_a_subscriber_and_a_typed_one() {
        let (mut p, mut s) = pipe::channel("for").unwrap();
        p.send(b"a").unwrap();
        p.send(b"b").unwrap();
        drop(p);
        let got: Vec<Vec<u8>> = (&mut s).into_iter().map(|m| m.unwrap().into_payload()).collect();
        assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);

        let (mut p, s) = pipe::channel("typed-for").unwrap();
        let mut typed = crate::TypedSubscriber::<u32>::from_untyped(s);
        p.send_value(&7u32).unwrap();
        p.send(b"").unwrap(); // not a u32: one Decode error, and the iteration goes on
        p.send_value(&8u32).unwrap();
        drop(p);
        let mut items = Vec::new();
        for v in &mut typed {
            items.push(v);
        }
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], Ok(7));
        assert!(matches!(items[1], Err(RecvError::Decode(_))));
        assert_eq!(items[2], Ok(8));
        assert_eq!(typed.iter().count(), 0, "closed");
    }

    #[test]
    fn typed_messages_carry_their_metadata_and_go_on_past_a_bad_payload() {
        let (mut p, s) = pipe::channel("typed-meta").unwrap();
        let mut typed = crate::TypedSubscriber::<u32>::from_untyped(s);
        assert_eq!(typed.try_recv_message().unwrap_err(), RecvError::Empty);
        p.send_value(&7u32).unwrap();
        p.send(b"").unwrap(); // not a u32
        p.send_value(&8u32).unwrap();
        let first = typed.recv_message_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((first.value, first.seq, first.publisher), (7, 0, p.id()));
        assert!(first.timestamp > 0);
        drop(p);
        let rest: Vec<_> = typed.iter_messages().collect();
        assert_eq!(rest.len(), 2, "{rest:?}");
        assert!(matches!(rest[0], Err(RecvError::Decode(_))));
        let last = rest[1].as_ref().unwrap();
        assert_eq!((last.value, last.seq), (8, 2));
        assert_eq!(typed.recv_message().unwrap_err(), RecvError::Closed);
    }

    #[test]
    fn recv_deadline_takes_what_is_there_then_times_out_at_the_deadline() {
        let (mut p, mut s) = pipe::channel("deadline").unwrap();
        p.send(b"x").unwrap();
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(s.recv_deadline(past).unwrap().payload(), b"x", "a message available now is taken");
        assert_eq!(s.recv_deadline(past).unwrap_err(), RecvError::Timeout);
        let deadline = Instant::now() + Duration::from_millis(30);
        assert_eq!(s.recv_deadline(deadline).unwrap_err(), RecvError::Timeout);
        assert!(Instant::now() >= deadline, "waited up to the deadline");
    }

    #[test]
    fn a_timeout_too_long_to_represent_does_not_panic() {
        let (mut p, mut s) = pipe::channel("max").unwrap();
        p.send(b"x").unwrap();
        assert_eq!(s.recv_timeout(Duration::MAX).unwrap().payload(), b"x");
    }
}
