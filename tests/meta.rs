//! The `.meta` sidecar, checked against the sidecars llm-rs 0.2.15 wrote for the legacy fixtures.

mod common;

use ferrollm::format::meta::{hash_file, meta_path_for, Meta, QuantizationVersion};
use ferrollm::format::{Container, GgmlType, ModelFile};
use ferrollm::{Architecture, ErrorKind};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    common::fixture("legacy").join(name)
}

const MODELS: [&str; 8] = [
    "bloom-f16",
    "gpt2-f16",
    "gptj-f16",
    "gptj-q8_0-ggjt",
    "gptneox-f16",
    "llama-f16",
    "llama-q4_0-ggjt",
    "mpt-f16",
];

#[test]
fn reads_llm_rs_sidecars() {
    let m = Meta::read(&fixture("llama-q4_0-ggjt.meta")).unwrap();
    assert_eq!(m.model, Architecture::Llama);
    assert_eq!(m.quantization, GgmlType::Q4_0);
    assert_eq!(m.quantization_version, QuantizationVersion::V2);
    assert_eq!(m.container, Container::Ggjt);
    assert_eq!(m.converter, "llm-rs");
    assert_eq!(m.base_model.as_deref(), Some("tiny-random-llama"));
    assert_eq!(
        Meta::read_for_model(&fixture("llama-q4_0-ggjt.bin")).unwrap(),
        Some(m)
    );
    assert_eq!(
        Meta::read_for_model(Path::new("/nonexistent/x.bin")).unwrap(),
        None
    );
    let m = Meta::read(&fixture("gptneox-f16.meta")).unwrap();
    assert_eq!(m.model, Architecture::GptNeoX);
    assert_eq!(m.quantization, GgmlType::F16);
    assert_eq!(m.quantization_version, QuantizationVersion::NotQuantized);
    // llm-rs says GGML for the GGJT file its LLaMA converter writes.
    let m = Meta::read(&fixture("llama-f16.meta")).unwrap();
    assert_eq!(m.container, Container::Ggml);
    assert_eq!(
        ModelFile::open(&fixture("llama-f16.bin"), None)
            .unwrap()
            .container,
        Container::Ggjt
    );
}

