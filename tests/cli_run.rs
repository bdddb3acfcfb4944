//! The run commands as a user runs them: JSON shapes, values cross-checked against the library
//! and the reference, exit codes and one-line errors.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ferrollm(args: &[&str]) -> (bool, String, String) {
    ferrollm_with(args, &[])
}

fn ferrollm_with(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrollm"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("FERROLLM_PROFILE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn converted(dir: &Path, fixture: &str) -> PathBuf {
    let src = common::fixture(&format!("hf/{fixture}"));
    let (ok, out, err) = ferrollm(&[
        "convert",
        src.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--dtype",
        "f32",
        "--json",
    ]);
    assert!(ok, "{err}");
    let path = PathBuf::from(out.lines().last().unwrap());
    let report = json(out.lines().next().unwrap());
    assert_eq!(report["path"].as_str().unwrap(), path.to_str().unwrap());
    assert_eq!(report["type"], "f32");
    assert!(Path::new(report["meta"].as_str().unwrap()).is_file());
    path
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn logits_tokenize_embed_match_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted(tmp.path(), "llama");
    let m = model.to_str().unwrap();
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("hf/llama/reference.json")).unwrap(),
    )
    .unwrap();
    let (ok, out, err) = ferrollm(&["tokenize", m, r["prompt"].as_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["tokens"], r["input_ids"]);
    let ids: Vec<String> = r["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let (ok, out, err) = ferrollm(&[
        "logits",
        m,
        "--tokens",
        &ids.join(","),
        "--all",
        "--json",
        "--kv-type",
        "f32",
    ]);
    assert!(ok, "{err}");
    let v = json(&out);
    assert_eq!(v["n_vocab"], 512);
    let rows = v["logits"].as_array().unwrap();
    assert_eq!(rows.len(), ids.len());
    let (got, want) = (
        rows.last().unwrap().as_array().unwrap(),
        r["logits"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_array()
            .unwrap(),
    );
    for (a, b) in got.iter().zip(want) {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-3);
    }
    let (ok, out, _) = ferrollm(&["logits", m, "--tokens", &ids.join(","), "--json"]);
    assert!(ok);
    assert_eq!(
        json(&out)["logits"].as_array().unwrap().len(),
        1,
        "without --all: the last position only"
    );
    let (ok, out, err) = ferrollm(&["embed", m, r["prompt"].as_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["embedding"].as_array().unwrap().len(), 64);
}

#[test]
fn generate_json_bench_and_perplexity() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted(tmp.path(), "gpt2");
    let m = model.to_str().unwrap();
    let (ok, out, err) = ferrollm(&[
        "generate",
        m,
        "-p",
        "The old",
        "--max-new-tokens",
        "5",
        "--temperature",
        "0",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v = json(&out);
    assert_eq!(v["tokens"].as_array().unwrap().len(), 5);
    assert_eq!(v["stop_reason"], "max_length");
    assert!(v["times"]["total_ms"].as_f64().unwrap() > 0.0);
    // Greedy is deterministic, and streaming prints the same text.
    let (ok, streamed, _) = ferrollm(&[
        "generate",
        m,
        "-p",
        "The old",
        "--max-new-tokens",
        "5",
        "--temperature",
        "0",
    ]);
    assert!(ok);
    assert_eq!(streamed.trim_end_matches('\n'), v["text"].as_str().unwrap());
    let (ok, out, err) = ferrollm(&["bench", m, "-p", "8", "-n", "4", "-r", "1", "--json"]);
    assert!(ok, "{err}");
    let v = json(&out);
    assert!(
        v["pp_tokens_per_s"].as_f64().unwrap() > 0.0
            && v["tg_tokens_per_s"].as_f64().unwrap() > 0.0
    );
    assert!(
        !err.contains("share"),
        "a profile without FERROLLM_PROFILE: {err}"
    );
    // FERROLLM_PROFILE=1: every step's share of the time (summing to 100 %), the products'
    // non-zero and each with its end-of-step wait (they run on the pool), and the pool's average
    // wait; the JSON on stdout unchanged.
    let args = [
        "bench", m, "-t", "2", "-p", "8", "-n", "4", "-r", "1", "--json",
    ];
    let (ok, out, err) = ferrollm_with(&args, &[("FERROLLM_PROFILE", "1")]);
    assert!(ok, "{err}");
    assert!(json(&out)["tg_tokens_per_s"].as_f64().unwrap() > 0.0);
    let shares: Vec<(String, f64)> = err
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[2] == "%").then(|| (f[0].to_string(), f[1].parse().unwrap()))
        })
        .collect();
    let waits: Vec<(&str, f64)> = err
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[2] == "%").then(|| (f[0], f[4].parse().unwrap()))
        })
        .collect();
    let names: Vec<&str> = shares.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "Between",
            "Embed",
            "AttnNorm",
            "Qkv",
            "Attention",
            "AttnOut",
            "FfnNorm",
            "GateUp",
            "Activation",
            "Down",
            "Final",
            "Logits"
        ],
        "{err}"
    );
    let total: f64 = shares.iter().map(|s| s.1).sum();
    assert!((total - 100.0).abs() < 0.1, "shares sum to {total}: {err}");
    for step in ["Qkv", "AttnOut", "GateUp", "Down", "Logits"] {
        assert!(
            shares.iter().any(|s| s.0 == step && s.1 > 0.0),
            "{step}: {err}"
        );
        assert!(
            waits.iter().any(|w| w.0 == step && w.1 >= 0.0),
            "{step} without its wait: {err}"
        );
    }
    assert!(err.contains("the first thread to finish waited"), "{err}");
    let text = tmp.path().join("text.txt");
    std::fs::write(
        &text,
        "The keeper counted the boats in the harbour and walked along the shore. ".repeat(20),
    )
    .unwrap();
    let (ok, out, err) = ferrollm(&[
        "perplexity",
        m,
        "-f",
        text.to_str().unwrap(),
        "--ctx",
        "64",
        "--json",
    ]);
    assert!(ok, "{err}");
    let ppl = json(&out)["perplexity"].as_f64().unwrap();
    // A random model over a 384-token vocabulary: finite and no better than certain.
    assert!(ppl.is_finite() && ppl > 1.0, "{ppl}");
}

