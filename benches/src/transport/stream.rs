//! Fixed-size messages over a byte stream (pipes, Unix stream sockets): no framing, since both sides know the
//! scenario's size.

use super::Duplex;
use std::io::{self, Read, Write};

/// A byte stream carrying messages of exactly `size` bytes.
pub struct Stream<T> {
    io: T,
    size: usize,
}

impl<T: Read + Write> Stream<T> {
    /// Wraps `io`, whose messages are `size` bytes long.
    pub fn new(io: T, size: usize) -> Stream<T> {
        Stream { io, size }
    }
}

impl<T: Read + Write> Duplex for Stream<T> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.io.write_all(msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_exact(&mut buf[..self.size])?;
        Ok(self.size)
    }
}
