//! The pipe transport across real processes: this test process is the parent, `pipe-child` the children (and
//! grandchildren). Every wait is bounded, every child is killed when its test ends (`Kid` on drop, and
//! `PR_SET_PDEATHSIG`), and every helper bounds its own life.

use bus_client::pipe::{PipeCommand, SharedPipe, MAX_FRAME_PAYLOAD};
use bus_client::{Bus, Publisher, RecvError, SendError, Subscriber, Transport};
use shmbus_tests::daemon::TestDaemon;
use shmbus_tests::kid::{self, Kid, Orphan, WAIT};
use shmbus_tests::peers::field_u64 as field;
use shmbus_tests::stream;
use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_pipe-child");
const PIPE_BUF: usize = shmbus_os::PIPE_BUF;
const BOGUS_SOCKET: &str = "/nonexistent/shmbus-pipe-test.sock";

#[test]
fn the_stream_covers_the_frame_boundaries() {
    assert_eq!(MAX_FRAME_PAYLOAD, 4064, "the stream's edge sizes assume 4 KiB PIPE_BUF");
    let lens: Vec<usize> = (0..100_000).map(|i| stream::len(1, i)).collect();
    assert_eq!(lens.iter().max(), Some(&(4 * PIPE_BUF)));
    assert!(lens.contains(&0) && lens.contains(&MAX_FRAME_PAYLOAD) && lens.contains(&(MAX_FRAME_PAYLOAD + 1)));
    assert!(lens.iter().filter(|&&n| n > PIPE_BUF).count() > 10_000, "plenty of fragmented messages");
}

fn helper(args: &[&str]) -> Command {
    kid::helper(EXE, args)
}

fn recv_bounded(sub: &mut Subscriber) -> Result<bus_client::OwnedMessage, RecvError> {
    sub.recv_timeout(WAIT).map(|m| m.to_owned_message())
}

/// Sends `count` messages of stream `seed`; returns the checksum.
fn send_stream(p: &mut Publisher, seed: u64, count: u64) -> u64 {
    let mut buf = Vec::new();
    let mut sum = stream::Checksum::default();
    for i in 0..count {
        stream::fill(seed, i, &mut buf);
        assert_eq!(p.send_timeout(&buf, WAIT).unwrap_or_else(|e| panic!("message {i}: {e}")), i);
        sum.add(&buf);
    }
    sum.value()
}

#[test]
fn parent_to_child_100k_messages_with_checksums() {
    const N: u64 = 100_000;
    let mut cmd = PipeCommand::new(helper(&["sink", "--topic", "data", "--seed", "11"]));
    let mut p = cmd.publish_to_child("data").unwrap();
    assert_eq!(p.transport(), Transport::Pipe);
    let mut kid = Kid::spawn("sink", cmd);
    assert_eq!(kid.line("ready"), "ready transport=Pipe");
    let sum = send_stream(&mut p, 11, N);
    drop(p); // the child reads to the end, then sees Closed
    let report = kid.line("received=");
    assert_eq!((field(&report, "received"), field(&report, "checksum")), (N, sum), "{report}");
    kid.expect_success();
}

#[test]
fn child_to_parent_100k_messages_with_checksums() {
    const N: u64 = 100_000;
    let mut cmd = PipeCommand::new(helper(&["source", "--topic", "data", "--seed", "12", "--count", &N.to_string()]));
    let mut sub = cmd.subscribe_from_child("data").unwrap();
    let mut kid = Kid::spawn("source", cmd);
    let writer = field(&kid.line("writer"), "id") as u32;
    let mut expect = Vec::new();
    let mut sum = stream::Checksum::default();
    for i in 0..N {
        let m = sub.recv_timeout(WAIT).unwrap_or_else(|e| panic!("message {i}: {e}; {}", kid.diagnostics()));
        stream::fill(12, i, &mut expect);
        assert_eq!((m.seq(), m.publisher(), m.len()), (i, writer, expect.len()));
        assert!(m.payload() == expect.as_slice(), "message {i} differs");
        sum.add(m.payload());
    }
    assert_eq!(recv_bounded(&mut sub).unwrap_err(), RecvError::Closed, "the child exited");
    let report = kid.line("sent=");
    assert_eq!(field(&report, "checksum"), sum.value());
    kid.expect_success();
}

