//! [`Endpoint`]: the queries every publisher and subscriber answers the same way, whichever way its messages go.

use crate::attached::Attached;
use crate::pipe_io::{PipeReader, PipeWriter};
use crate::transport::Transport;
use std::fmt;

/// The side of a handle's transport shared by [`Sink`](crate::sink::Sink) and [`Source`](crate::source::Source).
pub(crate) trait Endpoint {
    /// The topic name.
    fn topic(&self) -> &str;
    /// Whether the topic (or, on pipes, every peer) is gone.
    fn is_closed(&self) -> bool;
    /// Which transport this is.
    fn transport(&self) -> Transport;
    /// The fields `Debug` shows.
    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>);
    /// On pipes, how many pipes this end still writes or reads; `None` on shared memory.
    fn pipes(&self) -> Option<usize> {
        None
    }
}

/// The `Debug` form of a public handle: its type name and what its endpoint shows.
pub(crate) fn debug_handle(f: &mut fmt::Formatter<'_>, name: &str, e: &dyn Endpoint) -> fmt::Result {
    let mut d = f.debug_struct(name);
    e.debug_fields(&mut d);
    d.finish()
}

/// A ring handle, publisher or subscriber, as far as [`Endpoint`] needs it.
pub(crate) trait RingHandle {
    /// The topic the handle is attached to.
    fn ring(&self) -> &shmbus_ring::Topic;
    /// The handle's publisher or subscriber slot.
    fn slot(&self) -> usize;
}

impl RingHandle for shmbus_ring::Publisher {
    fn ring(&self) -> &shmbus_ring::Topic {
        self.topic()
    }

    fn slot(&self) -> usize {
        shmbus_ring::Publisher::slot(self)
    }
}

impl RingHandle for shmbus_ring::Subscriber {
    fn ring(&self) -> &shmbus_ring::Topic {
        self.topic()
    }

    fn slot(&self) -> usize {
        shmbus_ring::Subscriber::slot(self)
    }
}

impl<R: RingHandle> Endpoint for Attached<R> {
    fn topic(&self) -> &str {
        self.lease.topic()
    }

    fn is_closed(&self) -> bool {
        self.lease_closed() || self.ring.ring().is_closed()
    }

    fn transport(&self) -> Transport {
        Transport::Shm
    }

    fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("topic", &self.lease.topic()).field("slot", &self.ring.slot());
    }
}

/// Both pipe ends answer from their own `topic`, `is_closed` and pipe count (`$pipes`), and show themselves whole
/// in `Debug`.
macro_rules! pipe_endpoint {
    ($($end:ident: $pipes:ident),*) => {$(
        impl Endpoint for $end {
            fn topic(&self) -> &str {
                $end::topic(self)
            }

            fn is_closed(&self) -> bool {
                $end::is_closed(self)
            }

            fn transport(&self) -> Transport {
                Transport::Pipe
            }

            fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
                d.field("pipe", self);
            }

            fn pipes(&self) -> Option<usize> {
                Some(self.$pipes())
            }
        }
    )*};
}

pipe_endpoint!(PipeWriter: outputs, PipeReader: inputs);
