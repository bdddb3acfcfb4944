//! The one decoder forward pass shared by every architecture (see `spec.rs` for what varies).

use super::matmul::linear;
use super::ops::{self, rope};
use super::spec::{NormKind, Position, Residual, Spec};
use super::weights::{Linear, Norm, Qkv, Weights};
use crate::error::Result;
use half::f16;
use rayon::prelude::*;

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
    fn store(&mut self, at: usize, src: &[f32]) {
        match self {
            KvBuf::F16(b) => b[at..at + src.len()]
                .iter_mut()
                .zip(src)
                .for_each(|(d, s)| *d = f16::from_f32(*s)),
            KvBuf::F32(b) => b[at..at + src.len()].copy_from_slice(src),
        }
    }
    /// `a · self[at..at + a.len()]`
    fn dot(&self, at: usize, a: &[f32]) -> f32 {
        match self {
            KvBuf::F16(b) => b[at..at + a.len()]
                .iter()
                .zip(a)
                .map(|(k, q)| k.to_f32() * q)
                .sum(),
            KvBuf::F32(b) => b[at..at + a.len()].iter().zip(a).map(|(k, q)| k * q).sum(),
        }
    }
    /// `out += w * self[at..at + out.len()]`
    fn axpy(&self, at: usize, w: f32, out: &mut [f32]) {
        match self {
            KvBuf::F16(b) => b[at..at + out.len()]
                .iter()
                .zip(out)
                .for_each(|(v, o)| *o += w * v.to_f32()),
            KvBuf::F32(b) => b[at..at + out.len()]
                .iter()
                .zip(out)
                .for_each(|(v, o)| *o += w * v),
        }
    }
}

/// Keys and values of every layer for the positions seen so far: `[layer][position][kv_dim]`.
pub struct KvCache {
    n_ctx: usize,
    k: Vec<KvBuf>,
    v: Vec<KvBuf>,
}

impl KvCache {
    pub fn new(spec: &Spec, n_ctx: usize, ty: KvType) -> KvCache {
        let len = n_ctx * spec.kv_dim();
        KvCache {
            n_ctx,
            k: (0..spec.n_layer).map(|_| KvBuf::new(ty, len)).collect(),
            v: (0..spec.n_layer).map(|_| KvBuf::new(ty, len)).collect(),
        }
    }
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
}

/// Position-dependent settings a session may override.
#[derive(Clone, Copy, Debug)]
pub struct RopeOverride {
    pub freq_base: Option<f32>,
    pub freq_scale: Option<f32>,
}

fn norm_rows(spec: &Spec, norm: &Norm, x: &mut [f32]) {
    for row in x.chunks_exact_mut(spec.n_embd) {
        match spec.norm {
            NormKind::LayerNorm => {
                ops::layer_norm(row, &norm.weight, norm.bias.as_deref(), spec.norm_eps)
            }
            NormKind::RmsNorm => ops::rms_norm(row, &norm.weight, spec.norm_eps),
        }
    }
}

fn ffn(spec: &Spec, layer: &super::weights::Layer, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let mut up = vec![0f32; n * spec.n_ff];
    linear(&layer.ffn_up, x, n, &mut up)?;
    match &layer.ffn_gate {
        Some(gate) => {
            let mut g = vec![0f32; n * spec.n_ff];
            linear(gate, x, n, &mut g)?;
            up.iter_mut()
                .zip(&g)
                .for_each(|(u, g)| *u *= spec.activation.apply(*g));
        }
        None => up.iter_mut().for_each(|u| *u = spec.activation.apply(*u)),
    }
    let mut down = vec![0f32; n * spec.n_embd];
    linear(&layer.ffn_down, &up, n, &mut down)?;
    Ok(down)
}

fn project(lin: &Linear, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n * lin.w.rows];
    linear(lin, x, n, &mut out)?;
    Ok(out)
}

