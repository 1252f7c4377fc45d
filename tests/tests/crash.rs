//! Crash tests on real shared memory: clients SIGKILLed at the worst moment, proven dead (reaped, and their lease
//! lock released), then recovered through the ring's hooks by the test process playing the daemon. Other clients,
//! in other processes, must go on as if nothing happened.

use shmbus_os::is_byte_locked;
use shmbus_ring::{Geometry, Released};
use shmbus_tests::lease_lock_offset;
use shmbus_tests::msg;
use shmbus_tests::peer::member::{check_exactly_once, read_records};
use shmbus_tests::peers::{field_u64, PeerId, Peers};
use shmbus_tests::shm_fixture::ShmFixture;
use std::os::fd::AsFd;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_ring-peer");
const SEED: u64 = 77;
const CAP: u32 = 64;
const TIMEOUT: Duration = Duration::from_secs(120);
/// Messages the producer sends in the gating and group tests.
const COUNT: u64 = 3_000;

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// The end of every test: the peers are reaped first, then nothing may be left in /dev/shm.
fn finish(peers: Peers, fx: ShmFixture) {
    drop(peers);
    fx.finish();
}

/// A topic of `CAP` entries for the self-checking messages, with a 256 KiB payload budget, `publishers`
/// publisher slots, 4 subscriber slots and `groups` groups; no peers yet, and the arguments every peer gets
/// before its own.
fn start(publishers: u32, groups: u32) -> (ShmFixture, Peers, impl Fn(&[String]) -> Vec<String>) {
    let fx = ShmFixture::new(Geometry::new(CAP, msg::MAX_MESSAGE as u32, 256 * 1024, publishers, 4, groups));
    let common = vec![s("--prefix"), fx.prefix.clone(), s("--seed"), s(SEED), s("--stall-secs"), s(60)];
    let common = [common, vec![s("--deadline-secs"), s(TIMEOUT.as_secs() + 30)]].concat();
    (fx, Peers::new(EXE, TIMEOUT), move |extra: &[String]| [common.clone(), extra.to_vec()].concat())
}

/// A stall check that cannot pass by accident: [`Stall::hold`] asserts that the ring stays exactly as `probe`
/// reports it for a while (the stall is real, not a slow peer), and [`Stall::released`] that the same probe moves
/// once the stall is released, so a probe that never moves fails the test.
struct Stall<P: Fn() -> (u64, u64)> {
    what: &'static str,
    probe: P,
    stalled: (u64, u64),
}

impl<P: Fn() -> (u64, u64)> Stall<P> {
    fn hold(peers: &mut Peers, ids: &[PeerId], what: &'static str, probe: P) -> Stall<P> {
        let stalled = probe();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(probe(), stalled, "{what}: the ring moved while it should be stalled");
        for &id in ids {
            assert!(peers.running(id), "{what}: peer {id} exited while it should be blocked\n{}", peers.diagnostics());
        }
        Stall { what, probe, stalled }
    }

    fn released(self, peers: &Peers) {
        peers.wait_until(&format!("the ring moves once the stall ({}) is released", self.what), || {
            (self.probe)() != self.stalled
        });
    }
}

/// SIGKILLs a lease holder and proves it dead: reaped, and its lease lock released with it.
fn kill_holder(peers: &mut Peers, fx: &ShmFixture, id: PeerId, publisher: bool, slot: usize) {
    peers.kill(id);
    assert!(!lease_locked(fx, publisher, slot), "a dead holder's lease lock is released");
}

/// Spawns a lossless consumer peer on subscriber slot `slot`, expecting `expect` (`--expect` words).
fn lossless(
    peers: &mut Peers,
    args: &impl Fn(&[String]) -> Vec<String>,
    name: &str,
    slot: usize,
    extra: &[String],
) -> PeerId {
    peers.spawn(name, &args(&[&[s("lossless"), s("--slot"), s(slot)][..], extra].concat()))
}

fn lease_locked(fx: &ShmFixture, publisher: bool, slot: usize) -> bool {
    is_byte_locked(fx.segment.readers_fd().expect("readers fd").as_fd(), lease_lock_offset(publisher, slot))
        .expect("probe lease lock")
}

#[test]
fn producer_killed_mid_claim_is_cancelled() {
    producer_killed_mid_claim(false);
}

