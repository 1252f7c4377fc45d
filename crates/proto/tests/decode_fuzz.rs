//! Randomized decoder fuzz (the hostile-users issue: "control frames: malformed, truncated, oversized, out of
//! order, random bytes"). A seeded SplitMix64 drives every case, so a failure names its seed and case and
//! replays exactly. Each case builds a valid request of one variant (in turn, so every variant is covered) with
//! random field values, frames it, and then feeds the frame reader and the request decoder one of: the frame as
//! is, a truncation, bit flips, byte overwrites / insertions / deletions (length prefix fixed up, so the body
//! decoder is reached), a replaced length prefix (0, the maximum, over it, `u32::MAX`), random bytes, a body that
//! declares a huge string, or several frames pushed in random chunks. Responses get the same treatment (the
//! client decodes them).
//!
//! Asserted for every input: no panic; every result is a value or a typed error (`Decode` / `FrameTooLarge`,
//! never `Io` or `Encode`); a decoded value re-encodes to at most the bytes it came from and decodes back to
//! itself; a valid frame decodes to what was encoded, whole or split; a truncated frame asks for more bytes; and
//! a decode allocates at most `MAX_FRAME` bytes beyond what it returns for a request (a declared huge length is
//! refused by the codec's limit, not allocated), a small multiple of it for a response (serde preallocates at
//! most 1 MiB per sequence).
//!
//! Cases: 200,000 by default (a few seconds in debug); `SHMBUS_LONG_FUZZ=1` runs 1,000,000 and
//! `SHMBUS_FUZZ_CASES=N` sets the count; `SHMBUS_FUZZ_SEED=S` changes the seed. The count of inputs tried is
//! printed (`cargo test -- --nocapture` shows it).

use shmbus_proto::codec;
use shmbus_proto::frame::{self, FrameReader, MAX_FRAME};
use shmbus_proto::msg::*;
use shmbus_proto::ProtoError;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts this thread's live heap bytes and their peak, to bound what one decode allocates.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn track(grow: usize, shrink: usize) {
    let _ = LIVE.try_with(|l| {
        let now = l.get().saturating_add(grow).saturating_sub(shrink);
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` with the caller's layout; the counters are thread-local cells
// without destructors, so touching them allocates nothing and cannot re-enter the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size(), 0);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through `alloc` above).
        unsafe { System.dealloc(ptr, layout) };
        track(0, layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`; the caller's contract for `realloc` is passed on unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size, layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it had allocated at once beyond what was live before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let v = f();
    (v, PEAK.with(Cell::get) - base)
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny deterministic generator, enough for test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Random bytes, fewer than `max`.
    fn upto(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }

    /// A number of a random magnitude: small, a varint boundary, or anything.
    fn u64(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(4) as u64,
            1 => [250, 251, 255, 256, 65535, 65536, u32::MAX as u64, u32::MAX as u64 + 1, u64::MAX][self.below(9)],
            2 => self.next() >> self.below(64),
            _ => self.next(),
        }
    }

    fn u32(&mut self) -> u32 {
        self.u64() as u32
    }

    /// A string: a topic-like name, empty, control characters, multi-byte text, or long (rarely near a frame).
    fn string(&mut self) -> String {
        match self.below(8) {
            0 => String::new(),
            1 => "a\n\x1b[2J\0\u{7f}".repeat(1 + self.below(4)),
            2 => "é☃𝄞".repeat(1 + self.below(20)),
            3 => "n".repeat(if self.chance(2000) { MAX_FRAME - 64 } else { 60 + self.below(400) }),
            4 => (0..1 + self.below(80)).map(|_| char::from(32 + self.below(95) as u8)).collect(),
            _ => format!("topic-{}", self.below(100)),
        }
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
        if self.chance(2) {
            Some(f(self))
        } else {
            None
        }
    }
}

fn spec(r: &mut Rng) -> TopicSpec {
    TopicSpec {
        capacity: r.opt(Rng::u32),
        max_message: r.opt(Rng::u32),
        payload_budget: r.opt(Rng::u64),
        max_publishers: r.opt(Rng::u32),
        max_subscribers: r.opt(Rng::u32),
        max_groups: r.opt(Rng::u32),
        publish: r.opt(Rng::string),
        subscribe: r.opt(|r| format!("{},{}", r.string(), r.string())),
        gate: r.opt(|_| String::new()),
        admin: r.opt(Rng::string),
        slow_consumer_ms: r.opt(Rng::u64),
        redeliver: r.opt(|r| r.chance(2)),
        payload_type: r.opt(Rng::string),
    }
}

