//! Command-line arguments.

use crate::format::Format;
use crate::parse::{parse_duration, parse_size};
use bus_client::IdleStrategy;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The heading under which `--help` lists the options every command takes.
const GLOBAL: &str = "Global options";

/// Publish, subscribe and administer topics on the shmbus shared-memory bus.
#[derive(Debug, Parser)]
#[command(name = "shmbus", version, propagate_version = true)]
#[command(after_help = "Exit codes: 0 ok, 1 runtime error, 2 usage, 3 daemon unavailable, 4 refused \
                        (not found, permission, no free slot), 5 timeout.")]
pub struct Cli {
    /// Control socket of the daemon (default: $SHMBUS_SOCKET, else the standard locations). The variable is read
    /// by the client library, not here, so that a set-user-ID or set-group-ID `shmbus` ignores it like every
    /// client does.
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub socket: Option<PathBuf>,
    /// More diagnostics on stderr (-v debug, -vv trace); -v and -q override RUST_LOG (default: RUST_LOG, else
    /// warnings).
    #[arg(short, long, global = true, action = ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Only errors on stderr; overrides RUST_LOG.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish the given messages, or one message per line of standard input.
    Pub(PubArgs),
    /// Print the messages of a topic, one per line, to standard output.
    Sub(SubArgs),
    /// List the topics.
    Topics(TopicsArgs),
    /// Create topics (defaults from the daemon's configuration for anything not given).
    Create(CreateArgs),
    /// Delete a topic; attached handles get "closed".
    Delete(DeleteArgs),
    /// Show publishers, subscribers (positions and lag) and counters.
    Stats(StatsArgs),
    /// Check what breaks shared-memory buses and say how to fix it (exit 1 when anything is wrong).
    ///
    /// Checks the socket discovery (planted or unsafe sockets), the daemon (reachable, version, uptime), /dev/shm
    /// size and free space against the daemon's budget, the prefix's objects (owner, mode, ones no daemon owns),
    /// logind's RemoveIPC, descriptor limits and vm.max_map_count; each problem with how to fix it. Exit code 0
    /// when all is fine, 1 when anything is wrong.
    Doctor(DoctorArgs),
    /// Wait until the daemon answers (for scripts and systemd ExecStartPost).
    ///
    /// Exits 0 once it does, 1 when the timeout elapses first; an untrusted daemon, an unsafe socket directory or
    /// another protocol version fails at once.
    WaitReady(WaitReadyArgs),
    /// Remove the files of a prefix in /dev/shm that no live daemon or client uses.
    ///
    /// Objects (also ones the daemon refused as invalid), stray semaphores and the daemon's .PREFIX.* files;
    /// never one in use: mapped or locked by a process, modified less than --min-age ago, or, while a daemon holds
    /// the prefix, one of its topics or files.
    Cleanup(CleanupArgs),
    /// Show who holds which lease (pid, uid, client name, kind, slot, since) on the topics you may see.
    Clients(ClientsArgs),
    /// Record a topic's messages with their timing into a file (docs/record-format.md).
    ///
    /// Lossless by default (publishers wait for the recorder, nothing is missed); `--lossy` never holds them
    /// back and writes what it missed as gap records. Stops at Ctrl-C or SIGTERM, after `--count` messages or
    /// after `--duration`, finishing the file cleanly, and prints a one-line summary on stderr.
    Record(RecordArgs),
    /// Publish a recording's messages on a topic with their recorded timing.
    ///
    /// `--dry-run` prints the header and checks every record without publishing. A file whose tail is cut or
    /// corrupt replays its whole records, then names what was cut and exits with 1.
    Replay(ReplayArgs),
    /// A live view of every topic you may see: message and byte rates, publishers, subscribers, the slowest
    /// subscriber's lag, back-pressure and lapped messages.
    ///
    /// Rates are the change of the topics' own counters between two samples --interval apart. On a terminal the
    /// view is redrawn in place with the fastest topics that fit; otherwise a table is printed per interval.
    Top(TopArgs),
    /// Observed message rate, bandwidth and message sizes (min, p50, p99, max, mean) of a topic, per window.
    ///
    /// Attaches as a lossy subscriber, so it never holds publishers back; messages it was lapped by are counted
    /// per window. One line (or JSON object) per --window until Ctrl-C or --count windows.
    Hz(HzArgs),
}

