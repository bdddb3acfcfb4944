//! LLaMA (`LlamaForCausalLM`, `LLaMAForCausalLM`, `MistralForCausalLM`) → llama.cpp's `llama`.
//!
//! Facts relied on (llama.cpp `conversion/llama.py` and `TextModel.set_gguf_parameters` in
//! `conversion/base.py`, `src/models/llama.cpp`, `src/llama-model.cpp`; transformers
//! `configuration_llama.py`, `modeling_llama.py`):
//! - Keys: `block_count`, `context_length` = `max_position_embeddings`, `embedding_length` =
//!   `hidden_size`, `feed_forward_length` = `intermediate_size`, `attention.head_count`,
//!   `attention.head_count_kv` = `num_key_value_heads` (default: `num_attention_heads`),
//!   `rope.freq_base` = `rope_theta` (transformers 5 keeps it in `rope_parameters`, earlier versions
//!   at the top level; default 10000), `attention.layer_norm_rms_epsilon` = `rms_norm_eps`,
//!   `attention.key_length`/`value_length` = the head size (llama.cpp writes config's `head_dim`,
//!   which transformers 5 always provides), `vocab_size`,
//!   `rope.dimension_count` = `head_dim` or `hidden_size / num_attention_heads`.
//! - RoPE scaling (`rope_parameters` or `rope_scaling`): `linear` → `rope.scaling.type = "linear"`
//!   and `rope.scaling.factor`; `yarn` → type, factor, `rope.scaling.original_context_length` and
//!   the optional `yarn_ext_factor`, `yarn_attn_factor`, `yarn_beta_fast`, `yarn_beta_slow`;
//!   `llama3` → a generated `rope_freqs.weight` tensor of per-frequency factors (llama.cpp's
//!   `generate_extra_tensors` formula). Other types are refused.
//! - Q and K rows are permuted for ggml's rope (HF rotates halves, ggml adjacent pairs):
//!   `reshape(n_head, 2, head_dim / 2, hidden) → swap axes 1, 2 → reshape back` with `n_head` for
//!   `q_proj` and `num_key_value_heads` for `k_proj` — weights and (with `attention_bias`) biases.
//! - Names: `model.embed_tokens` → `token_embd`, `model.norm` → `output_norm`, `lm_head` →
//!   `output`, `input_layernorm` → `attn_norm`, `self_attn.q/k/v/o_proj` → `attn_q/k/v`,
//!   `attn_output`, `post_attention_layernorm` → `ffn_norm`, `mlp.gate/up/down_proj` →
//!   `ffn_gate/up/down`; biases with `attention_bias` / `mlp_bias`.
//! - With `tie_word_embeddings` (default false) the checkpoint has no `lm_head.weight` and llama.cpp
//!   reuses `token_embd`: no `output.weight`. `rotary_emb.inv_freq` buffers are skipped.
//!
//! Legacy layout (llm-rs `convert/models/llama.py`, GGJT): `tok_embeddings.weight`, per block
//! `layers.{i}.attention.wq|wk|wv|wo`, `feed_forward.w1` (gate), `w3` (up), `w2` (down),
//! `attention_norm`, `ffn_norm`, then `norm.weight` and `output.weight` (the embeddings again when
//! tied); Q/K permuted as above. Refused here: biases, a head size other than
//! `hidden_size / num_attention_heads`, LLaMA 3 rope factors; and by the legacy writer:
//! grouped-query attention, a RoPE base other than 10000, RoPE scaling, a feed-forward width that
//! no `n_mult` produces.

use super::config::HfConfig;
use super::plan::{blk, inconsistent, legacy_refusal, ArchPlan, Keys, Relabel};
use super::tensor::{Source, TensorPlan, Transform};
use crate::error::{Error, Result};
use crate::Architecture;

