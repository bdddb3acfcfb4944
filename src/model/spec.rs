//! What distinguishes one architecture's decoder from another, as data.
//!
//! The decoder in `forward.rs` is one piece of code; an architecture is a [`Spec`] (norm, position
//! encoding, residual layout, activation, ALiBi rule, QKV clamp, embedding norm) plus the
//! hyperparameters read from GGUF metadata keys (llama.cpp's names, `{arch}.…`). Facts per
//! architecture, from transformers' modeling code:
//! - GPT-2: LayerNorm, learned positions, sequential residual, `gelu_new` (tanh), tied head.
//! - GPT-J: LayerNorm, rotary on the first `rotary_dim` dims with `rotate_every_two` (interleaved),
//!   parallel residual sharing one norm (`x + attn(ln_1 x) + mlp(ln_1 x)`), `gelu_new`, head bias.
//! - GPT-NeoX: LayerNorm, rotary `rotate_half` on `rotary_pct` of each head, parallel
//!   (`x + attn(ln1 x) + mlp(ln2 x)`) or sequential residual, exact GELU.
//! - LLaMA: RMSNorm, rotary (GGUF files carry Q/K rows permuted so the interleaved style applies),
//!   grouped-query attention, SiLU-gated feed-forward, rope theta and linear scaling.
//! - MPT: LayerNorm (bias optional), ALiBi with MPT's slope order, `clip_qkv` clamping the fused QKV
//!   output, exact GELU, tied head.
//! - BLOOM: LayerNorm, a LayerNorm on the embeddings, ALiBi with BLOOM's slopes, tanh GELU.

use super::ops::{Activation, AlibiRule, RopeStyle};
use crate::error::{Error, Result};
use crate::format::Metadata;
use crate::Architecture;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormKind {
    LayerNorm,
    RmsNorm,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Position {
    /// A learned position embedding table (`position_embd.weight`).
    Learned,
    /// Rotary embedding of the first `n_rot` dimensions of each head.
    Rope {
        n_rot: usize,
        style: RopeStyle,
        theta: f32,
        freq_scale: f32,
    },
    /// Linear biases on attention scores.
    Alibi { max_bias: f32, rule: AlibiRule },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residual {
    /// `x += attn(norm1 x); x += ffn(norm2 x)`.
    Sequential,
    /// `x += attn(norm1 x) + ffn(norm2 x)`; with no `ffn_norm`, the FFN reads `norm1 x` too (GPT-J).
    Parallel,
}

/// Hyperparameters and the architecture's shape, everything the decoder needs besides weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub arch: Architecture,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub norm: NormKind,
    pub norm_eps: f32,
    pub position: Position,
    pub residual: Residual,
    pub activation: Activation,
    /// SiLU-gated feed-forward (`act(gate x) * up x`).
    pub gated_ffn: bool,
    /// A norm applied to the token embeddings (BLOOM).
    pub embedding_norm: bool,
    /// Clamp of the fused QKV projection's output to ±value (MPT's `clip_qkv`).
    pub clamp_qkv: Option<f32>,
}

fn key(arch: Architecture, k: &str) -> String {
    format!("{}.{k}", arch.gguf_name())
}

fn required(meta: &Metadata, arch: Architecture, k: &str) -> Result<usize> {
    let full = key(arch, k);
    let v = meta.get_u64(&full).ok_or_else(|| {
        Error::new(
            crate::ErrorKind::Format,
            format!("metadata key {full} is missing or not an integer"),
        )
    })?;
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0 && v < (1 << 31))
        .ok_or_else(|| {
            Error::new(
                crate::ErrorKind::Format,
                format!("metadata key {full} has an implausible value {v}"),
            )
        })
}

fn float(meta: &Metadata, arch: Architecture, k: &str) -> Option<f32> {
    let full = key(arch, k);
    let v = meta.get(&full)?;
    v.as_f64()
        .or_else(|| v.as_i64().map(|i| i as f64))
        .map(|f| f as f32)
}