#[test]
fn several_children_write_one_pipe() {
    const WRITERS: u64 = 4;
    const EACH: u64 = 5_000;
    let (mut sub, shared) = SharedPipe::new("results").unwrap();
    let mut kids = Vec::new();
    for k in 0..WRITERS {
        let seed = (100 + k).to_string();
        let mut cmd = PipeCommand::new(helper(&["source", "--topic", "results", "--seed", &seed, "--count", "5000"]));
        cmd.share_with_child(&shared).unwrap();
        kids.push(Kid::spawn(&format!("source-{k}"), cmd));
    }
    drop(shared); // from now on the pipe closes when the last child exits
    let mut seeds = HashMap::new();
    for kid in &mut kids {
        let l = kid.line("writer");
        seeds.insert(field(&l, "id") as u32, field(&l, "seed"));
    }
    assert_eq!(seeds.len(), WRITERS as usize, "every writer has its own id");
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut sums: HashMap<u32, stream::Checksum> = HashMap::new();
    let mut expect = Vec::new();
    let mut large = 0;
    while let Some(m) = kid::recv_until_closed(&mut sub, WAIT) {
        let seed = seeds[&m.publisher()];
        let i = next.entry(m.publisher()).or_default();
        assert_eq!(m.seq(), *i, "writer {} in order, exactly once", m.publisher());
        stream::fill(seed, *i, &mut expect);
        assert!(m.payload() == expect.as_slice(), "writer {} message {i} intact", m.publisher());
        large += usize::from(m.len() > PIPE_BUF);
        sums.entry(m.publisher()).or_default().add(m.payload());
        *i += 1;
    }
    assert!(next.values().all(|&n| n == EACH), "{next:?}");
    assert!(large > 1000, "large messages were interleaved with the others ({large})");
    for kid in &mut kids {
        let report = kid.line("sent=");
        kid.expect_success();
        let id = seeds.iter().find(|(_, &s)| s == field(&kid.seen[0], "seed")).map(|(&id, _)| id).unwrap();
        assert_eq!(field(&report, "checksum"), sums[&id].value());
    }
    assert_eq!(sub.pipe_abandoned(), Some(0));
}

#[test]
fn a_child_that_exits_early_gives_closed() {
    let mut cmd = PipeCommand::new(helper(&["read-few", "--topic", "data", "--count", "10"]));
    let mut p = cmd.publish_to_child("data").unwrap();
    let mut kid = Kid::spawn("read-few", cmd);
    let deadline = Instant::now() + WAIT;
    let mut sent = 0u64;
    let err = loop {
        assert!(Instant::now() < deadline, "never got Closed; {}", kid.diagnostics());
        match p.send_timeout(&vec![1; 3000 + (sent as usize % 3) * PIPE_BUF], WAIT) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, SendError::Closed);
    assert!(sent >= 10);
    assert!(p.is_closed());
    assert_eq!(p.try_send(b"again").unwrap_err(), SendError::Closed);
    kid.line("read=10");
    kid.expect_success();
}

#[test]
fn a_writer_with_default_sigpipe_survives_its_reader() {
    // The helper restores SIGPIPE's default action (death) before making its publisher.
    let mut kid = Kid::watch("sigpipe-writer", helper(&["sigpipe-writer", "--count", "5"]).spawn().unwrap());
    let report = kid.line("closed");
    assert!(report.contains("child=read=5"), "{report}");
    let st = kid.wait();
    assert_eq!(st.signal(), None, "killed by a signal: {st}; {}", kid.diagnostics());
    assert!(st.success(), "{st}; {}", kid.diagnostics());
}

