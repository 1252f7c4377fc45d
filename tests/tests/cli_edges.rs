//! Operating the bus (issue 11): log lines fit for a file and for the journal, name who asked, and the rough
//! edges a new user of the `shmbus` CLI hit, each against a private daemon.

use shmbus_tests::cli::{nobody, run, show, text};
use shmbus_tests::daemon::{binary, sweep, TestDaemon};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a log line starts with tracing's timestamp (`2026-12-02T03:54:58.123456Z`).
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 11 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

#[test]
fn logs_to_a_file_have_no_colour_and_name_who_asked() {
    let d = TestDaemon::start(Some("[[topic]]\nname = \"secret\"\nsubscribe = [\"uid:0\"]\n"));
    assert!(run(&d, &["create", "made"]).status.success());
    assert!(run(&d, &["pub", "made", "hello"]).status.success());
    let sub = nobody(&d, &["sub", "secret", "--count", "1", "--timeout", "5s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sub.id();
    let out = sub.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(run(&d, &["delete", "made"]).status.success());
    d.eventually("the refusal was logged", || d.log().contains("request refused"));
    let log = d.log();
    assert!(!log.contains('\u{1b}'), "no ANSI escapes in a log file:\n{log}");
    assert!(log.lines().any(stamped), "a file keeps the timestamps:\n{log}");
    let line = |what: &str| {
        let mine = |l: &&str| l.contains(what) && (l.contains("topic=made") || l.contains("request refused"));
        log.lines().find(mine).unwrap_or_else(|| panic!("no {what}:\n{log}"))
    };
    let refused = line("request refused");
    assert!(refused.contains(&format!("pid={pid}")) && refused.contains("uid=65534"), "{refused}");
    for what in ["created topic", "lease granted", "lease released", "deleted topic"] {
        let l = line(what);
        assert!(l.contains("uid=0") && l.contains("pid="), "{what}: {l}");
    }
    // The CLI's own diagnostics (-v) are not coloured either when stderr is a pipe.
    let out = run(&d, &["-v", "topics"]);
    assert!(out.status.success() && !out.stderr.is_empty(), "{}", show(&out));
    assert!(!out.stderr.contains(&0x1b), "{}", show(&out));
}

/// Runs `shmbusd` with stderr to `log` and `JOURNAL_STREAM=value(log)` until it is ready, then stops it.
fn daemon_log_with_journal_stream(tag: &str, value: impl Fn(&std::fs::Metadata) -> String) -> String {
    let prefix = format!("sedg{}{tag}", std::process::id());
    let dir = std::env::temp_dir().join(format!("shmbus-journal-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let stream = value(&log.metadata().unwrap());
    let socket = dir.join("control.sock");
    let mut child = Command::new(binary("it-shmbusd"))
        .args(["--cleanup-on-exit", "--shm-prefix", &prefix, "--socket"])
        .arg(&socket)
        .env("JOURNAL_STREAM", stream)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    sweep(&prefix);
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

#[test]
fn under_the_journal_the_daemon_leaves_out_timestamps_and_colour() {
    let journal = daemon_log_with_journal_stream("j", |m| format!("{}:{}", m.dev(), m.ino()));
    assert!(journal.contains("shmbusd ready") && journal.contains("shmbusd stopped"), "{journal}");
    assert!(!journal.lines().any(stamped), "journald stamps lines itself:\n{journal}");
    assert!(!journal.contains('\u{1b}'), "{journal}");
    // An inherited JOURNAL_STREAM naming another stream (stderr redirected) keeps the timestamps.
    let other = daemon_log_with_journal_stream("o", |m| format!("{}:{}", m.dev(), m.ino() + 1));
    assert!(other.contains("shmbusd ready") && other.lines().all(|l| l.is_empty() || stamped(l)), "{other}");
}

/// `create` of an existing topic says it exists (exit 0 when what was asked matches, 4 naming what differs), and
/// the origin of a topic (config, created by request, on demand) is shown and survives a restart, which warns
/// only about declared topics whose geometry differs from the configuration.
#[test]
fn create_of_an_existing_topic_says_so_and_origins_survive_a_restart() {
    let mut d = TestDaemon::start(Some("[defaults]\ncapacity = 1024\n[[topic]]\nname = \"conf\"\ncapacity = 64\n"));
    d.keep_topics_on_stop();
    let out = run(&d, &["create", "asked", "--capacity", "128"]);
    assert!(out.status.success() && text(&out.stderr).contains("created topic \"asked\""), "{}", show(&out));
    let out = run(&d, &["create", "asked"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stderr).contains("exists already") && !text(&out.stderr).contains("created"), "{}", show(&out));
    let out = run(&d, &["create", "asked", "--capacity", "128"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stderr).contains("exists already with the geometry asked"), "{}", show(&out));
    let out = run(&d, &["create", "asked", "--capacity", "256"]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(text(&out.stderr).contains("exists with another geometry: capacity 128 (asked 256)"), "{}", show(&out));
    assert!(run(&d, &["pub", "typo", "x"]).status.success(), "auto_create is on by default");
    let origins = |d: &TestDaemon| {
        let out = run(d, &["topics", "--json"]);
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("topics --json");
        let mut o: Vec<(String, String)> =
            v.iter().map(|t| (t["name"].as_str().unwrap().into(), t["origin"].as_str().unwrap().into())).collect();
        o.sort();
        o
    };
    let want = [("asked", "Request"), ("conf", "Config"), ("typo", "OnDemand")];
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(origins(&d), want);
    let table = text(&run(&d, &["topics"]).stdout);
    assert!(table.lines().any(|l| l.starts_with("asked ") && l.ends_with("created by request")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("typo ") && l.ends_with("on demand")), "{table}");
    let remembered = format!("/dev/shm/.{}.topics", d.prefix);
    d.eventually("the on-demand topic is remembered", || {
        std::fs::read_to_string(&remembered).is_ok_and(|t| t.contains("on-demand"))
    });
    d.stop_with(libc::SIGKILL);
    d.write_config("[defaults]\ncapacity = 1024\n[[topic]]\nname = \"conf\"\ncapacity = 32\n");
    d.spawn();
    assert_eq!(origins(&d), want, "origins survive a restart");
    let log = d.log();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("differs from the configuration")).collect();
    assert!(warned.len() == 1 && warned[0].contains("topic=conf"), "only the declared topic: {warned:?}\n{log}");
}

/// A refused subscription names the real reason: subscribing denied, or only holding publishers back (issue 11:
/// `nobody` was told "may not hold publishers back" on a topic it may not subscribe to at all).
#[test]
fn a_refused_subscription_names_the_real_reason() {
    let d = TestDaemon::start(Some(concat!(
        "[[topic]]\nname = \"secret\"\nsubscribe = [\"uid:0\"]\n",
        "[[topic]]\nname = \"gated\"\nsubscribe = [\"*\"]\ngate = [\"uid:0\"]\n"
    )));
    let out = nobody(&d, &["sub", "secret", "--count", "1", "--timeout", "2s"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(err.contains("may not subscribe to \"secret\"") && !err.contains("hold publishers back"), "{err}");
    let out = nobody(&d, &["sub", "gated", "--count", "1", "--timeout", "2s"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(err.contains("may not hold publishers back on \"gated\"") && err.contains("--lossy"), "{err}");
}

/// `validate` runs the start's checks: a configuration whose declared topics /dev/shm cannot hold is refused by
/// both (issue 11: validate accepted what the daemon then failed on), and `--help` is true. The descriptor limit
/// no longer bounds the topics (their descriptors follow use, issue 13): 40 declared topics validate under 256.
#[test]
fn validate_refuses_what_the_daemon_refuses() {
    let dir = std::env::temp_dir().join(format!("shmbus-preflight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = String::from("[defaults]\ncapacity = 16\nmax_message = 256\npayload_budget = 4096\n");
    for i in 0..40 {
        cfg.push_str(&format!("[[topic]]\nname = \"t{i}\"\n"));
    }
    let many = dir.join("many.toml");
    std::fs::write(&many, &cfg).unwrap();
    // Twice what /dev/shm has free, in one declared topic.
    let free = bus_daemon::limits::free_bytes("/dev/shm").expect("statvfs /dev/shm");
    let budget = free.saturating_mul(2).next_power_of_two();
    let huge = dir.join("huge.toml");
    let limit = budget.saturating_mul(4);
    let big = format!(
        "[daemon]\nshm_budget = {limit}\nmax_topic_bytes = {limit}\n[defaults]\npayload_budget = {budget}\n\
         [[topic]]\nname = \"huge\"\n"
    );
    std::fs::write(&huge, big).unwrap();
    let limited = |path: &std::path::Path, args: &[&str]| {
        // `timeout`: a daemon that (wrongly) starts must not hang the test.
        let mut c = Command::new("timeout");
        c.args(["20", "prlimit", "--nofile=256:256", "--"]).arg(binary("it-shmbusd")).args(args);
        c.arg("--config").arg(path).env_remove("NOTIFY_SOCKET").env_remove("RUST_LOG").stdin(Stdio::null());
        c.output().expect("timeout and prlimit are installed")
    };
    let out = limited(&many, &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("valid (40 declared topics)"), "{}", show(&out));
    let out = limited(&huge, &["validate"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("the declared topics need") && err.contains("of /dev/shm, but only"), "{err}");
    // The daemon under the same limit refuses the same file.
    let prefix = format!("sedg{}pf", std::process::id());
    let socket = dir.join("control.sock");
    let out = limited(&huge, &["--cleanup-on-exit", "--shm-prefix", &prefix, "--socket", socket.to_str().unwrap()]);
    sweep(&prefix);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success() && out.status.code() != Some(124), "{}", show(&out));
    assert!(text(&out.stderr).contains("of /dev/shm, but only"), "{}", show(&out));
}

/// `--help` lists the global options under their own heading, both programs state one rule for `-v` and
/// `RUST_LOG`, and `shmbusd validate --help` promises nothing validate does not do.
#[test]
fn help_is_true_and_groups_the_global_options() {
    let help = |bin: &str, args: &[&str]| text(&Command::new(binary(bin)).args(args).output().unwrap().stdout);
    let sub = help("it-shmbus", &["sub", "--help"]);
    let (own, global) = sub.split_once("Global options:").unwrap_or_else(|| panic!("no heading: {sub}"));
    assert!(own.contains("--timeout") && !own.contains("--socket") && !own.contains("--verbose"), "{sub}");
    assert!(global.contains("--socket") && global.contains("--verbose") && global.contains("--quiet"), "{sub}");
    let rule = "-v and -q override RUST_LOG";
    assert!(help("it-shmbus", &["--help"]).contains(rule));
    assert!(help("it-shmbusd", &["--help"]).contains(rule));
    let validate = help("it-shmbusd", &["validate", "--help"]);
    assert!(validate.contains("(required)") && validate.contains("`validate` needs it"), "{validate}");
}

/// `sub --idle-exit D` drains and exits 0 once idle for D (`--timeout` stays an error after messages), and
/// `pub --timeout D` gives up with 5 naming the lossless subscriber that holds the topic full (issue 11: pub
/// blocked forever behind a stopped subscriber).
#[test]
fn sub_drains_until_idle_and_pub_times_out_naming_who_holds_it() {
    let d = TestDaemon::start(None);
    assert!(run(&d, &["create", "drain", "--capacity", "4"]).status.success());
    assert!(run(&d, &["pub", "drain", "a", "b", "c"]).status.success());
    let out = run(&d, &["sub", "drain", "--from-oldest", "--idle-exit", "300ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(text(&out.stdout), "a\nb\nc\n", "{}", show(&out));
    let out = run(&d, &["sub", "drain", "--from-oldest", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(5), "--timeout is an error even after messages: {}", show(&out));
    assert!(run(&d, &["sub", "drain", "--idle-exit", "1s", "--timeout", "1s"]).status.code() == Some(2));
    // A lossless subscriber that never reads holds the 4-entry topic full.
    let bus = d.bus();
    let _stuck = bus.subscriber("drain").unwrap();
    let out = run(&d, &["pub", "drain", "--timeout", "300ms", "1", "2", "3", "4", "5", "6"]);
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("no room on topic \"drain\" within 300ms (4 messages sent before)"), "{err}");
    assert!(
        err.contains(&format!("held back by the lossless subscriber in slot 0 (pid {}", std::process::id())),
        "{err}"
    );
}

/// Under `auto_create`, a topic made by a first `pub` or `sub` is announced on stderr, and with
/// `remove_unused_after` the daemon removes it once no lease held it that long; topics created by request and
/// declared ones stay (issue 11: a typo made a topic that stayed across restarts).
#[test]
fn on_demand_topics_are_announced_and_removed_when_unused() {
    let d = TestDaemon::start(Some("[daemon]\nremove_unused_after = \"1s\"\n[[topic]]\nname = \"conf\"\n"));
    assert!(run(&d, &["create", "asked"]).status.success());
    let out = run(&d, &["sub", "ordres", "--idle-exit", "100ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stderr).contains("created topic \"ordres\" on demand"), "{}", show(&out));
    let out = run(&d, &["pub", "ordres", "x"]);
    assert!(out.status.success() && !text(&out.stderr).contains("on demand"), "said once: {}", show(&out));
    // Held by a lease, it stays however long.
    let bus = d.bus();
    let held = bus.subscriber("ordres").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let names = |d: &TestDaemon| -> Vec<String> { d.bus().topics().unwrap().into_iter().map(|t| t.name).collect() };
    assert!(names(&d).contains(&"ordres".to_string()), "a held topic is in use");
    drop(held);
    d.eventually("the unused on-demand topic is removed", || !names(&d).contains(&"ordres".to_string()));
    assert!(!d.leftovers().iter().any(|n| n.contains(".ordres.")), "{:?}", d.leftovers());
    let mut left = names(&d);
    left.sort();
    assert_eq!(left, ["asked", "conf"], "declared and requested topics stay");
    assert!(d.log().contains("removed a topic created on demand"), "{}", d.log());
}

/// Objects refused as invalid (and ones planted later) are listed by `topics --all` with their reason and
/// removed by `delete`, for admins only; the hint of a creation they block names the commands (issue 11).
#[test]
fn invalid_objects_are_listed_and_deleted_by_admins() {
    let mut d = TestDaemon::start(None);
    d.keep_topics_on_stop();
    d.stop_with(libc::SIGTERM);
    let prefix = d.prefix.clone();
    let plant = |name: &str| {
        let p = std::path::Path::new("/dev/shm").join(format!("{prefix}.{name}"));
        std::fs::write(&p, vec![0x5a; 4096]).unwrap();
        p
    };
    let ghost = [plant("ghost.data"), plant("ghost.readers")];
    d.spawn();
    let late = plant("late.data");
    let out = run(&d, &["topics", "--all"]);
    assert!(out.status.success(), "{}", show(&out));
    let table = text(&out.stdout);
    let row = |n: &str| table.lines().find(|l| l.starts_with(&format!("{n} "))).unwrap_or_default().to_string();
    assert!(row("ghost").contains("invalid: failed validation"), "{table}");
    assert!(row("late").contains("invalid: not a topic of this daemon"), "{table}");
    assert!(!text(&run(&d, &["topics"]).stdout).contains("ghost"), "only with --all");
    let out = run(&d, &["topics", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["invalid"].as_array().map(Vec::len), Some(2), "{v}");
    let out = run(&d, &["sub", "ghost", "--count", "1"]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(text(&out.stderr).contains("shmbus delete ghost"), "the hint names a command: {}", show(&out));
    // nobody administers nothing here: sees none of them and may not delete them.
    let out = nobody(&d, &["topics", "--all"]).output().unwrap();
    assert!(out.status.success() && !text(&out.stdout).contains("ghost"), "{}", show(&out));
    let out = nobody(&d, &["delete", "ghost"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(ghost.iter().all(|p| p.exists()), "{}", show(&out));
    for name in ["ghost", "late"] {
        let out = run(&d, &["delete", name]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    assert!(ghost.iter().chain([&late]).all(|p| !p.exists()));
    let out = run(&d, &["delete", "ghost"]);
    assert_eq!(out.status.code(), Some(4), "gone: {}", show(&out));
    assert!(text(&out.stderr).contains("no such topic"), "{}", show(&out));
    assert!(d.log().contains("deleted objects that were no topic"), "{}", d.log());
}

/// The tables show a topic's generation as 6 hex digits (it was a 19-digit number); `--json` keeps all of it.
#[test]
fn generations_are_short_in_tables_and_whole_in_json() {
    let d = TestDaemon::start(None);
    assert!(run(&d, &["create", "gen"]).status.success());
    let v: Vec<serde_json::Value> = serde_json::from_slice(&run(&d, &["topics", "--json"]).stdout).unwrap();
    let full = v[0]["generation"].as_u64().unwrap();
    let short = format!("{:06x}", full & 0xff_ffff);
    let table = text(&run(&d, &["topics"]).stdout);
    let row = table.lines().find(|l| l.starts_with("gen ")).unwrap_or_default();
    assert!(row.split_whitespace().nth(1) == Some(short.as_str()), "{table}");
    assert!(!table.contains(&full.to_string()), "{table}");
    let stats = text(&run(&d, &["stats", "gen"]).stdout);
    assert!(stats.contains(&format!("(generation {short})")) && !stats.contains(&full.to_string()), "{stats}");
}

/// What a stopped daemon leaves in /dev/shm is what the README says: the topics' objects and its key, lease and
/// remembered-topics files, not its lock file; `--cleanup-on-exit` leaves nothing.
#[test]
fn a_stopped_daemon_leaves_what_the_readme_lists() {
    let files = |prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.strip_prefix('.').unwrap_or(n).starts_with(&format!("{prefix}.")))
            .map(|n| n.replace(prefix, "P"))
            .collect();
        v.sort();
        v
    };
    let mut d = TestDaemon::start(None);
    // Started with --cleanup-on-exit: start again without it.
    d.stop_with(libc::SIGTERM);
    d.keep_topics_on_stop();
    d.spawn();
    assert!(run(&d, &["create", "demo"]).status.success());
    d.stop_with(libc::SIGTERM);
    assert_eq!(files(&d.prefix), [".P.key", ".P.leases", ".P.topics", "P.demo.data", "P.demo.readers"]);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for f in [".P.key", ".P.leases", ".P.topics", "P.demo.data", "P.demo.readers"] {
        assert!(readme.contains(&format!(" {f}\n")), "the README's listing shows {f}");
    }
    let mut clean = TestDaemon::start(None);
    assert!(run(&clean, &["create", "demo"]).status.success());
    clean.stop_with(libc::SIGTERM);
    assert_eq!(files(&clean.prefix), Vec::<String>::new(), "--cleanup-on-exit");
}
