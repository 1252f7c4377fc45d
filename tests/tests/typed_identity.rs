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
