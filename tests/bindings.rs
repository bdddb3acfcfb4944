//! The C API and the C++, Go and C# wrappers, from their own languages: each binding's tests and
//! each example of the whole flow are compiled and run as subprocesses against the shared library
//! that this `cargo test` run built.
//!
//! - C (gcc): `tests/c/errors.c` (bad input: missing files, unsupported architectures, cancelled
//!   conversion, quantization and generation, NULL handles), `tests/c/threads.c` (one model, 4
//!   threads, each with its own session: the same greedy texts as one thread) and
//!   `examples/c/flow.c`;
//! - C++ (g++): `bindings/cpp/tests/test_ferrollm.cpp`, `examples/cpp/flow.cpp`, and both examples
//!   again through CMake's `find_package(ferrollm)`;
//! - Go: `gofmt -l`, `go vet`, `go test` in `bindings/go`, `go run` in `examples/go`;
//! - C# (Mono): `mcs -langversion:7.2` + `mono` for `bindings/csharp/tests` and `examples/csharp`.
//!
//! Each example runs the whole flow — convert `tests/fixtures/hf/gpt2` (a tiny random GPT-2) to an
//! F16 GGUF, quantize it to Q4_0, load it, generate 16 tokens with streaming (default sampling,
//! seed 42) — and the text it prints, streamed and whole, must equal the text the Rust API
//! generates from the same checkpoint.
//!
//! The C and C++ examples and the C error tests run under
//! `valgrind --leak-check=full --error-exitcode=1` (suppressions for dependencies' process-lifetime
//! allocations: `tests/c/valgrind.supp`), and a program that leaks a model must fail that check.
//!
//! A missing toolchain skips its test with a message, unless `FERROLLM_REQUIRE_BINDINGS=1` (set by
//! `.ci/run`, which installs them), in which case it fails.
//!
//! The library: `cargo test` compiles the crate's lib once with all its crate types, so the cdylib
//! `deps/libferrollm.so` next to this test binary is as fresh as the code the test links (the
//! uplifted `target/<profile>/libferrollm.so` is only refreshed by `cargo build`). It is copied to
//! `<target>/<profile>/bindings/lib` and used from there — no cargo subprocess, so no wait on the
//! cargo lock this `cargo test` holds. Only if it is missing is it built, into a separate target
//! folder.

mod common;

use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::gguf::GgufWriter;
use ferrollm::format::{Container, GgmlType, Metadata, TensorSpec, TensorWriter, Value};
use ferrollm::generate::{self, GenerateParams};
use ferrollm::model::{LoadParams, Model};
use ferrollm::sampling::SamplerParams;
use ferrollm::session::{Session, SessionParams};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------------------------------------
// Toolchains

fn bindings_required() -> bool {
    std::env::var("FERROLLM_REQUIRE_BINDINGS").is_ok_and(|v| v == "1")
}

/// True when `program args` runs successfully. Otherwise prints why the test skips, or panics when
/// bindings are required.
fn have(program: &str, args: &[&str], install: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = format!("`{program}` is not available; install it with `{install}`");
        assert!(!bindings_required(), "{msg} (FERROLLM_REQUIRE_BINDINGS=1)");
        eprintln!("SKIPPED: {msg}");
    }
    ok
}

fn have_gcc() -> bool {
    have("gcc", &["--version"], "apt-get install gcc")
}
fn have_gxx() -> bool {
    have("g++", &["--version"], "apt-get install g++")
}
fn have_valgrind() -> bool {
    have(
        "valgrind",
        &["--version"],
        "apt-get install --no-install-recommends valgrind",
    )
}
fn have_cmake() -> bool {
    have(
        "cmake",
        &["--version"],
        "apt-get install --no-install-recommends cmake",
    )
}
fn have_go() -> bool {
    have("go", &["version"], "apt-get install golang-go")
}
fn have_mono() -> bool {
    have(
        "mcs",
        &["--version"],
        "apt-get install --no-install-recommends mono-mcs mono-runtime",
    ) && have(
        "mono",
        &["--version"],
        "apt-get install --no-install-recommends mono-runtime",
    )
}

