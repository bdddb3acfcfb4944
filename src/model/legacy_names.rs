//! Tensor names of the legacy files llm-rs 0.2.15 writes, mapped onto the GGUF names the decoder
//! uses, per architecture, and what else the decoder must know about those files.
//!
//! Facts from llm-rs' converters (`llm_rs/convert/models/*.py`):
//! - GPT-2 renames to the ggml example's `model/...` names (`/g`, `/b` for norms, `/w`, `/b` for
//!   linear layers) and transposes the Conv1D weights, as llama.cpp's converter does.
//! - GPT-J, GPT-NeoX and MPT keep transformers' names and layouts; GPT-NeoX's fused QKV stays
//!   interleaved per head (`[head][q,k,v][head_dim]` rows), which [`interleaved_qkv`] reports so
//!   the loader can reorder its rows into the `[q; k; v]` layout of GGUF files.
//! - LLaMA uses the original Meta names (`layers.N.attention.wq`, `feed_forward.w1` = gate,
//!   `w3` = up, `w2` = down) with Q/K rows permuted for rotary exactly as llama.cpp's converter.
//! - BLOOM uses LLaMA-like names (`norm` is the *embedding* norm, `output_norm` the final one) and
//!   reorders the fused QKV into `[q; k; v]` like llama.cpp's converter.
//! - Tied output heads are written out: transformers' `state_dict()` lists a tied weight under
//!   both names, so GPT-2 (`model/lm_head`), MPT (`lm_head.weight`) and BLOOM (`output.weight`)
//!   files hold the head; files without one (the ggml GPT-2 example's) use `token_embd`.
//! - MPT's norms have no bias (transformers drops them), so none is written; `clip_qkv` is written
//!   (0.0 for none) and the decoder applies it, which llm does not.
//!
//! Hyperparameters the legacy layouts do not carry (see `format/legacy.rs` for those they do),
//! with what llm (rustformers, rev 129b84a, the one llm-rs 0.2.15 pins, on the ggml of llama.cpp
//! 8183159) uses and what the decoder uses (`Spec::from_metadata` defaults):
//! - LayerNorm epsilon: ggml's `ggml_norm` hard-codes 1e-5; transformers' default
//!   (`layer_norm_epsilon` / `layer_norm_eps`) for GPT-2, GPT-J, GPT-NeoX, MPT and BLOOM is 1e-5
//!   too. The decoder uses 1e-5.
//! - LLaMA's RMSNorm epsilon: llm passes `LLAMA_DEFAULT_RMS_EPS` = 5e-6; transformers'
//!   `LlamaConfig` default and LLaMA 1's checkpoints use 1e-6 (Llama 2 uses 1e-5, which only a GGUF
//!   file can say). The decoder uses 1e-6, what the fixtures' transformers models use; with 5e-6
//!   the LLaMA fixture's logits move by 1.4e-5 of the largest logit away from transformers' (from
//!   2e-6), well inside every tolerance.
//! - Context length: LLaMA and BLOOM files carry none; llm takes it from the session (llm-rs'
//!   default 2048) and so does the decoder (2048 unless the session says otherwise).
//! - RoPE base 10000 and no scaling (llm: ggml's default; the LLaMA layout cannot say otherwise).
//! - ALiBi maximum bias: MPT files carry it; llm uses 8 for BLOOM, as transformers' BLOOM does.
//! - Special tokens: the embedded vocabulary names none. For LLaMA's SentencePiece vocabulary
//!   (control tokens stored as empty strings) the tokenizer takes SentencePiece's default BOS 1
//!   and EOS 2, and recognises the byte-fallback tokens (`tokenizer.rs`); for the byte-level BPE
//!   vocabularies it names none (llm looks `<|endoftext|>`, `</s>` up by string and puts id 1 in
//!   front of every prompt, whatever the architecture).
//!
//! Checked against transformers by `tests/engine_legacy.rs` on files written by the real llm-rs.

use crate::Architecture;

