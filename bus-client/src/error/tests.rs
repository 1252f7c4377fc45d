//! Tests of the error types.

use super::*;
use shmbus_proto::ErrorKind;

fn refused(kind: ErrorKind) -> ConnError {
    ConnError::Refused { kind, message: "m".into() }
}

#[test]
fn daemon_kinds_map_to_typed_errors() {
    assert!(matches!(OpenError::from(refused(ErrorKind::NoSuchTopic)), OpenError::NoSuchTopic(_)));
    assert!(matches!(OpenError::from(refused(ErrorKind::PermissionDenied)), OpenError::PermissionDenied(_)));
    assert!(matches!(OpenError::from(refused(ErrorKind::NoFreeSlot)), OpenError::NoFreeSlot(_)));
    assert!(matches!(OpenError::from(refused(ErrorKind::TypeMismatch)), OpenError::TypeMismatch(_)));
    assert!(matches!(OpenError::from(refused(ErrorKind::VersionMismatch)), OpenError::VersionMismatch(_)));
    assert!(matches!(OpenError::from(refused(ErrorKind::InvalidRequest)), OpenError::InvalidTopic(_)));
    assert!(matches!(OpenError::from(refused(ErrorKind::Closed)), OpenError::Closed));
    assert!(matches!(OpenError::from(refused(ErrorKind::ResourceExhausted)), OpenError::ResourceExhausted(_)));
    assert!(matches!(OpenError::from(refused(ErrorKind::Internal)), OpenError::Daemon(_)));
    assert!(matches!(ControlError::from(refused(ErrorKind::AlreadyExists)), ControlError::AlreadyExists(_)));
    assert!(matches!(ControlError::from(refused(ErrorKind::NoSuchTopic)), ControlError::NoSuchTopic(_)));
    assert!(matches!(ControlError::from(refused(ErrorKind::InvalidRequest)), ControlError::InvalidRequest(_)));
    assert!(matches!(ConnectError::from(refused(ErrorKind::VersionMismatch)), ConnectError::VersionMismatch(_)));
    let e = ConnError::Unavailable { path: "/x.sock".into(), source: io::ErrorKind::NotFound.into() };
    assert!(matches!(OpenError::from(e), OpenError::DaemonUnavailable { .. }));
}

#[test]
fn ring_errors_convert() {
    assert_eq!(SendError::from(shmbus_ring::SendError::Full), SendError::Full);
    assert_eq!(
        SendError::from(shmbus_ring::SendError::TooLarge { len: 9, max: 8 }),
        SendError::TooLarge { len: 9, max: 8 }
    );
    assert_eq!(RecvError::from(shmbus_ring::RecvError::Lagged(3)), RecvError::Lagged(3));
    assert_eq!(RecvError::from(shmbus_ring::RecvError::Demoted), RecvError::Demoted);
    assert!(matches!(OpenError::from(shmbus_ring::AttachError::Closed), OpenError::Closed));
    assert!(matches!(
        OpenError::from(shmbus_ring::AttachError::VersionMismatch { found: 2, expected: 1 }),
        OpenError::VersionMismatch(_)
    ));
}

#[test]
fn lag_and_demotion_are_transient_and_the_ends_are_not() {
    let transient =
        [RecvError::Empty, RecvError::Timeout, RecvError::Lagged(2), RecvError::Demoted, RecvError::Decode("x".into())];
    assert!(transient.iter().all(RecvError::is_transient));
    let end = [RecvError::Closed, RecvError::Corrupted("x"), RecvError::Forked];
    assert!(end.iter().all(|e| !e.is_transient()));
    assert!(RecvError::Lagged(2).is_lag());
    assert_eq!(RecvError::Lagged(2).lagged(), Some(2));
    assert!(transient.iter().chain(&end).filter(|e| e.is_lag()).count() == 1, "only Lagged is a lag");
    let all: Vec<_> = transient.iter().chain(&end).collect();
    let only = |f: fn(&RecvError) -> bool| all.iter().filter(|e| f(e)).map(|e| e.to_string()).collect::<Vec<_>>();
    assert_eq!(only(RecvError::is_empty), ["no message available"]);
    assert_eq!(only(RecvError::is_timeout), ["timed out waiting for a message"]);
    assert_eq!(only(RecvError::is_closed), ["topic is closed"]);
}