fn type_info(r: &mut Rng) -> TypeInfo {
    TypeInfo { name: r.string(), hash: r.u64() }
}

fn resume(r: &mut Rng) -> Resume {
    let mut token = [0u8; 16];
    token.copy_from_slice(&r.bytes(16));
    Resume { generation: r.u64(), slot: r.u32(), token: ResumeToken(token) }
}

/// Request variant `variant % 13` with random fields.
fn request(r: &mut Rng, variant: usize) -> Request {
    match variant % 13 {
        11 => Request::ListInvalid,
        0 => Request::Hello { protocol: r.u32(), layout: r.u64(), client: r.string() },
        1 => Request::CreateTopic { name: r.string(), spec: spec(r) },
        2 => Request::DeleteTopic { name: r.string() },
        3 => Request::ListTopics,
        4 => Request::Stats { topic: r.opt(Rng::string) },
        5 => Request::OpenPublisher { topic: r.string(), payload_type: r.opt(type_info), resume: r.opt(resume) },
        6 => Request::OpenSubscriber {
            topic: r.string(),
            mode: match r.below(3) {
                0 => SubMode::Lossless,
                1 => SubMode::Lossy,
                _ => SubMode::Group { name: r.string() },
            },
            from_oldest: r.chance(2),
            payload_type: r.opt(type_info),
            resume: r.opt(resume),
        },
        7 => Request::ListTopicsPage { after: r.opt(Rng::string) },
        8 => Request::StatsPage { after: r.opt(Rng::string) },
        9 => Request::DaemonInfo,
        10 => Request::ClientsPage { topic: r.opt(Rng::string), after: r.opt(Rng::u64) },
        _ => Request::Close { lease: r.u64() },
    }
}

fn geometry(r: &mut Rng) -> GeometryWire {
    GeometryWire {
        capacity: r.u32(),
        entry_bytes: r.u32(),
        max_message: r.u32(),
        region_bytes: r.u64(),
        max_publishers: r.u32(),
        max_subscribers: r.u32(),
        max_groups: r.u32(),
    }
}

