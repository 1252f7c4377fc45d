//! Where the parts of a topic's two objects lie that are needed at different times, so the owner can commit
//! each part of the shared memory only when something will touch it (issue 13):
//!
//! * the data object's header and publisher slots, and the readers object outside the group ledgers, are touched
//!   by every participant from creation on;
//! * the index ring once any participant attaches (layout 4: a zero-filled entry is pristine, so creation writes
//!   none; [`Admin::forget_retained`](crate::Admin::forget_retained) lets the owner return its pages);
//! * a consumer group's ledger only once the group opens ([`Admin::open_group`](crate::Admin::open_group)
//!   rewrites every word of it, so nothing written before is read);
//! * a publisher slot's payload region only once a publisher holds the slot.
//!
//! Byte ranges only: no offset inside a part is promised here, and the layout itself is unchanged.

use crate::layout::{Geometry, Offsets};
use std::ops::Range;

/// The parts of a topic's objects, for a valid geometry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extents {
    /// Data object: header, publisher slots and index ring (everything before the payload regions).
    pub data_head: Range<usize>,
    /// Data object: the index ring (the end of `data_head`; before it, the header and publisher slots).
    pub index: Range<usize>,
    /// Data object: the payload regions, one per publisher slot, in slot order, to the end of the object.
    pub payload: Range<usize>,
    /// Readers object: the group ledgers, one per group slot, in slot order.
    pub ledgers: Range<usize>,
    /// Readers object length.
    pub readers_len: usize,
    region_bytes: usize,
    ledger_bytes: usize,
}

impl Extents {
    /// The extents of `geo`, which must be valid ([`Geometry::validate`]).
    pub fn of(geo: &Geometry) -> Extents {
        let off = Offsets::new(*geo);
        let ledger_bytes = geo.capacity as usize * 8;
        Extents {
            data_head: 0..off.regions,
            index: off.index..off.regions,
            payload: off.regions..geo.data_len(),
            ledgers: off.ledgers..off.ledgers + ledger_bytes * geo.max_groups as usize,
            readers_len: geo.readers_len(),
            region_bytes: geo.region_bytes as usize,
            ledger_bytes,
        }
    }

    /// Payload region of publisher slot `p` (empty when messages are inline only, or out of range).
    pub fn region(&self, p: usize) -> Range<usize> {
        let start = self.payload.start.saturating_add(p.saturating_mul(self.region_bytes));
        let end = start.saturating_add(self.region_bytes).min(self.payload.end);
        start.min(end)..end
    }

    /// Ledger of group slot `g` (empty when out of range).
    pub fn ledger(&self, g: usize) -> Range<usize> {
        let start = self.ledgers.start.saturating_add(g.saturating_mul(self.ledger_bytes));
        let end = start.saturating_add(self.ledger_bytes).min(self.ledgers.end);
        start.min(end)..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_match_the_layout_offsets() {
        for geo in [
            Geometry::default(),
            Geometry::new(2, 16, 0, 1, 1, 0),
            Geometry::new(64, 4096, 64 * 1024, 3, 5, 2),
            Geometry::new(1 << 16, 1 << 20, 8 << 20, 64, 256, 64),
        ] {
            geo.validate().unwrap();
            let off = Offsets::new(geo);
            let x = Extents::of(&geo);
            assert_eq!(x.data_head, 0..off.index + geo.capacity as usize * geo.entry_bytes as usize);
            assert_eq!(x.index, off.index..x.data_head.end);
            assert_eq!(x.payload.end, geo.data_len());
            for p in 0..geo.max_publishers as usize {
                assert_eq!(x.region(p).start, off.region(p));
                assert_eq!(x.region(p).len(), geo.region_bytes as usize);
            }
            assert!(x.region(geo.max_publishers as usize).is_empty());
            for g in 0..geo.max_groups as usize {
                assert_eq!(x.ledger(g).start, off.ledger(g, 0));
                assert_eq!(x.ledger(g).end, off.ledger(g, geo.capacity as u64 - 1) + 8);
            }
            assert!(x.ledger(geo.max_groups as usize).is_empty());
            assert!(x.ledgers.end <= off.wake && off.wake < geo.readers_len());
        }
    }
}
