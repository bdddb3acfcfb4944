//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};
use ferrollm::model::{KvType, Model};
use ferrollm::session::{Logits, Session, SessionParams};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The Python interpreter used for reference checks: `$FERROLLM_PYTHON`, else `python3`.
pub fn python_exe() -> String {
    std::env::var("FERROLLM_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// True when tests that need an external reference must not skip (CI sets
/// `FERROLLM_REQUIRE_PYTHON=1`).
pub fn references_required() -> bool {
    std::env::var("FERROLLM_REQUIRE_PYTHON").is_ok_and(|v| v == "1")
}

/// Checks that Python can import `modules`. Returns false (after printing why) when it cannot and
/// references are optional; panics when they are required.
pub fn python_has(modules: &[&str]) -> bool {
    let code = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = Command::new(python_exe())
        .args(["-c", &code])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!(
            "{} cannot import {modules:?}; install them with `pip install -r tests/requirements.txt`",
            python_exe()
        );
        assert!(!references_required(), "{msg} (FERROLLM_REQUIRE_PYTHON=1)");
        eprintln!("SKIPPED: {msg}");
    }
    ok
}

/// Runs a Python script with arguments; returns its standard output, panicking with its standard
/// error when it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python_exe())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("cannot start python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python printed invalid UTF-8")
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(rel)
}

/// The tiny checkpoints under `tests/fixtures/hf`, sorted by name.
pub fn hf_fixtures() -> Vec<PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(fixture("hf"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

/// The checkpoint in `dir` converted to a GGUF file of `dtype`, `<its name>-<dtype>.gguf` in
/// `out`.
pub fn convert_to(dir: &Path, out: &Path, dtype: GgmlType) -> PathBuf {
    let name = dir.file_name().unwrap().to_string_lossy();
    Converter::open(dir)
        .unwrap()
        .convert(
            &out.join(format!("{name}-{dtype}.gguf")),
            &ConvertParams {
                container: Container::Gguf,
                dtype,
            },
            &mut |_| true,
        )
        .unwrap()
}

/// Runs `script` (`python -c`) with the interpreter `python`, arguments `args` and
/// `RUST_BACKTRACE=0`. Returns its standard output, or — when it cannot start or exits with an
/// error — the exit status and the last lines of its standard error.
pub fn run_python_with(python: &str, script: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .map_err(|e| format!("cannot start {python}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        return Err(format!("{python} failed ({}): {tail}", out.status));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{python} printed invalid UTF-8"))
}

/// A cheap deterministic stream of weights in [-0.05, 0.05) for the memory tests' large files
/// (a linear congruential generator; the values only need to be varied, not random).
pub struct WeightPattern(u32);

impl WeightPattern {
    pub fn new() -> Self {
        WeightPattern(1)
    }
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((self.0 >> 9) as f32 / (1u32 << 23) as f32 - 0.5) * 0.1
    }
}

/// The largest resident set of any child process this test binary has waited for (bytes), from
/// `getrusage(RUSAGE_CHILDREN)`.
#[cfg(unix)]
pub fn peak_rss_of_children() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss as u64 * 1024 // kilobytes on Linux
}

// Engine helpers of the transformers comparisons (engine_reference, engine_quantized).

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A JSON array of numbers, as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// A session of `model` as the comparisons run it: f32 cache, 2 threads.
pub fn session(model: &Arc<Model>) -> Session {
    Session::new(
        model.clone(),
        SessionParams {
            kv_type: KvType::F32,
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

/// max |a - b| / max |b| over every value.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    diff / scale
}

/// The logits of `input` fed to a fresh session in separate evaluations of at most `k` tokens:
/// every product, the output head's included, then has at most `k` rows.
pub fn logits_in_pieces(model: &Arc<Model>, input: &[u32], k: usize) -> Vec<f32> {
    let mut s = session(model);
    let mut all = Vec::new();
    for piece in input.chunks(k) {
        all.extend_from_slice(s.eval(piece, Logits::All).unwrap());
    }
    all
}

/// The flattened rows of `v["logits"]` (a reference's logits at every position).
pub fn logits_of(v: &Value) -> Vec<f32> {
    v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect()
}
