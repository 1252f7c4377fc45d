//! In-process tests of the pipe transport (real pipes, threads). The multi-process ones are in the workspace
//! `tests` crate (`tests/tests/pipe.rs`).

use super::frame::{self, MAX_FRAME_PAYLOAD};
use super::*;
use crate::{RecvError, SendError, Transport};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

pub(super) const PIPE_BUF: usize = shmbus_os::PIPE_BUF;
pub(super) const LONG: Duration = Duration::from_secs(30);

/// Aborts the whole test process if a test is still running after [`LONG`] (a hang would otherwise stall CI).
pub(super) struct Watchdog(std::sync::Arc<std::sync::atomic::AtomicBool>);

pub(super) fn watchdog(name: &'static str) -> Watchdog {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let until = Instant::now() + LONG;
        // Relaxed: a flag polled by this thread only; nothing else is published through it.
        while !d.load(std::sync::atomic::Ordering::Relaxed) {
            if Instant::now() > until {
                eprintln!("watchdog: {name} hung for {LONG:?}; aborting");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    Watchdog(done)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Relaxed: see `watchdog`.
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A message of `len` bytes whose content depends on `(writer, seq)`, ending in nothing checkable by accident.
pub(super) fn body(writer: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(writer.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seq ^ 0x1234_5678);
    (0..len).map(|_| r.next() as u8).collect()
}

pub(super) fn fd_pair() -> (OwnedFd, OwnedFd) {
    let p = shmbus_os::pipe().unwrap();
    (p.read, p.write)
}

/// Whether thread `tid` of this process is blocked in `poll`/`ppoll` right now: `/proc/self/task/<tid>/syscall`
/// starts with the number of the system call a blocked thread is in (and says `running` otherwise).
fn blocked_in_poll(tid: libc::pid_t) -> bool {
    #[cfg(target_arch = "x86_64")]
    const POLL: &[libc::c_long] = &[libc::SYS_poll, libc::SYS_ppoll];
    #[cfg(not(target_arch = "x86_64"))]
    const POLL: &[libc::c_long] = &[libc::SYS_ppoll];
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).unwrap_or_default();
    text.split_whitespace().next().and_then(|n| n.parse().ok()).is_some_and(|n| POLL.contains(&n))
}

/// Fan-out on two pipes: one publisher writing both, and the subscriber reading each.
fn fan_out(topic: &str) -> (Publisher, [Subscriber; 2]) {
    let ((r1, w1), (r2, w2)) = (fd_pair(), fd_pair());
    let tx = Publisher::from_pipe(topic, vec![w1, w2]).unwrap();
    (tx, [subscriber_from_fd(topic, r1).unwrap(), subscriber_from_fd(topic, r2).unwrap()])
}

/// Fan-in on two pipes: one subscriber reading both, and the publisher writing each.
fn fan_in(topic: &str) -> (Subscriber, [Publisher; 2]) {
    let ((r1, w1), (r2, w2)) = (fd_pair(), fd_pair());
    let rx = Subscriber::from_pipe(topic, vec![r1, r2]).unwrap();
    (rx, [publisher_from_fd(topic, w1).unwrap(), publisher_from_fd(topic, w2).unwrap()])
}

#[test]
fn every_size_up_to_four_pipe_bufs_arrives_intact() {
    let _w = watchdog("every_size_up_to_four_pipe_bufs_arrives_intact");
    let (mut tx, mut rx) = channel("sizes").unwrap();
    assert_eq!((tx.transport(), rx.transport()), (Transport::Pipe, Transport::Pipe));
    let mut sizes: Vec<usize> = (0..=4 * PIPE_BUF).step_by(97).collect();
    for b in [0, 1, MAX_FRAME_PAYLOAD - 1, MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1, PIPE_BUF, 2 * PIPE_BUF] {
        sizes.push(b);
    }
    sizes.push(4 * PIPE_BUF);
    let expect = sizes.clone();
    let id = tx.id();
    let writer = std::thread::spawn(move || {
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(tx.send(&body(1, i as u64, n)).unwrap(), i as u64);
        }
    });
    for (i, &n) in expect.iter().enumerate() {
        let m = rx.recv_timeout(LONG).unwrap();
        assert_eq!((m.seq(), m.publisher(), m.len()), (i as u64, id, n));
        assert!(m.payload() == body(1, i as u64, n), "message {i} of {n} bytes differs");
        assert!(m.timestamp() > 0);
    }
    writer.join().unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap_err(), RecvError::Closed, "the writer is gone");
    assert!(rx.is_closed());
    assert_eq!(rx.position(), expect.len() as u64);
}

