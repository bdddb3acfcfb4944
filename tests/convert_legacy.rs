//! Conversion into llm-rs 0.2.15's legacy containers (GGJT v3, GGML): tensor names, order and
//! types as the real llm-rs writes them (`tests/fixtures/legacy/*.expected.json`, made by llm-rs
//! itself from 2-layer models, like our HF fixtures), values as llm-rs transforms them, the
//! hyperparameters and vocabulary read back by the legacy reader.

mod convert_common;

use convert_common::*;
use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType, ModelFile};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// llm-rs' name of a GGUF tensor (llm-rs `convert/models/*.py`); `hf` is its checkpoint name.
fn llm_rs_name(arch: &str, gguf: &str, hf: &str) -> String {
    let (stem, suffix) = gguf.rsplit_once('.').unwrap();
    let block = stem.strip_prefix("blk.").map(|r| {
        let (i, sub) = r.split_once('.').unwrap();
        (i.parse::<usize>().unwrap(), sub)
    });
    match arch {
        // transformers' own names.
        "gptj" | "gptneox" | "mpt" => hf.to_string(),
        "gpt2" => {
            let norm_suffix = if suffix == "weight" { "g" } else { "b" };
            let lin_suffix = if suffix == "weight" { "w" } else { "b" };
            match (stem, block) {
                ("token_embd", _) => "model/wte".into(),
                ("position_embd", _) => "model/wpe".into(),
                ("output_norm", _) => format!("model/ln_f/{norm_suffix}"),
                ("output", _) => "model/lm_head".into(),
                (_, Some((i, sub))) => {
                    let (l, s) = match sub {
                        "attn_norm" => ("ln_1", norm_suffix),
                        "ffn_norm" => ("ln_2", norm_suffix),
                        "attn_qkv" => ("attn/c_attn", lin_suffix),
                        "attn_output" => ("attn/c_proj", lin_suffix),
                        "ffn_up" => ("mlp/c_fc", lin_suffix),
                        "ffn_down" => ("mlp/c_proj", lin_suffix),
                        other => panic!("gpt2 {other}"),
                    };
                    format!("model/h{i}/{l}/{s}")
                }
                _ => panic!("gpt2 {gguf}"),
            }
        }
        "llama" | "bloom" => match (stem, block) {
            ("token_embd", _) => format!("tok_embeddings.{suffix}"),
            ("token_embd_norm", _) => format!("norm.{suffix}"),
            ("output_norm", _) if arch == "llama" => format!("norm.{suffix}"),
            ("output_norm", _) => format!("output_norm.{suffix}"),
            ("output", _) => format!("output.{suffix}"),
            (_, Some((i, sub))) => {
                let l = match sub {
                    "attn_norm" => "attention_norm",
                    "ffn_norm" => "ffn_norm",
                    "attn_q" => "attention.wq",
                    "attn_k" => "attention.wk",
                    "attn_v" => "attention.wv",
                    "attn_output" => "attention.wo",
                    "attn_qkv" => "attention.query_key_value",
                    "ffn_gate" => "feed_forward.w1",
                    "ffn_up" if arch == "llama" => "feed_forward.w3",
                    "ffn_up" => "feed_forward.w1",
                    "ffn_down" => "feed_forward.w2",
                    other => panic!("{arch} {other}"),
                };
                format!("layers.{i}.{l}.{suffix}")
            }
            _ => panic!("{arch} {gguf}"),
        },
        other => panic!("{other}"),
    }
}

/// Legacy tensor name → (checkpoint name, transform), from the GGUF expectations: llm-rs applies
/// the same transforms except GPT-NeoX's fused QKV, which it keeps per head; it always writes the
/// head (the embeddings again when tied).
fn expected_legacy(cfg: &Json, ck: &BTreeMap<String, St>) -> BTreeMap<String, (String, Tr)> {
    let arch = gguf_arch(cfg["architectures"][0].as_str().unwrap());
    let mut gguf = expected_gguf(cfg, ck);
    if !gguf.contains_key("output.weight") {
        let embd = gguf["token_embd.weight"].clone();
        gguf.insert("output.weight".into(), embd);
    }
    let head_hf = match arch {
        "gptj" | "mpt" => Some("lm_head.weight"),
        "gptneox" => Some("embed_out.weight"),
        _ => None,
    };
    gguf.into_iter()
        .map(|(g, (hf, tr))| {
            let tr = if arch == "gptneox" { Tr::Copy } else { tr };
            let name = match (g.as_str(), head_hf) {
                ("output.weight", Some(h)) => h.to_string(),
                _ => llm_rs_name(arch, &g, &hf),
            };
            (name, (hf, tr))
        })
        .collect()
}

fn llm_rs_reference(arch: &str) -> Json {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(format!("{arch}-f16.expected.json"));
    read_json(&p)
}