#[test]
fn errors_are_one_line() {
    for args in [
        vec!["generate", "/nonexistent/m.gguf", "-p", "x"],
        vec!["logits", "/nonexistent/m.gguf", "--tokens", "1"],
        vec!["tokenize", "/nonexistent/m.gguf", "x"],
    ] {
        let (ok, _, err) = ferrollm(&args);
        assert!(!ok);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains("/nonexistent/m.gguf"),
            "{err}"
        );
    }
}

#[test]
fn quickstart_runs_the_whole_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::fixture("hf/gpt2");
    let out = tmp.path().join("qs");
    let (ok, stdout, err) = ferrollm(&[
        "quickstart",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-n",
        "4",
    ]);
    assert!(ok, "{err}");
    for step in [
        "1. convert",
        "2. quantize",
        "3. load",
        "4. generate",
        "stop: ",
    ] {
        assert!(stdout.contains(step), "{step} missing from:\n{stdout}");
    }
    assert!(out.join("gpt2-f16.gguf").is_file() && out.join("gpt2-q4_0.gguf").is_file());
    // Running again starts afresh rather than reusing stale outputs.
    let (ok, _, err) = ferrollm(&[
        "quickstart",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-n",
        "2",
    ]);
    assert!(ok, "{err}");
}

#[test]
fn perplexity_of_the_demo_model_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::repo_root();
    let out = tmp.path().join("demo-f32.gguf");
    let (ok, _, err) = ferrollm(&[
        "convert",
        root.join("models/demo").to_str().unwrap(),
        out.to_str().unwrap(),
        "--type",
        "f32",
    ]);
    assert!(ok, "{err}");
    let heldout = root.join("models/demo/heldout.txt");
    let (ok, stdout, err) = ferrollm(&[
        "perplexity",
        out.to_str().unwrap(),
        "-f",
        heldout.to_str().unwrap(),
        "--ctx",
        "256",
        "--kv-type",
        "f32",
        "--json",
    ]);
    assert!(ok, "{err}");
    let got = json(&stdout);
    let metrics: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("models/demo/metrics.json")).unwrap(),
    )
    .unwrap();
    let want = &metrics["final"]["heldout_perplexity_llamacpp"];
    assert_eq!(got["scored_tokens"], want["scored_tokens"]);
    let (g, w) = (
        got["perplexity"].as_f64().unwrap(),
        want["perplexity"].as_f64().unwrap(),
    );
    assert!(
        (g - w).abs() / w < 1e-4,
        "perplexity {g} vs transformers {w}"
    );
}

/// Every command explains itself with examples, and every command that reports something can
/// report it as JSON.
#[test]
fn every_command_has_help_with_examples_and_json() {
    let reporting = [
        "convert",
        "quantize",
        "generate",
        "info",
        "tokenize",
        "embed",
        "logits",
        "bench",
        "perplexity",
        "types",
    ];
    for cmd in reporting.iter().chain(&["quickstart"]) {
        let (ok, help, err) = ferrollm(&[cmd, "--help"]);
        assert!(ok, "{cmd} --help: {err}");
        assert!(
            help.contains("Example:\n  ") || help.contains("Examples:\n  "),
            "{cmd} --help has no examples:\n{help}"
        );
        assert!(
            help.contains(&format!("ferrollm {cmd}")) || *cmd == "quickstart",
            "{cmd} --help: the examples do not run {cmd}:\n{help}"
        );
        assert!(help.contains("-v, --verbose"), "{cmd} --help: no -v");
        if reporting.contains(cmd) {
            assert!(help.contains("--json"), "{cmd} has no --json:\n{help}");
        }
    }
}

/// `types --json` lists ggml's types with their block layout (facts from ggml.c's type_traits:
/// Q4_0 is 32 weights in 18 bytes, Q4_K 256 in 144, F16 one in 2).
#[test]
fn types_json_lists_ggml_block_layouts() {
    let (ok, out, err) = ferrollm(&["types", "--json"]);
    assert!(ok, "{err}");
    let types = json(&out);
    let find = |name: &str| {
        types
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {out}"))
            .clone()
    };
    for (name, id, block, bytes) in [
        ("f16", 1, 1, 2),
        ("q4_0", 2, 32, 18),
        ("q8_0", 8, 32, 34),
        ("q4_k", 12, 256, 144),
    ] {
        let t = find(name);
        assert_eq!(t["id"], id, "{name}");
        assert_eq!(t["block_size"], block, "{name}");
        assert_eq!(t["type_size"], bytes, "{name}");
        let bpw = t["bits_per_weight"].as_f64().unwrap();
        assert!(
            (bpw - 8.0 * bytes as f64 / block as f64).abs() < 1e-9,
            "{name}"
        );
    }
}