#[test]
fn try_send_is_full_on_a_full_pipe_and_nothing_is_lost() {
    let _w = watchdog("try_send_is_full_on_a_full_pipe_and_nothing_is_lost");
    let (mut tx, mut rx) = channel("full").unwrap();
    let mut sent = 0u64;
    loop {
        match tx.try_send(&body(2, sent, 1000)) {
            Ok(seq) => assert_eq!(seq, sent),
            Err(SendError::Full) => break,
            Err(e) => panic!("{e}"),
        }
        sent += 1;
        assert!(sent < 100_000, "a pipe never fills");
    }
    assert!(sent > 0);
    // (The same size as what filled the pipe: a smaller frame might still fit into the last page.)
    assert_eq!(tx.send_timeout(&[0; 1000], Duration::from_millis(30)).unwrap_err(), SendError::Timeout);
    assert!(matches!(tx.try_loan(10), Err(SendError::Full)));
    // A long message does not start into a pipe that is not empty.
    assert_eq!(tx.try_send(&vec![0; 2 * PIPE_BUF]).unwrap_err(), SendError::Full);
    for i in 0..sent {
        let m = rx.try_recv().unwrap();
        assert_eq!((m.seq(), m.payload()), (i, &body(2, i, 1000)[..]));
    }
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    // Empty again: a long message goes.
    assert_eq!(tx.try_send(&vec![5; 2 * PIPE_BUF]).unwrap(), sent);
    assert_eq!(rx.recv().unwrap().payload(), &vec![5; 2 * PIPE_BUF][..]);
}

#[test]
fn recv_timeout_and_empty() {
    let _w = watchdog("recv_timeout_and_empty");
    let (mut tx, mut rx) = channel("idle").unwrap();
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    let t = Instant::now();
    assert_eq!(rx.recv_timeout(Duration::from_millis(50)).unwrap_err(), RecvError::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(50));
    tx.send(b"late").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_millis(50)).unwrap().payload(), b"late");
    // A waiting receiver wakes up when the message comes: the message is sent only once this thread is
    // certainly blocked waiting for it (a sleep would let the message arrive first, and the test pass without
    // any wake-up).
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let h = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(10);
        while !blocked_in_poll(me) {
            assert!(Instant::now() < until, "the receiver never blocked in poll");
            std::thread::sleep(Duration::from_millis(1));
        }
        tx.send(b"wake").unwrap();
        tx
    });
    assert_eq!(rx.recv_timeout(LONG).unwrap().payload(), b"wake");
    drop(h.join().unwrap());
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
}

#[test]
fn a_gone_reader_is_closed_not_sigpipe() {
    let _w = watchdog("a_gone_reader_is_closed_not_sigpipe");
    let (mut tx, rx) = channel("gone").unwrap();
    tx.send(b"unread").unwrap();
    drop(rx);
    assert_eq!(tx.send(b"x").unwrap_err(), SendError::Closed);
    assert!(tx.is_closed());
    assert_eq!(tx.try_send(b"x").unwrap_err(), SendError::Closed);
    assert_eq!(tx.send(&vec![1; 3 * PIPE_BUF]).unwrap_err(), SendError::Closed);
}

