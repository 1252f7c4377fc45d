//! A second user against the daemon's own resources (issue 16): replies left unread to exhaust the descriptors
//! in flight (item 3), and the metrics port taken or held idle (item 12). The attackers run as `nobody`.

use shmbus_tests::daemon::{binary, TestDaemon};
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use shmbus_tests::kid::Kid;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The hang guard: a bound on waits that should end at once, never asserted on as a speed.
const HANG: Duration = Duration::from_secs(10);

fn as_nobody(name: &str, args: &[&str]) -> Kid {
    let mut c = Command::new(binary(name));
    c.args(args).uid(NOBODY).gid(NOBODY);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    Kid::watch(name, c.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}")))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Item 3. The daemon runs as the unit runs it, without capabilities, so descriptors in unread replies count
/// against its RLIMIT_NOFILE (256 here). nobody pipelines 300 Open/Close pairs on each of 4 connections and reads
/// nothing: with one outstanding reply per connection at most a few descriptors are in flight, root still opens
/// a publisher and a subscriber and exchanges a message, the daemon's descriptor count stays bounded, and the
/// attacker's connections are closed once a reply stayed unread for the request timeout.
#[test]
fn unread_replies_do_not_exhaust_the_daemons_descriptors() {
    if !root_or_skip("unread_replies_do_not_exhaust_the_daemons_descriptors") {
        return;
    }
    let config = "[daemon]\nrequest_timeout_ms = 2000\n\n[defaults]\nmax_subscribers = 256\n\n\
                  [[topic]]\nname = \"flood-a\"\n\n[[topic]]\nname = \"flood-b\"\n";
    let wrap = ["prlimit", "--nofile=256:256", "setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"];
    let d = TestDaemon::start_wrapped(Some(config), &wrap);
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pid = d.pid().expect("daemon pid");
    let before = open_fds(pid);
    let socket = d.socket.to_str().unwrap();
    let mut flood = as_nobody("raw-client", &[socket, "flood", "flood", "flood-a,flood-b", "4", "300"]);
    assert_eq!(flood.line("flooded"), "flooded");
    // Without the bound the daemon has answered every request by now (its replies are small).
    std::thread::sleep(Duration::from_millis(500));
    let during = open_fds(pid);
    let bus = d.bus();
    let mut p = bus.publisher("dos-3-chat").expect("root opens a publisher");
    let mut s = bus.subscriber("dos-3-chat").expect("root opens a subscriber");
    p.send(b"still here").unwrap();
    assert_eq!(s.recv_timeout(HANG).expect("root's message").payload(), b"still here");
    assert!(during <= before + 16, "the daemon's descriptors went from {before} to {during}");
    d.eventually("the attacker's connections were not closed", || d.log().contains("a reply was left unread"));
    drop((p, s, bus, flood));
}

/// Item 12, the port taken: nobody binds the metrics port first; the daemon starts anyway, logs that metrics
/// are off and says so in `STATUS=`, and serves clients.
#[test]
fn a_taken_metrics_port_does_not_stop_the_daemon() {
    if !root_or_skip("a_taken_metrics_port_does_not_stop_the_daemon") {
        return;
    }
    let mut squatter = as_nobody("port-squatter", &[]);
    let port = squatter.line("port ").trim_start_matches("port ").to_string();
    let notify_dir = std::env::temp_dir().join(format!("shmbus-dos12-{}", std::process::id()));
    std::fs::create_dir_all(&notify_dir).unwrap();
    let notify_path = notify_dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let config = format!("[daemon]\nmetrics = \"127.0.0.1:{port}\"\n");
    let d = TestDaemon::start_with_env(Some(&config), &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())]);
    let _ = std::fs::remove_dir_all(&notify_dir);
    d.eventually("the daemon did not say metrics are off", || d.log().contains("running without metrics"));
    notify.set_read_timeout(Some(HANG)).unwrap();
    let mut buf = [0u8; 4096];
    let ready = loop {
        let n = notify.recv(&mut buf).expect("READY=1 from the daemon");
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        if msg.lines().any(|l| l == "READY=1") {
            break msg;
        }
    };
    assert!(ready.contains("STATUS=") && ready.contains("metrics off"), "{ready}");
    let bus = d.bus();
    let mut p = bus.publisher("dos-12-up").expect("the daemon serves clients");
    p.send(b"up").unwrap();
    drop(squatter);
}

/// Item 12, idle connections: eight connections that never send a request do not hold up a scrape beyond the
/// hang guard (served one after the other, each would cost its read timeout).
#[test]
fn idle_metrics_connections_do_not_hold_up_a_scrape() {
    let d = TestDaemon::start(Some("[daemon]\nmetrics = \"127.0.0.1:0\"\n"));
    let port = d.metrics_port();
    let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).expect("the scrape completes within the hang guard");
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    drop(idle);
}

/// Item 3, the lease quota: with `max_leases_per_uid = 2`, nobody's third lease is refused naming the limit,
/// while root (exempt) still opens leases.
#[test]
fn leases_of_one_uid_are_bounded() {
    if !root_or_skip("leases_of_one_uid_are_bounded") {
        return;
    }
    let d = TestDaemon::start(Some("[daemon]\nmax_leases_per_uid = 2\n\n[[topic]]\nname = \"dos-3-quota\"\n"));
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = d.socket.to_str().unwrap();
    let mut kids: Vec<Kid> =
        (0..3).map(|_| as_nobody("raw-client", &[socket, "quota", "group", "dos-3-quota", "g"])).collect();
    let answers: Vec<String> = kids.iter_mut().map(|k| k.line("")).collect();
    assert_eq!(answers.iter().filter(|a| a.starts_with("granted")).count(), 2, "{answers:?}");
    let refused = answers.iter().find(|a| !a.starts_with("granted")).unwrap();
    assert!(refused.contains("ResourceExhausted") && refused.contains("max_leases_per_uid = 2"), "{refused}");
    let bus = d.bus();
    let _subs: Vec<_> = (0..3).map(|_| bus.subscriber("dos-3-quota").expect("root is exempt")).collect();
}
