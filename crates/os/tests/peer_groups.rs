//! `SO_PEERGROUPS` gives the groups a peer had when it connected, whatever it does afterwards: a child connects
//! with supplementary groups 4242 and 4343, then changes them to 4545 and exits before the accepting side reads
//! them. `/proc/<pid>/status` (what the daemon used to read) shows 4545 while the child lives and nothing once it
//! is gone (or, after pid reuse, another process's groups).
//!
//! Needs root (setgroups); skipped, saying so, otherwise. Kept in its own test binary: the child is forked
//! without `exec` and must not inherit the descriptors of other tests running at that moment.

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;

/// The `Groups:` line of `/proc/<pid>/status`, `None` when the process is gone.
fn proc_groups(pid: i32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    Some(line.split_whitespace().filter_map(|g| g.parse().ok()).collect())
}

#[test]
fn peer_groups_are_those_at_connect_time() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED peer_groups_are_those_at_connect_time: needs root for setgroups");
        return;
    }
    let path = std::env::temp_dir().join(format!("shmbus-os-peer-groups-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    // Everything the child needs is prepared before the fork: it only makes raw system calls.
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_encoded_bytes();
    assert!(bytes.len() < addr.sun_path.len());
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let at_connect: [libc::gid_t; 2] = [4242, 4343];
    let later: [libc::gid_t; 1] = [4545];
    let connected = shmbus_os::pipe().unwrap();
    let go = shmbus_os::pipe().unwrap();
    // SAFETY: the child makes only async-signal-safe raw system calls on values prepared before the fork, then
    // `_exit`s; it never returns into the test harness.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            // SAFETY: raw system calls on valid pointers to the arrays and the address above, all alive until
            // `_exit`. SYS_setgroups changes this (single-threaded) child's credentials only.
            unsafe {
                // Without the parent's ends, a parent that fails (and exits) ends the child's wait below.
                libc::close(go.write.as_raw_fd());
                libc::close(connected.read.as_raw_fd());
                let ok = libc::syscall(libc::SYS_setgroups, at_connect.len(), at_connect.as_ptr()) == 0;
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let ok = ok
                    && libc::connect(
                        fd,
                        (&addr as *const libc::sockaddr_un).cast(),
                        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                    ) == 0;
                let ok = ok && libc::syscall(libc::SYS_setgroups, later.len(), later.as_ptr()) == 0;
                let byte = [ok as u8];
                libc::write(connected.write.as_raw_fd(), byte.as_ptr().cast(), 1);
                let mut wait = [0u8; 1];
                libc::read(go.read.as_raw_fd(), wait.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        ForkResult::Parent { child } => {
            drop(connected.write);
            let mut ok = [0u8; 1];
            assert_eq!(nix::unistd::read(&connected.read, &mut ok).unwrap(), 1);
            assert_eq!(ok[0], 1, "the child could not set its groups or connect");
            let (stream, _) = listener.accept().unwrap();
            let _ = std::fs::remove_file(&path);
            assert_eq!(proc_groups(child.as_raw()), Some(vec![4545]), "/proc shows the groups of now");
            let mut g = shmbus_os::peer_groups(stream.as_fd()).unwrap();
            g.sort_unstable();
            assert_eq!(g, vec![4242, 4343], "SO_PEERGROUPS gives the groups at connect time");
            // The child exits (and is reaped, so its pid is free for reuse) before the credentials are read again.
            nix::unistd::write(&go.write, &[1]).unwrap();
            waitpid(child, None).unwrap();
            assert_eq!(proc_groups(child.as_raw()).filter(|g| g.contains(&4242)), None);
            let mut g = shmbus_os::peer_groups(stream.as_fd()).unwrap();
            g.sort_unstable();
            assert_eq!(g, vec![4242, 4343], "SO_PEERGROUPS outlives the peer");
            assert_eq!(shmbus_os::peer_cred(stream.as_fd()).unwrap().pid, child.as_raw());
        }
    }
}
