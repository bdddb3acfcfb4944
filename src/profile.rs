//! Opt-in timing of the forward pass by step (`FERROLLM_PROFILE=1`), for `ferrollm bench`.
//!
//! On a machine whose memory bandwidth drifts by tens of percent within minutes, wall time cannot
//! tell a 2 % change apart; each step's *share* of one run's time can, because the drift moves all
//! steps alike. With the variable set, the calling thread charges the time between consecutive
//! [`mark`]s to the step that just ended, and [`Pool::run`](crate::pool::Pool::run) adds up how
//! long the first thread to finish a step waited for the last (the end-of-step imbalance).
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
static WAIT_NANOS: AtomicU64 = AtomicU64::new(0);
static WAITS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
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
    }
}

/// Nanoseconds since the first call: the clock [`Pool::run`](crate::pool::Pool::run) stamps the
/// first and the last thread's end of a step with.
pub(crate) fn clock_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Records one step's end-of-step wait (see the module documentation).
pub(crate) fn record_wait(nanos: u64) {
    WAIT_NANOS.fetch_add(nanos, Relaxed);
    WAITS.fetch_add(1, Relaxed);
}

/// The time charged to each step so far, in nanoseconds.
pub fn steps() -> Vec<(Step, u64)> {
    STEPS
        .iter()
        .map(|&s| (s, NANOS[s as usize].load(Relaxed)))
        .collect()
}

/// Pool steps that recorded a wait, and the total wait in nanoseconds.
pub fn waits() -> (u64, u64) {
    (WAITS.load(Relaxed), WAIT_NANOS.load(Relaxed))
}

/// The report `ferrollm bench` prints: each step's share of the time, and the average wait.
pub fn report() -> String {
    let steps = steps();
    let total: u64 = steps.iter().map(|s| s.1).sum::<u64>().max(1);
    let mut out = String::from("step         share   ms\n");
    for (s, ns) in steps {
        out += &format!(
            "{:<12} {:5.2} % {:8.1}\n",
            format!("{s:?}"),
            100.0 * ns as f64 / total as f64,
            ns as f64 / 1e6
        );
    }
    let (n, ns) = waits();
    out += &format!(
        "pool steps {n}: the first thread to finish waited {:.2} µs on average\n",
        ns as f64 / n.max(1) as f64 / 1e3
    );
    out
}