#[test]
fn a_parent_that_dies_gives_its_child_closed() {
    let mut middle = Kid::watch("middle", helper(&["middle", "--count", "5"]).spawn().unwrap());
    let pid = field(&middle.line("grandchild"), "pid") as i32;
    let _orphan = Orphan(pid);
    middle.line("sent=5");
    middle.child.kill().unwrap();
    let st = middle.wait();
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    // The grandchild shares the middle's stdout, so its report comes on the same lines.
    assert_eq!(middle.line("closed"), "closed received=5");
}

/// Descriptors of this process that a child would inherit (not close-on-exec).
fn inheritable_here() -> HashSet<i32> {
    let mut out = HashSet::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        // SAFETY: F_GETFD on any descriptor number has no memory-safety preconditions.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            out.insert(fd);
        }
    }
    out
}

fn fd_numbers(words: &str) -> Vec<(i32, String)> {
    words
        .split_whitespace()
        .filter_map(|w| {
            let (n, target) = w.split_once('=')?;
            Some((n.parse().ok()?, target.to_string()))
        })
        .collect()
}

#[test]
fn no_descriptor_leaks_into_children() {
    // Other pipes and files of this process, and another child's pipes made just before: none may leak.
    let _unrelated = shmbus_os::pipe().unwrap();
    let _file = std::fs::File::open("/proc/self/status").unwrap();
    let mut other = PipeCommand::new(helper(&["stall", "--topic", "x"]));
    let _other_pub = other.publish_to_child("x").unwrap();
    let _other_sub = other.subscribe_from_child("y").unwrap();
    let mut other = Kid::spawn("other", other);
    other.line("ready");

    let mut cmd = PipeCommand::new(helper(&["fds"]));
    let _p = cmd.publish_to_child("in").unwrap();
    let _s = cmd.subscribe_from_child("out").unwrap();
    let allowed_here = inheritable_here();
    let mut kid = Kid::spawn("fds", cmd);
    let pipes = kid.line("pipes").trim_start_matches("pipes ").to_string();
    let handed: HashSet<i32> =
        pipes.split(',').map(|e| e.split_once('=').unwrap().1.split(':').next().unwrap().parse().unwrap()).collect();
    assert_eq!(handed.len(), 2, "{pipes}");
    let before = kid.seen[0].trim_start_matches("before ").to_string();
    for (fd, target) in fd_numbers(&before) {
        let ok = fd <= 2 || handed.contains(&fd) || allowed_here.contains(&fd);
        assert!(ok, "descriptor {fd} ({target}) leaked into the child: {before}");
        if handed.contains(&fd) {
            assert!(target.starts_with("pipe:"), "{fd} -> {target}");
        }
    }
    assert!(fd_numbers(&before).iter().filter(|(fd, _)| handed.contains(fd)).count() == 2, "{before}");
    // After `Bus::connect` claimed them, the pipes are close-on-exec again: a plain grandchild gets none.
    let grandchild = kid.line("grandchild").trim_start_matches("grandchild ").to_string();
    for (fd, target) in fd_numbers(&grandchild) {
        let ok = fd <= 2 || (allowed_here.contains(&fd) && !handed.contains(&fd));
        assert!(ok, "descriptor {fd} ({target}) leaked into the grandchild: {grandchild}");
    }
    kid.expect_success();
}

#[test]
fn full_timeout_and_closed_across_processes() {
    // A child that subscribes and never reads: the pipe fills.
    let mut cmd = PipeCommand::new(helper(&["stall", "--topic", "data"]));
    let mut p = cmd.publish_to_child("data").unwrap();
    let mut staller = Kid::spawn("stall", cmd);
    staller.line("ready");
    let mut sent = 0;
    while p.try_send(&[3; 500]).is_ok() {
        sent += 1;
        assert!(sent < 1_000_000, "the pipe never filled");
    }
    assert_eq!(p.try_send(&[3; 500]).unwrap_err(), SendError::Full);
    assert_eq!(p.send_timeout(&[3; 500], Duration::from_millis(50)).unwrap_err(), SendError::Timeout);
    assert_eq!(p.try_send(&[3; 3 * PIPE_BUF]).unwrap_err(), SendError::Full);
    drop(staller); // killed: its end closes
    assert_eq!(p.send_timeout(&[3; 500], WAIT).unwrap_err(), SendError::Closed);

    // A child that publishes nothing: the parent times out, then sees Closed when it dies.
    let mut cmd = PipeCommand::new(helper(&["idle-writer", "--topic", "quiet"]));
    let mut sub = cmd.subscribe_from_child("quiet").unwrap();
    let mut idle = Kid::spawn("idle-writer", cmd);
    idle.line("ready");
    assert_eq!(sub.try_recv().unwrap_err(), RecvError::Empty);
    let t = Instant::now();
    assert_eq!(sub.recv_timeout(Duration::from_millis(100)).unwrap_err(), RecvError::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(100));
    drop(idle);
    assert_eq!(recv_bounded(&mut sub).unwrap_err(), RecvError::Closed);
}