// ---------------------------------------------------------------------------------------------
// Paths and the library

fn repo() -> PathBuf {
    common::repo_root()
}

/// `<target>/<profile>`: the folder above `deps/`, where this test binary lives.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary folder");
    deps.parent().expect("profile folder").to_path_buf()
}

/// Persistent build products of these tests (library copy, Go caches).
fn bindings_dir() -> PathBuf {
    profile_dir().join("bindings")
}

/// The folder holding the `libferrollm.so` under test (for -L, rpath and LD_LIBRARY_PATH).
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let profile = profile_dir();
        // deps/ holds the cdylib compiled together with the rlib this test links.
        let built = [
            profile.join("deps/libferrollm.so"),
            profile.join("libferrollm.so"),
        ]
        .into_iter()
        .find(|p| p.is_file());
        let source = match built {
            Some(p) => p,
            None => build_cdylib_separately(),
        };
        let dir = bindings_dir().join("lib");
        std::fs::create_dir_all(&dir).unwrap();
        // Copy then rename, so a concurrent test process never sees a half-written library.
        let tmp = dir.join(format!("libferrollm.so.{}", std::process::id()));
        std::fs::copy(&source, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("libferrollm.so")).unwrap();
        dir
    })
}

/// Builds the cdylib in a target folder of its own (the running `cargo test` holds the lock of
/// this one) and returns its path.
fn build_cdylib_separately() -> PathBuf {
    let target = bindings_dir().join("cargo-target");
    eprintln!(
        "libferrollm.so is not next to the test binary; building it into {}",
        target.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = profile_dir();
    let release = profile.file_name() == Some(OsStr::new("release"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo())
        .args(["build", "--lib", "--target-dir"])
        .arg(&target);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd, "cargo build --lib");
    target
        .join(if release { "release" } else { "debug" })
        .join("libferrollm.so")
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// What a test works on, in its own temporary folder.
struct Fixtures {
    _tmp: tempfile::TempDir,
    /// Scratch folder for outputs.
    out: PathBuf,
    /// The tiny GPT-2 checkpoint, converted to an F16 GGUF by the Rust API.
    f16: PathBuf,
    /// A well-formed GGUF whose architecture ferrollm does not support.
    unsupported: PathBuf,
    /// The Hugging Face checkpoint folder the flow starts from.
    hf: PathBuf,
    /// A checkpoint folder whose config.json names an architecture ferrollm does not support.
    unsupported_hf: PathBuf,
}

/// The checkpoint the examples start from (a tiny random GPT-2: its text is gibberish).
fn checkpoint() -> PathBuf {
    common::fixture("hf/gpt2")
}

fn fixtures() -> Fixtures {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let f16 = Converter::open(&checkpoint())
        .unwrap()
        .convert(
            &tmp.path().join("gpt2-f16.gguf"),
            &ConvertParams::default(),
            &mut |_| true,
        )
        .unwrap();
    let unsupported = tmp.path().join("falcon.gguf");
    let mut md = Metadata::new();
    md.set("general.architecture", Value::String("falcon".into()));
    md.set("falcon.block_count", Value::U32(1));
    let spec = TensorSpec {
        name: "token_embd.weight".into(),
        ty: GgmlType::F32,
        shape: vec![8, 4],
    };
    let mut w = GgufWriter::create(&unsupported, &md, std::slice::from_ref(&spec), 32).unwrap();
    w.write_tensor(&[0u8; 8 * 4 * 4]).unwrap();
    Box::new(w).finish().unwrap();
    let unsupported_hf = tmp.path().join("falcon-hf");
    std::fs::create_dir(&unsupported_hf).unwrap();
    std::fs::write(
        unsupported_hf.join("config.json"),
        r#"{"architectures": ["FalconForCausalLM"], "model_type": "falcon"}"#,
    )
    .unwrap();
    Fixtures {
        _tmp: tmp,
        out,
        f16,
        unsupported,
        hf: checkpoint(),
        unsupported_hf,
    }
}

impl Fixtures {
    /// A Q4_0 GGUF of the fixture model, made by the Rust API.
    fn q4(&self) -> PathBuf {
        ferrollm::quantizer::quantize(
            &self.f16,
            Some(&self.out.join("fixture-q4_0.gguf")),
            GgmlType::Q4_0,
            Container::Gguf,
            &mut |_| true,
        )
        .unwrap()
        .path
    }

    /// Environment the binding test suites read.
    fn test_env(&self, cmd: &mut Command) {
        cmd.env("FERROLLM_TEST_MODEL_F16", &self.f16)
            .env("FERROLLM_TEST_UNSUPPORTED_MODEL", &self.unsupported)
            .env("FERROLLM_TEST_OUT", &self.out)
            .env("FERROLLM_TEST_HF_DIR", &self.hf)
            .env("FERROLLM_TEST_UNSUPPORTED_HF_DIR", &self.unsupported_hf);
    }
}

/// The prompt and length every example uses, and the text the Rust API generates for them on the
/// Q4_0 model (default sampling, seed 42): each example must print the same.
const FLOW_PROMPT: &str = "Hello";
const FLOW_TOKENS: usize = 16;

fn expected_flow_text(q4: &Path) -> String {
    let model = Arc::new(Model::load(q4, &LoadParams::default()).unwrap());
    let mut session = Session::new(model, SessionParams::default()).unwrap();
    let params = GenerateParams {
        sampler: SamplerParams::default(),
        max_new_tokens: Some(FLOW_TOKENS),
        stop_words: Vec::new(),
    };
    generate::generate(&mut session, FLOW_PROMPT, &params, &mut |_| true)
        .unwrap()
        .text
}

// ---------------------------------------------------------------------------------------------
// Running things

/// Runs a command with RUST_BACKTRACE=0; panics with its output unless it succeeds. Returns
/// standard output.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = output(cmd, what);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn output(cmd: &mut Command, what: &str) -> Output {
    // `cargo test` puts target/<profile> and its deps/ on LD_LIBRARY_PATH, which the dynamic
    // loader searches before an executable's rpath: a stale target/<profile>/libferrollm.so from
    // an earlier `cargo build` would be loaded instead of the library under test.
    cmd.env("LD_LIBRARY_PATH", lib_dir())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

/// Checks a test program's closing "N passed, 0 failed" line (and that N > 0).
fn assert_all_passed(stdout: &str, what: &str) {
    let last = stdout.lines().last().unwrap_or_default();
    let passed = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        passed.is_some_and(|n| n > 0),
        "{what}: expected a closing \"N passed, 0 failed\" line:\n{stdout}"
    );
    eprintln!("{what}: {last}");
}

/// Checks an example's output: the converted and quantized files, the result text (the Rust
/// API's) and the stop reason.
fn assert_flow_output(stdout: &str, expected_text: &str, what: &str) {
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{what}: no line starting with {name:?} in:\n{stdout}"))
            .to_string()
    };
    let converted = field("converted: ");
    let converted = converted
        .strip_suffix(" (architecture 1)")
        .unwrap_or_else(|| panic!("{what}: not GPT-2 (FERROLLM_ARCH_GPT2 = 1): {converted:?}"));
    assert!(
        converted.ends_with("/gpt2-f16.gguf") && Path::new(converted).is_file(),
        "{what}: converted file {converted:?}"
    );
    let quantized = field("quantized: ");
    assert!(
        quantized.ends_with("-q4_0.gguf") && Path::new(&quantized).is_file(),
        "{what}: quantized file {quantized:?}"
    );
    // The text may hold any character, newlines included: match it whole.
    assert!(
        stdout.contains(&format!(
            "--- streamed:\n{expected_text}\n--- result: {expected_text}\n"
        )),
        "{what}: the streamed text and the result must both be the Rust API's {expected_text:?}:\n{stdout}"
    );
    assert_eq!(field("tokens: "), FLOW_TOKENS.to_string(), "{what}");
    assert_eq!(field("stop reason: "), "max length", "{what}");
}

