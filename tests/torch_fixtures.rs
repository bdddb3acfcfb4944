//! PyTorch `.bin` checkpoints written by torch itself (tests/fixtures/torch, made by
//! tools/fixtures/make_torch_fixtures.py): every value ferrollm reads is compared with the bytes
//! torch gave for the same tensor (expected.json) or with the safetensors file of the same model —
//! never with ferrollm's own output.

mod common;

use common::fixture;
use ferrollm::convert::torch::{TorchCheckpoint, TorchDtype, TorchFile};
use ferrollm::ErrorKind;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("torch/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Checks every tensor of `ck` against torch's description; returns how many values were compared.
fn check_against(ck: &TorchCheckpoint, want: &Value, label: &str) -> usize {
    let want = want.as_object().unwrap();
    let names: Vec<&str> = ck.tensors().map(|(n, _)| n).collect();
    let want_names: Vec<&str> = want.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, want_names, "{label}: tensor names");
    let mut compared = 0;
    for (name, w) in want {
        let t = ck.get(name).unwrap();
        assert_eq!(
            t.dtype().name(),
            w["dtype"].as_str().unwrap(),
            "{label} {name}"
        );
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape(), shape, "{label} {name}: shape");
        assert_eq!(
            t.is_contiguous(),
            w["contiguous"].as_bool().unwrap(),
            "{label} {name}: contiguity"
        );
        let data = ck.data(t);
        if !t.dtype().is_supported() {
            let e = data.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{label} {name}: {e}");
            assert!(
                e.message().contains(name) && e.message().contains(t.dtype().name()),
                "{e}"
            );
            continue;
        }
        if name == "expanded" {
            // A stride-0 view: its values are more bytes than its storage holds; refused.
            let e = data.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert!(
                e.message().contains("expanded") && e.message().contains(name),
                "{e}"
            );
            continue;
        }
        let data = data.unwrap_or_else(|e| panic!("{label} {name}: {e}"));
        let big_endian = ck.files()[t.shard()].is_big_endian();
        match &data {
            Cow::Borrowed(_) => assert!(t.is_contiguous() && !big_endian, "{label} {name}"),
            Cow::Owned(_) => assert!(!t.is_contiguous() || big_endian, "{label} {name}"),
        }
        assert_eq!(
            data.as_ref(),
            unhex(w["hex"].as_str().unwrap()).as_slice(),
            "{label} {name}: values differ from torch's"
        );
        assert_eq!(data.len(), t.nbytes());
        compared += t.numel();
    }
    compared
}

#[test]
fn state_dict_values_match_torch() {
    let ck = TorchCheckpoint::open_file(&fixture("torch/state.bin")).unwrap();
    let n = check_against(&ck, &expected()["state.bin"], "state.bin");
    assert!(n > 50, "{n}");
    // The layouts the fixture is meant to exercise.
    let t = |n: &str| ck.get(n).unwrap();
    assert_eq!(t("scalar").shape(), Vec::<usize>::new());
    assert_eq!(t("scalar").numel(), 1);
    assert_eq!(t("empty").numel(), 0);
    assert_eq!(t("offset.slice").storage_offset(), 5);
    assert!(t("offset.slice").is_contiguous());
    assert_eq!(t("strided.cols").strides(), vec![6, 2]);
    assert_eq!(t("strided.cols").storage_offset(), 6);
    assert!(!t("f32.matrix_t").is_contiguous());
    assert!(!t("bf16.transposed").is_contiguous());
    assert_eq!(t("expanded").strides(), vec![0, 1]);
    assert_eq!(t("int.ids").dtype(), TorchDtype::I64);
    assert_eq!(t("bool.mask").dtype(), TorchDtype::Bool);
    assert_eq!(t("f64.values").dtype(), TorchDtype::F64);
}

#[test]
fn tied_tensors_share_one_storage_borrowed_from_the_map() {
    let ck = TorchCheckpoint::open_file(&fixture("torch/state.bin")).unwrap();
    let a = ck.data(ck.get("tied.a").unwrap()).unwrap();
    let b = ck.data(ck.get("tied.b").unwrap()).unwrap();
    assert!(matches!((&a, &b), (Cow::Borrowed(_), Cow::Borrowed(_))));
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "both names view the same bytes of the file"
    );
    // The transposed view reads the same storage as the matrix, rearranged.
    let m = ck.data(ck.get("f32.matrix").unwrap()).unwrap();
    let mt = ck.data(ck.get("f32.matrix_t").unwrap()).unwrap();
    let f = |b: &[u8], i: usize| f32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    for r in 0..3 {
        for c in 0..4 {
            assert_eq!(f(&m, r * 4 + c), f(&mt, c * 3 + r));
        }
    }
}

#[test]
fn protocol_4_pickle_is_read() {
    let ck = TorchCheckpoint::open_file(&fixture("torch/protocol4.bin")).unwrap();
    check_against(&ck, &expected()["protocol4.bin"], "protocol4.bin");
}

#[test]
fn big_endian_checkpoint_is_byte_swapped() {
    // Re-zipped by Python's zipfile: no 64-byte alignment, no zip64, no data descriptors.
    let ck = TorchCheckpoint::open_file(&fixture("torch/bigendian.bin")).unwrap();
    assert!(ck.files()[0].is_big_endian());
    check_against(&ck, &expected()["bigendian.bin"], "bigendian.bin");
}

