//! In-process tests of the pipe transport's writers under collisions, deaths, bad frames and deadlines (issue 18).

use super::frame::{self, MAX_FRAME_PAYLOAD};
use super::tests::{fragmented, watchdog, write_frames, LONG, PIPE_BUF};
use super::*;
use crate::{RecvError, SendError};
use std::collections::HashSet;
use std::time::Duration;

/// Defect 1: a thousand publishers made and dropped between two never give the two the same id (the old
/// pid + 10-bit counter wrapped at 1,024), and two writers with long messages are never mixed.
#[test]
fn a_thousand_publishers_from_one_shared_pipe_never_share_an_id() {
    /// Long enough for several fragments; an odd length, so fragments of two writers never align.
    const LEN: usize = 81_287;
    const EACH: u64 = 200;
    let _w = watchdog("a_thousand_publishers_from_one_shared_pipe_never_share_an_id");
    let (mut rx, shared) = SharedPipe::new("wrap").unwrap();
    let p0 = shared.publisher().unwrap();
    for _ in 0..1023 {
        drop(shared.publisher().unwrap());
    }
    let p1 = shared.publisher().unwrap();
    assert_ne!(p0.id(), p1.id(), "the 1,025th publisher has the first one's id");
    drop(shared);
    let threads: Vec<_> = [(p0, 0xAAu8), (p1, 0xBBu8)]
        .into_iter()
        .map(|(mut p, byte)| {
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    p.send(&[byte; LEN]).unwrap();
                }
                p.id()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut n = 0;
    loop {
        let m = match rx.recv_timeout(LONG) {
            Ok(m) => m,
            Err(RecvError::Closed) => break,
            Err(e) => panic!("after {n} messages: {e}"),
        };
        assert_eq!(m.len(), LEN);
        let first = m.payload()[0];
        assert!(m.payload().iter().all(|&b| b == first), "message {n} mixes two writers");
        assert!(seen.insert((m.publisher(), m.seq())), "duplicate (publisher, seq) {:?}", (m.publisher(), m.seq()));
        n += 1;
    }
    let ids: HashSet<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!((n, ids.len()), (2 * EACH, 2));
    assert_eq!(rx.pipe_abandoned(), Some(0));
}

/// Defect 1: a frame that does not fit its writer's message costs that message, not the pipe.
#[test]
fn a_bad_fragment_costs_only_its_writers_message() {
    let _w = watchdog("a_bad_fragment_costs_only_its_writers_message");
    let (mut rx, w, long) = fragmented("bad", 4);
    write_frames(&w, &long, 5, 0, 1); // writer 5 starts a message...
    let frames: Vec<_> = frame::frames(&long, 5, 1, 1).collect(); // ...and a fragment of another one comes
    let (h, chunk) = frames[1];
    let mut f = std::fs::File::from(w.try_clone().unwrap());
    std::io::Write::write_all(&mut f, &[&h.encode()[..], chunk].concat()).unwrap();
    let (h, chunk) = frames[2]; // the rest of that message is skipped, not reported again
    std::io::Write::write_all(&mut f, &[&h.encode()[..], chunk].concat()).unwrap();
    write_frames(&w, b"innocent", 6, 0, 1);
    write_frames(&w, &long, 5, 2, 9); // writer 5 goes on
    assert!(matches!(rx.recv().unwrap_err(), RecvError::Corrupted(_)));
    let m = rx.recv().unwrap();
    assert_eq!((m.publisher(), m.payload()), (6, &b"innocent"[..]), "the other writer's message");
    drop(m);
    let m = rx.recv().unwrap();
    assert_eq!((m.publisher(), m.seq(), m.len()), (5, 2, long.len()));
    drop(m);
    assert!(!rx.is_closed());
    assert_eq!(rx.pipe_abandoned(), Some(1));
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty, "the pipe is still open");
}