/// A compiler command for a C or C++ program linked with the library under test.
fn compile(compiler: &str, std: &str, sources: &[PathBuf], exe: &Path) -> Command {
    let lib = lib_dir();
    let mut cmd = Command::new(compiler);
    cmd.arg(format!("-std={std}"))
        .args([
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-D_POSIX_C_SOURCE=200809L",
        ])
        .arg("-I")
        .arg(repo().join("include"))
        .arg("-I")
        .arg(repo().join("bindings/cpp"))
        .args(sources)
        .arg("-o")
        .arg(exe)
        .arg("-L")
        .arg(lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lferrollm", "-pthread"]);
    cmd
}

fn build_c(sources: &[&str], exe: &Path) {
    let sources: Vec<PathBuf> = sources.iter().map(|s| repo().join(s)).collect();
    run(&mut compile("gcc", "c11", &sources, exe), "gcc");
}

fn build_cpp(sources: &[&str], exe: &Path) {
    let sources: Vec<PathBuf> = sources.iter().map(|s| repo().join(s)).collect();
    run(&mut compile("g++", "c++17", &sources, exe), "g++");
}

/// A command that runs `exe` under valgrind's leak check (or directly without valgrind).
fn valgrind(exe: &Path, use_valgrind: bool) -> Command {
    if !use_valgrind {
        return Command::new(exe);
    }
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--quiet",
        "--leak-check=full",
        "--error-exitcode=1",
        "--num-callers=40",
    ])
    .arg(format!(
        "--suppressions={}",
        repo().join("tests/c/valgrind.supp").display()
    ))
    .arg(exe);
    cmd
}