impl Spec {
    /// The spec of `arch` from GGUF-style metadata; `n_vocab` comes from the embedding table.
    pub fn from_metadata(arch: Architecture, meta: &Metadata, n_vocab: usize) -> Result<Spec> {
        let n_embd = required(meta, arch, "embedding_length")?;
        let n_layer = required(meta, arch, "block_count")?;
        let n_head = required(meta, arch, "attention.head_count")?;
        let n_head_kv = match meta.get_u64(&key(arch, "attention.head_count_kv")) {
            Some(_) => required(meta, arch, "attention.head_count_kv")?,
            None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(Error::new(
                crate::ErrorKind::Format,
                format!("attention.head_count {n_head} is not a multiple of attention.head_count_kv {n_head_kv}"),
            ));
        }
        let head_dim = match meta.get_u64(&key(arch, "attention.key_length")) {
            Some(_) => required(meta, arch, "attention.key_length")?,
            None => {
                if n_embd % n_head != 0 {
                    return Err(Error::new(
                        crate::ErrorKind::Format,
                        format!("embedding_length {n_embd} is not a multiple of attention.head_count {n_head}"),
                    ));
                }
                n_embd / n_head
            }
        };
        let n_ff = required(meta, arch, "feed_forward_length")?;
        let n_ctx_train = meta.get_u64(&key(arch, "context_length")).unwrap_or(2048) as usize;
        let (norm, eps_key) = match arch {
            Architecture::Llama => (NormKind::RmsNorm, "attention.layer_norm_rms_epsilon"),
            _ => (NormKind::LayerNorm, "attention.layer_norm_epsilon"),
        };
        // Defaults for files that do not say (legacy files): transformers' config defaults.
        let default_eps = if arch == Architecture::Llama {
            1e-6
        } else {
            1e-5
        };
        let norm_eps = float(meta, arch, eps_key).unwrap_or(default_eps);
        let rope = |style: RopeStyle| -> Result<Position> {
            let n_rot = match meta.get_u64(&key(arch, "rope.dimension_count")) {
                Some(_) => required(meta, arch, "rope.dimension_count")?,
                None => head_dim,
            };
            if n_rot > head_dim || n_rot % 2 != 0 {
                return Err(Error::new(
                    crate::ErrorKind::Format,
                    format!("rope.dimension_count {n_rot} must be even and at most the head size {head_dim}"),
                ));
            }
            let theta = float(meta, arch, "rope.freq_base").unwrap_or(10000.0);
            let freq_scale = match meta.get_str(&key(arch, "rope.scaling.type")) {
                Some("linear") => 1.0 / float(meta, arch, "rope.scaling.factor").unwrap_or(1.0),
                None | Some("none") => 1.0,
                Some(other) => {
                    return Err(Error::unsupported(format!(
                        "rope scaling type {other:?} is not supported (only linear)"
                    )))
                }
            };
            Ok(Position::Rope {
                n_rot,
                style,
                theta,
                freq_scale,
            })
        };
        let alibi = |rule| Position::Alibi {
            max_bias: float(meta, arch, "attention.max_alibi_bias").unwrap_or(8.0),
            rule,
        };
        let clamp_qkv = float(meta, arch, "attention.clamp_kqv").filter(|c| *c > 0.0);
        let parallel = meta
            .get_bool(&key(arch, "use_parallel_residual"))
            .unwrap_or(true);
        use Architecture::*;
        let (position, residual, activation) = match arch {
            Gpt2 => (
                Position::Learned,
                Residual::Sequential,
                Activation::GeluTanh,
            ),
            GptJ => (
                rope(RopeStyle::Interleaved)?,
                Residual::Parallel,
                Activation::GeluTanh,
            ),
            GptNeoX => (
                rope(RopeStyle::Neox)?,
                if parallel {
                    Residual::Parallel
                } else {
                    Residual::Sequential
                },
                Activation::GeluErf,
            ),
            Llama => (
                rope(RopeStyle::Interleaved)?,
                Residual::Sequential,
                Activation::Silu,
            ),
            Mpt => (
                alibi(AlibiRule::Mpt),
                Residual::Sequential,
                Activation::GeluErf,
            ),
            Bloom => (
                alibi(AlibiRule::Bloom),
                Residual::Sequential,
                Activation::GeluTanh,
            ),
        };
        Ok(Spec {
            arch,
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            norm,
            norm_eps,
            position,
            residual,
            activation,
            gated_ffn: arch == Llama,
            embedding_norm: arch == Bloom,
            clamp_qkv: if arch == Mpt { clamp_qkv } else { None },
        })
    }

    /// Width of the K (and V) rows of one token: `n_head_kv * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
    /// Width of the Q rows (and of the attention output): `n_head * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
}
