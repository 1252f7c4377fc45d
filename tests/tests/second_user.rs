//! A second user against a root daemon (issue 16): stealing a lease after a restart (item 6), squatting a topic's
//! payload type (item 10), injecting control characters into logs and terminals (item 11), reading the listings
//! and counters of topics it has no business with. The attacker is the `raw-client` helper run as `nobody`,
//! speaking the protocol directly, or the CLI run as `nobody`.

use shmbus_tests::daemon::{binary, TestDaemon};
use shmbus_tests::hostile::{root_or_skip, NOBODY};
use shmbus_tests::kid::Kid;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Lets `nobody` reach the daemon's socket in its scratch directory.
fn open_dir_to_all(d: &TestDaemon) {
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// `raw-client` as `nobody` with `args` after the socket; holds its connection until dropped.
fn attacker(d: &TestDaemon, client: &str, args: &[&str]) -> Kid {
    let mut c = Command::new(binary("raw-client"));
    c.arg(&d.socket).arg(client).args(args).uid(NOBODY).gid(NOBODY);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    Kid::watch("raw-client", c.spawn().expect("spawn raw-client"))
}

/// The first answer line of an attacker (`granted`, `refused ...` or `hello refused ...`).
fn answer(k: &mut Kid) -> String {
    loop {
        let l = k.line("");
        if l.starts_with("granted") || l.contains("refused") {
            return l;
        }
    }
}

/// Runs the CLI as root to completion (bounded by the CLI's own timeouts) and returns its stdout.
fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let out = d.cli().args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}; log:\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    String::from_utf8(out.stdout).unwrap()
}

/// Sends `sig` to a child.
fn signal(k: &Kid, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
    unsafe { libc::kill(k.child.id() as i32, sig) };
}

#[test]
fn after_a_restart_nobody_cannot_take_roots_subscriber_slot() {
    if !root_or_skip("after_a_restart_nobody_cannot_take_roots_subscriber_slot") {
        return;
    }
    let mut d = TestDaemon::start(None);
    d.keep_topics_on_stop();
    open_dir_to_all(&d);
    let topic = "resume-steal";
    let mut c = d.cli();
    c.args(["sub", topic]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut sub = Kid::watch("root's sub", c.spawn().unwrap());
    let bus = d.bus();
    d.eventually("root's subscriber did not attach", || {
        bus.stats(Some(topic)).is_ok_and(|s| s[0].subscribers.iter().any(|x| x.pid.is_some()))
    });
    ok(&d, &["pub", topic, "before"]);
    assert_eq!(sub.line("before"), "before");
    let st = bus.stats(Some(topic)).unwrap();
    let generation = st[0].generation.to_string();
    let slot = st[0].subscribers.iter().find(|x| x.pid.is_some()).unwrap().slot.to_string();
    drop(bus);
    // Root's subscriber cannot re-register before the attacker: it is stopped across the restart (its lease lock,
    // on its open file description, stays held).
    signal(&sub, libc::SIGSTOP);
    d.stop_with(libc::SIGKILL);
    d.spawn();
    let mut thief = attacker(&d, "thief", &["resume", topic, &generation, &slot]);
    let said = answer(&mut thief);
    signal(&sub, libc::SIGCONT);
    assert!(said.starts_with("refused PermissionDenied"), "nobody resumed root's slot: {said}\n{}", d.log());
    let bus = d.bus();
    d.eventually("root's subscriber did not re-register", || {
        bus.stats(Some(topic)).is_ok_and(|s| s[0].subscribers.iter().any(|x| x.pid.is_some()))
    });
    ok(&d, &["pub", topic, "after"]);
    assert_eq!(sub.line("after"), "after", "{}", sub.diagnostics());
}

#[test]
fn a_typed_subscriber_of_nobody_does_not_fix_the_topic_type() {
    if !root_or_skip("a_typed_subscriber_of_nobody_does_not_fix_the_topic_type") {
        return;
    }
    let d = TestDaemon::start(Some("[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"*\"]\n"));
    open_dir_to_all(&d);
    let topic = "type-squat";
    ok(&d, &["create", topic]);
    let mut squatter = attacker(&d, "squatter", &["typed", topic, "bogus::Squat"]);
    assert_eq!(answer(&mut squatter), "granted", "a lossy subscriber is admitted");
    let bus = d.bus();
    let p = bus.typed_publisher::<u64>(topic).unwrap_or_else(|e| panic!("root's publisher refused: {e}\n{}", d.log()));
    // Once a publisher set it, a subscriber of another type is checked against it.
    let mut late = attacker(&d, "late", &["typed", topic, "bogus::Squat"]);
    assert!(answer(&mut late).starts_with("refused TypeMismatch"), "{}", late.diagnostics());
    // The last typed lease gone, the type is cleared.
    drop((p, squatter, late));
    d.eventually("the type was not cleared when the last typed lease closed", || {
        bus.typed_publisher::<u32>(topic).is_ok()
    });
}

/// `s` without SGR colour sequences (`ESC [ digits/semicolons m`) the log formatter writes itself.
fn strip_sgr(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let body = tail.strip_prefix('[').map(|t| t.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';'));
        match body.and_then(|b| b.strip_prefix('m')) {
            Some(after) => rest = after,
            None => {
                out.push('\x1b');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn control_characters_reach_neither_the_log_nor_the_terminal() {
    if !root_or_skip("control_characters_reach_neither_the_log_nor_the_terminal") {
        return;
    }
    let d = TestDaemon::start(None);
    open_dir_to_all(&d);
    let topic = "inject";
    ok(&d, &["create", topic]);
    let forged = "g\nFORGED shmbusd: all good\x1b[2J\x1b]0;pwned\x07";
    let evil_client = "evil\nFORGED client\x1b[2J";
    let mut g = attacker(&d, evil_client, &["group", topic, forged]);
    let said = answer(&mut g);
    assert!(said.starts_with("refused InvalidRequest"), "a group name with control characters: {said}");
    let mut t = attacker(&d, evil_client, &["typed", topic, "T\x1b]0;pwned\x07\nFORGED"]);
    let said = answer(&mut t);
    assert!(said.starts_with("refused InvalidRequest"), "a type name with control characters: {said}");
    let stats = ok(&d, &["stats", topic]);
    let topics = ok(&d, &["topics"]);
    drop((g, t));
    for (what, out) in [("stats", &stats), ("topics", &topics)] {
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{what} printed control characters: {out:?}");
    }
    let log = strip_sgr(&d.log());
    assert!(!log.contains('\x1b') && !log.contains('\x07'), "raw ESC or BEL in the log: {log:?}");
    assert!(!log.lines().any(|l| l.starts_with("FORGED")), "a forged log line: {log}");
}

/// Whether every thread of process `pid` is stopped (state `T` in `/proc/<pid>/task/*/stat`).
fn stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.filter_map(Result::ok).all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
    })
}

