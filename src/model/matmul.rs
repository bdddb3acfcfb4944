//! Matrix products of weights with f32 activations, on the session's [`Pool`].
//!
//! Every weight matrix gets a [`Plan`] once, at load time:
//! - Q4_0, Q8_0 and Q4_K weights are repacked into eight-row interleaved groups
//!   ([`crate::quant::interleaved`]); activations are quantized once per product (Q8_0 or Q8_K, as
//!   ggml does) and each kernel call dots one group with up to four activation rows, so a weight
//!   block loaded and unpacked once serves four tokens while prompt processing. With one token
//!   (generation), Q4_0 matrices go through a one-token kernel that walks a task's groups two at a
//!   time, side by side (two memory streams; see `interleaved::TokenKernel`).
//! - Q8_0 weights, on CPUs with a Q8_0 row kernel (x86-64), stay as stored for batches of fewer
//!   than [`PACK_MIN_TOKENS`] tokens (generation: memory-bound, and the row kernel keeps up with
//!   memory) and are repacked, by the session's threads, the first time a larger batch comes:
//!   loading then touches no fresh memory for them (see `quant::kernels::q8_rows`).
//! - F16 weights stay in the file's row layout. Batches of [`GEMM_MIN_TOKENS`] or more tokens go
//!   through a register-tiled GEMM when the kernel build has one (x86-64): see [`f16_gemm_chunk`].
//!   Smaller batches (generation) dot four rows at a time with up to four f32 activation rows (F16C
//!   conversion on x86-64), streaming the weights once.
//! - Every other type uses `quant::vec_dot` per (row, token), with ggml's activation operand, the
//!   kernel resolved once per matrix.
//!
//! Work is split into contiguous row ranges, several per thread (handed out dynamically), each
//! computing all tokens of the batch for its rows: each weight row is read from memory once per
//! product.

use super::weights::{Linear, Matrix};
use crate::format::GgmlType;
use crate::pool::{Pool, SharedMut};
use crate::quant::interleaved::{
    self as il, ActRow, Acts, CTile, F16Gemm, GroupKernel, Interleaved, Q8RowsKernel, RowsKernel,
};
use crate::quant::{self, blocks::cast};
use std::sync::OnceLock;

/// Batches of at least this many tokens use the interleaved layout of Q8_0 matrices.
pub(crate) const PACK_MIN_TOKENS: usize = 8;

/// How a matrix is multiplied (chosen once per matrix).
pub(crate) enum Plan {
    /// Repacked into interleaved groups.
    Packed { p: Interleaved, kernel: GroupKernel },
    /// Q8_0 rows as stored; repacked on the first batch of [`PACK_MIN_TOKENS`] or more.
    Q8Rows {
        rows: Q8RowsKernel,
        packed: OnceLock<Option<(Interleaved, GroupKernel)>>,
    },
    /// F16 rows with f32 activations; `gemm` for batches when the build has one, or AMX tiles
    /// (`amx`) when the CPU has AMX-BF16.
    F16 {
        kernel: RowsKernel,
        gemm: Option<F16Gemm>,
        amx: bool,
    },
    /// One `vec_dot` per (row, token); activations in `act` (None: f32).
    Dot {
        dot: fn(&[u8], &[u8]) -> f32,
        act: Option<GgmlType>,
    },
}

/// The dot product of one row of `ty` with one activation row, resolved once.
fn dot_fn(ty: GgmlType) -> fn(&[u8], &[u8]) -> f32 {
    use GgmlType::*;
    macro_rules! typed {
        ($f:ident) => {
            |w, a| (quant::kernels::get().$f)(cast(w), cast(a))
        };
    }
    match ty {
        F32 => |w, a| (quant::kernels::get().dot_f32)(w, a),
        F16 => |w, a| (quant::kernels::get().dot_f16)(w, a),
        BF16 => |w, a| (quant::kernels::get().dot_bf16)(w, a),
        Q4_0 => typed!(dot_q4_0),
        Q4_1 => typed!(dot_q4_1),
        Q5_0 => typed!(dot_q5_0),
        Q5_1 => typed!(dot_q5_1),
        Q8_0 => typed!(dot_q8_0),
        Q2_K => typed!(dot_q2_k),
        Q3_K => typed!(dot_q3_k),
        Q4_K => typed!(dot_q4_k),
        Q5_K => typed!(dot_q5_k),
        Q6_K => typed!(dot_q6_k),
        // Checked at load (`can_dequantize`); `vec_dot` reports the type otherwise.
        _ => |_, _| f32::NAN,
    }
}

impl Plan {
    /// The plan of a matrix: repacked when its type has an interleaved layout (unless the
    /// environment says `FERROLLM_REPACK=0`).
    pub(crate) fn new(m: &Matrix) -> Plan {
        let repack = std::env::var("FERROLLM_REPACK").map_or(true, |v| v != "0");
        let q8_rows = quant::kernels::get().q8_0_rows;
        if let Some(rows) = q8_rows.filter(|_| m.ty == GgmlType::Q8_0) {
            if repack && m.cols.is_multiple_of(quant::blocks::QK) {
                return Plan::Q8Rows {
                    rows,
                    packed: OnceLock::new(),
                };
            }
        }
        if repack {
            if let Some(layout) = il::Layout::for_type(m.ty) {
                let (kernel, width) = il::kernel(layout);
                if let Some(p) = Interleaved::pack(m.ty, m.rows, m.cols, width, m.bytes()) {
                    return Plan::Packed { p, kernel };
                }
            }
        }
        if m.ty == GgmlType::F16 && m.cols.is_multiple_of(8) {
            return Plan::F16 {
                kernel: il::f16_rows_kernel(),
                gemm: il::f16_gemm_kernel(),
                amx: amx_available(),
            };
        }
        Plan::Dot {
            dot: dot_fn(m.ty),
            act: quant::vec_dot_type(m.ty),
        }
    }

    /// Repacks a Q8_0 matrix kept as stored now, on the calling thread (see [`Weights::prepare`]).
    ///
    /// [`Weights::prepare`]: super::weights::Weights::prepare
    pub(crate) fn pack_now(&self, w: &Matrix) {
        if let Plan::Q8Rows { packed, .. } = self {
            packed.get_or_init(|| pack_q8_0(w, &|n, f| (0..n).for_each(f)));
        }
    }
    /// Whether this is a Q8_0 matrix kept as stored.
    pub(crate) fn packs_lazily(&self) -> bool {
        matches!(self, Plan::Q8Rows { .. })
    }
}

