//! Unit tests of the layout: geometry limits, object sizes, the wake-up words' place.

use super::*;

#[test]
fn default_geometry_is_valid_and_small() {
    let g = Geometry::default();
    g.validate().unwrap();
    assert!(g.data_len() < 64 << 20);
}

#[test]
fn memory_follows_bytes_in_flight() {
    // 1024 entries, 1 MiB messages, 4 MiB budget: a few MiB, not 1 GiB.
    let g = Geometry::new(1024, 1 << 20, 4 << 20, 4, 16, 2);
    g.validate().unwrap();
    assert!(g.data_len() + g.readers_len() < 5 << 20, "{}", g.data_len());
}

#[test]
fn wake_words_end_the_readers_object() {
    let g = Geometry::new(64, 256, 64 * 1024, 3, 5, 2);
    g.validate().unwrap();
    let off = Offsets::new(g);
    assert_eq!(off.wake, off.ledgers + 64 * 8 * 2);
    assert_eq!(off.wake_word(false, 0), Some(off.wake));
    assert_eq!(off.wake_word(false, 4), Some(off.wake + 16));
    assert_eq!(off.wake_word(true, 0), Some(off.wake + 20));
    assert_eq!(off.wake_word(true, 2), Some(off.wake + 28));
    assert_eq!(off.wake_word(false, 5), None);
    assert_eq!(off.wake_word(true, 3), None);
    assert_eq!(g.readers_len(), off.wake + LINE);
}

#[test]
fn rejects_bad_geometry() {
    for g in [
        Geometry { capacity: 1000, ..Default::default() },
        Geometry { region_bytes: 128, ..Default::default() },
        Geometry { max_publishers: 65, ..Default::default() },
    ] {
        assert!(g.validate().is_err(), "{g:?}");
    }
}

/// Knobs from a request can be anything: a payload budget of `u64::MAX` with no publishers overflowed while the
/// region size was rounded up (a panic in the daemon's debug build, found by `tests/control_fuzz.rs`); now the
/// geometry is built and refused.
#[test]
fn huge_knobs_are_refused_not_overflowed() {
    for (max_message, budget, publishers) in
        [(2_146_515_117, u64::MAX, 0), (u32::MAX, u64::MAX, 1), (1 << 20, u64::MAX - 7, 3)]
    {
        let g = Geometry::new(1024, max_message, budget, publishers, 8, 0);
        assert!(g.validate().is_err(), "{g:?}");
    }
}
