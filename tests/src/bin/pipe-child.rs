//! `pipe-child`: the helper process of the pipe-transport tests (`tests/pipe.rs`). It plays one role, named by
//! its first argument, finds its pipes the way any shmbus program does (`Bus::connect`, then `bus.publisher` /
//! `bus.subscriber` by topic name), and reports on stdout, one `key=value` line at a time.
//!
//! Every role bounds its own life (`alarm`), so a helper orphaned by a failed test goes away by itself.

use bus_client::pipe::PipeCommand;
use bus_client::{Bus, RecvError, SendError};
use shmbus_tests::stream;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

type Args = HashMap<String, String>;

fn parse_args(raw: &[String]) -> Args {
    raw.chunks(2).filter_map(|c| Some((c[0].trim_start_matches("--").to_string(), c.get(1)?.clone()))).collect()
}

fn arg<T: std::str::FromStr>(a: &Args, key: &str) -> T {
    a.get(key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("missing or bad --{key}"))
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some(role) = raw.first().cloned() else {
        eprintln!("pipe-child: no role");
        return ExitCode::from(2);
    };
    let a = parse_args(&raw[1..]);
    // SAFETY: alarm has no memory-safety preconditions; SIGALRM's default action ends the process.
    unsafe { libc::alarm(a.get("life").and_then(|v| v.parse().ok()).unwrap_or(120)) };
    let r = match role.as_str() {
        "sink" => sink(&a),
        "source" => source(&a),
        "read-few" => read_few(&a),
        "stall" => hold(&a, false),
        "idle-writer" => hold(&a, true),
        "echo" => echo(&a),
        "echo-typed" => echo_typed(&a),
        "probe" => probe(&a),
        "fds" => fds(),
        "fds-list" => {
            say(format!("fds {}", list_fds()));
            Ok(())
        }
        "middle" => middle(&a),
        "drain" => drain(&a),
        "sigpipe-writer" => sigpipe_writer(&a),
        "spawn-sleeper" => spawn_sleeper(),
        "no-stdin" => no_stdin(&a),
        other => Err(format!("unknown role {other}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipe-child {role}: {e}");
            say(format!("error {e}"));
            ExitCode::from(1)
        }
    }
}

fn connect() -> Result<Bus, String> {
    Bus::connect().map_err(|e| format!("connect: {e}"))
}

/// Receives stream `seed` on `topic`, checking every message; with `--count`, stops after that many, else reads
/// until `Closed`. Reports `received= checksum= transport=`.
fn sink(a: &Args) -> Result<(), String> {
    let topic: String = arg(a, "topic");
    let seed: u64 = arg(a, "seed");
    let count: Option<u64> = a.get("count").map(|c| c.parse().expect("count"));
    let bus = connect()?;
    let mut sub = bus.subscriber(&topic).map_err(|e| format!("subscribe: {e}"))?;
    say(format!("ready transport={:?}", sub.transport()));
    let mut expect = Vec::new();
    let mut sum = stream::Checksum::default();
    let mut i = 0u64;
    let mut last_seq = None;
    while count.is_none_or(|c| i < c) {
        let m = match sub.recv_timeout(Duration::from_secs(60)) {
            Ok(m) => m,
            Err(RecvError::Closed) if count.is_none() => break,
            Err(e) => return Err(format!("message {i}: {e}")),
        };
        stream::fill(seed, i, &mut expect);
        if m.payload() != expect.as_slice() {
            return Err(format!("message {i}: {} bytes, expected {} bytes of other content", m.len(), expect.len()));
        }
        if last_seq.is_some_and(|l| m.seq() <= l) {
            return Err(format!("message {i}: seq {} after {last_seq:?}", m.seq()));
        }
        last_seq = Some(m.seq());
        sum.add(m.payload());
        i += 1;
    }
    say(format!("received={i} checksum={}", sum.value()));
    Ok(())
}