#[test]
fn legacy_files_have_llm_rs_layouts_and_the_checkpoint_values() {
    let tmp = tempfile::tempdir().unwrap();
    let mut converted = 0;
    for dir in fixtures() {
        let cfg = read_json(&dir.join("config.json"));
        let reference = read_json(&dir.join("reference.json"));
        let s = &reference["config_summary"];
        let arch = gguf_arch(cfg["architectures"][0].as_str().unwrap());
        let ck = read_checkpoint(&dir);
        let expected = expected_legacy(&cfg, &ck);
        let llm_rs = llm_rs_reference(arch);
        for container in [Container::Ggjt, Container::Ggml] {
            let conv = Converter::open(&dir).unwrap();
            let params = ConvertParams {
                container,
                dtype: GgmlType::F16,
            };
            let out = match conv.convert(tmp.path(), &params, &mut |_| true) {
                Ok(out) => out,
                Err(e) => {
                    // Refusals are tested in convert_errors.rs; here, only the expected ones.
                    let gqa = s["num_kv_heads"] != s["num_heads"];
                    let llama_ggml = arch == "llama" && container == Container::Ggml;
                    let ffn = dir.ends_with("llama"); // n_ff 128 is no n_mult's width for 64
                    assert!(gqa || llama_ggml || ffn, "{}: {e}", dir.display());
                    continue;
                }
            };
            converted += 1;
            let ctx = format!("{} {container}", dir.display());
            let f = ModelFile::open(&out, None).unwrap();
            assert_eq!(f.container, container, "{ctx}");
            assert_eq!(f.version, if container == Container::Ggjt { 3 } else { 0 });
            // Names and order exactly as llm-rs writes a 2-layer model of this architecture.
            let names: Vec<&str> = f.tensors.iter().map(|t| t.name.as_str()).collect();
            let llm_rs_names: Vec<&str> = llm_rs["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, llm_rs_names, "{ctx}");
            for (t, r) in f.tensors.iter().zip(llm_rs["tensors"].as_array().unwrap()) {
                assert_eq!(
                    t.ty.name(),
                    r["type"].as_str().unwrap(),
                    "{ctx}: {}",
                    t.name
                );
                let (hf, tr) = &expected[&t.name];
                let (shape, values) = apply(*tr, &ck[hf]);
                assert_eq!(t.shape, ggml_shape(&shape), "{ctx}: {}", t.name);
                let data = f.tensor_data(t);
                match t.ty {
                    GgmlType::F32 => {
                        let got: Vec<u32> = data
                            .chunks_exact(4)
                            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                            .collect();
                        let want: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
                        assert!(got == want, "{ctx}: {} values", t.name);
                    }
                    _ => {
                        let got: Vec<u16> = data
                            .chunks_exact(2)
                            .map(|c| u16::from_le_bytes([c[0], c[1]]))
                            .collect();
                        let want: Vec<u16> = values
                            .iter()
                            .map(|v| half::f16::from_f32(*v).to_bits())
                            .collect();
                        assert!(got == want, "{ctx}: {} values", t.name);
                    }
                }
            }
            // Hyperparameters as the legacy reader maps them, against transformers' facts.
            let m = &f.metadata;
            let k = |key: &str| m.get_u64(&format!("{arch}.{key}"));
            assert_eq!(k("vocab_size"), s["vocab_size"].as_u64(), "{ctx}");
            assert_eq!(k("embedding_length"), s["hidden_size"].as_u64(), "{ctx}");
            assert_eq!(k("attention.head_count"), s["num_heads"].as_u64(), "{ctx}");
            assert_eq!(k("block_count"), s["num_layers"].as_u64(), "{ctx}");
            assert_eq!(k("feed_forward_length"), s["ffn_size"].as_u64(), "{ctx}");
            if matches!(arch, "gptj" | "gptneox" | "llama") {
                assert_eq!(
                    k("rope.dimension_count"),
                    s["rotary_dims"].as_u64(),
                    "{ctx}"
                );
            }
            if arch == "mpt" {
                let clip = m.get_f64("mpt.attention.clamp_kqv");
                assert_eq!(clip, s["clip_qkv"].as_f64(), "{ctx}");
            }
            assert_eq!(m.get_u64("general.file_type"), Some(1), "{ctx}");
            // The byte vocabulary: every token of tokenizer.json, as bytes.
            let vocab = f.legacy_vocab.as_ref().unwrap();
            assert_eq!(
                vocab.tokens.len() as u64,
                s["vocab_size"].as_u64().unwrap(),
                "{ctx}"
            );
            let tj = read_json(&dir.join("tokenizer.json"));
            for (id, want) in legacy_token_bytes(&tj) {
                assert_eq!(vocab.tokens[id], want, "{ctx}: token {id}");
            }
        }
    }
    assert!(converted >= 12, "only {converted} legacy conversions");
}