#[test]
fn groups_a_peer_joins_after_connecting_do_not_admit_it() {
    if !root_or_skip("groups_a_peer_joins_after_connecting_do_not_admit_it") {
        return;
    }
    let d = TestDaemon::start(Some(
        "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\n\n\
         [[topic]]\nname = \"staff\"\nsubscribe = [\"gid:4242\"]\n",
    ));
    open_dir_to_all(&d);
    let pid = d.pid().unwrap();
    // Stopped, the daemon accepts the connections and reads their credentials only after the peer changed its
    // groups: what it reads then from /proc/<pid>/status (where it used to) already lists group 4242.
    // SAFETY: kill has no memory-safety preconditions; the pid is the daemon, our own unreaped child.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    d.eventually("the daemon did not stop", || stopped(pid));
    let mut c = Command::new("setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=+setgid", "--ambient-caps=+setgid"]);
    c.arg("--").arg(binary("raw-client")).arg(&d.socket).args(["late", "late-group", "staff", "4242"]);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut late = Kid::watch("raw-client late-group", c.spawn().expect("spawn setpriv raw-client"));
    let connected = late.line("connected");
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    assert_eq!(connected, "connected", "{}", late.diagnostics());
    let before = late.line("before");
    let after = late.line("after");
    assert!(
        before.starts_with("before refused PermissionDenied"),
        "a group joined after connecting admitted the peer: {before}\n{}",
        d.log()
    );
    assert_eq!(after, "after granted", "a group held at connect admits the peer\n{}", d.log());
    late.expect_success();
}

/// Runs the CLI as `nobody` to completion: (exit code, stdout, stderr).
fn as_nobody(d: &TestDaemon, args: &[&str]) -> (Option<i32>, String, String) {
    let out = d.cli().args(args).uid(NOBODY).gid(NOBODY).stdin(Stdio::null()).output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

/// The `name` fields of a JSON array (what `topics --json` and `stats --json` print).
fn names(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn nobody_sees_only_the_topics_its_policy_admits_in_listings_and_stats() {
    if !root_or_skip("nobody_sees_only_the_topics_its_policy_admits_in_listings_and_stats") {
        return;
    }
    let d = TestDaemon::start(Some(
        "[defaults]\npublish = [\"uid:0\"]\nsubscribe = [\"uid:0\"]\n\n\
         [[topic]]\nname = \"secret\"\n\n[[topic]]\nname = \"orders\"\nsubscribe = [\"*\"]\n",
    ));
    open_dir_to_all(&d);
    // A holder on the secret topic, so its stats would carry a pid.
    let bus = d.bus();
    let _holder = bus.publisher("secret").unwrap_or_else(|e| panic!("root's publisher refused: {e}\n{}", d.log()));
    assert_eq!(names(&ok(&d, &["topics", "--json"])), ["orders", "secret"], "root sees every topic");
    assert_eq!(names(&ok(&d, &["stats", "--json"])), ["orders", "secret"]);

    let (code, out, err) = as_nobody(&d, &["topics", "--json"]);
    assert_eq!(code, Some(0), "{err}\n{}", d.log());
    assert_eq!(names(&out), ["orders"], "nobody's topic list");
    let (code, out, err) = as_nobody(&d, &["stats", "--json"]);
    assert_eq!(code, Some(0), "{err}\n{}", d.log());
    assert_eq!(names(&out), ["orders"], "nobody's stats");
    let (code, out, err) = as_nobody(&d, &["stats", "orders", "--json"]);
    assert_eq!((code, names(&out)), (Some(0), vec!["orders".to_string()]), "{err}");

    // `stats secret` answers as for a topic that does not exist: same exit code, same words but for the name.
    let secret = as_nobody(&d, &["stats", "secret"]);
    let missing = as_nobody(&d, &["stats", "missing"]);
    assert_ne!(secret.0, Some(0), "nobody read the secret topic's stats: {}", secret.1);
    assert!(!secret.1.contains("secret") && !secret.1.contains("generation"), "{}", secret.1);
    assert_eq!(secret.0, missing.0, "exit codes: {} / {}", secret.2, missing.2);
    assert_eq!(secret.2, missing.2.replace("missing", "secret"), "the answer tells that the topic exists");
}