pub(super) fn plan(cfg: &HfConfig) -> Result<ArchPlan> {
    let n_vocab = cfg.usize(&["vocab_size"])?;
    let n_ctx = cfg.usize(&["max_position_embeddings"])?;
    let n_embd = cfg.usize(&["hidden_size"])?;
    let n_layer = cfg.usize(&["num_hidden_layers"])?;
    let n_head = cfg.usize(&["num_attention_heads"])?;
    let n_head_kv = cfg.opt_usize(&["num_key_value_heads"])?.unwrap_or(n_head);
    let n_ff = cfg.usize(&["intermediate_size"])?;
    let eps = cfg.opt_f64(&["rms_norm_eps"])?.unwrap_or(1e-6);
    let tied = cfg.tied_embeddings(false)?;
    let attn_bias = cfg.opt_bool(&["attention_bias"])?.unwrap_or(false);
    let mlp_bias = cfg.opt_bool(&["mlp_bias"])?.unwrap_or(false);
    let explicit_head_dim = cfg.opt_usize(&["head_dim"])?;
    if explicit_head_dim.is_none() && n_embd % n_head != 0 {
        return Err(inconsistent(
            cfg,
            format!("hidden_size {n_embd} is not a multiple of num_attention_heads {n_head}"),
        ));
    }
    let head_dim = explicit_head_dim.unwrap_or(n_embd / n_head);
    if n_head_kv == 0 || n_head % n_head_kv != 0 {
        return Err(inconsistent(
            cfg,
            format!(
                "num_attention_heads {n_head} is not a multiple of num_key_value_heads {n_head_kv}"
            ),
        ));
    }
    if head_dim % 2 != 0 {
        return Err(inconsistent(
            cfg,
            format!("the head size {head_dim} must be even for rotary embeddings"),
        ));
    }
    let q_dim = n_head * head_dim;
    let kv_dim = n_head_kv * head_dim;
    let rope = cfg.rope()?;

    let mut k = Keys::new(Architecture::Llama);
    k.u32("block_count", n_layer)?;
    k.u32("context_length", n_ctx)?;
    k.u32("embedding_length", n_embd)?;
    k.u32("feed_forward_length", n_ff)?;
    k.u32("attention.head_count", n_head)?;
    k.u32("attention.head_count_kv", n_head_kv)?;
    let mut rope_freqs = None;
    match (rope.rope_type.as_deref(), rope.factor) {
        (None | Some("default"), _) => {}
        (Some("linear"), Some(f)) => {
            k.str("rope.scaling.type", "linear");
            k.f32("rope.scaling.factor", f);
        }
        (Some("yarn"), Some(f)) => {
            let orig = rope.original_max_position_embeddings.ok_or_else(|| {
                inconsistent(cfg, "yarn rope scaling needs `original_max_position_embeddings`")
            })?;
            k.str("rope.scaling.type", "yarn");
            k.f32("rope.scaling.factor", f);
            k.u32("rope.scaling.original_context_length", orig as usize)?;
            for (key, v) in [
                ("rope.scaling.yarn_ext_factor", rope.extrapolation_factor),
                ("rope.scaling.yarn_attn_factor", rope.attention_factor),
                ("rope.scaling.yarn_beta_fast", rope.beta_fast),
                ("rope.scaling.yarn_beta_slow", rope.beta_slow),
            ] {
                if let Some(v) = v {
                    k.f32(key, v);
                }
            }
        }
        (Some(t), _) if t.eq_ignore_ascii_case("llama3") => {
            rope_freqs = Some(llama3_rope_factors(
                rope.theta.unwrap_or(10000.0),
                head_dim,
                rope.factor.unwrap_or(8.0),
                rope.low_freq_factor.unwrap_or(1.0),
                rope.high_freq_factor.unwrap_or(4.0),
                rope.original_max_position_embeddings.unwrap_or(8192.0),
            ));
        }
        (Some(t), _) => {
            return Err(Error::unsupported(format!(
                "{}: rope scaling type {t:?} is not supported (supported: default, linear, yarn, llama3; linear and yarn need a `factor`)",
                cfg.path().display()
            )))
        }
    }
    k.f32("rope.freq_base", rope.theta.unwrap_or(10000.0));
    k.f32("attention.layer_norm_rms_epsilon", eps);
    k.u32("attention.key_length", head_dim)?;
    k.u32("attention.value_length", head_dim)?;
    k.u32("vocab_size", n_vocab)?;
    k.u32("rope.dimension_count", head_dim)?;

    let mut t = vec![
        TensorPlan::copy(
            "token_embd.weight",
            "model.embed_tokens.weight",
            &[n_vocab, n_embd],
        ),
        TensorPlan::copy("output_norm.weight", "model.norm.weight", &[n_embd]),
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
    if let Some(values) = rope_freqs {
        t.push(TensorPlan {
            name: "rope_freqs.weight".into(),
            source: Source::Generated {
                shape: vec![values.len()],
                values,
            },
        });
    }
    let q_perm = Transform::RopePermute { n_head };
    let k_perm = Transform::RopePermute { n_head: n_head_kv };
    for i in 0..n_layer {
        let h = |s: &str| format!("model.layers.{i}.{s}");
        t.push(TensorPlan::copy(
            blk(i, "attn_norm.weight"),
            h("input_layernorm.weight"),
            &[n_embd],
        ));
        t.push(TensorPlan::with(
            blk(i, "attn_q.weight"),
            h("self_attn.q_proj.weight"),
            &[q_dim, n_embd],
            q_perm,
        ));
        t.push(TensorPlan::with(
            blk(i, "attn_k.weight"),
            h("self_attn.k_proj.weight"),
            &[kv_dim, n_embd],
            k_perm,
        ));
        t.push(TensorPlan::copy(
            blk(i, "attn_v.weight"),
            h("self_attn.v_proj.weight"),
            &[kv_dim, n_embd],
        ));
        if attn_bias {
            t.push(TensorPlan::with(
                blk(i, "attn_q.bias"),
                h("self_attn.q_proj.bias"),
                &[q_dim],
                q_perm,
            ));
            t.push(TensorPlan::with(
                blk(i, "attn_k.bias"),
                h("self_attn.k_proj.bias"),
                &[kv_dim],
                k_perm,
            ));
            t.push(TensorPlan::copy(
                blk(i, "attn_v.bias"),
                h("self_attn.v_proj.bias"),
                &[kv_dim],
            ));
        }
        t.push(TensorPlan::copy(
            blk(i, "attn_output.weight"),
            h("self_attn.o_proj.weight"),
            &[n_embd, q_dim],
        ));
        if attn_bias {
            t.push(TensorPlan::copy(
                blk(i, "attn_output.bias"),
                h("self_attn.o_proj.bias"),
                &[n_embd],
            ));
        }
        t.push(TensorPlan::copy(
            blk(i, "ffn_norm.weight"),
            h("post_attention_layernorm.weight"),
            &[n_embd],
        ));
        t.push(TensorPlan::copy(
            blk(i, "ffn_gate.weight"),
            h("mlp.gate_proj.weight"),
            &[n_ff, n_embd],
        ));
        t.push(TensorPlan::copy(
            blk(i, "ffn_down.weight"),
            h("mlp.down_proj.weight"),
            &[n_embd, n_ff],
        ));
        t.push(TensorPlan::copy(
            blk(i, "ffn_up.weight"),
            h("mlp.up_proj.weight"),
            &[n_ff, n_embd],
        ));
        if mlp_bias {
            t.push(TensorPlan::copy(
                blk(i, "ffn_gate.bias"),
                h("mlp.gate_proj.bias"),
                &[n_ff],
            ));
            t.push(TensorPlan::copy(
                blk(i, "ffn_down.bias"),
                h("mlp.down_proj.bias"),
                &[n_embd],
            ));
            t.push(TensorPlan::copy(
                blk(i, "ffn_up.bias"),
                h("mlp.up_proj.bias"),
                &[n_ff],
            ));
        }
    }
    Ok(ArchPlan {
        keys: k.entries,
        tensors: t,
        ignored,
        optional_prefix: None,
        vocab_size: n_vocab,
    })
}

/// LLaMA 3's per-frequency rope factors (llama.cpp's `generate_extra_tensors`, in f32 as torch
/// computes the frequencies).
fn llama3_rope_factors(
    base: f64,
    dim: usize,
    factor: f64,
    low_freq_factor: f64,
    high_freq_factor: f64,
    old_context_len: f64,
) -> Vec<f32> {
    let low_freq_wavelen = old_context_len / low_freq_factor;
    let high_freq_wavelen = old_context_len / high_freq_factor;
    (0..dim)
        .step_by(2)
        .map(|i| {
            let freq = 1.0f32 / (base as f32).powf(i as f32 / dim as f32);
            let wavelen = (2.0 * std::f64::consts::PI) as f32 / freq;
            let wavelen = f64::from(wavelen);
            if wavelen < high_freq_wavelen {
                1.0
            } else if wavelen > low_freq_wavelen {
                factor as f32
            } else {
                let smooth = (old_context_len / wavelen - low_freq_factor)
                    / (high_freq_factor - low_freq_factor);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

/// The llm-rs tensor list (see the module documentation).
pub(super) fn legacy(plan: &ArchPlan, cfg: &HfConfig) -> Result<ArchPlan> {
    let arch = Architecture::Llama;
    let n_layer = cfg.usize(&["num_hidden_layers"])?;
    let n_embd = cfg.usize(&["hidden_size"])?;
    let n_head = cfg.usize(&["num_attention_heads"])?;
    if let Some(hd) = cfg.opt_usize(&["head_dim"])? {
        if hd * n_head != n_embd {
            return Err(legacy_refusal(
                arch,
                format!("a head size of {hd} with {n_head} heads and hidden size {n_embd}"),
            ));
        }
    }
    if let Some(b) = plan.tensors.iter().find(|t| t.name.ends_with(".bias")) {
        return Err(legacy_refusal(arch, format!("biases ({})", b.name)));
    }
    if plan.tensors.iter().any(|t| t.name == "rope_freqs.weight") {
        return Err(legacy_refusal(
            arch,
            "LLaMA 3 RoPE scaling (`rope_type: llama3`)",
        ));
    }
    let mut r = Relabel::new(plan);
    r.take("token_embd.weight", "tok_embeddings.weight");
    for i in 0..n_layer {
        for (g, l) in [
            ("attn_q.weight", "attention.wq.weight"),
            ("attn_k.weight", "attention.wk.weight"),
            ("attn_v.weight", "attention.wv.weight"),
            ("attn_output.weight", "attention.wo.weight"),
            ("ffn_gate.weight", "feed_forward.w1.weight"),
            ("ffn_up.weight", "feed_forward.w3.weight"),
            ("ffn_down.weight", "feed_forward.w2.weight"),
            ("attn_norm.weight", "attention_norm.weight"),
            ("ffn_norm.weight", "ffn_norm.weight"),
        ] {
            r.take(&blk(i, g), format!("layers.{i}.{l}"));
        }
    }
    r.take("output_norm.weight", "norm.weight");
    r.head("output.weight");
    Ok(r.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_factors_match_llama_cpp() {
        // llama.cpp's `generate_extra_tensors` run in torch (base 500000, head size 16, factor 8,
        // low 1, high 4, original context 8192): every branch of the formula.
        let want = [1.0, 1.0, 1.0, 1.0, 2.6945300102233887, 8.0, 8.0, 8.0];
        let got = llama3_rope_factors(500000.0, 16, 8.0, 1.0, 4.0, 8192.0);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w as f32).abs() <= 1e-6 * w as f32, "{got:?}");
        }
    }
}