/// The interleaved copy of a Q8_0 matrix kept as stored and its kernel, packed in tasks run by
/// `par` (see [`Interleaved::pack_with`]).
fn pack_q8_0(w: &Matrix, par: il::Par<'_>) -> Option<(Interleaved, GroupKernel)> {
    let (kernel, width) = il::kernel(il::Layout::Q8_0x8);
    Interleaved::pack_with(w.ty, w.rows, w.cols, width, w.bytes(), par).map(|p| (p, kernel))
}

/// How one product runs: a [`Plan`] resolved for a batch size.
#[derive(Clone, Copy)]
enum Use<'a> {
    Packed(&'a Interleaved, GroupKernel),
    Q8Rows(Q8RowsKernel),
    F16(RowsKernel),
    F16Gemm(F16Gemm),
    /// The f16 GEMM on AMX tiles (x86-64 only; see `quant::kernels::amx`).
    F16Amx,
    /// An interleaved Q4_K, Q4_0 or Q8_0 matrix (16-row groups) on AMX-INT8 tiles.
    IntAmx(&'a Interleaved),
    Dot(fn(&[u8], &[u8]) -> f32, Option<GgmlType>),
}

impl Use<'_> {
    /// The activation format of an interleaved product.
    fn act_kind(&self) -> Option<il::ActKind> {
        match self {
            Use::Packed(p, _) | Use::IntAmx(p) => Some(p.layout.act_kind()),
            Use::Q8Rows(_) => Some(il::ActKind::Q8_0),
            _ => None,
        }
    }
    /// Units of work the rows split into (groups, or row quads).
    fn units(&self, w: &Matrix) -> usize {
        match self {
            Use::Packed(p, _) | Use::IntAmx(p) => p.groups(),
            Use::F16Gemm(g) => w.rows.div_ceil(g.mr),
            Use::F16Amx => w.rows.div_ceil(AMX_MR),
            _ => w.rows.div_ceil(4),
        }
    }
}

/// The way `w` is multiplied with a batch of `n` tokens (packing a Q8_0 matrix on the first large
/// batch, on the pool's threads).
fn resolve<'a>(pool: &Pool, w: &'a Matrix, n: usize) -> Use<'a> {
    match w.plan() {
        Plan::Packed { p, kernel } => packed_use(p, *kernel, n),
        Plan::Q8Rows { rows, packed } => {
            if let Some(Some((p, kernel))) = packed.get() {
                return packed_use(p, *kernel, n);
            }
            if n < PACK_MIN_TOKENS {
                return Use::Q8Rows(*rows);
            }
            let packed =
                packed.get_or_init(|| pack_q8_0(w, &|tasks, f| pool.run(tasks, |i, _| f(i))));
            match packed {
                Some((p, kernel)) => packed_use(p, *kernel, n),
                None => Use::Q8Rows(*rows),
            }
        }
        Plan::F16 { kernel, gemm, amx } => match gemm.filter(|_| n >= GEMM_MIN_TOKENS) {
            Some(_) if *amx => Use::F16Amx,
            Some(g) => Use::F16Gemm(g),
            None => Use::F16(*kernel),
        },
        Plan::Dot { dot, act } => Use::Dot(*dot, *act),
    }
}

/// An interleaved matrix with a batch of `n` tokens: on AMX tiles from [`AMX_MIN_TOKENS`] tokens
/// on (16-row groups, a CPU with AMX), with the group kernel otherwise.
fn packed_use(p: &Interleaved, kernel: GroupKernel, n: usize) -> Use<'_> {
    if n >= AMX_MIN_TOKENS && p.width() == 16 && amx_available() {
        return Use::IntAmx(p);
    }
    Use::Packed(p, kernel)
}

/// Buffers reused by every product of a session.
#[derive(Default)]
pub struct MatScratch {
    acts: Acts,
    operand: Vec<u8>,
    /// Activations packed for the f16 GEMM (see [`pack_x`]).
    xpack: Vec<f32>,
    /// Activations packed for the AMX f16 GEMM (bf16 parts, see `quant::kernels::amx`).
    xamx: Vec<u32>,
}

/// Row ranges per thread. The pool runs each thread's share of them in memory order and lets
/// threads that finish early take ranges from the back of the others' shares, so small ranges
/// cost little and shorten the wait at the end of a step. With 1.1B Q4_0 generation, 2 threads,
/// the thread that finished first waited on average (per product, 3 runs each): 4 ranges per
/// thread 30-48 µs, 8: 7-12 µs, 16: 6-8 µs, 32: 4-5 µs, of steps of about 250-300 µs.
const TASKS_PER_THREAD: usize = 16;

/// Splits `units` into at most `threads × TASKS_PER_THREAD` contiguous ranges of equal length;
/// returns the range length (in units) and the number of ranges. For the steps that prepare a
/// product's operands (a few blocks or tokens of equal cost); the products themselves stream
/// weights for long and are cut by [`Split`].
fn split(units: usize, threads: usize) -> (usize, usize) {
    let tasks = (threads * TASKS_PER_THREAD).clamp(1, units.max(1));
    let per = units.div_ceil(tasks).max(1);
    (per, units.div_ceil(per))
}

/// How the units of a product (one matrix, or several side by side) are cut into pool tasks.
/// The pool hands thread `t` tasks `t k..(t + 1) k` (`k` = [`TASKS_PER_THREAD`]) and lets a thread
/// that has run out take tasks from the back of another's share; so each thread's share of the
/// units is cut into `k` ranges that shrink towards the share's end (range `j` ends at
/// `1 − (1 − (j + 1)/k)²` of the share: the first is 12 % of it, the last 0.4 %). What a thread
/// finishing early finds left to take is then small, and it waits less for the last range.
/// 1.1B Q4_0 generation, 2 threads, `FERROLLM_PROFILE`, 3 alternations: the first thread to finish
/// a step waited 5.2–6.0 µs on average with 16 equal ranges per thread, 4.3–5.1 µs with these. What
/// is left is mostly the range in flight on the other thread when the last one was taken.
#[derive(Clone, Copy)]
struct Split {
    units: usize,
    threads: usize,
}

