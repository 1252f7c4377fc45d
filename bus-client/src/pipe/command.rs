//! Handing pipes to child processes: [`PipeCommand`] around a `std::process::Command`, and [`SharedPipe`] for
//! several children writing into one pipe.

use crate::bus::Bus;
use crate::error::OpenError;
use crate::pipe_io::inherit::{self, Direction, Entry, PIPES_ENV};
use crate::pipe_io::roster::Roster;
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command};
use std::sync::Arc;

impl Bus {
    /// A child process to spawn connected to this one: through pipes if this bus uses them (see
    /// [`Bus::transport`]), else through the daemon, with the same handles either way. See [`PipeCommand`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = bus_client::Bus::builder().fallback_to_pipes(true).connect()?;
    /// let mut cmd = bus.command(std::process::Command::new("worker"));
    /// let mut jobs = cmd.publish_to_child("jobs")?; // shared memory if the daemon works, else a pipe
    /// let _child = cmd.spawn()?;
    /// jobs.send(b"job")?;
    /// # Ok(()) }
    /// ```
    pub fn command(&self, cmd: Command) -> PipeCommand {
        PipeCommand::with_bus(self.clone(), cmd)
    }
}

/// A child process to spawn with pipes to this process, one per topic and direction, and nothing else: every
/// descriptor except the child's own pipe ends stays close-on-exec. The child learns where its pipes are from
/// `SHMBUS_PIPES` (see the [module docs](crate::pipe)) and finds them by topic name through the usual
/// [`Bus::connect`] then [`Bus::publisher`] / [`Bus::subscriber`].
///
/// Made by [`PipeCommand::new`] it always uses pipes. Made by [`Bus::command`] it uses pipes only when that bus
/// does ([`Transport::Pipe`](crate::Transport::Pipe), or after the automatic fallback); otherwise the parent's
/// handles are ordinary shared-memory handles and the child connects to the same daemon (its `SHMBUS_SOCKET` is
/// set to the parent's socket unless the command sets it).
///
/// ```no_run
/// use bus_client::pipe::PipeCommand;
/// use std::process::Command;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut cmd = PipeCommand::new(Command::new("worker"));
/// let mut jobs = cmd.publish_to_child("jobs")?; // the child subscribes to "jobs"
/// let mut results = cmd.subscribe_from_child("results")?; // the child publishes "results"
/// let mut child = cmd.spawn()?;
/// jobs.send(b"job 1")?;
/// drop(jobs); // the child sees `Closed` after the last job
/// for r in results.iter() {
///     println!("{:?}", r?.payload());
/// }
/// child.wait()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a command does nothing until `spawn`"]
pub struct PipeCommand {
    cmd: Command,
    bus: Option<Bus>,
    /// The child's ends, with what the child is told about them. Closed in this process after spawning.
    handed: Vec<(Entry, OwnedFd)>,
    /// The child's ends of its liveness pipes (closed after spawning, like `handed`).
    lives: Vec<OwnedFd>,
}

/// `fd` itself if it is 3 or above, else a duplicate there (the original is closed).
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, OpenError> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(shmbus_os::pipe::dup_at_least(fd.as_fd(), 3)?)
}

impl PipeCommand {
    /// A command whose topics go over pipes.
    pub fn new(cmd: Command) -> PipeCommand {
        PipeCommand { cmd, bus: None, handed: Vec::new(), lives: Vec::new() }
    }

    pub(crate) fn with_bus(bus: Bus, cmd: Command) -> PipeCommand {
        PipeCommand { cmd, bus: Some(bus), handed: Vec::new(), lives: Vec::new() }
    }

    /// The command, to set arguments, environment, standard streams...
    pub fn command_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Whether handles made through this command use pipes (otherwise shared memory through the daemon).
    pub fn uses_pipes(&self) -> bool {
        self.bus.as_ref().is_none_or(Bus::children_use_pipes)
    }

    /// A publisher in this process whose messages the child receives by subscribing to `topic`.
    ///
    /// On pipes, the child receives everything published from now on, even what was sent before it opened its
    /// subscriber; dropping the publisher (and every other writer of the pipe) gives the child `Closed` once it
    /// has read the rest.
    pub fn publish_to_child(&mut self, topic: &str) -> Result<Publisher, OpenError> {
        if let Some(p) = self.through_bus(|b| b.publisher(topic))? {
            return Ok(p);
        }
        Publisher::from_pipe(topic, vec![self.hand(topic, Direction::Read)?])
    }

