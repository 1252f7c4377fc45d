//! A hostile subscriber for the issue-16 tests, run as another user (`nobody`):
//!
//! `intruder group-resume <socket> <prefix> <topic>` joins group `g` of `<topic>` over the raw protocol (holding
//! the lease lock like a real client, and keeping the lease's resume token), writes group index 199 into its own
//! slot's flags in the readers object (through the descriptor the lease gave it), then, on a second connection,
//! takes a plain lossy lease and re-registers its slot, with its own valid token, as a member of a group the
//! daemon does not know yet, so the daemon reads the forged index back. Prints what the daemon answered and
//! exits, leaving the leases for the daemon to release.
//!
//! `intruder lock-all <socket> <topic>` (issue 16 item 5) takes a lossy lease, closes its connection and keeps
//! trying to lock every lease byte of the topic's publisher and subscriber slots through the readers descriptor,
//! printing `holding N` each time it holds more; it runs until killed (or 120 s).
//!
//! `intruder probe <socket> <prefix> <topic>` (the threat model of ARCHITECTURE.md §9.6) tries the topic's
//! objects directly (`open data: …`, `open readers: …`), then a lossy lease (`lease: granted` or `lease: refused
//! KIND`), and with a lease tries to write the data object through its descriptor (`write data: …`) and to
//! reopen that descriptor read-write through /proc (`reopen data: …`). Each line ends `denied` or `ALLOWED`.
//!
//! `intruder truncate <socket> <topic>` (issue 9 hole 6) takes a publisher lease over the raw protocol and
//! truncates both objects of the topic to zero through the lease's descriptors (`truncated` when done).
//!
//! `intruder hold-loan <socket> <topic>` is the victim, run as root: a publisher that takes a loan (a claimed,
//! unpublished entry), prints `claimed` and waits to be killed (or 120 s).

use shmbus_proto::frame::{self, FrameReader};
use shmbus_proto::msg::{Request, Response, Resume, SubMode, PROTOCOL_VERSION};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Ring layout, mirrored from `crates/ring/src/layout.rs`: subscriber slots start at line 6 of the readers object,
/// one line each; the flags word is the second; the group (index + 1) sits in bits 8..16.
const LINE: u64 = 128;
const READERS_SUB_SLOTS: u64 = 6 * LINE;
const S_FLAGS: u64 = 8;
const FLAG_GROUP_SHIFT: u32 = 8;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("group-resume") => group_resume(&args[2], &args[3], &args[4]),
        Some("lock-all") => lock_all(&args[2], &args[3]),
        Some("hold-loan") => hold_loan(&args[2], &args[3]),
        Some("probe") => probe(&args[2], &args[3], &args[4]),
        Some("truncate") => truncate(&args[2], &args[3]),
        _ => {
            eprintln!("usage: intruder group-resume <socket> <prefix> <topic> | lock-all <socket> <topic> | hold-loan <socket> <topic>");
            std::process::exit(2);
        }
    }
}

