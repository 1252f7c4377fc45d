//! Typed handles: values encoded with the bus codec (bincode through serde), and the payload type each typed
//! handle registers so that mismatched types on one topic are refused at open: a name (the type's own without
//! module paths, or one chosen with `open_typed_as`) and a fingerprint of its serde shape.
//!
//! ```
//! use bus_client::typed::{decode, encode, type_info};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! struct Order { id: u64, qty: i32 }
//!
//! let bytes = encode(&Order { id: 7, qty: -2 })?;
//! assert_eq!(decode::<Order>(&bytes)?, Order { id: 7, qty: -2 });
//!
//! let t = type_info::<Order>();
//! assert_eq!(t.name, "Order", "no crate or module path: the same struct in another program agrees");
//! assert_ne!(t.hash, 0, "a fingerprint of the serde shape (field names, order and types)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{OpenError, RecvError, SendError};
use crate::iter::TypedIter;
use crate::message::{Message, OwnedMessage};
use crate::publisher::{Publisher, PublisherBuilder};
use crate::subscriber::{Subscriber, SubscriberBuilder};
use crate::type_check::TypeCheck;
use serde::{de::DeserializeOwned, Serialize};
use shmbus_proto::codec;
use shmbus_proto::msg::TypeInfo;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The name of `T` without module paths, as [`type_info`] registers it by default: `my_app::orders::Order` is
/// `Order`, `alloc::vec::Vec<my_app::Leg>` is `Vec<Leg>`. Two programs that each define the same struct agree on
/// it, whatever their crate and module names.
pub fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            segment.clear(); // a module path: keep only what follows it
        } else if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else {
            out.push_str(&segment);
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(&segment);
    out
}

/// The payload type a typed handle of `T` registers: [`short_type_name`] and the structural fingerprint of
/// `T`'s serde shape (see [`type_info_as`]).
pub fn type_info<T: DeserializeOwned>() -> TypeInfo {
    type_info_as::<T>(&short_type_name::<T>())
}

/// The payload type of `T` under a name the caller chooses (`open_typed_as`), with the fingerprint of `T`'s
/// serde shape: FNV-1a of the field names, their order and types, sequence, map and option contents, and every
/// enum variant (traced by driving `T::deserialize`; see the crate's `shape` module). Renaming, reordering,
/// retyping or adding a field changes it; the crate and module paths do not. A type whose shape cannot be
/// traced (a `Deserialize` that needs a self-describing format, `#[serde(flatten)]`, validation that refuses
/// made-up values, a recursive struct) gets fingerprint 0 and is checked by name only.
pub fn type_info_as<T: DeserializeOwned>(name: &str) -> TypeInfo {
    let hash = crate::shape::shape_of::<T>().map_or(0, |s| fnv1a(s.as_bytes()).max(1));
    TypeInfo { name: name.to_string(), hash }
}

/// Encodes `value` with the bus codec.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SendError> {
    codec::encode(value).map_err(|e| SendError::Encode(e.to_string()))
}

/// Decodes a whole `T` from `bytes` (trailing bytes are an error).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecvError> {
    codec::decode(bytes).map_err(|e| RecvError::Decode(e.to_string()))
}

impl PublisherBuilder {
    /// Opens a publisher of `T` values, registering [`type_info`] of `T` as the topic's payload type. `T` also
    /// needs `Deserialize`: its shape is traced through it (see [`type_info_as`]).
    pub fn open_typed<T: Serialize + DeserializeOwned>(self) -> Result<TypedPublisher<T>, OpenError> {
        self.open_typed_as::<T>(&short_type_name::<T>())
    }

    /// Like [`PublisherBuilder::open_typed`], registering the type under `name` instead of the type's own name
    /// (e.g. when two programs name the same shape differently). The shape is still checked.
    pub fn open_typed_as<T: Serialize + DeserializeOwned>(self, name: &str) -> Result<TypedPublisher<T>, OpenError> {
        Ok(TypedPublisher::new(self.payload_type(type_info_as::<T>(name)).open()?))
    }
}

impl SubscriberBuilder {
    /// Opens a subscriber of `T` values, checked against the topic's payload type (see [`type_info`]).
    pub fn open_typed<T: DeserializeOwned>(self) -> Result<TypedSubscriber<T>, OpenError> {
        self.open_typed_as::<T>(&short_type_name::<T>())
    }

