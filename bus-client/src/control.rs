//! The control plane shared by a [`Bus`](crate::Bus) and every handle opened from it: one serialized connection
//! to the daemon, the registry of live leases, and reconnection with re-registration of those leases.
//!
//! Lock order: `state` before `leases`, and both before the closer's queue (taken last, for a push or a take);
//! none is held while sleeping (the keeper backs off unlocked).

use crate::closer::{self, Closer, Closes, Pending};
use crate::conn::{describe, Conn, Reply};
use crate::error::ConnError;
use crate::fork;
use crate::keeper::{self, Watched};
use shmbus_proto::msg::{LeaseReply, Resume, Role, SubMode, TypeInfo};
use shmbus_proto::{Request, Response};
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::{Duration, Instant};

/// Bound on the `Close` exchange that gives a dropped handle's lease back to the daemon. Dropping a handle does
/// not wait for it: the `Close` is sent by a background thread (or before the next request on the connection).
/// When it times out, the connection is dropped and the daemon learns of the release from its end.
pub const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How to reach the daemon and how patiently.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Control socket.
    pub(crate) path: PathBuf,
    /// Found by discovery rather than given: its directory is checked before every connection.
    pub(crate) discovered: bool,
    /// Sent in `Hello`.
    pub(crate) client: String,
    /// Bound on one request's round trip.
    pub(crate) timeout: Duration,
    /// Run the keeper thread (reconnect and re-register in the background).
    pub(crate) auto_reconnect: bool,
}

/// What a lease is for: enough to ask for it again after a daemon restart.
#[derive(Clone, Debug)]
pub(crate) struct LeaseSpec {
    pub(crate) topic: String,
    pub(crate) kind: LeaseKind,
    pub(crate) payload_type: Option<TypeInfo>,
    /// Bound on the lease request's round trip when opening (`None`: the bus's request timeout).
    pub(crate) open_timeout: Option<Duration>,
}

/// Publisher or subscriber, with the subscriber's options.
#[derive(Clone, Debug)]
pub(crate) enum LeaseKind {
    Publisher,
    Subscriber { mode: SubMode, from_oldest: bool },
}

impl LeaseSpec {
    pub(crate) fn request(&self, resume: Option<Resume>) -> Request {
        let topic = self.topic.clone();
        let payload_type = self.payload_type.clone();
        match &self.kind {
            LeaseKind::Publisher => Request::OpenPublisher { topic, payload_type, resume },
            LeaseKind::Subscriber { mode, from_oldest } => {
                Request::OpenSubscriber { topic, mode: mode.clone(), from_oldest: *from_oldest, payload_type, resume }
            }
        }
    }
}

/// The slot a role names.
pub(crate) fn role_slot(role: Role) -> u32 {
    match role {
        Role::Publisher { slot } | Role::Subscriber { slot, .. } => slot,
    }
}

/// A live lease as the registry knows it.
struct LeaseRecord {
    spec: LeaseSpec,
    resume: Resume,
    /// The daemon's id of the lease on connection `epoch`.
    daemon_lease: u64,
    epoch: u64,
    closed: Arc<AtomicBool>,
}

/// A lease just granted: the reply, its two descriptors, and its registration.
pub(crate) struct Granted {
    pub(crate) reply: LeaseReply,
    pub(crate) fds: Vec<OwnedFd>,
    /// Registry key (stable across reconnections).
    pub(crate) local: u64,
    /// Set when the lease cannot be re-registered (topic recreated or deleted while the daemon was away).
    pub(crate) closed: Arc<AtomicBool>,
}

struct State {
    conn: Option<Conn>,
    /// Bumped for every new connection.
    epoch: u64,
}

