//! The quantizer: the seed's naming and refusal rules, the tensor policy, bytes equal to the
//! reference quantizer (Python `gguf`), determinism, cancellation and unwritable targets.

mod common;

use ferrollm::format::gguf::GgufWriter;
use ferrollm::format::meta::Meta;
use ferrollm::format::{Container, GgmlType, Metadata, ModelFile, TensorSpec, TensorWriter, Value};
use ferrollm::progress::Progress;
use ferrollm::quantizer::{quantize, target_path, Quantizer};
use ferrollm::{quant, ErrorKind};
use std::path::{Path, PathBuf};

/// Deterministic pseudo-random normal-ish values.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            let mut acc = 0.0;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
            }
            acc * 1.7
        })
        .collect()
}

struct Source {
    path: PathBuf,
    tensors: Vec<(TensorSpec, Vec<f32>)>,
}

/// A small LLaMA-shaped F16/F32 GGUF file (not a working model: the quantizer does not care).
fn make_source(dir: &Path, name: &str) -> Source {
    let shapes: [(&str, GgmlType, Vec<u64>); 6] = [
        ("token_embd.weight", GgmlType::F16, vec![256, 10]),
        ("blk.0.attn_norm.weight", GgmlType::F32, vec![256]),
        ("blk.0.attn_q.weight", GgmlType::F16, vec![256, 8]),
        ("blk.0.attn_q.bias", GgmlType::F32, vec![8]),
        ("blk.0.ffn_down.weight", GgmlType::F16, vec![96, 4]),
        ("output.weight", GgmlType::F32, vec![256, 10]),
    ];
    let mut md = Metadata::new();
    md.set("general.architecture", Value::String("llama".into()));
    md.set("general.file_type", Value::U32(1));
    md.set("llama.block_count", Value::U32(1));
    let mut tensors = Vec::new();
    for (i, (n, ty, shape)) in shapes.into_iter().enumerate() {
        let count = shape.iter().product::<u64>() as usize;
        let mut v = values(count, i as u64 + 1);
        if n == "blk.0.attn_q.weight" {
            v[..256].fill(0.25); // a row of equal values
            v[256..512].fill(0.0); // a row of zeros
        }
        tensors.push((
            TensorSpec {
                name: n.into(),
                ty,
                shape,
            },
            v,
        ));
    }
    let path = dir.join(name);
    let specs: Vec<TensorSpec> = tensors.iter().map(|(s, _)| s.clone()).collect();
    let mut w = GgufWriter::create(&path, &md, &specs, 32).unwrap();
    for (spec, v) in &tensors {
        let mut bytes = vec![0u8; spec.ty.tensor_size(&spec.shape).unwrap() as usize];
        quant::quantize(spec.ty, v, &mut bytes).unwrap();
        w.write_tensor(&bytes).unwrap();
    }
    Box::new(w).finish().unwrap();
    Source { path, tensors }
}

fn no_progress() -> impl FnMut(&Progress<'_>) -> bool {
    |_| true
}

#[test]
fn naming_follows_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("gpt2-f16.bin");
    let d = dir.path();
    let name = |dst: Option<&Path>, ty, c| target_path(&src, dst, ty, c).unwrap();
    assert_eq!(
        name(None, GgmlType::Q4_0, Container::Ggjt),
        d.join("gpt2-q4_0-ggjt.bin")
    );
    assert_eq!(
        name(None, GgmlType::Q5_1, Container::Ggml),
        d.join("gpt2-q5_1.bin")
    );
    assert_eq!(
        name(None, GgmlType::Q4_K, Container::Gguf),
        d.join("gpt2-q4_k.gguf")
    );
    assert_eq!(
        name(Some(d), GgmlType::Q8_0, Container::Gguf),
        d.join("gpt2-q8_0.gguf")
    );
    // An explicit file path is used as is, existing or not.
    assert_eq!(
        name(Some(&d.join("x.bin")), GgmlType::Q8_0, Container::Gguf),
        d.join("x.bin")
    );
    // A path that does not exist and has no extension is a folder (created).
    let sub = d.join("out");
    assert_eq!(
        name(Some(&sub), GgmlType::Q4_0, Container::Ggjt),
        sub.join("gpt2-q4_0-ggjt.bin")
    );
    assert!(sub.is_dir());
}