#[test]
fn a_reader_gone_in_the_middle_of_a_long_message_is_closed() {
    let _w = watchdog("a_reader_gone_in_the_middle_of_a_long_message_is_closed");
    let (r, w) = fd_pair();
    let mut tx = publisher_from_fd("mid", w).unwrap();
    const LONG_MESSAGE: usize = 1 << 20;
    // The reader leaves only once it has read the first message and the first fragment of the long one: the
    // writer has then certainly started the long message, and cannot have finished it (it has written at most
    // what was read plus one pipe's capacity, far less than the message).
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(r);
        let mut first = vec![0u8; frame::HEADER + 5];
        std::io::Read::read_exact(&mut f, &mut first).unwrap();
        let mut fragment = vec![0u8; frame::MAX_FRAME];
        std::io::Read::read_exact(&mut f, &mut fragment).unwrap();
        let h = |b: &[u8]| frame::Header::decode(b[..frame::HEADER].try_into().unwrap()).unwrap();
        let (h1, h2) = (h(&first), h(&fragment));
        assert_eq!((h1.seq, h1.first(), h1.last(), &first[frame::HEADER..]), (0, true, true, &b"first"[..]));
        assert_eq!((h2.seq, h2.first(), h2.last(), h2.total as usize), (1, true, false, LONG_MESSAGE));
        // Dropping `f` closes the only read end: the reader is gone in the middle of the message.
    });
    tx.send(b"first").unwrap();
    assert_eq!(tx.send(&vec![3; LONG_MESSAGE]).unwrap_err(), SendError::Closed);
    reader.join().unwrap();
    assert!(tx.is_closed());
    assert_eq!(tx.published(), 1, "the long message was not counted as sent");
}

#[test]
fn too_large_is_refused() {
    let _w = watchdog("too_large_is_refused");
    let (mut tx, _rx) = channel("big").unwrap();
    let big = vec![0u8; MAX_MESSAGE + 1];
    assert_eq!(tx.send(&big).unwrap_err(), SendError::TooLarge { len: MAX_MESSAGE + 1, max: MAX_MESSAGE });
    assert_eq!(tx.max_message(), MAX_MESSAGE);
    assert!(matches!(tx.loan(MAX_MESSAGE + 1), Err(SendError::TooLarge { .. })));
    assert_eq!(tx.published(), 0);
}

#[test]
fn several_writers_on_one_pipe_stay_whole_and_in_order() {
    let _w = watchdog("several_writers_on_one_pipe_stay_whole_and_in_order");
    const WRITERS: u64 = 4;
    const EACH: u64 = 2000;
    let (mut rx, shared) = SharedPipe::new("shared").unwrap();
    let mut ids = HashMap::new();
    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let mut p = shared.publisher().unwrap();
        ids.insert(p.id(), w);
        threads.push(std::thread::spawn(move || {
            let mut r = Rng(w + 1);
            for seq in 0..EACH {
                let n = if r.below(4) == 0 { r.below(3 * PIPE_BUF) } else { r.below(300) };
                assert_eq!(p.send(&body(w, seq, n)).unwrap(), seq);
            }
        }));
    }
    assert_eq!(ids.len(), WRITERS as usize, "writer ids are unique");
    drop(shared);
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut total = 0;
    for m in rx.iter() {
        let m = m.unwrap();
        let w = ids[&m.publisher];
        let expect = next.entry(m.publisher).or_default();
        assert_eq!(m.seq, *expect, "writer {w} in order, exactly once");
        assert!(m.payload == body(w, m.seq, m.payload.len()), "writer {w} message {} intact", m.seq);
        *expect += 1;
        total += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(total, WRITERS * EACH);
    assert!(next.values().all(|&n| n == EACH));
    assert_eq!(rx.pipe_abandoned(), Some(0));
}

#[test]
fn fan_out_is_all_or_nothing_and_survives_a_gone_reader() {
    let _w = watchdog("fan_out_is_all_or_nothing_and_survives_a_gone_reader");
    let (mut tx, [mut a, mut b]) = fan_out("fan");
    assert_eq!(tx.pipe_outputs(), Some(2));
    tx.send(b"both").unwrap();
    // Fill b's pipe by reading only a: try_send refuses rather than sending to a alone.
    let mut sent = 1;
    while tx.try_send(&[0; 2000]).is_ok() {
        sent += 1;
        while a.try_recv().is_ok() {}
    }
    assert_eq!(tx.try_send(b"x").unwrap_err(), SendError::Full);
    assert_eq!(a.try_recv().unwrap_err(), RecvError::Empty, "nothing went to a alone");
    for i in 0..sent {
        assert_eq!(b.try_recv().unwrap().seq(), i);
    }
    // A reader that is gone is dropped; the others go on.
    drop(b);
    tx.send(b"only a").unwrap();
    assert_eq!(tx.pipe_outputs(), Some(1));
    assert_eq!(a.recv().unwrap().payload(), b"only a");
    drop(a);
    assert_eq!(tx.send(b"nobody").unwrap_err(), SendError::Closed);
}

