//! The one decoder forward pass shared by every architecture (see `spec.rs` for what varies).
//!
//! Runs on the session's [`Pool`]: matrix products, attention and the element-wise work of a batch
//! are split over its threads. A layer of a prompt batch is a few parallel steps besides its
//! products: residual add + norm (one pass over rows), clamp + RoPE + KV-cache stores (a task per
//! head), attention (a task per block of tokens and KV head), residual add + FFN norm. Small batches
//! (generation) run the element-wise steps inline on the calling thread. Every buffer lives in a
//! [`Scratch`] owned by the session and reused, so evaluating a token allocates nothing but its
//! result.

use super::matmul::{linear, linear_multi, MatScratch};
use super::ops::{self, Activation, RopeStyle};
use super::spec::{NormKind, Position, Residual, Spec};
use super::weights::{Layer, Norm, Qkv, Weights};
use crate::error::Result;
use crate::pool::{Pool, SharedMut};
use crate::profile::{mark, Step};
use crate::quant::interleaved::{self as il, RowsKernel};
use crate::quant::kernels::prefetch;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// Element type of the key/value cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvType {
    F16,
    F32,
}

enum KvBuf {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl KvBuf {
    fn new(ty: KvType, len: usize) -> KvBuf {
        match ty {
            KvType::F16 => KvBuf::F16(vec![f16::ZERO; len]),
            KvType::F32 => KvBuf::F32(vec![0.0; len]),
        }
    }
}

/// Keys and values of every layer for the positions seen so far.
///
/// Keys are `[layer][kv head][position][head_dim]`: the keys one head reads are contiguous.
/// Values are stored transposed and in blocks of [`V_BLOCK`] positions,
/// `[layer][kv head][block][head_dim][V_BLOCK]`: the weighted sum of values is then, for each
/// output dimension, a contiguous dot product of the attention weights with each block's run of
/// that dimension's values.
pub struct KvCache {
    n_ctx: usize,
    /// Blocks of [`V_BLOCK`] positions per KV head's values.
    v_blocks: usize,
    head_dim: usize,
    k: Vec<KvBuf>,
    v: Vec<KvBuf>,
}

/// Positions per block of values. One token's attention reads, for each of a head's `head_dim`
/// dimensions, the values of every position so far. With one row of the whole context per
/// dimension (2048 positions: 4 KiB in f16), the first lines of a head's 64 rows lay on 64
/// pages, whose TLB entries the weights streamed between two layers evict: each token paid a page
/// walk per row for every KV head of every layer (and 32 positions of padding per row kept the
/// rows' first lines out of one L1 set). In blocks of 256 positions a head's values up to
/// position 256 lie on 8 pages. `FERROLLM_PROFILE=1 ferrollm bench -t 2 -r 3`, 3 alternations,
/// attention's share of generation: 160M Q4_0 tg64 15.6–16.4 → 12.6–13.8 %, tg512 32.0–32.1 →
/// 27.6–29.2 %; 1.1B Q4_0 tg64 2.79–2.87 → 2.41–2.48 %. Blocks of 128 did as well for generation
/// but cost prompts more horizontal sums (160M pp512: attention 37.2–40.0 % of the time with whole
/// rows, 39.4–42.7 % with 128, 38.0–40.4 % with 256; 4 alternations).
const V_BLOCK: usize = 256;

impl KvCache {
    pub fn new(spec: &Spec, n_ctx: usize, ty: KvType) -> KvCache {
        let v_blocks = n_ctx.div_ceil(V_BLOCK);
        KvCache {
            n_ctx,
            v_blocks,
            head_dim: spec.head_dim,
            k: (0..spec.n_layer)
                .map(|_| KvBuf::new(ty, n_ctx * spec.kv_dim()))
                .collect(),
            v: (0..spec.n_layer)
                .map(|_| KvBuf::new(ty, v_blocks * V_BLOCK * spec.kv_dim()))
                .collect(),
        }
    }
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
}

/// One layer's key and value buffers, shared by the tasks storing different KV heads.
enum LayerKv {
    F16(SharedMut<f16>, SharedMut<f16>),
    F32(SharedMut<f32>, SharedMut<f32>),
}

impl KvCache {
    fn layer_mut(&mut self, il: usize) -> LayerKv {
        match (&mut self.k[il], &mut self.v[il]) {
            (KvBuf::F16(k), KvBuf::F16(v)) => LayerKv::F16(SharedMut::new(k), SharedMut::new(v)),
            (KvBuf::F32(k), KvBuf::F32(v)) => LayerKv::F32(SharedMut::new(k), SharedMut::new(v)),
            _ => unreachable!("keys and values share one type"),
        }
    }