#[test]
fn quantized_bytes_follow_the_policy_and_the_reference_quantizer() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    let out = quantize(
        &src.path,
        None,
        GgmlType::Q4_K,
        Container::Gguf,
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(out.path, dir.path().join("tiny-q4_k.gguf"));
    assert!(!out.skipped_existing);
    let f = ModelFile::open(&out.path, None).unwrap();
    let want = [
        ("token_embd.weight", GgmlType::Q4_K),
        ("blk.0.attn_norm.weight", GgmlType::F32),
        ("blk.0.attn_q.weight", GgmlType::Q4_K),
        ("blk.0.attn_q.bias", GgmlType::F32),
        ("blk.0.ffn_down.weight", GgmlType::Q5_0), // 96 is not a multiple of 256: llama.cpp's fallback
        ("output.weight", GgmlType::Q4_K),
    ];
    assert_eq!(
        f.tensors
            .iter()
            .map(|t| (t.name.as_str(), t.ty))
            .collect::<Vec<_>>(),
        want
    );
    assert_eq!(out.fallbacks.len(), 1);
    assert_eq!(out.fallbacks[0].tensor, "blk.0.ffn_down.weight");
    assert_eq!(f.metadata.get_u64("general.file_type"), Some(14));
    assert_eq!(f.metadata.get_u64("general.quantization_version"), Some(2));
    // Each tensor holds exactly the quantization of the source values (as the source stores them).
    for ((spec, v), t) in src.tensors.iter().zip(&f.tensors) {
        let mut stored = vec![0u8; spec.ty.tensor_size(&spec.shape).unwrap() as usize];
        quant::quantize(spec.ty, v, &mut stored).unwrap();
        let mut as_f32 = vec![0f32; v.len()];
        quant::dequantize(spec.ty, &stored, &mut as_f32).unwrap();
        let mut expected = vec![0u8; t.size as usize];
        quant::quantize(t.ty, &as_f32, &mut expected).unwrap();
        assert_eq!(f.tensor_data(t), &expected[..], "{}", t.name);
    }
    // The sidecar tells the truth about the file.
    let meta = Meta::read(&out.meta_path).unwrap();
    assert_eq!(meta.quantization, GgmlType::Q4_K);
    assert_eq!(meta.container, Container::Gguf);
    assert_eq!(
        meta.hash.as_deref(),
        Some(
            ferrollm::format::meta::hash_file(&out.path)
                .unwrap()
                .as_str()
        )
    );
}

#[test]
fn q4_0_file_matches_python_gguf_quantizer() {
    if !common::python_has(&["gguf", "numpy"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    let out = quantize(
        &src.path,
        Some(dir.path()),
        GgmlType::Q4_0,
        Container::Gguf,
        &mut no_progress(),
    )
    .unwrap();
    // Python reads the source, quantizes every 2-D weight but the norms with gguf's reference Q4_0
    // and compares with what it reads from our output.
    let script = r#"
import sys, numpy as np
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.quants import quantize, dequantize
src, dst = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
out = {t.name: t for t in dst.tensors}
for t in src.tensors:
    o = out[t.name]
    vals = dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
    if len(t.shape) >= 2 and 'norm' not in t.name:
        assert o.tensor_type == T.Q4_0, (t.name, o.tensor_type)
        cols = int(t.shape[0])
        want = quantize(vals.reshape(-1, cols), T.Q4_0).tobytes()
    else:
        assert o.tensor_type == T.F32, (t.name, o.tensor_type)
        want = vals.tobytes()
    assert bytes(o.data.tobytes()) == want, t.name
print("ok", len(src.tensors))
"#;
    let printed = common::run_python(
        script,
        &[src.path.to_str().unwrap(), out.path.to_str().unwrap()],
    );
    assert_eq!(printed.trim(), "ok 6");
}

#[test]
fn existing_target_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    let target = dir.path().join("tiny-q8_0.gguf");
    std::fs::write(&target, b"precious").unwrap();
    let out = quantize(
        &src.path,
        None,
        GgmlType::Q8_0,
        Container::Gguf,
        &mut no_progress(),
    )
    .unwrap();
    assert!(out.skipped_existing);
    assert_eq!(out.path, target);
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}

#[test]
fn quantized_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    let q = quantize(
        &src.path,
        None,
        GgmlType::Q8_0,
        Container::Gguf,
        &mut no_progress(),
    )
    .unwrap();
    let err = Quantizer::open(&q.path).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("already quantized"), "{err}");
    assert!(err.message().contains("tiny-q8_0.gguf"), "{err}");
}