    /// A subscriber in this process that receives what the child publishes on `topic`. It reports `Closed` once
    /// the child (and anyone it passed the pipe to) has closed it, e.g. by exiting, and every message is read.
    pub fn subscribe_from_child(&mut self, topic: &str) -> Result<Subscriber, OpenError> {
        if let Some(s) = self.through_bus(|b| b.subscriber(topic))? {
            return Ok(s);
        }
        let p = shmbus_os::pipe()?;
        let mut sub = Subscriber::from_pipe(topic, vec![p.read])?;
        let roster = sub.pipe_reader().expect("a pipe subscriber").roster().clone();
        let id = roster.issue().map_err(OpenError::Io)?;
        self.hand_fd(topic, Direction::Write, p.write, Some(id), None)?;
        Ok(sub)
    }

    /// Fan-out: the child receives, on `publisher`'s topic, every message `publisher` sends from now on, through
    /// a pipe of its own. Does nothing for a shared-memory publisher (the child subscribes through the daemon).
    ///
    /// With several children, a message goes to all or (when `try_send` finds a pipe full) to none; a child
    /// that exits is dropped from the set, and `Closed` comes only when every child is gone.
    pub fn fan_out_to_child(&mut self, publisher: &mut Publisher) -> Result<(), OpenError> {
        let Some(w) = publisher.pipe_writer() else { return Ok(()) };
        let topic = w.topic().to_string();
        let ours = self.hand(&topic, Direction::Read)?;
        w.add_output(ours).map_err(OpenError::Io)
    }

    /// Fan-in: `subscriber` also receives what the child publishes on its topic, through a pipe of its own (read
    /// in turn with the others). Does nothing for a shared-memory subscriber.
    pub fn fan_in_from_child(&mut self, subscriber: &mut Subscriber) -> Result<(), OpenError> {
        let Some(r) = subscriber.pipe_reader() else { return Ok(()) };
        let topic = r.topic().to_string();
        self.check(&topic, Direction::Write)?;
        let id = r.roster().issue().map_err(OpenError::Io)?;
        let p = shmbus_os::pipe()?;
        self.hand_fd(&topic, Direction::Write, p.write, Some(id), None)?;
        r.add_input(p.read).map_err(OpenError::Io)
    }

    /// The child publishes on `shared`'s topic into the one pipe `shared` was made with, alongside every other
    /// child given the same pipe (several writers on one pipe; see [`SharedPipe`]).
    ///
    /// The child gets a writer id of its own from the pipe's reader (so two children never share one, whatever
    /// their process ids, even across PID namespaces) and a liveness pipe, so that the reader drops what the
    /// child leaves unfinished if it dies in the middle of a message (see
    /// [`Subscriber::pipe_abandoned`](crate::Subscriber::pipe_abandoned)).
    pub fn share_with_child(&mut self, shared: &SharedPipe) -> Result<(), OpenError> {
        self.check(&shared.topic, Direction::Write)?;
        let fd = shared.write.try_clone().map_err(OpenError::Io)?;
        let (id, live) = shared.roster.issue_live().map_err(OpenError::Io)?;
        self.hand_fd(&shared.topic, Direction::Write, fd, Some(id), Some(live))
    }

    /// Spawns the child with its pipe ends, then closes them in this process.
    pub fn spawn(mut self) -> io::Result<Child> {
        let entries: Vec<Entry> = self.handed.iter().map(|(e, _)| e.clone()).collect();
        if entries.is_empty() {
            self.cmd.env_remove(PIPES_ENV);
        } else {
            self.cmd.env(PIPES_ENV, inherit::format(&entries));
        }
        if let Some(bus) = &self.bus {
            let socket_set = self.cmd.get_envs().any(|(k, v)| k == "SHMBUS_SOCKET" && v.is_some());
            if !bus.children_use_pipes() && !socket_set {
                self.cmd.env("SHMBUS_SOCKET", bus.socket_path());
            }
        }
        if !entries.is_empty() {
            let fds = entries.iter().flat_map(|e| [Some(e.fd), e.live.map(|l| l.0)]).flatten().collect();
            shmbus_os::inherit_in_child(&mut self.cmd, fds);
        }
        let child = self.cmd.spawn();
        // Our copies of the child's ends: without closing them the child would never see end-of-file, and we
        // would never see `Closed`.
        self.handed.clear();
        self.lives.clear();
        child
    }

