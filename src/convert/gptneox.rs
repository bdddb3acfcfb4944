//! GPT-NeoX (`GPTNeoXForCausalLM`, Pythia) → llama.cpp's `gptneox`.
//!
//! Facts relied on (llama.cpp `conversion/gptneox.py`, `src/models/gptneox.cpp`; transformers
//! `configuration_gpt_neox.py`, `modeling_gpt_neox.py`):
//! - Keys: `context_length` = `max_position_embeddings`, `embedding_length` = `hidden_size`,
//!   `block_count`, `feed_forward_length` = `intermediate_size`, `attention.head_count`,
//!   `rope.dimension_count` = int(`rotary_pct` · head size), `use_parallel_residual` (default
//!   true), `attention.layer_norm_epsilon` = `layer_norm_eps`. transformers 5 moved `rotary_pct`
//!   and `rotary_emb_base` into `rope_parameters` (`partial_rotary_factor`, `rope_theta`); both
//!   places are read (default 0.25 and 10000, transformers' defaults). We also write
//!   `rope.freq_base`, which llama.cpp's loader reads for every architecture but its GPT-NeoX
//!   converter omits.
//! - The fused `query_key_value` is stored per head as `[q_h; k_h; v_h]`; llama.cpp wants
//!   `[all q; all k; all v]`: rows reordered via `reshape(n_head, 3, head_dim, n_embd)` with the
//!   first two axes swapped — for the weight and the bias.
//! - Names: `gpt_neox.embed_in` → `token_embd`, `final_layer_norm` → `output_norm`, `embed_out` →
//!   `output`, `input_layernorm` → `attn_norm`, `attention.query_key_value` → `attn_qkv`,
//!   `attention.dense` → `attn_output`, `post_attention_layernorm` → `ffn_norm`,
//!   `mlp.dense_h_to_4h` → `ffn_up`, `mlp.dense_4h_to_h` → `ffn_down`.
//! - llama.cpp requires `output.weight` for gptneox: with `tie_word_embeddings` (default false)
//!   the checkpoint has no `embed_out`, and we write the token embedding again as `output.weight`.
//! - `attention_bias` (default true) says whether `query_key_value` and `dense` have biases.
//! - Buffers `attention.bias`, `attention.masked_bias`, `rotary_emb.inv_freq` are skipped.
//!
//! Legacy layout (llm-rs `convert/models/gptneox.py`): transformers' names in `state_dict` order —
//! `gpt_neox.embed_in.weight`, per block `input_layernorm`, `post_attention_layernorm`,
//! `attention.query_key_value`, `attention.dense`, `mlp.dense_h_to_4h`, `mlp.dense_4h_to_h`, then
//! `gpt_neox.final_layer_norm` and `embed_out.weight` — with the fused QKV **not** reordered (llm's
//! GPT-NeoX splits it per head). Refused: a RoPE base other than 10000 and attention without biases
//! (no field or tensor for them).

use super::config::HfConfig;
use super::plan::{blk, inconsistent, legacy_refusal, ArchPlan, Keys, Relabel};
use super::tensor::{TensorPlan, Transform};
use crate::error::Result;
use crate::format::Value;
use crate::Architecture;

