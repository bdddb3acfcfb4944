//! Every architecture against transformers (float32): each fixture checkpoint of
//! tests/fixtures/hf is converted with ferrollm, loaded and run; its logits at every position, its
//! greedy continuation and its embedding are compared with what tools/fixtures/make_checkpoints.py
//! recorded from transformers.
//!
//! Tolerances (issue 5): F32 logits within 1e-4 of transformers' (max absolute difference relative
//! to the largest absolute logit), F16 within 1e-2; greedy continuations equal (EOS masked, as the
//! reference masks it with `min_new_tokens`).

mod common;

use common::{floats, ids, logits_in_pieces, logits_of, relative_error, session};

use ferrollm::format::{Container, GgmlType};
use ferrollm::model::{KvType, LoadParams, Model};
use ferrollm::sampling::argmax;
use ferrollm::session::{Logits, Session, SessionParams};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> Vec<PathBuf> {
    let dirs: Vec<_> = common::hf_fixtures()
        .into_iter()
        .filter(|p| p.join("reference.json").exists())
        .collect();
    assert!(dirs.len() >= 12, "fixture checkpoints are missing");
    dirs
}

fn reference(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap()
}

fn load(path: &Path) -> Arc<Model> {
    Arc::new(Model::load(path, &LoadParams::default()).unwrap())
}

/// A fixture's name, its transformers reference, and the model converted to `dtype` under `tmp`.
fn fixture_model(dir: &Path, tmp: &Path, dtype: GgmlType) -> (String, Value, Arc<Model>) {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let model = load(&common::convert_to(dir, tmp, dtype));
    (name, reference(dir), model)
}

fn check_logits(dtype: GgmlType, tolerance: f64) {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for dir in fixtures() {
        let (name, r, model) = fixture_model(&dir, tmp.path(), dtype);
        let input = ids(&r["input_ids"]);
        let want = logits_of(&r);
        let got = session(&model).eval(&input, Logits::All).unwrap().to_vec();
        let err = relative_error(&got, &want);
        report.push(format!("{name}: {err:.2e}"));
        assert!(err <= tolerance, "{name} ({dtype}): logits differ from transformers by {err:.3e} (> {tolerance}); all so far: {report:?}");
    }
    eprintln!("{dtype} logits vs transformers: {}", report.join(", "));
}

#[test]
fn f32_logits_match_transformers() {
    check_logits(GgmlType::F32, 1e-4);
}

#[test]
fn f16_logits_match_transformers() {
    check_logits(GgmlType::F16, 1e-2);
}

#[test]
fn greedy_continuations_and_embeddings_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in fixtures() {
        let (name, r, model) = fixture_model(&dir, tmp.path(), GgmlType::F32);
        let greedy = &r["greedy"];
        let masked: Vec<u32> = greedy.get("eos_masked_ids").map(ids).unwrap_or_default();
        let want = ids(&greedy["ids"]);
        let mut s = session(&model);
        let mut logits = s
            .eval(&ids(&r["input_ids"]), Logits::Last)
            .unwrap()
            .to_vec();
        let mut got = Vec::new();
        for _ in 0..want.len() {
            for &m in &masked {
                logits[m as usize] = f32::NEG_INFINITY;
            }
            let next = argmax(&logits);
            got.push(next);
            logits = s.eval(&[next], Logits::Last).unwrap().to_vec();
        }
        assert_eq!(
            got, want,
            "{name}: greedy continuation differs from transformers"
        );
        let emb = s.embed(&ids(&r["input_ids"])).unwrap();
        let err = relative_error(&emb, &floats(&r["hidden_mean"]));
        assert!(
            err < 1e-4,
            "{name}: embedding differs from transformers' mean final hidden state by {err:.3e}"
        );
    }
}

/// The default F16 key/value cache, with three threads and prompts fed in batches of three (so
/// later batches attend to cached positions), against transformers; and Q8_0 weights (repacked
/// for the interleaved kernels).
#[test]
fn f16_cache_batches_threads_and_q8_0_weights_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let r = reference(&dir);
        let input = ids(&r["input_ids"]);
        let want = logits_of(&r);
        let f32_path = common::convert_to(&dir, tmp.path(), GgmlType::F32);
        let model = load(&f32_path);
        let params = SessionParams {
            kv_type: KvType::F16,
            threads: 3,
            batch_size: 3,
            ..Default::default()
        };
        let got = Session::new(model, params.clone())
            .unwrap()
            .eval(&input, Logits::All)
            .unwrap()
            .to_vec();
        let err = relative_error(&got, &want);
        assert!(err <= 1e-2, "{name}: F16 cache logits differ by {err:.3e}");
        report.push(format!("{name} f16-kv {err:.1e}"));
        let q8 = tmp.path().join(format!("{name}-q8_0.gguf"));
        ferrollm::quantizer::quantize(
            &f32_path,
            Some(&q8),
            GgmlType::Q8_0,
            Container::Gguf,
            &mut |_| true,
        )
        .unwrap();
        let model = load(&q8);
        let got = Session::new(model, params)
            .unwrap()
            .eval(&input, Logits::All)
            .unwrap()
            .to_vec();
        let err = relative_error(&got, &want);
        report.push(format!("{name} q8_0 {err:.1e}"));
        // Quantization error of Q8_0 weights and activations on these tiny, large-weight models
        // (the same with ggml's row-by-row kernels: `FERROLLM_REPACK=0`); the kernels themselves
        // are checked tightly in `model::matmul`'s and `quant::interleaved`'s unit tests.
        assert!(err <= 0.15, "{name}: Q8_0 logits differ by {err:.3e}");
    }
    eprintln!("{}", report.join(", "));
}