    /// Stores the keys and values of KV head `h` for positions `pos0..pos0 + n`, token `t`'s
    /// being `k.get(t, h)` and `v.get(t, h)`. The head's keys are one contiguous range and its
    /// values `head_dim` rows of their own, so tasks storing different heads touch disjoint memory.
    ///
    /// # Safety
    /// `dst` is this cache's [`KvCache::layer_mut`]; no other task uses head `h` of that layer nor
    /// rows `(t, h)` of `k` and `v` meanwhile.
    unsafe fn store_head(
        &self,
        dst: &LayerKv,
        h: usize,
        pos0: usize,
        n: usize,
        k: &Heads,
        v: &Heads,
    ) {
        const CHUNK: usize = 64;
        let hd = self.head_dim;
        let kat = (h * self.n_ctx + pos0) * hd;
        let vn = self.v_head_len();
        let vat = h * vn;
        // The index of dimension `d`'s value at position `p` in the head's values.
        let vi = |d: usize, p: usize| v_index(hd, d, p);
        match dst {
            LayerKv::F16(kb, vb) => {
                let kd = kb.range(kat, n * hd);
                for t in 0..n {
                    // Slice conversions use F16C when the CPU has it; rounding is to nearest
                    // even either way.
                    kd[t * hd..(t + 1) * hd].convert_from_f32_slice(k.get(t, h));
                }
                let vd = vb.range(vat, vn);
                // Zero the value columns from the batch's end to the next multiple of 8: the
                // weighted sums read whole runs of 8 (with zero weights past the keys), and a
                // stale non-finite value from an earlier sequence would turn 0 · x into NaN.
                // They lie in the batch's last block, as blocks are multiples of 8 long; a batch
                // ending on a multiple of 8 has none (and may end the cache's last block).
                let end = pos0 + n;
                let pad = end.next_multiple_of(8) - end;
                if pad > 0 {
                    for dd in 0..hd {
                        vd[vi(dd, end)..][..pad].fill(f16::ZERO);
                    }
                }
                if n >= 8 {
                    // A batch: gather each value dimension over up to 64 tokens (within one
                    // block) and convert them with one call into their contiguous run.
                    let mut tmp = [0f32; CHUNK];
                    let mut t0 = 0;
                    while t0 < n {
                        let p = pos0 + t0;
                        let m = CHUNK.min(n - t0).min(V_BLOCK - p % V_BLOCK);
                        let rows: [&[f32]; CHUNK] =
                            std::array::from_fn(|i| &*v.get(t0 + i.min(m - 1), h));
                        for dd in 0..hd {
                            for (x, r) in tmp.iter_mut().zip(&rows[..m]) {
                                *x = r[dd];
                            }
                            vd[vi(dd, p)..][..m].convert_from_f32_slice(&tmp[..m]);
                        }
                        t0 += m;
                    }
                } else {
                    let mut tmp = [f16::ZERO; CHUNK];
                    for t in 0..n {
                        for (c, chunk) in v.get(t, h).chunks(CHUNK).enumerate() {
                            let tmp = &mut tmp[..chunk.len()];
                            tmp.convert_from_f32_slice(chunk);
                            for (i, &x) in tmp.iter().enumerate() {
                                vd[vi(CHUNK * c + i, pos0 + t)] = x;
                            }
                        }
                    }
                }
            }
            LayerKv::F32(kb, vb) => {
                let kd = kb.range(kat, n * hd);
                let vd = vb.range(vat, vn);
                for t in 0..n {
                    kd[t * hd..(t + 1) * hd].copy_from_slice(k.get(t, h));
                    for (dd, &x) in v.get(t, h).iter().enumerate() {
                        vd[vi(dd, pos0 + t)] = x;
                    }
                }
            }
        }
    }
}

/// One KV head's part of a layer's cache: its keys (`n_ctx × head_dim`, position-major) and its
/// transposed values in blocks (`[block][head_dim][V_BLOCK]`, see [`v_index`]).
#[derive(Clone, Copy)]
struct HeadKv<'a> {
    k: KvSlice<'a>,
    v: KvSlice<'a>,
    head_dim: usize,
}

/// Where a KV head's values keep dimension `d` of position `p` (`hd` dimensions per position).
fn v_index(hd: usize, d: usize, p: usize) -> usize {
    (p / V_BLOCK * hd + d) * V_BLOCK + p % V_BLOCK
}

#[derive(Clone, Copy)]
enum KvSlice<'a> {
    F16(&'a [f16]),
    F32(&'a [f32]),
}

impl KvCache {
    /// KV head `h` of the layer `dst` points into (this cache's [`KvCache::layer_mut`]), to read
    /// while tasks may write other heads of the layer.
    ///
    /// # Safety
    /// Nothing writes head `h` of that layer while the result lives.
    unsafe fn head_in<'a>(&self, dst: &'a LayerKv, h: usize) -> HeadKv<'a> {
        let (kn, vn) = (self.n_ctx * self.head_dim, self.v_head_len());
        let (k, v) = match dst {
            LayerKv::F16(k, v) => (
                KvSlice::F16(k.slice(h * kn, kn)),
                KvSlice::F16(v.slice(h * vn, vn)),
            ),
            LayerKv::F32(k, v) => (
                KvSlice::F32(k.slice(h * kn, kn)),
                KvSlice::F32(v.slice(h * vn, vn)),
            ),
        };
        HeadKv {
            k,
            v,
            head_dim: self.head_dim,
        }
    }

    /// Elements of one KV head's values in a layer.
    fn v_head_len(&self) -> usize {
        self.v_blocks * self.head_dim * V_BLOCK
    }

    /// Starts loading the cache lines that generation's attention of KV head `h` touches: the
    /// entries [`KvCache::store_head`] writes for positions `pos0..pos0 + n` (with write intent),
    /// and the keys and values of the earlier positions it reads (at most [`KV_PREFETCH`] bytes of
    /// each). One token's attention otherwise waits on these lines one miss after another: each
    /// value dimension is a row of its own, and every line was evicted by the layer's weights.
    fn prefetch_head(&self, dst: &LayerKv, h: usize, pos0: usize, n: usize) {
        let hd = self.head_dim;
        // the layer's keys and values as bytes, and bytes per element
        let (k, v, el) = match dst {
            LayerKv::F16(k, v) => (k.ptr_in(0, 0).cast::<u8>(), v.ptr_in(0, 0).cast::<u8>(), 2),
            LayerKv::F32(k, v) => (k.ptr_in(0, 0).cast::<u8>(), v.ptr_in(0, 0).cast::<u8>(), 4),
        };
        let k = k.wrapping_add(h * self.n_ctx * hd * el);
        let v = v.wrapping_add(h * self.v_head_len() * el);
        // the first block's runs, as far as they hold keys so far
        let run_read = (pos0.min(V_BLOCK) * el).min(KV_PREFETCH / hd);
        let run_write = ((pos0 + n).next_multiple_of(8) - pos0) * el;
        prefetch(k, (pos0 * hd * el).min(KV_PREFETCH), false);
        prefetch(k.wrapping_add(pos0 * hd * el), n * hd * el, true);
        for d in 0..hd {
            prefetch(v.wrapping_add(v_index(hd, d, 0) * el), run_read, false);
            prefetch(v.wrapping_add(v_index(hd, d, pos0) * el), run_write, true);
        }
    }
}

