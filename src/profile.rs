//! Opt-in timing of the forward pass by step (`FERROLLM_PROFILE=1`), for `ferrollm bench`.
//!
//! On a machine whose memory bandwidth drifts by tens of percent within minutes, wall time cannot
//! tell a 2 % change apart; each step's *share* of one run's time can, because the drift moves all
//! steps alike. With the variable set, the calling thread charges the time between consecutive
//! [`mark`]s to the step that just ended, and [`Pool::run`](crate::pool::Pool::run) adds up how
//! long the first thread to finish a pool step waited for the last (the end-of-step imbalance),
//! charged to the same step.
//! Without it, each mark costs one load of a cached flag.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// The steps of a forward pass, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Everything between two forward passes (sampling, the session's bookkeeping).
    Between,
    /// Token (and position) embeddings.
    Embed,
    /// The residual and the attention norm.
    AttnNorm,
    /// The Q, K and V products.
    Qkv,
    /// RoPE, the K/V store and the attention itself.
    Attention,
    /// The attention's output product.
    AttnOut,
    /// The residual and the FFN norm.
    FfnNorm,
    /// The gate and up products (or up alone).
    GateUp,
    /// The activation (times the gate).
    Activation,
    /// The down product.
    Down,
    /// The last residual and the final norm.
    Final,
    /// The output head's product.
    Logits,
}

const STEPS: [Step; 12] = [
    Step::Between,
    Step::Embed,
    Step::AttnNorm,
    Step::Qkv,
    Step::Attention,
    Step::AttnOut,
    Step::FfnNorm,
    Step::GateUp,
    Step::Activation,
    Step::Down,
    Step::Final,
    Step::Logits,
];

static NANOS: [AtomicU64; STEPS.len()] = [const { AtomicU64::new(0) }; STEPS.len()];
static WAIT_NANOS: [AtomicU64; STEPS.len()] = [const { AtomicU64::new(0) }; STEPS.len()];
static WAITS: [AtomicU64; STEPS.len()] = [const { AtomicU64::new(0) }; STEPS.len()];

thread_local! {
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Pool steps run on this thread since its last mark: their count and summed waits.
    static PENDING: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Whether `FERROLLM_PROFILE=1` (read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("FERROLLM_PROFILE").is_ok_and(|v| v == "1"))
}

/// Charges the time since this thread's previous mark to `step` (the step that just ended).
#[inline]
pub fn mark(step: Step) {
    if enabled() {
        let now = Instant::now();
        if let Some(t) = LAST.with(|l| l.replace(Some(now))) {
            NANOS[step as usize].fetch_add((now - t).as_nanos() as u64, Relaxed);
        }
        let (n, ns) = PENDING.with(|p| p.replace((0, 0)));
        WAITS[step as usize].fetch_add(n, Relaxed);
        WAIT_NANOS[step as usize].fetch_add(ns, Relaxed);
    }
}

/// Nanoseconds since the first call: the clock [`Pool::run`](crate::pool::Pool::run) stamps the
/// first and the last thread's end of a step with.
pub(crate) fn clock_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Records one pool step's end-of-step wait (see the module documentation); the next [`mark`] on
/// this thread charges it to the step it ends.
pub(crate) fn record_wait(nanos: u64) {
    PENDING.with(|p| {
        let (n, ns) = p.get();
        p.set((n + 1, ns + nanos));
    });
}

/// The time charged to each step so far, in nanoseconds.
pub fn steps() -> Vec<(Step, u64)> {
    STEPS
        .iter()
        .map(|&s| (s, NANOS[s as usize].load(Relaxed)))
        .collect()
}

/// For each step: the pool steps it ran and their summed end-of-step waits in nanoseconds.
pub fn waits() -> Vec<(Step, u64, u64)> {
    STEPS
        .iter()
        .map(|&s| {
            let i = s as usize;
            (s, WAITS[i].load(Relaxed), WAIT_NANOS[i].load(Relaxed))
        })
        .collect()
}

/// The report `ferrollm bench` prints: each step's share of the time and, for steps run on the
/// pool, how long the first thread to finish waited on average.
pub fn report() -> String {
    let steps = steps();
    let waits = waits();
    let total: u64 = steps.iter().map(|s| s.1).sum::<u64>().max(1);
    let mut out = String::from("step         share   ms        wait µs\n");
    for ((s, ns), (_, n, wait)) in steps.into_iter().zip(&waits) {
        out += &format!(
            "{:<12} {:5.2} % {:8.1}",
            format!("{s:?}"),
            100.0 * ns as f64 / total as f64,
            ns as f64 / 1e6
        );
        if *n > 0 {
            out += &format!(" {:8.2}", *wait as f64 / *n as f64 / 1e3);
        }
        out += "\n";
    }
    let (n, ns) = waits.iter().fold((0, 0), |a, w| (a.0 + w.1, a.1 + w.2));
    out += &format!(
        "pool steps {n}: the first thread to finish waited {:.2} µs on average\n",
        ns as f64 / n.max(1) as f64 / 1e3
    );
    out
}
