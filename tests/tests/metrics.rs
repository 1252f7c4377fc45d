//! The Prometheus endpoint over real HTTP (issue 11): a private daemon with a topic and traffic is scraped on
//! `/metrics`, its exposition checked for the expected series and linted with `promtool check metrics` (Debian's
//! `prometheus` package; the lint is skipped, saying so, where promtool is not installed); other paths are 404,
//! other methods 405; idle connections do not hold up a scrape.

use shmbus_tests::daemon::TestDaemon;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hang guard: a bound on waits that should end at once, never asserted on as a speed.
const HANG: Duration = Duration::from_secs(10);

const CONFIG: &str = "[daemon]\nmetrics = \"127.0.0.1:0\"\n\n[[topic]]\nname = \"metered\"\ncapacity = 64\n";

/// A response: the status code, the headers (names lower-cased) and the body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` over HTTP/1.0 (the server closes the connection after the response) and reads the reply.
fn request(port: u16, method: &str, path: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("a whole response within the hang guard");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of headers in {raw:?}"));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply { status, headers, body: body.to_string() }
}

/// Scrapes until every line of `want` is in the exposition (the counters are read from shared memory and a
/// subscriber's `received` settles once it caught up), bounded by 30 s; returns the last scrape.
fn scrape_until(d: &TestDaemon, port: u16, want: &[String]) -> Reply {
    let mut last = None;
    d.eventually("the exposition never showed the expected series", || {
        let r = request(port, "GET", "/metrics");
        let ok = r.status == 200 && want.iter().all(|w| r.body.lines().any(|l| l == w));
        if !ok {
            eprintln!("waiting for {want:?} in:\n{}", r.body);
        }
        last = Some(r);
        ok
    });
    last.unwrap()
}

#[test]
fn a_scrape_shows_the_traffic_and_passes_promtool() {
    let d = TestDaemon::start(Some(CONFIG));
    let port = d.metrics_port();
    let bus = d.bus();
    let mut sub = bus.subscriber("metered").unwrap();
    let mut member = bus.subscriber_builder("metered").group("workers").open().unwrap();
    let mut p = bus.publisher("metered").unwrap();
    for m in [&b"one"[..], b"two", b"three"] {
        p.send(m).unwrap();
    }
    for _ in 0..3 {
        sub.recv_timeout(HANG).expect("a message");
        member.recv_timeout(HANG).expect("a message for the group");
    }
    let t = r#"topic="metered""#;
    let want = [
        "shmbus_up 1".to_string(),
        format!("shmbus_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
        format!("shmbus_messages_published_total{{{t}}} 3"),
        format!("shmbus_published_bytes_total{{{t}}} 11"),
        format!("shmbus_publish_full_total{{{t}}} 0"),
        format!("shmbus_topic_tail{{{t}}} 3"),
        format!("shmbus_topic_subscribers{{{t}}} 2"),
        format!("shmbus_publisher_messages_published_total{{{t},slot=\"0\"}} 3"),
        format!("shmbus_subscriber_lag{{{t},slot=\"0\"}} 0"),
        format!("shmbus_subscriber_position{{{t},slot=\"0\"}} 3"),
        format!("shmbus_subscriber_received_total{{{t},slot=\"0\"}} 3"),
        format!("shmbus_group_members{{{t},group=\"workers\"}} 1"),
        format!("shmbus_group_claim_position{{{t},group=\"workers\"}} 3"),
        format!("shmbus_group_redelivered_total{{{t},group=\"workers\"}} 0"),
        format!("shmbus_group_delivered_to_members{{{t},group=\"workers\"}} 3"),
        "shmbus_leases{role=\"publisher\"} 1".into(),
        "shmbus_leases{role=\"subscriber\"} 2".into(),
    ];
    let r = scrape_until(&d, port, &want);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"), "{:?}", r.headers);
    let value = |name: &str| -> f64 {
        let line = r.body.lines().find(|l| l.split(' ').next() == Some(name));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("no {name} in\n{}", r.body))
    };
    assert!(value("shmbus_topics") >= 1.0);
    assert!(value("shmbus_connections") >= 1.0, "the bus's control connection is open");
    assert!(value("shmbus_topics_memory_bytes") > 0.0);
    assert!(value("shmbus_uptime_seconds") >= 0.0);
    let (size, used, free) =
        (value("shmbus_shm_size_bytes"), value("shmbus_shm_used_bytes"), value("shmbus_shm_free_bytes"));
    assert!(size > 0.0 && used <= size && free <= size, "{size} {used} {free}");
    for family in ["shmbus_messages_published_total", "shmbus_subscriber_lag", "shmbus_up"] {
        assert!(r.body.lines().any(|l| l.starts_with(&format!("# HELP {family} "))), "no HELP for {family}");
        assert!(r.body.lines().any(|l| l.starts_with(&format!("# TYPE {family} "))), "no TYPE for {family}");
    }
    promtool_check(&r.body);
    drop((sub, member, p, bus));
}

