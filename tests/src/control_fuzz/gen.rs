//! What the control fuzzer sends: a seeded generator, requests with random field values drawn from what the
//! daemon can tell apart (known and unknown topics, bad names, huge names, learned and bogus generations, slots,
//! tokens, lease ids), and hostile byte strings made from valid frames.

use shmbus_proto::codec;
use shmbus_proto::frame::{self, MAX_FRAME};
use shmbus_proto::msg::*;

/// SplitMix64 (Steele, Lea, Flood 2014): deterministic and enough for test inputs.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n as u64) as usize
    }

    /// True once in `n` on average.
    pub fn chance(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// Fewer than `max` random bytes.
    pub fn upto(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        (0..n).map(|_| self.bits() as u8).collect()
    }

    /// A number of random magnitude: small, a boundary, or anything.
    pub fn u64(&mut self) -> u64 {
        match self.below(5) {
            0 => self.below(8) as u64,
            1 => [255, 256, 65535, 65536, u32::MAX as u64, u32::MAX as u64 + 1, u64::MAX][self.below(7)],
            2 => self.bits() >> self.below(64),
            _ => self.bits(),
        }
    }

    fn u32(&mut self) -> u32 {
        self.u64() as u32
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
        if self.chance(2) {
            Some(f(self))
        } else {
            None
        }
    }
}

/// What a worker knows and asks about: the topics to aim at, the one it must never be able to touch, what the
/// daemon told it so far.
pub struct Aim {
    /// Topics that exist (declared open to everyone).
    pub topics: Vec<String>,
    /// The real client's topic (root only).
    pub protected: String,
    /// What granted leases said (topic, and generation, slot and resume token), to send back in a `Resume`:
    /// the token is right, but never for a slot this raw client holds locked.
    pub grants: Vec<(String, Resume)>,
    /// Leases granted on the current connection.
    pub leases: Vec<u64>,
}

impl Aim {
    /// A topic name: a known one (rarely the protected one, for an unprivileged worker only), one that does not
    /// exist yet, an invalid one, or a huge one.
    pub fn name(&self, r: &mut Rng, privileged: bool) -> String {
        match r.below(20) {
            0..=9 => self.topics[r.below(self.topics.len())].clone(),
            10 if !privileged => self.protected.clone(),
            11 | 12 => format!("fz-new-{}", r.below(3)),
            13 => String::new(),
            14 => "x".repeat(65),
            15 => "../etc/passwd".into(),
            16 => "bad\nname\x1b[31m".into(),
            17 => "é☃".repeat(1 + r.below(8)),
            // Huge names, rarely near a whole frame (each costs a megabyte on the wire), some of characters that
            // grow when escaped for a message.
            18 if r.chance(500) => "n".repeat(MAX_FRAME - 2048 - r.below(1024)),
            18 if r.chance(100) => "\x01".repeat(MAX_FRAME / 5 + r.below(MAX_FRAME / 2)),
            _ => "n".repeat(100 + r.below(64 * 1024)),
        }
    }

    fn group(&self, r: &mut Rng) -> String {
        match r.below(6) {
            0 => String::new(),
            1 => "g\n\x07".into(),
            2 => "x".repeat(65 + r.below(200)),
            _ => format!("g{}", r.below(3)),
        }
    }

    fn type_info(&self, r: &mut Rng) -> TypeInfo {
        let name = match r.below(5) {
            0 => String::new(),
            1 => "u64\n\x1b]0;".into(),
            2 => "T".repeat(257 + r.below(100)),
            _ => ["u64", "alloc::string::String", "[u8; 4]"][r.below(3)].into(),
        };
        TypeInfo { name, hash: r.u64() }
    }

    fn resume(&self, r: &mut Rng, topic: &str) -> Resume {
        let learned: Vec<&Resume> = self.grants.iter().filter(|(t, _)| t == topic).map(|(_, g)| g).collect();
        if !learned.is_empty() && r.chance(2) {
            let mut g = *learned[r.below(learned.len())];
            if r.chance(3) {
                g.slot = g.slot.wrapping_add(1);
            }
            return g;
        }
        let generation = match learned.first() {
            Some(g) if r.chance(2) => g.generation,
            _ => r.u64(),
        };
        let slot = if r.chance(2) { r.below(10) as u32 } else { r.u32() };
        let mut token = [0u8; 16];
        if r.chance(2) {
            token.iter_mut().for_each(|b| *b = r.bits() as u8);
        }
        Resume { generation, slot, token: ResumeToken(token) }
    }

    fn spec(&self, r: &mut Rng) -> TopicSpec {
        TopicSpec {
            capacity: r.opt(Rng::u32),
            max_message: r.opt(Rng::u32),
            payload_budget: r.opt(Rng::u64),
            max_publishers: r.opt(Rng::u32),
            max_subscribers: r.opt(Rng::u32),
            max_groups: r.opt(Rng::u32),
            publish: r.opt(principals),
            subscribe: r.opt(principals),
            gate: r.opt(principals),
            admin: r.opt(principals),
            slow_consumer_ms: r.opt(Rng::u64),
            redeliver: r.opt(|r| r.chance(2)),
            payload_type: r.opt(|r| ["u64", "", "bad\u{1b}name"][r.below(3)].to_string()),
        }
    }

    /// A lease id: one of this connection's, a small one (someone else's), or anything.
    fn lease(&self, r: &mut Rng) -> u64 {
        match r.below(3) {
            0 if !self.leases.is_empty() => self.leases[r.below(self.leases.len())],
            1 => 1 + r.below(64) as u64,
            _ => r.u64(),
        }
    }

