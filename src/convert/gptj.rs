//! GPT-J (`GPTJForCausalLM`) → `gptj` (gguf-py's names; llama.cpp has no GPT-J converter).
//!
//! Facts relied on (gguf-py `constants.py` MODEL_ARCH.GPTJ and its tensor list; transformers
//! `modeling_gptj.py`):
//! - Keys: `context_length` = `n_positions`, `embedding_length` = `n_embd`, `feed_forward_length`
//!   = `n_inner` or 4·`n_embd`, `block_count` = `n_layer`, `attention.head_count` = `n_head`,
//!   `rope.dimension_count` = `rotary_dim` (the whole head when null),
//!   `attention.layer_norm_epsilon` = `layer_norm_epsilon`.
//! - One LayerNorm per block (`ln_1`) feeds attention and MLP in parallel; no `ffn_norm`.
//! - Separate `q_proj`/`k_proj`/`v_proj`/`out_proj` without biases; `mlp.fc_in`/`fc_out` with
//!   biases. GPT-J's rotary rotates adjacent pairs (`rotate_every_two`), which is ggml's normal
//!   rope mode, so Q/K rows are copied unpermuted.
//! - Names (gguf-py): `wte` → `token_embd`, `ln_f` → `output_norm`, `lm_head` → `output` (its bias
//!   → `output.bias`), `ln_1` → `attn_norm`, `q/k/v_proj` → `attn_q/k/v`, `out_proj` →
//!   `attn_output`, `fc_in` → `ffn_up`, `fc_out` → `ffn_down`.
//! - transformers' default is an untied head; when tied, `output.weight` is not written (the bias
//!   still is). Buffers `attn.bias` / `attn.masked_bias` are skipped.
//!
//! Legacy layout (llm-rs `convert/models/gptj.py`): transformers' own names in `state_dict` order —
//! `transformer.wte.weight`, per block `ln_1`, `attn.k_proj`, `attn.v_proj`, `attn.q_proj`,
//! `attn.out_proj`, `mlp.fc_in`, `mlp.fc_out`, then `transformer.ln_f`, `lm_head.weight` (the
//! embeddings again when tied) and `lm_head.bias`; no transforms.

use super::config::HfConfig;
use super::plan::{blk, inconsistent, ArchPlan, Keys, Relabel};
use super::tensor::TensorPlan;
use crate::error::Result;
use crate::Architecture;

pub(super) fn plan(cfg: &HfConfig) -> Result<ArchPlan> {
    let n_vocab = cfg.usize(&["vocab_size"])?;
    let n_ctx = cfg.usize(&["n_positions", "max_position_embeddings"])?;
    let n_embd = cfg.usize(&["n_embd", "hidden_size"])?;
    let n_layer = cfg.usize(&["n_layer", "num_hidden_layers"])?;
    let n_head = cfg.usize(&["n_head", "num_attention_heads"])?;
    let n_ff = cfg.opt_usize(&["n_inner"])?.unwrap_or(4 * n_embd);
    let eps = cfg.opt_f64(&["layer_norm_epsilon"])?.unwrap_or(1e-5);
    let tied = cfg.tied_embeddings(false)?;
    if n_embd % n_head != 0 {
        return Err(inconsistent(
            cfg,
            format!("n_embd {n_embd} is not a multiple of n_head {n_head}"),
        ));
    }
    let head_dim = n_embd / n_head;
    let rot = cfg.opt_usize(&["rotary_dim"])?.unwrap_or(head_dim);
    if rot > head_dim || rot % 2 != 0 {
        return Err(inconsistent(
            cfg,
            format!("rotary_dim {rot} must be even and at most the head size {head_dim}"),
        ));
    }

    let mut k = Keys::new(Architecture::GptJ);
    k.u32("context_length", n_ctx)?;
    k.u32("embedding_length", n_embd)?;
    k.u32("feed_forward_length", n_ff)?;
    k.u32("block_count", n_layer)?;
    k.u32("attention.head_count", n_head)?;
    k.u32("rope.dimension_count", rot)?;
    k.f32("attention.layer_norm_epsilon", eps);

    let mut t = vec![
        TensorPlan::copy(
            "token_embd.weight",
            "transformer.wte.weight",
            &[n_vocab, n_embd],
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
    t.push(TensorPlan::copy("output.bias", "lm_head.bias", &[n_vocab]));
    for i in 0..n_layer {
        let h = |s: &str| format!("transformer.h.{i}.{s}");
        t.extend([
            TensorPlan::copy(blk(i, "attn_norm.weight"), h("ln_1.weight"), &[n_embd]),
            TensorPlan::copy(blk(i, "attn_norm.bias"), h("ln_1.bias"), &[n_embd]),
            TensorPlan::copy(
                blk(i, "attn_q.weight"),
                h("attn.q_proj.weight"),
                &[n_embd, n_embd],
            ),
            TensorPlan::copy(
                blk(i, "attn_k.weight"),
                h("attn.k_proj.weight"),
                &[n_embd, n_embd],
            ),
            TensorPlan::copy(
                blk(i, "attn_v.weight"),
                h("attn.v_proj.weight"),
                &[n_embd, n_embd],
            ),
            TensorPlan::copy(
                blk(i, "attn_output.weight"),
                h("attn.out_proj.weight"),
                &[n_embd, n_embd],
            ),
            TensorPlan::copy(
                blk(i, "ffn_down.weight"),
                h("mlp.fc_out.weight"),
                &[n_embd, n_ff],
            ),
            TensorPlan::copy(blk(i, "ffn_down.bias"), h("mlp.fc_out.bias"), &[n_embd]),
            TensorPlan::copy(
                blk(i, "ffn_up.weight"),
                h("mlp.fc_in.weight"),
                &[n_ff, n_embd],
            ),
            TensorPlan::copy(blk(i, "ffn_up.bias"), h("mlp.fc_in.bias"), &[n_ff]),
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
pub(super) fn legacy(plan: &ArchPlan, n_layer: usize) -> ArchPlan {
    let mut r = Relabel::new(plan);
    r.take("token_embd.weight", "transformer.wte.weight");
    for i in 0..n_layer {
        for (g, l) in [
            ("attn_norm.weight", "ln_1.weight"),
            ("attn_norm.bias", "ln_1.bias"),
            ("attn_k.weight", "attn.k_proj.weight"),
            ("attn_v.weight", "attn.v_proj.weight"),
            ("attn_q.weight", "attn.q_proj.weight"),
            ("attn_output.weight", "attn.out_proj.weight"),
            ("ffn_up.weight", "mlp.fc_in.weight"),
            ("ffn_up.bias", "mlp.fc_in.bias"),
            ("ffn_down.weight", "mlp.fc_out.weight"),
            ("ffn_down.bias", "mlp.fc_out.bias"),
        ] {
            r.take(&blk(i, g), format!("transformer.h.{i}.{l}"));
        }
    }
    r.take("output_norm.weight", "transformer.ln_f.weight");
    r.take("output_norm.bias", "transformer.ln_f.bias");
    r.head("lm_head.weight");
    r.take("output.bias", "lm_head.bias");
    r.finish()
}