    /// Like [`SubscriberBuilder::open_typed`], under `name` instead of the type's own name.
    pub fn open_typed_as<T: DeserializeOwned>(self, name: &str) -> Result<TypedSubscriber<T>, OpenError> {
        let info = type_info_as::<T>(name);
        let (control, topic) = (self.control.clone(), self.topic.clone());
        let sub = self.payload_type(info.clone()).open()?;
        // A pipe subscriber has no daemon to ask; a daemon-backed one checks again at its first message.
        let check = if sub.is_shm() { TypeCheck::pending(control, &topic, info) } else { TypeCheck::None };
        Ok(TypedSubscriber::new(sub, check))
    }
}

/// `m`'s payload as a `T`, once `check` has passed (see [`TypedSubscriber::recv`]).
pub(crate) fn checked<T: DeserializeOwned>(check: &mut TypeCheck, m: &Message<'_>) -> Result<T, RecvError> {
    check.verify()?;
    decode(m.payload())
}

impl Publisher {
    /// Encodes `value` with the bus codec (bincode via serde) and publishes it like [`Publisher::send`].
    /// Subscribers read it back with [`Subscriber::recv_value`](crate::Subscriber::recv_value).
    pub fn send_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<u64, SendError> {
        let bytes = encode(value)?;
        self.send(&bytes)
    }
}

impl Subscriber {
    /// Receives the next message and decodes it with the bus codec (the counterpart of
    /// [`Publisher::send_value`](crate::Publisher::send_value)).
    pub fn recv_value<T: DeserializeOwned>(&mut self) -> Result<T, RecvError> {
        let m = self.recv()?;
        decode(m.payload())
    }

    /// Like [`Subscriber::recv_value`], without waiting.
    pub fn try_recv_value<T: DeserializeOwned>(&mut self) -> Result<T, RecvError> {
        let m = self.try_recv()?;
        decode(m.payload())
    }

    /// Like [`Subscriber::recv_value`], waiting at most `timeout`.
    pub fn recv_value_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T, RecvError> {
        let m = self.recv_timeout(timeout)?;
        decode(m.payload())
    }
}

impl Message<'_> {
    /// Decodes the payload with the bus codec.
    pub fn value<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        decode(self.payload())
    }
}

impl OwnedMessage {
    /// Decodes the payload with the bus codec, as [`Message::value`].
    ///
    /// ```
    /// let (mut p, mut s) = bus_client::pipe::channel("owned-value")?;
    /// p.send_value(&(7u32, "x"))?;
    /// let m = s.recv()?.to_owned_message();
    /// assert_eq!(m.value::<(u32, String)>()?, (7, "x".to_string()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn value<T: DeserializeOwned>(&self) -> Result<T, RecvError> {
        decode(self.payload())
    }
}

/// A publisher of `T` values (from [`Bus::typed_publisher`](crate::Bus::typed_publisher)).
#[derive(Debug)]
pub struct TypedPublisher<T> {
    inner: Publisher,
    _t: PhantomData<fn(&T)>,
}

impl<T: Serialize> TypedPublisher<T> {
    pub(crate) fn new(inner: Publisher) -> Self {
        TypedPublisher { inner, _t: PhantomData }
    }

    /// Publishes `value`, waiting for room.
    pub fn send(&mut self, value: &T) -> Result<u64, SendError> {
        self.inner.send(&encode(value)?)
    }

    /// Publishes `value` if there is room now.
    pub fn try_send(&mut self, value: &T) -> Result<u64, SendError> {
        self.inner.try_send(&encode(value)?)
    }

    /// Publishes `value`, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<u64, SendError> {
        self.inner.send_timeout(&encode(value)?, timeout)
    }

    /// The untyped publisher underneath.
    pub fn as_untyped(&mut self) -> &mut Publisher {
        &mut self.inner
    }
}

/// A subscriber of `T` values (from [`Bus::typed_subscriber`](crate::Bus::typed_subscriber)).
#[derive(Debug)]
pub struct TypedSubscriber<T> {
    inner: Subscriber,
    check: TypeCheck,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> TypedSubscriber<T> {
    pub(crate) fn new(inner: Subscriber, check: TypeCheck) -> Self {
        TypedSubscriber { inner, check, _t: PhantomData }
    }

    /// Reads `T` values from an untyped subscriber (for example one end of [`pipe::channel`]). Nothing is
    /// registered or checked: a payload that is not a `T` surfaces as [`RecvError::Decode`]. To have the daemon
    /// check the type, open with [`SubscriberBuilder::open_typed`] instead.
    ///
    /// [`pipe::channel`]: crate::pipe::channel
    ///
    /// ```
    /// let (mut p, s) = bus_client::pipe::channel("typed")?;
    /// let mut typed = bus_client::TypedSubscriber::<u32>::from_untyped(s);
    /// p.send_value(&5u32)?;
    /// assert_eq!(typed.recv()?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_untyped(inner: Subscriber) -> Self {
        TypedSubscriber::new(inner, TypeCheck::None)
    }

