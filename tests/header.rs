//! The committed C header must be exactly what cbindgen generates from the current sources.
//! Regenerate with `FERROLLM_WRITE_HEADER=1 cargo build` and commit `include/ferrollm.h`.

#[test]
fn committed_header_matches_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/ferrollm.h"));
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/ferrollm.h");
    let committed = std::fs::read_to_string(committed_path).expect("include/ferrollm.h is missing");
    if generated != committed {
        let line = generated
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "include/ferrollm.h differs from the generated header (first difference at {line}); \
             run `FERROLLM_WRITE_HEADER=1 cargo build` and commit the header"
        );
    }
}
