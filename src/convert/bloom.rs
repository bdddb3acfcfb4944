//! BLOOM (`BloomForCausalLM`) → llama.cpp's `bloom`.
//!
//! Facts relied on (llama.cpp `conversion/bloom.py`, `src/models/bloom.cpp`; transformers
//! `modeling_bloom.py`):
//! - Keys: `context_length` = `seq_length`, and when absent `hidden_size` (sic — llama.cpp's
//!   converter does exactly this; BLOOM uses ALiBi, so the value only bounds the context);
//!   `embedding_length` = `hidden_size` (`n_embed`), `feed_forward_length` = 4·`hidden_size`,
//!   `block_count` = `n_layer`, `attention.head_count` = `attention.head_count_kv` = `n_head`,
//!   `attention.layer_norm_epsilon` = `layer_norm_epsilon`. No position keys (ALiBi).
//! - The fused `query_key_value` is stored per head as `[q_h; k_h; v_h]`; llama.cpp wants
//!   `[all q; all k; all v]`: rows reordered via `reshape(n_head, 3, head_dim, n_embd)` with the
//!   first two axes swapped — for the weight and the bias.
//! - Names: `word_embeddings` → `token_embd`, `word_embeddings_layernorm` → `token_embd_norm`
//!   (weight and bias), `ln_f` → `output_norm`, `h.N.input_layernorm` → `attn_norm`,
//!   `self_attention.query_key_value` → `attn_qkv`, `self_attention.dense` → `attn_output`,
//!   `post_attention_layernorm` → `ffn_norm`, `mlp.dense_h_to_4h` → `ffn_up`, `mlp.dense_4h_to_h`
//!   → `ffn_down`, `lm_head` → `output`. llama.cpp strips `transformer.`; checkpoints exist with
//!   and without it.
//! - The head is tied to the embeddings unless `tie_word_embeddings` is false (transformers'
//!   default is true); llama.cpp then reuses `token_embd` and we write no `output.weight`.
//!
//! Legacy layout (llm-rs `convert/models/bloom.py`): `tok_embeddings.weight`, `norm.weight|bias`
//! (the embedding LayerNorm), per block `layers.{i}.attention_norm`,
//! `attention.query_key_value` (reordered as above: llm-rs applies the same reshape),
//! `attention.wo`, `ffn_norm`, `feed_forward.w1` (h→4h), `feed_forward.w2` (4h→h), then
//! `output_norm` and `output.weight` (the embeddings again when tied).

use super::config::HfConfig;
use super::plan::{blk, inconsistent, ArchPlan, Keys, Relabel};
use super::tensor::{TensorPlan, Transform};
use crate::error::Result;
use crate::Architecture;

