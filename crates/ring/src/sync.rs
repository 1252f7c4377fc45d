//! The one place atomics come from, so the same ring code runs under loom (`--cfg loom`).
//!
//! Modelled on tokio's `loom/mod.rs`: production builds use `core::sync::atomic`, model-checking builds use
//! `loom::sync::atomic`. Only 64-bit words are used, so the shared-memory layout is a sequence of words under both.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64};

pub(crate) use std::sync::atomic::Ordering;

/// Spin-loop hint; under loom a yield so the model checker can schedule another thread.
#[cfg(loom)]
pub(crate) use loom::thread::yield_now as spin_hint;
#[cfg(not(loom))]
pub(crate) use std::hint::spin_loop as spin_hint;

/// Yield the CPU (spin-then-yield strategies); under loom a model-checker yield.
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;