/// Publishes `--count` messages of stream `seed` on `topic`; reports `writer id=` first, then `sent= checksum=`.
fn source(a: &Args) -> Result<(), String> {
    let topic: String = arg(a, "topic");
    let seed: u64 = arg(a, "seed");
    let count: u64 = arg(a, "count");
    let bus = connect()?;
    let mut p = bus.publisher(&topic).map_err(|e| format!("publish: {e}"))?;
    say(format!("writer id={} seed={seed}", p.id()));
    let mut buf = Vec::new();
    let mut sum = stream::Checksum::default();
    for i in 0..count {
        stream::fill(seed, i, &mut buf);
        let seq = p.send_timeout(&buf, Duration::from_secs(60)).map_err(|e| format!("message {i}: {e}"))?;
        if seq != i {
            return Err(format!("message {i} got seq {seq}"));
        }
        sum.add(&buf);
    }
    say(format!("sent={count} checksum={}", sum.value()));
    Ok(())
}

/// Reads `--count` messages, then exits without reading more (an early exit).
fn read_few(a: &Args) -> Result<(), String> {
    let topic: String = arg(a, "topic");
    let count: u64 = arg(a, "count");
    let bus = connect()?;
    let mut sub = bus.subscriber(&topic).map_err(|e| e.to_string())?;
    for i in 0..count {
        sub.recv_timeout(Duration::from_secs(60)).map_err(|e| format!("message {i}: {e}"))?;
    }
    say(format!("read={count}"));
    Ok(())
}

/// Opens a publisher (`idle-writer`, which never publishes) or a subscriber (`stall`, which never reads) on
/// `--topic`, reports `ready`, and waits to be killed.
fn hold(a: &Args, publisher: bool) -> Result<(), String> {
    let bus = connect()?;
    let topic: String = arg(a, "topic");
    let _held = if publisher {
        (Some(bus.publisher(&topic).map_err(|e| e.to_string())?), None)
    } else {
        (None, Some(bus.subscriber(&topic).map_err(|e| e.to_string())?))
    };
    say("ready".into());
    park()
}

