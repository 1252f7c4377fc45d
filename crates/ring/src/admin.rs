//! The owner's handle on a topic: creating its objects, consumer groups, demotion, closing, and (in `recovery`)
//! cleaning up after dead clients.
//!
//! These operations store into both objects and are the daemon's alone. They are methods of [`Admin`], which can
//! only be built over two writable regions by the party that creates the objects ([`Admin::create`]) or adopts
//! them again after a restart ([`Admin::adopt`]); clients attach a plain [`Topic`] with [`Topic::attach`], so a
//! subscriber's handle (whose data object is mapped read-only) cannot even name them.

use crate::error::AttachError;
use crate::layout::*;
use crate::region::Region;
use crate::stamp::{cursor, lap_of, Stamp, State};
use crate::sync::Ordering;
use crate::topic::{post_bits, Topic, ATTACH_TIMEOUT};
use crate::wait::{Target, Waiter};

/// The owner's handle on a topic: a [`Topic`] over two writable regions, plus the operations only the owner (the
/// daemon) performs. It dereferences to the [`Topic`], so the owner attaches handles and reads statistics
/// through it as anyone does.
///
/// Invariant: both regions are writable (checked by every constructor), so no operation here can store through a
/// read-only mapping.
///
/// ```
/// use shmbus_ring::{Admin, Geometry, PollWaiter};
///
/// let admin = Admin::heap(&Geometry::new(64, 4096, 64 * 1024, 2, 4, 1), 0)?;
/// admin.open_group(0, false, &PollWaiter, &|_| false)?;
/// assert!(admin.group_is_open(0));
/// admin.close(&PollWaiter)?;
/// assert!(admin.is_closed());
/// # Ok::<(), shmbus_ring::AttachError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Admin {
    topic: Topic,
}

impl std::ops::Deref for Admin {
    type Target = Topic;

    fn deref(&self) -> &Topic {
        &self.topic
    }
}

impl Admin {
    /// Initializes zero-filled objects for `geo` and attaches to them as their owner (what the daemon does at
    /// creation). `origin` is the first sequence number (a multiple of the capacity); `generation` identifies this
    /// incarnation. Both regions must be writable.
    ///
    /// The topic's barrier mode follows the creator: when this process declared itself registered for
    /// `membarrier` ([`crate::wait::set_light_barrier_cheap`]), the topic requires every participant to be, and
    /// refuses others at attach ([`AttachError::Barrier`]); otherwise it uses full fences for everyone.
    pub fn create(
        data: Region,
        readers: Region,
        geo: &Geometry,
        origin: u64,
        generation: u64,
    ) -> Result<Admin, AttachError> {
        initialize(&data, &readers, geo, origin, generation)?;
        Ok(Admin { topic: Topic::attach(data, readers)? })
    }

    /// A topic over two fresh heap regions, with its owner's handle (tests, models, in-process use).
    pub fn heap(geo: &Geometry, origin: u64) -> Result<Admin, AttachError> {
        geo.validate()?;
        Admin::create(Region::heap(geo.data_len()), Region::heap(geo.readers_len()), geo, origin, 1)
    }

    /// Validates objects the caller created earlier and attaches to them as their owner again (the daemon after a
    /// restart). Both regions must be writable; validation is [`Topic::attach`]'s.
    pub fn adopt(data: Region, readers: Region) -> Result<Admin, AttachError> {
        if !data.is_writable() || !readers.is_writable() {
            return Err(AttachError::ReadOnly);
        }
        Ok(Admin { topic: Topic::attach(data, readers)? })
    }

    /// The topic, as every handle sees it.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Gives up the owner's rights, keeping the topic.
    pub fn into_topic(self) -> Topic {
        self.topic
    }

    /// Marks the topic closed and wakes every sleeper, so attached handles report `Closed`.
    pub fn close(&self, waiter: &dyn Waiter) -> Result<(), AttachError> {
        // Release (tag CLOSE).
        self.data_word(D_CLOSED).store(1, Ordering::Release);
        self.light();
        let geo = self.geometry();
        for w in 0..4 {
            let bits = self.readers_word(Offsets::mask_word(R_DATA_WAITERS, w)).swap(0, Ordering::AcqRel);
            post_bits(waiter, bits, w * 64, geo.max_subscribers as usize, |b| Target::Subscriber(w * 64 + b));
        }
        let bits = self.readers_word(R_SPACE_WAITERS).swap(0, Ordering::AcqRel);
        post_bits(waiter, bits, 0, geo.max_publishers as usize, Target::Publisher);
        Ok(())
    }