/// Bytes of keys, and of all value runs together, that [`KvCache::prefetch_head`] asks for ahead
/// (positions past it are read as they come, with the hardware prefetchers' help).
const KV_PREFETCH: usize = 16 << 10;

/// Head vectors of the batch's tokens inside a buffer shared by the tasks of one step: token
/// `t`'s head `h` is `hd` values at `t * stride + off + h * hd`.
#[derive(Clone, Copy)]
struct Heads {
    buf: SharedMut<f32>,
    stride: usize,
    off: usize,
    hd: usize,
}

impl Heads {
    /// # Safety
    /// No other live reference to `(t, h)` (see [`SharedMut::range`]).
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self, t: usize, h: usize) -> &mut [f32] {
        self.buf
            .range(t * self.stride + self.off + h * self.hd, self.hd)
    }
}

/// Position-dependent settings a session may override.
#[derive(Clone, Copy, Debug)]
pub struct RopeOverride {
    pub freq_base: Option<f32>,
    pub freq_scale: Option<f32>,
}

/// Buffers of the forward pass, reused between calls (grown when a larger batch comes).
#[derive(Default)]
pub struct Scratch {
    h: Vec<f32>,
    a: Vec<f32>,
    qkv: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    heads: Vec<f32>,
    attn: Vec<f32>,
    f_in: Vec<f32>,
    up: Vec<f32>,
    gate: Vec<f32>,
    down: Vec<f32>,
    row: Vec<f32>,
    rope: Vec<(f32, f32)>,
    /// Per-thread attention scores.
    scores: Vec<f32>,
    mat: MatScratch,
}

fn grow(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

fn norm_row(spec: &Spec, norm: &Norm, row: &mut [f32]) {
    match spec.norm {
        NormKind::LayerNorm => {
            ops::layer_norm(row, &norm.weight, norm.bias.as_deref(), spec.norm_eps)
        }
        NormKind::RmsNorm => ops::rms_norm(row, &norm.weight, spec.norm_eps),
    }
}

/// Calls `f(t)` for every row `t < n` of buffers `len` values long, in parallel over the pool when
/// the batch is large enough to pay for it (else in order on the calling thread).
fn par_rows(pool: &Pool, n: usize, len: usize, f: impl Fn(usize) + Sync) {
    if n < 4 || len < 16384 || pool.threads() == 1 {
        (0..n).for_each(f);
        return;
    }
    let tasks = (pool.threads() * 4).min(n);
    let per = n.div_ceil(tasks);
    pool.run(n.div_ceil(per), |task, _| {
        (task * per..((task + 1) * per).min(n)).for_each(&f)
    });
}

/// Rows of `x` (each `width` long) processed by `f` (see [`par_rows`]).
fn rows_par(pool: &Pool, x: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let xs = SharedMut::new(x);
    par_rows(pool, x.len() / width, x.len(), |t| {
        // SAFETY: row t is handed to one call only.
        f(t, unsafe { xs.range(t * width, width) })
    });
}

/// Row `t` of two buffers (each row `width` long) processed by `f` (see [`par_rows`]).
fn rows_par2(
    pool: &Pool,
    x: &mut [f32],
    y: &mut [f32],
    width: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    assert_eq!(x.len(), y.len(), "row counts");
    let (xs, ys) = (SharedMut::new(x), SharedMut::new(y));
    par_rows(pool, x.len() / width, x.len(), |t| {
        // SAFETY: row t is handed to one call only.
        f(t, unsafe { xs.range(t * width, width) }, unsafe {
            ys.range(t * width, width)
        })
    });
}

fn norm_rows(pool: &Pool, spec: &Spec, norm: &Norm, x: &mut [f32]) {
    rows_par(pool, x, spec.n_embd, |_, row| norm_row(spec, norm, row));
}

/// Applies `act(gate) * up` (or `act(up)` without a gate) over `up`, in parallel chunks.
fn activate(pool: &Pool, spec: &Spec, up: &mut [f32], gate: Option<&[f32]>) {
    const CHUNK: usize = 4096;
    let n = up.len();
    let tasks = n.div_ceil(CHUNK);
    let act = spec.activation;
    let silu_mul = crate::quant::kernels::get().silu_mul;
    let us = SharedMut::new(up);
    let work = |task: usize, _: usize| {
        let (s, e) = (task * CHUNK, ((task + 1) * CHUNK).min(n));
        // SAFETY: elements s..e belong to this task only.
        let u = unsafe { us.range(s, e - s) };
        match gate {
            Some(g) if act == Activation::Silu => (silu_mul)(u, &g[s..e]),
            Some(g) => u
                .iter_mut()
                .zip(&g[s..e])
                .for_each(|(u, g)| *u *= act.apply(*g)),
            None => u.iter_mut().for_each(|u| *u = act.apply(*u)),
        }
    };
    if tasks <= 1 || pool.threads() == 1 {
        (0..tasks).for_each(|t| work(t, 0));
    } else {
        pool.run(tasks, work);
    }
}

/// The rotation of pair `i` at each position of the batch: `table[t * half + i] = (cos, sin)`.
fn rope_table(
    table: &mut Vec<(f32, f32)>,
    pos0: usize,
    n: usize,
    n_rot: usize,
    theta: f32,
    scale: f32,
) {
    let half = n_rot / 2;
    table.clear();
    for t in 0..n {
        for i in 0..half {
            let inv_freq = (theta as f64).powf(-(2.0 * i as f64) / n_rot as f64);
            let angle = (pos0 + t) as f64 * scale as f64 * inv_freq;
            let (sin, cos) = angle.sin_cos();
            table.push((cos as f32, sin as f32));
        }
    }
}

/// Rotates one head vector with the rotations of one position (see `ops::rope`).
fn rope_apply(head: &mut [f32], rot: &[(f32, f32)], style: RopeStyle) {
    let half = rot.len();
    for (i, &(cos, sin)) in rot.iter().enumerate() {
        let (a, b) = match style {
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            RopeStyle::Neox => (i, i + half),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos - x1 * sin;
        head[b] = x0 * sin + x1 * cos;
    }
}

/// Attention of a block of query rows that share one KV head: `group` query heads of each of
/// consecutive tokens. Row `r` is head `r % group` of the block's token `r / group`, which sees
/// keys `0..n_keys + r / group` (causal).
struct AttnArgs<'a> {
    /// The block's KV head.
    kv: HeadKv<'a>,
    /// Keys the block's first token sees.
    n_keys: usize,
    /// Query heads per token (sharing the KV head).
    group: usize,
    scale: f32,
    /// ALiBi slopes of the `group` heads (empty: none).
    slopes: &'a [f32],
    f16_rows: RowsKernel,
}

impl AttnArgs<'_> {
    /// Keys row `r` sees.
    fn keys(&self, r: usize) -> usize {
        self.n_keys + r / self.group
    }
}