/// `(legacy pattern, GGUF name)`; `{N}` stands for the layer number.
fn table(arch: Architecture) -> &'static [(&'static str, &'static str)] {
    match arch {
        Architecture::Gpt2 => &[
            ("model/wte", "token_embd.weight"),
            ("model/wpe", "position_embd.weight"),
            ("model/lm_head", "output.weight"),
            ("model/ln_f/g", "output_norm.weight"),
            ("model/ln_f/b", "output_norm.bias"),
            ("model/h{N}/ln_1/g", "blk.{N}.attn_norm.weight"),
            ("model/h{N}/ln_1/b", "blk.{N}.attn_norm.bias"),
            ("model/h{N}/attn/c_attn/w", "blk.{N}.attn_qkv.weight"),
            ("model/h{N}/attn/c_attn/b", "blk.{N}.attn_qkv.bias"),
            ("model/h{N}/attn/c_proj/w", "blk.{N}.attn_output.weight"),
            ("model/h{N}/attn/c_proj/b", "blk.{N}.attn_output.bias"),
            ("model/h{N}/ln_2/g", "blk.{N}.ffn_norm.weight"),
            ("model/h{N}/ln_2/b", "blk.{N}.ffn_norm.bias"),
            ("model/h{N}/mlp/c_fc/w", "blk.{N}.ffn_up.weight"),
            ("model/h{N}/mlp/c_fc/b", "blk.{N}.ffn_up.bias"),
            ("model/h{N}/mlp/c_proj/w", "blk.{N}.ffn_down.weight"),
            ("model/h{N}/mlp/c_proj/b", "blk.{N}.ffn_down.bias"),
        ],
        Architecture::GptJ => &[
            ("transformer.wte.weight", "token_embd.weight"),
            ("transformer.ln_f.weight", "output_norm.weight"),
            ("transformer.ln_f.bias", "output_norm.bias"),
            ("lm_head.weight", "output.weight"),
            ("lm_head.bias", "output.bias"),
            ("transformer.h.{N}.ln_1.weight", "blk.{N}.attn_norm.weight"),
            ("transformer.h.{N}.ln_1.bias", "blk.{N}.attn_norm.bias"),
            (
                "transformer.h.{N}.attn.q_proj.weight",
                "blk.{N}.attn_q.weight",
            ),
            (
                "transformer.h.{N}.attn.k_proj.weight",
                "blk.{N}.attn_k.weight",
            ),
            (
                "transformer.h.{N}.attn.v_proj.weight",
                "blk.{N}.attn_v.weight",
            ),
            (
                "transformer.h.{N}.attn.out_proj.weight",
                "blk.{N}.attn_output.weight",
            ),
            (
                "transformer.h.{N}.mlp.fc_in.weight",
                "blk.{N}.ffn_up.weight",
            ),
            ("transformer.h.{N}.mlp.fc_in.bias", "blk.{N}.ffn_up.bias"),
            (
                "transformer.h.{N}.mlp.fc_out.weight",
                "blk.{N}.ffn_down.weight",
            ),
            ("transformer.h.{N}.mlp.fc_out.bias", "blk.{N}.ffn_down.bias"),
        ],
        Architecture::GptNeoX => &[
            ("gpt_neox.embed_in.weight", "token_embd.weight"),
            ("gpt_neox.final_layer_norm.weight", "output_norm.weight"),
            ("gpt_neox.final_layer_norm.bias", "output_norm.bias"),
            ("embed_out.weight", "output.weight"),
            (
                "gpt_neox.layers.{N}.input_layernorm.weight",
                "blk.{N}.attn_norm.weight",
            ),
            (
                "gpt_neox.layers.{N}.input_layernorm.bias",
                "blk.{N}.attn_norm.bias",
            ),
            (
                "gpt_neox.layers.{N}.post_attention_layernorm.weight",
                "blk.{N}.ffn_norm.weight",
            ),
            (
                "gpt_neox.layers.{N}.post_attention_layernorm.bias",
                "blk.{N}.ffn_norm.bias",
            ),
            (
                "gpt_neox.layers.{N}.attention.query_key_value.weight",
                "blk.{N}.attn_qkv.weight",
            ),
            (
                "gpt_neox.layers.{N}.attention.query_key_value.bias",
                "blk.{N}.attn_qkv.bias",
            ),
            (
                "gpt_neox.layers.{N}.attention.dense.weight",
                "blk.{N}.attn_output.weight",
            ),
            (
                "gpt_neox.layers.{N}.attention.dense.bias",
                "blk.{N}.attn_output.bias",
            ),
            (
                "gpt_neox.layers.{N}.mlp.dense_h_to_4h.weight",
                "blk.{N}.ffn_up.weight",
            ),
            (
                "gpt_neox.layers.{N}.mlp.dense_h_to_4h.bias",
                "blk.{N}.ffn_up.bias",
            ),
            (
                "gpt_neox.layers.{N}.mlp.dense_4h_to_h.weight",
                "blk.{N}.ffn_down.weight",
            ),
            (
                "gpt_neox.layers.{N}.mlp.dense_4h_to_h.bias",
                "blk.{N}.ffn_down.bias",
            ),
        ],
        Architecture::Llama => &[
            ("tok_embeddings.weight", "token_embd.weight"),
            ("norm.weight", "output_norm.weight"),
            ("output.weight", "output.weight"),
            (
                "layers.{N}.attention_norm.weight",
                "blk.{N}.attn_norm.weight",
            ),
            ("layers.{N}.attention.wq.weight", "blk.{N}.attn_q.weight"),
            ("layers.{N}.attention.wk.weight", "blk.{N}.attn_k.weight"),
            ("layers.{N}.attention.wv.weight", "blk.{N}.attn_v.weight"),
            (
                "layers.{N}.attention.wo.weight",
                "blk.{N}.attn_output.weight",
            ),
            ("layers.{N}.ffn_norm.weight", "blk.{N}.ffn_norm.weight"),
            (
                "layers.{N}.feed_forward.w1.weight",
                "blk.{N}.ffn_gate.weight",
            ),
            ("layers.{N}.feed_forward.w3.weight", "blk.{N}.ffn_up.weight"),
            (
                "layers.{N}.feed_forward.w2.weight",
                "blk.{N}.ffn_down.weight",
            ),
        ],
        Architecture::Mpt => &[
            ("transformer.wte.weight", "token_embd.weight"),
            ("transformer.norm_f.weight", "output_norm.weight"),
            ("transformer.norm_f.bias", "output_norm.bias"),
            ("lm_head.weight", "output.weight"),
            (
                "transformer.blocks.{N}.norm_1.weight",
                "blk.{N}.attn_norm.weight",
            ),
            (
                "transformer.blocks.{N}.norm_1.bias",
                "blk.{N}.attn_norm.bias",
            ),
            (
                "transformer.blocks.{N}.attn.Wqkv.weight",
                "blk.{N}.attn_qkv.weight",
            ),
            (
                "transformer.blocks.{N}.attn.out_proj.weight",
                "blk.{N}.attn_output.weight",
            ),
            (
                "transformer.blocks.{N}.norm_2.weight",
                "blk.{N}.ffn_norm.weight",
            ),
            (
                "transformer.blocks.{N}.norm_2.bias",
                "blk.{N}.ffn_norm.bias",
            ),
            (
                "transformer.blocks.{N}.ffn.up_proj.weight",
                "blk.{N}.ffn_up.weight",
            ),
            (
                "transformer.blocks.{N}.ffn.down_proj.weight",
                "blk.{N}.ffn_down.weight",
            ),
        ],
        Architecture::Bloom => &[
            ("tok_embeddings.weight", "token_embd.weight"),
            ("norm.weight", "token_embd_norm.weight"),
            ("norm.bias", "token_embd_norm.bias"),
            ("output_norm.weight", "output_norm.weight"),
            ("output_norm.bias", "output_norm.bias"),
            ("output.weight", "output.weight"),
            (
                "layers.{N}.attention_norm.weight",
                "blk.{N}.attn_norm.weight",
            ),
            ("layers.{N}.attention_norm.bias", "blk.{N}.attn_norm.bias"),
            (
                "layers.{N}.attention.query_key_value.weight",
                "blk.{N}.attn_qkv.weight",
            ),
            (
                "layers.{N}.attention.query_key_value.bias",
                "blk.{N}.attn_qkv.bias",
            ),
            (
                "layers.{N}.attention.wo.weight",
                "blk.{N}.attn_output.weight",
            ),
            ("layers.{N}.attention.wo.bias", "blk.{N}.attn_output.bias"),
            ("layers.{N}.ffn_norm.weight", "blk.{N}.ffn_norm.weight"),
            ("layers.{N}.ffn_norm.bias", "blk.{N}.ffn_norm.bias"),
            ("layers.{N}.feed_forward.w1.weight", "blk.{N}.ffn_up.weight"),
            ("layers.{N}.feed_forward.w1.bias", "blk.{N}.ffn_up.bias"),
            (
                "layers.{N}.feed_forward.w2.weight",
                "blk.{N}.ffn_down.weight",
            ),
            ("layers.{N}.feed_forward.w2.bias", "blk.{N}.ffn_down.bias"),
        ],
    }
}

