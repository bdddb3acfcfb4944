//! The one decoder forward pass shared by every architecture (see `spec.rs` for what varies).
//!
//! Runs on the session's [`Pool`]: matrix products, attention and the element-wise work of a batch
//! are split over its threads; everything in between runs on the calling thread. Every buffer lives
//! in a [`Scratch`] owned by the session and reused, so evaluating a token allocates nothing but its
//! result.

use super::matmul::{linear, linear_multi, MatScratch};
use super::ops::{self, Activation, RopeStyle};
use super::spec::{NormKind, Position, Residual, Spec};
use super::weights::{Layer, Norm, Qkv, Weights};
use crate::error::Result;
use crate::pool::{Pool, SharedMut};
use crate::quant::interleaved::{self as il, RowsKernel};
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
/// Values are stored transposed, `[layer][kv head][head_dim][position]` (positions padded to a
/// multiple of 8): the weighted sum of values is then, for each output dimension, one contiguous dot
/// product of the attention weights with a row of values.
pub struct KvCache {
    n_ctx: usize,
    /// Positions per value row (`n_ctx` rounded up to a multiple of 8).
    v_stride: usize,
    head_dim: usize,
    n_head_kv: usize,
    k: Vec<KvBuf>,
    v: Vec<KvBuf>,
}

