//! Bad input: each case is a clear error naming the file or tensor at fault, and leaves no file.

mod convert_common;

use convert_common::*;
use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};
use ferrollm::{Error, ErrorKind};
use std::path::Path;

/// A copy of fixture `name` in a temporary folder, modified by `edit`.
fn broken(name: &str, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(name), &tmp.path().join(name));
    edit(&tmp.path().join(name));
    tmp
}

/// Converts `dir` into a fresh folder; returns the error and checks that the folder stayed empty.
fn convert_err(dir: &Path, params: ConvertParams) -> Error {
    let out = tempfile::tempdir().unwrap();
    let result = Converter::open(dir).and_then(|c| c.convert(out.path(), &params, &mut |_| true));
    let err = result.expect_err("conversion should fail");
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(left.is_empty(), "{err}: left {left:?}");
    err
}

fn assert_err(err: &Error, kind: ErrorKind, needles: &[&str]) {
    assert_eq!(err.kind(), kind, "{err}");
    for n in needles {
        assert!(err.message().contains(n), "{err:?} does not mention {n:?}");
    }
}

fn edit_tensors(
    dir: &Path,
    file: &str,
    f: impl FnOnce(&mut std::collections::BTreeMap<String, St>),
) {
    let path = dir.join(file);
    let mut t = read_safetensors(&path);
    f(&mut t);
    write_safetensors(&path, &t);
}

#[test]
fn missing_config_json() {
    let tmp = broken("gpt2", |d| {
        std::fs::remove_file(d.join("config.json")).unwrap()
    });
    let err = Converter::open(&tmp.path().join("gpt2")).unwrap_err();
    assert_err(&err, ErrorKind::Io, &["config.json"]);
}

#[test]
fn config_json_that_is_not_json() {
    let tmp = broken("gpt2", |d| {
        std::fs::write(d.join("config.json"), "{ nope").unwrap()
    });
    let err = Converter::open(&tmp.path().join("gpt2")).unwrap_err();
    assert_err(&err, ErrorKind::Format, &["config.json", "JSON"]);
}

#[test]
fn missing_weights() {
    let tmp = broken("gpt2", |d| {
        std::fs::remove_file(d.join("model.safetensors")).unwrap()
    });
    let err = Converter::open(&tmp.path().join("gpt2")).unwrap_err();
    assert_err(
        &err,
        ErrorKind::Format,
        &["model.safetensors", "model.safetensors.index.json"],
    );
}

#[test]
fn missing_tokenizer_json() {
    let tmp = broken("gpt2", |d| {
        std::fs::remove_file(d.join("tokenizer.json")).unwrap()
    });
    let err = convert_err(&tmp.path().join("gpt2"), ConvertParams::default());
    assert_err(&err, ErrorKind::Format, &["tokenizer.json"]);
}

#[test]
fn a_missing_tensor() {
    let tmp = broken("gpt2", |d| {
        edit_tensors(d, "model.safetensors", |t| {
            t.remove("transformer.h.1.mlp.c_fc.bias").unwrap();
        })
    });
    let err = convert_err(&tmp.path().join("gpt2"), ConvertParams::default());
    assert_err(
        &err,
        ErrorKind::Format,
        &[
            "transformer.h.1.mlp.c_fc.bias",
            "missing",
            "model.safetensors",
        ],
    );
}

#[test]
fn an_unexpected_tensor() {
    let tmp = broken("llama", |d| {
        edit_tensors(d, "model.safetensors", |t| {
            t.insert(
                "model.layers.0.self_attn.extra.weight".into(),
                St::f32(&[2, 2], &[1.0; 4]),
            );
        })
    });
    let err = convert_err(&tmp.path().join("llama"), ConvertParams::default());
    assert_err(
        &err,
        ErrorKind::Format,
        &[
            "model.layers.0.self_attn.extra.weight",
            "unexpected",
            "model.safetensors",
        ],
    );
}

#[test]
fn a_layer_more_than_config_json_says() {
    let tmp = broken("gpt2", |d| {
        let mut cfg = read_json(&d.join("config.json"));
        cfg["n_layer"] = 1.into();
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    });
    let err = convert_err(&tmp.path().join("gpt2"), ConvertParams::default());
    assert_err(&err, ErrorKind::Format, &["transformer.h.1.", "unexpected"]);
}