/// One raw request and its reply with the descriptors it carried (`None`: the daemon closed the connection).
fn ask_fds(s: &UnixStream, reader: &mut FrameReader, req: &Request) -> Option<(Response, Vec<OwnedFd>)> {
    shmbus_os::send_with_fds(s.as_fd(), &frame::encode(req).unwrap(), &[]).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    loop {
        if let Ok(Some(r)) = reader.next_frame::<Response>() {
            return Some((r, got));
        }
        let (n, fds) = shmbus_os::recv_with_fds(s.as_fd(), &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend(fds);
        reader.push(&buf[..n]);
    }
}

/// One raw request and its reply (`None`: the daemon closed the connection).
fn ask(s: &UnixStream, reader: &mut FrameReader, req: &Request) -> Option<Response> {
    ask_fds(s, reader, req).map(|(r, _)| r)
}

/// A greeted raw connection.
fn connect(socket: &str) -> (UnixStream, FrameReader) {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reader = FrameReader::new();
    let hello =
        Request::Hello { protocol: PROTOCOL_VERSION, layout: shmbus_ring::LAYOUT_VERSION, client: "intruder".into() };
    println!("hello: {:?}", ask(&s, &mut reader, &hello).map(|r| matches!(r, Response::Hello { .. })));
    (s, reader)
}

fn group_resume(socket: &str, _prefix: &str, topic: &str) {
    // Join group `g` as a real client would: the lease, its descriptors, its lease lock, its resume token.
    let (first, mut first_reader) = connect(socket);
    let join = Request::OpenSubscriber {
        topic: topic.into(),
        mode: SubMode::Group { name: "g".into() },
        from_oldest: false,
        payload_type: None,
        resume: None,
    };
    let Some((Response::Lease(lease), fds)) = ask_fds(&first, &mut first_reader, &join) else {
        panic!("joining group g was refused");
    };
    let mut fds = fds.into_iter();
    let data = fds.next().expect("the data descriptor");
    let readers = std::fs::File::from(fds.next().expect("the readers descriptor"));
    assert!(shmbus_os::try_lock_byte(readers.as_fd(), lease.lock_offset).unwrap(), "the lease lock is ours");
    let (slot, group) = match lease.role {
        shmbus_proto::msg::Role::Subscriber { slot, group: Some(g) } => (slot, g),
        other => panic!("asked for a group member lease, got {other:?}"),
    };
    // Attach in shared memory as the library would, so the slot is an active member the daemon reads back.
    let geo = shmbus_shm::geometry_from_wire(&lease.geometry).expect("geometry");
    let topic_ring = shmbus_shm::map_topic(
        data.as_fd(),
        readers.as_fd(),
        shmbus_os::Access::ReadOnly,
        Some((&geo, lease.generation)),
    )
    .expect("map the topic");
    let opts = shmbus_ring::SubscriberOptions { mode: shmbus_ring::Mode::Group(group as usize), ..Default::default() };
    let member = shmbus_ring::Subscriber::attach(
        &topic_ring,
        slot as usize,
        opts,
        std::sync::Arc::new(shmbus_ring::PollWaiter),
        &|_| false,
    )
    .expect("attach as a member");
    // Forge the group index in our own slot, through the descriptor the lease gave us.
    let off = READERS_SUB_SLOTS + LINE * slot as u64 + S_FLAGS;
    let mut w = [0u8; 8];
    readers.read_exact_at(&mut w, off).unwrap();
    let flags = u64::from_ne_bytes(w) & !(0xff << FLAG_GROUP_SHIFT) | (200 << FLAG_GROUP_SHIFT);
    readers.write_all_at(&flags.to_ne_bytes(), off).unwrap();

    let (s, mut reader) = connect(socket);
    println!("lossy: {:?}", ask(&s, &mut reader, &lossy(topic)).map(|r| matches!(r, Response::Lease(_))));
    // Re-register our own slot, with our own valid token, as a member of a group the daemon does not know.
    let resume = Request::OpenSubscriber {
        topic: topic.into(),
        mode: SubMode::Group { name: "h".into() },
        from_oldest: false,
        payload_type: None,
        resume: Some(Resume { generation: lease.generation, slot, token: lease.resume_token }),
    };
    match ask(&s, &mut reader, &resume) {
        Some(r) => println!("resume answered: {}", matches!(r, Response::Lease(_) | Response::Error { .. })),
        None => println!("resume: the daemon closed the connection"),
    }
    drop((member, first, readers));
}

/// A plain lossy `OpenSubscriber` of `topic`.
fn lossy(topic: &str) -> Request {
    Request::OpenSubscriber {
        topic: topic.into(),
        mode: SubMode::Lossy,
        from_oldest: false,
        payload_type: None,
        resume: None,
    }
}

fn lock_all(socket: &str, topic: &str) {
    let (s, mut reader) = connect(socket);
    let Some((Response::Lease(lease), fds)) = ask_fds(&s, &mut reader, &lossy(topic)) else {
        panic!("a lossy lease was refused");
    };
    drop((s, reader));
    let readers = fds.into_iter().nth(1).expect("the readers descriptor");
    let geo = shmbus_shm::geometry_from_wire(&lease.geometry).expect("geometry");
    let offsets: Vec<u64> = (0..geo.max_publishers)
        .map(|p| shmbus_proto::names::lock_offset(true, p))
        .chain((0..geo.max_subscribers).map(|s| shmbus_proto::names::lock_offset(false, s)))
        .collect();
    let mut held = vec![false; offsets.len()];
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut said = usize::MAX;
    while std::time::Instant::now() < deadline {
        for (h, &off) in held.iter_mut().zip(&offsets) {
            *h = *h || shmbus_os::try_lock_byte(readers.as_fd(), off).unwrap_or(false);
        }
        let n = held.iter().filter(|h| **h).count();
        if n != said {
            println!("holding {n} of {}", offsets.len());
            said = n;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn hold_loan(socket: &str, topic: &str) {
    let bus = bus_client::Bus::connect_to(socket).expect("connect");
    let mut p = bus.publisher(topic).expect("a publisher lease");
    let _loan = p.loan(8).expect("a loan");
    println!("claimed");
    std::thread::sleep(Duration::from_secs(120));
}

fn verdict<T, E>(r: &Result<T, E>) -> &'static str {
    if r.is_ok() {
        "ALLOWED"
    } else {
        "denied"
    }
}

fn probe(socket: &str, prefix: &str, topic: &str) {
    for (what, name) in [
        ("data", shmbus_proto::names::data_object(prefix, topic)),
        ("readers", shmbus_proto::names::readers_object(prefix, topic)),
    ] {
        let path = format!("/dev/shm/{}", name.trim_start_matches('/'));
        println!("open {what}: {}", verdict(&std::fs::File::open(&path)));
    }
    let (s, mut reader) = connect(socket);
    match ask_fds(&s, &mut reader, &lossy(topic)) {
        Some((Response::Lease(_), fds)) => {
            println!("lease: granted");
            let data = std::fs::File::from(fds.into_iter().next().expect("the data descriptor"));
            println!("write data: {}", verdict(&data.write_all_at(b"forged", 0)));
            let again = std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{}", {
                use std::os::fd::AsRawFd;
                data.as_raw_fd()
            }));
            println!("reopen data: {}", verdict(&again));
        }
        Some((Response::Error { kind, .. }, _)) => println!("lease: refused {kind:?}"),
        other => println!("lease: unexpected {:?}", other.map(|(r, _)| r)),
    }
}

fn truncate(socket: &str, topic: &str) {
    let (s, mut reader) = connect(socket);
    let open = Request::OpenPublisher { topic: topic.into(), payload_type: None, resume: None };
    let Some((Response::Lease(_), fds)) = ask_fds(&s, &mut reader, &open) else {
        panic!("a publisher lease was refused");
    };
    for fd in fds {
        std::fs::File::from(fd).set_len(0).expect("truncate an object through the lease's descriptor");
    }
    println!("truncated");
}