/// Scores and results of `rows` query rows; row `r` is `q[(r / group) * q_stride + (r % group) *
/// hd..][..hd]` (consecutive tokens `q_stride` apart). Results go to `out` (`rows × hd`), scores use
/// `scores` (at least `rows × keys(rows - 1).next_multiple_of(8)`).
///
/// The f16 path hands the row kernel four query rows at a time (the heads of a GQA group, or the
/// same head of consecutive tokens), so every key and value row loaded serves up to four queries.
/// Each four-row chunk is computed up to the keys of its last row; a row's keys past its own count
/// get weight zero after its softmax.
fn attend(
    a: &AttnArgs<'_>,
    q: &[f32],
    q_stride: usize,
    rows: usize,
    out: &mut [f32],
    scores: &mut [f32],
) {
    const C: usize = il::MAX_TOKENS;
    let hd = a.kv.head_dim;
    let group = a.group;
    let q_row = |r: usize| &q[(r / group) * q_stride + (r % group) * hd..][..hd];
    let stride = a.keys(rows - 1).next_multiple_of(8);
    let scores = &mut scores[..rows * stride];
    // Scores.
    match a.kv.k {
        KvSlice::F16(kb) if hd.is_multiple_of(8) => {
            let kbytes = f16_bytes(&kb[..a.keys(rows - 1) * hd]);
            for r0 in (0..rows).step_by(C) {
                let nr = C.min(rows - r0);
                let n = a.keys(r0 + nr - 1);
                let qs: [&[f32]; C] = std::array::from_fn(|i| q_row(r0 + i.min(nr - 1)));
                let mut res = [[0f32; 4]; C];
                for j0 in (0..n).step_by(4) {
                    let nj = 4.min(n - j0);
                    let ks: [&[u8]; 4] =
                        std::array::from_fn(|i| &kbytes[(j0 + i.min(nj - 1)) * hd * 2..][..hd * 2]);
                    (a.f16_rows)(&ks[..nj], &qs[..nr], hd, &mut res);
                    for (i, rr) in res.iter().enumerate().take(nr) {
                        scores[(r0 + i) * stride + j0..][..nj].copy_from_slice(&rr[..nj]);
                    }
                }
            }
        }
        KvSlice::F16(kb) => {
            for r in 0..rows {
                let qh = q_row(r);
                for j in 0..a.keys(r) {
                    let k = &kb[j * hd..(j + 1) * hd];
                    scores[r * stride + j] = k.iter().zip(qh).map(|(k, q)| k.to_f32() * q).sum();
                }
            }
        }
        KvSlice::F32(kb) => {
            for r in 0..rows {
                let qh = q_row(r);
                for j in 0..a.keys(r) {
                    let k = &kb[j * hd..(j + 1) * hd];
                    scores[r * stride + j] = k.iter().zip(qh).map(|(k, q)| k * q).sum();
                }
            }
        }
    }
    for r in 0..rows {
        let n = a.keys(r);
        let (row, masked) = scores[r * stride..(r + 1) * stride].split_at_mut(n);
        let slope = a.slopes.get(r % group).copied().unwrap_or(0.0);
        for (j, s) in row.iter_mut().enumerate() {
            *s = *s * a.scale + slope * j as f32;
        }
        ops::softmax(row);
        masked.fill(0.0);
    }
    // Weighted sum of values: out[r][d] = Σ_j p[r][j] · V[d][j], block by block.
    match a.kv.v {
        KvSlice::F16(vb) => {
            let vbytes = f16_bytes(vb);
            for r0 in (0..rows).step_by(C) {
                let nr = C.min(rows - r0);
                // Rows of the chunk see at most n keys, in whole runs of 8: weights are zero past
                // each row's keys, and the values there are this batch's later tokens or zeros
                // (`store_head` clears the columns up to the next multiple of 8).
                let n8 = a.keys(r0 + nr - 1).next_multiple_of(8);
                let mut res = [[0f32; 4]; C];
                for j0 in (0..n8).step_by(V_BLOCK) {
                    let nj = V_BLOCK.min(n8 - j0);
                    let ps: [&[f32]; C] = std::array::from_fn(|i| {
                        &scores[(r0 + i.min(nr - 1)) * stride + j0..][..nj]
                    });
                    for d0 in (0..hd).step_by(4) {
                        let nd = 4.min(hd - d0);
                        let vr: [&[u8]; 4] = std::array::from_fn(|i| {
                            &vbytes[v_index(hd, d0 + i.min(nd - 1), j0) * 2..][..nj * 2]
                        });
                        (a.f16_rows)(&vr[..nd], &ps[..nr], nj, &mut res);
                        for (i, rr) in res.iter().enumerate().take(nr) {
                            let o = &mut out[(r0 + i) * hd + d0..][..nd];
                            if j0 == 0 {
                                o.copy_from_slice(&rr[..nd]);
                            } else {
                                o.iter_mut().zip(rr).for_each(|(o, r)| *o += r);
                            }
                        }
                    }
                }
            }
        }
        KvSlice::F32(vb) => {
            for r in 0..rows {
                let n = a.keys(r);
                let p = &scores[r * stride..r * stride + n];
                for d in 0..hd {
                    out[r * hd + d] = p
                        .iter()
                        .enumerate()
                        .map(|(j, p)| p * vb[v_index(hd, d, j)])
                        .sum();
                }
            }
        }
    }
}