#[test]
fn same_input_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    let a = quantize(
        &src.path,
        Some(&dir.path().join("a.gguf")),
        GgmlType::Q5_1,
        Container::Gguf,
        &mut no_progress(),
    )
    .unwrap();
    let b = quantize(
        &src.path,
        Some(&dir.path().join("b.gguf")),
        GgmlType::Q5_1,
        Container::Gguf,
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(a.path).unwrap(),
        std::fs::read(b.path).unwrap()
    );
}

#[test]
fn cancellation_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut calls = 0;
    let mut cancel_third = |_: &Progress<'_>| {
        calls += 1;
        calls < 3
    };
    let err = quantize(
        &src.path,
        None,
        GgmlType::Q4_0,
        Container::Gguf,
        &mut cancel_third,
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn unwritable_target_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    // A folder inside a regular file cannot be created.
    let bad = src.path.join("sub");
    let err = quantize(
        &src.path,
        Some(&bad),
        GgmlType::Q4_0,
        Container::Gguf,
        &mut no_progress(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.message().contains("sub"), "{err}");
}

#[test]
fn crossing_container_families_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    let err = quantize(
        &src.path,
        None,
        GgmlType::Q8_0,
        Container::Ggjt,
        &mut no_progress(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("--container ggjt"), "{err}");
    let legacy = common::fixture("legacy/gpt2-f16.bin");
    let err = quantize(
        &legacy,
        Some(dir.path()),
        GgmlType::Q8_0,
        Container::Gguf,
        &mut no_progress(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing written"
    );
}

#[test]
fn unknown_target_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), "tiny-f16.gguf");
    let err = quantize(
        &src.path,
        None,
        GgmlType::IQ2_XXS,
        Container::Gguf,
        &mut no_progress(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.message().contains("iq2_xxs") && err.message().contains("q4_0"),
        "{err}"
    );
}

#[test]
fn legacy_llm_rs_file_quantizes_to_ggjt() {
    let dir = tempfile::tempdir().unwrap();
    // Copy the llm-rs fixture with its .meta so the seed's AutoQuantizer flow applies.
    for ext in ["bin", "meta"] {
        std::fs::copy(
            common::fixture(&format!("legacy/gpt2-f16.{ext}")),
            dir.path().join(format!("gpt2-f16.{ext}")),
        )
        .unwrap();
    }
    let src = dir.path().join("gpt2-f16.bin");
    let out = quantize(
        &src,
        None,
        GgmlType::Q8_0,
        Container::Ggjt,
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(out.path, dir.path().join("gpt2-q8_0-ggjt.bin"));
    let f = ModelFile::open(&out.path, None).unwrap();
    assert_eq!((f.container, f.version), (Container::Ggjt, 3));
    assert_eq!(f.architecture(), Some("gpt2"));
    let source = ModelFile::open(&src, None).unwrap();
    let (vocab, source_vocab) = (f.legacy_vocab.unwrap(), source.legacy_vocab.unwrap());
    assert_eq!(vocab.tokens, source_vocab.tokens);
    // GGML stores no scores; GGJT stores one per token (zero here).
    assert!(source_vocab.scores.is_empty());
    assert!(vocab.scores.len() == vocab.tokens.len() && vocab.scores.iter().all(|&s| s == 0.0));
    assert_eq!(f.tensors.len(), source.tensors.len());
    assert!(f.tensors.iter().any(|t| t.ty == GgmlType::Q8_0));
    let meta = Meta::read(&out.meta_path).unwrap();
    assert_eq!(
        (meta.container, meta.quantization),
        (Container::Ggjt, GgmlType::Q8_0)
    );
}
