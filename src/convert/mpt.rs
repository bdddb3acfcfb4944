//! MPT (`MPTForCausalLM` of MosaicML's remote code, `MptForCausalLM` of transformers) → llama.cpp's
//! `mpt`.
//!
//! Facts relied on (llama.cpp `conversion/mpt.py`, `src/models/mpt.cpp`; transformers
//! `configuration_mpt.py`, `modeling_mpt.py`):
//! - Keys: `context_length` = `max_seq_len`, `embedding_length` = `d_model`, `block_count` =
//!   `n_layers`, `feed_forward_length` = 4·`d_model` (llama.cpp and transformers both ignore
//!   `expansion_ratio`), `attention.head_count` = `n_heads`, `attention.head_count_kv` =
//!   `attn_config.kv_n_heads` when set, `attention.layer_norm_epsilon` = `layer_norm_epsilon`
//!   (llama.cpp writes a fixed 1e-5, transformers' default), `attention.clamp_kqv` =
//!   `attn_config.clip_qkv` when set, `attention.max_alibi_bias` = `attn_config.alibi_bias_max`
//!   (0 without ALiBi).
//! - `attn.Wqkv` projects to `[q | k | v]` (`chunk(3)`), already llama.cpp's fused layout.
//! - Names: `transformer.wte` → `token_embd`, `norm_f` → `output_norm`, `blocks.N.norm_1` →
//!   `attn_norm`, `attn.Wqkv` → `attn_qkv`, `attn.out_proj` → `attn_output`, `norm_2` →
//!   `ffn_norm`, `ffn.up_proj` → `ffn_up`, `ffn.down_proj` → `ffn_down`, `lm_head` → `output`.
//! - `no_bias` (default true): no linear or norm biases; with `no_bias: false` all of them exist
//!   (llama.cpp loads each as optional).
//! - The head is tied unless `tie_word_embeddings` is false (MPT's default is true); llama.cpp then
//!   reuses `token_embd` and we write no `output.weight`.
//! - Refused: MPT without ALiBi (learned positions; transformers cannot run it either),
//!   `attn_config.qk_ln`, grouped KV heads (`kv_n_heads` ≠ `n_heads`: the fused layout would differ).
//!
//! Legacy layout (llm-rs `convert/models/mpt.py`): transformers' names in `state_dict` order —
//! `transformer.wte.weight`, per block `norm_1`, `attn.Wqkv`, `attn.out_proj`, `norm_2`,
//! `ffn.up_proj`, `ffn.down_proj`, then `transformer.norm_f.weight` and `lm_head.weight` (the
//! embeddings again when tied). llm's MPT has no biases: `no_bias: false` is refused.

use super::config::HfConfig;
use super::plan::{blk, inconsistent, legacy_refusal, ArchPlan, Keys, Relabel};
use super::tensor::TensorPlan;
use crate::error::{Error, Result};
use crate::Architecture;

