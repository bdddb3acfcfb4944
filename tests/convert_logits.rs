//! End to end: each HF fixture converted to GGUF and run by ferrollm's engine gives transformers'
//! logits (`reference.json`, computed by transformers in float32), and the embedded tokenizer gives
//! transformers' token ids. A wrong transform, name or hyperparameter shows up here as wrong logits.

mod convert_common;

use convert_common::*;
use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};
use ferrollm::model::{KvType, LoadParams, Model};
use ferrollm::session::{Logits, Session, SessionParams};
use std::sync::Arc;

fn logits_of(path: &std::path::Path, ids: &[u32]) -> (Arc<Model>, Vec<f32>) {
    let model = Arc::new(Model::load(path, &LoadParams::default()).unwrap());
    let params = SessionParams {
        threads: 1,
        kv_type: KvType::F32,
        ..Default::default()
    };
    let mut session = Session::new(model.clone(), params).unwrap();
    let logits = session.eval(ids, Logits::All).unwrap();
    (model, logits)
}

#[test]
fn converted_models_reproduce_transformers_logits() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in fixtures() {
        let reference = read_json(&dir.join("reference.json"));
        let ids: Vec<u32> = reference["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let want: Vec<f32> = reference["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        // F32 weights: the engine's float32 arithmetic against transformers' float32.
        // F16 weights: within F16 rounding of the weights.
        for (dtype, tolerance) in [(GgmlType::F32, 2e-4f32), (GgmlType::F16, 5e-2)] {
            let out = Converter::open(&dir)
                .unwrap()
                .convert(
                    &tmp.path().join(format!("{}.gguf", dtype.name())),
                    &ConvertParams {
                        container: Container::Gguf,
                        dtype,
                    },
                    &mut |_| true,
                )
                .unwrap();
            let (model, got) = logits_of(&out, &ids);
            assert_eq!(got.len(), want.len(), "{}", dir.display());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0f32, f32::max);
            assert!(
                worst <= tolerance,
                "{} {dtype}: logits differ by up to {worst}",
                dir.display()
            );

            if dtype == GgmlType::F32 {
                let tok = model.tokenizer().unwrap();
                for case in reference["tokenization"].as_array().unwrap() {
                    let text = case["text"].as_str().unwrap();
                    let want: Vec<u32> = case["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_u64().unwrap() as u32)
                        .collect();
                    assert_eq!(
                        tok.encode(text, true).unwrap(),
                        want,
                        "{}: {text:?}",
                        dir.display()
                    );
                }
            }
        }
    }
}