#[test]
fn fan_out_to_children_and_fan_in_from_them() {
    const CHILDREN: usize = 3;
    const N: u64 = 3_000;
    let mut feed: Option<Publisher> = None;
    let mut echoes: Option<Subscriber> = None;
    let mut kids = Vec::new();
    for k in 0..CHILDREN {
        let mut cmd = PipeCommand::new(helper(&["echo", "--in", "feed", "--out", "echo"]));
        match (&mut feed, &mut echoes) {
            (Some(f), Some(e)) => {
                cmd.fan_out_to_child(f).unwrap();
                cmd.fan_in_from_child(e).unwrap();
            }
            _ => {
                feed = Some(cmd.publish_to_child("feed").unwrap());
                echoes = Some(cmd.subscribe_from_child("echo").unwrap());
            }
        }
        kids.push(Kid::spawn(&format!("echo-{k}"), cmd));
    }
    let (mut feed, mut echoes) = (feed.unwrap(), echoes.unwrap());
    assert_eq!((feed.pipe_outputs(), echoes.pipe_inputs()), (Some(CHILDREN), Some(CHILDREN)));
    // Send from another thread: the children echo while we feed them.
    let sender = std::thread::spawn(move || send_stream(&mut feed, 21, N));
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut expect = Vec::new();
    while let Some(m) = kid::recv_until_closed(&mut echoes, WAIT) {
        let i = next.entry(m.publisher()).or_default();
        stream::fill(21, *i, &mut expect);
        assert!(m.payload() == expect.as_slice(), "child {} echo {i}", m.publisher());
        assert_eq!(m.seq(), *i);
        *i += 1;
    }
    sender.join().unwrap();
    assert_eq!(next.len(), CHILDREN);
    assert!(next.values().all(|&n| n == N), "{next:?}");
    for kid in &mut kids {
        assert_eq!(field(&kid.line("echoed"), "echoed"), N);
        kid.expect_success();
    }
}

#[test]
fn typed_values_over_pipes() {
    let mut cmd = PipeCommand::new(helper(&["echo-typed", "--in", "ask", "--out", "answer"]));
    let mut ask = cmd.publish_to_child("ask").unwrap();
    let mut answer = cmd.subscribe_from_child("answer").unwrap();
    let mut kid = Kid::spawn("echo-typed", cmd);
    for n in 0..100u64 {
        let v = (n, format!("value {n}"), (0..n as u32 * 50).collect::<Vec<u32>>());
        ask.send_value(&v).unwrap();
        let back: (u64, String, Vec<u32>) = answer.recv_value_timeout(WAIT).unwrap();
        assert_eq!(back, (n + 1, v.1, v.2));
    }
    drop(ask);
    assert_eq!(recv_bounded(&mut answer).unwrap_err(), RecvError::Closed);
    kid.expect_success();
}

/// Runs `probe` with `env` (and the pipe for `t` handed over when `hand`); returns its two report lines.
fn probe(env: &[(&str, &str)], hand: bool) -> Vec<String> {
    let mut c = helper(&["probe", "--topic", "t"]);
    c.env("SHMBUS_SOCKET", BOGUS_SOCKET).env_remove("SHMBUS_TRANSPORT");
    c.envs(env.iter().copied());
    let mut cmd = PipeCommand::new(c);
    let _p = hand.then(|| cmd.publish_to_child("t").unwrap());
    let mut kid = Kid::spawn("probe", cmd);
    let first = kid.line("connect");
    let mut out = vec![first.clone()];
    if first.starts_with("connect=ok") {
        out.push(kid.line("sub"));
    }
    kid.expect_success();
    out
}