// ---------------------------------------------------------------------------------------------
// C

#[test]
fn c_bad_input_gives_status_and_message() {
    if !have_gcc() {
        return;
    }
    let f = fixtures();
    let exe = f.out.join("errors");
    build_c(&["tests/c/errors.c"], &exe);
    let use_valgrind = have_valgrind();
    let stdout = run(
        valgrind(&exe, use_valgrind)
            .arg(&f.f16)
            .arg(&f.unsupported)
            .arg(&f.out)
            .arg(&f.hf)
            .arg(&f.unsupported_hf),
        "tests/c/errors.c",
    );
    assert_all_passed(&stdout, "C errors test");
}

#[test]
fn c_threads_share_one_model() {
    if !have_gcc() {
        return;
    }
    let f = fixtures();
    let exe = f.out.join("threads");
    build_c(&["tests/c/threads.c"], &exe);
    let stdout = run(Command::new(&exe).arg(f.q4()), "tests/c/threads.c");
    assert_all_passed(&stdout, "C threads test");
    assert_eq!(stdout.matches("ok   thread").count(), 4, "{stdout}");
}

#[test]
fn c_example_flow_runs_clean_under_valgrind() {
    if !have_gcc() {
        return;
    }
    let f = fixtures();
    let expected = expected_flow_text(&f.q4());
    let exe = f.out.join("flow_c");
    build_c(&["examples/c/flow.c"], &exe);
    let use_valgrind = have_valgrind();
    let stdout = run(
        valgrind(&exe, use_valgrind)
            .arg(&f.hf)
            .arg(f.out.join("flow"))
            .arg(FLOW_PROMPT),
        "examples/c/flow.c",
    );
    assert_flow_output(&stdout, &expected, "C example");
}