/// The multi-producer claim's window (issue 10): a publisher killed between its tail compare-and-swap and its
/// stamp store leaves a vacancy (the entry still shows its previous lap) that the reader waits at and the others
/// pile up behind; while its holder lives the vacancy is never settled, and once it is proven dead,
/// `settle_vacancies` turns it into a counted skip while the other producers keep claiming, and nothing they
/// publish is lost or cancelled.
#[test]
fn producer_killed_inside_the_claim_window_leaves_a_vacancy_that_is_settled() {
    producer_killed_mid_claim(true);
}

/// Slot 0 publishes BEFORE messages, then claims an entry and hangs holding it (a loan, or with `vanish` inside
/// the claim itself); two producers pile up behind it; it is killed and recovered as the daemon would.
fn producer_killed_mid_claim(vanish: bool) {
    const BEFORE: u64 = 100;
    const EACH: u64 = 5_000;
    let (fx, mut peers, args) = start(3, 0);
    let topic = &fx.segment.topic;
    let expect =
        [s("--expect"), format!("0={BEFORE}"), s("--expect"), format!("1={EACH}"), s("--expect"), format!("2={EACH}")];
    let consumer = lossless(&mut peers, &args, "lossless", 0, &expect);
    peers.wait_line(consumer, "ready");

    let mut how = vec![s("die-mid-claim"), s("--slot"), s(0), s("--before"), s(BEFORE)];
    if vanish {
        how.push(s("--vanish"));
    }
    let dying = peers.spawn("die-mid-claim", &args(&how));
    let claimed = field_u64(&peers.wait_line(dying, "claimed"), "seq");
    assert_eq!(claimed, BEFORE);
    assert!(lease_locked(&fx, true, 0), "the dying publisher holds its lease lock");

    let mut producers = Vec::new();
    for p in 1..3 {
        let a = args(&[s("producer"), s("--slot"), s(p), s("--count"), s(EACH), s("--idle"), s("adaptive")]);
        producers.push(peers.spawn(&format!("producer-{p}"), &a));
    }
    // Everyone piles up behind the claim: the reader waits at it, the others fill the ring up to it.
    let position = || topic.stats().subscribers.iter().find(|x| x.slot == 0).map_or(u64::MAX, |x| x.position);
    peers.wait_until("the ring is full behind the claim", || {
        topic.tail() == claimed + CAP as u64 && position() == claimed
    });
    let stall =
        Stall::hold(&mut peers, &[consumer, producers[0], producers[1]], "claim held", || (topic.tail(), position()));
    if vanish {
        // While its holder lives the vacancy is not settled: the live slot stays inside its claim phase.
        let soon = std::time::Instant::now() + Duration::from_millis(50);
        let live = topic.settle_vacancies(&*fx.waiter, &|p| p != 0, soon);
        assert!(live.is_err(), "a live claimer's vacancy was settled");
    }

    // Kill it mid-claim and prove it dead (reaped; its lease lock went with it), then recover as the daemon would.
    kill_holder(&mut peers, &fx, dying, true, 0);
    let later = std::time::Instant::now() + Duration::from_secs(10);
    let vacancies = topic.settle_vacancies(&*fx.waiter, &|p| p == 0, later).expect("settle");
    let claims = topic.cancel_claims_of(0, &*fx.waiter).expect("cancel");
    assert_eq!((vacancies, claims), if vanish { (1, 0) } else { (0, 1) });
    stall.released(&peers);

    for &id in &producers {
        assert_eq!(field_u64(&peers.expect_done(id), "sent"), EACH);
    }
    let done = peers.expect_done(consumer);
    assert_eq!(field_u64(&done, "received"), BEFORE + 2 * EACH, "{done}");
    assert_eq!(field_u64(&done, "skipped"), 1, "{done}");
    let st = topic.stats();
    assert_eq!(st.cancelled, 1);
    assert_eq!(st.tail, BEFORE + 1 + 2 * EACH);
    finish(peers, fx);
}

