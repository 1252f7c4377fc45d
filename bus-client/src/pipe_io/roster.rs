//! The writers of one reader's pipes: the ids handed out to them, and their liveness pipes.
//!
//! Whoever makes a reader's pipes ([`crate::pipe::channel`], [`PipeCommand`](crate::pipe::PipeCommand)'s
//! `subscribe_from_child` / `fan_in_from_child`, [`SharedPipe`](crate::pipe::SharedPipe)) hands every writer of
//! them an id from the reader's roster: 1, 2, 3, ... below [`RANDOM_ID`], so two writers the reader can see never
//! share an id, in one process or across PID namespaces. Writers made without an owner take a random id at or
//! above [`RANDOM_ID`] (their reader sees no other writer with an issued id).
//!
//! A writer on a pipe shared with other writers ([`SharedPipe`](crate::pipe::SharedPipe)) also gets a liveness
//! pipe: it holds the write end for as long as it lives, the roster the read end. When every copy of the write end
//! is closed (the writer's handle dropped, its process exited or killed) the read end reports `POLLHUP`, and the
//! reader drops what that writer left unfinished (see the reader). A writer alone on its pipe needs none: the
//! pipe's own end of file says the same.

use super::writer::RANDOM_ID;
use shmbus_os::{PollFd, PollFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The writers of one reader (shared with the [`SharedPipe`](crate::pipe::SharedPipe) made with it).
#[derive(Debug)]
pub(crate) struct Roster {
    next: AtomicU32,
    /// `(writer id, read end of its liveness pipe)`.
    lives: Mutex<Vec<(u32, OwnedFd)>>,
}

impl Default for Roster {
    fn default() -> Self {
        Roster { next: AtomicU32::new(1), lives: Mutex::new(Vec::new()) }
    }
}

impl Roster {
    /// A fresh writer id. Errors after 2^31 - 1 ids (a pipe reader that long-lived and that busy is a bug).
    pub(crate) fn issue(&self) -> io::Result<u32> {
        // Relaxed: a counter; only uniqueness matters, which the atomic read-modify-write gives.
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if id >= RANDOM_ID {
            self.next.store(RANDOM_ID, Ordering::Relaxed);
            return Err(io::Error::other("this pipe reader handed out every writer id it has"));
        }
        Ok(id)
    }

    /// A fresh writer id with a liveness pipe: the writer keeps the returned write end for as long as it lives.
    pub(crate) fn issue_live(&self) -> io::Result<(u32, OwnedFd)> {
        let id = self.issue()?;
        let p = shmbus_os::pipe().map_err(crate::error::os_to_io)?;
        self.lock().push((id, p.read));
        Ok((id, p.write))
    }

    /// Whether any writer has a liveness pipe.
    pub(crate) fn has_lives(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The writers among `ids` that are gone (their liveness pipe hung up); forgets their liveness pipes.
    pub(crate) fn gone(&self, ids: &[u32]) -> Vec<u32> {
        let mut lives = self.lock();
        let watched: Vec<usize> = (0..lives.len()).filter(|&i| ids.contains(&lives[i].0)).collect();
        if watched.is_empty() {
            return Vec::new();
        }
        let mut pfds: Vec<PollFd<'_>> =
            watched.iter().map(|&i| PollFd::new(lives[i].1.as_fd(), PollFlags::POLLIN)).collect();
        if shmbus_os::poll(&mut pfds, Some(Duration::ZERO)).is_err() {
            return Vec::new();
        }
        let hung: Vec<usize> = watched
            .iter()
            .zip(&pfds)
            .filter(|(_, p)| p.revents().intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
            .map(|(&i, _)| i)
            .collect();
        drop(pfds);
        let mut out = Vec::new();
        for &i in hung.iter().rev() {
            out.push(lives.remove(i).0);
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u32, OwnedFd)>> {
        self.lives.lock().unwrap_or_else(|p| p.into_inner())
    }
}