    /// A request other than `Hello`, with random field values.
    pub fn request(&self, r: &mut Rng, privileged: bool) -> Request {
        match r.below(18) {
            17 => Request::ListInvalid,
            16 => Request::ListTopicsPage { after: r.opt(|r| self.name(r, privileged)) },
            0 => Request::CreateTopic { name: self.name(r, privileged), spec: self.spec(r) },
            1 => Request::DeleteTopic { name: self.name(r, privileged) },
            2 => Request::ListTopics,
            3 if r.chance(2) => Request::StatsPage { after: r.opt(|r| self.name(r, privileged)) },
            3 => Request::Stats { topic: r.opt(|r| self.name(r, privileged)) },
            4..=6 => {
                let topic = self.name(r, privileged);
                let resume = if r.chance(3) { Some(self.resume(r, &topic)) } else { None };
                Request::OpenPublisher { topic, payload_type: r.opt(|r| self.type_info(r)), resume }
            }
            7..=11 => {
                let topic = self.name(r, privileged);
                let resume = if r.chance(3) { Some(self.resume(r, &topic)) } else { None };
                let mode = match r.below(3) {
                    0 => SubMode::Lossless,
                    1 => SubMode::Lossy,
                    _ => SubMode::Group { name: self.group(r) },
                };
                let payload_type = r.opt(|r| self.type_info(r));
                Request::OpenSubscriber { topic, mode, from_oldest: r.chance(2), payload_type, resume }
            }
            _ => Request::Close { lease: self.lease(r) },
        }
    }
}

/// A hello, right (`good`) or with a wrong protocol or layout version.
pub fn hello(r: &mut Rng, good: bool) -> Request {
    let client = match r.below(6) {
        0 => "client\n\x1b[2Jforged log line".into(),
        1 => "c".repeat(r.below(64 * 1024)),
        2 if r.chance(100) => "c".repeat(MAX_FRAME - 64),
        _ => "control-fuzzer".into(),
    };
    let (mut protocol, mut layout) = (PROTOCOL_VERSION, shmbus_ring::LAYOUT_VERSION);
    if !good {
        if r.chance(2) {
            protocol = protocol.wrapping_add(1 + r.below(1000) as u32);
        } else {
            layout = layout.wrapping_add(1 + r.u64() % (u64::MAX - 1));
        }
    }
    Request::Hello { protocol, layout, client }
}

/// `req` as one frame.
pub fn framed(req: &Request) -> Vec<u8> {
    frame::encode(req).expect("generated requests fit in a frame")
}

/// `body` behind a length prefix that matches it.
fn with_len(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A frame made from the valid frame `valid` that the daemon may read as anything (a request, a malformed
/// frame, the start of a longer one): bit flips, a body edit, random bytes with or without a fitting prefix.
pub fn mangled(r: &mut Rng, valid: &[u8]) -> Vec<u8> {
    match r.below(4) {
        0 => {
            let mut b = valid.to_vec();
            for _ in 0..1 + r.below(8) {
                let i = r.below(b.len());
                b[i] ^= 1 << r.below(8);
            }
            b
        }
        1 => {
            let mut body = valid[4..].to_vec();
            let i = r.below(body.len() + 1);
            match r.below(3) {
                0 if i < body.len() => body[i] = r.bits() as u8,
                1 => {
                    let extra = r.upto(9);
                    drop(body.splice(i..i, extra));
                }
                _ => body.truncate(i),
            }
            with_len(&body)
        }
        2 => with_len(&r.upto(300)),
        _ => r.upto(600),
    }
}

/// A frame the daemon must refuse as malformed once it has it whole: an empty body, an unknown variant, trailing
/// bytes after a valid request, or a declared string length far beyond the body.
pub fn malformed(r: &mut Rng, valid: &[u8]) -> Vec<u8> {
    match r.below(4) {
        0 => with_len(&[]),
        1 => {
            // One byte: an unknown variant, or a known one without its fields. Never a variant without fields
            // (`DaemonInfo`, `ListInvalid`, added after this generator): that byte is a whole, valid request,
            // which the daemon answers and keeps the connection open after, as it should; the fuzzer, waiting
            // for the close, reported a hang (the control_fuzz flake of session 26, 2 of 243 draws).
            let tag = loop {
                let t = 8 + r.below(243) as u8;
                if codec::decode::<Request>(&[t]).is_err() {
                    break t;
                }
            };
            with_len(&[tag])
        }
        2 => {
            let mut body = valid[4..].to_vec();
            body.push(r.bits() as u8);
            body.extend(r.upto(8));
            with_len(&body)
        }
        _ => {
            let mut body = vec![[1u8, 2, 5, 6][r.below(4)], 252];
            body.extend_from_slice(&(r.bits() as u32 | 0x0100_0000).to_le_bytes());
            body.extend(r.upto(16));
            with_len(&body)
        }
    }
}

/// A length prefix over the limit (what follows it does not matter).
pub fn oversized(r: &mut Rng) -> Vec<u8> {
    let len: u32 = [MAX_FRAME as u32 + 1, u32::MAX, (MAX_FRAME as u32 + 1).max(r.bits() as u32)][r.below(3)];
    let mut b = len.to_le_bytes().to_vec();
    b.extend(r.upto(64));
    b
}

/// The first part of `valid` (never all of it).
pub fn truncated(r: &mut Rng, valid: &[u8]) -> Vec<u8> {
    valid[..1 + r.below(valid.len() - 1)].to_vec()
}

/// Policy lists for a create request: valid, unknown and malformed principals.
fn principals(r: &mut Rng) -> String {
    const SOME: [&str; 7] = ["*", "uid:0", "uid:65534", "gid:4294967295", "user:nosuchuser", "nonsense", ""];
    (0..r.below(3)).map(|_| SOME[r.below(SOME.len())]).collect::<Vec<_>>().join(",")
}