    /// Opens consumer group `g` (the daemon does this before the first member joins), starting at the tail or at
    /// the oldest retained message. The group gates publishers from then on, until [`Admin::close_group`].
    pub fn open_group(
        &self,
        g: usize,
        from_oldest: bool,
        waiter: &dyn Waiter,
        is_dead: &dyn Fn(usize) -> bool,
    ) -> Result<(), AttachError> {
        if g >= self.geometry().max_groups as usize {
            return Err(AttachError::Slot("group index out of range"));
        }
        let w = self.readers_word(self.off().group(g) + G_NEXT);
        if cursor::has(w.load(Ordering::Acquire), cursor::ACTIVE) {
            return Ok(());
        }
        let tail = self.tail();
        let start = if from_oldest { self.oldest_retained(tail) } else { tail };
        // The ledger still holds whatever the group's last incarnation (or the initial layout) left, laps behind
        // the positions the group is about to take: every word becomes "done at the previous lap" for the
        // position it will next serve, so the first lap of this incarnation finds them fresh. (A late start
        // raised below makes some positions two laps ahead of their word: members take those as fresh too.)
        // Relaxed: the SeqCst store of the group cursor below publishes them to members, who load the cursor
        // with Acquire before reading the ledger.
        let off = *self.off();
        for k in 0..off.geo.capacity as u64 {
            let c = start.wrapping_add(k);
            let fresh = Stamp::pack(lap_of(c, off.shift).wrapping_sub(1), State::Published, 0);
            self.readers_word(off.ledger(g, c)).store(fresh, Ordering::Relaxed);
        }
        let verify = self.readers_word(off.group(g) + G_VERIFY);
        // Relaxed: published to members by the SeqCst store of the group cursor below.
        verify.store(tail, Ordering::Relaxed);
        let (_, seen) =
            self.publish_gating_cursor(w, cursor::ACTIVE | cursor::GATING, start, waiter, is_dead, ATTACH_TIMEOUT)?;
        // Release (tag GROUP_VERIFY): claims that raced the opening are below `seen`; a member loading this with
        // Acquire copies them too.
        verify.store(seen, Ordering::Release);
        Ok(())
    }

    /// Closes consumer group `g`: it stops gating publishers.
    pub fn close_group(&self, g: usize, waiter: &dyn Waiter) -> Result<(), AttachError> {
        if g >= self.geometry().max_groups as usize {
            return Err(AttachError::Slot("group index out of range"));
        }
        // Release: members' ledger writes happen before the group stops gating.
        self.readers_word(self.off().group(g) + G_NEXT).store(0, Ordering::Release);
        self.wake_publishers(waiter);
        Ok(())
    }

    /// Sets the redelivery policy of every group slot (see [`Admin::set_group_redelivery`]).
    pub fn set_group_redelivery_all(&self, redeliver: bool) {
        for g in 0..self.geometry().max_groups as usize {
            self.set_group_redelivery(g, redeliver);
        }
    }

    /// Sets whether messages held by a dead member of group `g` are redelivered (`true`) or counted abandoned.
    pub fn set_group_redelivery(&self, g: usize, redeliver: bool) {
        if g < self.geometry().max_groups as usize {
            // Relaxed: a policy word the owner writes and its recovery (`release_subscriber`) reads.
            self.readers_word(self.off().group(g) + G_REDELIVER).store(redeliver as u64, Ordering::Relaxed);
        }
    }

    /// Demotes the lossless subscriber `s` to lossy (the slow-consumer bound): its next receive reports
    /// [`RecvError::Demoted`](crate::RecvError::Demoted) and it reads lossy from then on. Counted once.
    ///
    /// The subscriber stops gating publishers as soon as it cannot be looking at an entry it gates:
    /// * at once, if it holds no message read in place (the common case: a consumer that stopped reading);
    /// * otherwise when it drops the [`Message`](crate::Message) it holds, or at its next receive. Until then the
    ///   held message keeps gating, so its payload never changes under the reader (issue 8, defect 2). A
    ///   subscriber that keeps holding one message forever keeps gating, exactly as if it had not been demoted:
    ///   the gate protects memory it is reading. Calling `demote` again later (the daemon does, after another
    ///   slow-consumer bound, while the subscriber still gates) re-checks and releases the gate if the message
    ///   was dropped meanwhile; a subscriber that never lets go is only undone by ending its holder's lease and
    ///   [`Admin::release_subscriber`] once its death is proven.
    ///
    /// Group members cannot be demoted (their held message is redelivered through recovery instead).
    pub fn demote(&self, s: usize, waiter: &dyn Waiter) -> Result<(), AttachError> {
        if s >= self.geometry().max_subscribers as usize {
            return Err(AttachError::Slot("subscriber slot out of range"));
        }
        let base = self.off().sub_slot(s);
        let flags = self.readers_word(base + S_FLAGS);
        // Relaxed: the group bits are written at attach, before the slot gates at all.
        if (flags.load(Ordering::Relaxed) >> FLAG_GROUP_SHIFT) & 0xff != 0 {
            return Err(AttachError::Slot("a consumer-group member cannot be demoted"));
        }
        // AcqRel RMW: the store half of the demotion handshake (tag HOLD), ordered before the hold-word load
        // below by the heavy barrier.
        let prev = flags.fetch_or(FLAG_DEMOTE, Ordering::AcqRel);
        if prev & FLAG_DEMOTE == 0 {
            self.readers_word(R_DEMOTIONS).fetch_add(1, Ordering::Relaxed);
        }
        // Heavy barrier (tag HOLD): pairs with the light barrier in `Subscriber::raise_hold`, between the
        // subscriber's hold store and its flags load. Either the subscriber sees FLAG_DEMOTE before it lends an
        // entry, or we see its hold word raised below.
        waiter.heavy();
        // Acquire (tag HOLD): pairs with the Release that lowers the word when the subscriber drops a message it
        // read in place, so its reads happen before the acknowledgement below lets publishers reuse the entry.
        if self.readers_word(base + S_HOLD).load(Ordering::Acquire) == 0 {
            // Release (tag ACK): pairs with the gate scan's Acquire load of the flags.
            flags.fetch_or(FLAG_DEMOTED_ACK, Ordering::Release);
        }
        self.wake_publishers(waiter);
        self.wake_subscribers(waiter);
        Ok(())
    }
}
