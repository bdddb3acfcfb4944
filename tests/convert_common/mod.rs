//! Helpers of the conversion tests, written independently of `src/convert`: a minimal safetensors
//! reader and writer, the weight transforms stated the way llama.cpp's converter states them
//! (reshape + swap axes), and the HF → GGUF tensor-name rules of each architecture.
#![allow(dead_code)]

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tiny Hugging Face checkpoints of `tests/fixtures/hf`, sorted.
pub fn fixtures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 13,
        "expected the 13 HF fixtures, found {dirs:?}"
    );
    dirs
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

pub fn read_json(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A checkpoint tensor: dtype name, row-major shape, raw little-endian bytes.
#[derive(Clone, Debug)]
pub struct St {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl St {
    /// The values as f32 (F32, F16, BF16).
    pub fn values(&self) -> Vec<f32> {
        match self.dtype.as_str() {
            "F32" => self
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            "F16" => self
                .bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            "BF16" => self
                .bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => panic!("no values for dtype {other}"),
        }
    }
    pub fn f32(shape: &[usize], values: &[f32]) -> St {
        St {
            dtype: "F32".into(),
            shape: shape.to_vec(),
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Reads a safetensors file: 8-byte header length, JSON header, data.
pub fn read_safetensors(path: &Path) -> BTreeMap<String, St> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Json = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = BTreeMap::new();
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let off = info["data_offsets"].as_array().unwrap();
        let (a, b) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        out.insert(
            name.clone(),
            St {
                dtype: info["dtype"].as_str().unwrap().to_string(),
                shape: info["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
                bytes: data[a..b].to_vec(),
            },
        );
    }
    out
}

/// Writes a safetensors file (tensors in name order).
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, St>) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let start = data.len();
        data.extend_from_slice(&t.bytes);
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&Json::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

/// Every tensor of a model folder (single file or shards listed by the index).
pub fn read_checkpoint(dir: &Path) -> BTreeMap<String, St> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let idx = read_json(&index);
        let mut files: Vec<&str> = idx["weight_map"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap())
            .collect();
        files.sort();
        files.dedup();
        let mut all = BTreeMap::new();
        for f in files {
            all.extend(read_safetensors(&dir.join(f)));
        }
        all
    } else {
        read_safetensors(&dir.join("model.safetensors"))
    }
}

/// Copies a fixture folder into `dst` (which must not exist).
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

/// Row-major `data` of shape `dims`, with its axes permuted (numpy's `transpose(perm)`).
pub fn permute_axes(data: &[f32], dims: &[usize], perm: &[usize]) -> Vec<f32> {
    let n = dims.len();
    let new_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let mut strides = vec![1usize; n];
    for i in (0..n.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; n];
    for _ in 0..data.len() {
        let src: usize = (0..n).map(|k| idx[k] * strides[perm[k]]).sum();
        out.push(data[src]);
        for k in (0..n).rev() {
            idx[k] += 1;
            if idx[k] < new_dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// A weight transform, as llama.cpp's converter writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tr {
    Copy,
    /// `data.transpose(1, 0)` (GPT-2 Conv1D).
    Transpose,
    /// `reshape(n_head, 3, head_dim, rest) → cat(w[:,0], w[:,1], w[:,2])` (GPT-NeoX, BLOOM).
    Qkv(usize),
    /// `reshape(n_head, 2, rows/n_head/2, rest).swapaxes(1, 2)` (LLaMA Q/K).
    Rope(usize),
}

/// The transformed values and their row-major shape.
pub fn apply(tr: Tr, t: &St) -> (Vec<usize>, Vec<f32>) {
    let v = t.values();
    let rows = t.shape[0];
    let rest: usize = t.shape[1..].iter().product();
    match tr {
        Tr::Copy => (t.shape.clone(), v),
        Tr::Transpose => {
            assert_eq!(t.shape.len(), 2);
            (
                vec![t.shape[1], t.shape[0]],
                permute_axes(&v, &t.shape, &[1, 0]),
            )
        }
        Tr::Qkv(n_head) => {
            let head_dim = rows / 3 / n_head;
            let dims = [n_head, 3, head_dim, rest];
            (t.shape.clone(), permute_axes(&v, &dims, &[1, 0, 2, 3]))
        }
        Tr::Rope(n_head) => {
            let half = rows / n_head / 2;
            let dims = [n_head, 2, half, rest];
            (t.shape.clone(), permute_axes(&v, &dims, &[0, 2, 1, 3]))
        }
    }
}

/// The llama.cpp architecture name of a config's `architectures[0]`.
pub fn gguf_arch(class: &str) -> &'static str {
    match class {
        "GPT2LMHeadModel" => "gpt2",
        "GPTJForCausalLM" => "gptj",
        "GPTNeoXForCausalLM" => "gptneox",
        "LlamaForCausalLM" | "MistralForCausalLM" => "llama",
        "MptForCausalLM" | "MPTForCausalLM" => "mpt",
        "BloomForCausalLM" => "bloom",
        other => panic!("no fixture class {other}"),
    }
}

fn cfg_usize(cfg: &Json, keys: &[&str]) -> usize {
    keys.iter()
        .find_map(|k| cfg.get(*k).and_then(Json::as_u64))
        .unwrap_or_else(|| panic!("config has none of {keys:?}")) as usize
}

/// The GGUF tensors expected from a checkpoint: GGUF name → (checkpoint name, transform), by
/// renaming every checkpoint tensor (llama.cpp's `tensor_mapping.py` names).
pub fn expected_gguf(cfg: &Json, ck: &BTreeMap<String, St>) -> BTreeMap<String, (String, Tr)> {
    let arch = gguf_arch(cfg["architectures"][0].as_str().unwrap());
    let tied_default = matches!(arch, "gpt2" | "mpt" | "bloom");
    let tied = cfg
        .get("tie_word_embeddings")
        .and_then(Json::as_bool)
        .unwrap_or(tied_default);
    let mut out = BTreeMap::new();
    for hf in ck.keys() {
        if [
            ".attn.bias",
            ".attn.masked_bias",
            ".attention.bias",
            ".attention.masked_bias",
            ".rotary_emb.inv_freq",
        ]
        .iter()
        .any(|s| hf.ends_with(s))
        {
            continue;
        }
        let name = hf.strip_prefix("transformer.").unwrap_or(hf);
        let (stem, suffix) = name.rsplit_once('.').unwrap();
        let parts: Vec<&str> = stem.split('.').collect();
        let block = parts.iter().position(|p| p.parse::<usize>().is_ok());
        let (gguf_stem, tr): (String, Tr) = match block {
            None => {
                let g = match (arch, stem) {
                    (_, "wte")
                    | ("gptneox", "gpt_neox.embed_in")
                    | ("llama", "model.embed_tokens")
                    | ("bloom", "word_embeddings") => "token_embd",
                    ("gpt2", "wpe") => "position_embd",
                    ("bloom", "word_embeddings_layernorm") => "token_embd_norm",
                    (_, "ln_f")
                    | ("gptneox", "gpt_neox.final_layer_norm")
                    | ("llama", "model.norm")
                    | ("mpt", "norm_f") => "output_norm",
                    (_, "lm_head") | ("gptneox", "embed_out") => {
                        if tied && suffix == "weight" {
                            continue;
                        }
                        "output"
                    }
                    _ => panic!("{arch}: unexpected global tensor {hf}"),
                };
                (g.to_string(), Tr::Copy)
            }
            Some(bi) => {
                let i: usize = parts[bi].parse().unwrap();
                let sub = parts[bi + 1..].join(".");
                let n_head = cfg_usize(cfg, &["n_head", "num_attention_heads", "n_heads"]);
                let n_kv = cfg
                    .get("num_key_value_heads")
                    .and_then(Json::as_u64)
                    .map(|v| v as usize)
                    .unwrap_or(n_head);
                let (g, tr) = match (arch, sub.as_str()) {
                    ("gpt2" | "gptj", "ln_1") => ("attn_norm", Tr::Copy),
                    ("gpt2", "ln_2") => ("ffn_norm", Tr::Copy),
                    ("gpt2", "attn.c_attn") => ("attn_qkv", Tr::Transpose),
                    ("gpt2", "attn.c_proj") => ("attn_output", Tr::Transpose),
                    ("gpt2", "mlp.c_fc") => ("ffn_up", Tr::Transpose),
                    ("gpt2", "mlp.c_proj") => ("ffn_down", Tr::Transpose),
                    ("gptj", "attn.q_proj") => ("attn_q", Tr::Copy),
                    ("gptj", "attn.k_proj") => ("attn_k", Tr::Copy),
                    ("gptj", "attn.v_proj") => ("attn_v", Tr::Copy),
                    ("gptj", "attn.out_proj") => ("attn_output", Tr::Copy),
                    ("gptj", "mlp.fc_in") => ("ffn_up", Tr::Copy),
                    ("gptj", "mlp.fc_out") => ("ffn_down", Tr::Copy),
                    ("gptneox" | "bloom", "input_layernorm") => ("attn_norm", Tr::Copy),
                    ("gptneox" | "bloom", "post_attention_layernorm") => ("ffn_norm", Tr::Copy),
                    ("gptneox", "attention.query_key_value")
                    | ("bloom", "self_attention.query_key_value") => ("attn_qkv", Tr::Qkv(n_head)),
                    ("gptneox", "attention.dense") | ("bloom", "self_attention.dense") => {
                        ("attn_output", Tr::Copy)
                    }
                    ("gptneox" | "bloom", "mlp.dense_h_to_4h") => ("ffn_up", Tr::Copy),
                    ("gptneox" | "bloom", "mlp.dense_4h_to_h") => ("ffn_down", Tr::Copy),
                    ("llama", "input_layernorm") => ("attn_norm", Tr::Copy),
                    ("llama", "post_attention_layernorm") => ("ffn_norm", Tr::Copy),
                    ("llama", "self_attn.q_proj") => ("attn_q", Tr::Rope(n_head)),
                    ("llama", "self_attn.k_proj") => ("attn_k", Tr::Rope(n_kv)),
                    ("llama", "self_attn.v_proj") => ("attn_v", Tr::Copy),
                    ("llama", "self_attn.o_proj") => ("attn_output", Tr::Copy),
                    ("llama", "mlp.gate_proj") => ("ffn_gate", Tr::Copy),
                    ("llama", "mlp.up_proj") => ("ffn_up", Tr::Copy),
                    ("llama", "mlp.down_proj") => ("ffn_down", Tr::Copy),
                    ("mpt", "norm_1") => ("attn_norm", Tr::Copy),
                    ("mpt", "norm_2") => ("ffn_norm", Tr::Copy),
                    ("mpt", "attn.Wqkv") => ("attn_qkv", Tr::Copy),
                    ("mpt", "attn.out_proj") => ("attn_output", Tr::Copy),
                    ("mpt", "ffn.up_proj") => ("ffn_up", Tr::Copy),
                    ("mpt", "ffn.down_proj") => ("ffn_down", Tr::Copy),
                    _ => panic!("{arch}: unexpected block tensor {hf}"),
                };
                // GPT-2's biases are not transposed.
                let tr = if suffix == "bias" && tr == Tr::Transpose {
                    Tr::Copy
                } else {
                    tr
                };
                (format!("blk.{i}.{g}"), tr)
            }
        };
        out.insert(format!("{gguf_stem}.{suffix}"), (hf.clone(), tr));
    }
    // llama.cpp's gptneox requires `output.weight`: a tied head is written from the embeddings.
    if arch == "gptneox" && tied {
        out.insert(
            "output.weight".into(),
            ("gpt_neox.embed_in.weight".into(), Tr::Copy),
        );
    }
    out
}

/// ggml shape (innermost first) of a row-major shape.
pub fn ggml_shape(row_major: &[usize]) -> Vec<u64> {
    row_major.iter().rev().map(|&d| d as u64).collect()
}

/// The bytes of each token of a `tokenizer.json`, as a legacy (llm-rs) vocabulary must spell
/// them: added tokens (`added_tokens`) as their text; with a SentencePiece model
/// (`byte_fallback`), `<0xNN>` as that byte and any other piece with `▁` as a space; with a
/// byte-level BPE model, every character mapped back to its byte through GPT-2's
/// `bytes_to_unicode` table (the printable bytes 33–126, 161–172 and 174–255 stand for
/// themselves, the other 68 bytes are the characters from U+0100 on, in byte order). Keyed by id;
/// ids the tokenizer does not have (padding up to config.json's `vocab_size`) are absent.
pub fn legacy_token_bytes(tokenizer_json: &Json) -> BTreeMap<usize, Vec<u8>> {
    let model = &tokenizer_json["model"];
    let spm = model["byte_fallback"].as_bool().unwrap_or(false);
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let byte_level = |text: &str| -> Vec<u8> {
        text.chars()
            .map(|c| {
                let c = c as u32;
                if c < 256 && printable(c) {
                    c as u8
                } else {
                    (0u32..256)
                        .filter(|&b| !printable(b))
                        .nth((c - 256) as usize)
                        .unwrap() as u8
                }
            })
            .collect()
    };
    let mut out = BTreeMap::new();
    for (text, id) in model["vocab"].as_object().unwrap() {
        let bytes = if spm {
            if text.len() == 6 && text.starts_with("<0x") && text.ends_with('>') {
                vec![u8::from_str_radix(&text[3..5], 16).unwrap()]
            } else {
                text.replace('\u{2581}', " ").into_bytes()
            }
        } else {
            byte_level(text)
        };
        out.insert(id.as_u64().unwrap() as usize, bytes);
    }
    for added in tokenizer_json["added_tokens"].as_array().unwrap() {
        let id = added["id"].as_u64().unwrap() as usize;
        out.insert(id, added["content"].as_str().unwrap().as_bytes().to_vec());
    }
    out
}
