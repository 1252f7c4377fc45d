//! The reader under a writer that starts many fragmented messages and finishes none (issue 16 item 13). The
//! attack runs in-process: a pipe's writers are whoever holds its write end, so no second user is involved.

use super::*;
use crate::pipe_io::frame::{frames, Header, FIRST, MAX_FRAME};
use crate::pipe_io::io::Wait;
use std::io::Write;
use std::time::{Duration, Instant};

fn frame(h: &Header, payload: &[u8]) -> Vec<u8> {
    let mut v = h.encode().to_vec();
    v.extend_from_slice(payload);
    v
}

/// 10,000 first fragments, each declaring a 60 MiB message, from as many writer ids: the reader keeps at most
/// [`MAX_PARTIALS`] of them, with buffers the size of what arrived, and counts the rest; a message started
/// before the flood and finished after it, and single-frame messages in between, still arrive.
#[test]
fn first_fragments_without_end_keep_the_reader_bounded() {
    let p = shmbus_os::pipe().expect("pipe");
    let mut reader = PipeReader::new("t16-13", vec![p.read]).expect("reader");
    let big = vec![7u8; 3 * MAX_FRAME];
    let good: Vec<Vec<u8>> = frames(&big, 8, 1, 0).map(|(h, c)| frame(&h, c)).collect();
    let mut out = std::fs::File::from(p.write);
    let first = good[0].clone();
    let rest = good[1..].concat();
    let writer = std::thread::spawn(move || {
        out.write_all(&first).expect("write");
        for w in 0..10_000u32 {
            let h = Header { flags: FIRST, len: 16, writer: 1000 + w, total: 60 << 20, seq: 1, timestamp: 0 };
            out.write_all(&frame(&h, &[0u8; 16])).expect("write");
            if w % 2500 == 0 {
                let (h, c) = frames(b"hello", 7, u64::from(w), 0).next().expect("one frame");
                out.write_all(&frame(&h, c)).expect("write");
            }
        }
        out.write_all(&rest).expect("write");
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut hellos, mut bigs) = (0, 0);
    while bigs == 0 {
        assert!(Instant::now() < deadline, "messages did not arrive");
        match reader.recv(Wait::Until(Instant::now() + Duration::from_millis(100))) {
            Ok(m) if m.meta.writer == 7 => hellos += 1,
            Ok(m) => {
                assert_eq!((m.meta.writer, m.payload.len()), (8, big.len()));
                bigs += 1;
            }
            Err(RecvError::Timeout) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        let held: usize = reader.inputs.iter().flat_map(|i| i.partials.values()).map(|p| p.buf.capacity()).sum();
        let partials: usize = reader.inputs.iter().map(|i| i.partials.len()).sum();
        assert!(partials <= MAX_PARTIALS, "{partials} partial messages held");
        assert!(held <= MAX_PARTIALS * MAX_FRAME + KEEP, "{held} bytes held for unfinished messages");
    }
    writer.join().expect("writer");
    assert_eq!(hellos, 4);
    assert!(reader.pool.refused >= 10_000 - MAX_PARTIALS as u64, "refused {}", reader.pool.refused);
}