#[test]
fn the_transport_follows_shmbus_transport() {
    // A pipe handed over is used without any daemon.
    assert_eq!(probe(&[], true), ["connect=ok transport=Shm", "sub=Pipe"]);
    assert_eq!(probe(&[("SHMBUS_TRANSPORT", "pipe")], true), ["connect=ok transport=Pipe", "sub=Pipe"]);
    // pipe without the topic handed over: a clear NoSuchTopic.
    let r = probe(&[("SHMBUS_TRANSPORT", "pipe")], false);
    assert_eq!(r[0], "connect=ok transport=Pipe");
    assert!(r[1].starts_with("sub=err no such topic") && r[1].contains("SHMBUS_TRANSPORT=pipe"), "{r:?}");
    // shm ignores the pipe and needs the daemon.
    let r = probe(&[("SHMBUS_TRANSPORT", "shm")], true);
    assert!(r[0].starts_with("connect=err daemon unavailable"), "{r:?}");
    // Without pipes and without a daemon, only auto connects (falling back).
    assert!(probe(&[], false)[0].starts_with("connect=err daemon unavailable"));
    let r = probe(&[("SHMBUS_TRANSPORT", "auto")], false);
    assert_eq!(r[0], "connect=ok transport=Pipe");
    assert!(r[1].starts_with("sub=err daemon unavailable"), "{r:?}");
    let r = probe(&[("SHMBUS_TRANSPORT", "carrier-pigeon")], false);
    assert!(r[0].starts_with("connect=err invalid configuration"), "{r:?}");
}

#[test]
fn the_parent_falls_back_to_pipes_without_a_daemon() {
    let bus = Bus::builder().socket(BOGUS_SOCKET).fallback_to_pipes(true).connect().unwrap();
    assert_eq!(bus.transport(), Transport::Pipe);
    let mut cmd = bus.command(helper(&["sink", "--topic", "data", "--seed", "31"]));
    assert!(cmd.uses_pipes());
    let mut p = cmd.publish_to_child("data").unwrap();
    assert_eq!(p.transport(), Transport::Pipe);
    let mut kid = Kid::spawn("sink", cmd);
    kid.line("ready transport=Pipe");
    let sum = send_stream(&mut p, 31, 2_000);
    drop(p);
    let report = kid.line("received=");
    assert_eq!((field(&report, "received"), field(&report, "checksum")), (2_000, sum));
    kid.expect_success();
}

#[test]
fn the_same_child_works_under_a_daemon() {
    let d = TestDaemon::start(None);
    let bus = Bus::builder().socket(&d.socket).transport(Transport::Shm).connect().unwrap();
    assert_eq!(bus.transport(), Transport::Shm);
    let mut c = helper(&["sink", "--topic", "data", "--seed", "41", "--count", "2000"]);
    c.env_remove("SHMBUS_SOCKET"); // `Bus::command` passes the parent's socket on
    let mut cmd = bus.command(c);
    assert!(!cmd.uses_pipes());
    let mut p = cmd.publish_to_child("data").unwrap();
    assert_eq!(p.transport(), Transport::Shm);
    let mut kid = Kid::spawn("sink", cmd);
    kid.line("ready transport=Shm");
    // On shared memory a subscriber gets what is published after it attached: wait for it.
    let deadline = Instant::now() + WAIT;
    while bus.stats(Some("data")).map_or(true, |s| s[0].subscribers.is_empty()) {
        assert!(Instant::now() < deadline, "the child never subscribed; {}", kid.diagnostics());
        std::thread::sleep(Duration::from_millis(20));
    }
    let sum = send_stream(&mut p, 41, 2_000);
    let report = kid.line("received=");
    assert_eq!((field(&report, "received"), field(&report, "checksum")), (2_000, sum));
    kid.expect_success();
}