/// The valgrind check is not blind: a program that never frees its model fails it.
#[test]
fn valgrind_check_catches_a_leaked_model() {
    if !have_gcc() || !have_valgrind() {
        return;
    }
    let f = fixtures();
    let src = f.out.join("leak.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include "ferrollm.h"
int main(int argc, char **argv) {
    ferrollm_model *m = NULL;
    if (argc < 2 || ferrollm_model_load(argv[1], NULL, &m) != FERROLLM_OK) return 2;
    printf("loaded, not freed\n");
    return 0;
}
"#,
    )
    .unwrap();
    let exe = f.out.join("leak");
    run(&mut compile("gcc", "c11", &[src], &exe), "gcc leak.c");
    let out = output(valgrind(&exe, true).arg(f.q4()), "valgrind leak");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "valgrind did not fail a leaked model:\n{stderr}"
    );
    assert!(stderr.contains("definitely lost"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// C++

#[test]
fn cpp_wrapper_tests() {
    if !have_gxx() {
        return;
    }
    let f = fixtures();
    let exe = f.out.join("test_ferrollm");
    build_cpp(&["bindings/cpp/tests/test_ferrollm.cpp"], &exe);
    let mut cmd = Command::new(&exe);
    f.test_env(&mut cmd);
    let stdout = run(&mut cmd, "bindings/cpp/tests/test_ferrollm.cpp");
    assert_all_passed(&stdout, "C++ wrapper tests");
}

#[test]
fn cpp_example_flow_runs_clean_under_valgrind() {
    if !have_gxx() {
        return;
    }
    let f = fixtures();
    let expected = expected_flow_text(&f.q4());
    let exe = f.out.join("flow_cpp");
    build_cpp(&["examples/cpp/flow.cpp"], &exe);
    let stdout = run(
        valgrind(&exe, have_valgrind())
            .arg(&f.hf)
            .arg(f.out.join("flow"))
            .arg(FLOW_PROMPT),
        "examples/cpp/flow.cpp",
    );
    assert_flow_output(&stdout, &expected, "C++ example");
}

/// Consumers find the library with `find_package(ferrollm)` (bindings/cpp/ferrollmConfig.cmake):
/// the C and C++ examples build through it and run.
#[test]
fn cmake_find_package_builds_the_examples() {
    if !have_gxx() || !have_cmake() {
        return;
    }
    let f = fixtures();
    let expected = expected_flow_text(&f.q4());
    let build = f.out.join("cmake-build");
    run(
        Command::new("cmake")
            .arg("-S")
            .arg(repo().join("examples/cpp"))
            .arg("-B")
            .arg(&build)
            .arg(format!(
                "-DFERROLLM_LIBRARY={}",
                lib_dir().join("libferrollm.so").display()
            )),
        "cmake configure",
    );
    run(
        Command::new("cmake").arg("--build").arg(&build),
        "cmake build",
    );
    for (exe, what) in [
        ("flow", "C++ example (CMake)"),
        ("flow_c", "C example (CMake)"),
    ] {
        let stdout = run(
            Command::new(build.join(exe))
                .arg(&f.hf)
                .arg(f.out.join(exe))
                .arg(FLOW_PROMPT),
            what,
        );
        assert_flow_output(&stdout, &expected, what);
    }
}

// ---------------------------------------------------------------------------------------------
// Go

/// A `go` command in `dir` that links the library under test and downloads nothing.
fn go(dir: &str, args: &[&str]) -> Command {
    let lib = lib_dir();
    let mut cmd = Command::new("go");
    cmd.current_dir(repo().join(dir))
        .args(args)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "1")
        // CGO_LDFLAGS come before the package's own flags: this library wins over target/*.
        .env(
            "CGO_LDFLAGS",
            format!("-L{0} -Wl,-rpath,{0}", lib.display()),
        );
    // A fresh CI machine may have no HOME; keep Go's caches in the target folder then.
    for (var, sub) in [("GOCACHE", "go-cache"), ("GOPATH", "go-path")] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, bindings_dir().join(sub));
        }
    }
    cmd
}

#[test]
fn go_binding_tests() {
    if !have_go() {
        return;
    }
    let f = fixtures();
    let unformatted = run(
        Command::new("gofmt")
            .arg("-l")
            .arg(repo().join("bindings/go"))
            .arg(repo().join("examples/go")),
        "gofmt",
    );
    assert!(
        unformatted.trim().is_empty(),
        "run gofmt -w on:\n{unformatted}"
    );
    run(&mut go("bindings/go", &["vet", "./..."]), "go vet");
    let mut cmd = go("bindings/go", &["test", "-count=1", "-v", "./..."]);
    f.test_env(&mut cmd);
    let stdout = run(&mut cmd, "go test");
    assert!(!stdout.contains("--- SKIP"), "a Go test skipped:\n{stdout}");
    assert!(!stdout.contains("--- FAIL"), "{stdout}");
    let passed = stdout.matches("--- PASS").count();
    assert!(passed >= 10, "only {passed} Go tests passed:\n{stdout}");
    eprintln!("Go binding tests: {passed} passed, 0 failed");
}

