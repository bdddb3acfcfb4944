//! Feeds arbitrary bytes to the PyTorch checkpoint reader. The first byte picks the mode:
//!
//! - even: the rest is a whole `.bin` file (zip parsing, then everything after it);
//! - odd: the rest is a `data.pkl` pickle. Whatever the restricted unpickler accepts is wrapped in a
//!   zip with a storage entry of exactly the declared size for every storage it names (capped), so
//!   the fuzzer reaches tensor validation and the strided reads without having to forge a zip.
//!
//! Whatever parses must give each supported tensor's values as exactly `nbytes` bytes.
#![no_main]

use ferrollm::convert::torch::{pickle, zip, TorchFile};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn read_all(file: &TorchFile) {
    let mut sum = 0u64;
    for t in file.tensors() {
        if let Ok(bytes) = file.data(t) {
            assert_eq!(bytes.len(), t.nbytes(), "tensor {:?}", t.name());
            sum = bytes.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
        }
    }
    std::hint::black_box(sum);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(file) = TorchFile::from_bytes(Path::new("fuzz.bin"), rest.to_vec()) {
            read_all(&file);
        }
        return;
    }
    let Ok(state) = pickle::load_state_dict(rest) else {
        return;
    };
    let mut blobs = Vec::new();
    for s in &state.storages {
        match s.numel.checked_mul(s.dtype.size() as u64) {
            Some(n) if n <= 1 << 16 && s.key.len() < 1 << 15 => {
                // Distinct bytes so that a wrong gather shows up in the values.
                let blob: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
                blobs.push((format!("archive/data/{}", s.key), blob));
            }
            _ => return,
        }
    }
    let mut entries: Vec<(&str, &[u8])> = vec![("archive/data.pkl", rest)];
    entries.extend(blobs.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    if entries.len() >= 1 << 16 {
        return; // more entries than the helper's plain (non-zip64) archive can list
    }
    if let Ok(file) = TorchFile::from_bytes(Path::new("fuzz.bin"), zip::write_stored(&entries)) {
        read_all(&file);
    }
});