    /// For a bus-made command on shared memory: opens the handle through the bus, or falls back to pipes when
    /// the bus allows it and shared memory turns out unusable. `Ok(None)`: use pipes.
    fn through_bus<T>(&self, open: impl FnOnce(&Bus) -> Result<T, OpenError>) -> Result<Option<T>, OpenError> {
        let Some(bus) = self.bus.as_ref().filter(|b| !b.children_use_pipes()) else { return Ok(None) };
        match open(bus) {
            Ok(h) => Ok(Some(h)),
            Err(e) if bus.may_fall_back() && crate::transport::shm_unusable(&e) => {
                bus.fall_back(&e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes a pipe for `topic`; the child gets the end for `dir`, this process the other one.
    fn hand(&mut self, topic: &str, dir: Direction) -> Result<OwnedFd, OpenError> {
        self.check(topic, dir)?;
        let p = shmbus_os::pipe()?;
        let (child, ours) = match dir {
            Direction::Read => (p.read, p.write),
            Direction::Write => (p.write, p.read),
        };
        self.hand_fd(topic, dir, child, None, None)?;
        Ok(ours)
    }

    fn check(&self, topic: &str, dir: Direction) -> Result<(), OpenError> {
        shmbus_proto::names::validate_topic(topic).map_err(|e| OpenError::InvalidTopic(e.to_string()))?;
        if self.handed.iter().any(|(e, _)| e.topic == topic && e.dir == dir) {
            return Err(OpenError::InvalidTopic(format!(
                "topic {topic:?} is already handed to this child for {}",
                dir.verb()
            )));
        }
        Ok(())
    }

    /// Records `fd` as the child's end for `topic` (with the writer id and liveness pipe its reader handed out).
    /// Every end handed over is at descriptor 3 or above: a parent started with 0-2 closed gets new pipes there,
    /// and the child's standard streams (`Stdio::null()`, or whatever it inherits) would replace them.
    fn hand_fd(
        &mut self,
        topic: &str,
        dir: Direction,
        fd: OwnedFd,
        id: Option<u32>,
        live: Option<OwnedFd>,
    ) -> Result<(), OpenError> {
        self.check(topic, dir)?;
        let fd = above_stdio(fd)?;
        let live = live.map(above_stdio).transpose()?;
        let (_, inode) = shmbus_os::fifo_inode(fd.as_raw_fd()).map_err(|e| OpenError::Io(e.source))?;
        let live_entry = match &live {
            Some(l) => {
                let (_, ino) = shmbus_os::fifo_inode(l.as_raw_fd()).map_err(|e| OpenError::Io(e.source))?;
                Some((l.as_raw_fd(), ino))
            }
            None => None,
        };
        let entry = Entry { topic: topic.to_string(), fd: fd.as_raw_fd(), dir, inode, id, live: live_entry };
        self.handed.push((entry, fd));
        if let Some(l) = live {
            self.lives.push(l);
        }
        Ok(())
    }
}

/// One pipe that several children publish into and this process reads with one [`Subscriber`]: each message of
/// up to [`MAX_FRAME_PAYLOAD`](super::MAX_FRAME_PAYLOAD) bytes is one atomic write, longer ones are fragmented
/// and reassembled per writer, so the writers' messages never mix. Each writer's messages arrive in its order.
///
/// Hand it to each child with [`PipeCommand::share_with_child`], then drop it: the subscriber sees `Closed` once
/// every child has closed its end, and while the `SharedPipe` lives that cannot happen.
///
/// ```no_run
/// use bus_client::pipe::{PipeCommand, SharedPipe};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut results, shared) = SharedPipe::new("results")?;
/// let mut children = Vec::new();
/// for i in 0..4 {
///     let mut cmd = PipeCommand::new(std::process::Command::new("worker"));
///     cmd.command_mut().arg(i.to_string());
///     cmd.share_with_child(&shared)?;
///     children.push(cmd.spawn()?);
/// }
/// drop(shared);
/// for m in results.iter() {
///     let m = m?;
///     println!("worker {} says {:?}", m.publisher(), m.payload());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SharedPipe {
    topic: String,
    write: OwnedFd,
    /// The reader's roster: every writer of the pipe gets its id (and liveness pipe) from it.
    roster: Arc<Roster>,
}

impl SharedPipe {
    /// A new pipe for `topic`: the subscriber reading it, and the write end to hand out.
    pub fn new(topic: &str) -> Result<(Subscriber, SharedPipe), OpenError> {
        shmbus_proto::names::validate_topic(topic).map_err(|e| OpenError::InvalidTopic(e.to_string()))?;
        let p = shmbus_os::pipe()?;
        let mut sub = Subscriber::from_pipe(topic, vec![p.read])?;
        let roster = sub.pipe_reader().expect("a pipe subscriber").roster().clone();
        Ok((sub, SharedPipe { topic: topic.to_string(), write: p.write, roster }))
    }

    /// One more writer in this process (for example for a thread), on the same pipe, with an id of its own
    /// (never one another writer of the pipe has, however many publishers are made) and a liveness pipe (see
    /// [`PipeCommand::share_with_child`]).
    pub fn publisher(&self) -> Result<Publisher, OpenError> {
        let fd = self.write.try_clone().map_err(OpenError::Io)?;
        let (id, live) = self.roster.issue_live().map_err(OpenError::Io)?;
        Publisher::from_pipe_as(&self.topic, vec![fd], Some(id), Some(live))
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}
