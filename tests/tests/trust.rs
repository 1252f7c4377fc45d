//! Clients talk only to the real daemon (issue 15): with a second account (`nobody`), a socket planted in a
//! world-writable temp directory is never used, a fake daemon is refused on its kernel credentials, and a daemon
//! refuses a socket directory it does not own or that others may write. (Memory objects of the wrong owner or
//! mode are refused in `bus-client/tests/fake_daemon.rs`, whose test double speaks the protocol.) A set-user-ID
//! client ignores the environment variables that would point it at another socket, daemon user or pipes.
//!
//! Tests that need `nobody` are skipped, with a printed message, when not run as root.

use shmbus_tests::daemon::binary;
use shmbus_tests::hostile::{root_or_skip, FakeDaemon, Scratch, NOBODY};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The CLI with the default discovery rooted at `tmp` (no `SHMBUS_SOCKET`, no `XDG_RUNTIME_DIR`).
fn cli_discovering(tmp: &Path) -> Command {
    let mut c = Command::new(binary("it-shmbus"));
    c.env("TMPDIR", tmp)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("SHMBUS_SOCKET")
        .env_remove("SHMBUS_DAEMON_USER")
        .env_remove("RUST_LOG");
    c
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout)
}

/// Whether a socket at the daemon user's standard place would be found before the temp directory.
fn run_shmbus_is_live() -> bool {
    let live = Path::new("/run/shmbus/control.sock").exists();
    if live {
        println!("SKIPPED: /run/shmbus/control.sock exists on this machine and would be found first");
    }
    live
}

/// Waits (bounded) until the fake logged `n` connections.
fn connections(fake: &FakeDaemon, n: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = fake.connections();
        if c.len() >= n || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory (traversable by nobody) holding `dir`, owned by nobody with `mode`, where a fake daemon run
/// as nobody listens on `control.sock`.
fn fake_daemon_of_nobody(
    scratch: &str,
    dir: &str,
    mode: u32,
) -> (Scratch, std::path::PathBuf, std::path::PathBuf, FakeDaemon) {
    let tmp = Scratch::new(scratch);
    tmp.traversable();
    let dir = tmp.dir(dir, NOBODY, mode);
    let sock = dir.join("control.sock");
    let fake = FakeDaemon::start(&sock, &dir.join("log"));
    (tmp, dir, sock, fake)
}

#[test]
fn a_socket_planted_by_nobody_in_a_world_writable_tmp_dir_is_never_used() {
    if !root_or_skip("a_socket_planted_by_nobody_in_a_world_writable_tmp_dir_is_never_used") || run_shmbus_is_live() {
        return;
    }
    // As in the issue: `nobody` runs `mkdir -m 0777 <tmp>/shmbus-0` and listens on `control.sock` there.
    let (tmp, planted, sock, fake) = fake_daemon_of_nobody("planted", "shmbus-0", 0o777);

    let out = cli_discovering(&tmp.0).args(["topics", "-v"]).output().unwrap();
    let err = text(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let why = format!(
        "unsafe socket directory for {}: {} is owned by uid 65534 and writable by group or others (mode 0777)",
        sock.display(),
        planted.display()
    );
    assert!(err.contains(&why), "the error says why the socket is not used:\n{err}");
    assert!(err.contains("skipping a socket in an unsafe directory"), "-v reports the skipped candidate:\n{err}");

    let out = cli_discovering(&tmp.0).arg("doctor").output().unwrap();
    let report = text(&out);
    assert!(!out.status.success(), "doctor exits nonzero on a planted socket:\n{report}");
    assert!(report.contains("unsafe: directory is owned by uid 65534"), "{report}");
    assert!(report.contains(&format!("UNSAFE: {} is owned by uid 65534", planted.display())), "{report}");

    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fake.connections(), Vec::<i64>::new(), "no client ever connected to the planted socket");
}

#[test]
fn a_fake_daemon_running_as_nobody_is_refused_on_its_credentials() {
    if !root_or_skip("a_fake_daemon_running_as_nobody_is_refused_on_its_credentials") {
        return;
    }
    let (tmp, _dir, sock, fake) = fake_daemon_of_nobody("fake", "nobody", 0o700);

    // Pointed at it explicitly: no directory check applies, the kernel's SO_PEERCRED does.
    let out = cli_discovering(&tmp.0).arg("--socket").arg(&sock).arg("topics").output().unwrap();
    let err = text(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&format!("untrusted daemon at {}: uid 65534", sock.display())), "{err}");
    assert!(err.contains("SHMBUS_DAEMON_USER=65534"), "the error says how to allow it:\n{err}");
    assert_eq!(connections(&fake, 1), vec![0], "the client hung up without sending a byte");

    let e = bus_client::Bus::connect_to(&sock).unwrap_err();
    assert!(matches!(e, bus_client::ConnectError::UntrustedDaemon { uid: NOBODY, .. }), "{e}");
    assert_eq!(connections(&fake, 2), vec![0, 0]);

    // Allowing the daemon user makes the client talk (the fake then hangs up on it).
    let out = cli_discovering(&tmp.0)
        .arg("--socket")
        .arg(&sock)
        .arg("topics")
        .env("SHMBUS_DAEMON_USER", "nobody")
        .output()
        .unwrap();
    assert!(!text(&out).contains("untrusted daemon"), "{}", text(&out));
    let c = connections(&fake, 3);
    assert!(c.len() == 3 && c[2] > 0, "with SHMBUS_DAEMON_USER=nobody the client sent its hello: {c:?}");
}