/// `promtool check metrics` on `body`, or a note that it was skipped.
fn promtool_check(body: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("NOTE: promtool not found ({e}); the exposition was not linted (apt-get install prometheus)");
            return;
        }
    };
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\non:\n{body}");
}

#[test]
fn other_paths_are_not_found_and_other_methods_not_allowed() {
    let d = TestDaemon::start(Some(CONFIG));
    let port = d.metrics_port();
    for path in ["/", "/metric", "/metrics/extra", "/favicon.ico"] {
        let r = request(port, "GET", path);
        assert_eq!(r.status, 404, "GET {path}: {}", r.body);
        assert!(!r.body.contains("shmbus_up"), "{}", r.body);
    }
    for method in ["POST", "PUT", "DELETE"] {
        let r = request(port, method, "/metrics");
        assert_eq!(r.status, 405, "{method} /metrics: {}", r.body);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let head = request(port, "HEAD", "/metrics");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body: {}", head.body);
    // A malformed request is answered 400 and the endpoint goes on serving.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s.write_all(b"\x00\xff garbage \r\n\r\n").unwrap();
    let mut junk = Vec::new();
    let _ = s.read_to_end(&mut junk);
    assert!(junk.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&junk));
    assert_eq!(request(port, "GET", "/metrics").status, 200);
    assert!(d.alive());
}

#[test]
fn an_idle_connection_does_not_delay_a_second_scrape() {
    let d = TestDaemon::start(Some(CONFIG));
    let port = d.metrics_port();
    assert_eq!(request(port, "GET", "/metrics").status, 200);
    // Connections that never send (more than the old listener's 16 at once), one that sends half a request line,
    // one HTTP/1.1 connection that had its scrape answered and is left open by the client: none holds up the
    // next scrape.
    let silent: Vec<TcpStream> = (0..32).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /metr").unwrap();
    let mut kept = TcpStream::connect(("127.0.0.1", port)).unwrap();
    kept.set_read_timeout(Some(HANG)).unwrap();
    kept.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).expect("the keep-alive scrape is answered");
    assert_eq!(&first, b"HTTP/1.1 200");
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let r = request(port, "GET", "/metrics");
    assert_eq!(r.status, 200);
    assert!(start.elapsed() < HANG, "the second scrape returned only after {:?}", start.elapsed());
    let bus = d.bus();
    bus.publisher("metered").expect("the control plane serves clients meanwhile").send(b"up").unwrap();
    assert!(d.alive());
    drop((silent, half, kept, bus));
}

/// More topics than the listener reads under one hold of the state lock (`bus_daemon::metrics::PAGE`): every
/// one is in the exposition, once.
#[test]
fn every_topic_is_scraped_across_pages() {
    let n = bus_daemon::metrics::PAGE + 44;
    let mut config = String::from(
        "[daemon]\nmetrics = \"127.0.0.1:0\"\n\n[defaults]\ncapacity = 4\nmax_message = 64\npayload_budget = 4096\n\
         max_publishers = 1\nmax_subscribers = 1\nmax_groups = 1\n",
    );
    for i in 0..n {
        config.push_str(&format!("\n[[topic]]\nname = \"paged-{i:04}\"\n"));
    }
    let d = TestDaemon::start(Some(&config));
    let port = d.metrics_port();
    let r = request(port, "GET", "/metrics");
    assert_eq!(r.status, 200);
    let tails: Vec<&str> = r.body.lines().filter(|l| l.starts_with("shmbus_topic_tail{")).collect();
    let want: Vec<String> = (0..n).map(|i| format!("shmbus_topic_tail{{topic=\"paged-{i:04}\"}} 0")).collect();
    assert_eq!(tails, want, "every topic once, in name order");
    assert!(r.body.lines().any(|l| l == format!("shmbus_topics {n}")), "{}", r.body);
}

/// A flood of connections that send nothing costs the daemon at most `MAX_CONNECTIONS` threads; the ones over
/// the bound are closed at once, the others after the read timeout, and the endpoint then serves again.
#[test]
fn a_flood_of_idle_connections_costs_a_bounded_number_of_threads() {
    let max = bus_daemon::metrics::MAX_CONNECTIONS;
    let d = TestDaemon::start(Some(CONFIG));
    let port = d.metrics_port();
    let pid = d.pid().expect("daemon pid");
    let threads = || std::fs::read_dir(format!("/proc/{pid}/task")).map(|t| t.count()).unwrap_or(0);
    let before = threads();
    let flood: Vec<TcpStream> = (0..max + 36).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let during = threads();
    assert!(during <= before + max, "the daemon went from {before} to {during} threads");
    for mut c in flood {
        c.set_read_timeout(Some(HANG)).unwrap();
        match c.read(&mut [0u8; 64]) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("an idle connection was not closed by the server: {other:?}"),
        }
    }
    assert_eq!(request(port, "GET", "/metrics").status, 200);
    assert!(d.alive());
}
