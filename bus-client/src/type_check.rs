//! The late half of the typed check (issue 17, typed item 2): a typed subscriber that opened while the topic had
//! no payload type registered was checked against nothing, and a typed publisher that opens later is not checked
//! against subscribers (a mere reader must not be able to squat a topic's type, so only publishers register one;
//! see the daemon's `check_type`). Such a subscriber asks the daemon for the topic's type when its first message
//! arrives, and again at most once a second while none is registered (an untyped publisher's messages), before
//! decoding: a registered type of another name or shape makes every receive [`RecvError::TypeMismatch`], with
//! both sides in the message, instead of decoding into the wrong fields.
//!
//! Both outcomes are final: the subscriber's typed lease keeps the registered type alive (the daemon forgets a
//! type only when no typed lease is left), and a publisher of another type is refused at open from then on.

use crate::control::Control;
use crate::error::RecvError;
use shmbus_proto::msg::{Request, Response, TypeInfo};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an unverified subscriber asks again while no type is registered.
const RECHECK: Duration = Duration::from_secs(1);

/// Where a typed subscriber's type stands.
#[derive(Debug)]
pub(crate) enum TypeCheck {
    /// Nothing to check: a pipe subscriber, or one built with `from_untyped`.
    None,
    /// Not checked against a registered type yet.
    Pending {
        /// The daemon connection.
        control: Arc<Control>,
        /// The topic.
        topic: String,
        /// This handle's type.
        want: TypeInfo,
        /// When to ask (`None`: at the next message).
        next: Option<Instant>,
    },
    /// The registered type is this handle's.
    Verified,
    /// The registered type is another: why.
    Mismatch(String),
}

impl TypeCheck {
    /// A check to make at the first message, for a daemon-backed subscriber typed `want`.
    pub(crate) fn pending(control: Arc<Control>, topic: &str, want: TypeInfo) -> TypeCheck {
        TypeCheck::Pending { control, topic: topic.to_string(), want, next: None }
    }

    /// Called with a message in hand, before decoding it: `Err(TypeMismatch)` when the topic's registered type
    /// is not this handle's. Cheap once settled (one branch); a daemon round trip while pending and due. A
    /// daemon that cannot be asked (gone, or refusing stats) leaves the check pending.
    #[inline]
    pub(crate) fn verify(&mut self) -> Result<(), RecvError> {
        match self {
            TypeCheck::None | TypeCheck::Verified => Ok(()),
            TypeCheck::Mismatch(why) => Err(RecvError::TypeMismatch(why.clone())),
            TypeCheck::Pending { .. } => self.ask(),
        }
    }

    #[cold]
    fn ask(&mut self) -> Result<(), RecvError> {
        let TypeCheck::Pending { control, topic, want, next } = self else { return Ok(()) };
        if next.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let have = match control.for_this_process().request(&Request::Stats { topic: Some(topic.clone()) }) {
            Ok(Response::Stats(s)) => s.into_iter().next().and_then(|t| t.payload_type),
            _ => None,
        };
        match settle(have.as_ref(), want) {
            Some(Ok(())) => *self = TypeCheck::Verified,
            Some(Err(why)) => *self = TypeCheck::Mismatch(why),
            None => *next = Some(Instant::now() + RECHECK),
        }
        self.verify()
    }
}

/// The verdict on registered type `have` for a handle typed `want`: `None` while there is nothing to compare
/// (no type registered, or only a configured name with no shape yet, which open already compared).
fn settle(have: Option<&TypeInfo>, want: &TypeInfo) -> Option<Result<(), String>> {
    let have = have?;
    if have.name == want.name && have.hash == 0 {
        return None;
    }
    Some(if have == want { Ok(()) } else { Err(TypeInfo::mismatch(have, want, "subscriber")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, hash: u64) -> TypeInfo {
        TypeInfo { name: name.into(), hash }
    }

    #[test]
    fn the_verdicts() {
        assert_eq!(settle(None, &t("Order", 1)), None, "nothing registered: ask again later");
        assert_eq!(settle(Some(&t("Order", 0)), &t("Order", 1)), None, "a configured name only: no shape yet");
        assert_eq!(settle(Some(&t("Order", 1)), &t("Order", 1)), Some(Ok(())));
        let other_shape = settle(Some(&t("Order", 1)), &t("Order", 2)).expect("a verdict").expect_err("mismatch");
        assert!(other_shape.contains("same name, another shape"), "{other_shape}");
        assert!(other_shape.contains("0000000000000001") && other_shape.contains("0000000000000002"));
        let other_name = settle(Some(&t("Invoice", 0)), &t("Order", 1)).expect("a verdict").expect_err("mismatch");
        assert!(other_name.contains("Invoice") && other_name.contains("another name"), "{other_name}");
    }
}