fn f16_bytes(x: &[f16]) -> &[u8] {
    // SAFETY: f16 is two plain bytes; the length is exact.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

/// The FFN of `s.f_in` (or of `s.a` when `in_a`) into `s.down`.
fn ffn(pool: &Pool, spec: &Spec, layer: &Layer, s: &mut Scratch, n: usize, in_a: bool) {
    let ff = n * spec.n_ff;
    let up = grow(&mut s.up, ff);
    let gate = grow(&mut s.gate, ff);
    let x = if in_a { &s.a } else { &s.f_in };
    let x = &x[..n * spec.n_embd];
    match &layer.ffn_gate {
        Some(g) => {
            linear_multi(pool, &mut s.mat, &[g, &layer.ffn_up], x, n, &mut [gate, up]);
            mark(Step::GateUp);
            activate(pool, spec, &mut s.up[..ff], Some(&s.gate[..ff]));
        }
        None => {
            linear(pool, &mut s.mat, &layer.ffn_up, x, n, up);
            mark(Step::GateUp);
            activate(pool, spec, up, None);
        }
    }
    mark(Step::Activation);
    let down = grow(&mut s.down, n * spec.n_embd);
    linear(pool, &mut s.mat, &layer.ffn_down, &s.up[..ff], n, down);
    mark(Step::Down);
}

/// Runs `tokens` (at positions `pos0..`) through the decoder, filling the KV cache, and appends the
/// final-normed hidden states of rows `first_row..` of the batch to `out`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    pool: &Pool,
    s: &mut Scratch,
    spec: &Spec,
    w: &Weights,
    alibi: &[f32],
    rope_override: RopeOverride,
    kv: &mut KvCache,
    tokens: &[u32],
    pos0: usize,
    first_row: usize,
    out: &mut Vec<f32>,
) -> Result<()> {
    mark(Step::Between);
    let n = tokens.len();
    let d = spec.n_embd;
    let (qd, kvd, hd) = (spec.q_dim(), spec.kv_dim(), spec.head_dim);
    // Embeddings.
    let h = grow(&mut s.h, n * d);
    for (t, row) in h.chunks_exact_mut(d).enumerate() {
        w.token_embd.dequantize_row(tokens[t] as usize, row)?;
        if let Some(pe) = &w.position_embd {
            let p = grow(&mut s.row, d);
            pe.dequantize_row(pos0 + t, p)?;
            row.iter_mut().zip(p.iter()).for_each(|(a, b)| *a += b);
        }
    }
    if let Some(en) = &w.embd_norm {
        norm_rows(pool, spec, en, &mut s.h[..n * d]);
    }
    mark(Step::Embed);
    let rope = match spec.position {
        Position::Rope {
            n_rot,
            style,
            theta,
            freq_scale,
        } => {
            let theta = rope_override.freq_base.unwrap_or(theta);
            let fscale = rope_override.freq_scale.unwrap_or(freq_scale);
            rope_table(&mut s.rope, pos0, n, n_rot, theta, fscale);
            Some((n_rot / 2, style))
        }
        _ => None,
    };
    let scale = 1.0 / (hd as f32).sqrt();
    let group = spec.n_head / spec.n_head_kv;
    let threads = pool.threads();
    // Attention rows per task: about eight (consecutive tokens of one head, or the heads of a
    // GQA group), so the f16 row kernel gets four query rows per key it loads.
    let block = (8 / group).clamp(1, n);
    // Sized for the whole context, not the keys so far, so that it is allocated once: a few dozen
    // bytes per position and thread, next to kilobytes per position in the KV cache.
    let score_len = block * group * (kv.n_ctx().next_multiple_of(8) + 2 * hd);
    grow(&mut s.scores, threads * score_len);
    let f16_rows = il::f16_rows_kernel();
    for (il, layer) in w.layers.iter().enumerate() {
        // The previous layer's residual (deferred to here) and this layer's attention norm, in one
        // parallel pass over the rows.
        {
            let a = grow(&mut s.a, n * d);
            let pending = pending_residual(spec, &s.attn, &s.down, n, il > 0);
            rows_par2(pool, &mut s.h[..n * d], a, d, |t, h, a| {
                add_rows(h, t, pending);
                a.copy_from_slice(h);
                norm_row(spec, &layer.attn_norm, a);
            });
        }
        mark(Step::AttnNorm);
        let a = &s.a[..n * d];
        // Q, K, V for every token of the batch, left where the product writes them: fused QKV
        // rows are read in place (no split copies).
        let (qv, kv_k, kv_v) = match &layer.qkv {
            Qkv::Fused(lin) => {
                let width = qd + 2 * kvd;
                let y = grow(&mut s.qkv, n * width);
                linear(pool, &mut s.mat, lin, a, n, y);
                let y = SharedMut::new(y);
                let at = |off| Heads {
                    buf: y,
                    stride: width,
                    off,
                    hd,
                };
                (at(0), at(qd), at(qd + kvd))
            }
            Qkv::Separate { q, k, v } => {
                let (qo, ko, vo) = (
                    grow(&mut s.q, n * qd),
                    grow(&mut s.k, n * kvd),
                    grow(&mut s.v, n * kvd),
                );
                linear_multi(pool, &mut s.mat, &[q, k, v], a, n, &mut [qo, ko, vo]);
                let at = |buf: &mut Vec<f32>, stride| Heads {
                    buf: SharedMut::new(&mut buf[..n * stride]),
                    stride,
                    off: 0,
                    hd,
                };
                (at(&mut s.q, qd), at(&mut s.k, kvd), at(&mut s.v, kvd))
            }
        };
        mark(Step::Qkv);
        // The rest of K and V, per KV head: clamp, RoPE of K, storing both in the cache. Either its
        // own step before the attention, or (with one block of tokens: one token, or a short batch
        // of a model without GQA groups) the start of each attention task, which saves a step and
        // spreads this latency-bound work over the threads.
        let clamp = match layer.qkv {
            Qkv::Fused(_) => spec.clamp_qkv,
            Qkv::Separate { .. } => None,
        };
        let kv_dst = kv.layer_mut(il);
        let kvr = &*kv;
        let table = &s.rope;
        let rotate = |t: usize, x: &mut [f32]| {
            if let Some(c) = clamp {
                x.iter_mut().for_each(|x| *x = x.clamp(-c, c));
            }
            if let Some((half, style)) = rope {
                rope_apply(x, &table[t * half..(t + 1) * half], style);
            }
        };
        // SAFETY (of each call): no other task uses head h of K, V or of the layer's cache
        // meanwhile.
        let store = |h: usize| unsafe {
            for t in 0..n {
                rotate(t, kv_k.get(t, h));
                if let Some(c) = clamp {
                    let v = kv_v.get(t, h);
                    v.iter_mut().for_each(|x| *x = x.clamp(-c, c));
                }
            }
            kvr.store_head(&kv_dst, h, pos0, n, &kv_k, &kv_v);
        };
        let n_blocks = n.div_ceil(block);
        let fused = n_blocks == 1;
        if !fused {
            if n < 4 {
                (0..spec.n_head_kv).for_each(store);
            } else {
                pool.run(spec.n_head_kv, |h, _| store(h));
            }
        }
        // Attention: one task per (block of consecutive tokens, KV head), covering the query
        // heads that share the KV head; the blocks of the latest tokens (the most keys) first.
        // Each task clamps and rotates its own query rows into its scratch.
        let heads = SharedMut::new(grow(&mut s.heads, n * qd));
        let scratch = SharedMut::new(&mut s.scores[..threads * score_len]);
        let rows_len = block * group * hd;
        pool.run(n_blocks * spec.n_head_kv, |task, thread| {
            let kvh = task % spec.n_head_kv;
            let t0 = (n_blocks - 1 - task / spec.n_head_kv) * block;
            let nt = block.min(n - t0);
            if fused {
                kvr.prefetch_head(&kv_dst, kvh, pos0, n);
                store(kvh);
            }
            // SAFETY: head kvh of the cache is written only before this read (by this task, or in
            // the step before); `thread` owns its part of the scratch; the query rows are only
            // read in this step; this task owns the output heads of (t0.., kvh).
            unsafe {
                let args = AttnArgs {
                    kv: kvr.head_in(&kv_dst, kvh),
                    n_keys: pos0 + t0 + 1,
                    group,
                    scale,
                    slopes: alibi.get(kvh * group..(kvh + 1) * group).unwrap_or(&[]),
                    f16_rows,
                };
                let sc = scratch.range(thread * score_len, score_len);
                let (sc, rest) = sc.split_at_mut(score_len - 2 * rows_len);
                let (qb, out) = rest.split_at_mut(rows_len);
                for (r, q) in qb.chunks_exact_mut(hd).take(nt * group).enumerate() {
                    let (t, g) = (t0 + r / group, kvh * group + r % group);
                    q.copy_from_slice(qv.buf.slice(t * qv.stride + qv.off + g * hd, hd));
                    rotate(t, q);
                }
                attend(&args, qb, group * hd, nt * group, out, sc);
                for (i, o) in out.chunks_exact(group * hd).take(nt).enumerate() {
                    let at = (t0 + i) * qd + kvh * group * hd;
                    heads.range(at, group * hd).copy_from_slice(o);
                }
            }
        });
        mark(Step::Attention);
        let attn = grow(&mut s.attn, n * d);
        linear(
            pool,
            &mut s.mat,
            &layer.attn_out,
            &s.heads[..n * qd],
            n,
            attn,
        );
        mark(Step::AttnOut);
        // The FFN's input: after the attention residual (sequential) or beside it (parallel).
        let ffn_in_a = match (spec.residual, &layer.ffn_norm) {
            (Residual::Sequential, fnorm) => {
                let fnorm = fnorm.as_ref().expect("checked at load");
                let attn = &s.attn[..n * d];
                let f_in = grow(&mut s.f_in, n * d);
                rows_par2(pool, &mut s.h[..n * d], f_in, d, |t, h, f| {
                    add_rows(h, t, [Some(attn), None]);
                    f.copy_from_slice(h);
                    norm_row(spec, fnorm, f);
                });
                false
            }
            (Residual::Parallel, Some(fnorm)) => {
                let f_in = grow(&mut s.f_in, n * d);
                rows_par2(pool, &mut s.h[..n * d], f_in, d, |_, h, f| {
                    f.copy_from_slice(h);
                    norm_row(spec, fnorm, f);
                });
                false
            }
            // Parallel residual without its own norm: the FFN reads the attention's input.
            (Residual::Parallel, None) => true,
        };
        mark(Step::FfnNorm);
        ffn(pool, spec, layer, s, n, ffn_in_a);
    }
    // The last layer's residual and the final norm of the rows asked for.
    let pending = pending_residual(spec, &s.attn, &s.down, n, !w.layers.is_empty());
    let start = out.len();
    out.extend_from_slice(&s.h[first_row * d..n * d]);
    rows_par(pool, &mut out[start..], d, |t, row| {
        add_rows(row, first_row + t, pending);
        norm_row(spec, &w.output_norm, row);
    });
    mark(Step::Final);
    Ok(())
}