pub(super) fn plan(cfg: &HfConfig) -> Result<ArchPlan> {
    let n_vocab = cfg.usize(&["vocab_size"])?;
    let n_ctx = cfg.usize(&["max_seq_len"])?;
    let n_embd = cfg.usize(&["d_model"])?;
    let n_layer = cfg.usize(&["n_layers"])?;
    let n_head = cfg.usize(&["n_heads"])?;
    let n_ff = 4 * n_embd;
    let eps = cfg.opt_f64(&["layer_norm_epsilon"])?.unwrap_or(1e-5);
    let tied = cfg.tied_embeddings(true)?;
    let bias = !cfg.opt_bool(&["no_bias"])?.unwrap_or(true);
    let alibi = cfg.opt_bool(&["attn_config.alibi"])?.unwrap_or(true);
    let alibi_max = cfg.opt_f64(&["attn_config.alibi_bias_max"])?.unwrap_or(8.0);
    let clip = cfg.opt_f64(&["attn_config.clip_qkv"])?;
    let kv_heads = cfg.opt_usize(&["attn_config.kv_n_heads"])?;
    if n_embd % n_head != 0 {
        return Err(inconsistent(
            cfg,
            format!("d_model {n_embd} is not a multiple of n_heads {n_head}"),
        ));
    }
    let unsupported = |what: &str| {
        Err(Error::unsupported(format!(
            "{}: {what} is not supported for MPT",
            cfg.path().display()
        )))
    };
    if !alibi {
        return unsupported("`attn_config.alibi: false` (learned position embeddings)");
    }
    if cfg.opt_bool(&["attn_config.qk_ln"])?.unwrap_or(false) {
        return unsupported("`attn_config.qk_ln: true` (query/key LayerNorm)");
    }
    if kv_heads.is_some_and(|kv| kv != n_head) {
        return unsupported(
            "`attn_config.kv_n_heads` different from n_heads (grouped-query attention)",
        );
    }

    let mut k = Keys::new(Architecture::Mpt);
    k.u32("context_length", n_ctx)?;
    k.u32("embedding_length", n_embd)?;
    k.u32("block_count", n_layer)?;
    k.u32("feed_forward_length", n_ff)?;
    k.u32("attention.head_count", n_head)?;
    if let Some(kv) = kv_heads {
        k.u32("attention.head_count_kv", kv)?;
    }
    k.f32("attention.layer_norm_epsilon", eps);
    if let Some(c) = clip {
        k.f32("attention.clamp_kqv", c);
    }
    k.f32("attention.max_alibi_bias", alibi_max);

    let mut t = vec![
        TensorPlan::copy(
            "token_embd.weight",
            "transformer.wte.weight",
            &[n_vocab, n_embd],
        ),
        TensorPlan::copy("output_norm.weight", "transformer.norm_f.weight", &[n_embd]),
    ];
    if bias {
        t.push(TensorPlan::copy(
            "output_norm.bias",
            "transformer.norm_f.bias",
            &[n_embd],
        ));
    }
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
        let h = |s: &str| format!("transformer.blocks.{i}.{s}");
        let mut push = |name: &str, src: &str, shape: &[usize], is_bias: bool| {
            if bias || !is_bias {
                t.push(TensorPlan::copy(blk(i, name), h(src), shape));
            }
        };
        push("attn_norm.weight", "norm_1.weight", &[n_embd], false);
        push("attn_norm.bias", "norm_1.bias", &[n_embd], true);
        push(
            "attn_qkv.weight",
            "attn.Wqkv.weight",
            &[3 * n_embd, n_embd],
            false,
        );
        push("attn_qkv.bias", "attn.Wqkv.bias", &[3 * n_embd], true);
        push(
            "attn_output.weight",
            "attn.out_proj.weight",
            &[n_embd, n_embd],
            false,
        );
        push("attn_output.bias", "attn.out_proj.bias", &[n_embd], true);
        push("ffn_norm.weight", "norm_2.weight", &[n_embd], false);
        push("ffn_norm.bias", "norm_2.bias", &[n_embd], true);
        push(
            "ffn_down.weight",
            "ffn.down_proj.weight",
            &[n_embd, n_ff],
            false,
        );
        push("ffn_down.bias", "ffn.down_proj.bias", &[n_embd], true);
        push(
            "ffn_up.weight",
            "ffn.up_proj.weight",
            &[n_ff, n_embd],
            false,
        );
        push("ffn_up.bias", "ffn.up_proj.bias", &[n_ff], true);
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
    if plan.tensors.iter().any(|t| t.name.ends_with(".bias")) {
        return Err(legacy_refusal(
            Architecture::Mpt,
            "biases (`no_bias: false`)",
        ));
    }
    let mut r = Relabel::new(plan);
    r.take("token_embd.weight", "transformer.wte.weight");
    for i in 0..n_layer {
        for (g, l) in [
            ("attn_norm.weight", "norm_1.weight"),
            ("attn_qkv.weight", "attn.Wqkv.weight"),
            ("attn_output.weight", "attn.out_proj.weight"),
            ("ffn_norm.weight", "norm_2.weight"),
            ("ffn_up.weight", "ffn.up_proj.weight"),
            ("ffn_down.weight", "ffn.down_proj.weight"),
        ] {
            r.take(&blk(i, g), format!("transformer.blocks.{i}.{l}"));
        }
    }
    r.take("output_norm.weight", "transformer.norm_f.weight");
    r.head("lm_head.weight");
    Ok(r.finish())
}