/// Shared by a `Bus`, its clones and its handles.
pub(crate) struct Control {
    pub(crate) config: Config,
    /// Fork generation of the process that created this control; a child builds its own.
    fork_gen: u64,
    state: Mutex<State>,
    leases: Mutex<HashMap<u64, LeaseRecord>>,
    next_local: AtomicU64,
    /// Mirror of `state.epoch`, readable without the lock (the keeper's "has the connection changed?").
    epoch: AtomicU64,
    keeper_started: AtomicBool,
    /// Leases of dropped handles still to close, and whether the thread that closes them runs.
    closer: Arc<Closer>,
    closer_started: AtomicBool,
    /// The control a forked child uses instead of this one (only ever locked in a child).
    child: Mutex<Option<(u64, Arc<Control>)>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("path", &self.config.path).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves consistent data behind (every update is a single assignment).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Control {
    pub(crate) fn new(config: Config) -> Arc<Control> {
        fork::install();
        Arc::new(Control {
            config,
            fork_gen: fork::generation(),
            state: Mutex::new(State { conn: None, epoch: 0 }),
            leases: Mutex::new(HashMap::new()),
            next_local: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            keeper_started: AtomicBool::new(false),
            closer: Arc::new(Closer::default()),
            closer_started: AtomicBool::new(false),
            child: Mutex::new(None),
        })
    }

    /// The control this process should use: `self`, or in a forked child a fresh one with the same settings
    /// (the inherited connection belongs to the parent and is never written to).
    pub(crate) fn for_this_process(self: &Arc<Self>) -> Arc<Control> {
        let g = fork::generation();
        if g == self.fork_gen {
            return self.clone();
        }
        let mut child = lock(&self.child);
        match &*child {
            Some((cg, c)) if *cg == g => c.clone(),
            _ => {
                let c = Control::new(self.config.clone());
                *child = Some((g, c.clone()));
                c
            }
        }
    }

    /// Connects now if not connected.
    pub(crate) fn connect(self: &Arc<Self>) -> Result<(), ConnError> {
        let mut st = lock(&self.state);
        self.ensure(&mut st, self.config.timeout).map(drop)
    }

    /// The daemon's self-description, when connected.
    pub(crate) fn daemon(&self) -> Option<String> {
        lock(&self.state).conn.as_ref().map(|c| c.daemon.clone())
    }

    /// One request; an `Error` response becomes `ConnError::Refused`.
    pub(crate) fn request(self: &Arc<Self>, req: &Request) -> Result<Response, ConnError> {
        let timeout = self.config.timeout;
        self.with_conn(timeout, |conn, _| match conn.request(req, timeout)?.response {
            Response::Error { kind, message } => Err(ConnError::Refused { kind, message }),
            r => Ok(r),
        })
    }

    /// Asks for a lease and registers it (under the connection lock, so a reconnection cannot miss it).
    pub(crate) fn open_lease(self: &Arc<Self>, spec: &LeaseSpec) -> Result<Granted, ConnError> {
        let timeout = spec.open_timeout.unwrap_or(self.config.timeout);
        let req = spec.request(None);
        self.with_conn(timeout, |conn, epoch| match conn.request(&req, timeout)? {
            Reply { response: Response::Lease(reply), fds } => {
                let local = self.next_local.fetch_add(1, Ordering::Relaxed);
                let closed = Arc::new(AtomicBool::new(false));
                let record = LeaseRecord {
                    spec: spec.clone(),
                    resume: Resume {
                        generation: reply.generation,
                        slot: role_slot(reply.role),
                        token: reply.resume_token,
                    },
                    daemon_lease: reply.lease,
                    epoch,
                    closed: closed.clone(),
                };
                lock(&self.leases).insert(local, record);
                self.start_closer();
                Ok(Granted { reply, fds, local, closed })
            }
            Reply { response: Response::Error { kind, message }, .. } => Err(ConnError::Refused { kind, message }),
            Reply { response, .. } => {
                Err(ConnError::Protocol(format!("expected a lease, the daemon sent {}", describe(&response))))
            }
        })
    }

    /// Forgets lease `local` and queues its `Close` for the closer thread, without waiting for the daemon (see
    /// `closer.rs`). Without a closer thread (it could not be started), closes here,
    /// best effort, bounded by [`CLOSE_TIMEOUT`] (or the request timeout if that is shorter): when the
    /// connection stays busy, or the exchange times out, the daemon learns of it from the released lock or the
    /// connection's end instead.
    pub(crate) fn release(self: &Arc<Self>, local: u64) {
        let Some(rec) = lock(&self.leases).remove(&local) else { return };
        // Relaxed: set once, before any lease this control registers can be released (in `open_lease`).
        if self.closer_started.load(Ordering::Relaxed) {
            let keep: Arc<dyn Closes> = self.clone();
            self.closer.push(Pending { lease: rec.daemon_lease, epoch: rec.epoch, _keep_alive: Some(keep) });
            return;
        }
        self.closer.push(Pending { lease: rec.daemon_lease, epoch: rec.epoch, _keep_alive: None });
        let deadline = Instant::now() + CLOSE_TIMEOUT.min(self.config.timeout);
        let mut st = loop {
            match self.state.try_lock() {
                Ok(g) => break g,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(TryLockError::WouldBlock) => {
                    tracing::debug!(
                        lease = rec.daemon_lease,
                        "control connection busy; close left for the next request"
                    );
                    return;
                }
            }
        };
        self.send_closes(&mut st);
    }

    /// Sends the queued `Close`s that belong to the current connection (those of an earlier one were released
    /// when it ended), each bounded by [`CLOSE_TIMEOUT`]; a failed exchange drops the connection.
    fn send_closes(&self, st: &mut State) {
        let close_timeout = CLOSE_TIMEOUT.min(self.config.timeout);
        for p in self.closer.take() {
            if p.epoch != st.epoch {
                continue;
            }
            let Some(conn) = st.conn.as_mut() else { continue };
            if let Err(e) = close_on(conn, p.lease, close_timeout) {
                tracing::debug!(lease = p.lease, error = ?e, "closing a lease failed; dropping the connection");
                self.drop_conn(st);
            }
        }
    }

    /// Starts the closer thread once; if it cannot start, dropping handles closes their leases itself.
    fn start_closer(self: &Arc<Self>) {
        // Relaxed: only one caller wins the swap; `release` reads the flag only to choose who closes.
        if self.closer_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let this: Arc<dyn Closes> = self.clone();
        let weak: Weak<dyn Closes> = Arc::downgrade(&this);
        if let Err(e) = closer::spawn(weak, self.closer.clone()) {
            tracing::warn!(error = %e, "cannot start the closer thread; dropping a handle will wait for the daemon");
            self.closer_started.store(false, Ordering::Relaxed);
        }
    }

    /// Runs `f` on the connection, connecting first if needed (the handshake bounded by `timeout`). A connection
    /// that turns out to be dead (the daemon restarted while we were idle) is replaced once; any connection-level
    /// error drops the connection.
    fn with_conn<T>(
        self: &Arc<Self>,
        timeout: Duration,
        f: impl Fn(&mut Conn, u64) -> Result<T, ConnError>,
    ) -> Result<T, ConnError> {
        let mut st = lock(&self.state);
        // Closes queued by dropped handles go first: a request after a drop must find the lease given back.
        self.send_closes(&mut st);
        let fresh = self.ensure(&mut st, timeout)?;
        let epoch = st.epoch;
        let r = f(st.conn.as_mut().expect("connected"), epoch);
        let r = match r {
            Err(ConnError::Io(e)) if !fresh && is_disconnect(&e) => {
                tracing::debug!(error = %e, "control connection was lost; reconnecting");
                self.drop_conn(&mut st);
                self.ensure(&mut st, timeout)?;
                let epoch = st.epoch;
                f(st.conn.as_mut().expect("connected"), epoch)
            }
            r => r,
        };
        if matches!(
            r,
            Err(ConnError::Io(_) | ConnError::Timeout | ConnError::Protocol(_) | ConnError::UntrustedObject(_))
        ) {
            self.drop_conn(&mut st);
        }
        r
    }

    /// Connects if not connected; `true` if a new connection was made. The handshake is bounded by `timeout`; re-registering the open leases by the bus's request timeout.
    fn ensure(self: &Arc<Self>, st: &mut State, timeout: Duration) -> Result<bool, ConnError> {
        if st.conn.is_some() {
            return Ok(false);
        }
        let conn = Conn::open(&self.config.path, self.config.discovered, &self.config.client, timeout)?;
        tracing::debug!(socket = %self.config.path.display(), daemon = %conn.daemon, "connected to the daemon");
        st.conn = Some(conn);
        st.epoch += 1;
        // Release: pairs with the keeper's Acquire load; only a hint to re-read under the lock.
        self.epoch.store(st.epoch, Ordering::Release);
        if let Err(e) = self.reregister(st) {
            self.drop_conn(st);
            return Err(e);
        }
        self.start_keeper();
        Ok(true)
    }

    fn drop_conn(&self, st: &mut State) {
        if let Some(c) = st.conn.take() {
            c.shutdown();
        }
    }

    /// Re-registers every live lease not yet registered on the current connection (after a daemon restart).
    fn reregister(&self, st: &mut State) -> Result<(), ConnError> {
        let epoch = st.epoch;
        let todo: Vec<(u64, LeaseSpec, Resume)> = lock(&self.leases)
            .iter()
            // Relaxed: `closed` is a flag this module sets; a stale read re-registers a closed lease once more.
            .filter(|(_, r)| r.epoch != epoch && !r.closed.load(Ordering::Relaxed))
            .map(|(k, r)| (*k, r.spec.clone(), r.resume))
            .collect();
        let timeout = self.config.timeout;
        for (local, spec, resume) in todo {
            let conn = st.conn.as_mut().expect("connected");
            let reply = conn.request(&spec.request(Some(resume)), timeout)?;
            match reply.response {
                Response::Lease(l) => {
                    // The client keeps its mapping: the descriptors of a resumed lease are not needed.
                    drop(reply.fds);
                    let same = l.generation == resume.generation && role_slot(l.role) == resume.slot;
                    let mut leases = lock(&self.leases);
                    match leases.get_mut(&local) {
                        Some(rec) if same => {
                            rec.daemon_lease = l.lease;
                            rec.epoch = epoch;
                            tracing::info!(topic = %spec.topic, slot = resume.slot, lease = l.lease, "lease re-registered");
                            continue;
                        }
                        Some(rec) => {
                            rec.closed.store(true, Ordering::Relaxed);
                            tracing::warn!(
                                topic = %spec.topic,
                                generation = resume.generation,
                                new_generation = l.generation,
                                "topic changed while the daemon was away; the handle is closed"
                            );
                        }
                        None => {}
                    }
                    drop(leases);
                    close_on(conn, l.lease, timeout)?;
                }
                Response::Error { kind, message } => {
                    if let Some(rec) = lock(&self.leases).get_mut(&local) {
                        rec.closed.store(true, Ordering::Relaxed);
                    }
                    tracing::warn!(topic = %spec.topic, ?kind, %message, "the daemon refused to resume a lease; the handle is closed");
                }
                other => return Err(ConnError::Protocol(format!("expected a lease, got {}", describe(&other)))),
            }
        }
        Ok(())
    }

    fn start_keeper(self: &Arc<Self>) {
        if self.config.auto_reconnect && !self.keeper_started.swap(true, Ordering::Relaxed) {
            let watched: Arc<dyn Watched> = self.clone();
            keeper::spawn(Arc::downgrade(&watched));
        }
    }
}

impl Closes for Control {
    fn flush_closes(&self) {
        let mut st = lock(&self.state);
        self.send_closes(&mut st);
    }
}

impl Watched for Control {
    /// The current connection's epoch (0: never connected).
    fn epoch(&self) -> u64 {
        // Acquire: pairs with the Release in `ensure`.
        self.epoch.load(Ordering::Acquire)
    }

