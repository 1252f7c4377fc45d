//! Arming a publisher for space: on a full (lossless) topic, raise the space-waiter bit without sleeping, so the
//! next subscriber that frees space posts the publisher's wake-up word, which another thread can wait on.

use super::Publisher;
use crate::error::SendError;
use crate::layout::R_SPACE_WAITERS;
use crate::stamp::State;
use crate::wait::{arm, Target};

impl Publisher {
    /// Publishes `msg` if there is room now (`Ok(Some(seq))`), else **arms** (`Ok(None)`): this publisher's
    /// space-waiter bit stays raised, so the next release of space (a subscriber moving its cursor, a commit on
    /// a multi-producer topic, the topic's close) posts its [wake-up word](Publisher::wake_word) once. Errors as
    /// [`Publisher::try_send`] (never `Full`).
    ///
    /// The blocking send's handshake without the sleep: room freed before the bit was visible is found by the
    /// re-check (which claims it), room freed after posts the word. `before_arm` runs just before the bit is
    /// raised, only when arming (see [`Subscriber::try_recv_or_arm`](crate::Subscriber::try_recv_or_arm)).
    pub fn try_send_or_arm(&mut self, msg: &[u8], before_arm: impl FnOnce()) -> Result<Option<u64>, SendError> {
        let r = match self.reserve(msg.len()) {
            Err(SendError::Full) => {
                before_arm();
                let (topic, waiter) = (self.topic.clone(), self.waiter.clone());
                let mask = topic.readers_mask(R_SPACE_WAITERS, self.slot);
                let found = arm(&*waiter, Target::Publisher(self.slot), mask, || match self.reserve(msg.len()) {
                    Err(SendError::Full) => Ok(None),
                    other => other.map(Some),
                })?;
                match found {
                    Some(r) => r,
                    None => return Ok(None),
                }
            }
            other => other?,
        };
        self.topic.inner.data.store_bytes(r.at, msg);
        Ok(Some(self.commit_reservation(r, State::Published, true)))
    }

    /// Who this publisher's wake-up belongs to (its slot).
    pub fn wake_target(&self) -> Target {
        Target::Publisher(self.slot)
    }

    /// This publisher's wake-up word in the readers object (see [`Topic::wake_word`](crate::Topic::wake_word)):
    /// posted by the first release of space after [`Publisher::try_send_or_arm`] armed. `None` when the readers
    /// object is mapped read-only.
    #[cfg(not(loom))]
    pub fn wake_word(&self) -> Option<&std::sync::atomic::AtomicU32> {
        self.topic.wake_word(self.wake_target())
    }
}
