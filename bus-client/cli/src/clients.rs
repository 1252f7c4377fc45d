//! `shmbus clients`: who holds which lease (pid, uid, client name, kind, slot, since) on the topics the caller may
//! see.

use crate::args::ClientsArgs;
use anyhow::Context;
use bus_client::ClientWire;
use std::path::PathBuf;

pub fn run(socket: Option<PathBuf>, a: ClientsArgs) -> anyhow::Result<()> {
    let bus = crate::connect(socket)?;
    let clients = bus.clients(a.topic.as_deref()).context("cannot list the clients")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&clients)?);
    } else {
        print!("{}", render(&clients));
    }
    Ok(())
}

fn render(clients: &[ClientWire]) -> String {
    let rows: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            vec![
                bus_client::printable(&c.topic).into_owned(),
                c.kind.clone(),
                c.slot.to_string(),
                c.group.as_deref().map_or_else(|| "-".to_string(), |g| bus_client::printable(g).into_owned()),
                c.pid.to_string(),
                c.uid.to_string(),
                c.name.as_deref().map_or_else(|| "-".to_string(), |n| bus_client::printable(n).into_owned()),
                since(c.since_ms),
                c.lease.to_string(),
            ]
        })
        .collect();
    crate::table::render("", &["TOPIC", "KIND", "SLOT", "GROUP", "PID", "UID", "NAME", "SINCE", "LEASE"], &rows)
}

/// The grant time, to the second, UTC.
fn since(ms: u64) -> String {
    let t = crate::format::rfc3339(ms.saturating_mul(1_000_000));
    format!("{}Z", &t[..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_lease() {
        let c = ClientWire {
            lease: 7,
            topic: "orders".into(),
            kind: "group".into(),
            slot: 3,
            group: Some("billing".into()),
            pid: 4242,
            uid: 1000,
            since_ms: 1_764_640_505_123,
            typed: false,
            name: Some("billing-worker".into()),
        };
        let s = render(&[c]);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("TOPIC") && lines[0].contains("SINCE"), "{s}");
        for want in ["orders", "group", "billing", "4242", "1000", "billing-worker", "2025-12-02T01:55:05Z"] {
            assert!(lines[1].contains(want), "{want}: {s}");
        }
    }
}