/// Runs `it-shmbusd` on `socket` and expects it to refuse to start, returning its stderr.
fn daemon_refuses(socket: &Path) -> String {
    let prefix = format!("trust{}", std::process::id());
    let mut child = Command::new(binary("it-shmbusd"))
        .arg("--socket")
        .arg(socket)
        .args(["--shm-prefix", &prefix, "--cleanup-on-exit"])
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shmbusd started on {}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "shmbusd exited 0 on {}", socket.display());
    assert!(!socket.exists(), "no socket was bound at {}", socket.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_daemon_refuses_a_socket_directory_it_does_not_own_or_others_may_write() {
    let tmp = Scratch::new("daemon");
    let me = shmbus_proto::trust::own_uid();
    let open = tmp.dir("open", me, 0o777);
    let err = daemon_refuses(&open.join("control.sock"));
    let want = format!("unsafe socket directory {}: writable by group or others (mode 0777)", open.display());
    assert!(err.contains(&want), "{err}");

    if !root_or_skip("the_daemon_refuses_a_socket_directory_it_does_not_own (another user's directory)") {
        return;
    }
    let foreign = tmp.dir("foreign", NOBODY, 0o755);
    let err = daemon_refuses(&foreign.join("control.sock"));
    assert!(err.contains(&format!("unsafe socket directory {}: owned by uid 65534", foreign.display())), "{err}");
}

/// Kills the daemon on drop (a failing test must not leave it behind).
struct Reap(std::process::Child);
impl Drop for Reap {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_daemon_creates_its_socket_directory_0700_where_clients_find_it() {
    if run_shmbus_is_live() {
        return;
    }
    // As root, the daemon would pick /run/shmbus: run it (and its clients) as nobody, whose fallback is the temp
    // directory; as another user, run them as that user.
    let tmp = Scratch::new("fallback");
    let root = shmbus_proto::trust::own_uid() == 0;
    let uid = if root { NOBODY } else { shmbus_proto::trust::own_uid() };
    let base = if root {
        tmp.traversable();
        tmp.dir("tmp", NOBODY, 0o700)
    } else {
        tmp.0.clone()
    };
    let as_user = |mut c: Command| {
        if root {
            c.uid(NOBODY).gid(NOBODY);
        }
        c
    };
    let mut daemon = Command::new(binary("it-shmbusd"));
    daemon
        .args(["--shm-prefix", &format!("trustfb{}", std::process::id()), "--cleanup-on-exit"])
        .env("TMPDIR", &base)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("SHMBUS_SOCKET")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _daemon = Reap(as_user(daemon).spawn().unwrap());
    let dir = base.join(format!("shmbus-{uid}"));
    let sock = dir.join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "shmbusd did not come up at {}", sock.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(format!("{mode:04o}"), "0700", "the daemon made {} private", dir.display());

    let out = as_user(cli_discovering(&base)).arg("topics").output().unwrap();
    assert!(out.status.success(), "a client found the daemon in the temp directory: {}", text(&out));
    let out = as_user(cli_discovering(&base)).arg("doctor").output().unwrap();
    let report = text(&out);
    assert!(out.status.success() && report.contains("ok, used"), "{report}");
    assert!(report.contains(&format!("daemon at {}", sock.display())), "{report}");
}

/// Whether the filesystem holding `dir` honours set-user-ID bits (`findmnt` shows no `nosuid`).
fn suid_allowed(dir: &Path) -> bool {
    let out = Command::new("findmnt").args(["-n", "-o", "OPTIONS", "-T"]).arg(dir).output().expect("run findmnt");
    assert!(out.status.success(), "findmnt: {}", text(&out));
    !String::from_utf8_lossy(&out.stdout).split(',').any(|o| o.trim() == "nosuid")
}

/// Runs `exe` as root with the trust-redirecting variables set (the pipes entry naming the read end of `pipe`,
/// inherited) and returns its `key value` lines.
fn probe(exe: &Path, args: &[&str], pipe: &shmbus_os::Pipe) -> std::collections::HashMap<String, String> {
    use std::os::fd::AsRawFd;
    let fd = pipe.read.as_raw_fd();
    let (_, inode) = shmbus_os::fd::fifo_inode(fd).unwrap();
    let mut c = Command::new(exe);
    c.args(args)
        .env("SHMBUS_SOCKET", "/tmp/somewhere/control.sock")
        .env("SHMBUS_DAEMON_USER", "4242")
        .env("SHMBUS_PIPES", format!("jobs={fd}:r:{inode}"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    shmbus_os::fd::inherit_in_child(&mut c, vec![fd]);
    let out = c.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.lines().filter_map(|l| l.split_once(' ')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn a_setuid_client_ignores_the_environment_that_redirects_trust() {
    if !root_or_skip("a_setuid_client_ignores_the_environment_that_redirects_trust") {
        return;
    }
    let tmp = Scratch::new("setuid");
    if !suid_allowed(&tmp.0) {
        println!("SKIPPED a_setuid_client_ignores_the_environment_that_redirects_trust: {} is nosuid", tmp.0.display());
        return;
    }
    // Root-owned copies without the bit, and copies owned by nobody with it: run by root, the latter have
    // euid nobody, ruid root, so the kernel sets AT_SECURE.
    let copy = |name: &str, setuid: bool| {
        let to = tmp.0.join(format!("{name}{}", if setuid { "-setuid" } else { "" }));
        std::fs::copy(binary(name), &to).unwrap();
        if setuid {
            std::os::unix::fs::chown(&to, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(if setuid { 0o4755 } else { 0o755 })).unwrap();
        to
    };
    let pipe = shmbus_os::pipe().unwrap();

    let plain = probe(&copy("env-probe", false), &[], &pipe);
    let get = |m: &std::collections::HashMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
    assert_eq!(get(&plain, "secure"), "false", "{plain:?}");
    assert_eq!(get(&plain, "socket"), "/tmp/somewhere/control.sock", "honoured without the bit: {plain:?}");
    assert_eq!(get(&plain, "given"), "true");
    assert_eq!(get(&plain, "daemon_user"), "4242");
    assert_eq!(get(&plain, "pipes"), "1", "the inherited pipe is claimed without the bit: {plain:?}");

    let setuid = probe(&copy("env-probe", true), &[], &pipe);
    assert_eq!(get(&setuid, "secure"), "true", "a set-user-ID copy runs in secure execution: {setuid:?}");
    assert_ne!(get(&setuid, "socket"), "/tmp/somewhere/control.sock", "SHMBUS_SOCKET honoured: {setuid:?}");
    assert_eq!(get(&setuid, "given"), "false", "{setuid:?}");
    assert_ne!(get(&setuid, "daemon_user"), "4242", "SHMBUS_DAEMON_USER honoured: {setuid:?}");
    assert_eq!(get(&setuid, "pipes"), "0", "SHMBUS_PIPES honoured: {setuid:?}");
    assert_eq!(get(&setuid, "ignored"), "SHMBUS_SOCKET,SHMBUS_DAEMON_USER,SHMBUS_PIPES");

    // The CLI reads the socket through the library too: its doctor says whether the socket was given.
    let said = |exe: &Path| {
        let mut c = Command::new(exe);
        c.arg("doctor").env("SHMBUS_SOCKET", "/tmp/somewhere/control.sock").env_remove("RUST_LOG");
        text(&c.stdin(Stdio::null()).output().unwrap())
    };
    let plain = said(&copy("it-shmbus", false));
    assert!(plain.contains("socket given") && plain.contains("/tmp/somewhere/control.sock"), "{plain}");
    let setuid = said(&copy("it-shmbus", true));
    assert!(!setuid.contains("socket given") && setuid.contains("candidates, in order:"), "{setuid}");
    assert!(setuid.contains("ignored in this set-user-ID or set-group-ID process: SHMBUS_SOCKET"), "{setuid}");
}