/// A deferred token (what generation leaves behind when it stops at its token limit) joins the
/// context unevaluated and is run by the next evaluation, in the same batch: the logits that
/// follow are transformers', and `Logits::All` returns rows for the new tokens only.
#[test]
fn deferred_tokens_are_run_by_the_next_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in fixtures().into_iter().take(4) {
        let (name, r, model) = fixture_model(&dir, tmp.path(), GgmlType::F32);
        let input = ids(&r["input_ids"]);
        let rows: Vec<Vec<f32>> = r["logits"].as_array().unwrap().iter().map(floats).collect();
        assert!(
            input.len() >= 4,
            "{name}: the reference prompt is too short"
        );
        let k = input.len() / 2;
        let mut s = session(&model);
        s.eval(&input[..k], Logits::Last).unwrap();
        s.defer(&input[k..k + 1]).unwrap();
        assert_eq!(s.tokens(), &input[..k + 1], "{name}: context after defer");
        let got = s.eval(&input[k + 1..], Logits::All).unwrap();
        let want: Vec<f32> = rows[k + 1..].concat();
        let err = relative_error(got, &want);
        assert!(
            err <= 1e-4,
            "{name}: logits after a deferred token differ by {err:.3e}"
        );
        assert_eq!(
            s.tokens(),
            &input[..],
            "{name}: context after the evaluation"
        );
        // Deferring past the context length is refused and changes nothing.
        let n_ctx = s.context_length();
        let too_many = vec![input[0]; n_ctx];
        assert!(s.defer(&too_many).is_err());
        assert_eq!(s.tokens(), &input[..]);
    }
}

/// The fixture whose prompt (44 tokens, BOS included) is long enough for the prompt GEMMs, and
/// whose matrices (hidden 256, FFN 512) are whole k-quant super-blocks.
const LONG_PROMPT_FIXTURE: &str = "llama-h256";

/// F16 weights in one prompt batch: `llama-h256`'s 44-token prompt in one evaluation (batch size
/// 512), so every product has 44 rows, at least `GEMM_MIN_TOKENS` (32). On a CPU with AMX-BF16
/// each F16 matrix is then multiplied on AMX tiles (`quant::kernels::amx::f16_chunk`: a full
/// 32-token block and a 12-token tail; the 520-row output head ends in a partial 32-row panel); on
/// other x86-64 CPUs (or with `FERROLLM_AMX=0`) by the register-tiled FMA GEMM of the AVX-512 or
/// AVX2 build; elsewhere by the row kernel. So on every machine this checks the prompt path taken
/// there against transformers.
///
/// The fixture's weights are stored in float16, so the F16 file holds exactly the weights
/// transformers ran with and only arithmetic differs: the AMX product leaves out terms of at most
/// 2^-16 of each |w·x| (see `amx.rs`), the FMA GEMM and the row kernel compute in f32. So the
/// logits must match to the F32 file's bound (1e-4, far inside F16's 1e-2), one batch and fed in
/// pieces of 8 tokens (below `GEMM_MIN_TOKENS`: the row kernel), and the two must agree as well.
/// Measured (Emerald Rapids): one batch 2.75e-5 with AMX, 1.9e-6 with `FERROLLM_AMX=0` or
/// `FERROLLM_KERNELS=avx2`; pieces 2.3e-6; one batch vs pieces 2.65e-5. Dropping one of the four
/// bf16 part products from the AMX kernel (wl·xh) moves the one-batch logits by 1.3e-2.
#[test]
fn f16_prompt_in_one_batch_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::fixture("hf").join(LONG_PROMPT_FIXTURE);
    let (name, r, model) = fixture_model(&dir, tmp.path(), GgmlType::F16);
    let input = ids(&r["input_ids"]);
    assert!(input.len() >= 40, "{name}: the prompt is too short");
    assert_eq!(
        r["weights_dtype"], "float16",
        "{name}: weights not exact in F16"
    );
    let want = logits_of(&r);
    let one = session(&model).eval(&input, Logits::All).unwrap().to_vec();
    let err = relative_error(&one, &want);
    let pieces = logits_in_pieces(&model, &input, 8);
    let err_pieces = relative_error(&pieces, &want);
    let diff = relative_error(&one, &pieces);
    eprintln!(
        "{name} F16: one batch vs transformers {err:.2e}, pieces of 8 vs transformers \
         {err_pieces:.2e}, one batch vs pieces {diff:.2e}"
    );
    assert!(
        err <= 1e-4,
        "{name}: F16 logits of one batch differ from transformers by {err:.3e}"
    );
    assert!(
        err_pieces <= 1e-4,
        "{name}: F16 logits fed in pieces differ from transformers by {err_pieces:.3e}"
    );
    assert!(
        diff <= 1e-4,
        "{name}: F16 logits of one batch and of pieces differ by {diff:.3e}"
    );
}
