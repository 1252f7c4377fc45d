//! The client against a tiny scripted daemon: a thread that serves the control protocol on a temporary socket
//! and leases a real shared-memory topic made with the daemon's own `Segment`. Proves that the client maps,
//! locks, publishes, subscribes, closes, and re-registers its leases after the connection is lost.

use bus_client::{Bus, OpenError, RecvError, SendError};
use shmbus_os::Access;
use shmbus_proto::frame::{self, FrameReader};
use shmbus_proto::msg::{GeometryWire, LeaseReply, Resume, ResumeToken, Role, SubMode};
use shmbus_proto::{names, ErrorKind, Request, Response, PROTOCOL_VERSION};
use shmbus_ring::Geometry;
use shmbus_shm::{unlink_all, Modes, Segment};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOPIC: &str = "orders";

/// What the fake daemon does with one request.
enum Act {
    Reply(Response),
    /// A lease on the fake's topic, with fresh descriptors of the given data access.
    Lease(LeaseReply, Access),
}

type Handler = Box<dyn FnMut(usize, &Request) -> Act + Send>;

/// Unique shm names per test, unlinked on drop even when the test fails.
struct ShmGuard {
    prefix: String,
}

impl Drop for ShmGuard {
    fn drop(&mut self) {
        unlink_all(&self.prefix, TOPIC);
    }
}

