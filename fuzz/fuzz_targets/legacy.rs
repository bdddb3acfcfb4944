//! Legacy GGML/GGMF/GGJT reader: any bytes, under every architecture's layout and with detection.
//! A result is either an error or a file whose every tensor view lies inside the data.
#![no_main]

use ferrollm::format::ModelFile;
use ferrollm::Architecture;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let hints = Architecture::ALL.map(Some).into_iter().chain([None]);
    for hint in hints {
        match ModelFile::from_bytes(Path::new("fuzz.bin"), data.to_vec(), hint) {
            Ok(mf) => {
                let mut end = 0;
                for t in &mf.tensors {
                    assert_eq!(mf.tensor_data(t).len() as u64, t.size);
                    assert_eq!(t.ty.tensor_size(&t.shape), Some(t.size));
                    assert!(t.offset >= end, "tensors overlap");
                    end = t.offset + t.size;
                }
                assert_eq!(end as usize, data.len(), "the tensor table must end the file");
            }
            Err(e) => assert!(e.message().contains("fuzz.bin"), "{e}"),
        }
    }
});