#[test]
fn fan_in_reads_every_pipe_in_turn() {
    let _w = watchdog("fan_in_reads_every_pipe_in_turn");
    let (mut rx, [mut p1, mut p2]) = fan_in("in");
    // Six long messages take twelve of the sixteen pages of a default pipe: no reader needed yet.
    for i in 0..6u8 {
        p1.send(&[1, i]).unwrap();
        p2.send(&vec![2; PIPE_BUF + i as usize]).unwrap();
    }
    let mut from = [0, 0];
    let mut last = None;
    let mut alternations = 0;
    for _ in 0..12 {
        let m = rx.recv_timeout(LONG).unwrap();
        let src = if m.publisher() == p1.id() { 0 } else { 1 };
        assert_eq!(m.seq(), from[src]);
        from[src] += 1;
        alternations += usize::from(last.is_some_and(|l| l != src));
        last = Some(src);
    }
    assert_eq!(from, [6, 6]);
    assert!(alternations >= 6, "round robin between the pipes ({alternations} alternations)");
    drop(p1);
    p2.send(b"still here").unwrap();
    assert_eq!(rx.recv().unwrap().payload(), b"still here");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    assert_eq!(rx.pipe_inputs(), Some(1), "the closed pipe was dropped");
    drop(p2);
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
}

#[test]
fn loans_are_written_on_commit() {
    let _w = watchdog("loans_are_written_on_commit");
    let (mut tx, mut rx) = channel("loan").unwrap();
    let mut l = tx.loan(5).unwrap();
    assert_eq!((l.len(), l.seq()), (5, 0));
    l.copy_from_slice(b"hello");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty, "nothing before commit");
    assert_eq!(l.commit(), 0);
    assert_eq!(rx.recv().unwrap().payload(), b"hello");
    let aborted = tx.loan(3).unwrap();
    assert_eq!(aborted.seq(), 1);
    drop(aborted); // aborted: no message; its sequence number is skipped, as on shared memory
    let mut l = tx.loan_timeout(3 * PIPE_BUF, LONG).unwrap();
    l.write_at(PIPE_BUF, b"abc");
    assert_eq!(l.commit_len(PIPE_BUF + 3), 2);
    let m = rx.recv().unwrap();
    assert_eq!((m.seq(), m.len(), &m.payload()[PIPE_BUF..]), (2, PIPE_BUF + 3, &b"abc"[..]));
    drop(m);
    assert_eq!(tx.send(b"after").unwrap(), 3, "a send after a commit takes the next number");
    assert_eq!(rx.recv().unwrap().seq(), 3);
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty, "the aborted loan is never delivered nor reported");
}

/// Writes raw frames of one message, or only some of them, as a writer dying mid-message would.
pub(super) fn write_frames(fd: &OwnedFd, msg: &[u8], writer: u32, seq: u64, keep: usize) {
    let mut f = std::fs::File::from(fd.try_clone().unwrap());
    for (h, chunk) in frame::frames(msg, writer, seq, 1).take(keep) {
        let mut b = h.encode().to_vec();
        b.extend_from_slice(chunk);
        f.write_all(&b).unwrap();
    }
}

/// A subscriber on a fresh pipe, the pipe's write end, and a three-fragment message of `fill` bytes to feed it.
pub(super) fn fragmented(topic: &str, fill: u8) -> (Subscriber, OwnedFd, Vec<u8>) {
    let (r, w) = fd_pair();
    (subscriber_from_fd(topic, r).unwrap(), w, vec![fill; 3 * PIPE_BUF])
}