struct Fake {
    path: PathBuf,
    dir: PathBuf,
    segment: Arc<Segment>,
    /// (connection index, request) in arrival order.
    log: Arc<Mutex<Vec<(usize, Request)>>>,
    /// The server side of every accepted connection, to simulate a daemon restart.
    streams: Arc<Mutex<Vec<UnixStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _shm: ShmGuard,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.hang_up();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn geometry() -> Geometry {
    Geometry::new(64, 4096, 64 * 1024, 2, 4, 1)
}

fn wire(g: &Geometry) -> GeometryWire {
    shmbus_shm::geometry_to_wire(g)
}

impl Fake {
    /// Serves `conns` connections, one after the other, answering with the handler `make` builds.
    fn start(conns: usize, make: impl FnOnce(LeaseMaker) -> Handler) -> Fake {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("bct{}x{n}", std::process::id());
        let geo = geometry();
        let shm = ShmGuard { prefix: prefix.clone() };
        unlink_all(&prefix, TOPIC);
        let segment = Arc::new(Segment::create(&prefix, TOPIC, &geo, 1, Modes::default()).expect("create segment"));
        let handler = make(LeaseMaker);
        let dir = std::env::temp_dir().join(format!("bus-client-fake-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (segment, log, streams) = (segment.clone(), log.clone(), streams.clone());
            std::thread::spawn(move || {
                let mut handler = handler;
                for i in 0..conns {
                    let Ok((s, _)) = listener.accept() else { return };
                    streams.lock().unwrap().push(s.try_clone().unwrap());
                    serve(i, &s, &segment, &log, &mut handler);
                }
            })
        };
        Fake { path, dir, segment, log, streams, thread: Some(thread), _shm: shm }
    }

    /// Drops every connection from the daemon's side (as a crash or restart would).
    fn hang_up(&self) {
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn requests(&self) -> Vec<(usize, Request)> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log holds a request matching `f`.
    fn wait_for(&self, what: &str, f: impl Fn(&(usize, Request)) -> bool) {
        self.wait_until(what, |log| log.iter().any(&f));
    }

    /// Waits (bounded) until the log satisfies `f`, and returns it.
    fn wait_until(&self, what: &str, f: impl Fn(&[(usize, Request)]) -> bool) -> Vec<(usize, Request)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.requests();
            if f(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; log: {log:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn lock_held(&self, publisher: bool, slot: u32) -> bool {
        let readers = self.segment.readers_fd().unwrap();
        shmbus_os::is_byte_locked(std::os::fd::AsFd::as_fd(&readers), names::lock_offset(publisher, slot)).unwrap()
    }

    fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// The leases closed on connection `conn`, in order.
fn closes_on(log: &[(usize, Request)], conn: usize) -> Vec<u64> {
    log.iter()
        .filter_map(|(c, r)| if let (true, Request::Close { lease }) = (*c == conn, r) { Some(*lease) } else { None })
        .collect()
}

fn serve(conn: usize, s: &UnixStream, segment: &Segment, log: &Mutex<Vec<(usize, Request)>>, handler: &mut Handler) {
    let mut reader = FrameReader::new();
    let mut buf = [0u8; 4096];
    loop {
        while let Some(req) = reader.next_frame::<Request>().unwrap() {
            log.lock().unwrap().push((conn, req.clone()));
            let (resp, fds) = match handler(conn, &req) {
                Act::Reply(r) => (r, None),
                Act::Lease(l, access) => (Response::Lease(l), Some(segment.lease_fds(access).unwrap())),
            };
            let bytes = frame::encode(&resp).unwrap();
            let sent = match &fds {
                Some((d, r)) => shmbus_os::send_with_fds(s.as_fd(), &bytes, &[d.as_fd(), r.as_fd()]),
                None => shmbus_os::send_with_fds(s.as_fd(), &bytes, &[]),
            };
            if sent.is_err() {
                return;
            }
        }
        match shmbus_os::recv_with_fds(s.as_fd(), &mut buf) {
            Ok((0, _)) | Err(_) => return,
            Ok((n, _)) => reader.push(&buf[..n]),
        }
    }
}

fn hello() -> Response {
    Response::Hello { protocol: PROTOCOL_VERSION, layout: shmbus_ring::LAYOUT_VERSION, daemon: "fake".into() }
}

/// The resume token the fake grants every lease with; the client must send it back when it resumes.
const FAKE_TOKEN: ResumeToken = ResumeToken([7; 16]);

/// Builds lease replies for the fake's topic.
struct LeaseMaker;

impl LeaseMaker {
    fn lease(&self, lease: u64, role: Role, generation: u64) -> LeaseReply {
        let (publisher, slot) = match role {
            Role::Publisher { slot } => (true, slot),
            Role::Subscriber { slot, .. } => (false, slot),
        };
        LeaseReply {
            lease,
            topic: TOPIC.into(),
            generation,
            geometry: wire(&geometry()),
            role,
            lock_offset: names::lock_offset(publisher, slot),
            resume_token: FAKE_TOKEN,
        }
    }
}

/// A daemon that grants publisher slot 0 and lossless subscriber slot 0 (lease ids from 1; resumed leases get
/// ids above 100) for a topic of generation 1, or `later_generation` on later connections (a recreated topic).
fn simple_fake(conns: usize, later_generation: u64) -> Fake {
    Fake::start(conns, move |mk| {
        let mut next = 1u64;
        Box::new(move |conn, req| {
            let generation = if conn == 0 { 1 } else { later_generation };
            let mut id = |resume: &Option<Resume>| {
                next += 1;
                if resume.is_some() {
                    100 + next
                } else {
                    next - 1
                }
            };
            match req {
                Request::Hello { .. } => Act::Reply(hello()),
                Request::OpenPublisher { resume, .. } => {
                    Act::Lease(mk.lease(id(resume), Role::Publisher { slot: 0 }, generation), Access::ReadWrite)
                }
                Request::OpenSubscriber { mode: SubMode::Lossless, resume, .. } => {
                    let role = Role::Subscriber { slot: 0, group: None };
                    Act::Lease(mk.lease(id(resume), role, generation), Access::ReadOnly)
                }
                Request::OpenSubscriber { .. } => {
                    Act::Reply(Response::Error { kind: ErrorKind::NoFreeSlot, message: "only lossless here".into() })
                }
                Request::Close { .. } => Act::Reply(Response::Done),
                Request::ListTopics => Act::Reply(Response::Topics(vec![])),
                Request::ListTopicsPage { .. } => Act::Reply(Response::TopicsPage { topics: vec![], more: false }),
                _ => Act::Reply(Response::Error { kind: ErrorKind::NoSuchTopic, message: "nothing here".into() }),
            }
        })
    })
}

#[test]
fn maps_locks_publishes_subscribes_and_closes() {
    let fake = simple_fake(1, 1);
    let bus = Bus::builder().socket(&fake.path).auto_reconnect(false).connect().expect("connect");
    assert_eq!(bus.daemon().as_deref(), Some("fake"));

    let mut sub = bus.subscriber(TOPIC).expect("subscriber");
    let mut p = bus.publisher(TOPIC).expect("publisher");
    assert!(fake.lock_held(true, 0), "the publisher holds its lease lock");
    assert!(fake.lock_held(false, 0), "the subscriber holds its lease lock");
    assert_eq!(p.id(), 0);

    let seq = p.send(b"hello").unwrap();
    let m = sub.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((m.payload(), m.seq(), m.publisher()), (&b"hello"[..], seq, 0));
    assert!(m.timestamp() > 0);
    drop(m);

    p.send_value(&(7u32, "typed".to_string())).unwrap();
    assert_eq!(sub.recv_value::<(u32, String)>().unwrap(), (7, "typed".to_string()));

    let mut loan = p.loan(5).unwrap();
    loan.copy_from_slice(b"loan!");
    loan.commit();
    assert_eq!(sub.recv_timeout(Duration::from_secs(5)).unwrap().payload(), b"loan!");
    assert_eq!(sub.try_recv().unwrap_err(), RecvError::Empty);
    assert_eq!(
        p.try_send(&vec![0u8; 5000]).unwrap_err(),
        SendError::TooLarge { len: 5000, max: 4096 },
        "the topic's maximum comes from the leased geometry"
    );

    // Errors from the daemon are typed.
    let e = bus.subscriber_builder(TOPIC).lossy().open().unwrap_err();
    assert!(matches!(e, OpenError::NoFreeSlot(_)), "{e:?}");
    assert!(matches!(bus.publisher("bad/name").unwrap_err(), OpenError::InvalidTopic(_)));
    assert!(bus.topics().unwrap().is_empty());

    drop(p);
    assert!(!fake.lock_held(true, 0), "dropping the publisher releases its lock");
    drop(sub);
    assert!(!fake.lock_held(false, 0));
    drop(bus);
    // Dropping does not wait for the daemon: the Closes follow from the background, the bus's connection kept
    // open until they are sent.
    let log = fake.wait_until("both closes", |log| closes_on(log, 0).len() == 2);
    fake.join();

    let reqs: Vec<&Request> = log.iter().map(|(_, r)| r).collect();
    assert!(matches!(reqs[0], Request::Hello { protocol: PROTOCOL_VERSION, .. }), "{reqs:?}");
    assert!(matches!(
        reqs[1],
        Request::OpenSubscriber { mode: SubMode::Lossless, from_oldest: false, resume: None, .. }
    ));
    assert!(matches!(reqs[2], Request::OpenPublisher { payload_type: None, resume: None, .. }));
    let closes: Vec<u64> =
        reqs.iter().filter_map(|r| if let Request::Close { lease } = r { Some(*lease) } else { None }).collect();
    assert_eq!(closes, vec![2, 1], "publisher (lease 2) then subscriber (lease 1) closed");
}

#[test]
fn reconnects_and_resumes_leases_after_the_daemon_restarts() {
    let fake = simple_fake(2, 1);
    let bus = Bus::connect_to(&fake.path).expect("connect");
    let mut sub = bus.subscriber(TOPIC).unwrap();
    let mut p = bus.publisher(TOPIC).unwrap();
    p.send(b"before").unwrap();

    fake.hang_up();
    // The data path does not need the daemon.
    p.send(b"during").unwrap();
    assert_eq!(sub.recv_timeout(Duration::from_secs(5)).unwrap().payload(), b"before");
    assert_eq!(sub.recv_timeout(Duration::from_secs(5)).unwrap().payload(), b"during");

    fake.wait_for("the publisher's resume", |(c, r)| {
        *c == 1
            && matches!(
                r,
                Request::OpenPublisher { resume: Some(Resume { generation: 1, slot: 0, token: FAKE_TOKEN }), .. }
            )
    });
    fake.wait_for("the subscriber's resume", |(c, r)| {
        *c == 1
            && matches!(
                r,
                Request::OpenSubscriber { resume: Some(Resume { generation: 1, slot: 0, token: FAKE_TOKEN }), .. }
            )
    });
    p.send(b"after").unwrap();
    assert_eq!(sub.recv_timeout(Duration::from_secs(5)).unwrap().payload(), b"after");
    assert!(!p.is_closed() && !sub.is_closed());

    drop(p);
    drop(sub);
    drop(bus);
    // The Closes come from the background (dropping does not wait for the daemon).
    let log = fake.wait_until("both closes on the second connection", |log| closes_on(log, 1).len() == 2);
    fake.hang_up();
    fake.join();
    let second: Vec<&Request> = log.iter().filter(|(c, _)| *c == 1).map(|(_, r)| r).collect();
    assert!(matches!(second[0], Request::Hello { .. }), "{second:?}");
    let closes: Vec<u64> =
        second.iter().filter_map(|r| if let Request::Close { lease } = r { Some(*lease) } else { None }).collect();
    assert_eq!(closes.len(), 2, "both handles closed their new leases: {second:?}");
    assert!(closes.iter().all(|&l| l > 100), "the resumed lease ids replaced the old ones: {closes:?}");
}

#[test]
fn a_recreated_topic_closes_the_handle_on_resume() {
    // On the second connection the topic has another generation: the lease cannot be resumed.
    let fake = simple_fake(2, 2);
    let bus = Bus::connect_to(&fake.path).expect("connect");
    let mut p = bus.publisher(TOPIC).unwrap();
    fake.hang_up();
    fake.wait_for("the resume", |(c, r)| *c == 1 && matches!(r, Request::OpenPublisher { resume: Some(_), .. }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.is_closed() {
        assert!(Instant::now() < deadline, "the handle was not closed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(p.send(b"x").unwrap_err(), SendError::Closed);
    // The lease the daemon granted for the new generation was given back at once.
    fake.wait_for("the close of the unusable lease", |(c, r)| *c == 1 && matches!(r, Request::Close { .. }));
    drop(p);
    drop(bus);
    fake.hang_up();
    fake.join();
}

/// A test double hands over memory objects no real daemon would: one writable by its group, and (as root, with
/// fchown) one owned by another user. The client refuses both before mapping, and holds no lease lock.
#[test]
fn objects_group_writable_or_of_another_owner_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let fake = simple_fake(1, 1);
    let (data, _) = fake.segment.lease_fds(Access::ReadWrite).unwrap();
    std::fs::File::from(data).set_permissions(std::fs::Permissions::from_mode(0o660)).unwrap();
    let bus = Bus::builder().socket(&fake.path).auto_reconnect(false).connect().expect("connect");
    let e = bus.publisher(TOPIC).unwrap_err();
    assert!(matches!(e, OpenError::UntrustedObject(ref m) if m.contains("data object") && m.contains("0660")), "{e}");
    assert!(!fake.lock_held(true, 0), "nothing was mapped or locked");
    drop(bus);
    fake.join();

    if shmbus_proto::trust::own_uid() != 0 {
        println!("skipped the object owned by nobody: fchown needs root");
        return;
    }
    let fake = simple_fake(1, 1);
    std::os::unix::fs::fchown(fake.segment.readers_fd().unwrap(), Some(65534), None).unwrap();
    let bus = Bus::builder().socket(&fake.path).auto_reconnect(false).connect().expect("connect");
    let e = bus.subscriber(TOPIC).unwrap_err();
    let want = "the readers object is owned by uid 65534, the daemon runs as uid 0";
    assert!(matches!(e, OpenError::UntrustedObject(ref m) if m == want), "{e}");
    assert!(!fake.lock_held(false, 0), "nothing was mapped or locked");
    drop(bus);
    fake.join();
}

rusty_fork::rusty_fork_test! {
    #![rusty_fork(timeout_ms = 60_000)]

    /// Runs in a process of its own (rusty-fork re-runs this binary for this test alone): the child inherits
    /// every descriptor of the process, so in the shared test process it would hold other tests' control
    /// connections and lease locks open, and it runs library code (send, drop) that is only safe after `fork`
    /// when no other thread can hold a lock.
    #[test]
    fn a_forked_child_neither_uses_nor_releases_the_parents_lease() {
        let fake = simple_fake(1, 1);
        let bus = Bus::builder().socket(&fake.path).auto_reconnect(false).connect().expect("connect");
        let mut p = bus.publisher(TOPIC).unwrap();
        // SAFETY: the child only checks the handle, drops it and exits without unwinding.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = match p.send(b"from the child") {
                Err(SendError::Forked) => 0,
                _ => 1,
            };
            drop(p);
            // SAFETY: ends the child without running the parent's test harness again.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child saw Forked (status {status})");
        assert!(fake.lock_held(true, 0), "the child's drop left the parent's lock alone");
        p.send(b"parent").unwrap();
        assert!(bus.topics().is_ok(), "the parent's control connection is intact");
        assert!(!fake.requests().iter().any(|(_, r)| matches!(r, Request::Close { .. })), "the child sent no Close");
        drop(p);
        drop(bus);
        fake.join();
    }
}
