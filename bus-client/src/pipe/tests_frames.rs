//! The reader against every interleaving of several writers' frames (proptest).

use super::frame;
use super::tests::{body, fd_pair, watchdog, PIPE_BUF};
use super::*;
use std::io::Write;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the interleaving of several writers' frames (each writer's frames in its own order, which is
    /// all a pipe guarantees), the reader hands out every message whole, each writer's in order.
    #[test]
    fn frames_of_several_writers_in_any_order(
        lens in prop::collection::vec(prop::collection::vec(0usize..3 * PIPE_BUF, 0..6), 1..4),
        picks in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let _w = watchdog("frames_of_several_writers_in_any_order");
        // Every writer's frames, in order.
        let mut queues: Vec<std::collections::VecDeque<Vec<u8>>> = lens
            .iter()
            .enumerate()
            .map(|(w, ls)| {
                let mut q = std::collections::VecDeque::new();
                for (seq, &n) in ls.iter().enumerate() {
                    let msg = body(w as u64, seq as u64, n);
                    for (h, chunk) in frame::frames(&msg, w as u32 + 1, seq as u64, 9) {
                        q.push_back([&h.encode()[..], chunk].concat());
                    }
                }
                q
            })
            .collect();
        // Interleave them as `picks` says, then whatever is left in writer order.
        let mut wire = Vec::new();
        let mut picks = picks.into_iter();
        while queues.iter().any(|q| !q.is_empty()) {
            let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
            let i = live[picks.next().unwrap_or(0) as usize % live.len()];
            wire.push(queues[i].pop_front().expect("live"));
        }
        let (r, w) = fd_pair();
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::File::from(w);
            for frame in wire {
                f.write_all(&frame).unwrap();
            }
        });
        let mut rx = subscriber_from_fd("prop", r).unwrap();
        let mut next = vec![0u64; lens.len()];
        let mut got = 0;
        for m in rx.iter() {
            let m = m.unwrap();
            let w = m.publisher as usize - 1;
            prop_assert_eq!(m.seq, next[w]);
            prop_assert_eq!(m.timestamp, 9);
            prop_assert!(m.payload == body(w as u64, m.seq, lens[w][m.seq as usize]));
            next[w] += 1;
            got += 1;
        }
        writer.join().unwrap();
        prop_assert_eq!(got, lens.iter().map(Vec::len).sum::<usize>());
        prop_assert_eq!(rx.pipe_abandoned(), Some(0));
    }
}