/// The GGUF name of a legacy tensor name of `arch`, if it is one the decoder uses.
pub fn gguf_name(arch: Architecture, legacy: &str) -> Option<String> {
    table(arch)
        .iter()
        .find_map(|(pattern, target)| match pattern.split_once("{N}") {
            None => (*pattern == legacy).then(|| target.to_string()),
            Some((prefix, suffix)) => {
                let n = legacy.strip_prefix(prefix)?.strip_suffix(suffix)?;
                (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| target.replace("{N}", n))
            }
        })
}

/// True if the fused QKV tensors of `arch`'s legacy files are interleaved per head and need their
/// rows reordered into `[q; k; v]` (GPT-NeoX only).
pub fn interleaved_qkv(arch: Architecture) -> bool {
    arch == Architecture::GptNeoX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map() {
        assert_eq!(
            gguf_name(Architecture::Gpt2, "model/h11/attn/c_attn/w").as_deref(),
            Some("blk.11.attn_qkv.weight")
        );
        assert_eq!(
            gguf_name(Architecture::Gpt2, "model/hx/attn/c_attn/w"),
            None
        );
        assert_eq!(
            gguf_name(Architecture::Llama, "norm.weight").as_deref(),
            Some("output_norm.weight")
        );
        assert_eq!(
            gguf_name(Architecture::Bloom, "norm.weight").as_deref(),
            Some("token_embd_norm.weight")
        );
        assert_eq!(
            gguf_name(Architecture::Llama, "layers.3.feed_forward.w3.weight").as_deref(),
            Some("blk.3.ffn_up.weight")
        );
    }
}
