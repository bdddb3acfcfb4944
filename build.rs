//! Generates the C header from the crate's `extern "C"` items (all in `src/ffi/`) with cbindgen.
//!
//! The header is always written to `$OUT_DIR/ferrollm.h`; `tests/header.rs` compares it with the
//! committed `include/ferrollm.h` and fails when they differ. Set `FERROLLM_WRITE_HEADER=1` to update
//! the committed header as well.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=FERROLLM_WRITE_HEADER");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml must parse");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen failed to generate the header");
    bindings.write_to_file(out_dir.join("ferrollm.h"));
    if std::env::var_os("FERROLLM_WRITE_HEADER").is_some_and(|v| v == "1") {
        bindings.write_to_file(crate_dir.join("include/ferrollm.h"));
    }
}