#[test]
fn go_example_flow() {
    if !have_go() {
        return;
    }
    let f = fixtures();
    let expected = expected_flow_text(&f.q4());
    let mut cmd = go("examples/go", &["run", "."]);
    cmd.arg(&f.hf).arg(f.out.join("flow")).arg(FLOW_PROMPT);
    let stdout = run(&mut cmd, "go run examples/go");
    assert_flow_output(&stdout, &expected, "Go example");
}

// ---------------------------------------------------------------------------------------------
// C#

fn mcs(args: &[&str], sources: &[PathBuf], out: &Path) {
    run(
        Command::new("mcs")
            .args(["-langversion:7.2", "-warnaserror", "-debug"])
            .args(args)
            .arg(format!("-out:{}", out.display()))
            .args(sources),
        "mcs",
    );
}

fn csharp_sources(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("cs")))
        .collect();
    files.sort();
    files
}

fn mono(exe: &Path) -> Command {
    let mut cmd = Command::new("mono");
    cmd.arg("--debug")
        .arg(exe)
        .env("LD_LIBRARY_PATH", lib_dir());
    cmd
}

#[test]
fn csharp_binding_tests() {
    if !have_mono() {
        return;
    }
    let f = fixtures();
    let exe = f.out.join("FerrollmTests.exe");
    let mut sources = csharp_sources("bindings/csharp/src");
    sources.extend(csharp_sources("bindings/csharp/tests"));
    mcs(&[], &sources, &exe);
    let mut cmd = mono(&exe);
    f.test_env(&mut cmd);
    let stdout = run(&mut cmd, "C# tests");
    assert_all_passed(&stdout, "C# binding tests");
}

#[test]
fn csharp_example_flow() {
    if !have_mono() {
        return;
    }
    let f = fixtures();
    let expected = expected_flow_text(&f.q4());
    let dll = f.out.join("Ferrollm.dll");
    mcs(
        &["-target:library"],
        &csharp_sources("bindings/csharp/src"),
        &dll,
    );
    let exe = f.out.join("Flow.exe");
    mcs(
        &[&format!("-r:{}", dll.display())],
        &[repo().join("examples/csharp/Flow.cs")],
        &exe,
    );
    let stdout = run(
        mono(&exe)
            .arg(&f.hf)
            .arg(f.out.join("flow"))
            .arg(FLOW_PROMPT),
        "C# example",
    );
    assert_flow_output(&stdout, &expected, "C# example");
}

// ---------------------------------------------------------------------------------------------
// The README's snippets
//
// Each snippet of the README in C, C++, Go and C# is compiled and run as a user would run it: from
// a folder holding `models/demo` (a link to the repository's demo model), writing `out/`. It must
// print the text the Rust API generates for the same flow (the README's Rust snippet: demo model
// converted to F16, quantized to Q4_0, "The old man", 32 tokens, default sampling), and leave the
// two files the flow names.

const README_PROMPT: &str = "The old man";
const README_TOKENS: usize = 32;

/// The body of the README's first ```` ```lang ```` block.
fn readme_snippet(lang: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let fence = format!("```{lang}\n");
    let start = readme
        .find(&fence)
        .unwrap_or_else(|| panic!("no ```{lang} block in the README"))
        + fence.len();
    let body = &readme[start..];
    body[..body.find("```").unwrap()].to_string()
}

/// A folder laid out as the README assumes (`models/demo`), and the text the Rust API generates
/// there for the README's flow.
struct ReadmeDir {
    dir: tempfile::TempDir,
    expected: String,
}

fn readme_dir() -> ReadmeDir {
    static EXPECTED: OnceLock<String> = OnceLock::new();
    let expected = EXPECTED
        .get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            let f16 = Converter::open(&repo().join("models/demo"))
                .unwrap()
                .convert(tmp.path(), &ConvertParams::default(), &mut |_| true)
                .unwrap();
            let q4 = ferrollm::quantizer::quantize(
                &f16,
                None,
                GgmlType::Q4_0,
                Container::Gguf,
                &mut |_| true,
            )
            .unwrap()
            .path;
            let model = Arc::new(Model::load(&q4, &LoadParams::default()).unwrap());
            let mut session = Session::new(model, SessionParams::default()).unwrap();
            let params = GenerateParams {
                max_new_tokens: Some(README_TOKENS),
                ..Default::default()
            };
            let text = generate::generate(&mut session, README_PROMPT, &params, &mut |_| true)
                .unwrap()
                .text;
            assert!(!text.is_empty());
            text
        })
        .clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::os::unix::fs::symlink(repo().join("models/demo"), dir.path().join("models/demo")).unwrap();
    ReadmeDir { dir, expected }
}