    /// A descriptor to watch the current connection with, and its epoch; `None` when disconnected.
    fn watch(&self) -> Option<(OwnedFd, u64)> {
        let st = lock(&self.state);
        let fd = st.conn.as_ref()?.watch_fd().ok()?;
        Some((fd, st.epoch))
    }

    /// The keeper saw connection `epoch` end.
    fn lost(&self, epoch: u64) {
        let mut st = lock(&self.state);
        if st.epoch == epoch && st.conn.is_some() {
            let socket = self.config.path.display();
            if self.has_leases() {
                tracing::warn!(%socket, "lost the daemon connection; open handles keep working while reconnecting");
            } else {
                tracing::debug!(%socket, "lost the daemon connection; reconnecting on the next request");
            }
            self.drop_conn(&mut st);
        }
    }

    fn reconnect(self: Arc<Self>) -> Result<(), ConnError> {
        self.connect()
    }

    /// Whether any lease is registered (then the keeper reconnects eagerly; otherwise requests reconnect lazily).
    fn has_leases(&self) -> bool {
        !lock(&self.leases).is_empty()
    }
}

/// Sends `Close` for `lease` and reads the reply (a refusal is fine: the daemon may not know the lease).
fn close_on(conn: &mut Conn, lease: u64, timeout: Duration) -> Result<(), ConnError> {
    match conn.request(&Request::Close { lease }, timeout)?.response {
        Response::Done | Response::Error { .. } => Ok(()),
        other => Err(ConnError::Protocol(format!("unexpected reply to close: {}", describe(&other)))),
    }
}

fn is_disconnect(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected)
}
