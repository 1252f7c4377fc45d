//! The one conversion between a ring [`Geometry`] and its wire form in the control protocol.

use shmbus_proto::msg::GeometryWire;
use shmbus_ring::{AttachError, Geometry};

/// A geometry in wire form (the daemon's lease replies and listings).
pub fn geometry_to_wire(g: &Geometry) -> GeometryWire {
    GeometryWire {
        capacity: g.capacity,
        entry_bytes: g.entry_bytes,
        max_message: g.max_message,
        region_bytes: g.region_bytes,
        max_publishers: g.max_publishers,
        max_subscribers: g.max_subscribers,
        max_groups: g.max_groups,
    }
}

/// A geometry from wire form, validated (a daemon's reply is checked like any other input).
pub fn geometry_from_wire(w: &GeometryWire) -> Result<Geometry, AttachError> {
    let g = Geometry {
        capacity: w.capacity,
        entry_bytes: w.entry_bytes,
        max_message: w.max_message,
        region_bytes: w.region_bytes,
        max_publishers: w.max_publishers,
        max_subscribers: w.max_subscribers,
        max_groups: w.max_groups,
    };
    g.validate()?;
    Ok(g)
}