#[test]
fn shapes_that_disagree_with_config_json() {
    let tmp = broken("gpt2", |d| {
        let mut cfg = read_json(&d.join("config.json"));
        cfg["n_inner"] = 256.into();
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    });
    let err = convert_err(&tmp.path().join("gpt2"), ConvertParams::default());
    assert_err(
        &err,
        ErrorKind::Format,
        &[
            "transformer.h.0.mlp.c_proj.weight",
            "[128, 64]",
            "[256, 64]",
            "config.json",
        ],
    );

    let tmp = broken("llama-gqa", |d| {
        let mut cfg = read_json(&d.join("config.json"));
        cfg["num_key_value_heads"] = 4.into();
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    });
    let err = convert_err(&tmp.path().join("llama-gqa"), ConvertParams::default());
    assert_err(
        &err,
        ErrorKind::Format,
        &["self_attn.k_proj.weight", "shape"],
    );
}

#[test]
fn integer_weights_are_unsupported() {
    let tmp = broken("gpt2", |d| {
        edit_tensors(d, "model.safetensors", |t| {
            let wte = t.get_mut("transformer.wte.weight").unwrap();
            let n: usize = wte.shape.iter().product();
            wte.dtype = "I64".into();
            wte.bytes = (0..n as i64).flat_map(|v| v.to_le_bytes()).collect();
        })
    });
    let err = convert_err(&tmp.path().join("gpt2"), ConvertParams::default());
    assert_err(
        &err,
        ErrorKind::Unsupported,
        &["transformer.wte.weight", "I64", "model.safetensors"],
    );
}

#[test]
fn a_corrupt_safetensors_header() {
    let tmp = broken("gpt2", |d| {
        let p = d.join("model.safetensors");
        let mut b = std::fs::read(&p).unwrap();
        b[8..24].copy_from_slice(b"this is not json");
        std::fs::write(&p, b).unwrap();
    });
    let err = Converter::open(&tmp.path().join("gpt2")).unwrap_err();
    assert_err(
        &err,
        ErrorKind::Format,
        &["model.safetensors", "not a valid safetensors file"],
    );

    let tmp = broken("gpt2", |d| {
        let p = d.join("model.safetensors");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 100]).unwrap();
    });
    let err = Converter::open(&tmp.path().join("gpt2")).unwrap_err();
    assert_err(&err, ErrorKind::Format, &["model.safetensors"]);

    let tmp = broken("gpt2", |d| {
        std::fs::write(d.join("model.safetensors"), b"abc").unwrap()
    });
    let err = Converter::open(&tmp.path().join("gpt2")).unwrap_err();
    assert_err(&err, ErrorKind::Format, &["model.safetensors", "too short"]);
}

#[test]
fn an_index_naming_a_missing_shard() {
    let tmp = broken("llama-sharded", |d| {
        std::fs::remove_file(d.join("model-00003-of-00004.safetensors")).unwrap()
    });
    let err = Converter::open(&tmp.path().join("llama-sharded")).unwrap_err();
    assert_err(
        &err,
        ErrorKind::Format,
        &[
            "model.safetensors.index.json",
            "model-00003-of-00004.safetensors",
        ],
    );
}

#[test]
fn an_index_naming_the_wrong_shard() {
    let tmp = broken("llama-sharded", |d| {
        let p = d.join("model.safetensors.index.json");
        let mut idx = read_json(&p);
        let map = idx["weight_map"].as_object_mut().unwrap();
        let (name, file) = map
            .iter()
            .find(|(_, f)| f.as_str() == Some("model-00001-of-00004.safetensors"))
            .map(|(n, f)| (n.clone(), f.clone()))
            .unwrap();
        let other = if file == "model-00002-of-00004.safetensors" {
            "model-00003-of-00004.safetensors"
        } else {
            "model-00002-of-00004.safetensors"
        };
        map.insert(name, other.into());
        std::fs::write(&p, idx.to_string()).unwrap();
    });
    let err = Converter::open(&tmp.path().join("llama-sharded")).unwrap_err();
    assert_err(
        &err,
        ErrorKind::Format,
        &["model.safetensors.index.json", "does not contain"],
    );
}

#[test]
fn an_unwritable_output() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let conv = Converter::open(&fixture("gpt2")).unwrap();
    let err = conv
        .convert(
            &file.join("sub/model.gguf"),
            &ConvertParams::default(),
            &mut |_| true,
        )
        .unwrap_err();
    assert_err(&err, ErrorKind::Io, &["a-file/sub"]);
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["a-file"]);
}