#[test]
fn sharded_checkpoint_through_its_index() {
    let dir = fixture("torch/sharded");
    let ck = TorchCheckpoint::open(&dir).unwrap();
    assert_eq!(ck.files().len(), 2);
    check_against(&ck, &expected()["sharded"], "sharded");
    for (name, t) in ck.tensors() {
        assert!(ck.shard_path(t).starts_with(&dir), "{name}");
    }
}

#[test]
fn sharded_index_naming_a_missing_tensor_or_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("torch/sharded");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, tmp.path().join(f.file_name().unwrap())).unwrap();
    }
    let index = tmp.path().join("pytorch_model.bin.index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    json["weight_map"]["ghost.weight"] = "pytorch_model-00001-of-00002.bin".into();
    std::fs::write(&index, json.to_string()).unwrap();
    let e = TorchCheckpoint::open(tmp.path()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Format);
    assert!(e.message().contains("ghost.weight"), "{e}");

    json["weight_map"]["ghost.weight"] = "../elsewhere.bin".into();
    std::fs::write(&index, json.to_string()).unwrap();
    let e = TorchCheckpoint::open(tmp.path()).err().unwrap();
    assert!(e.message().contains("plain file names"), "{e}");

    json["weight_map"]["ghost.weight"] = "pytorch_model-00009-of-00009.bin".into();
    std::fs::write(&index, json.to_string()).unwrap();
    let e = TorchCheckpoint::open(tmp.path()).err().unwrap();
    assert!(e.message().contains("does not exist"), "{e}");
}

#[test]
fn legacy_serialization_is_refused_clearly() {
    let e = TorchCheckpoint::open_file(&fixture("torch/legacy.bin"))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("legacy"), "{e}");
}

const MARKER: &str = "/tmp/ferrollm-torch-fixture-payload-ran";

#[test]
fn os_system_payload_is_refused_and_never_runs() {
    let _ = std::fs::remove_file(MARKER);
    let e = TorchCheckpoint::open_file(&fixture("torch/malicious/os_system.bin"))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // os.system pickles as posix.system on Linux (where the fixture was made).
    assert!(e.message().contains("`posix.system`"), "{e}");
    assert!(e.message().contains("os_system.bin"), "{e}");
    assert!(!Path::new(MARKER).exists(), "the payload ran");
}

#[test]
fn eval_payload_in_metadata_is_refused_and_never_runs() {
    let _ = std::fs::remove_file(MARKER);
    let e = TorchCheckpoint::open_file(&fixture("torch/malicious/eval.bin"))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // builtins.eval pickles as __builtin__.eval in protocol 2.
    assert!(e.message().contains("`__builtin__.eval`"), "{e}");
    assert!(!Path::new(MARKER).exists(), "the payload ran");
}

/// A safetensors file's tensors: name → (dtype, shape, bytes). Parsed here (8-byte header length,
/// JSON header, data) so the comparison does not go through any ferrollm reader.
fn read_safetensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = BTreeMap::new();
    for (name, v) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let off = v["data_offsets"].as_array().unwrap();
        let (a, b) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        let shape = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        out.insert(
            name.clone(),
            (
                v["dtype"].as_str().unwrap().to_string(),
                shape,
                data[a..b].to_vec(),
            ),
        );
    }
    out
}

fn check_hf(name: &str, shards: usize) {
    let ck = TorchCheckpoint::open(&fixture(&format!("torch/hf/{name}"))).unwrap();
    assert_eq!(ck.files().len(), shards, "{name}");
    let mut want = BTreeMap::new();
    for f in std::fs::read_dir(fixture(&format!("hf/{name}"))).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "safetensors") {
            want.extend(read_safetensors(&f));
        }
    }
    let names: Vec<&str> = ck.tensors().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        want.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        "{name}"
    );
    for (tname, t) in ck.tensors() {
        let (dtype, shape, bytes) = &want[tname];
        assert_eq!(t.dtype().name(), dtype, "{name} {tname}");
        assert_eq!(&t.shape(), shape, "{name} {tname}");
        assert_eq!(
            ck.data(t).unwrap().as_ref(),
            bytes.as_slice(),
            "{name} {tname}"
        );
    }
}

#[test]
fn hf_gpt2_bin_equals_its_safetensors() {
    check_hf("gpt2", 1);
}

#[test]
fn hf_llama_bf16_sharded_bin_equals_its_safetensors() {
    check_hf("llama-bf16", 3);
}

#[test]
fn every_truncation_of_a_real_checkpoint_is_an_error_not_a_panic() {
    let bytes = std::fs::read(fixture("torch/state.bin")).unwrap();
    for n in 0..bytes.len() {
        let r = TorchFile::from_bytes(Path::new("cut.bin"), bytes[..n].to_vec());
        let e = r.err().unwrap_or_else(|| panic!("{n} bytes parsed"));
        assert!(
            matches!(e.kind(), ErrorKind::Format | ErrorKind::Unsupported),
            "{n}: {e}"
        );
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let bytes = std::fs::read(fixture("torch/state.bin")).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        if let Ok(f) = TorchFile::from_bytes(Path::new("flip.bin"), b) {
            for t in f.tensors() {
                if let Ok(d) = f.data(t) {
                    assert_eq!(d.len(), t.nbytes());
                }
            }
        }
    }
}
