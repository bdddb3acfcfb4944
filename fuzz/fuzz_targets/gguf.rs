//! Feeds arbitrary bytes to the model-file reader (GGUF seeds; other magics reach the legacy
//! readers). Whatever parses must give tensor views inside the file and printable reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(file) =
        ferrollm::format::ModelFile::from_bytes(Path::new("fuzz.gguf"), data.to_vec(), None)
    else {
        return;
    };
    let mut sum = 0u64;
    for t in &file.tensors {
        let bytes = file.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.size, "tensor {:?}", t.name);
        sum = bytes.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
    }
    std::hint::black_box(sum);
    // Untrusted metadata also flows through the reports `ferrollm info` prints.
    std::hint::black_box(file.report_json().to_string());
    std::hint::black_box(file.report_text());
});