#[test]
fn a_message_its_writer_never_finished_is_dropped_and_counted() {
    let _w = watchdog("a_message_its_writer_never_finished_is_dropped_and_counted");
    let (mut rx, w, long) = fragmented("torn", 9);
    write_frames(&w, &long, 77, 0, 2); // writer 77 dies after two fragments
    write_frames(&w, b"other", 78, 0, 1); // another writer's message is whole
    write_frames(&w, &long, 79, 0, 1); // writer 79 starts a message...
    write_frames(&w, &long, 79, 1, 9); // ...and (a new writer with its id) starts over: the first is abandoned
    let m = rx.recv().unwrap();
    assert_eq!((m.publisher(), m.payload()), (78, &b"other"[..]));
    drop(m);
    let m = rx.recv().unwrap();
    assert_eq!((m.publisher(), m.seq(), m.len()), (79, 1, long.len()));
    drop(m);
    assert_eq!(rx.pipe_abandoned(), Some(1));
    drop(w);
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
    assert_eq!(rx.pipe_abandoned(), Some(2), "writer 77's message, at end of file");
}

#[test]
fn garbage_in_a_pipe_is_corrupted_then_closed() {
    let _w = watchdog("garbage_in_a_pipe_is_corrupted_then_closed");
    let (r, w) = fd_pair();
    let mut rx = subscriber_from_fd("junk", r).unwrap();
    std::fs::File::from(w).write_all(&[0xab; 64]).unwrap();
    assert!(matches!(rx.recv().unwrap_err(), RecvError::Corrupted(_)));
    assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
    // A fragment without its start is refused too.
    let (r, w) = fd_pair();
    let mut rx = subscriber_from_fd("junk", r).unwrap();
    let frames: Vec<_> = frame::frames(&[1; 2 * PIPE_BUF], 5, 0, 0).collect();
    let (h, chunk) = frames[1];
    let mut f = std::fs::File::from(w);
    f.write_all(&[&h.encode()[..], chunk].concat()).unwrap();
    assert!(matches!(rx.recv().unwrap_err(), RecvError::Corrupted(_)));
}

#[test]
fn typed_values_and_the_iterator() {
    let _w = watchdog("typed_values_and_the_iterator");
    let (mut tx, mut rx) = channel("typed").unwrap();
    let v = (7u64, String::from("seven"), vec![1.5f64; 1000]);
    tx.send_value(&v).unwrap();
    assert_eq!(rx.recv_value::<(u64, String, Vec<f64>)>().unwrap(), v);
    tx.send(&[0xff]).unwrap();
    assert!(matches!(rx.recv_value::<String>(), Err(RecvError::Decode(_))));
    for i in 0..3u8 {
        tx.send(&[i]).unwrap();
    }
    drop(tx);
    let got: Vec<Vec<u8>> = rx.iter().map(|m| m.unwrap().payload).collect();
    assert_eq!(got, [[0], [1], [2]]);
}

rusty_fork::rusty_fork_test! {
    #![rusty_fork(timeout_ms = 60_000)]

    /// Runs in a process of its own (rusty-fork re-runs the test binary for this test alone): a `fork` in the
    /// shared test process would hand the child every descriptor of every test running at that moment, so
    /// another test's dropped pipe reader would stay open in the child.
    #[test]
    fn a_forked_child_cannot_use_the_parents_handles() {
        let _w = watchdog("a_forked_child_cannot_use_the_parents_handles");
        let (mut tx, mut rx) = channel("fork").unwrap();
        let (report_r, report_w) = fd_pair();
        // SAFETY: the child only does async-signal-safe things: a check that returns before allocating, write, _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = tx.send(b"x") == Err(SendError::Forked) && matches!(rx.try_recv(), Err(RecvError::Forked));
            let byte = [ok as u8];
            // SAFETY: writing one byte from a live buffer to our pipe, then exiting without unwinding.
            unsafe {
                libc::write(std::os::fd::AsRawFd::as_raw_fd(&report_w), byte.as_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        drop(report_w);
        let mut got = [0u8; 1];
        std::io::Read::read_exact(&mut std::fs::File::from(report_r), &mut got).unwrap();
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        assert_eq!(got[0], 1, "the child got Forked from both handles");
        tx.send(b"parent").unwrap();
        assert_eq!(rx.recv().unwrap().payload(), b"parent");
    }
}