/// Waits to be killed; the `--life` alarm ends the process otherwise.
fn park() -> Result<(), String> {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Republishes every message of `--in` on `--out` until `Closed`.
fn echo(a: &Args) -> Result<(), String> {
    let bus = connect()?;
    let mut sub = bus.subscriber(&arg::<String>(a, "in")).map_err(|e| e.to_string())?;
    let mut p = bus.publisher(&arg::<String>(a, "out")).map_err(|e| e.to_string())?;
    say(format!("writer id={}", p.id()));
    let mut n = 0u64;
    loop {
        match sub.recv_timeout(Duration::from_secs(60)) {
            Ok(m) => {
                p.send(m.payload()).map_err(|e| format!("echo {n}: {e}"))?;
                n += 1;
            }
            Err(RecvError::Closed) => break,
            Err(e) => return Err(format!("after {n}: {e}")),
        }
    }
    say(format!("echoed={n}"));
    Ok(())
}

type Typed = (u64, String, Vec<u32>);

/// Typed echo: every `(n, s, v)` received on `--in` goes back on `--out` as `(n + 1, s, v)`.
fn echo_typed(a: &Args) -> Result<(), String> {
    let bus = connect()?;
    let mut sub = bus.typed_subscriber::<Typed>(&arg::<String>(a, "in")).map_err(|e| e.to_string())?;
    let mut p = bus.typed_publisher::<Typed>(&arg::<String>(a, "out")).map_err(|e| e.to_string())?;
    loop {
        match sub.recv_timeout(Duration::from_secs(60)) {
            Ok((n, s, v)) => {
                p.send(&(n + 1, s, v)).map_err(|e| e.to_string())?;
            }
            Err(RecvError::Closed) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Reports how `Bus::connect` and opening a subscriber on `--topic` go under this environment.
fn probe(a: &Args) -> Result<(), String> {
    let bus = match Bus::connect() {
        Ok(b) => b,
        Err(e) => {
            say(format!("connect=err {e}"));
            return Ok(());
        }
    };
    say(format!("connect=ok transport={:?}", bus.transport()));
    match bus.subscriber(&arg::<String>(a, "topic")) {
        Ok(s) => say(format!("sub={:?}", s.transport())),
        Err(e) => say(format!("sub=err {e}")),
    }
    Ok(())
}

/// This process's open descriptors as `N=target` words (without the one listing the directory).
fn list_fds() -> String {
    let me = format!("/proc/{}/fd", std::process::id());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd").flatten() {
        let target = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
        if target == me {
            continue;
        }
        out.push(format!("{}={target}", e.file_name().to_string_lossy()));
    }
    out.join(" ")
}

/// Lists its descriptors before and after claiming its pipes, then those a plain child of it inherits.
fn fds() -> Result<(), String> {
    say(format!("before {}", list_fds()));
    say(format!("pipes {}", std::env::var("SHMBUS_PIPES").unwrap_or_default()));
    let _bus = connect()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe).arg("fds-list").stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    say(format!("grandchild {}", line.trim_start_matches("fds ")));
    Ok(())
}

/// Spawns `drain` with a pipe, sends it `--count` messages, then waits to be killed.
fn middle(a: &Args) -> Result<(), String> {
    let count: u64 = arg(a, "count");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["drain", "--topic", "data", "--life", "60"]).stdin(Stdio::null());
    let mut cmd = PipeCommand::new(cmd);
    let mut p = cmd.publish_to_child("data").map_err(|e| e.to_string())?;
    let child = cmd.spawn().map_err(|e| e.to_string())?;
    say(format!("grandchild pid={}", child.id()));
    for i in 0..count {
        p.send(&i.to_le_bytes()).map_err(|e| e.to_string())?;
    }
    say(format!("sent={count}"));
    park()
}

/// Reads until `Closed`; reports how many messages came.
fn drain(a: &Args) -> Result<(), String> {
    let bus = connect()?;
    let mut sub = bus.subscriber(&arg::<String>(a, "topic")).map_err(|e| e.to_string())?;
    let mut n = 0u64;
    loop {
        match sub.recv() {
            Ok(_) => n += 1,
            Err(RecvError::Closed) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    say(format!("closed received={n}"));
    Ok(())
}

/// With SIGPIPE at its default action (death), feeds a `read-few` child until it exits: the library must turn
/// the vanished reader into `Closed`.
/// With `--after true`, restores it only once the publisher exists (no global setting may decide).
fn sigpipe_writer(a: &Args) -> Result<(), String> {
    let after = a.get("after").is_some_and(|v| v == "true");
    let default_sigpipe = || {
        // SAFETY: restoring the default disposition runs no code in signal context.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    };
    if !after {
        default_sigpipe();
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["read-few", "--topic", "data", "--count", &arg::<u64>(a, "count").to_string()]);
    cmd.stdout(Stdio::piped());
    let mut cmd = PipeCommand::new(cmd);
    let mut p = cmd.publish_to_child("data").map_err(|e| e.to_string())?;
    if after {
        default_sigpipe();
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut sent = 0u64;
    let err = loop {
        match p.send_timeout(&[7; 100], Duration::from_secs(30)) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
    };
    let mut child_out = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut child_out).map_err(|e| e.to_string())?;
    }
    let _ = child.wait();
    if err != SendError::Closed {
        return Err(format!("expected Closed, got {err}"));
    }
    say(format!("closed sent={sent} child={}", child_out.trim()));
    Ok(())
}

/// Connects (whatever the outcome: with `SHMBUS_TRANSPORT=shm` and no daemon it fails), spawns a `sleep` that
/// outlives it, reports `sleeper pid=`, and exits: the sleeper must hold none of the pipes handed to this process.
fn spawn_sleeper() -> Result<(), String> {
    let connected = Bus::connect().is_ok();
    let sleeper = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    say(format!("sleeper pid={} connected={connected}", sleeper.id()));
    Ok(())
}

/// With its fd 0 closed, spawns `sink` (stdin null) on a pipe and sends it `--count` messages of stream
/// `--seed`: the child's end must not land on fd 0. The sink reports on the shared stdout.
fn no_stdin(a: &Args) -> Result<(), String> {
    let seed: u64 = arg(a, "seed");
    let count: u64 = arg(a, "count");
    // SAFETY: closing fd 0, which this process does not use; nothing owns it as an OwnedFd.
    unsafe { libc::close(0) };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Command::new(exe);
    c.args(["sink", "--topic", "jobs", "--seed", &seed.to_string(), "--count", &count.to_string()]);
    c.stdin(Stdio::null());
    let mut cmd = PipeCommand::new(c);
    let mut p = cmd.publish_to_child("jobs").map_err(|e| e.to_string())?;
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    for i in 0..count {
        stream::fill(seed, i, &mut buf);
        p.send_timeout(&buf, Duration::from_secs(60)).map_err(|e| format!("message {i}: {e}"))?;
    }
    drop(p);
    let st = child.wait().map_err(|e| e.to_string())?;
    say(format!("sink exited ok={}", st.success()));
    Ok(())
}
