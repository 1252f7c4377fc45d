//! The bridge's settings: the `[bridge]` section of a TOML file, extended by command-line flags.

use crate::glob::Glob;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One export rule: the topics it covers and how they are read locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRule {
    /// Topics covered.
    pub pattern: Glob,
    /// Read with a lossy subscriber (never holds local publishers back; losses are counted and forwarded as
    /// gaps) and published with congestion control `Drop`. Default: lossless, `Block`.
    pub lossy: bool,
}

impl ExportRule {
    /// Parses `PATTERN` or `PATTERN:lossy` (`PATTERN:lossless` is the default spelled out).
    pub fn parse(s: &str) -> Result<ExportRule, String> {
        let (pattern, lossy) = match s.rsplit_once(':') {
            Some((p, "lossy")) => (p, true),
            Some((p, "lossless")) => (p, false),
            Some((_, other)) => return Err(format!("export {s:?}: unknown mode {other:?} (lossy or lossless)")),
            None => (s, false),
        };
        Ok(ExportRule { pattern: Glob::new(pattern)?, lossy })
    }
}

/// Everything the bridge needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This bridge's name; its 64-bit hash tells its streams from other bridges' (default: the host name).
    pub id: String,
    /// The local daemon's control socket (default: the client library's discovery).
    pub socket: Option<PathBuf>,
    /// Local topics published to Zenoh.
    pub export: Vec<ExportRule>,
    /// Remote topics published on the local bus.
    pub import: Vec<Glob>,
    /// Zenoh endpoints to listen on (`tcp/HOST:PORT`).
    pub listen: Vec<String>,
    /// Zenoh endpoints to connect to (`tcp/HOST:PORT`).
    pub connect: Vec<String>,
    /// Zenoh multicast scouting and gossip (default off: only the endpoints given are used).
    pub scouting: bool,
    /// A Zenoh configuration file (JSON5) applied before the settings above.
    pub zenoh_config: Option<PathBuf>,
    /// Whether an import creates a missing local topic with the exporter's capacity and largest message
    /// (default true; the daemon's policy still decides).
    pub create_topics: bool,
    /// Samples queued between Zenoh and the import thread; when full, Zenoh's reception waits (back-pressure).
    pub import_queue: usize,
    /// How long a lossless import waits for room on a full local topic before dropping (counted and logged as
    /// `import_full`); zero waits forever. Bounded by default because a topic exported and imported on both
    /// hosts closes a cycle (each exporter waits for the network, each importer for the topic the other
    /// exporter no longer reads) that only a bound breaks; keep it below Zenoh's `wait_before_close` (5 s).
    pub import_block: Duration,
    /// How often counters are logged (0: only at exit).
    pub stats_interval: Duration,
    /// A file rewritten every second with the counters as JSON (for `shmbus`-style tooling and tests).
    pub stats_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            id: default_id(),
            socket: None,
            export: Vec::new(),
            import: Vec::new(),
            listen: Vec::new(),
            connect: Vec::new(),
            scouting: false,
            zenoh_config: None,
            create_topics: true,
            import_queue: 1024,
            import_block: Duration::from_secs(2),
            stats_interval: Duration::from_secs(10),
            stats_file: None,
        }
    }
}

/// The file's shape: everything under `[bridge]`, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    bridge: Section,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    id: Option<String>,
    socket: Option<PathBuf>,
    #[serde(default)]
    export: Vec<String>,
    #[serde(default)]
    import: Vec<String>,
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    connect: Vec<String>,
    scouting: Option<bool>,
    zenoh_config: Option<PathBuf>,
    create_topics: Option<bool>,
    import_queue: Option<usize>,
    import_block_ms: Option<u64>,
    stats_interval_secs: Option<u64>,
    stats_file: Option<PathBuf>,
}