#[test]
fn display_is_short_and_lowercase() {
    assert_eq!(SendError::Full.to_string(), "topic is full");
    assert_eq!(RecvError::Lagged(7).to_string(), "lagged behind by 7 messages");
    assert_eq!(SendError::TooLarge { len: 10, max: 4 }.to_string(), "message of 10 bytes exceeds the maximum of 4");
    let e = OpenError::DaemonUnavailable { path: "/run/x.sock".into(), source: io::Error::from_raw_os_error(2) };
    let want = "daemon unavailable at /run/x.sock: No such file or directory (os error 2) (is shmbusd running? \
                start it, or set SHMBUS_SOCKET (shmbus: --socket) to its socket)";
    assert_eq!(e.to_string(), want, "the OS reason and a hint");
    assert!(std::error::Error::source(&e).is_some(), "the reason is also the source, for programs that walk it");
    let e = ConnectError::from(ConnError::Unavailable {
        path: "/run/y.sock".into(),
        source: io::Error::from_raw_os_error(13),
    });
    let want = "daemon unavailable at /run/y.sock: Permission denied (os error 13) (this user may not use that \
                socket; set SHMBUS_SOCKET (shmbus: --socket) to one it may use)";
    assert_eq!(e.to_string(), want);
    let e = ConnectError::from(ConnError::Unavailable {
        path: "/run/z.sock".into(),
        source: io::Error::from_raw_os_error(111),
    });
    let want = "daemon unavailable at /run/z.sock: Connection refused (os error 111) (nothing listens there, a stale \
                socket? is shmbusd running? start it, or set SHMBUS_SOCKET (shmbus: --socket) to its socket)";
    assert_eq!(e.to_string(), want);
    let e = ConnectError::UntrustedDaemon { path: "/s.sock".into(), uid: 65534 };
    let want = "untrusted daemon at /s.sock: uid 65534 is not root, this user or the daemon user (to allow it, \
                set SHMBUS_DAEMON_USER=65534)";
    assert_eq!(e.to_string(), want);
    let e = ControlError::from(ConnError::UnsafeSocket { path: "/t/s.sock".into(), why: "/t is x".into() });
    assert_eq!(e.to_string(), "unsafe socket directory for /t/s.sock: /t is x");
}

#[test]
fn a_failed_wait_keeps_the_os_error_as_its_source() {
    let e = RecvError::Wait(WaitError::io("poll", io::Error::from_raw_os_error(12)));
    assert_eq!(e.to_string(), "cannot wait on a descriptor: poll: Cannot allocate memory (os error 12)");
    assert!(!e.is_transient() && !e.is_closed(), "an OS failure is neither a report nor a clean close");
    let w = std::error::Error::source(&e).expect("the wait error");
    let os = w.source().expect("the OS error").downcast_ref::<io::Error>().expect("an io::Error");
    assert_eq!(os.raw_os_error(), Some(12));
    let RecvError::Wait(w) = &e else { unreachable!() };
    assert_eq!(w.io_error().map(io::Error::kind), Some(io::ErrorKind::OutOfMemory));
    assert_eq!(e.clone(), e, "still Clone and Eq");
    assert_ne!(e, RecvError::Wait(WaitError::io("poll", io::Error::from_raw_os_error(4))));
    let none = SendError::Wait(WaitError::new("a pipe publisher has no wait descriptor"));
    assert!(std::error::Error::source(&none).unwrap().source().is_none(), "no OS error, no source below");
}
