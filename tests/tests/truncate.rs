//! Truncation by an admitted client (issue 9, hole 6): a publisher run as `nobody` truncates both objects of a
//! topic to zero through its lease's descriptors. Nothing dies of `SIGBUS`: the daemon drops that topic and
//! keeps serving; the topic's clients get `Closed` (in this process and in a CLI subscriber of their own); a
//! topic next to it carries on.

use shmbus_tests::daemon::{binary, TestDaemon};
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use shmbus_tests::kid::Kid;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::Duration;

const CONFIG: &str = "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"*\"]\n\n[[topic]]\nname = \"victim\"\n\
                      publish = [\"*\"]\n\n[[topic]]\nname = \"other\"\n";

#[test]
fn a_client_that_truncates_a_topic_crashes_nobody() {
    if !root_or_skip("a_client_that_truncates_a_topic_crashes_nobody") {
        return;
    }
    let d = TestDaemon::start(Some(CONFIG));
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bus = d.bus();
    let mut pub_v = bus.publisher("victim").unwrap();
    let mut sub_v = bus.subscriber("victim").unwrap();
    let mut pub_o = bus.publisher("other").unwrap();
    let mut sub_o = bus.subscriber("other").unwrap();
    let mut c = d.cli();
    c.args(["sub", "victim", "--timeout", "200ms"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut cli_sub = Kid::watch("cli sub", c.spawn().unwrap());
    d.eventually("the CLI subscriber did not attach", || {
        bus.stats(Some("victim")).is_ok_and(|s| s[0].subscribers.iter().filter(|x| x.pid.is_some()).count() == 2)
    });
    pub_v.send(b"before").unwrap();
    assert_eq!(sub_v.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"before");
    assert_eq!(cli_sub.line("before"), "before");

    let out = Command::new(binary("intruder"))
        .args(["truncate", d.socket.to_str().unwrap(), "victim"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("truncated"), "{}", String::from_utf8_lossy(&out.stderr));

    // This process touches the truncated pages: it survives, and the handles say the topic is gone.
    let _ = pub_v.send(b"after");
    let _ = sub_v.recv_timeout(Duration::from_millis(100));
    assert!(matches!(pub_v.send(b"again"), Err(bus_client::SendError::Closed)), "the publisher is closed");
    assert!(
        matches!(sub_v.recv_timeout(Duration::from_millis(100)), Err(bus_client::RecvError::Closed)),
        "the subscriber is closed"
    );
    // The daemon survives, drops the topic and still serves; the topic next to it works.
    d.eventually("the daemon did not drop the truncated topic", || {
        d.log().contains("topic objects were truncated; removing the topic")
    });
    assert!(d.alive(), "the daemon is alive; log:\n{}", d.log());
    assert!(bus.stats(None).unwrap().iter().all(|t| t.name != "victim"));
    pub_o.send(b"fine").unwrap();
    assert_eq!(sub_o.recv_timeout(Duration::from_secs(10)).unwrap().payload(), b"fine");
    // The CLI subscriber (polling with a timeout) ends on its own, not by SIGBUS.
    let st = cli_sub.wait();
    assert_ne!(st.signal(), Some(libc::SIGBUS), "{}", cli_sub.diagnostics());
    assert!(st.code().is_some(), "{st}; {}", cli_sub.diagnostics());
    // The name can be used again.
    let mut again = bus.publisher("victim").unwrap_or_else(|e| panic!("victim not recreated: {e}\n{}", d.log()));
    again.send(b"new").unwrap();
}