impl ReadmeDir {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a built snippet in the folder and checks what it printed and wrote. `stop_line`: the
    /// snippet ends with a line naming the stop reason (all but the C one).
    fn check(&self, cmd: &mut Command, what: &str, stop_line: bool) {
        cmd.current_dir(self.path()).env("LANG", "C.UTF-8");
        let stdout = run(cmd, what);
        assert!(
            stdout.starts_with(&self.expected),
            "{what} must print the Rust API's text {:?}, printed:\n{stdout}",
            self.expected
        );
        if stop_line {
            let rest = &stdout[self.expected.len()..];
            assert!(
                rest.starts_with("\n[") && rest.trim_end().ends_with(']'),
                "{what}: no stop reason after the text: {rest:?}"
            );
        }
        for name in ["ferrollm-demo-f16.gguf", "ferrollm-demo-q4_0.gguf"] {
            assert!(
                self.path().join("out").join(name).is_file(),
                "{what} did not write out/{name}"
            );
        }
    }
}

#[test]
fn readme_c_snippet() {
    if !have_gcc() {
        return;
    }
    let d = readme_dir();
    let src = d.path().join("flow.c");
    std::fs::write(&src, readme_snippet("c")).unwrap();
    let exe = d.path().join("flow");
    run(&mut compile("gcc", "c11", &[src], &exe), "gcc README.c");
    d.check(&mut Command::new(&exe), "the README's C snippet", false);
}

#[test]
fn readme_cpp_snippet() {
    if !have_gxx() {
        return;
    }
    let d = readme_dir();
    let src = d.path().join("flow.cpp");
    std::fs::write(&src, readme_snippet("cpp")).unwrap();
    let exe = d.path().join("flow");
    run(&mut compile("g++", "c++17", &[src], &exe), "g++ README.cpp");
    d.check(&mut Command::new(&exe), "the README's C++ snippet", true);
}

#[test]
fn readme_go_snippet() {
    if !have_go() {
        return;
    }
    let d = readme_dir();
    let module = d.path().join("snippet");
    std::fs::create_dir(&module).unwrap();
    std::fs::write(module.join("main.go"), readme_snippet("go")).unwrap();
    std::fs::write(
        module.join("go.mod"),
        format!(
            "module readme\n\ngo 1.19\n\nrequire github.com/ferrollm/ferrollm/bindings/go v0.0.0\n\n\
             replace github.com/ferrollm/ferrollm/bindings/go => {}\n",
            repo().join("bindings/go").display()
        ),
    )
    .unwrap();
    let exe = d.path().join("flow");
    let mut build = go(module.to_str().unwrap(), &["build", "-o"]);
    build.arg(&exe).arg(".");
    run(&mut build, "go build README.go");
    let unformatted = run(Command::new("gofmt").arg("-l").arg(&module), "gofmt");
    assert!(
        unformatted.trim().is_empty(),
        "the README's Go snippet is not gofmt-formatted"
    );
    d.check(&mut Command::new(&exe), "the README's Go snippet", true);
}

#[test]
fn readme_csharp_snippet() {
    if !have_mono() {
        return;
    }
    let d = readme_dir();
    let dll = d.path().join("Ferrollm.dll");
    mcs(
        &["-target:library"],
        &csharp_sources("bindings/csharp/src"),
        &dll,
    );
    let src = d.path().join("Program.cs");
    std::fs::write(&src, readme_snippet("csharp")).unwrap();
    let exe = d.path().join("Program.exe");
    mcs(&[&format!("-r:{}", dll.display())], &[src], &exe);
    d.check(&mut mono(&exe), "the README's C# snippet", true);
}