/// How a handle waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Idle {
    /// Spin on the CPU (lowest latency; one core per waiting handle).
    BusySpin,
    /// Spin, then yield the CPU between polls.
    SpinThenYield,
    /// Sleep on the wake-up word as soon as there is nothing to do.
    Blocking,
    /// Spin, then yield, then sleep.
    #[default]
    Adaptive,
}

impl From<Idle> for IdleStrategy {
    fn from(i: Idle) -> Self {
        match i {
            Idle::BusySpin => IdleStrategy::BusySpin,
            Idle::SpinThenYield => IdleStrategy::SpinThenYield,
            Idle::Blocking => IdleStrategy::Blocking,
            Idle::Adaptive => IdleStrategy::Adaptive,
        }
    }
}

/// `shmbus pub`.
#[derive(Debug, Args)]
pub struct PubArgs {
    /// Topic to publish to.
    pub topic: String,
    /// Messages to publish, in order (default: one per line of standard input, newline stripped).
    pub messages: Vec<OsString>,
    /// Publish at most N messages per second.
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Publish N messages: the given ones repeated until N are sent, or, with no messages given, N generated
    /// messages "msg-0", "msg-1", ...
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// How to wait while lossless subscribers hold the topic full.
    #[arg(long, value_enum, default_value_t, value_name = "STRATEGY")]
    pub idle: Idle,
    /// Give up (exit 5, naming the lossless subscriber that holds the topic full) when a message finds no room
    /// for this long ("5s", "200ms"); default: wait as long as it takes.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Publish all of standard input as one message (refused when larger than the topic's largest message).
    #[arg(long, conflicts_with_all = ["messages", "count", "rate"])]
    pub raw: bool,
    /// Publish the whole file F as one message (as --raw, from F).
    #[arg(long, value_name = "F", conflicts_with_all = ["messages", "count", "rate", "raw"])]
    pub file: Option<PathBuf>,
}

/// `shmbus sub`.
#[derive(Debug, Args)]
pub struct SubArgs {
    /// Topic to subscribe to.
    pub topic: String,
    /// Exit (with 0) after N messages.
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// Join consumer group G: each message goes to one member of the group.
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// Never hold publishers back; gaps are reported on stderr.
    #[arg(long, conflicts_with = "group")]
    pub lossy: bool,
    /// Start from the oldest message the topic still holds instead of the next one.
    #[arg(long)]
    pub from_oldest: bool,
    /// Exit with code 5 (an error) when no message arrives for this long ("5s", "200ms"; a plain number is
    /// seconds), also after messages were received. To drain a topic and end with 0, use --idle-exit.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Drain, then exit 0 once no message has arrived for D (also when none came at all).
    #[arg(long, value_name = "D", value_parser = parse_duration, conflicts_with = "timeout")]
    pub idle_exit: Option<Duration>,
    /// How to wait on an empty topic.
    #[arg(long, value_enum, default_value_t, value_name = "STRATEGY")]
    pub idle: Idle,
    /// How to print each message: raw (the payload, then a newline), text (seq, publisher, time and the escaped
    /// payload on one line), json (one object per line) or hex (a header line and a hex dump).
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub format: Format,
}

/// `shmbus topics`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list the objects under the daemon's prefix that are no topic (refused as invalid, or planted), on
    /// names you administer, with state "invalid: REASON"; `shmbus delete NAME` removes them.
    #[arg(long)]
    pub all: bool,
}