pub(super) fn plan(cfg: &HfConfig) -> Result<ArchPlan> {
    let n_vocab = cfg.usize(&["vocab_size"])?;
    let n_embd = cfg.usize(&["hidden_size", "n_embed"])?;
    let n_layer = cfg.usize(&["n_layer", "num_hidden_layers"])?;
    let n_head = cfg.usize(&["n_head", "num_attention_heads"])?;
    let n_ctx = cfg.opt_usize(&["seq_length"])?.unwrap_or(n_embd);
    let n_ff = 4 * n_embd;
    let eps = cfg.opt_f64(&["layer_norm_epsilon"])?.unwrap_or(1e-5);
    let tied = cfg.tied_embeddings(true)?;
    if n_embd % n_head != 0 {
        return Err(inconsistent(
            cfg,
            format!("hidden_size {n_embd} is not a multiple of n_head {n_head}"),
        ));
    }

    let mut k = Keys::new(Architecture::Bloom);
    k.u32("context_length", n_ctx)?;
    k.u32("embedding_length", n_embd)?;
    k.u32("feed_forward_length", n_ff)?;
    k.u32("block_count", n_layer)?;
    k.u32("attention.head_count", n_head)?;
    k.u32("attention.head_count_kv", n_head)?;
    k.f32("attention.layer_norm_epsilon", eps);

    let mut t = vec![
        TensorPlan::copy(
            "token_embd.weight",
            "transformer.word_embeddings.weight",
            &[n_vocab, n_embd],
        ),
        TensorPlan::copy(
            "token_embd_norm.weight",
            "transformer.word_embeddings_layernorm.weight",
            &[n_embd],
        ),
        TensorPlan::copy(
            "token_embd_norm.bias",
            "transformer.word_embeddings_layernorm.bias",
            &[n_embd],
        ),
        TensorPlan::copy("output_norm.weight", "transformer.ln_f.weight", &[n_embd]),
        TensorPlan::copy("output_norm.bias", "transformer.ln_f.bias", &[n_embd]),
    ];
    let mut ignored = Vec::new();
    if tied {
        ignored.push("lm_head.weight".to_string());
    } else {
        t.push(TensorPlan::copy(
            "output.weight",
            "lm_head.weight",
            &[n_vocab, n_embd],
        ));
    }
    let qkv = Transform::QkvHeadsToBlocks { n_head };
    for i in 0..n_layer {
        let h = |s: &str| format!("transformer.h.{i}.{s}");
        t.extend([
            TensorPlan::copy(
                blk(i, "attn_norm.weight"),
                h("input_layernorm.weight"),
                &[n_embd],
            ),
            TensorPlan::copy(
                blk(i, "attn_norm.bias"),
                h("input_layernorm.bias"),
                &[n_embd],
            ),
            TensorPlan::with(
                blk(i, "attn_qkv.weight"),
                h("self_attention.query_key_value.weight"),
                &[3 * n_embd, n_embd],
                qkv,
            ),
            TensorPlan::with(
                blk(i, "attn_qkv.bias"),
                h("self_attention.query_key_value.bias"),
                &[3 * n_embd],
                qkv,
            ),
            TensorPlan::copy(
                blk(i, "attn_output.weight"),
                h("self_attention.dense.weight"),
                &[n_embd, n_embd],
            ),
            TensorPlan::copy(
                blk(i, "attn_output.bias"),
                h("self_attention.dense.bias"),
                &[n_embd],
            ),
            TensorPlan::copy(
                blk(i, "ffn_norm.weight"),
                h("post_attention_layernorm.weight"),
                &[n_embd],
            ),
            TensorPlan::copy(
                blk(i, "ffn_norm.bias"),
                h("post_attention_layernorm.bias"),
                &[n_embd],
            ),
            TensorPlan::copy(
                blk(i, "ffn_down.weight"),
                h("mlp.dense_4h_to_h.weight"),
                &[n_embd, n_ff],
            ),
            TensorPlan::copy(
                blk(i, "ffn_down.bias"),
                h("mlp.dense_4h_to_h.bias"),
                &[n_embd],
            ),
            TensorPlan::copy(
                blk(i, "ffn_up.weight"),
                h("mlp.dense_h_to_4h.weight"),
                &[n_ff, n_embd],
            ),
            TensorPlan::copy(blk(i, "ffn_up.bias"), h("mlp.dense_h_to_4h.bias"), &[n_ff]),
        ]);
    }
    Ok(ArchPlan {
        keys: k.entries,
        tensors: t,
        ignored,
        optional_prefix: Some("transformer."),
        vocab_size: n_vocab,
    })
}

/// The llm-rs tensor list (see the module documentation).
pub(super) fn legacy(plan: &ArchPlan, n_layer: usize) -> ArchPlan {
    let mut r = Relabel::new(plan);
    r.take("token_embd.weight", "tok_embeddings.weight");
    r.take("token_embd_norm.weight", "norm.weight");
    r.take("token_embd_norm.bias", "norm.bias");
    for i in 0..n_layer {
        for (g, l) in [
            ("attn_norm.weight", "attention_norm.weight"),
            ("attn_norm.bias", "attention_norm.bias"),
            ("attn_qkv.weight", "attention.query_key_value.weight"),
            ("attn_qkv.bias", "attention.query_key_value.bias"),
            ("attn_output.weight", "attention.wo.weight"),
            ("attn_output.bias", "attention.wo.bias"),
            ("ffn_norm.weight", "ffn_norm.weight"),
            ("ffn_norm.bias", "ffn_norm.bias"),
            ("ffn_up.weight", "feed_forward.w1.weight"),
            ("ffn_up.bias", "feed_forward.w1.bias"),
            ("ffn_down.weight", "feed_forward.w2.weight"),
            ("ffn_down.bias", "feed_forward.w2.bias"),
        ] {
            r.take(&blk(i, g), format!("layers.{i}.{l}"));
        }
    }
    r.take("output_norm.weight", "output_norm.weight");
    r.take("output_norm.bias", "output_norm.bias");
    r.head("output.weight");
    r.finish()
}
