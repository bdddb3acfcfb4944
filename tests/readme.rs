//! The README's C snippet compiles and links against the library (the Rust snippet is a doctest).

use std::path::PathBuf;
use std::process::Command;

fn snippet(lang: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no ```{lang} block in the README"));
    let body = &readme[start + lang.len() + 4..];
    body[..body.find("```").unwrap()].to_string()
}

/// The folder holding the libferrollm that `cargo test` just built: target/<profile>/deps, beside
/// this test binary (target/<profile>/libferrollm.so is only refreshed by `cargo build`).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().to_path_buf()
}

#[test]
fn c_snippet_compiles_and_links() {
    if Command::new("cc").arg("--version").output().is_err() {
        assert!(
            std::env::var("FERROLLM_REQUIRE_BINDINGS").is_err(),
            "no C compiler"
        );
        eprintln!("SKIPPED: no C compiler");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("flow.c");
    std::fs::write(&src, snippet("c")).unwrap();
    let lib = lib_dir();
    assert!(
        lib.join("libferrollm.so").exists() || lib.join("libferrollm.a").exists(),
        "{}",
        lib.display()
    );
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror", "-o"])
        .arg(dir.path().join("flow"))
        .arg(&src)
        .arg(format!("-I{}/include", env!("CARGO_MANIFEST_DIR")))
        .arg(format!("-L{}", lib.display()))
        .args(["-lferrollm", "-lm", "-lpthread", "-ldl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
