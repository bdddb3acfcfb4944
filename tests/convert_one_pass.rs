//! Converting straight to a quantized type gives the very bytes of converting to F16 and then
//! quantizing (issue 9): for every type the quantizer produces, GGUF and the legacy containers.

mod common;

use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::meta::meta_path_for;
use ferrollm::format::{Container, GgmlType};
use ferrollm::quantizer::{quantize, TARGET_TYPES};

fn one_vs_two_pass(fixture: &str, container: Container, types: &[GgmlType]) {
    let tmp = tempfile::tempdir().unwrap();
    let conv = Converter::open(&common::fixture(&format!("hf/{fixture}"))).unwrap();
    let two = tmp.path().join("two");
    let one = tmp.path().join("one");
    std::fs::create_dir_all(&two).unwrap();
    std::fs::create_dir_all(&one).unwrap();
    let f16 = conv
        .convert(
            &two,
            &ConvertParams {
                container,
                dtype: GgmlType::F16,
            },
            &mut |_| true,
        )
        .unwrap();
    for &ty in types {
        let q = quantize(&f16, None, ty, container, &mut |_| true).unwrap();
        let direct = conv
            .convert(
                &one,
                &ConvertParams {
                    container,
                    dtype: ty,
                },
                &mut |_| true,
            )
            .unwrap();
        assert_eq!(
            direct.file_name(),
            q.path.file_name(),
            "{fixture} {ty}: the same name"
        );
        assert!(
            std::fs::read(&direct).unwrap() == std::fs::read(&q.path).unwrap(),
            "{fixture} {ty} {container}: one pass differs from two"
        );
        assert_eq!(
            std::fs::read_to_string(meta_path_for(&direct)).unwrap(),
            std::fs::read_to_string(&q.meta_path).unwrap(),
            "{fixture} {ty}: .meta"
        );
    }
}

#[test]
fn gguf_every_type() {
    // F16 and F32 are written directly from the checkpoint (F32 keeps more than an F16 file does).
    let types: Vec<GgmlType> = TARGET_TYPES
        .iter()
        .copied()
        .filter(|t| !matches!(t, GgmlType::F16 | GgmlType::F32))
        .collect();
    for fixture in ["gpt2", "llama-gqa", "mpt", "bloom"] {
        one_vs_two_pass(fixture, Container::Gguf, &types);
    }
}

#[test]
fn legacy_containers() {
    one_vs_two_pass(
        "gpt2",
        Container::Ggjt,
        &[GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_1],
    );
    one_vs_two_pass("gptneox-parallel", Container::Ggml, &[GgmlType::Q8_0]);
}
