//! `ferrollm quantize` as a user runs it.

mod common;

use std::process::Command;

fn ferrollm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrollm"));
    c.env("RUST_BACKTRACE", "0");
    c
}

#[test]
fn quantize_prints_the_path_last_and_keeps_existing_targets() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["bin", "meta"] {
        std::fs::copy(
            common::fixture(&format!("legacy/llama-f16.{ext}")),
            dir.path().join(format!("llama-f16.{ext}")),
        )
        .unwrap();
    }
    let src = dir.path().join("llama-f16.bin");
    let out = ferrollm()
        .arg("quantize")
        .arg(&src)
        .args(["--type", "q8_0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let want = dir.path().join("llama-q8_0-ggjt.bin");
    assert_eq!(stdout.lines().last().unwrap(), want.to_str().unwrap());
    assert!(want.is_file() && dir.path().join("llama-q8_0-ggjt.meta").is_file());
    let again = ferrollm()
        .arg("quantize")
        .arg(&src)
        .args(["--type", "q8_0"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn errors_are_one_line_with_a_failing_exit_code() {
    let out = ferrollm()
        .args(["quantize", "/nonexistent/model.bin", "--type", "q4_0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("/nonexistent/model.bin"),
        "{stderr}"
    );
    let bad = ferrollm()
        .args(["quantize", "/nonexistent/model.bin", "--type", "q9_9"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("q9_9"));
}
