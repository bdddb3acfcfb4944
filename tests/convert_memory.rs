//! Streaming: converting a checkpoint keeps the converter's peak memory near its largest output
//! tensor, far below the checkpoint's size. A 150 MB LLaMA-shaped checkpoint (F32, two shards) is
//! converted by the `ferrollm` binary in a child process whose peak resident set is read with
//! `getrusage(RUSAGE_CHILDREN)` (the only child this test binary starts).

mod common;
mod convert_common;

use convert_common::*;
use std::io::Write;
use std::path::Path;

const HIDDEN: usize = 512;
const FFN: usize = 1376;
const LAYERS: usize = 2;
const VOCAB: usize = 32000;
const HEADS: usize = 8;

/// Writes one safetensors shard tensor by tensor (values are a cheap deterministic pattern).
fn write_shard(path: &Path, tensors: &[(String, Vec<usize>)]) -> u64 {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    let mut pattern = common::WeightPattern::new();
    for (_, shape) in tensors {
        let n: usize = shape.iter().product();
        let mut chunk = Vec::with_capacity(4 << 20);
        for _ in 0..n {
            chunk.extend_from_slice(&pattern.next_f32().to_le_bytes());
            if chunk.len() >= 4 << 20 {
                f.write_all(&chunk).unwrap();
                chunk.clear();
            }
        }
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
    (8 + h.len() + offset) as u64
}

#[test]
#[cfg(target_os = "linux")]
fn peak_memory_stays_near_the_largest_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("big-llama");
    std::fs::create_dir(&dir).unwrap();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": HEADS, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let llama = fixture("llama");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(llama.join(f), dir.join(f)).unwrap();
    }
    let mut first = vec![("model.embed_tokens.weight".to_string(), vec![VOCAB, HIDDEN])];
    let mut second = vec![
        ("lm_head.weight".to_string(), vec![VOCAB, HIDDEN]),
        ("model.norm.weight".to_string(), vec![HIDDEN]),
    ];
    for i in 0..LAYERS {
        let l = |s: &str| format!("model.layers.{i}.{s}");
        let shard = if i == 0 { &mut first } else { &mut second };
        for (name, shape) in [
            ("input_layernorm.weight", vec![HIDDEN]),
            ("post_attention_layernorm.weight", vec![HIDDEN]),
            ("self_attn.q_proj.weight", vec![HIDDEN, HIDDEN]),
            ("self_attn.k_proj.weight", vec![HIDDEN, HIDDEN]),
            ("self_attn.v_proj.weight", vec![HIDDEN, HIDDEN]),
            ("self_attn.o_proj.weight", vec![HIDDEN, HIDDEN]),
            ("mlp.gate_proj.weight", vec![FFN, HIDDEN]),
            ("mlp.up_proj.weight", vec![FFN, HIDDEN]),
            ("mlp.down_proj.weight", vec![HIDDEN, FFN]),
        ] {
            shard.push((l(name), shape));
        }
    }
    let mut size = 0;
    let mut weight_map = serde_json::Map::new();
    for (file, tensors) in [
        ("model-1.safetensors", &first),
        ("model-2.safetensors", &second),
    ] {
        size += write_shard(&dir.join(file), tensors);
        for (name, _) in tensors.iter() {
            weight_map.insert(name.clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    assert!(size > 140_000_000, "checkpoint of {size} bytes");

    let out = tmp.path().join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ferrollm"))
        .arg("convert")
        .arg(&dir)
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written = out.join("big-llama-f16.gguf");
    assert!(written.is_file());
    let peak = common::peak_rss_of_children();
    let largest_output = (VOCAB * HIDDEN * 2) as u64; // token_embd / output in F16
    eprintln!("checkpoint {size} bytes, largest output tensor {largest_output}, peak RSS {peak}");
    assert!(
        peak < largest_output + 48_000_000,
        "peak RSS {peak} bytes for a {size}-byte checkpoint (largest output tensor {largest_output})"
    );
    assert!(
        peak < size / 2,
        "peak RSS {peak} bytes for a {size}-byte checkpoint"
    );
    // And the values made it (spot check against the checkpoint).
    let f = ferrollm::format::ModelFile::open(&written, None).unwrap();
    let t = f.tensor("blk.1.ffn_down.weight").unwrap();
    let src = read_safetensors(&dir.join("model-2.safetensors"));
    let want = src["model.layers.1.mlp.down_proj.weight"].values();
    let got: Vec<f32> = f
        .tensor_data(t)
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(got
        .iter()
        .zip(&want)
        .all(|(g, w)| *g == half::f16::from_f32(*w).to_f32()));
}
