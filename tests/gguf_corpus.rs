//! The GGUF reader against the bad-input corpus in `tests/corpus/gguf` (made by its
//! `make_corpus.py`; files found by fuzzing are added there by hand): every broken file gives a
//! FORMAT error naming the file and the specific problem, the valid files read as their JSON
//! descriptions say, and no truncation or byte change of a valid file panics.

mod common;

use ferrollm::format::ModelFile;
use ferrollm::ErrorKind;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    common::repo_root().join("tests/corpus/gguf")
}

/// (file name, fragments) from expected.tsv.
fn expectations() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split('\t').map(str::to_string);
            let name = parts.next().unwrap();
            (name, parts.collect())
        })
        .collect()
}

#[test]
fn every_corpus_file_gives_its_expected_result() {
    let expected = expectations();
    let mut failures = vec![];
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    on_disk.sort();
    for name in &on_disk {
        if !expected.iter().any(|(n, _)| n == name) {
            failures.push(format!("{name}: not listed in expected.tsv"));
        }
    }
    assert!(expected.len() >= 40, "the corpus lost files");
    for (name, fragments) in &expected {
        let path = corpus_dir().join(name);
        let result = ModelFile::open(&path, None);
        if fragments == &["OK"] {
            if let Err(e) = result {
                failures.push(format!("{name}: expected to parse, got: {e}"));
            }
            continue;
        }
        let err = match result {
            Ok(_) => {
                failures.push(format!("{name}: parsed, but should have failed"));
                continue;
            }
            Err(e) => e,
        };
        if !matches!(err.kind(), ErrorKind::Format | ErrorKind::Io) {
            failures.push(format!("{name}: kind {:?}: {err}", err.kind()));
        }
        let msg = err.message();
        if !msg.contains(&path.display().to_string()) {
            failures.push(format!("{name}: message does not name the file: {msg}"));
        }
        for f in fragments {
            if !msg.contains(f.as_str()) {
                failures.push(format!("{name}: message lacks {f:?}: {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn valid_files() -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = vec![];
    for (name, fragments) in expectations() {
        if fragments == ["OK"] && name.starts_with("valid-") {
            let path = corpus_dir().join(&name);
            let desc = path.with_extension("json");
            let desc = serde_json::from_str(&std::fs::read_to_string(&desc).unwrap()).unwrap();
            out.push((path, desc));
        }
    }
    assert!(out.len() >= 2);
    out
}

#[test]
fn valid_files_read_as_described() {
    for (path, desc) in valid_files() {
        let f = ModelFile::open(&path, None).unwrap();
        assert_eq!(u64::from(f.version), desc["version"].as_u64().unwrap());
        let meta = desc["metadata"].as_array().unwrap();
        assert_eq!(f.metadata.len(), meta.len(), "{}", path.display());
        for ((key, value), want) in f.metadata.iter().zip(meta) {
            assert_eq!(key, want[0].as_str().unwrap());
            assert_eq!(
                value.value_type().name(),
                want[1].as_str().unwrap(),
                "{key}"
            );
            assert_eq!(value.to_json(usize::MAX), want[2], "{key}");
        }
        let tensors = desc["tensors"].as_array().unwrap();
        assert_eq!(f.tensors.len(), tensors.len());
        for (i, (t, want)) in f.tensors.iter().zip(tensors).enumerate() {
            assert_eq!(t.name, want["name"].as_str().unwrap());
            assert_eq!(t.ty.name(), want["type"].as_str().unwrap());
            let shape: Vec<u64> = serde_json::from_value(want["shape"].clone()).unwrap();
            assert_eq!(t.shape, shape);
            assert_eq!(t.offset, want["offset"].as_u64().unwrap());
            assert_eq!(t.size, want["size"].as_u64().unwrap());
            // "byte k of tensor i is (k*37 + i*11 + 5) % 256"
            let data = f.tensor_data(t);
            assert!(data
                .iter()
                .enumerate()
                .all(|(k, &b)| b as usize == (k * 37 + i * 11 + 5) % 256));
        }
    }
}

fn parse(bytes: Vec<u8>) -> ferrollm::Result<ModelFile> {
    ModelFile::from_bytes(Path::new("mutated.gguf"), bytes, None)
}

#[test]
fn every_truncation_errors_cleanly() {
    for (path, _) in valid_files() {
        let bytes = std::fs::read(&path).unwrap();
        let f = parse(bytes.clone()).unwrap();
        let data_end = f.tensors.iter().map(|t| t.offset + t.size).max().unwrap() as usize;
        for n in 0..bytes.len() {
            match parse(bytes[..n].to_vec()) {
                Err(e) => {
                    assert!(n < data_end, "{}: prefix {n} failed: {e}", path.display());
                    assert_eq!(e.kind(), ErrorKind::Format, "prefix {n}: {e}");
                    assert!(e.message().starts_with("mutated.gguf: "), "{e}");
                }
                // Only the padding after the last tensor may go.
                Ok(_) => assert!(n >= data_end, "{}: prefix {n} parsed", path.display()),
            }
        }
    }
}

#[test]
fn changed_bytes_never_panic() {
    for (path, _) in valid_files() {
        let bytes = std::fs::read(&path).unwrap();
        for i in 0..bytes.len() {
            let old = bytes[i];
            for new in [
                0x00,
                0xff,
                old ^ 0x80,
                old.wrapping_add(1),
                old.wrapping_sub(1),
            ] {
                let mut m = bytes.clone();
                m[i] = new;
                match parse(m) {
                    Ok(f) => {
                        let total: usize = f.tensors.iter().map(|t| f.tensor_data(t).len()).sum();
                        assert!(total <= f.bytes().len());
                    }
                    Err(e) => assert_eq!(e.kind(), ErrorKind::Format, "byte {i} = {new}: {e}"),
                }
            }
        }
    }
}
