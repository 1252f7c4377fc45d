//! The pipe transport's backend: frames, the writing and reading sides, waiting on descriptors, and the pipes
//! inherited from a parent. It moves bytes and knows nothing of [`Publisher`](crate::Publisher) or
//! [`Subscriber`](crate::Subscriber), which drive it through [`Sink`](crate::sink::Sink) and
//! [`Source`](crate::source::Source); the public face of the transport is [`crate::pipe`].

pub(crate) mod frame;
pub(crate) mod inherit;
pub(crate) mod io;
mod reader;
pub(crate) mod roster;
pub(crate) mod writer;

pub(crate) use reader::{PipeMessage, PipeReader};
pub(crate) use writer::{PipeLoan, PipeWriter};