/// `shmbus create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic names ([A-Za-z0-9._-], up to 64 characters each); all get the same properties, over one connection.
    #[arg(required = true, num_args = 1.., value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Messages in flight: a power of two from 2 to 2^24, as in the config file.
    #[arg(long, value_name = "N")]
    pub capacity: Option<u32>,
    /// Largest message ("64K", "1M", or bytes).
    #[arg(long, value_name = "BYTES", value_parser = parse_size_u32)]
    pub max_message: Option<u32>,
    /// Payload bytes in flight, shared by the publishers ("4M", or bytes).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub payload_budget: Option<u64>,
    /// Publisher limit.
    #[arg(long, value_name = "N")]
    pub max_publishers: Option<u32>,
    /// Subscriber limit.
    #[arg(long, value_name = "N")]
    pub max_subscribers: Option<u32>,
    /// Consumer-group limit.
    #[arg(long, value_name = "N")]
    pub max_groups: Option<u32>,
    /// Who may publish: comma-separated principals `*`, `uid:N`, `gid:N`, `user:NAME`, `group:NAME`, or `none`
    /// (only root and the daemon's user); repeatable. Default: `[defaults] publish`.
    #[arg(long, value_name = "WHO", value_delimiter = ',', value_parser = parse_principal)]
    pub publish: Option<Vec<String>>,
    /// Who may subscribe (principals as for --publish).
    #[arg(long, value_name = "WHO", value_delimiter = ',', value_parser = parse_principal)]
    pub subscribe: Option<Vec<String>>,
    /// Who may subscribe losslessly, holding publishers back; others may only subscribe --lossy (principals as
    /// for --publish).
    #[arg(long, value_name = "WHO", value_delimiter = ',', value_parser = parse_principal)]
    pub gate: Option<Vec<String>>,
    /// Who may create and delete the topic besides root and the daemon's user (principals as for --publish).
    #[arg(long, value_name = "WHO", value_delimiter = ',', value_parser = parse_principal)]
    pub admin: Option<Vec<String>>,
    /// Milliseconds a lossless subscriber may hold publishers back before it is demoted to lossy (0: forever).
    #[arg(long, value_name = "MS")]
    pub slow_consumer_ms: Option<u64>,
    /// Redeliver a dead group member's message to another member (`true`), or count it abandoned (`false`).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub redeliver: Option<bool>,
    /// The payload type name every typed handle must register.
    #[arg(long, value_name = "NAME")]
    pub payload_type: Option<String>,
}

impl CreateArgs {
    /// A policy list as sent (comma-separated): `none` stands for the empty list.
    pub fn principals(v: &Option<Vec<String>>) -> Option<String> {
        v.as_ref().map(|v| v.iter().filter(|p| p.as_str() != "none").cloned().collect::<Vec<_>>().join(","))
    }
}

/// `shmbus doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Shared-memory prefix to check when no daemon answers (the daemon's own prefix otherwise).
    #[arg(long, value_name = "P", default_value = "shmbus", value_parser = parse_prefix)]
    pub prefix: String,
}

