//! A tiny client that speaks the control protocol directly, to send what `bus-client` never would (the tests run
//! it as `nobody` to attack a root daemon).
//!
//! `raw-client SOCKET CLIENT_NAME KIND TOPIC [ARG...]` sends `Hello` with `CLIENT_NAME`, then one lossy
//! `OpenSubscriber`:
//! * `resume TOPIC GENERATION SLOT`: re-registers subscriber slot `SLOT` of generation `GENERATION` with an
//!   all-zero resume token (the attacker does not know the owner's);
//! * `typed TOPIC TYPE_NAME`: a typed subscriber with payload type `TYPE_NAME` (hash 1);
//! * `group TOPIC GROUP_NAME`: a member of group `GROUP_NAME`;
//! * `flood TOPICS CONNS N` (issue 16 item 3): on each of `CONNS` connections, pipelines `N` pairs of a lossy
//!   `OpenSubscriber` (on the comma-separated `TOPICS` in turn) and a `Close` of the lease id it guesses (ids
//!   count up from 1), and never reads a reply; prints `flooded` once every request was written or the daemon
//!   stopped taking them.
//! * `late-group TOPIC GID`: connects once, then joins supplementary group `GID` (setgroups: run it with
//!   CAP_SETGID, e.g. as an ambient capability), connects again, prints `connected`, then greets on both and
//!   prints `before ANSWER` and `after ANSWER` for a lossy `OpenSubscriber` on each (the tests stop the daemon
//!   meanwhile, so it reads the credentials after the change).
//!
//! Prints `granted` or `refused KIND: MESSAGE` (or `hello refused ...`), then holds the connection (and so the
//! lease) until its standard input closes.
use shmbus_proto::frame::{self, FrameReader};
use shmbus_proto::msg::{Resume, ResumeToken, SubMode, TypeInfo};
use shmbus_proto::{Request, Response, PROTOCOL_VERSION};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn reply(s: &mut UnixStream, r: &mut FrameReader) -> Response {
    loop {
        if let Some(resp) = r.next_frame::<Response>().expect("a well-formed reply") {
            return resp;
        }
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).expect("read a reply");
        assert!(n > 0, "the daemon closed the connection");
        r.push(&b[..n]);
    }
}

/// Connects and greets as `client`; `None` (after printing why) when the daemon refuses the hello.
fn greet(socket: &str, client: &str) -> Option<(UnixStream, FrameReader)> {
    hello(UnixStream::connect(socket).expect("connect"), client)
}

/// Greets as `client` on the connected `s`; `None` (after printing why) when the daemon refuses the hello.
fn hello(mut s: UnixStream, client: &str) -> Option<(UnixStream, FrameReader)> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = FrameReader::new();
    let hello =
        Request::Hello { protocol: PROTOCOL_VERSION, layout: shmbus_ring::LAYOUT_VERSION, client: client.into() };
    s.write_all(&frame::encode(&hello).unwrap()).unwrap();
    match reply(&mut s, &mut r) {
        Response::Hello { .. } => Some((s, r)),
        Response::Error { kind, message } => {
            println!("hello refused {kind:?}: {message}");
            None
        }
        other => panic!("unexpected reply to hello: {other:?}"),
    }
}

/// The `flood` mode: requests pipelined on `conns` connections, no reply read; holds them until stdin closes.
fn flood(socket: &str, client: &str, topics: &str, conns: usize, n: u64) {
    let topics: Vec<String> = topics.split(',').map(String::from).collect();
    let streams: Vec<UnixStream> = (0..conns).filter_map(|_| greet(socket, client)).map(|(s, _)| s).collect();
    let writers: Vec<_> = streams
        .iter()
        .enumerate()
        .map(|(c, s)| {
            let mut s = s.try_clone().unwrap();
            let topics = topics.clone();
            std::thread::spawn(move || {
                // A daemon that stops reading must not hold the attacker for ever.
                s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
                for i in 0..n {
                    let topic = topics[(i as usize + c) % topics.len()].clone();
                    let open = Request::OpenSubscriber {
                        topic,
                        mode: SubMode::Lossy,
                        from_oldest: false,
                        payload_type: None,
                        resume: None,
                    };
                    let close = Request::Close { lease: i * conns as u64 + c as u64 + 1 };
                    let mut bytes = frame::encode(&open).unwrap();
                    bytes.extend(frame::encode(&close).unwrap());
                    if s.write_all(&bytes).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
    println!("flooded");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(streams);
}

/// A lossy `OpenSubscriber` on `topic`: `granted` or `refused KIND: MESSAGE`.
fn subscribe(s: &mut UnixStream, r: &mut FrameReader, topic: &str) -> String {
    let open = Request::OpenSubscriber {
        topic: topic.into(),
        mode: SubMode::Lossy,
        from_oldest: false,
        payload_type: None,
        resume: None,
    };
    s.write_all(&frame::encode(&open).unwrap()).unwrap();
    match reply(s, r) {
        Response::Lease(_) => "granted".into(),
        Response::Error { kind, message } => format!("refused {kind:?}: {message}"),
        other => panic!("unexpected reply to open: {other:?}"),
    }
}

/// The `late-group` mode: one connection made before joining group `gid`, one after.
fn late_group(socket: &str, client: &str, topic: &str, gid: u32) {
    let before = UnixStream::connect(socket).expect("connect before");
    let groups = [gid as libc::gid_t];
    // SAFETY: `groups` is a valid array of one gid for the duration of the call; this process is single-threaded.
    let r = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    assert_eq!(r, 0, "setgroups: {}", std::io::Error::last_os_error());
    let after = UnixStream::connect(socket).expect("connect after");
    println!("connected");
    std::io::stdout().flush().unwrap();
    for (name, s) in [("before", before), ("after", after)] {
        let Some((mut s, mut r)) = hello(s, client) else { return };
        println!("{name} {}", subscribe(&mut s, &mut r, topic));
    }
    std::io::stdout().flush().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (socket, client, kind, topic) = (&args[1], &args[2], &args[3], &args[4]);
    if kind == "late-group" {
        return late_group(socket, client, topic, args[5].parse().expect("gid"));
    }
    if kind == "flood" {
        return flood(socket, client, topic, args[5].parse().expect("conns"), args[6].parse().expect("n"));
    }
    let Some((mut s, mut r)) = greet(socket, client) else { return };
    let (mut mode, mut payload_type, mut resume) = (SubMode::Lossy, None, None);
    match kind.as_str() {
        "resume" => {
            let (generation, slot) = (args[5].parse().expect("generation"), args[6].parse().expect("slot"));
            resume = Some(Resume { generation, slot, token: ResumeToken::default() });
        }
        "typed" => payload_type = Some(TypeInfo { name: args[5].clone(), hash: 1 }),
        "group" => mode = SubMode::Group { name: args[5].clone() },
        other => panic!("unknown kind {other}"),
    }
    let open = Request::OpenSubscriber { topic: topic.clone(), mode, from_oldest: false, payload_type, resume };
    s.write_all(&frame::encode(&open).unwrap()).unwrap();
    match reply(&mut s, &mut r) {
        Response::Lease(_) => println!("granted"),
        Response::Error { kind, message } => println!("refused {kind:?}: {message}"),
        other => panic!("unexpected reply to open: {other:?}"),
    }
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
