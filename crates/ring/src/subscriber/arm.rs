//! The re-check before a subscriber sleeps, shared by the blocking receive and by arming: a subscriber that
//! arms raises its data-waiter bit without sleeping, so the next publish posts its wake-up word, which another
//! thread (a waker watching the word) can wait on for it.

use super::{Poll, Subscriber};
use crate::error::RecvError;
use crate::layout::R_DATA_WAITERS;
use crate::subscriber::message::Message;
use crate::subscriber::ordered::TAIL_RECHECK;
use crate::wait::{arm, Target};

impl Subscriber {
    /// The re-check after raising the waiter bit: a message (`Ready`), the topic found closed (`Empty`), or
    /// nothing (`None`: go to sleep, or stay armed).
    pub(super) fn recheck(&mut self) -> Result<Option<Poll>, RecvError> {
        // Before and after sleeping, look at the entry itself, not only the tail (a publisher that died between
        // its stamp and its tail store must not keep us asleep).
        self.quiet_polls = TAIL_RECHECK - 1;
        Ok(match self.poll()? {
            Poll::Ready(f) => Some(Poll::Ready(f)),
            Poll::Empty if self.topic.is_closed() => Some(Poll::Empty),
            Poll::Empty => None,
        })
    }

    /// Takes the next message if one is available now (`Ok(Some)`), else **arms** (`Ok(None)`): this
    /// subscriber's data-waiter bit stays raised, so the next publish (or the topic's close) posts its
    /// [wake-up word](Subscriber::wake_word) once. Errors as [`Subscriber::try_recv`] (never `Empty`).
    ///
    /// The handshake is the blocking receive's (stale posts taken, bit raised, heavy barrier, re-check), without
    /// the sleep: a message published before the bit was visible is found by the re-check, one published after
    /// it posts the word. Costs nothing while messages flow: the arming half runs only when nothing is there.
    ///
    /// `before_arm` runs just before the bit is raised, only when arming: the place to take stale signals of
    /// whatever relays the wake-up (a relay's signal taken there belongs to an earlier arming; one caused by this
    /// arming comes after the bit is raised).
    pub fn try_recv_or_arm(&mut self, before_arm: impl FnOnce()) -> Result<Option<Message<'_>>, RecvError> {
        if let Poll::Ready(f) = self.poll()? {
            return Ok(Some(self.message(f)));
        }
        if self.topic.is_closed() {
            return self.after_close().map(Some);
        }
        before_arm();
        let (topic, waiter) = (self.topic.clone(), self.waiter.clone());
        let mask = topic.readers_mask(R_DATA_WAITERS, self.slot);
        match arm(&*waiter, Target::Subscriber(self.slot), mask, || self.recheck())? {
            Some(Poll::Ready(f)) => Ok(Some(self.message(f))),
            Some(Poll::Empty) => self.after_close().map(Some),
            None => Ok(None),
        }
    }

    /// Who this subscriber's wake-up belongs to (its slot).
    pub fn wake_target(&self) -> Target {
        Target::Subscriber(self.slot)
    }

    /// This subscriber's wake-up word in the readers object (see [`Topic::wake_word`](crate::Topic::wake_word)):
    /// posted (incremented, then `FUTEX_WAKE`) by the first publish after [`Subscriber::try_recv_or_arm`] armed.
    /// `None` when the readers object is mapped read-only. It lives as long as this subscriber's mapping.
    #[cfg(not(loom))]
    pub fn wake_word(&self) -> Option<&std::sync::atomic::AtomicU32> {
        self.topic.wake_word(self.wake_target())
    }
}