/// Response variant `variant % 9` with random fields (short lists).
fn response(r: &mut Rng, variant: usize) -> Response {
    match variant % 9 {
        7 => Response::Invalid {
            objects: (0..r.below(3)).map(|_| InvalidObject { name: r.string(), reason: r.string() }).collect(),
            omitted: r.u32(),
        },
        0 => Response::Hello { protocol: r.u32(), layout: r.u64(), daemon: r.string() },
        1 => Response::Lease(LeaseReply {
            lease: r.u64(),
            topic: r.string(),
            generation: r.u64(),
            geometry: geometry(r),
            role: if r.chance(2) {
                Role::Publisher { slot: r.u32() }
            } else {
                Role::Subscriber { slot: r.u32(), group: r.opt(Rng::u32) }
            },
            lock_offset: r.u64(),
            resume_token: resume(r).token,
        }),
        2 => Response::Topics(
            (0..r.below(3))
                .map(|_| TopicInfo {
                    name: r.string(),
                    generation: r.u64(),
                    geometry: geometry(r),
                    publishers: r.u32(),
                    subscribers: r.u32(),
                    declared: r.chance(2),
                    memory: r.u64(),
                    origin: if r.chance(2) { TopicOrigin::Request } else { TopicOrigin::OnDemand },
                })
                .collect(),
        ),
        3 => Response::Stats(
            (0..r.below(3))
                .map(|_| TopicStatsWire {
                    name: r.string(),
                    generation: r.u64(),
                    tail: r.u64(),
                    closed: r.chance(2),
                    publishers: (0..r.below(3))
                        .map(|_| PublisherStatsWire {
                            slot: r.u32(),
                            pid: r.opt(|r| r.u32() as i32),
                            ..Default::default()
                        })
                        .collect(),
                    subscribers: (0..r.below(3))
                        .map(|_| SubscriberStatsWire {
                            slot: r.u32(),
                            group: r.opt(Rng::string),
                            lag: r.u64(),
                            ..Default::default()
                        })
                        .collect(),
                    groups: (0..r.below(2))
                        .map(|_| GroupStatsWire { name: r.string(), next: r.u64(), ..Default::default() })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        ),
        4 => Response::Done,
        5 => Response::TopicsPage { topics: Vec::new(), more: r.chance(2) },
        6 => Response::StatsPage {
            stats: vec![TopicStatsWire { name: r.string(), ..Default::default() }],
            more: r.chance(2),
        },
        _ => Response::Error { kind: ErrorKind::Internal, message: r.string() },
    }
}

/// One hostile input made from the valid frame `valid`: the bytes and whether they are `valid` itself.
fn mutate(r: &mut Rng, valid: &[u8]) -> (Vec<u8>, &'static str) {
    let body = &valid[4..];
    let with_len = |b: &[u8]| {
        let mut f = (b.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(b);
        f
    };
    match r.below(10) {
        0 => (valid.to_vec(), "valid"),
        1 => (valid[..r.below(valid.len())].to_vec(), "truncated"),
        2 => {
            let mut b = valid.to_vec();
            for _ in 0..1 + r.below(8) {
                let i = r.below(b.len());
                b[i] ^= 1 << r.below(8);
            }
            (b, "bit flips")
        }
        3 => {
            let mut b = body.to_vec();
            match r.below(3) {
                0 if !b.is_empty() => {
                    let i = r.below(b.len());
                    b[i] = r.next() as u8;
                }
                1 => {
                    let i = r.below(b.len() + 1);
                    let extra = r.upto(8);
                    b.splice(i..i, extra);
                }
                _ if !b.is_empty() => {
                    let i = r.below(b.len());
                    let n = (1 + r.below(8)).min(b.len() - i);
                    b.drain(i..i + n);
                }
                _ => b.push(r.next() as u8),
            }
            (with_len(&b), "body edit")
        }
        4 => {
            let len: u32 = [0, MAX_FRAME as u32, MAX_FRAME as u32 + 1, u32::MAX, r.next() as u32][r.below(5)];
            let mut b = valid.to_vec();
            b[..4].copy_from_slice(&len.to_le_bytes());
            (b, "length prefix")
        }
        5 => (r.upto(600), "random bytes"),
        6 => (with_len(&r.upto(300)), "random body"),
        7 => {
            // A variant tag with a string field, then a declared length far beyond the body (varint u32 / u64).
            let mut b = vec![[1u8, 2, 5, 6][r.below(4)]];
            if r.chance(2) {
                b.push(252);
                b.extend_from_slice(&(r.next() as u32 | 0x0100_0000).to_le_bytes());
            } else {
                b.push(253);
                b.extend_from_slice(&(r.next() | 1 << 40).to_le_bytes());
            }
            b.extend(r.upto(16));
            (with_len(&b), "huge declared length")
        }
        8 => {
            let mut b = body.to_vec();
            b.push(r.next() as u8);
            b.extend(r.upto(4));
            (with_len(&b), "trailing bytes")
        }
        _ => (with_len(&body[..r.below(body.len() + 1)]), "short body"),
    }
}

/// What a decode may return: a value or a typed error.
fn typed<T>(what: &str, r: &Result<T, ProtoError>) {
    if let Err(e) = r {
        assert!(matches!(e, ProtoError::Decode(_) | ProtoError::FrameTooLarge { .. }), "{what}: untyped error {e:?}");
    }
}

/// Checks one decoded value: it re-encodes within `from` bytes of body and decodes back to itself.
fn consistent<T>(v: &T, from: usize)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let again = codec::encode(v).expect("a decoded value encodes");
    assert!(again.len() <= from, "{v:?} re-encodes to {} bytes, more than the {from} it came from", again.len());
    assert_eq!(&codec::decode::<T>(&again).expect("a re-encoded value decodes"), v);
}

/// Feeds `input` to a frame reader (whole or in random chunks) and its body to the decoder. Returns the values
/// decoded and whether the reader asked for more bytes at the end.
fn feed<T>(r: &mut Rng, input: &[u8], limit: usize) -> (Vec<T>, bool)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if input.len() >= 4 {
        let (res, peak) = peak_of(|| codec::decode::<T>(&input[4..]));
        typed("decode", &res);
        assert!(peak <= limit, "decoding {} bytes allocated {peak} at once", input.len() - 4);
        if let Ok(v) = &res {
            consistent(v, input.len() - 4);
        }
    }
    let mut reader = FrameReader::new();
    let mut got = Vec::new();
    let mut at = 0;
    loop {
        let step = if r.chance(2) { input.len() - at } else { r.below(input.len() - at + 1) };
        reader.push(&input[at..at + step]);
        at += step;
        loop {
            let (res, peak) = peak_of(|| reader.next_frame::<T>());
            typed("frame", &res);
            assert!(peak <= limit, "a frame decode allocated {peak} at once");
            match res {
                Ok(Some(v)) => got.push(v),
                Ok(None) => break,
                Err(_) => return (got, false),
            }
        }
        if at == input.len() {
            return (got, true);
        }
    }
}

fn cases() -> u64 {
    let long = std::env::var("SHMBUS_LONG_FUZZ").is_ok_and(|v| !v.is_empty() && v != "0");
    let set = std::env::var("SHMBUS_FUZZ_CASES").ok().and_then(|v| v.parse().ok());
    set.unwrap_or(if long { 1_000_000 } else { 200_000 })
}

fn seed() -> u64 {
    std::env::var("SHMBUS_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_f022)
}

#[test]
fn hostile_request_frames_are_values_or_typed_errors() {
    let (n, seed) = (cases(), seed());
    let mut inputs = 0u64;
    let mut decoded = 0u64;
    for case in 0..n {
        let mut r = Rng(seed ^ case.wrapping_mul(0xA24B_AED4_963E_E407));
        let req = request(&mut r, case as usize);
        let valid = match frame::encode(&req) {
            Ok(f) => f,
            Err(e) => {
                assert!(matches!(e, ProtoError::FrameTooLarge { .. }), "case {case}: {e}");
                continue;
            }
        };
        let (input, how) = mutate(&mut r, &valid);
        let (got, wants_more) = feed::<Request>(&mut r, &input, MAX_FRAME);
        inputs += 1;
        decoded += got.len() as u64;
        match how {
            "valid" => assert_eq!(got, vec![req.clone()], "case {case} (seed {seed})"),
            "truncated" => assert!(got.is_empty() && wants_more, "case {case}: a truncated frame decoded"),
            "trailing bytes" | "huge declared length" => assert!(got.is_empty(), "case {case}: {how} decoded"),
            _ => {}
        }
        // Several frames (valid ones around the hostile one), pushed in chunks: the valid ones before the hostile
        // input come out in order whatever the chunking.
        if case % 4 == 0 {
            let before = request(&mut r, case as usize + 3);
            let Ok(mut stream) = frame::encode(&before) else { continue };
            stream.extend_from_slice(&input);
            stream.extend(frame::encode(&Request::ListTopics).unwrap());
            let (got, _) = feed::<Request>(&mut r, &stream, MAX_FRAME);
            assert_eq!(got.first(), Some(&before), "case {case}: the frame before the hostile one");
            inputs += 1;
        }
    }
    println!("decode fuzz: {inputs} request inputs tried ({decoded} decoded to a request), {n} cases, seed {seed}");
}

#[test]
fn hostile_response_frames_are_values_or_typed_errors() {
    let (n, seed) = (cases() / 4, seed() ^ 0xface);
    for case in 0..n {
        let mut r = Rng(seed ^ case.wrapping_mul(0xA24B_AED4_963E_E407));
        let resp = response(&mut r, case as usize);
        let Ok(valid) = frame::encode(&resp) else { continue };
        let (input, how) = mutate(&mut r, &valid);
        // serde preallocates up to 1 MiB for each sequence being decoded, and a stats reply nests three.
        let (got, _) = feed::<Response>(&mut r, &input, 5 * MAX_FRAME);
        if how == "valid" {
            assert_eq!(got, vec![resp], "case {case} (seed {seed})");
        }
    }
    println!("decode fuzz: {n} response inputs tried, seed {seed}");
}

#[test]
fn oversized_and_empty_announcements() {
    for len in [MAX_FRAME as u32 + 1, u32::MAX, 1 << 31] {
        let mut reader = FrameReader::new();
        reader.push(&len.to_le_bytes());
        let (res, peak) = peak_of(|| reader.next_frame::<Request>());
        assert!(matches!(res, Err(ProtoError::FrameTooLarge { .. })), "{len}: {res:?}");
        assert!(peak < 4096, "refusing an announcement of {len} allocated {peak}");
    }
    let mut reader = FrameReader::new();
    reader.push(&0u32.to_le_bytes());
    assert!(matches!(reader.next_frame::<Request>(), Err(ProtoError::Decode(_))), "an empty body is malformed");
    // A frame of exactly the maximum is read (and here refused as malformed); one byte more is refused unread.
    let mut reader = FrameReader::new();
    reader.push(&(MAX_FRAME as u32).to_le_bytes());
    reader.push(&vec![2u8; MAX_FRAME]);
    assert!(matches!(reader.next_frame::<Request>(), Err(ProtoError::Decode(_))));
    assert!(matches!(
        frame::encode(&Request::DeleteTopic { name: "x".repeat(MAX_FRAME) }),
        Err(ProtoError::FrameTooLarge { .. })
    ));
}
