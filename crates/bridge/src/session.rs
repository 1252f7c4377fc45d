//! Opening the Zenoh session from the settings.

use crate::config::Settings;
use anyhow::{anyhow, Context};
use zenoh::Wait;

/// Builds the Zenoh configuration: the optional JSON5 file, then peer mode, the endpoints, and scouting.
pub fn zenoh_config(s: &Settings) -> anyhow::Result<zenoh::Config> {
    let mut c = match &s.zenoh_config {
        Some(p) => zenoh::Config::from_file(p).map_err(|e| anyhow!("zenoh config {}: {e}", p.display()))?,
        None => zenoh::Config::default(),
    };
    let json = |v: &[String]| format!("[{}]", v.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(","));
    let mut set = |k: &str, v: String| c.insert_json5(k, &v).map_err(|e| anyhow!("zenoh config {k} = {v}: {e}"));
    if s.zenoh_config.is_none() {
        set("mode", "\"peer\"".into())?;
    }
    if !s.listen.is_empty() {
        set("listen/endpoints", json(&s.listen))?;
    }
    if !s.connect.is_empty() {
        set("connect/endpoints", json(&s.connect))?;
    }
    if !s.scouting {
        set("scouting/multicast/enabled", "false".into())?;
        set("scouting/gossip/enabled", "false".into())?;
    }
    Ok(c)
}

/// Opens the session.
pub fn open(s: &Settings) -> anyhow::Result<zenoh::Session> {
    let c = zenoh_config(s)?;
    zenoh::open(c).wait().map_err(|e| anyhow!("{e}")).context("cannot open the Zenoh session")
}
