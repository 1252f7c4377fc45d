//! Clients' reports on their topics (protocol 7, `Bus::report`): what a bridge tells `shmbus stats` about its
//! remote subscribers and counters. Only a topic the reporting connection holds a lease on takes a report; the
//! report is shown with the client's name, its text escaped, its size bounded, and it ends with the lease.

use bus_client::{ControlError, TopicReport};
use shmbus_tests::bridge::reported;
use shmbus_tests::daemon::TestDaemon;

fn report(topic: &str, remote: &[&str], counters: &[(&str, u64)]) -> TopicReport {
    TopicReport {
        topic: topic.into(),
        remote_subscribers: remote.iter().map(|s| s.to_string()).collect(),
        counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

#[test]
fn a_report_needs_a_lease_is_bounded_escaped_and_ends_with_the_lease() {
    let d = TestDaemon::start(None);
    let bus = bus_client::Bus::builder().client_name("reporter").socket(&d.socket).connect().expect("connect");
    let other = d.bus();
    bus.create_topic("t", Default::default()).expect("create");

    // No lease on this connection: refused, whatever another connection holds.
    let e = bus.report(vec![report("t", &["x"], &[])]).expect_err("a report without a lease");
    assert!(matches!(&e, ControlError::InvalidRequest(m) if m.contains("holds no lease")), "{e}");
    let sub = bus.subscriber("t").expect("subscribe");
    let e = other.report(vec![report("t", &["x"], &[])]).expect_err("another connection's lease does not count");
    assert!(matches!(e, ControlError::InvalidRequest(_)), "{e}");

    // Too many items: refused, and nothing is kept.
    let many: Vec<(String, u64)> = (0..33).map(|i| (format!("c{i}"), i)).collect();
    let big = TopicReport { topic: "t".into(), remote_subscribers: vec![], counters: many };
    assert!(matches!(bus.report(vec![big]), Err(ControlError::InvalidRequest(_))));
    assert!(reported(&other, "t").is_empty());

    // Shown to others with the reporter's name; control characters escaped.
    bus.report(vec![report("t", &["host b\u{1b}[2J"], &[("gaps", 3)])]).expect("report");
    let r = reported(&other, "t");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].client.as_deref(), Some("reporter"));
    assert_eq!(r[0].pid, std::process::id() as i32);
    assert_eq!(r[0].counters, vec![("gaps".to_string(), 3)]);
    assert!(r[0].remote_subscribers[0].starts_with("host b") && !r[0].remote_subscribers[0].contains('\u{1b}'));

    // `shmbus stats` prints it under the topic.
    let out = d.cli().args(["stats", "t"]).output().expect("shmbus stats");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reported by reporter") && text.contains("gaps=3"), "{text}");

    // A new report replaces it; an empty one clears it; the lease's end ends it.
    bus.report(vec![report("t", &[], &[("gaps", 4)])]).expect("report again");
    assert_eq!(reported(&other, "t")[0].counters, vec![("gaps".to_string(), 4)]);
    bus.report(vec![]).expect("clear");
    assert!(reported(&other, "t").is_empty());
    bus.report(vec![report("t", &["y"], &[])]).expect("report");
    drop(sub);
    d.eventually("the report outlived its lease", || reported(&other, "t").is_empty());
}