impl Split {
    fn tasks(&self) -> usize {
        self.threads * TASKS_PER_THREAD
    }
    /// The units of task `task` (may be empty).
    fn range(&self, task: usize) -> (usize, usize) {
        const K: usize = TASKS_PER_THREAD;
        let (t, j) = (task / K, task % K);
        let start = t * self.units / self.threads;
        let share = (t + 1) * self.units / self.threads - start;
        let at = |j: usize| start + share * (K * K - (K - j) * (K - j)) / (K * K);
        (at(j), at(j + 1))
    }
}

/// `out[t][r] = W[r] · x[t] + b[r]` for `n` rows of `x` (each `w.cols` long); `out` holds
/// `n × w.rows` values.
pub fn linear(pool: &Pool, s: &mut MatScratch, lin: &Linear, x: &[f32], n: usize, out: &mut [f32]) {
    let w = &lin.w;
    let (rows, cols) = (w.rows, w.cols);
    assert_eq!(x.len(), n * cols, "activation rows");
    assert_eq!(out.len(), n * rows, "output rows");
    match resolve(pool, w, n) {
        Use::Dot(dot, act) => by_dot(pool, s, w, dot, act, x, n, out),
        u => product(pool, s, w, u, x, n, out),
    }
    add_bias(lin, out);
}

/// Adds the layer's bias (if any) to every output row.
fn add_bias(lin: &Linear, out: &mut [f32]) {
    if let Some(b) = &lin.b {
        for out_row in out.chunks_exact_mut(lin.w.rows) {
            out_row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
        }
    }
}

/// `out = W x` for a product kind other than [`Use::Dot`]: the operands are prepared once, then
/// the units (groups, row quads or row blocks) are split over the pool.
fn product(
    pool: &Pool,
    s: &mut MatScratch,
    w: &Matrix,
    u: Use<'_>,
    x: &[f32],
    n: usize,
    out: &mut [f32],
) {
    prepare_operands(pool, s, u, x, n, w.cols);
    let ops = Operands {
        acts: &s.acts,
        xp: &s.xpack,
        xamx: &s.xamx,
    };
    let split = Split {
        units: u.units(w),
        threads: pool.threads(),
    };
    let dst = SharedMut::new(out);
    pool.run(split.tasks(), |task, _| {
        let (u0, u1) = split.range(task);
        if u0 < u1 {
            chunk(u, w, &ops, x, n, u0, u1, &dst);
        }
    });
}

/// Quantizes (interleaved and Q8_0-row products) or packs (f16 GEMM) the activations of a product
/// kind into the session's scratch.
fn prepare_operands(pool: &Pool, s: &mut MatScratch, u: Use<'_>, x: &[f32], n: usize, cols: usize) {
    if let Some(kind) = u.act_kind() {
        quantize_acts(pool, &mut s.acts, kind, x, n, cols);
    }
    if let Use::F16Gemm(g) = u {
        pack_x(pool, &mut s.xpack, g.nr, x, n, cols);
    }
    if let Use::F16Amx = u {
        pack_x_amx(pool, &mut s.xamx, x, n, cols);
    }
}

/// The prepared operands of a product (see [`prepare_operands`]).
struct Operands<'a> {
    acts: &'a Acts,
    xp: &'a [f32],
    xamx: &'a [u32],
}

/// Units `u0..u1` of the product of `w` (used as `u`) with the prepared operands, into `dst`.
#[allow(clippy::too_many_arguments)]
fn chunk(
    u: Use<'_>,
    w: &Matrix,
    ops: &Operands<'_>,
    x: &[f32],
    n: usize,
    u0: usize,
    u1: usize,
    dst: &SharedMut<f32>,
) {
    let acts = ops.acts;
    match u {
        Use::Packed(p, kernel) => packed_chunk(p, kernel, acts, n, u0, u1, dst),
        Use::Q8Rows(kernel) => q8_rows_chunk(w, kernel, acts, n, u0, u1, dst),
        Use::F16(kernel) => f16_chunk(w, kernel, x, n, u0, u1, dst),
        Use::F16Gemm(g) => f16_gemm_chunk(w, &g, ops.xp, n, u0, u1, dst),
        Use::F16Amx => f16_amx_chunk(w, ops.xamx, n, u0, u1, dst),
        Use::IntAmx(p) => int_amx_chunk(p, acts, n, u0, u1, dst),
        Use::Dot(..) => unreachable!("row-by-row products are not split into units"),
    }
}

/// Rows per unit of the AMX f16 GEMM.
#[cfg(target_arch = "x86_64")]
const AMX_MR: usize = crate::quant::kernels::amx::MR;
#[cfg(not(target_arch = "x86_64"))]
const AMX_MR: usize = 32;

