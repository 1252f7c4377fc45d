//! The hostile side of `tests/tests/control_fuzz.rs` (see `shmbus_tests::control_fuzz`).
//!
//! `control-fuzzer SOCKET SEED INPUTS CONNS SLOW_EVERY HANG_MS PROTECTED PRIVILEGED TOPICS` sends `INPUTS`
//! hostile inputs on `CONNS` connections at once (`PRIVILEGED` is `1` when run as an admin, `TOPICS` is
//! comma-separated), then prints the tally line and the seconds it took; exits 1 naming the first input the
//! daemon mishandled.
use shmbus_tests::control_fuzz::{run, Plan};
use std::time::{Duration, Instant};

fn main() -> std::process::ExitCode {
    let a: Vec<String> = std::env::args().collect();
    assert_eq!(
        a.len(),
        10,
        "usage: control-fuzzer SOCKET SEED INPUTS CONNS SLOW_EVERY HANG_MS PROTECTED PRIVILEGED TOPICS"
    );
    let num = |i: usize| a[i].parse::<u64>().unwrap_or_else(|e| panic!("argument {i} {:?}: {e}", a[i]));
    let plan = Plan {
        socket: a[1].clone().into(),
        seed: num(2),
        inputs: num(3),
        conns: num(4) as usize,
        slow_every: num(5) as usize,
        hang: Duration::from_millis(num(6)),
        protected: a[7].clone(),
        privileged: a[8] == "1",
        topics: a[9].split(',').map(String::from).collect(),
    };
    let since = Instant::now();
    match run(&plan) {
        Ok(t) => {
            println!("{} seconds={:.1}", t.line(), since.elapsed().as_secs_f64());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("control-fuzzer: the daemon mishandled an input: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
