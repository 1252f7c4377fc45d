//! Reclaiming a publisher slot whose holder left: the vacancy it may have left inside its last claim phase (a
//! multi-producer claim is the tail's compare-and-swap, then the stamp: a holder killed in between leaves an
//! entry readers wait at; ARCHITECTURE.md 9.10), then its claims. One path for the three places that reclaim a
//! slot: a lease released, a free slot handed out again, the upkeep's sweep of slots no lease holds.

use super::TopicEntry;
use std::time::{Duration, Instant};

/// How long the vacancy check waits, under the state lock, for live publishers to leave a claim phase. One takes
/// well under a microsecond unless its thread is descheduled inside it; a longer one only defers the decision to
/// a later upkeep pass, so the bound is short: a publisher that keeps its counter odd on purpose costs the daemon
/// at most this per pass and topic, never a stall.
const SETTLE_WAIT: Duration = Duration::from_micros(200);

/// Reclaims what the departed holder of publisher slot `p` left: its vacancy, settled first (while its odd
/// claim-phase counter still says it left inside a claim), then its claims. `is_dead(q)` says which slots no
/// lease holds (the lease table decides, not the byte locks a subscriber could take). Returns how many entries
/// became skip markers, or `None` when a live publisher stayed inside a claim phase for the whole wait: the slot
/// is then left untouched, counter odd, so the upkeep's sweep of unheld slots comes back to it.
pub(super) fn reclaim_publisher(e: &TopicEntry, p: u32, is_dead: &dyn Fn(usize) -> bool) -> Option<u64> {
    let t = &e.segment.topic;
    let mut n = 0;
    if t.claim_phases(p as usize).is_some_and(|c| c & 1 == 1) {
        match t.settle_vacancies(&*e.waiter, is_dead, Instant::now() + SETTLE_WAIT) {
            Ok(v) => {
                if v > 0 {
                    tracing::warn!(topic = %e.segment.topic_name, slot = p, vacancies = v, "cancelled the vacancy of a publisher that died inside a claim");
                }
                n += v;
            }
            Err(_) => {
                tracing::info!(topic = %e.segment.topic_name, slot = p, "a live publisher is inside a claim: the departed one's slot is reclaimed later");
                return None;
            }
        }
    }
    Some(n + t.cancel_claims_of(p as usize, &*e.waiter).unwrap_or(0))
}