#[test]
fn cancellation_leaves_nothing() {
    for stop_at in [0u64, 3, 10] {
        let out = tempfile::tempdir().unwrap();
        let target = out.path().join("new/dir");
        let conv = Converter::open(&fixture("llama")).unwrap();
        let err = conv
            .convert(&target, &ConvertParams::default(), &mut |p| {
                p.current < stop_at
            })
            .unwrap_err();
        assert_err(&err, ErrorKind::Cancelled, &["convert"]);
        // Not even the directories created for the output remain.
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "stop at {stop_at}"
        );
    }
}

#[test]
fn parameters_and_refusals() {
    let err = convert_err(
        &fixture("gpt2"),
        ConvertParams {
            container: Container::Gguf,
            dtype: GgmlType::Q4_0,
        },
    );
    assert_err(&err, ErrorKind::InvalidArgument, &["q4_0"]);
    let err = convert_err(
        &fixture("gpt2"),
        ConvertParams {
            container: Container::Ggmf,
            dtype: GgmlType::F16,
        },
    );
    assert_err(&err, ErrorKind::Unsupported, &["GGMF"]);
    // What llm-rs' legacy layouts cannot express.
    let ggjt = ConvertParams {
        container: Container::Ggjt,
        dtype: GgmlType::F16,
    };
    let err = convert_err(&fixture("llama-gqa"), ggjt);
    assert_err(&err, ErrorKind::Unsupported, &["grouped-query", "GGUF"]);
    let err = convert_err(&fixture("llama"), ggjt);
    assert_err(
        &err,
        ErrorKind::Unsupported,
        &["feed_forward_length", "GGUF"],
    );
    let ggml = ConvertParams {
        container: Container::Ggml,
        dtype: GgmlType::F16,
    };
    let err = convert_err(&fixture("llama-tied"), ggml);
    assert_err(&err, ErrorKind::Unsupported, &["scores", "GGJT"]);
    let tmp = broken("llama-tied", |d| {
        let mut cfg = read_json(&d.join("config.json"));
        cfg["rope_theta"] = 500000.0.into();
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    });
    let err = convert_err(&tmp.path().join("llama-tied"), ggjt);
    assert_err(&err, ErrorKind::Unsupported, &["freq_base", "GGUF"]);
    let tmp = broken("gptneox-sequential", |d| {
        let mut cfg = read_json(&d.join("config.json"));
        cfg["rope_parameters"]["rope_theta"] = 20000.0.into();
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    });
    let err = convert_err(&tmp.path().join("gptneox-sequential"), ggjt);
    assert_err(&err, ErrorKind::Unsupported, &["RoPE base", "GGUF"]);
    // Unsupported rope scaling is refused for GGUF too.
    let tmp = broken("llama-tied", |d| {
        let mut cfg = read_json(&d.join("config.json"));
        cfg["rope_scaling"] = serde_json::json!({"rope_type": "dynamic", "factor": 2.0});
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    });
    let err = convert_err(&tmp.path().join("llama-tied"), ConvertParams::default());
    assert_err(&err, ErrorKind::Unsupported, &["dynamic", "config.json"]);
}

#[test]
fn cli_success_and_failure() {
    let exe = env!("CARGO_BIN_EXE_ferrollm");
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(exe)
        .args(["convert"])
        .arg(fixture("gptj"))
        .arg(out.path())
        .args(["--dtype", "f32", "--container", "gguf"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let want = out.path().join("gptj-f32.gguf");
    assert_eq!(stdout.lines().last(), Some(want.to_str().unwrap()));
    assert!(want.is_file());

    let o = std::process::Command::new(exe)
        .args(["convert"])
        .arg(fixture("llama-gqa"))
        .arg(out.path())
        .args(["--arch", "llama", "--container", "ggjt"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("grouped-query"),
        "{stderr}"
    );
    assert!(o.stdout.is_empty());

    for bad in [
        &["--dtype", "q4_0"][..],
        &["--container", "zip"],
        &["--arch", "falcon"],
    ] {
        let o = std::process::Command::new(exe)
            .arg("convert")
            .arg(fixture("gpt2"))
            .arg(out.path())
            .args(bad)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{bad:?}");
        let stderr = String::from_utf8(o.stderr).unwrap();
        assert!(
            stderr.starts_with("error: ") && stderr.lines().count() == 1,
            "{bad:?}: {stderr}"
        );
    }
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["gptj-f32.gguf", "gptj-f32.meta"]);
}
