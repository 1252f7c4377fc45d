#!/usr/bin/env bash
# The whole check, as CI runs it: formatting, lints, the test suite (unit, integration, multi-process stress,
# doc tests) and the loom model-checking suite. Run it from anywhere inside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# What the tests create in /dev/shm from here on must be gone at the end (objects, and the daemon's dot files:
# prefix lock, resume key, lease table).
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT

step "promtool, for the metrics lint"
# tests/tests/metrics.rs lints the exposition with `promtool check metrics` (Debian's prometheus package) and
# skips the lint, saying so, without it. A fresh machine lacks it: install it where we may; never fail for it.
if ! command -v promtool >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
            >/dev/null 2>&1 || true
    fi
    command -v promtool >/dev/null || echo "promtool not installed: the metrics test will skip its lint"
fi
{ command -v promtool >/dev/null && promtool --version 2>&1 | head -1; } || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test --workspace"
cargo test --workspace --locked

step "untrusted-memory suite in release with debug assertions and overflow checks"
# The property tests over arbitrary shared memory, optimised (more cases per second) but with every
# `debug_assert` and overflow check live: a check compiled out of release must not hide a bad offset (issue 8,
# defect 10). Own target dir so it does not thrash the main build's release artefacts.
CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
    cargo test -p shmbus-ring --release --test untrusted --locked --target-dir target/untrusted-release

step "loom model checking (LOOM_MAX_PREEMPTIONS=2)"
LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
    cargo test -p shmbus-ring --test loom --release --locked --target-dir target/loom

step "no shared-memory objects left behind"
leftover=$(find /dev/shm -maxdepth 1 -newer "$stamp" -printf '%f\n' | grep -E '^\.?(sem\.)?(sbt[0-9]+x|sit[0-9]+x|shmbus-ostest)' || true)
if [ -n "$leftover" ]; then
    echo "tests left objects in /dev/shm:"; echo "$leftover"; exit 1
fi
echo "all checks passed"