/// Runs `tokens` (at positions `pos0..`) through the decoder, filling the KV cache, and returns the
/// final-normed hidden states of the rows selected by `rows` (`[first, n)` of the batch).
#[allow(clippy::too_many_arguments)]
pub fn forward(
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
    let mut h = vec![0f32; n * d];
    for (t, row) in h.chunks_exact_mut(d).enumerate() {
        w.token_embd.dequantize_row(tokens[t] as usize, row)?;
        if let Some(pe) = &w.position_embd {
            let mut p = vec![0f32; d];
            pe.dequantize_row(pos0 + t, &mut p)?;
            row.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
        }
    }
    if let Some(en) = &w.embd_norm {
        norm_rows(spec, en, &mut h);
    }
    let rope_params = match spec.position {
        Position::Rope {
            n_rot,
            style,
            theta,
            freq_scale,
        } => Some((
            n_rot,
            style,
            rope_override.freq_base.unwrap_or(theta),
            rope_override.freq_scale.unwrap_or(freq_scale),
        )),
        _ => None,
    };
    let scale = 1.0 / (hd as f32).sqrt();
    let group = spec.n_head / spec.n_head_kv;
    for (il, layer) in w.layers.iter().enumerate() {
        let mut a = h.clone();
        norm_rows(spec, &layer.attn_norm, &mut a);
        // Q, K, V for every token of the batch.
        let (mut q, mut k, v) = match &layer.qkv {
            Qkv::Fused(lin) => {
                let mut y = project(lin, &a, n)?;
                if let Some(c) = spec.clamp_qkv {
                    y.iter_mut().for_each(|x| *x = x.clamp(-c, c));
                }
                let width = qd + 2 * kvd;
                let (mut q, mut k, mut v) =
                    (vec![0f32; n * qd], vec![0f32; n * kvd], vec![0f32; n * kvd]);
                for t in 0..n {
                    let r = &y[t * width..(t + 1) * width];
                    q[t * qd..(t + 1) * qd].copy_from_slice(&r[..qd]);
                    k[t * kvd..(t + 1) * kvd].copy_from_slice(&r[qd..qd + kvd]);
                    v[t * kvd..(t + 1) * kvd].copy_from_slice(&r[qd + kvd..]);
                }
                (q, k, v)
            }
            Qkv::Separate { q, k, v } => {
                (project(q, &a, n)?, project(k, &a, n)?, project(v, &a, n)?)
            }
        };
        if let Some((n_rot, style, theta, fscale)) = rope_params {
            for t in 0..n {
                for head in q[t * qd..(t + 1) * qd].chunks_exact_mut(hd) {
                    rope(head, pos0 + t, n_rot, theta, fscale, style);
                }
                for head in k[t * kvd..(t + 1) * kvd].chunks_exact_mut(hd) {
                    rope(head, pos0 + t, n_rot, theta, fscale, style);
                }
            }
        }
        for t in 0..n {
            let at = (pos0 + t) * kvd;
            kv.k[il].store(at, &k[t * kvd..(t + 1) * kvd]);
            kv.v[il].store(at, &v[t * kvd..(t + 1) * kvd]);
        }
        // Attention, one task per (token, head).
        let mut heads_out = vec![0f32; n * qd];
        let (kc, vc) = (&kv.k[il], &kv.v[il]);
        heads_out
            .par_chunks_mut(hd)
            .enumerate()
            .for_each(|(i, out)| {
                let (t, head) = (i / spec.n_head, i % spec.n_head);
                let kvh = head / group;
                let qh = &q[t * qd + head * hd..t * qd + (head + 1) * hd];
                let n_keys = pos0 + t + 1;
                let slope = alibi.get(head).copied().unwrap_or(0.0);
                let mut scores: Vec<f32> = (0..n_keys)
                    .map(|j| kc.dot(j * kvd + kvh * hd, qh) * scale + slope * j as f32)
                    .collect();
                ops::softmax(&mut scores);
                out.fill(0.0);
                for (j, &s) in scores.iter().enumerate() {
                    vc.axpy(j * kvd + kvh * hd, s, out);
                }
            });
        let attn = project(&layer.attn_out, &heads_out, n)?;
        match spec.residual {
            Residual::Sequential => {
                h.iter_mut().zip(&attn).for_each(|(x, y)| *x += y);
                let mut f_in = h.clone();
                norm_rows(
                    spec,
                    layer.ffn_norm.as_ref().expect("checked at load"),
                    &mut f_in,
                );
                let f = ffn(spec, layer, &f_in, n)?;
                h.iter_mut().zip(&f).for_each(|(x, y)| *x += y);
            }
            Residual::Parallel => {
                let f_in = match &layer.ffn_norm {
                    Some(fnorm) => {
                        let mut f_in = h.clone();
                        norm_rows(spec, fnorm, &mut f_in);
                        f_in
                    }
                    None => a,
                };
                let f = ffn(spec, layer, &f_in, n)?;
                h.iter_mut()
                    .zip(attn.iter().zip(&f))
                    .for_each(|(x, (y, z))| *x += y + z);
            }
        }
    }
    let mut out = h.split_off(first_row * d);
    norm_rows(spec, &w.output_norm, &mut out);
    Ok(out)
}

/// Logits of `rows` final hidden states.
pub fn logits(spec: &Spec, w: &Weights, hidden: &[f32]) -> Result<Vec<f32>> {
    let n = hidden.len() / spec.n_embd;
    let mut out = vec![0f32; n * spec.n_vocab];
    linear(&w.output, hidden, n, &mut out)?;
    Ok(out)
}