/// A shared-memory prefix (`[A-Za-z0-9_-]{1,32}`).
pub fn parse_prefix(s: &str) -> Result<String, String> {
    shmbus_proto::names::validate_prefix(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

/// `shmbus clients`.
#[derive(Debug, Args)]
pub struct ClientsArgs {
    /// Only this topic (default: all you may see).
    pub topic: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `shmbus cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Shared-memory prefix whose files to look at.
    #[arg(long, value_name = "P", default_value = "shmbus", value_parser = parse_prefix)]
    pub prefix: String,
    /// Keep files modified more recently than this (a topic being created is not yet anyone's).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    pub min_age: Duration,
}

/// `shmbus record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Topic to record.
    pub topic: String,
    /// File to write (refused when it exists, unless --force).
    pub file: PathBuf,
    /// Stop after N messages.
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long ("10s", "500ms", "1m"; a plain number is seconds).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Never hold publishers back; messages missed when lapped are written as gap records and counted.
    #[arg(long)]
    pub lossy: bool,
    /// Start from the oldest message the topic still holds (received at once, so it replays at once).
    #[arg(long)]
    pub from_oldest: bool,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// How to wait on an empty topic.
    #[arg(long, value_enum, default_value_t, value_name = "STRATEGY")]
    pub idle: Idle,
}

/// `shmbus replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Recording to read.
    pub file: PathBuf,
    /// Topic to publish on (it may differ from the recorded one; created on first use if the daemon's
    /// auto_create allows, as for `pub`). Not needed with --dry-run.
    #[arg(required_unless_present = "dry_run")]
    pub topic: Option<String>,
    /// Speed factor for the recorded timing: 2 replays twice as fast, 0.5 at half speed.
    #[arg(long, value_name = "X", value_parser = parse_speed, conflicts_with = "as_fast_as_possible")]
    pub rate: Option<f64>,
    /// Publish without waiting between messages.
    #[arg(long)]
    pub as_fast_as_possible: bool,
    /// Print the header and check every record's checksum without publishing (no daemon needed).
    #[arg(long)]
    pub dry_run: bool,
    /// How to wait while lossless subscribers hold the topic full.
    #[arg(long, value_enum, default_value_t, value_name = "STRATEGY")]
    pub idle: Idle,
}

/// `shmbus wait-ready`.
#[derive(Debug, Args)]
pub struct WaitReadyArgs {
    /// Give up after this long ("5s", "200ms", "1m"; a plain number is seconds).
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
}

/// `shmbus delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Topic to delete.
    pub topic: String,
}