/// The residual a layer leaves for the next pass over the hidden rows: its FFN output
/// (sequential; the attention's was added before the FFN) or attention plus FFN output (parallel).
fn pending_residual<'a>(
    spec: &Spec,
    attn: &'a [f32],
    down: &'a [f32],
    n: usize,
    any: bool,
) -> [Option<&'a [f32]>; 2] {
    let d = spec.n_embd;
    match (any, spec.residual) {
        (false, _) => [None, None],
        (true, Residual::Sequential) => [Some(&down[..n * d]), None],
        (true, Residual::Parallel) => [Some(&attn[..n * d]), Some(&down[..n * d])],
    }
}

/// Adds row `t` of each pending residual to `h`.
fn add_rows(h: &mut [f32], t: usize, pending: [Option<&[f32]>; 2]) {
    let d = h.len();
    match pending {
        [Some(x), Some(y)] => h
            .iter_mut()
            .zip(x[t * d..(t + 1) * d].iter().zip(&y[t * d..(t + 1) * d]))
            .for_each(|(h, (x, y))| *h += x + y),
        [Some(x), None] => h
            .iter_mut()
            .zip(&x[t * d..(t + 1) * d])
            .for_each(|(h, x)| *h += x),
        _ => {}
    }
}

/// Logits of `rows` final hidden states, into `out` (resized to `rows` × `n_vocab`; its
/// capacity is kept from call to call).
pub fn logits(
    pool: &Pool,
    s: &mut Scratch,
    spec: &Spec,
    w: &Weights,
    hidden: &[f32],
    out: &mut Vec<f32>,
) {
    let n = hidden.len() / spec.n_embd;
    out.resize(n * spec.n_vocab, 0.0);
    linear(pool, &mut s.mat, &w.output, hidden, n, out);
    mark(Step::Logits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// A cache of one layer with random keys and values at every position.
    fn random_cache(ty: KvType, n_ctx: usize, hd: usize, nkv: usize, seed: &mut u64) -> KvCache {
        let v_blocks = n_ctx.div_ceil(V_BLOCK);
        let mut kv = KvCache {
            n_ctx,
            v_blocks,
            head_dim: hd,
            k: vec![KvBuf::new(ty, n_ctx * nkv * hd)],
            v: vec![KvBuf::new(ty, v_blocks * V_BLOCK * nkv * hd)],
        };
        // Stale non-finite values everywhere first: attention must never weigh them, not even
        // with weight zero (the padding past the last key up to a multiple of 8).
        match &mut kv.v[0] {
            KvBuf::F16(b) => b.fill(f16::NAN),
            KvBuf::F32(b) => b.fill(f32::NAN),
        }
        let mut k: Vec<f32> = (0..n_ctx * nkv * hd).map(|_| rng(seed) * 2.0).collect();
        let mut v: Vec<f32> = (0..n_ctx * nkv * hd).map(|_| rng(seed)).collect();
        let view = |buf: &mut Vec<f32>| Heads {
            buf: SharedMut::new(buf),
            stride: nkv * hd,
            off: 0,
            hd,
        };
        let (kh, vh) = (view(&mut k), view(&mut v));
        let dst = kv.layer_mut(0);
        for h in 0..nkv {
            // Positions stored in two batches: one token, then the rest (both store paths).
            // SAFETY: one store at a time; `k`, `v` and the cache outlive the views.
            unsafe {
                kv.store_head(&dst, h, 0, 1, &kh, &vh);
                let rest = |x: &Heads| Heads {
                    off: x.stride,
                    ..*x
                };
                kv.store_head(&dst, h, 1, n_ctx - 1, &rest(&kh), &rest(&vh));
            }
        }
        // Every key and value is where attention reads it, rounded to the cache's type.
        let round = |x: f32| match ty {
            KvType::F16 => f16::from_f32(x).to_f32(),
            KvType::F32 => x,
        };
        let (kc, vc) = match (&kv.k[0], &kv.v[0]) {
            (KvBuf::F16(k), KvBuf::F16(v)) => (k.to_f32_vec(), v.to_f32_vec()),
            (KvBuf::F32(k), KvBuf::F32(v)) => (k.clone(), v.clone()),
            _ => unreachable!(),
        };
        for pos in 0..n_ctx {
            for h in 0..nkv {
                for d in 0..hd {
                    let src = pos * nkv * hd + h * hd + d;
                    assert_eq!(kc[(h * n_ctx + pos) * hd + d], round(k[src]));
                    let at = h * kv.v_head_len() + v_index(hd, d, pos);
                    assert_eq!(vc[at], round(v[src]));
                }
            }
        }
        kv
    }

    /// Plain attention of one query head over keys `0..n` of `kvh` (f64, from the stored values).
    fn reference(
        kv: &KvCache,
        kvh: usize,
        q: &[f32],
        n: usize,
        scale: f32,
        slope: f32,
    ) -> Vec<f32> {
        let hd = kv.head_dim;
        let key = |j: usize, d: usize| match &kv.k[0] {
            KvBuf::F16(b) => b[(kvh * kv.n_ctx + j) * hd + d].to_f64(),
            KvBuf::F32(b) => b[(kvh * kv.n_ctx + j) * hd + d] as f64,
        };
        let val = |j: usize, d: usize| match &kv.v[0] {
            KvBuf::F16(b) => b[kvh * kv.v_head_len() + v_index(hd, d, j)].to_f64(),
            KvBuf::F32(b) => b[kvh * kv.v_head_len() + v_index(hd, d, j)] as f64,
        };
        let s: Vec<f64> = (0..n)
            .map(|j| {
                let dot: f64 = (0..hd).map(|d| q[d] as f64 * key(j, d)).sum();
                dot * scale as f64 + slope as f64 * j as f64
            })
            .collect();
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        (0..hd)
            .map(|d| ((0..n).map(|j| e[j] * val(j, d)).sum::<f64>() / sum) as f32)
            .collect()
    }

    /// A block of several tokens gives what one token at a time gives, and both match the plain
    /// reference: GQA groups, ALiBi slopes, tokens after cached ones (pos0 > 0), odd token counts,
    /// head sizes with and without the f16 row kernel, f16 and f32 caches.
    #[test]
    fn batched_attention_matches_one_token_at_a_time() {
        let mut seed = 7u64;
        // (kv type, head_dim, kv heads, group, alibi, pos0, tokens)
        let cases = [
            (KvType::F16, 64, 2, 1, false, 0, 9),
            (KvType::F16, 64, 2, 1, false, 5, 7),
            (KvType::F16, 16, 2, 3, true, 3, 5),
            (KvType::F16, 8, 1, 4, true, 11, 13),
            (KvType::F16, 24, 3, 2, false, 17, 3),
            (KvType::F16, 12, 2, 2, true, 4, 5),
            (KvType::F32, 16, 2, 4, true, 6, 7),
            // across blocks of values: a batch over a block's end, a token at a block's start,
            // keys of three blocks
            (KvType::F16, 64, 2, 1, false, V_BLOCK - 8, 20),
            (KvType::F16, 16, 1, 2, false, 2 * V_BLOCK, 1),
            (KvType::F16, 16, 2, 3, true, 2 * V_BLOCK + 5, 9),
            (KvType::F32, 16, 2, 4, true, V_BLOCK - 2, 7),
        ];
        let f16_rows = il::f16_rows_kernel();
        for &(ty, hd, nkv, group, alibi, pos0, nt) in &cases {
            let mut kv = random_cache(ty, pos0 + nt + 3, hd, nkv, &mut seed);
            let layer = kv.layer_mut(0);
            let qd = nkv * group * hd;
            let q: Vec<f32> = (0..nt * qd).map(|_| rng(&mut seed)).collect();
            let slopes: Vec<f32> = (0..nkv * group)
                .map(|h| {
                    if alibi {
                        0.5f32.powi(h as i32 + 1)
                    } else {
                        0.0
                    }
                })
                .collect();
            let scale = 1.0 / (hd as f32).sqrt();
            let rows = nt * group;
            let mut scores = vec![f32::NAN; rows * (pos0 + nt).next_multiple_of(8)];
            for kvh in 0..nkv {
                let args = |n_keys: usize| AttnArgs {
                    // SAFETY: nothing writes the cache in this test.
                    kv: unsafe { kv.head_in(&layer, kvh) },
                    n_keys,
                    group,
                    scale,
                    slopes: if alibi {
                        &slopes[kvh * group..(kvh + 1) * group]
                    } else {
                        &[]
                    },
                    f16_rows,
                };
                let at = kvh * group * hd;
                let mut batched = vec![f32::NAN; rows * hd];
                attend(
                    &args(pos0 + 1),
                    &q[at..],
                    qd,
                    rows,
                    &mut batched,
                    &mut scores,
                );
                for t in 0..nt {
                    let mut one = vec![f32::NAN; group * hd];
                    let qt = &q[t * qd + at..];
                    attend(&args(pos0 + t + 1), qt, qd, group, &mut one, &mut scores);
                    for g in 0..group {
                        let got = &batched[(t * group + g) * hd..][..hd];
                        let slope = slopes[kvh * group + g];
                        let want =
                            reference(&kv, kvh, &qt[g * hd..][..hd], pos0 + t + 1, scale, slope);
                        for d in 0..hd {
                            let (b, o, w) = (got[d], one[g * hd + d], want[d]);
                            assert!(
                                (b - o).abs() <= 1e-5 && (b - w).abs() <= 1e-4,
                                "{ty:?} hd={hd} group={group} kvh={kvh} t={t} g={g} d={d}: \
                                 batched {b} one {o} reference {w}"
                            );
                        }
                    }
                }
            }
        }
    }
}