/// Defect 3: a writer gone in the middle of a message (here: it gave up with `Timeout`, then was dropped) has
/// its unfinished message dropped and counted while the pipe stays open for the others.
#[test]
fn a_gone_writers_unfinished_message_is_dropped_while_the_pipe_stays_open() {
    let _w = watchdog("a_gone_writers_unfinished_message_is_dropped_while_the_pipe_stays_open");
    let (mut rx, shared) = SharedPipe::new("dead").unwrap();
    let mut dying = shared.publisher().unwrap();
    // The reader reads nothing yet: the first fragments go in, then the deadline passes mid-message.
    assert_eq!(dying.send_timeout(&vec![1; 1 << 20], Duration::from_millis(50)).unwrap_err(), SendError::Timeout);
    drop(dying);
    let mut other = shared.publisher().unwrap();
    let other_id = other.id();
    let t = std::thread::spawn(move || {
        for i in 0..5u8 {
            other.send(&[i; 10]).unwrap();
        }
        other
    });
    for i in 0..5u8 {
        let m = rx.recv_timeout(LONG).unwrap();
        assert_eq!((m.publisher(), m.payload()), (other_id, &[i; 10][..]));
    }
    let other = t.join().unwrap();
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    assert_eq!(rx.pipe_abandoned(), Some(1), "the gone writer's message was dropped and counted");
    assert!(!rx.is_closed());
    drop((other, shared));
    assert_eq!(rx.recv_timeout(LONG).unwrap_err(), RecvError::Closed);
    assert_eq!(rx.pipe_abandoned(), Some(1), "counted once");
}

/// Defect 6: `try_send` of a long message refuses with `Full` unless the whole of it fits now, and
/// `send_timeout` returns by its deadline, with a reader that reads nothing.
#[test]
fn try_send_and_send_timeout_keep_their_promise_for_long_messages() {
    let _w = watchdog("try_send_and_send_timeout_keep_their_promise_for_long_messages");
    let (mut tx, mut rx) = channel("long").unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let a = tx.try_send(&vec![1; 1 << 20]);
        let b = tx.send_timeout(&vec![2; 1 << 20], Duration::from_millis(100));
        done_tx.send((a, b)).unwrap();
        tx
    });
    let (a, b) = done_rx.recv_timeout(Duration::from_secs(10)).expect("try_send or send_timeout blocked");
    assert_eq!(a.unwrap_err(), SendError::Full, "1 MiB never fits a 64 KiB pipe at once");
    assert_eq!(b.unwrap_err(), SendError::Timeout);
    let mut tx = t.join().unwrap();
    assert_eq!(tx.published(), 0);
    // The timed-out message's first fragments are queued: a long message does not fit whole until they are read.
    let mid = vec![3; 3 * MAX_FRAME_PAYLOAD];
    assert_eq!(tx.try_send(&mid).unwrap_err(), SendError::Full);
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty, "nothing whole in the pipe");
    assert_eq!(tx.try_send(&mid).unwrap(), 0, "fits whole into the drained pipe");
    assert_eq!(rx.recv().unwrap().payload(), &mid[..]);
    assert_eq!(rx.pipe_abandoned(), Some(1), "the timed-out message, dropped when the next one started");
}

rusty_fork::rusty_fork_test! {
    #![rusty_fork(timeout_ms = 60_000)]

    /// Defect 5: with `SIGPIPE` back at its default action after the publisher was made, a send to a gone
    /// reader is `Closed`, not death. Its own process: the disposition is process-wide.
    #[test]
    fn a_gone_reader_is_closed_with_sigpipe_at_its_default_action() {
        let _w = watchdog("a_gone_reader_is_closed_with_sigpipe_at_its_default_action");
        let (mut tx, rx) = channel("sigpipe").unwrap();
        // SAFETY: SIG_DFL runs no code in signal context.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        drop(rx);
        assert_eq!(tx.send(b"x").unwrap_err(), SendError::Closed);
        assert_eq!(tx.send(&vec![1; 3 * PIPE_BUF]).unwrap_err(), SendError::Closed);
    }
}