/// `shmbus stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this topic (default: all).
    pub topic: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `shmbus top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Time between samples ("1s", "500ms"; a plain number is seconds).
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_period)]
    pub interval: Duration,
    /// Take two samples --interval apart, print one table of every topic and exit (for scripts).
    #[arg(long)]
    pub once: bool,
    /// Print one JSON document instead of the table (needs --once).
    #[arg(long, requires = "once")]
    pub json: bool,
}

/// `shmbus hz`.
#[derive(Debug, Args)]
pub struct HzArgs {
    /// Topic to watch (it must exist: hz never creates one).
    pub topic: String,
    /// Length of each window ("1s", "500ms"; a plain number is seconds).
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_period)]
    pub window: Duration,
    /// Exit (with 0) after N windows.
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print one JSON object per window instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// A sampling period: a duration of at least a millisecond.
fn parse_period(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(1) {
        return Err(format!("{s:?} is too short (at least 1ms)"));
    }
    Ok(d)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a positive number of messages per second")),
    }
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a positive speed factor (2 is twice as fast)")),
    }
}

/// A policy principal, checked for its form here (names are resolved by the daemon).
fn parse_principal(s: &str) -> Result<String, String> {
    const FORMS: &str = "use *, uid:N, gid:N, user:NAME, group:NAME or none";
    if s == "*" || s == "none" {
        return Ok(s.to_string());
    }
    let Some((kind, v)) = s.split_once(':') else {
        return Err(format!("{s:?} is not a principal ({FORMS})"));
    };
    match kind {
        "uid" | "gid" if v.parse::<u32>().is_ok() => Ok(s.to_string()),
        "uid" | "gid" => Err(format!("{s:?}: {v:?} is not a numeric id")),
        "user" | "group" if !v.is_empty() => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not a principal ({FORMS})")),
    }
}

fn parse_size_u32(s: &str) -> Result<u32, String> {
    let v = parse_size(s)?;
    u32::try_from(v).map_err(|_| format!("{s:?} is too large (at most 4 GiB - 1)"))
}

/// Sets up logging to stderr: `-v`/`-q` when given, else `RUST_LOG`, else warnings and errors; colour and
/// timestamps as [`shmbus_os::stderr_log_style`] says (none in a file or the journal).
pub fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let flag = match (quiet, verbose) {
        (true, _) => Some("error"),
        (false, 0) => None,
        (false, 1) => Some("debug"),
        (false, _) => Some("trace"),
    };
    let filter = match flag {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    let style = shmbus_os::stderr_log_style();
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(style.ansi);
    let _ = if style.timestamps { fmt.try_init() } else { fmt.without_time().try_init() };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("shmbus").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn pub_with_messages_and_load_options() {
        let c =
            parse(&["--socket", "/tmp/x.sock", "pub", "orders", "a", "b", "--rate", "100", "--count", "10"]).unwrap();
        assert_eq!(c.socket.as_deref(), Some(std::path::Path::new("/tmp/x.sock")));
        let Command::Pub(p) = c.command else { panic!() };
        assert_eq!(p.topic, "orders");
        assert_eq!(p.messages, vec![OsString::from("a"), OsString::from("b")]);
        assert_eq!((p.rate, p.count), (Some(100.0), Some(10)));
        assert!(parse(&["pub", "t", "--rate", "0"]).is_err());
    }

    #[test]
    fn sub_options() {
        let c =
            parse(&["sub", "t", "--count", "3", "--group", "g", "--from-oldest", "--timeout", "200ms", "-v"]).unwrap();
        assert_eq!(c.verbose, 1);
        let Command::Sub(s) = c.command else { panic!() };
        assert_eq!((s.count, s.group.as_deref(), s.lossy, s.from_oldest), (Some(3), Some("g"), false, true));
        assert_eq!(s.timeout, Some(Duration::from_millis(200)));
        assert!(parse(&["sub", "t", "--group", "g", "--lossy"]).is_err(), "a group member is not lossy");
        assert!(parse(&["sub"]).is_err());
        let Command::Sub(s) = parse(&["sub", "t", "--format", "json"]).unwrap().command else { panic!() };
        assert_eq!(s.format, Format::Json);
        let Command::Sub(s) = parse(&["sub", "t"]).unwrap().command else { panic!() };
        assert_eq!(s.format, Format::Raw, "the default prints payloads as before");
        assert!(parse(&["sub", "t", "--format", "xml"]).is_err());
        let Command::Pub(p) = parse(&["pub", "t", "--raw"]).unwrap().command else { panic!() };
        assert!(p.raw && p.file.is_none());
        let Command::Pub(p) = parse(&["pub", "t", "--file", "/etc/hostname"]).unwrap().command else { panic!() };
        assert_eq!(p.file.as_deref(), Some(std::path::Path::new("/etc/hostname")));
        assert!(parse(&["pub", "t", "--raw", "msg"]).is_err(), "--raw takes no messages");
        assert!(parse(&["pub", "t", "--file", "f", "--count", "2"]).is_err());
    }

    #[test]
    fn create_sizes_and_other_commands() {
        let c = parse(&["create", "t", "--capacity", "64", "--max-message", "64K", "--payload-budget", "4M"]).unwrap();
        let Command::Create(a) = c.command else { panic!() };
        assert_eq!((a.capacity, a.max_message, a.payload_budget), (Some(64), Some(65536), Some(4 << 20)));
        assert_eq!(a.topics, ["t"]);
        let Command::Create(a) = parse(&["create", "a", "b", "c"]).unwrap().command else { panic!() };
        assert_eq!(a.topics, ["a", "b", "c"]);
        assert!(parse(&["create"]).is_err(), "at least one topic");
        let c = parse(&["create", "t", "--publish", "uid:1,group:audio", "--publish", "*", "--subscribe", "none"]);
        let Command::Create(a) = c.unwrap().command else { panic!() };
        assert_eq!(a.publish.as_deref(), Some(&["uid:1".to_string(), "group:audio".into(), "*".into()][..]));
        assert_eq!(CreateArgs::principals(&a.subscribe).as_deref(), Some(""));
        assert_eq!(CreateArgs::principals(&a.publish).as_deref(), Some("uid:1,group:audio,*"));
        let c = parse(&["create", "t", "--redeliver", "false", "--slow-consumer-ms", "500", "--gate", "gid:0"]);
        let Command::Create(a) = c.unwrap().command else { panic!() };
        assert_eq!((a.redeliver, a.slow_consumer_ms), (Some(false), Some(500)));
        for bad in [
            &["create", "t", "--publish", "alice"][..],
            &["create", "t", "--publish", "uid:alice"],
            &["create", "t", "--gate", "user:"],
            &["create", "t", "--redeliver", "maybe"],
            &["create", "t", "--slow-consumer-ms", "soon"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        assert!(matches!(
            parse(&["stats", "--json"]).unwrap().command,
            Command::Stats(StatsArgs { topic: None, json: true })
        ));
        assert!(matches!(parse(&["topics"]).unwrap().command, Command::Topics(_)));
        assert!(matches!(parse(&["delete", "t"]).unwrap().command, Command::Delete(_)));
        assert!(parse(&["-q", "-v", "topics"]).is_err());
        assert_eq!(parse(&["frobnicate"]).unwrap_err().exit_code(), 2);
        let Command::WaitReady(w) = parse(&["wait-ready", "--timeout", "5s"]).unwrap().command else { panic!() };
        assert_eq!(w.timeout, Duration::from_secs(5));
        let Command::WaitReady(w) = parse(&["wait-ready"]).unwrap().command else { panic!() };
        assert_eq!(w.timeout, Duration::from_secs(30));
        assert!(parse(&["wait-ready", "--timeout", "5 parsecs"]).is_err());
    }

    #[test]
    fn record_and_replay_options() {
        let c = parse(&["record", "t", "f.rec", "--count", "5", "--duration", "2s", "--lossy", "--force"]);
        let Command::Record(r) = c.unwrap().command else { panic!() };
        assert_eq!((r.topic.as_str(), r.count, r.duration), ("t", Some(5), Some(Duration::from_secs(2))));
        assert!(r.lossy && r.force && !r.from_oldest);
        assert!(parse(&["record", "t"]).is_err(), "a file is needed");
        let Command::Replay(r) = parse(&["replay", "f.rec", "u", "--rate", "2"]).unwrap().command else { panic!() };
        assert_eq!((r.topic.as_deref(), r.rate, r.dry_run), (Some("u"), Some(2.0), false));
        let Command::Replay(r) = parse(&["replay", "--dry-run", "f.rec"]).unwrap().command else { panic!() };
        assert!(r.dry_run && r.topic.is_none());
        assert!(parse(&["replay", "f.rec"]).is_err(), "a topic unless --dry-run");
        assert!(parse(&["replay", "f.rec", "u", "--rate", "0"]).is_err());
        assert!(parse(&["replay", "f.rec", "u", "--rate", "2", "--as-fast-as-possible"]).is_err());
    }

    #[test]
    fn top_and_hz_options() {
        let Command::Top(t) = parse(&["top"]).unwrap().command else { panic!() };
        assert_eq!((t.interval, t.once, t.json), (Duration::from_secs(1), false, false));
        let Command::Top(t) = parse(&["top", "--once", "--json", "--interval", "250ms"]).unwrap().command else {
            panic!()
        };
        assert_eq!((t.interval, t.once, t.json), (Duration::from_millis(250), true, true));
        assert_eq!(parse(&["top", "--json"]).unwrap_err().exit_code(), 2, "--json needs --once");
        assert!(parse(&["top", "--interval", "0"]).is_err());
        let Command::Hz(h) = parse(&["hz", "t", "--count", "2", "--window", "500ms", "--json"]).unwrap().command else {
            panic!()
        };
        assert_eq!((h.topic.as_str(), h.count, h.window, h.json), ("t", Some(2), Duration::from_millis(500), true));
        assert!(parse(&["hz"]).is_err(), "a topic is needed");
        assert!(parse(&["hz", "t", "--count", "0"]).is_err());
        assert!(parse(&["hz", "t", "--window", "0s"]).is_err());
    }
}