    /// Waits for the next value.
    ///
    /// The type was checked at open against the topic's registered payload type. If none was registered then
    /// (no typed publisher open), the first message that arrives is checked instead, before it is decoded: the
    /// subscriber asks the daemon (one round trip, again at most once a second while no type is registered),
    /// and a type of another name or shape is [`RecvError::TypeMismatch`] from then on, never a wrong value.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        let m = self.inner.recv()?;
        checked(&mut self.check, &m)
    }

    /// The next value if one is available now.
    pub fn try_recv(&mut self) -> Result<T, RecvError> {
        let m = self.inner.try_recv()?;
        checked(&mut self.check, &m)
    }

    /// Waits at most `timeout` for the next value.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        let m = self.inner.recv_timeout(timeout)?;
        checked(&mut self.check, &m)
    }

    /// Waits until `deadline` for the next value (see [`Subscriber::recv_deadline`]).
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<T, RecvError> {
        let m = self.inner.recv_deadline(deadline)?;
        checked(&mut self.check, &m)
    }

    /// A blocking iterator of values, decoded in place (no copy of the message first). A payload that does not
    /// decode comes through as [`RecvError::Decode`] and the iteration goes on; otherwise it behaves as
    /// [`Subscriber::iter`]. `for v in &mut typed_sub` is the same loop.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = bus_client::Bus::connect()?;
    /// let mut prices = bus.typed_subscriber::<(String, f64)>("prices")?;
    /// for v in prices.iter() {
    ///     let (symbol, price) = v?;
    ///     println!("{symbol}: {price}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn iter(&mut self) -> TypedIter<'_, T> {
        TypedIter::new(&mut self.inner, &mut self.check)
    }

    /// The untyped subscriber underneath (for metadata such as [`Subscriber::position`]). What it receives is
    /// not checked against the registered type (see [`TypedSubscriber::recv`]).
    pub fn as_untyped(&mut self) -> &mut Subscriber {
        &mut self.inner
    }

    /// The subscriber and its type check, for the iterators and [`crate::TypedMessage`] receives.
    pub(crate) fn parts(&mut self) -> (&mut Subscriber, &mut TypeCheck) {
        (&mut self.inner, &mut self.check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn types_differ_in_name_and_hash() {
        let (a, b) = (type_info::<u32>(), type_info::<(u32, String)>());
        assert_ne!(a.name, b.name);
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.hash, fnv1a(b"u32"), "the shape of u32 is `u32`");
    }

    mod one {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Order {
            pub id: u64,
            pub qty: i32,
        }
    }
    mod two {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Order {
            pub id: u64,
            pub qty: i32,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Changed {
            pub id: u64,
            pub qty: i64,
        }
    }

    #[test]
    fn the_same_struct_in_two_places_is_one_type_and_a_changed_one_is_not() {
        assert_eq!(short_type_name::<one::Order>(), "Order");
        assert_eq!(short_type_name::<Vec<two::Order>>(), "Vec<Order>");
        assert_eq!(
            short_type_name::<(u32, std::collections::HashMap<String, one::Order>)>(),
            "(u32, HashMap<String, Order>)"
        );
        assert_eq!(type_info::<one::Order>(), type_info::<two::Order>());
        let changed = type_info_as::<two::Changed>("Order");
        assert_eq!(changed.name, "Order");
        assert_ne!(changed.hash, type_info::<one::Order>().hash, "qty: i32 -> i64 changes the shape");
        assert_eq!(type_info::<std::num::NonZeroU32>().hash, 0, "untraceable: checked by name only");
    }

    #[test]
    fn codec_roundtrip_and_garbage() {
        let v = (1u64, String::from("x"), vec![1.5f64]);
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<(u64, String, Vec<f64>)>(&bytes).unwrap(), v);
        assert!(matches!(decode::<(u64, String)>(&[0xff; 3]), Err(RecvError::Decode(_))));
    }
}
