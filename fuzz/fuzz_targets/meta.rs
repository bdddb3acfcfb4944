//! `.meta` sidecar parser: any bytes; what parses must write back to JSON that parses the same.
#![no_main]

use ferrollm::format::meta::Meta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = Meta::parse(data) {
        let json = meta.to_json();
        assert_eq!(Meta::parse(json.as_bytes()).unwrap(), meta);
    }
});