impl Settings {
    /// Reads the `[bridge]` section of `path` (other sections are refused, so a typo is not ignored).
    pub fn from_file(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Settings::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses TOML text with a `[bridge]` section.
    pub fn from_toml(text: &str) -> Result<Settings, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let s = f.bridge;
        let d = Settings::default();
        let mut out = Settings {
            id: s.id.unwrap_or(d.id),
            socket: s.socket,
            scouting: s.scouting.unwrap_or(d.scouting),
            zenoh_config: s.zenoh_config,
            create_topics: s.create_topics.unwrap_or(d.create_topics),
            import_queue: s.import_queue.unwrap_or(d.import_queue),
            import_block: s.import_block_ms.map_or(d.import_block, Duration::from_millis),
            stats_interval: s.stats_interval_secs.map_or(d.stats_interval, Duration::from_secs),
            stats_file: s.stats_file,
            ..d
        };
        out.add(&s.export, &s.import, &s.listen, &s.connect)?;
        Ok(out)
    }

    /// Adds patterns and endpoints (from the command line), checking each.
    pub fn add(
        &mut self,
        export: &[String],
        import: &[String],
        listen: &[String],
        connect: &[String],
    ) -> Result<(), String> {
        for e in export {
            self.export.push(ExportRule::parse(e)?);
        }
        for i in import {
            self.import.push(Glob::new(i)?);
        }
        for (list, new) in [(&mut self.listen, listen), (&mut self.connect, connect)] {
            for ep in new {
                check_endpoint(ep)?;
                list.push(ep.clone());
            }
        }
        Ok(())
    }

    /// Checks the whole: something to do, a usable queue, a sane id.
    pub fn validate(&self) -> Result<(), String> {
        if self.export.is_empty() && self.import.is_empty() {
            return Err("nothing to bridge: give at least one --export or --import pattern".into());
        }
        if self.import_queue == 0 || self.import_queue > 1 << 20 {
            return Err(format!("import_queue {} must be 1 to 1048576", self.import_queue));
        }
        if self.id.is_empty() || self.id.len() > 128 || self.id.chars().any(char::is_control) {
            return Err("id must be 1 to 128 printable characters".into());
        }
        Ok(())
    }

    /// The export rule covering `topic`, the first that matches.
    pub fn export_rule(&self, topic: &str) -> Option<&ExportRule> {
        self.export.iter().find(|r| r.pattern.matches(topic))
    }

    /// Whether `topic` is imported.
    pub fn imports(&self, topic: &str) -> bool {
        self.import.iter().any(|g| g.matches(topic))
    }
}

/// Checks a `tcp/HOST:PORT` endpoint (the only transport built in).
pub fn check_endpoint(ep: &str) -> Result<(), String> {
    let Some(addr) = ep.strip_prefix("tcp/") else {
        return Err(format!("endpoint {ep:?}: only tcp/HOST:PORT endpoints are supported"));
    };
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("endpoint {ep:?}: expected tcp/HOST:PORT")),
    }
}

fn default_id() -> String {
    nix_hostname().unwrap_or_else(|| "shmbus-bridge".to_string())
}

fn nix_hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty()).then(|| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bridge_section() {
        let s = Settings::from_toml(
            r#"
            [bridge]
            id = "host-a"
            export = ["sensors.*", "video.*:lossy"]
            import = ["*"]
            listen = ["tcp/0.0.0.0:7447"]
            connect = ["tcp/host-b:7447"]
            stats_interval_secs = 5
            "#,
        )
        .expect("valid config");
        assert_eq!(s.id, "host-a");
        assert!(!s.export_rule("sensors.imu").expect("covered").lossy);
        assert!(s.export_rule("video.front").expect("covered").lossy);
        assert!(s.export_rule("logs").is_none());
        assert!(s.imports("anything"));
        assert_eq!(s.connect, ["tcp/host-b:7447"]);
        assert_eq!(s.stats_interval, Duration::from_secs(5));
        s.validate().expect("valid");
    }

    #[test]
    fn refuses_typos_bad_endpoints_and_bad_modes() {
        assert!(Settings::from_toml("[bridge]\nexprot = [\"a\"]").is_err());
        assert!(Settings::from_toml("[daemon]\nx = 1").is_err());
        assert!(Settings::from_toml("[bridge]\nlisten = [\"udp/1.2.3.4:5\"]").is_err());
        assert!(Settings::from_toml("[bridge]\nconnect = [\"tcp/host\"]").is_err());
        assert!(ExportRule::parse("a:fast").is_err());
        assert!(Settings::default().validate().is_err(), "nothing to bridge must be refused");
    }
}
