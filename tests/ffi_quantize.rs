//! The quantizer through the C API: argument checks, cancellation through the C callback, the
//! written path, and the AutoQuantizer flow on an llm-rs file.

mod common;

use ferrollm::ffi::*;
use std::ffi::{c_void, CStr, CString};
use std::ptr;

fn last_error() -> String {
    unsafe { CStr::from_ptr(ferrollm_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn fixture_copy(dir: &std::path::Path) -> CString {
    for ext in ["bin", "meta"] {
        std::fs::copy(
            common::fixture(&format!("legacy/gpt2-f16.{ext}")),
            dir.join(format!("gpt2-f16.{ext}")),
        )
        .unwrap();
    }
    CString::new(dir.join("gpt2-f16.bin").to_str().unwrap()).unwrap()
}

#[test]
fn bad_arguments_are_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture_copy(dir.path());
    unsafe {
        assert_eq!(
            ferrollm_quantize(
                ptr::null(),
                ptr::null(),
                FERROLLM_TYPE_Q4_0,
                FERROLLM_CONTAINER_GGUF,
                None,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("source"), "{}", last_error());
        assert_eq!(
            ferrollm_quantize(
                src.as_ptr(),
                ptr::null(),
                99,
                FERROLLM_CONTAINER_GGUF,
                None,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("99"), "{}", last_error());
        assert_eq!(
            ferrollm_quantize(
                src.as_ptr(),
                ptr::null(),
                FERROLLM_TYPE_Q4_0,
                7,
                None,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("container"), "{}", last_error());
        let mut q = ptr::null_mut();
        assert_eq!(
            ferrollm_quantizer_open(src.as_ptr(), ptr::null_mut()),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            ferrollm_quantizer_quantize(
                ptr::null(),
                ptr::null(),
                FERROLLM_TYPE_Q4_0,
                0,
                None,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        let missing = CString::new(dir.path().join("missing.bin").to_str().unwrap()).unwrap();
        assert_eq!(
            ferrollm_quantizer_open(missing.as_ptr(), &mut q),
            FERROLLM_ERR_IO
        );
        assert!(q.is_null());
        assert!(last_error().contains("missing.bin"), "{}", last_error());
        ferrollm_quantizer_free(ptr::null_mut());
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "nothing written"
    );
}

unsafe extern "C" fn stop_at_second(p: *const ferrollm_progress, ud: *mut c_void) -> bool {
    let calls = unsafe { &mut *(ud as *mut u32) };
    let p = unsafe { &*p };
    assert_eq!(
        unsafe { CStr::from_ptr(p.stage) }.to_str().unwrap(),
        "quantize"
    );
    *calls += 1;
    *calls < 2
}

unsafe extern "C" fn count(_: *const ferrollm_progress, ud: *mut c_void) -> bool {
    unsafe { *(ud as *mut u32) += 1 };
    true
}

#[test]
fn cancel_then_quantize_through_a_quantizer() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture_copy(dir.path());
    unsafe {
        let mut q = ptr::null_mut();
        assert_eq!(ferrollm_quantizer_open(src.as_ptr(), &mut q), FERROLLM_OK);
        let mut calls = 0u32;
        let mut path = ptr::null_mut();
        let st = ferrollm_quantizer_quantize(
            q,
            ptr::null(),
            FERROLLM_TYPE_Q5_1,
            FERROLLM_CONTAINER_GGJT,
            Some(stop_at_second),
            &mut calls as *mut u32 as *mut c_void,
            &mut path,
        );
        assert_eq!(st, FERROLLM_ERR_CANCELLED, "{}", last_error());
        assert!(path.is_null());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "a cancelled run leaves nothing"
        );
        calls = 0;
        let st = ferrollm_quantizer_quantize(
            q,
            ptr::null(),
            FERROLLM_TYPE_Q5_1,
            FERROLLM_CONTAINER_GGJT,
            Some(count),
            &mut calls as *mut u32 as *mut c_void,
            &mut path,
        );
        assert_eq!(st, FERROLLM_OK, "{}", last_error());
        assert!(calls > 2);
        let written = CStr::from_ptr(path).to_str().unwrap().to_string();
        ferrollm_string_free(path);
        assert_eq!(
            written,
            dir.path().join("gpt2-q5_1-ggjt.bin").to_str().unwrap()
        );
        assert!(dir.path().join("gpt2-q5_1-ggjt.meta").is_file());
        ferrollm_quantizer_free(q);
        // Quantizing the quantized file is refused.
        let again = CString::new(written).unwrap();
        let mut q2 = ptr::null_mut();
        assert_eq!(
            ferrollm_quantizer_open(again.as_ptr(), &mut q2),
            FERROLLM_ERR_UNSUPPORTED
        );
        assert!(
            last_error().contains("already quantized"),
            "{}",
            last_error()
        );
        let name = CStr::from_ptr(ferrollm_type_name(FERROLLM_TYPE_Q5_1))
            .to_str()
            .unwrap();
        assert_eq!(name, "q5_1");
        assert!(ferrollm_type_name(4).is_null());
    }
}