/// Whether F16 batches go through AMX tiles (see `quant::kernels::amx`).
fn amx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::quant::kernels::get().group_width == 16
        && crate::quant::kernels::amx::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Batches from this many tokens on multiply Q4_K, Q4_0 and Q8_0 matrices on AMX tiles (when the
/// CPU has them). At least the Q4_0/Q8_0 kernel's 16-token tile (it needs a whole one).
const AMX_MIN_TOKENS: usize = 16;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(AMX_MIN_TOKENS >= crate::quant::kernels::amx::Q0_TOKENS);

/// Groups `g0..g1` of the interleaved Q4_K, Q4_0 or Q8_0 matrix `p` on AMX tiles, into `dst`.
fn int_amx_chunk(
    p: &Interleaved,
    acts: &Acts,
    n: usize,
    g0: usize,
    g1: usize,
    dst: &SharedMut<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::quant::kernels::amx;
        let base = dst.ptr_in(0, n * p.rows);
        let (group, nb, rows) = (&|g| p.group(g), p.blocks(), p.rows);
        let (qs, d) = (acts.qs_rows(0, n), acts.d_rows(0, n));
        // SAFETY: rows of groups g0..g1 of every token belong to the caller's task only;
        // `ptr_in` checked that `dst` holds n × rows values.
        unsafe {
            match p.layout {
                il::Layout::Q4_Kx8 => amx::q4_k_chunk(group, nb, rows, qs, d, n, g0, g1, base),
                il::Layout::Q4_0x8 | il::Layout::Q8_0x8 => {
                    let q4 = p.layout == il::Layout::Q4_0x8;
                    amx::q0_chunk(q4, group, nb, rows, qs, d, n, g0, g1, base)
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AMX products only on x86-64 ({p:p} {acts:p} {n} {g0} {g1} {dst:p})")
}

/// Packs the activations for the AMX GEMM, a task per pair of 16-token blocks.
fn pack_x_amx(pool: &Pool, xp: &mut Vec<u32>, x: &[f32], n: usize, cols: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::quant::kernels::amx;
        xp.clear();
        xp.resize(amx::acts_len(n, cols), 0);
        let blocks = 2 * n.div_ceil(2 * amx::NB);
        let blen = xp.len() / blocks;
        let dst = SharedMut::new(xp);
        let (per, tasks) = split(blocks, pool.threads());
        pool.run(tasks, |task, _| {
            for b in task * per..((task + 1) * per).min(blocks) {
                // SAFETY: block b belongs to this task only.
                let d = unsafe { dst.range(b * blen, blen) };
                amx::pack_acts_block(x, n, cols, b, d);
            }
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AMX products only on x86-64 ({pool:p} {xp:p} {x:p} {n} {cols})")
}

/// Row blocks `b0..b1` of the f16 matrix `w` on AMX tiles, into `dst`.
fn f16_amx_chunk(w: &Matrix, xp: &[u32], n: usize, b0: usize, b1: usize, dst: &SharedMut<f32>) {
    #[cfg(target_arch = "x86_64")]
    {
        let base = dst.ptr_in(0, n * w.rows);
        // SAFETY: rows b0 MR .. b1 MR of every token belong to the caller's task only; `ptr_in`
        // checked that `dst` holds n × rows values.
        unsafe {
            crate::quant::kernels::amx::f16_chunk(
                &|r| w.row(r),
                w.rows,
                w.cols,
                xp,
                n,
                b0,
                b1,
                base,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AMX products only on x86-64 ({w:p} {xp:p} {n} {b0} {b1} {dst:p})")
}

/// Quantizes the activation rows for an interleaved layout, in parallel for a batch.
fn quantize_acts(
    pool: &Pool,
    acts: &mut Acts,
    kind: il::ActKind,
    x: &[f32],
    n: usize,
    cols: usize,
) {
    acts.reset(kind, cols, n);
    let nb = cols / quant::blocks::QK;
    let ns = cols / kind.scale_values();
    let (qs, d, sum) = acts.parts_mut();
    let (qs, d, sum) = (SharedMut::new(qs), SharedMut::new(d), SharedMut::new(sum));
    let (per, tasks) = split(n, if n >= 8 { pool.threads() } else { 1 });
    let work = |task: usize, _: usize| {
        for t in task * per..((task + 1) * per).min(n) {
            // SAFETY: each token's slots are written by the one task that owns the token.
            unsafe {
                il::quantize_row(
                    kind,
                    &x[t * cols..(t + 1) * cols],
                    qs.range(t * cols, cols),
                    d.range(t * ns, ns),
                    sum.range(t * nb, nb),
                );
            }
        }
    };
    if tasks == 1 {
        work(0, 0);
    } else {
        pool.run(tasks, work);
    }
}

/// The activation rows `t0..t0 + MAX_TOKENS` (the last row repeated past `n`), as a kernel takes
/// them. The product loops compute the first tile once per chunk, not once per row group: with one
/// token (generation) these lookups, four non-inlined calls whose results are read back through
/// memory, took 3-4 % of all cycles (perf, 1.1B Q4_0 tg).
///
/// Written out rather than through `std::array::from_fn`, whose closure was not inlined into the
/// batch loop: each row came back through memory from a call (`perf`, 160M Q4_0 pp128).
#[inline(always)]
fn act_tile(acts: &Acts, n: usize, t0: usize) -> [ActRow<'_>; il::MAX_TOKENS] {
    const _: () = assert!(il::MAX_TOKENS == 4);
    let row = |i: usize| acts.row((t0 + i).min(n - 1));
    [row(0), row(1), row(2), row(3)]
}

/// Groups `g0..g1` of `p` against every activation row, into `dst` (`n × p.rows`).
fn packed_chunk(
    p: &Interleaved,
    kernel: GroupKernel,
    acts: &Acts,
    n: usize,
    g0: usize,
    g1: usize,
    dst: &SharedMut<f32>,
) {
    let rows = p.rows;
    let nb = p.blocks();
    let width = p.width();
    let first = act_tile(acts, n, 0);
    if let Some((one, _)) = il::token_kernel(p.layout).filter(|&(_, w)| n == 1 && w == width) {
        let r0 = g0 * width;
        // SAFETY: rows of groups g0..g1 belong to the caller's task only.
        let o = unsafe { dst.range(r0, (g1 * width).min(rows) - r0) };
        one(p.groups_bytes(g0, g1), p.group_bytes(), nb, &first[0], o);
        return;
    }
    // Two groups at a time through the pair kernel where the build has one, else one.
    let pair = il::pair_kernel(p.layout).filter(|&(_, w)| w == width);
    let mut tiles = [[[0f32; il::MAX_ROWS]; il::MAX_TOKENS]; 2];
    let mut g = g0;
    while g < g1 {
        let k = if pair.is_some() { (g1 - g).min(2) } else { 1 };
        for t0 in (0..n).step_by(il::MAX_TOKENS) {
            let nt = il::MAX_TOKENS.min(n - t0);
            let ar = if t0 == 0 {
                first
            } else {
                act_tile(acts, n, t0)
            };
            match pair {
                Some((two, _)) if k == 2 => {
                    two([p.group(g), p.group(g + 1)], nb, &ar[..nt], &mut tiles)
                }
                _ => kernel(p.group(g), nb, &ar[..nt], &mut tiles[0]),
            }
            for (i, tile) in tiles.iter().enumerate().take(k) {
                let r0 = (g + i) * width;
                let nr = width.min(rows - r0);
                for (t, res) in tile.iter().enumerate().take(nt) {
                    // SAFETY: rows r0..r0+nr of every token belong to the caller's task only.
                    let o = unsafe { dst.range((t0 + t) * rows + r0, nr) };
                    o.copy_from_slice(&res[..nr]);
                }
            }
        }
        g += k;
    }
}

/// Row quads `q0..q1` of `w` against every activation row, into `dst`: `tile(rows, t0, nt, res)`
/// computes `res[t][r]` = row `rows[r]` · activation `t0 + t` for `t < nt` (at most
/// [`il::MAX_TOKENS`]) and up to four rows (the last quad may have fewer).
fn by_quads(
    w: &Matrix,
    n: usize,
    q0: usize,
    q1: usize,
    dst: &SharedMut<f32>,
    tile: impl Fn(&[&[u8]], usize, usize, &mut [[f32; 4]; il::MAX_TOKENS]),
) {
    let rows = w.rows;
    let mut res = [[0f32; 4]; il::MAX_TOKENS];
    for qd in q0..q1 {
        let r0 = 4 * qd;
        let nr = 4.min(rows - r0);
        let wr: [&[u8]; 4] = std::array::from_fn(|i| w.row(r0 + i.min(nr - 1)));
        for t0 in (0..n).step_by(il::MAX_TOKENS) {
            let nt = il::MAX_TOKENS.min(n - t0);
            tile(&wr[..nr], t0, nt, &mut res);
            for (t, r) in res.iter().enumerate().take(nt) {
                // SAFETY: rows r0..r0+nr of every token belong to the caller's task only.
                let o = unsafe { dst.range((t0 + t) * rows + r0, nr) };
                o.copy_from_slice(&r[..nr]);
            }
        }
    }
}

/// Row quads `q0..q1` of the f16 matrix `w` against every f32 activation row, into `dst`.
fn f16_chunk(
    w: &Matrix,
    kernel: RowsKernel,
    x: &[f32],
    n: usize,
    q0: usize,
    q1: usize,
    dst: &SharedMut<f32>,
) {
    let cols = w.cols;
    by_quads(w, n, q0, q1, dst, |wr, t0, nt, res| {
        let xs: [&[f32]; il::MAX_TOKENS] = std::array::from_fn(|i| {
            let t = (t0 + i).min(n - 1);
            &x[t * cols..(t + 1) * cols]
        });
        kernel(wr, &xs[..nt], cols, res)
    });
}

/// Batches from this many tokens on use the f16 GEMM (when the build has one). Packing a panel
/// costs about 0.2 ns per weight (AVX-512 build); below this the row kernel, which converts each
/// weight once per four tokens, is as fast or faster. Measured on 2048 × 2048 (a timing probe of
/// whole products, best of 5, 2 threads, GFLOP/s row kernel vs GEMM): n 8: 97–120 vs 48–74, n 16: 117–139 vs 85–121, n 24:
/// 120–135 vs 104–143, n 128: 101–134 vs 141–197.
pub(crate) const GEMM_MIN_TOKENS: usize = 32;

/// Depth of the K blocks of the f16 GEMM: an AVX-512 panel of 32 rows × 256 values is 32 KB of
/// f32 and stays in L1d (48 KB) with the 12 KB of activations one micro-kernel call reads.
const KC: usize = 256;

/// The f16 GEMM's weight panel (one per task, on the stack).
#[repr(align(64))]
struct Panel([f32; il::GEMM_MAX_MR * KC]);

/// Packs the `n` activation rows (`cols` each) for the GEMM: token block `b` (tokens `nr b ..
/// nr b + nr`) is `cols` groups of `nr` values, `xp[(b cols + k) nr + t]` = `x[nr b + t][k]`
/// (zero past the last token), so a micro-kernel reads its tokens' values of one `k` together.
fn pack_x(pool: &Pool, xp: &mut Vec<f32>, nr: usize, x: &[f32], n: usize, cols: usize) {
    let blocks = n.div_ceil(nr);
    xp.clear();
    xp.resize(blocks * cols * nr, 0.0);
    let dst = SharedMut::new(xp);
    let (per, tasks) = split(blocks, pool.threads());
    pool.run(tasks, |task, _| {
        for b in task * per..((task + 1) * per).min(blocks) {
            // SAFETY: block b belongs to this task only.
            let d = unsafe { dst.range(b * cols * nr, cols * nr) };
            for t in 0..nr.min(n - b * nr) {
                let src = &x[(b * nr + t) * cols..][..cols];
                for (k, v) in src.iter().enumerate() {
                    d[k * nr + t] = *v;
                }
            }
        }
    });
}

/// Row blocks `b0..b1` (of `g.mr` rows) of the f16 matrix `w` against the `n` activation rows
/// packed in `xp` (see [`pack_x`]), into `dst` (`n × w.rows`).
///
/// For each K block of [`KC`] values and each row block, the weights are converted once into an
/// f32 panel (k-major, `g.mr` rows per k); the micro-kernel then multiplies that panel with every
/// block of `g.nr` tokens, one broadcast activation × `g.mr / lanes` panel registers per FMA
/// group, accumulating over the K blocks in `dst`. The conversion is paid once per weight and
/// batch instead of once per weight and four tokens; the activation K block (`n × KC` f32, 128 KB
/// for 128 tokens) stays in L2 across the row blocks of the task.
fn f16_gemm_chunk(
    w: &Matrix,
    g: &F16Gemm,
    xp: &[f32],
    n: usize,
    b0: usize,
    b1: usize,
    dst: &SharedMut<f32>,
) {
    let (rows, cols) = (w.rows, w.cols);
    let (mr, nr) = (g.mr, g.nr);
    assert!(mr <= il::GEMM_MAX_MR && xp.len() >= n.div_ceil(nr) * cols * nr);
    let mut panel = Panel([0f32; il::GEMM_MAX_MR * KC]);
    for k0 in (0..cols).step_by(KC) {
        let kc = KC.min(cols - k0);
        for b in b0..b1 {
            let r0 = b * mr;
            let nrows = mr.min(rows - r0);
            let wr: [&[u8]; il::GEMM_MAX_MR] =
                std::array::from_fn(|i| w.row(r0 + i.min(nrows - 1)));
            (g.pack)(&wr[..mr], k0, kc, &mut panel.0);
            for t0 in (0..n).step_by(nr) {
                let tokens = nr.min(n - t0);
                let xs = &xp[(t0 / nr * cols + k0) * nr..][..kc * nr];
                let c = CTile {
                    ptr: dst.ptr_in(t0 * rows + r0, (tokens - 1) * rows + nrows),
                    ldc: rows,
                    rows: nrows,
                    tokens,
                    add: k0 > 0,
                };
                // SAFETY: rows r0..r0 + nrows of every token belong to the caller's task only;
                // `ptr_in` checked that the tile lies within `dst`; the panel and `xs` hold
                // `kc` groups of `mr` and `nr` values.
                unsafe { (g.micro)(&panel.0, xs, kc, &c) };
            }
        }
    }
}

/// Row quads `q0..q1` of the Q8_0 matrix `w` against every activation row, into `dst`.
fn q8_rows_chunk(
    w: &Matrix,
    kernel: Q8RowsKernel,
    acts: &Acts,
    n: usize,
    q0: usize,
    q1: usize,
    dst: &SharedMut<f32>,
) {
    let nb = w.cols / quant::blocks::QK;
    let first = act_tile(acts, n, 0);
    by_quads(w, n, q0, q1, dst, |wr, t0, nt, res| {
        let ar = if t0 == 0 {
            first
        } else {
            act_tile(acts, n, t0)
        };
        kernel(wr, &ar[..nt], nb, res)
    });
}

/// Several products with the same input (Q, K, V; gate and up) as one parallel step: the
/// activations are quantized once when the matrices share their interleaved activation format.
/// Falls back to one [`linear`] each otherwise.
pub fn linear_multi(
    pool: &Pool,
    s: &mut MatScratch,
    lins: &[&Linear],
    x: &[f32],
    n: usize,
    outs: &mut [&mut [f32]],
) {
    assert!(lins.len() == outs.len() && lins.len() <= 4);
    let m = lins.len();
    let resolved: [Option<Use<'_>>; 4] =
        std::array::from_fn(|i| lins.get(i).map(|l| resolve(pool, &l.w, n)));
    let u = |i: usize| resolved[i].expect("one plan per matrix");
    let k0 = u(0).act_kind();
    let fused_packed = k0.is_some() && (0..m).all(|i| u(i).act_kind() == k0);
    let fused_f16 = (0..m).all(|i| matches!(u(i), Use::F16(_)))
        || (0..m).all(|i| matches!(u(i), Use::F16Gemm(_)))
        || (0..m).all(|i| matches!(u(i), Use::F16Amx));
    if !(fused_packed || fused_f16) {
        for (l, o) in lins.iter().zip(outs.iter_mut()) {
            linear(pool, s, l, x, n, o);
        }
        return;
    }
    for (l, o) in lins.iter().zip(outs.iter()) {
        assert_eq!(x.len(), n * l.w.cols, "activation rows");
        assert_eq!(o.len(), n * l.w.rows, "output rows");
    }
    // The matrices' units side by side (they are alike: same columns, same kind), split as one:
    // matrix i has units first[i]..first[i + 1]; a task may span two.
    let mut first = [0usize; 5];
    for i in 0..m {
        first[i + 1] = first[i] + u(i).units(&lins[i].w);
    }
    let split = Split {
        units: first[m],
        threads: pool.threads(),
    };
    let dsts: [Option<SharedMut<f32>>; 4] =
        std::array::from_fn(|i| outs.get_mut(i).map(|o| SharedMut::new(o)));
    prepare_operands(pool, s, u(0), x, n, lins[0].w.cols);
    let ops = Operands {
        acts: &s.acts,
        xp: &s.xpack,
        xamx: &s.xamx,
    };
    pool.run(split.tasks(), |task, _| {
        let (a, b) = split.range(task);
        for i in 0..m {
            let (u0, u1) = (a.max(first[i]), b.min(first[i + 1]));
            if u0 < u1 {
                let dst = dsts[i].as_ref().expect("one output per matrix");
                chunk(
                    u(i),
                    &lins[i].w,
                    &ops,
                    x,
                    n,
                    u0 - first[i],
                    u1 - first[i],
                    dst,
                );
            }
        }
    });
    for (l, o) in lins.iter().zip(outs.iter_mut()) {
        add_bias(l, o);
    }
}

#[allow(clippy::too_many_arguments)]
fn by_dot(
    pool: &Pool,
    s: &mut MatScratch,
    w: &Matrix,
    dot: fn(&[u8], &[u8]) -> f32,
    act: Option<GgmlType>,
    x: &[f32],
    n: usize,
    out: &mut [f32],
) {
    let (rows, cols) = (w.rows, w.cols);
    let row_size = match act {
        Some(t) => {
            let rs = t.row_size(cols as u64).expect("cols checked at load") as usize;
            s.operand.resize(rs * n, 0);
            for (dst, src) in s.operand.chunks_exact_mut(rs).zip(x.chunks_exact(cols)) {
                quant::quantize(t, src, dst).expect("activation row of whole blocks");
            }
            rs
        }
        None => {
            s.operand.clear();
            s.operand.extend_from_slice(f32_bytes(x));
            cols * 4
        }
    };
    let operand = &s.operand;
    let split = Split {
        units: rows,
        threads: pool.threads(),
    };
    let dst = SharedMut::new(out);
    pool.run(split.tasks(), |task, _| {
        let (r0, r1) = split.range(task);
        for t in 0..n {
            let a = &operand[t * row_size..(t + 1) * row_size];
            // SAFETY: rows r0..r1 of every token belong to this task only.
            let o = unsafe { dst.range(t * rows + r0, r1 - r0) };
            for (i, o) in o.iter_mut().enumerate() {
                *o = dot(w.row(r0 + i), a);
            }
        }
    });
}

/// The raw bytes of an f32 slice (little-endian on the platforms ferrollm supports).
pub(crate) fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and every byte of it may be read as u8; the length is exact.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng_vals(n: usize, seed: &mut u64, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    fn matrix(ty: GgmlType, rows: usize, cols: usize, seed: &mut u64) -> Matrix {
        let rs = ty.row_size(cols as u64).unwrap() as usize;
        let mut bytes = vec![0u8; rs * rows];
        for r in 0..rows {
            let v = rng_vals(cols, seed, 2.0);
            quant::quantize(ty, &v, &mut bytes[r * rs..(r + 1) * rs]).unwrap();
        }
        Matrix::owned(ty, rows, cols, bytes).unwrap()
    }

    /// Per (token, row) `vec_dot_reference` with ggml's operand, and Σ|w·x| per output.
    fn naive(w: &Matrix, x: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
        let (rows, cols) = (w.rows, w.cols);
        let mut out = vec![0f32; n * rows];
        let mut mag = vec![0f32; n * rows];
        let mut wf = vec![0f32; cols];
        for t in 0..n {
            let xr = &x[t * cols..(t + 1) * cols];
            let a = match quant::vec_dot_type(w.ty) {
                Some(at) => {
                    let mut a = vec![0u8; at.row_size(cols as u64).unwrap() as usize];
                    quant::quantize(at, xr, &mut a).unwrap();
                    a
                }
                None => f32_bytes(xr).to_vec(),
            };
            for r in 0..rows {
                out[t * rows + r] = quant::vec_dot_reference(w.ty, cols, w.row(r), &a).unwrap();
                w.dequantize_row(r, &mut wf).unwrap();
                mag[t * rows + r] = wf.iter().zip(xr).map(|(a, b)| (a * b).abs()).sum();
            }
        }
        (out, mag)
    }

    #[test]
    fn split_tiles_the_units_with_ranges_shrinking_towards_each_share_end() {
        for threads in [1, 2, 3, 8] {
            for units in [0, 1, 5, 16, 37, 160, 704, 2003] {
                let sp = Split { units, threads };
                let mut next = 0;
                for t in 0..threads {
                    // The pool's share of thread t: tasks t k..(t + 1) k, of sizes shrinking as
                    // share · (2 (k − j) − 1) / k² (up to rounding).
                    let share = ((t + 1) * units / threads - t * units / threads) as f64;
                    let k = TASKS_PER_THREAD as f64;
                    for (j, task) in (t * TASKS_PER_THREAD..(t + 1) * TASKS_PER_THREAD).enumerate()
                    {
                        let (a, b) = sp.range(task);
                        assert_eq!(a, next, "{units} units, {threads} threads, task {task}");
                        let exact = share * (2.0 * (k - j as f64) - 1.0) / (k * k);
                        assert!(
                            b >= a && ((b - a) as f64 - exact).abs() < 1.0,
                            "task {task}"
                        );
                        next = b;
                    }
                    assert_eq!(
                        next,
                        (t + 1) * units / threads,
                        "share {t} ends where it should"
                    );
                }
                assert_eq!(sp.tasks(), threads * TASKS_PER_THREAD);
                assert_eq!(next, units);
            }
        }
    }

    #[test]
    fn products_match_vec_dot_for_every_plan() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let types = [
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::F16,
            GgmlType::F32,
            GgmlType::Q5_0,
            GgmlType::Q6_K,
        ];
        for threads in [1, 3] {
            let pool = Pool::new(threads).unwrap();
            let mut s = MatScratch::default();
            for ty in types {
                for (rows, n) in [(37, 1), (64, 5), (13, 9), (70, 20)] {
                    let cols = 512;
                    let w = matrix(ty, rows, cols, &mut seed);
                    let b: Vec<f32> = rng_vals(rows, &mut seed, 1.0);
                    let x = rng_vals(n * cols, &mut seed, 3.0);
                    let lin = Linear {
                        w,
                        b: Some(b.clone()),
                    };
                    let mut out = vec![f32::NAN; n * rows];
                    linear(&pool, &mut s, &lin, &x, n, &mut out);
                    let (want, mag) = naive(&lin.w, &x, n);
                    for i in 0..n * rows {
                        let want = want[i] + b[i % rows];
                        assert!(
                            (out[i] - want).abs() <= 1e-5 * mag[i] + 1e-6,
                            "{ty} {rows}x{cols} n{n} t{threads} [{i}]: {} vs {want}",
                            out[i]
                        );
                    }
                    // The same matrix three times as one fused step.
                    let (mut o1, mut o2, mut o3) = (
                        vec![0f32; n * rows],
                        vec![0f32; n * rows],
                        vec![0f32; n * rows],
                    );
                    linear_multi(
                        &pool,
                        &mut s,
                        &[&lin, &lin, &lin],
                        &x,
                        n,
                        &mut [&mut o1, &mut o2, &mut o3],
                    );
                    assert!(o1 == out && o2 == out && o3 == out, "{ty} fused");
                }
            }
        }
    }

    /// `Σ_k w[r][k] x[t][k]` in f64 from the dequantized f16 rows, and `Σ |w x|` per output.
    fn f16_reference(w: &Matrix, x: &[f32], n: usize) -> (Vec<f64>, Vec<f64>) {
        let (rows, cols) = (w.rows, w.cols);
        let mut wf = vec![0f32; cols];
        let (mut out, mut mag) = (vec![0f64; n * rows], vec![0f64; n * rows]);
        for r in 0..rows {
            w.dequantize_row(r, &mut wf).unwrap();
            for t in 0..n {
                let xr = &x[t * cols..(t + 1) * cols];
                let p = wf.iter().zip(xr).map(|(a, b)| *a as f64 * *b as f64);
                out[t * rows + r] = p.clone().sum();
                mag[t * rows + r] = p.map(f64::abs).sum();
            }
        }
        (out, mag)
    }

    /// Every f16 GEMM this CPU has (the FMA builds, and AMX tiles where the CPU has AMX-BF16), on
    /// row counts that are not multiples of the panel height or of AMX's 16-row tiles, token
    /// counts that are not multiples of the micro-kernel's width or of AMX's 16-token tiles, and
    /// columns that end in a partial K block (520 = 256 + 256 + 8) or 32-value chunk, or span
    /// several whole ones. The AMX bound is the bf16 splitting's (about 2^-16 Σ|w x|, see
    /// `quant::kernels::amx`).
    #[test]
    fn f16_gemm_matches_f64_reference() {
        let mut seed = 0x0bad_cafe_1234_5678u64;
        let mut kinds: Vec<(&str, Use<'_>, f64)> = quant::kernels::matrix_builds()
            .into_iter()
            .filter_map(|b| b.f16_gemm.map(|g| (b.name, Use::F16Gemm(g), 1e-5)))
            .collect();
        #[cfg(target_arch = "x86_64")]
        assert!(!kinds.is_empty(), "an AVX2 build at least on x86-64");
        if amx_available() {
            kinds.push(("amx", Use::F16Amx, 2e-5));
        } else {
            eprintln!("no AMX-BF16 on this CPU: AMX not tested");
        }
        let cases = [
            (37, 520, 8),
            (70, 2048, 13),
            (37, 520, 37),
            (70, 264, 128),
            (32, 2048, 128),
            (5, 8, 3),
            (17, 40, 33),
            (96, 768, 100),
        ];
        for threads in [1, 3] {
            let pool = Pool::new(threads).unwrap();
            let mut s = MatScratch::default();
            for &(rows, cols, n) in &cases {
                let w = matrix(GgmlType::F16, rows, cols, &mut seed);
                let x = rng_vals(n * cols, &mut seed, 3.0);
                let (want, mag) = f16_reference(&w, &x, n);
                for &(name, u, tol) in &kinds {
                    let mut out = vec![f32::NAN; n * rows];
                    product(&pool, &mut s, &w, u, &x, n, &mut out);
                    for i in 0..n * rows {
                        assert!(
                            (out[i] as f64 - want[i]).abs() <= tol * mag[i] + 1e-6,
                            "{name} {rows}x{cols} n{n} t{threads} [{i}]: {} vs {}",
                            out[i],
                            want[i]
                        );
                    }
                }
            }
        }
    }

    /// Interleaved Q4_K, Q4_0 and Q8_0 products on AMX tiles (where the CPU has AMX-INT8) against
    /// the reference `vec_dot` with ggml's Q8_K / Q8_0 operand: rows not a multiple of the 16-row
    /// group, token counts that are not multiples of the 16-token tile (for Q4_0/Q8_0 the last
    /// tile overlaps the one before), one and several (super-)blocks, odd and even block counts
    /// (the Q4_0/Q8_0 kernel takes blocks in pairs), 1 and 3 threads. Each block's integer sum is
    /// exact in both; they differ only in the order of the f32 scaling and summation, a relative
    /// error of about (blocks + 2) 2^-24 of Σ|w x| at worst (≤ 4e-6 for the 64 blocks here),
    /// inside the bound. Also checks that one token (generation) and batches under
    /// `AMX_MIN_TOKENS` keep the group kernel.
    #[test]
    fn int8_amx_matches_vec_dot() {
        if !amx_available() {
            eprintln!("no AMX on this CPU: skipped");
            return;
        }
        let mut seed = 0x0400_0800_1357_9bdfu64;
        let k_cases = [(16, 256, 16), (70, 768, 33), (37, 512, 128), (200, 256, 21)];
        let cases = [(16, 32, 16), (70, 96, 33), (37, 512, 128), (200, 2048, 21)];
        for threads in [1, 3] {
            let pool = Pool::new(threads).unwrap();
            let mut s = MatScratch::default();
            for (ty, cases) in [
                (GgmlType::Q4_K, k_cases),
                (GgmlType::Q4_0, cases),
                (GgmlType::Q8_0, cases),
            ] {
                for (rows, cols, n) in cases {
                    let w = matrix(ty, rows, cols, &mut seed);
                    let x = rng_vals(n * cols, &mut seed, 3.0);
                    w.plan().pack_now(&w);
                    let p = match w.plan() {
                        Plan::Packed { p, .. } => p,
                        Plan::Q8Rows { packed, .. } => {
                            &packed.get().unwrap().as_ref().expect("Q8_0 packs").0
                        }
                        _ => panic!("{ty} is repacked"),
                    };
                    assert!(matches!(
                        resolve(&pool, &w, 1),
                        Use::Packed(..) | Use::Q8Rows(_)
                    ));
                    assert!(matches!(
                        resolve(&pool, &w, AMX_MIN_TOKENS - 1),
                        Use::Packed(..)
                    ));
                    assert!(matches!(resolve(&pool, &w, AMX_MIN_TOKENS), Use::IntAmx(_)));
                    let mut out = vec![f32::NAN; n * rows];
                    product(&pool, &mut s, &w, Use::IntAmx(p), &x, n, &mut out);
                    let (want, mag) = naive(&w, &x, n);
                    for i in 0..n * rows {
                        assert!(
                            (out[i] - want[i]).abs() <= 1e-5 * mag[i] + 1e-6,
                            "{ty} {rows}x{cols} n{n} t{threads} [{i}]: {} vs {}",
                            out[i],
                            want[i]
                        );
                    }
                }
            }
        }
    }

    /// `linear` and the fused `linear_multi` take the GEMM from [`GEMM_MIN_TOKENS`] tokens on and
    /// agree with each other (the fused step packs the activations once for all matrices).
    #[test]
    fn f16_batches_through_linear_and_linear_multi() {
        let mut seed = 0x5eed_0000_0000_0001u64;
        let pool = Pool::new(2).unwrap();
        let mut s = MatScratch::default();
        let cols = 264;
        for n in [GEMM_MIN_TOKENS - 1, GEMM_MIN_TOKENS, 45] {
            let lins: Vec<Linear> = [96, 40, 40]
                .iter()
                .map(|&rows| Linear {
                    w: matrix(GgmlType::F16, rows, cols, &mut seed),
                    b: None,
                })
                .collect();
            let x = rng_vals(n * cols, &mut seed, 3.0);
            let mut outs: Vec<Vec<f32>> = lins.iter().map(|l| vec![0f32; n * l.w.rows]).collect();
            let [a, b, c] = &mut outs[..] else {
                unreachable!()
            };
            linear_multi(
                &pool,
                &mut s,
                &[&lins[0], &lins[1], &lins[2]],
                &x,
                n,
                &mut [a, b, c],
            );
            for (l, o) in lins.iter().zip(&outs) {
                let mut single = vec![f32::NAN; n * l.w.rows];
                linear(&pool, &mut s, l, &x, n, &mut single);
                assert!(&single == o, "fused vs single, n{n}");
                let (want, mag) = f16_reference(&l.w, &x, n);
                for i in 0..n * l.w.rows {
                    assert!(
                        (o[i] as f64 - want[i]).abs() <= 1e-5 * mag[i] + 1e-6,
                        "n{n} [{i}]"
                    );
                }
            }
        }
    }
}
