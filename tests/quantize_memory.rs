//! Streaming: quantizing a file keeps the quantizer's peak memory near one tensor's source and
//! output bytes, far below the source file's size. A 230 MB LLaMA-shaped F32 GGUF is quantized to
//! Q4_0 by the `ferrollm` binary in a child process whose peak resident set is read with
//! `getrusage(RUSAGE_CHILDREN)` (the only child this test binary starts). The source is mapped, so
//! without releasing each tensor's pages once quantized the whole file would end up resident.

mod common;

use ferrollm::format::gguf::GgufWriter;
use ferrollm::format::{GgmlType, Metadata, TensorSpec, TensorWriter, Value};

const HIDDEN: usize = 512;
const FFN: usize = 1376;
const LAYERS: usize = 8;
const VOCAB: usize = 32000;

#[test]
#[cfg(target_os = "linux")]
fn peak_memory_stays_near_one_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big-f32.gguf");
    let mut md = Metadata::new();
    md.set("general.architecture", Value::String("llama".into()));
    md.set("general.name", Value::String("big".into()));
    md.set("general.file_type", Value::U32(0));
    for (k, v) in [
        ("llama.context_length", 2048u32),
        ("llama.embedding_length", HIDDEN as u32),
        ("llama.block_count", LAYERS as u32),
        ("llama.feed_forward_length", FFN as u32),
        ("llama.attention.head_count", 8),
        ("llama.attention.head_count_kv", 8),
        ("llama.rope.dimension_count", 64),
    ] {
        md.set(k, Value::U32(v));
    }
    md.set("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    let spec = |name: String, shape: Vec<u64>| TensorSpec {
        name,
        ty: GgmlType::F32,
        shape,
    };
    let (h, f) = (HIDDEN as u64, FFN as u64);
    let mut specs = vec![
        spec("token_embd.weight".into(), vec![h, VOCAB as u64]),
        spec("output_norm.weight".into(), vec![h]),
        spec("output.weight".into(), vec![h, VOCAB as u64]),
    ];
    for i in 0..LAYERS {
        for (name, shape) in [
            ("attn_norm.weight", vec![h]),
            ("ffn_norm.weight", vec![h]),
            ("attn_q.weight", vec![h, h]),
            ("attn_k.weight", vec![h, h]),
            ("attn_v.weight", vec![h, h]),
            ("attn_output.weight", vec![h, h]),
            ("ffn_gate.weight", vec![h, f]),
            ("ffn_up.weight", vec![h, f]),
            ("ffn_down.weight", vec![f, h]),
        ] {
            specs.push(spec(format!("blk.{i}.{name}"), shape));
        }
    }
    let mut w = GgufWriter::create(&src, &md, &specs, 32).unwrap();
    let mut pattern = common::WeightPattern::new();
    let mut largest = 0u64;
    for s in &specs {
        let n: u64 = s.shape.iter().product();
        largest = largest.max(4 * n);
        let mut bytes = Vec::with_capacity(4 * n as usize);
        for _ in 0..n {
            bytes.extend_from_slice(&pattern.next_f32().to_le_bytes());
        }
        w.write_tensor(&bytes).unwrap();
    }
    Box::new(w).finish().unwrap();
    let size = std::fs::metadata(&src).unwrap().len();
    assert!(size > 220_000_000, "source of {size} bytes");

    let dst = tmp.path().join("big-q4_0.gguf");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ferrollm"))
        .arg("quantize")
        .arg(&src)
        .arg(&dst)
        .args(["--type", "q4_0"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dst.is_file());
    let peak = common::peak_rss_of_children();
    eprintln!("source {size} bytes, largest source tensor {largest}, peak RSS {peak}");
    assert!(
        peak < largest + 48_000_000,
        "peak RSS {peak} bytes quantizing a {size}-byte file (largest tensor {largest})"
    );
}