pub(super) fn plan(cfg: &HfConfig) -> Result<ArchPlan> {
    let n_vocab = cfg.usize(&["vocab_size"])?;
    let n_ctx = cfg.usize(&["max_position_embeddings"])?;
    let n_embd = cfg.usize(&["hidden_size"])?;
    let n_layer = cfg.usize(&["num_hidden_layers"])?;
    let n_head = cfg.usize(&["num_attention_heads"])?;
    let n_ff = cfg.usize(&["intermediate_size"])?;
    let eps = cfg.opt_f64(&["layer_norm_eps"])?.unwrap_or(1e-5);
    let parallel = cfg.opt_bool(&["use_parallel_residual"])?.unwrap_or(true);
    let bias = cfg.opt_bool(&["attention_bias"])?.unwrap_or(true);
    let tied = cfg.tied_embeddings(false)?;
    if n_embd % n_head != 0 {
        return Err(inconsistent(
            cfg,
            format!("hidden_size {n_embd} is not a multiple of num_attention_heads {n_head}"),
        ));
    }
    let head_dim = n_embd / n_head;
    let rope = cfg.rope()?;
    let pct = match cfg.opt_f64(&["rotary_pct"])? {
        Some(p) => p,
        None => rope.partial_rotary_factor.unwrap_or(0.25),
    };
    let n_rot = (pct * head_dim as f64) as usize;
    if !(0.0..=1.0).contains(&pct) || !n_rot.is_multiple_of(2) {
        return Err(inconsistent(cfg, format!("rotary fraction {pct} of head size {head_dim} gives {n_rot} rotary dimensions; they must be even and at most the head size")));
    }

    let mut k = Keys::new(Architecture::GptNeoX);
    k.u32("context_length", n_ctx)?;
    k.u32("embedding_length", n_embd)?;
    k.u32("block_count", n_layer)?;
    k.u32("feed_forward_length", n_ff)?;
    k.u32("rope.dimension_count", n_rot)?;
    k.u32("attention.head_count", n_head)?;
    k.bool("use_parallel_residual", parallel);
    k.f32("attention.layer_norm_epsilon", eps);
    k.f32("rope.freq_base", rope.theta.unwrap_or(10000.0));

    let mut t = vec![
        TensorPlan::copy(
            "token_embd.weight",
            "gpt_neox.embed_in.weight",
            &[n_vocab, n_embd],
        ),
        TensorPlan::copy(
            "output_norm.weight",
            "gpt_neox.final_layer_norm.weight",
            &[n_embd],
        ),
        TensorPlan::copy(
            "output_norm.bias",
            "gpt_neox.final_layer_norm.bias",
            &[n_embd],
        ),
    ];
    let mut ignored = Vec::new();
    if tied {
        ignored.push("embed_out.weight".to_string());
        t.push(TensorPlan::copy(
            "output.weight",
            "gpt_neox.embed_in.weight",
            &[n_vocab, n_embd],
        ));
    } else {
        t.push(TensorPlan::copy(
            "output.weight",
            "embed_out.weight",
            &[n_vocab, n_embd],
        ));
    }
    let qkv = Transform::QkvHeadsToBlocks { n_head };
    for i in 0..n_layer {
        let h = |s: &str| format!("gpt_neox.layers.{i}.{s}");
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
                h("attention.query_key_value.weight"),
                &[3 * n_embd, n_embd],
                qkv,
            ),
        ]);
        if bias {
            t.push(TensorPlan::with(
                blk(i, "attn_qkv.bias"),
                h("attention.query_key_value.bias"),
                &[3 * n_embd],
                qkv,
            ));
        }
        t.push(TensorPlan::copy(
            blk(i, "attn_output.weight"),
            h("attention.dense.weight"),
            &[n_embd, n_embd],
        ));
        if bias {
            t.push(TensorPlan::copy(
                blk(i, "attn_output.bias"),
                h("attention.dense.bias"),
                &[n_embd],
            ));
        }
        t.extend([
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
        optional_prefix: None,
        vocab_size: n_vocab,
    })
}

/// The llm-rs tensor list (see the module documentation).
pub(super) fn legacy(plan: &ArchPlan, n_layer: usize) -> Result<ArchPlan> {
    let arch = Architecture::GptNeoX;
    let key = |k: &str| plan.keys.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    if let Some(theta) = key("gptneox.rope.freq_base").and_then(Value::as_f64) {
        if theta != 10000.0 {
            return Err(legacy_refusal(
                arch,
                format!("a RoPE base of {theta} (llm assumes 10000)"),
            ));
        }
    }
    if !plan.tensors.iter().any(|t| t.name == "blk.0.attn_qkv.bias") {
        return Err(legacy_refusal(
            arch,
            "attention without biases (`attention_bias: false`)",
        ));
    }
    let mut r = Relabel::new(plan);
    r.take("token_embd.weight", "gpt_neox.embed_in.weight");
    for i in 0..n_layer {
        let l = |s: &str| format!("gpt_neox.layers.{i}.{s}");
        r.take(&blk(i, "attn_norm.weight"), l("input_layernorm.weight"));
        r.take(&blk(i, "attn_norm.bias"), l("input_layernorm.bias"));
        r.take(
            &blk(i, "ffn_norm.weight"),
            l("post_attention_layernorm.weight"),
        );
        r.take(&blk(i, "ffn_norm.bias"), l("post_attention_layernorm.bias"));
        r.take_untransformed(
            &blk(i, "attn_qkv.weight"),
            l("attention.query_key_value.weight"),
        );
        r.take_untransformed(
            &blk(i, "attn_qkv.bias"),
            l("attention.query_key_value.bias"),
        );
        r.take(&blk(i, "attn_output.weight"), l("attention.dense.weight"));
        r.take(&blk(i, "attn_output.bias"), l("attention.dense.bias"));
        r.take(&blk(i, "ffn_up.weight"), l("mlp.dense_h_to_4h.weight"));
        r.take(&blk(i, "ffn_up.bias"), l("mlp.dense_h_to_4h.bias"));
        r.take(&blk(i, "ffn_down.weight"), l("mlp.dense_4h_to_h.weight"));
        r.take(&blk(i, "ffn_down.bias"), l("mlp.dense_4h_to_h.bias"));
    }
    r.take("output_norm.weight", "gpt_neox.final_layer_norm.weight");
    r.take("output_norm.bias", "gpt_neox.final_layer_norm.bias");
    r.take("output.weight", "embed_out.weight");
    Ok(r.finish())
}
