//! GPT-2 (`GPT2LMHeadModel`) → llama.cpp's `gpt2`.
//!
//! Facts relied on (llama.cpp `conversion/gpt2.py`, `gguf-py/gguf/constants.py` and
//! `tensor_mapping.py`, `src/models/gpt2.cpp`; transformers `modeling_gpt2.py`):
//! - Keys: `context_length` = `n_ctx` (llama.cpp) — we use `n_positions`, the size of the position
//!   table, which old configs also call `n_ctx`; `embedding_length` = `n_embd`;
//!   `feed_forward_length` = `n_inner` or 4·`n_embd` (llama.cpp writes 4·`n_embd`);
//!   `attention.head_count` = `n_head`; `attention.layer_norm_epsilon` = `layer_norm_epsilon`.
//! - GPT-2's `Conv1D` stores weights as `[in, out]`: `c_attn`, `attn.c_proj`, `mlp.c_fc` and
//!   `mlp.c_proj` weights are transposed to `[out, in]`; biases are kept.
//! - `c_attn` projects to `[q | k | v]` (all heads of each in turn), which is llama.cpp's fused
//!   `attn_qkv` layout already: no reordering.
//! - Names: `wte` → `token_embd`, `wpe` → `position_embd` (kept F32, as llama.cpp does), `ln_f` →
//!   `output_norm`, `h.N.ln_1` → `attn_norm`, `attn.c_attn` → `attn_qkv`, `attn.c_proj` →
//!   `attn_output`, `ln_2` → `ffn_norm`, `mlp.c_fc` → `ffn_up`, `mlp.c_proj` → `ffn_down`;
//!   `lm_head` → `output`.
//! - The head is tied to `wte` unless `tie_word_embeddings` is false (transformers' default is
//!   true); llama.cpp then reuses `token_embd` and we write no `output.weight`.
//! - Buffers `attn.bias` / `attn.masked_bias` (causal masks) are skipped; old checkpoints lack the
//!   `transformer.` prefix.
//!
//! Legacy layout (llm-rs `convert/models/gpt2.py`): `model/wte`, `model/wpe`, per block
//! `model/h{i}/ln_1/g|b`, `attn/c_attn/w|b`, `attn/c_proj/w|b`, `ln_2/g|b`, `mlp/c_fc/w|b`,
//! `mlp/c_proj/w|b`, then `model/ln_f/g|b` and `model/lm_head` (the embeddings again when tied);
//! the same transposes.

use super::config::HfConfig;
use super::plan::{blk, ArchPlan, Keys, Relabel};
use super::tensor::{TensorPlan, Transform};
use crate::error::Result;
use crate::Architecture;

pub(super) fn plan(cfg: &HfConfig) -> Result<ArchPlan> {
    let n_vocab = cfg.usize(&["vocab_size"])?;
    let n_ctx = cfg.usize(&["n_positions", "n_ctx", "max_position_embeddings"])?;
    let n_embd = cfg.usize(&["n_embd", "hidden_size"])?;
    let n_layer = cfg.usize(&["n_layer", "num_hidden_layers"])?;
    let n_head = cfg.usize(&["n_head", "num_attention_heads"])?;
    let n_ff = cfg.opt_usize(&["n_inner"])?.unwrap_or(4 * n_embd);
    let eps = cfg.opt_f64(&["layer_norm_epsilon"])?.unwrap_or(1e-5);
    let tied = cfg.tied_embeddings(true)?;

    let mut k = Keys::new(Architecture::Gpt2);
    k.u32("context_length", n_ctx)?;
    k.u32("embedding_length", n_embd)?;
    k.u32("feed_forward_length", n_ff)?;
    k.u32("block_count", n_layer)?;
    k.u32("attention.head_count", n_head)?;
    k.f32("attention.layer_norm_epsilon", eps);

    let mut t = vec![
        TensorPlan::copy(
            "token_embd.weight",
            "transformer.wte.weight",
            &[n_vocab, n_embd],
        ),
        TensorPlan::copy(
            "position_embd.weight",
            "transformer.wpe.weight",
            &[n_ctx, n_embd],
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
    for i in 0..n_layer {
        let h = |s: &str| format!("transformer.h.{i}.{s}");
        let tr = Transform::Transpose;
        t.extend([
            TensorPlan::copy(blk(i, "attn_norm.weight"), h("ln_1.weight"), &[n_embd]),
            TensorPlan::copy(blk(i, "attn_norm.bias"), h("ln_1.bias"), &[n_embd]),
            TensorPlan::with(
                blk(i, "attn_qkv.weight"),
                h("attn.c_attn.weight"),
                &[n_embd, 3 * n_embd],
                tr,
            ),
            TensorPlan::copy(
                blk(i, "attn_qkv.bias"),
                h("attn.c_attn.bias"),
                &[3 * n_embd],
            ),
            TensorPlan::with(
                blk(i, "attn_output.weight"),
                h("attn.c_proj.weight"),
                &[n_embd, n_embd],
                tr,
            ),
            TensorPlan::copy(blk(i, "attn_output.bias"), h("attn.c_proj.bias"), &[n_embd]),
            TensorPlan::copy(blk(i, "ffn_norm.weight"), h("ln_2.weight"), &[n_embd]),
            TensorPlan::copy(blk(i, "ffn_norm.bias"), h("ln_2.bias"), &[n_embd]),
            TensorPlan::with(
                blk(i, "ffn_down.weight"),
                h("mlp.c_proj.weight"),
                &[n_ff, n_embd],
                tr,
            ),
            TensorPlan::copy(blk(i, "ffn_down.bias"), h("mlp.c_proj.bias"), &[n_embd]),
            TensorPlan::with(
                blk(i, "ffn_up.weight"),
                h("mlp.c_fc.weight"),
                &[n_embd, n_ff],
                tr,
            ),
            TensorPlan::copy(blk(i, "ffn_up.bias"), h("mlp.c_fc.bias"), &[n_ff]),
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
    r.take("token_embd.weight", "model/wte");
    r.take("position_embd.weight", "model/wpe");
    for i in 0..n_layer {
        for (g, l) in [
            ("attn_norm.weight", "ln_1/g"),
            ("attn_norm.bias", "ln_1/b"),
            ("attn_qkv.weight", "attn/c_attn/w"),
            ("attn_qkv.bias", "attn/c_attn/b"),
            ("attn_output.weight", "attn/c_proj/w"),
            ("attn_output.bias", "attn/c_proj/b"),
            ("ffn_norm.weight", "ln_2/g"),
            ("ffn_norm.bias", "ln_2/b"),
            ("ffn_up.weight", "mlp/c_fc/w"),
            ("ffn_up.bias", "mlp/c_fc/b"),
            ("ffn_down.weight", "mlp/c_proj/w"),
            ("ffn_down.bias", "mlp/c_proj/b"),
        ] {
            r.take(&blk(i, g), format!("model/h{i}/{l}"));
        }
    }
    r.take("output_norm.weight", "model/ln_f/g");
    r.take("output_norm.bias", "model/ln_f/b");
    r.head("model/lm_head");
    r.finish()
}