#[test]
fn consumer_killed_while_gating_is_released() {
    const STALL_AFTER: u64 = 500;
    // One publisher slot: the single-producer fast path.
    let (fx, mut peers, args) = start(1, 0);
    let topic = &fx.segment.topic;
    let expect = [s("--expect"), format!("0={COUNT}")];
    let live = lossless(&mut peers, &args, "lossless-live", 0, &expect);
    let staller = lossless(
        &mut peers,
        &args,
        "lossless-staller",
        1,
        &[&[s("--stall-after"), s(STALL_AFTER)][..], &expect].concat(),
    );
    peers.wait_line(live, "ready");
    peers.wait_line(staller, "ready");
    // A blocking producer: it sleeps on its wake-up word and must be woken by the release.
    let producer = peers.spawn(
        "producer",
        &args(&[s("producer"), s("--slot"), s(0), s("--count"), s(COUNT), s("--idle"), s("blocking")]),
    );
    assert_eq!(field_u64(&peers.wait_line(staller, "stalled"), "position"), STALL_AFTER);
    let full = || topic.stats().publishers.first().map_or(0, |p| p.full);
    // The gate is the reader's published cursor, which may trail what it consumed by a few messages (lossless
    // cursors are published in small batches, and whenever the reader catches up).
    let gate = || topic.stats().subscribers.iter().find(|x| x.slot == 1).map_or(0, |x| x.position);
    peers.wait_until("the producer is blocked by the stalled reader", || {
        topic.tail() == gate() + CAP as u64 && full() > 0
    });
    assert!((STALL_AFTER - CAP as u64 / 2..=STALL_AFTER).contains(&gate()), "stalled reader's cursor at {}", gate());
    let stall = Stall::hold(&mut peers, &[producer, live, staller], "reader stalled", || (topic.tail(), 0));
    assert!(lease_locked(&fx, false, 1));

    kill_holder(&mut peers, &fx, staller, false, 1);
    assert!(topic.subscriber_active(1), "a SIGKILLed reader's slot stays until recovery");
    assert_eq!(topic.release_subscriber(1, &*fx.waiter).expect("release"), None);
    assert!(!topic.subscriber_active(1));
    stall.released(&peers);

    assert_eq!(field_u64(&peers.expect_done(producer), "sent"), COUNT);
    assert_eq!(field_u64(&peers.expect_done(live), "received"), COUNT);
    let st = topic.stats();
    assert_eq!(st.tail, COUNT);
    assert!(st.subscribers.is_empty(), "{:?}", st.subscribers);
    finish(peers, fx);
}

/// The message a group member dies holding, in `group_member_killed_holding_a_message_is_redelivered`.
const HOLD_AFTER: u64 = 40;

#[test]
fn group_member_killed_holding_a_message_is_redelivered() {
    let (fx, mut peers, args) = start(2, 1);
    let topic = &fx.segment.topic;
    topic.open_group(0, false, &*fx.waiter, &|_| false).expect("open group");
    topic.set_group_redelivery(0, true);
    let out = |slot: usize| fx.scratch().join(format!("member-{slot}.bin"));
    let member = |slot: usize, extra: &[String]| {
        let base =
            [s("member"), s("--slot"), s(slot), s("--until"), s(COUNT), s("--out"), out(slot).display().to_string()];
        args(&[&base[..], extra].concat())
    };
    // The holder is alone at first, so it certainly gets HOLD_AFTER messages: the last of them is `held`.
    let dying = peers.spawn("member-holder", &member(0, &[s("--hold-after"), s(HOLD_AFTER)]));
    peers.wait_line(dying, "ready");
    let producer = peers.spawn("producer", &args(&[s("producer"), s("--slot"), s(0), s("--count"), s(COUNT)]));
    let held = field_u64(&peers.wait_line(dying, "holding"), "seq");
    assert_eq!(held, HOLD_AFTER - 1);
    let other = peers.spawn("member-live", &member(1, &[]));
    peers.wait_line(other, "ready");
    // The held message gates publishers; the live member takes everything else up to it.
    let next = || topic.stats().groups[0].next;
    peers.wait_until("the producer is blocked by the held message and the live member took the rest", || {
        topic.tail() == held + CAP as u64 && next() == topic.tail()
    });
    let stall = Stall::hold(&mut peers, &[producer, other, dying], "message held", || (topic.tail(), next()));

    kill_holder(&mut peers, &fx, dying, false, 0);
    assert_eq!(topic.release_subscriber(0, &*fx.waiter).expect("release"), Some(Released::Redelivered(held)));
    stall.released(&peers);

    assert_eq!(field_u64(&peers.expect_done(producer), "sent"), COUNT);
    peers.expect_done(other);
    let mut records = read_records(&out(0)).expect("holder's records");
    assert_eq!(records.len() as u64, HOLD_AFTER - 1, "the holder completed all but the held message");
    let live = read_records(&out(1)).expect("live member's records");
    assert!(live.iter().any(|r| r.seq == held), "the held message went to the live member");
    records.extend(live);
    let seqs = check_exactly_once(SEED, &[COUNT], &records).unwrap_or_else(|e| peers.fail(&e));
    assert_eq!(seqs, (0..COUNT).collect::<Vec<_>>());
    let st = topic.stats();
    assert_eq!((st.groups[0].redelivered, st.groups[0].abandoned), (1, 0));
    finish(peers, fx);
}
