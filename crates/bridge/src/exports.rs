//! The export manager: which local topics match the export rules, one export thread each, restarted when a
//! topic comes back after being deleted or recreated.

use crate::config::Settings;
use crate::export::{self, ExportEnd, Topic};
use crate::Shared;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The running exports.
#[derive(Default)]
pub struct Exports {
    running: HashMap<String, JoinHandle<ExportEnd>>,
    /// The last failure per topic, to log each once.
    failed: HashMap<String, String>,
    /// Whether the last listing failed (logged once until it works again).
    listing_failed: bool,
}

impl Exports {
    /// Reaps finished exports and starts one for every matching topic without one.
    pub fn scan(&mut self, sh: &Arc<Shared>, settings: &Settings) {
        self.reap();
        if settings.export.is_empty() {
            return;
        }
        let topics = match sh.bus.topics() {
            Ok(t) => {
                if std::mem::take(&mut self.listing_failed) {
                    tracing::info!("the daemon answers again");
                }
                t
            }
            Err(e) => {
                if !std::mem::replace(&mut self.listing_failed, true) {
                    tracing::warn!(error = %e, "cannot list the local topics; exports keep running, retrying");
                }
                return;
            }
        };
        for t in topics {
            let Some(rule) = settings.export_rule(&t.name) else { continue };
            if self.running.contains_key(&t.name) {
                continue;
            }
            let topic = Topic {
                name: t.name.clone(),
                lossy: rule.lossy,
                capacity: t.geometry.capacity,
                max_message: t.geometry.max_message,
            };
            let sh2 = sh.clone();
            let spawned =
                std::thread::Builder::new().name(format!("export {}", t.name)).spawn(move || export::run(&sh2, &topic));
            match spawned {
                Ok(h) => {
                    self.running.insert(t.name, h);
                }
                Err(e) => tracing::error!(topic = %t.name, error = %e, "cannot start an export thread"),
            }
        }
        sh.stats.export_topics.store(self.running.len() as u64, Ordering::Relaxed);
    }

    fn reap(&mut self) {
        let done: Vec<String> = self.running.iter().filter(|(_, h)| h.is_finished()).map(|(n, _)| n.clone()).collect();
        for name in done {
            let Some(h) = self.running.remove(&name) else { continue };
            match h.join() {
                Ok(ExportEnd::Closed) => {
                    self.failed.remove(&name);
                    tracing::info!(topic = %name, "the topic closed; its export restarts when it is back");
                }
                Ok(ExportEnd::Shutdown) => {}
                Ok(ExportEnd::Failed(why)) => {
                    if self.failed.get(&name) != Some(&why) {
                        tracing::warn!(topic = %name, "export stopped, retrying: {why}");
                        self.failed.insert(name, why);
                    }
                }
                Err(_) => tracing::error!(topic = %name, "an export thread panicked; retrying"),
            }
        }
    }

    /// Waits for every export to finish (after the shutdown flag is set).
    pub fn join(mut self) {
        for (_, h) in self.running.drain() {
            let _ = h.join();
        }
    }
}
