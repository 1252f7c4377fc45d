//! Typed identity (issue 17, typed handles 1-2): two programs that each define `struct Order { id, sym, qty }`
//! share a topic; a third with the same name but `qty: i64` is refused, and the error shows both sides; `stats`
//! shows the registered type.

use shmbus_tests::daemon::{binary, TestDaemon};
use shmbus_tests::kid::Kid;
use std::io::Write;
use std::process::{Command, Stdio};

fn helper(name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(binary(name));
    c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

#[test]
fn the_same_struct_in_two_programs_shares_a_topic_and_another_shape_is_refused() {
    let d = TestDaemon::start(None);
    let socket = d.socket.to_str().unwrap();
    // The publisher registers its Order first; the other program's Order is checked against it.
    let mut publisher = Kid::watch("typed-pub", helper("typed-pub", &[socket, "orders", "3"]).spawn().unwrap());
    assert_eq!(publisher.line(""), "ready");
    let mut sub = Kid::watch("typed-sub", helper("typed-sub", &[socket, "orders", "same", "3"]).spawn().unwrap());
    let said = sub.line("");
    assert_eq!(said, "ready", "the other program's identical Order was refused: {said}\n{}", d.log());
    writeln!(publisher.child.stdin.as_mut().unwrap(), "go").unwrap();
    for id in 0..3 {
        assert_eq!(sub.line("order"), format!("order {id} S{id} {}", -id));
    }
    sub.expect_success();
    publisher.line("sent 3");

    // Same name, another shape: refused, both sides named.
    let out = helper("typed-sub", &[socket, "orders", "changed", "1"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("refused: "), "a subscriber with qty: i64 was admitted: {said}");
    assert!(said.contains("topic carries Order (shape ") && said.contains("typed Order (shape "), "{said}");
    assert!(said.contains("same name, another shape"), "{said}");
    // The registered type shows in stats.
    let out = d.cli().args(["stats", "orders"]).output().unwrap();
    let stats = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stats.contains("payload type Order (shape "), "{stats}");
}

#[test]
fn a_declared_payload_type_refuses_other_names() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"fills\"\npayload_type = \"Fill\"\n"));
    let socket = d.socket.to_str().unwrap();
    let mut publisher = Kid::watch("typed-pub", helper("typed-pub", &[socket, "fills", "1"]).spawn().unwrap());
    let said = publisher.line("");
    assert!(said.contains("declared for payload type Fill but the publisher is typed Order"), "{said}");
    let bus = d.bus();
    assert!(bus.publisher_builder("fills").open_typed_as::<u64>("Fill").is_ok(), "the declared name is admitted");
    let stats = String::from_utf8_lossy(&d.cli().args(["stats", "fills"]).output().unwrap().stdout).into_owned();
    assert!(stats.contains("payload type Fill"), "{stats}");
}

/// The registered type survives a daemon restart while a typed lease that registered it is restored: with the
/// publisher stopped across the restart (it cannot re-register yet), another shape is still refused.
#[test]
fn the_registered_type_survives_a_daemon_restart() {
    let mut d = TestDaemon::start(None);
    d.keep_topics_on_stop();
    let socket = d.socket.to_str().unwrap().to_string();
    let mut publisher = Kid::watch("typed-pub", helper("typed-pub", &[&socket, "orders", "0"]).spawn().unwrap());
    assert_eq!(publisher.line(""), "ready");
    d.eventually("the type was not written down", || {
        std::fs::read_to_string(bus_daemon::remembered::path(&d.prefix)).is_ok_and(|t| t.contains("Order"))
    });
    let pid = publisher.child.id() as i32;
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    d.stop_with(libc::SIGKILL);
    d.spawn();
    let out = helper("typed-sub", &[&socket, "orders", "changed", "1"]).output().unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("refused: ") && said.contains("same name, another shape"), "{said}\n{}", d.log());
}

mod v1 {
    /// The publisher's `Order`.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Order {
        pub id: u64,
        pub sym: String,
        pub qty: i32,
    }
}

mod v2 {
    /// The same name with `qty` widened: a varint `i32` decodes as `i64` without an error, so only the check
    /// tells.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct Order {
        pub id: u64,
        pub sym: String,
        pub qty: i64,
    }
}

/// A typed subscriber that opens before any typed publisher is checked at its first message instead (no type
/// was registered to check it against at open, and a reader may not register one): the later publisher's
/// other shape is `TypeMismatch` on every receive, never a value; a subscriber of the same type gets its values.
#[test]
fn a_typed_subscriber_opened_before_any_typed_publisher_is_checked_at_its_first_message() {
    use bus_client::RecvError;
    use std::time::Duration;
    const WAIT: Duration = Duration::from_secs(10);
    let d = TestDaemon::start(None);
    let bus = d.bus();
    let mut other = bus.typed_subscriber::<v2::Order>("late").expect("no type registered yet: admitted");
    let mut same = bus.typed_subscriber::<v1::Order>("late").expect("admitted");
    let mut p = bus.typed_publisher::<v1::Order>("late").expect("a publisher registers its type, whoever reads");
    for id in 1..=3 {
        p.send(&v1::Order { id, sym: "ACME".into(), qty: 10 * id as i32 }).expect("send");
    }
    let mismatch = |r: Result<v2::Order, RecvError>| match r {
        Err(RecvError::TypeMismatch(why)) => {
            assert!(why.contains("same name, another shape") && why.matches("Order (shape ").count() == 2, "{why}");
        }
        other => panic!("want TypeMismatch, got {other:?}"),
    };
    mismatch(other.recv_timeout(WAIT));
    mismatch(other.try_recv());
    let mut it = other.iter();
    mismatch(it.next().expect("an item"));
    assert!(it.next().is_none(), "a type mismatch ends the iteration");
    for id in 1..=3 {
        assert_eq!(
            same.recv_timeout(WAIT).expect("the same type"),
            v1::Order { id, sym: "ACME".into(), qty: 10 * id as i32 }
        );
    }
    let stats = String::from_utf8_lossy(&d.cli().args(["stats", "late"]).output().unwrap().stdout).into_owned();
    assert!(stats.contains("payload type Order (shape "), "{stats}");
}