#[test]
fn hashes_and_writes_byte_for_byte_like_llm_rs() {
    let dir = tempfile::tempdir().unwrap();
    for name in MODELS {
        let bin = fixture(&format!("{name}.bin"));
        let llm_rs_meta = std::fs::read(fixture(&format!("{name}.meta"))).unwrap();
        let meta = Meta::read(&fixture(&format!("{name}.meta"))).unwrap();
        assert_eq!(
            meta.hash.as_deref(),
            Some(hash_file(&bin).unwrap().as_str()),
            "{name}"
        );
        let copy = dir.path().join(format!("{name}.bin"));
        std::fs::copy(&bin, &copy).unwrap();
        let mut unhashed = meta.clone();
        unhashed.hash = None;
        let (path, written) = Meta::write(&copy, &unhashed).unwrap();
        assert_eq!(path, dir.path().join(format!("{name}.meta")));
        assert_eq!(written, meta, "{name}");
        assert_eq!(
            String::from_utf8(std::fs::read(&path).unwrap()).unwrap(),
            String::from_utf8(llm_rs_meta).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn describes_files_truthfully() {
    for name in MODELS {
        let bin = fixture(&format!("{name}.bin"));
        let llm_rs = Meta::read(&fixture(&format!("{name}.meta"))).unwrap();
        let mf = ModelFile::open(&bin, None).unwrap();
        let ours = Meta::describe(&mf, llm_rs.base_model.clone()).unwrap();
        assert_eq!(ours.model, llm_rs.model, "{name}");
        assert_eq!(ours.quantization, llm_rs.quantization, "{name}");
        assert_eq!(
            ours.quantization_version, llm_rs.quantization_version,
            "{name}"
        );
        assert_eq!(ours.converter, "ferrollm");
        if name == "llama-f16" {
            assert_eq!(
                ours.container,
                Container::Ggjt,
                "the truth, not llm-rs' GGML"
            );
        } else {
            assert_eq!(ours.container, llm_rs.container, "{name}");
        }
    }
}

#[test]
fn tolerates_missing_optional_keys_and_escapes_like_python() {
    let m = Meta::parse(
        br#"{"model": "GptJ", "quantization": "Q8_0", "container": "GGJT", "extra": 1}"#,
    )
    .unwrap();
    assert_eq!(m.model, Architecture::GptJ);
    assert_eq!(m.quantization_version, QuantizationVersion::NotQuantized);
    assert_eq!(
        (m.hash, m.base_model, m.converter.as_str()),
        (None, None, "")
    );
    let m = Meta {
        model: Architecture::Bloom,
        quantization: GgmlType::F16,
        quantization_version: QuantizationVersion::NotQuantized,
        container: Container::Ggml,
        converter: "ferrollm".into(),
        hash: None,
        base_model: Some("naïve/\"model\" 😀".into()),
    };
    let json = m.to_json();
    assert!(
        json.contains(r#""base_model": "na\u00efve/\"model\" \ud83d\ude00""#),
        "{json}"
    );
    assert!(json.contains(r#""hash": null"#), "{json}");
    assert_eq!(Meta::parse(json.as_bytes()).unwrap(), m);
}

#[test]
fn malformed_sidecars_are_format_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.meta");
    for (text, words) in [
        ("{\"model\": \"Gpt2\",", &["broken.meta", "JSON"][..]),
        ("[1, 2]", &["broken.meta", "object"]),
        (
            r#"{"quantization": "F16", "container": "GGML"}"#,
            &["\"model\"", "missing"],
        ),
        (
            r#"{"model": "Falcon", "quantization": "F16", "container": "GGML"}"#,
            &["Falcon"],
        ),
        (
            r#"{"model": "Gpt2", "quantization": "Q9", "container": "GGML"}"#,
            &["Q9"],
        ),
        (
            r#"{"model": "Gpt2", "quantization": "F16", "container": "ZIP"}"#,
            &["ZIP"],
        ),
        (
            r#"{"model": 3, "quantization": "F16", "container": "GGML"}"#,
            &["expected a string"],
        ),
        (
            r#"{"model": "Gpt2", "quantization": "F16", "container": "GGML", "quantization_version": "V7"}"#,
            &["V7"],
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = Meta::read(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Format, "{err}");
        assert!(err.message().contains("broken.meta"), "{err}");
        for w in words {
            assert!(err.message().contains(w), "{err} lacks {w}");
        }
    }
    let err = Meta::read(&dir.path().join("absent.meta")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
}

#[test]
fn sidecar_path_rule() {
    assert_eq!(
        meta_path_for(Path::new("/m/gpt2-f16.bin")),
        Path::new("/m/gpt2-f16.meta")
    );
    assert_eq!(
        meta_path_for(Path::new("x.tar.gz")),
        Path::new("x.tar.meta")
    );
    assert_eq!(meta_path_for(Path::new("noext")), Path::new("noext.meta"));
}

#[test]
fn write_is_atomic_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("m.bin");
    std::fs::write(&bin, b"not really a model").unwrap();
    std::fs::write(dir.path().join("m.meta"), "old").unwrap();
    let m =
        Meta::parse(br#"{"model": "Mpt", "quantization": "F16", "container": "GGML"}"#).unwrap();
    let (path, written) = Meta::write(&bin, &m).unwrap();
    assert_eq!(
        written.hash.as_deref(),
        Some(blake3::hash(b"not really a model").to_hex().as_str())
    );
    assert_eq!(Meta::read(&path).unwrap(), written);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporary file left"
    );
    let err = Meta::write(&dir.path().join("missing.bin"), &m).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
}
