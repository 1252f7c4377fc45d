//! The pipe transport under collisions, sandboxes and odd parents (issue 18), across real processes: this test
//! process is the parent, `pipe-child` the children. Every wait is bounded; children are killed on drop.

use bus_client::pipe::{PipeCommand, SharedPipe};
use bus_client::RecvError;
use shmbus_tests::kid::{self, Kid, Orphan};
use shmbus_tests::peers::{field_u64 as field, fields};
use shmbus_tests::stream;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_pipe-child");
const BOGUS_SOCKET: &str = "/nonexistent/shmbus-pipe-odd.sock";
/// The bound on a wait that should end at once; generous, never asserted on as a speed.
const PROMPT: Duration = Duration::from_secs(10);

fn helper(args: &[&str]) -> Command {
    kid::helper(EXE, args)
}

/// Defect 2: with `SHMBUS_TRANSPORT=shm` the child never uses its inherited pipe, yet `Bus::connect` still makes
/// it close-on-exec: a grandchild `sleep` does not keep it open, and the parent sees `Closed`.
#[test]
fn an_unused_inherited_pipe_does_not_leak_into_grandchildren() {
    for transport in ["shm", "auto", ""] {
        let mut c = helper(&["spawn-sleeper"]);
        c.env("SHMBUS_SOCKET", BOGUS_SOCKET).env("SHMBUS_TRANSPORT", transport);
        let mut cmd = PipeCommand::new(c);
        let mut sub = cmd.subscribe_from_child("out").unwrap();
        let mut kid = Kid::spawn("spawn-sleeper", cmd);
        let line = kid.line("sleeper");
        let _sleeper = Orphan(field(&line, "pid") as i32);
        kid.expect_success();
        let r = sub.recv_timeout(PROMPT).map(|m| m.len());
        assert_eq!(r.unwrap_err(), RecvError::Closed, "SHMBUS_TRANSPORT={transport:?}: the grandchild holds the pipe");
    }
}

/// Defect 4: a parent with fd 0 closed still hands its child an end at fd 3 or above, which `Stdio::null()`
/// does not replace.
#[test]
fn a_parent_with_stdin_closed_hands_out_ends_above_stdio() {
    let mut c = helper(&["no-stdin", "--seed", "51", "--count", "300"]);
    c.env("SHMBUS_SOCKET", BOGUS_SOCKET).env_remove("SHMBUS_TRANSPORT");
    let mut kid = Kid::watch("no-stdin", c.spawn().unwrap());
    // The sink shares the helper's stdout.
    assert_eq!(kid.line("ready"), "ready transport=Pipe");
    let report = kid.line("received=");
    assert_eq!(field(&report, "received"), 300, "{report}");
    assert_eq!(kid.line("sink exited"), "sink exited ok=true");
    kid.expect_success();
}

/// Defect 5: SIGPIPE restored to its default action after the publisher was made: still `Closed`, no death.
#[test]
fn a_writer_that_restores_sigpipe_later_survives_its_reader() {
    let mut kid =
        Kid::watch("sigpipe-writer", helper(&["sigpipe-writer", "--count", "5", "--after", "true"]).spawn().unwrap());
    let report = kid.line("closed");
    assert!(report.contains("child=read=5"), "{report}");
    let st = kid.wait();
    assert_eq!(st.signal(), None, "killed by a signal: {st}; {}", kid.diagnostics());
    assert!(st.success(), "{st}; {}", kid.diagnostics());
}

/// Whether `unshare -Urpf` works here (user and PID namespaces).
fn unshare_allowed() -> bool {
    Command::new("unshare").args(["-Urpf", "true"]).status().is_ok_and(|s| s.success())
}

/// Defect 1, the sandbox case: two children in PID namespaces of their own (both pid 1) share one pipe; each gets
/// its own writer id from the pipe's reader, and every message arrives whole and in order.
#[test]
fn writers_in_pid_namespaces_of_their_own_share_a_pipe() {
    if !unshare_allowed() {
        println!("skipped: `unshare -Urpf true` is not permitted here");
        return;
    }
    const EACH: u64 = 2_000;
    let (mut sub, shared) = SharedPipe::new("results").unwrap();
    let mut kids = Vec::new();
    for k in 0..2u64 {
        let seed = (200 + k).to_string();
        let mut c = kid::helper("unshare", &["-Urpf", "--", EXE, "source", "--topic", "results", "--seed", &seed]);
        c.args(["--count", &EACH.to_string()]).env("SHMBUS_SOCKET", BOGUS_SOCKET).env_remove("SHMBUS_TRANSPORT");
        let mut cmd = PipeCommand::new(c);
        cmd.share_with_child(&shared).unwrap();
        kids.push(Kid::spawn(&format!("ns-source-{k}"), cmd));
    }
    drop(shared);
    let mut seeds = HashMap::new();
    for kid in &mut kids {
        let l = kid.line("writer");
        seeds.insert(field(&l, "id") as u32, field(&l, "seed"));
    }
    assert_eq!(seeds.len(), 2, "the two writers have distinct ids: {seeds:?}");
    let mut next: HashMap<u32, u64> = HashMap::new();
    let mut expect = Vec::new();
    while let Some(m) = kid::recv_until_closed(&mut sub, kid::WAIT) {
        let i = next.entry(m.publisher()).or_default();
        assert_eq!(m.seq(), *i, "writer {} in order, exactly once", m.publisher());
        stream::fill(seeds[&m.publisher()], *i, &mut expect);
        assert!(m.payload() == expect.as_slice(), "writer {} message {i} intact", m.publisher());
        *i += 1;
    }
    assert!(next.values().all(|&n| n == EACH), "{next:?}");
    for kid in &mut kids {
        let report = kid.line("sent=");
        assert_eq!(fields(&report)["sent"], EACH.to_string());
        kid.expect_success();
    }
    assert_eq!(sub.pipe_abandoned(), Some(0));
}
