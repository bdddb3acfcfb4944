//! `ferrollm info`: the built binary on a file our writer makes, on a missing file and on a
//! broken one.

mod common;

use ferrollm::format::gguf::GgufWriter;
use ferrollm::format::{GgmlType, Metadata, TensorSpec, TensorWriter, Value, ValueType};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

fn ferrollm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrollm"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("cannot run ferrollm")
}

/// Writes a small GGUF file; returns the data section's offset.
fn write_model(path: &Path) -> u64 {
    let mut m = Metadata::new();
    m.set("general.architecture", Value::String("llama".into()));
    m.set("general.name", Value::String("tiny".into()));
    m.set("llama.context_length", Value::U32(2048));
    m.set("llama.rope.freq_base", Value::F32(10000.0));
    let tokens = (0..40).map(|i| Value::String(format!("tok{i}"))).collect();
    m.set(
        "tokenizer.ggml.tokens",
        Value::Array(ValueType::String, tokens),
    );
    m.set(
        "tokenizer.ggml.token_type",
        Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(3)]),
    );
    let specs = [
        TensorSpec {
            name: "token_embd.weight".into(),
            ty: GgmlType::F32,
            shape: vec![5, 3],
        },
        TensorSpec {
            name: "blk.0.attn_q.weight".into(),
            ty: GgmlType::Q4_0,
            shape: vec![64, 2],
        },
    ];
    let mut w = GgufWriter::create(path, &m, &specs, 32).unwrap();
    let data_offset = w.data_offset();
    w.write_tensor(&[1; 60]).unwrap();
    w.write_tensor(&[2; 72]).unwrap();
    Box::new(w).finish().unwrap();
    data_offset
}

#[test]
fn info_json_describes_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let data_offset = write_model(&path);
    let out = ferrollm(&["info", path.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Exactly one JSON object.
    let j: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "architecture",
        "container",
        "metadata",
        "tensors",
        "version",
        "vocab_size",
    ];
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(j["container"], "gguf");
    assert_eq!(j["version"], 3);
    assert_eq!(j["architecture"], "llama");
    assert_eq!(j["vocab_size"], 40);
    let meta = &j["metadata"];
    assert_eq!(meta.as_object().unwrap().len(), 6);
    assert_eq!(meta["general.name"], "tiny");
    assert_eq!(meta["llama.context_length"], 2048);
    assert_eq!(meta["llama.rope.freq_base"], 10000.0);
    assert_eq!(meta["tokenizer.ggml.token_type"], json!([1, 3]));
    let tokens = &meta["tokenizer.ggml.tokens"];
    assert_eq!(tokens["len"], 40);
    assert_eq!(tokens["element_type"], "string");
    assert_eq!(tokens["first"][0], "tok0");
    // F32 [5, 3]: 15 values * 4 bytes; Q4_0 [64, 2]: 2 rows * 2 blocks * 18 bytes. Tensor data is
    // padded to 32 bytes, so the second tensor starts 64 bytes after the first.
    assert_eq!(
        j["tensors"],
        json!([
            {"name": "token_embd.weight", "type": "f32", "shape": [5, 3], "size": 60,
             "offset": data_offset},
            {"name": "blk.0.attn_q.weight", "type": "q4_0", "shape": [64, 2], "size": 72,
             "offset": data_offset + 64},
        ])
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        data_offset + 64 + 96
    );
}

#[test]
fn info_text_shows_the_essentials() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_model(&path);
    let out = ferrollm(&["info", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "container:    gguf version 3",
        "architecture: llama",
        "vocabulary:   40 tokens",
        "llama.context_length = 2048",
        "tokenizer.ggml.tokens = [40 × string] \"tok0\", \"tok1\", \"tok2\", \"tok3\", …",
        "blk.0.attn_q.weight",
        "q4_0",
        "[64, 2]",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn info_on_a_missing_file_fails_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does-not-exist.gguf");
    let out = ferrollm(&["info", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
}

#[test]
fn info_on_a_broken_file_names_the_problem() {
    let path = common::repo_root().join("tests/corpus/gguf/type-id-9999.gguf");
    let out = ferrollm(&["info", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("tensor \"new\" has unknown ggml type id 9999"),
        "{stderr}"
    );
}
