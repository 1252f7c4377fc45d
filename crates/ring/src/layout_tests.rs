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
