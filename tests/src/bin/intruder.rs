//! A hostile subscriber for the issue-16 tests, run as another user (`nobody`):
//!
//! `intruder group-resume <socket> <prefix> <topic>` joins group `g` of `<topic>`, writes group index 199 into its
//! own slot's flags in the readers object (through the descriptor the lease gave it), then, on a second
//! connection, takes a plain lossy lease and re-registers its slot as a member of a group the daemon does not
//! know yet, so the daemon reads the forged index back. Prints what the daemon answered and exits, leaving the
//! second connection's lease for the daemon to release.

use bus_client::Bus;
use shmbus_proto::frame::{self, FrameReader};
use shmbus_proto::msg::{Request, Response, Resume, SubMode, PROTOCOL_VERSION};
use std::os::fd::AsFd;
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
        _ => {
            eprintln!("usage: intruder group-resume <socket> <prefix> <topic>");
            std::process::exit(2);
        }
    }
}

/// One raw request and its reply (`None`: the daemon closed the connection).
fn ask(s: &UnixStream, reader: &mut FrameReader, req: &Request) -> Option<Response> {
    shmbus_os::send_with_fds(s.as_fd(), &frame::encode(req).unwrap(), &[]).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Ok(Some(r)) = reader.next_frame::<Response>() {
            return Some(r);
        }
        let (n, _fds) = shmbus_os::recv_with_fds(s.as_fd(), &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reader.push(&buf[..n]);
    }
}

fn group_resume(socket: &str, prefix: &str, topic: &str) {
    let bus = Bus::connect_to(socket).expect("connect");
    let sub = bus.subscriber_builder(topic).group("g").open().expect("join group g");
    let slot = sub.slot();
    let generation = bus.topics().unwrap().iter().find(|t| t.name == topic).expect("topic listed").generation;
    // The readers object through the descriptor this process holds.
    let want = format!("/dev/shm{}", shmbus_proto::names::readers_object(prefix, topic));
    let fd = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == want))
        .expect("the lease's readers descriptor");
    let n: i32 = fd.file_name().to_string_lossy().parse().unwrap();
    // Used in place, not reopened (the object is root's 0600: only the descriptor grants access).
    // SAFETY: `n` is a descriptor this process holds open (the subscriber keeps it) for the rest of this
    // function; ManuallyDrop never closes it.
    let readers = std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(n) });
    let off = READERS_SUB_SLOTS + LINE * slot as u64 + S_FLAGS;
    let mut w = [0u8; 8];
    readers.read_exact_at(&mut w, off).unwrap();
    let flags = u64::from_ne_bytes(w) & !(0xff << FLAG_GROUP_SHIFT) | (200 << FLAG_GROUP_SHIFT);
    readers.write_all_at(&flags.to_ne_bytes(), off).unwrap();

    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reader = FrameReader::new();
    let hello =
        Request::Hello { protocol: PROTOCOL_VERSION, layout: shmbus_ring::LAYOUT_VERSION, client: "intruder".into() };
    println!("hello: {:?}", ask(&s, &mut reader, &hello).map(|r| matches!(r, Response::Hello { .. })));
    let lossy = Request::OpenSubscriber {
        topic: topic.into(),
        mode: SubMode::Lossy,
        from_oldest: false,
        payload_type: None,
        resume: None,
    };
    println!("lossy: {:?}", ask(&s, &mut reader, &lossy).map(|r| matches!(r, Response::Lease(_))));
    let resume = Request::OpenSubscriber {
        topic: topic.into(),
        mode: SubMode::Group { name: "h".into() },
        from_oldest: false,
        payload_type: None,
        resume: Some(Resume { generation, slot }),
    };
    match ask(&s, &mut reader, &resume) {
        Some(r) => println!("resume answered: {}", matches!(r, Response::Lease(_) | Response::Error { .. })),
        None => println!("resume: the daemon closed the connection"),
    }
    drop(sub);
}