impl KvCache {
    pub fn new(spec: &Spec, n_ctx: usize, ty: KvType) -> KvCache {
        let v_stride = n_ctx.next_multiple_of(8);
        KvCache {
            n_ctx,
            v_stride,
            head_dim: spec.head_dim,
            n_head_kv: spec.n_head_kv,
            k: (0..spec.n_layer)
                .map(|_| KvBuf::new(ty, n_ctx * spec.kv_dim()))
                .collect(),
            v: (0..spec.n_layer)
                .map(|_| KvBuf::new(ty, v_stride * spec.kv_dim()))
                .collect(),
        }
    }
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Stores the keys and values (`kv_dim` each) of position `pos` in layer `il`.
    fn store(&mut self, il: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (hd, nkv, n_ctx, vs) = (self.head_dim, self.n_head_kv, self.n_ctx, self.v_stride);
        for h in 0..nkv {
            let ks = &k[h * hd..(h + 1) * hd];
            let kat = (h * n_ctx + pos) * hd;
            match &mut self.k[il] {
                // Slice conversions use F16C when the CPU has it (one call per head, not one
                // per value); rounding is to nearest even either way.
                KvBuf::F16(b) => b[kat..kat + hd].convert_from_f32_slice(ks),
                KvBuf::F32(b) => b[kat..kat + hd].copy_from_slice(ks),
            }
            let vsrc = &v[h * hd..(h + 1) * hd];
            match &mut self.v[il] {
                KvBuf::F16(b) => {
                    let mut tmp = [f16::ZERO; 64];
                    for (c, chunk) in vsrc.chunks(64).enumerate() {
                        let tmp = &mut tmp[..chunk.len()];
                        tmp.convert_from_f32_slice(chunk);
                        for (i, &x) in tmp.iter().enumerate() {
                            b[(h * hd + 64 * c + i) * vs + pos] = x;
                        }
                    }
                }
                KvBuf::F32(b) => {
                    for (dd, &x) in vsrc.iter().enumerate() {
                        b[(h * hd + dd) * vs + pos] = x;
                    }
                }
            }
        }
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

/// Rows of `x` (each `width` long) processed by `f`, in parallel over the pool when the batch is
/// large enough to pay for it.
fn rows_par(pool: &Pool, x: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let n = x.len() / width;
    if n < 4 || x.len() < 16384 || pool.threads() == 1 {
        for (t, row) in x.chunks_exact_mut(width).enumerate() {
            f(t, row);
        }
        return;
    }
    let tasks = (pool.threads() * 4).min(n);
    let per = n.div_ceil(tasks);
    let tasks = n.div_ceil(per);
    let xs = SharedMut::new(x);
    pool.run(tasks, |task, _| {
        for t in task * per..((task + 1) * per).min(n) {
            // SAFETY: row t belongs to this task only.
            f(t, unsafe { xs.range(t * width, width) });
        }
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
    kv: &'a KvCache,
    layer: usize,
    kvh: usize,
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
    let k_base = a.kvh * a.kv.n_ctx * hd;
    let v_base = a.kvh * hd * a.kv.v_stride;
    let vs = a.kv.v_stride;
    // Scores.
    match &a.kv.k[a.layer] {
        KvBuf::F16(kb) if hd.is_multiple_of(8) => {
            let kbytes = f16_bytes(&kb[k_base..k_base + a.keys(rows - 1) * hd]);
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
        KvBuf::F16(kb) => {
            for r in 0..rows {
                let qh = q_row(r);
                for j in 0..a.keys(r) {
                    let k = &kb[k_base + j * hd..k_base + (j + 1) * hd];
                    scores[r * stride + j] = k.iter().zip(qh).map(|(k, q)| k.to_f32() * q).sum();
                }
            }
        }
        KvBuf::F32(kb) => {
            for r in 0..rows {
                let qh = q_row(r);
                for j in 0..a.keys(r) {
                    let k = &kb[k_base + j * hd..k_base + (j + 1) * hd];
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
    // Weighted sum of values: out[r][d] = Σ_j p[r][j] · V[d][j].
    match &a.kv.v[a.layer] {
        KvBuf::F16(vb) => {
            let vbytes = f16_bytes(&vb[v_base..v_base + hd * vs]);
            for r0 in (0..rows).step_by(C) {
                let nr = C.min(rows - r0);
                // Rows of the chunk see at most n keys; the others' weights are zero past theirs.
                let n = a.keys(r0 + nr - 1);
                let n8 = n / 8 * 8;
                let ps: [&[f32]; C] =
                    std::array::from_fn(|i| &scores[(r0 + i.min(nr - 1)) * stride..][..n8]);
                let mut res = [[0f32; 4]; C];
                for d0 in (0..hd).step_by(4) {
                    let nd = 4.min(hd - d0);
                    let vr: [&[u8]; 4] =
                        std::array::from_fn(|i| &vbytes[(d0 + i.min(nd - 1)) * vs * 2..][..n8 * 2]);
                    if n8 > 0 {
                        (a.f16_rows)(&vr[..nd], &ps[..nr], n8, &mut res);
                    } else {
                        res = [[0f32; 4]; C];
                    }
                    for (i, rr) in res.iter().enumerate().take(nr) {
                        let p = &scores[(r0 + i) * stride..];
                        for (di, &x) in rr.iter().enumerate().take(nd) {
                            let d = d0 + di;
                            let vrow = &vb[v_base + d * vs..];
                            let tail: f32 = (n8..n).map(|j| p[j] * vrow[j].to_f32()).sum();
                            out[(r0 + i) * hd + d] = x + tail;
                        }
                    }
                }
            }
        }
        KvBuf::F32(vb) => {
            for r in 0..rows {
                let n = a.keys(r);
                let p = &scores[r * stride..r * stride + n];
                for d in 0..hd {
                    let vrow = &vb[v_base + d * vs..v_base + d * vs + n];
                    out[r * hd + d] = p.iter().zip(vrow).map(|(p, v)| p * v).sum();
                }
            }
        }
    }
}

fn f16_bytes(x: &[f16]) -> &[u8] {
    // SAFETY: f16 is two plain bytes; the length is exact.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

fn ffn(pool: &Pool, spec: &Spec, layer: &Layer, s: &mut Scratch, n: usize) {
    let ff = n * spec.n_ff;
    let up = grow(&mut s.up, ff);
    let gate = grow(&mut s.gate, ff);
    let x = &s.f_in[..n * spec.n_embd];
    match &layer.ffn_gate {
        Some(g) => {
            linear_multi(pool, &mut s.mat, &[g, &layer.ffn_up], x, n, &mut [gate, up]);
            activate(pool, spec, &mut s.up[..ff], Some(&s.gate[..ff]));
        }
        None => {
            linear(pool, &mut s.mat, &layer.ffn_up, x, n, up);
            activate(pool, spec, up, None);
        }
    }
    let down = grow(&mut s.down, n * spec.n_embd);
    linear(pool, &mut s.mat, &layer.ffn_down, &s.up[..ff], n, down);
}

/// Runs `tokens` (at positions `pos0..`) through the decoder, filling the KV cache, and returns the
/// final-normed hidden states of rows `first_row..` of the batch.
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
) -> Result<Vec<f32>> {
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
    let score_len = block * group * ((pos0 + n).next_multiple_of(8) + hd);
    grow(&mut s.scores, threads * score_len);
    let f16_rows = il::f16_rows_kernel();
    for (il, layer) in w.layers.iter().enumerate() {
        let a = grow(&mut s.a, n * d);
        a.copy_from_slice(&s.h[..n * d]);
        norm_rows(pool, spec, &layer.attn_norm, a);
        let a = &s.a[..n * d];
        // Q, K, V for every token of the batch.
        match &layer.qkv {
            Qkv::Fused(lin) => {
                let width = qd + 2 * kvd;
                let y = grow(&mut s.qkv, n * width);
                linear(pool, &mut s.mat, lin, a, n, y);
                if let Some(c) = spec.clamp_qkv {
                    y.iter_mut().for_each(|x| *x = x.clamp(-c, c));
                }
                let (q, k, v) = (
                    grow(&mut s.q, n * qd),
                    grow(&mut s.k, n * kvd),
                    grow(&mut s.v, n * kvd),
                );
                for t in 0..n {
                    let r = &y[t * width..(t + 1) * width];
                    q[t * qd..(t + 1) * qd].copy_from_slice(&r[..qd]);
                    k[t * kvd..(t + 1) * kvd].copy_from_slice(&r[qd..qd + kvd]);
                    v[t * kvd..(t + 1) * kvd].copy_from_slice(&r[qd + kvd..]);
                }
            }
            Qkv::Separate { q, k, v } => {
                let (qo, ko, vo) = (
                    grow(&mut s.q, n * qd),
                    grow(&mut s.k, n * kvd),
                    grow(&mut s.v, n * kvd),
                );
                linear_multi(pool, &mut s.mat, &[q, k, v], a, n, &mut [qo, ko, vo]);
            }
        }
        if let Some((half, style)) = rope {
            let table = &s.rope;
            let rot = |t: usize| &table[t * half..(t + 1) * half];
            rows_par(pool, &mut s.q[..n * qd], qd, |t, row| {
                row.chunks_exact_mut(hd)
                    .for_each(|h| rope_apply(h, rot(t), style))
            });
            for (t, row) in s.k[..n * kvd].chunks_exact_mut(kvd).enumerate() {
                row.chunks_exact_mut(hd)
                    .for_each(|h| rope_apply(h, rot(t), style));
            }
        }
        for t in 0..n {
            kv.store(
                il,
                pos0 + t,
                &s.k[t * kvd..(t + 1) * kvd],
                &s.v[t * kvd..(t + 1) * kvd],
            );
        }
        // Attention: one task per (block of consecutive tokens, KV head), covering the query
        // heads that share the KV head; the blocks of the latest tokens (the most keys) first.
        let heads = SharedMut::new(grow(&mut s.heads, n * qd));
        let scratch = SharedMut::new(&mut s.scores[..threads * score_len]);
        let q = &s.q[..n * qd];
        let kvr = &*kv;
        let n_blocks = n.div_ceil(block);
        pool.run(n_blocks * spec.n_head_kv, |task, thread| {
            let kvh = task % spec.n_head_kv;
            let t0 = (n_blocks - 1 - task / spec.n_head_kv) * block;
            let nt = block.min(n - t0);
            let args = AttnArgs {
                kv: kvr,
                layer: il,
                kvh,
                n_keys: pos0 + t0 + 1,
                group,
                scale,
                slopes: alibi.get(kvh * group..(kvh + 1) * group).unwrap_or(&[]),
                f16_rows,
            };
            // SAFETY: `thread` owns its part of the scratch.
            let sc = unsafe { scratch.range(thread * score_len, score_len) };
            let (sc, out) = sc.split_at_mut(score_len - block * group * hd);
            let at = t0 * qd + kvh * group * hd;
            attend(&args, &q[at..], qd, nt * group, out, sc);
            for (i, o) in out.chunks_exact(group * hd).take(nt).enumerate() {
                // SAFETY: this task owns the output heads of (t0 + i, kvh).
                unsafe { heads.range(at + i * qd, group * hd) }.copy_from_slice(o);
            }
        });
        let attn = grow(&mut s.attn, n * d);
        linear(
            pool,
            &mut s.mat,
            &layer.attn_out,
            &s.heads[..n * qd],
            n,
            attn,
        );
        match spec.residual {
            Residual::Sequential => {
                let h = &mut s.h[..n * d];
                h.iter_mut()
                    .zip(&s.attn[..n * d])
                    .for_each(|(x, y)| *x += y);
                let f_in = grow(&mut s.f_in, n * d);
                f_in.copy_from_slice(h);
                norm_rows(
                    pool,
                    spec,
                    layer.ffn_norm.as_ref().expect("checked at load"),
                    f_in,
                );
                ffn(pool, spec, layer, s, n);
                let h = &mut s.h[..n * d];
                h.iter_mut()
                    .zip(&s.down[..n * d])
                    .for_each(|(x, y)| *x += y);
            }
            Residual::Parallel => {
                let f_in = grow(&mut s.f_in, n * d);
                match &layer.ffn_norm {
                    Some(fnorm) => {
                        f_in.copy_from_slice(&s.h[..n * d]);
                        norm_rows(pool, spec, fnorm, f_in);
                    }
                    None => f_in.copy_from_slice(&s.a[..n * d]),
                }
                ffn(pool, spec, layer, s, n);
                let h = &mut s.h[..n * d];
                h.iter_mut()
                    .zip(s.attn[..n * d].iter().zip(&s.down[..n * d]))
                    .for_each(|(x, (y, z))| *x += y + z);
            }
        }
    }
    let mut out = s.h[first_row * d..n * d].to_vec();
    norm_rows(pool, spec, &w.output_norm, &mut out);
    Ok(out)
}

/// Logits of `rows` final hidden states.
pub fn logits(pool: &Pool, s: &mut Scratch, spec: &Spec, w: &Weights, hidden: &[f32]) -> Vec<f32> {
    let n = hidden.len() / spec.n_embd;
    let mut out = vec![0f32; n * spec.n_vocab];
    linear(pool, &mut s.mat, &w.output, hidden, n, &mut out);
    out
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
        let v_stride = n_ctx.next_multiple_of(8);
        let mut kv = KvCache {
            n_ctx,
            v_stride,
            head_dim: hd,
            n_head_kv: nkv,
            k: vec![KvBuf::new(ty, n_ctx * nkv * hd)],
            v: vec![KvBuf::new(ty, v_stride * nkv * hd)],
        };
        for pos in 0..n_ctx {
            let k: Vec<f32> = (0..nkv * hd).map(|_| rng(seed) * 2.0).collect();
            let v: Vec<f32> = (0..nkv * hd).map(|_| rng(seed)).collect();
            kv.store(0, pos, &k, &v);
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
            KvBuf::F16(b) => b[(kvh * hd + d) * kv.v_stride + j].to_f64(),
            KvBuf::F32(b) => b[(kvh * hd + d) * kv.v_stride + j] as f64,
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
        ];
        let f16_rows = il::f16_rows_kernel();
        for &(ty, hd, nkv, group, alibi, pos0, nt) in &cases {
            let kv = random_cache(ty, pos0 + nt + 3, hd, nkv, &mut seed);
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
                    kv: &kv,
                    layer: 0,
                    kvh,
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
