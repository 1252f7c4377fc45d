//! Tightening a policy revokes what it no longer admits (issue 16 item 7): `nobody` subscribes to an
//! on-demand topic, then the configuration declares it root-only and the daemon reloads. nobody's subscriber is
//! closed and sees nothing published afterwards; root's clients reopen on the new generation. A reload that
//! revokes nothing leaves the topic (and its generation) alone.

use shmbus_tests::daemon::TestDaemon;
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use shmbus_tests::kid::Kid;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

const OPEN: &str = "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"*\"]\n";
const ROOT_ONLY: &str = "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"*\"]\n\n[[topic]]\nname = \"payroll\"\n\
                         subscribe = [\"uid:0\"]\n";

fn generation(d: &TestDaemon, topic: &str) -> Option<u64> {
    d.bus().stats(Some(topic)).ok().and_then(|s| s.first().map(|t| t.generation))
}

/// Rewrites the configuration, sends SIGHUP and waits for the reload to be logged.
fn reload(d: &TestDaemon, config: &str) {
    let before = d.log().matches("configuration reloaded").count();
    d.write_config(config);
    d.reload();
    d.eventually("the daemon did not reload", || d.log().matches("configuration reloaded").count() > before);
}

#[test]
fn tightening_a_policy_closes_the_leases_it_no_longer_admits() {
    if !root_or_skip("tightening_a_policy_closes_the_leases_it_no_longer_admits") {
        return;
    }
    let d = TestDaemon::start(Some(OPEN));
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bus = d.bus();
    let mut root_pub = bus.publisher("payroll").expect("root creates payroll on first use");
    let mut c = d.cli();
    c.args(["sub", "payroll"]).uid(NOBODY).gid(NOBODY);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut spy = Kid::watch("nobody's sub", c.spawn().unwrap());
    d.eventually("nobody's subscriber did not attach", || {
        bus.stats(Some("payroll")).is_ok_and(|s| s[0].subscribers.iter().any(|x| x.pid.is_some()))
    });
    root_pub.send(b"before").unwrap();
    assert_eq!(spy.line("before"), "before");
    let first = generation(&d, "payroll").unwrap();

    // A reload that admits every lease held changes nothing.
    reload(&d, OPEN);
    assert_eq!(generation(&d, "payroll"), Some(first), "nothing revoked, nothing recreated");
    root_pub.send(b"still").unwrap();
    assert_eq!(spy.line("still"), "still");

    // Declared root-only: nobody's lease is revoked, the topic comes back as a new generation.
    reload(&d, ROOT_ONLY);
    d.eventually("the topic was not recreated", || generation(&d, "payroll").is_some_and(|g| g != first));
    let st = spy.wait();
    assert!(!spy.seen.iter().any(|l| l == "after"), "{}", spy.diagnostics());
    assert!(st.code().is_some(), "nobody's subscriber ended on its own ({st}); {}", spy.diagnostics());
    assert!(d.log().contains("the new policy does not admit some leases"), "{}", d.log());

    // Root's old handle is closed too; reopened, root's clients work, and nobody is refused.
    assert!(root_pub.send(b"lost").is_err(), "the old generation is closed");
    let mut root_sub = bus.subscriber("payroll").unwrap();
    let mut root_pub = bus.publisher("payroll").unwrap();
    root_pub.send(b"after").unwrap();
    assert_eq!(root_sub.recv_timeout(Duration::from_secs(20)).unwrap().payload(), b"after");
    let out = d.cli().args(["sub", "payroll", "--count", "1"]).uid(NOBODY).gid(NOBODY).output().unwrap();
    assert!(!out.status.success(), "nobody may not subscribe any more");
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not"), "{}", String::from_utf8_lossy(&out.stderr));
}
