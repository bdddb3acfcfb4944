//! The seed's whole flow through the C API: convert a checkpoint folder, quantize, load, generate
//! with streaming; and the errors a C caller sees on the way.

mod common;

use ferrollm::ffi::*;
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;

fn last_error() -> String {
    unsafe { CStr::from_ptr(ferrollm_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn cstr(p: &std::path::Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

unsafe extern "C" fn collect(piece: *const c_char, len: usize, ud: *mut c_void) -> bool {
    let out = unsafe { &mut *(ud as *mut Vec<u8>) };
    out.extend_from_slice(unsafe { std::slice::from_raw_parts(piece.cast::<u8>(), len) });
    true
}

unsafe extern "C" fn stop_after_two(_: *const c_char, _: usize, ud: *mut c_void) -> bool {
    let n = unsafe { &mut *(ud as *mut u32) };
    *n += 1;
    *n < 2
}

#[test]
fn convert_quantize_load_generate() {
    let dir = tempfile::tempdir().unwrap();
    let hf = cstr(&common::fixture("hf/gpt2"));
    unsafe {
        let mut conv = ptr::null_mut();
        assert_eq!(
            ferrollm_converter_open(hf.as_ptr(), &mut conv),
            FERROLLM_OK,
            "{}",
            last_error()
        );
        let mut arch = 99;
        assert_eq!(ferrollm_converter_arch(conv, &mut arch), FERROLLM_OK);
        assert_eq!(arch, FERROLLM_ARCH_GPT2);
        let mut written = ptr::null_mut();
        let out = cstr(dir.path());
        assert_eq!(
            ferrollm_converter_convert(
                conv,
                out.as_ptr(),
                ptr::null(),
                None,
                ptr::null_mut(),
                &mut written
            ),
            FERROLLM_OK,
            "{}",
            last_error()
        );
        let f16 = CStr::from_ptr(written).to_owned();
        ferrollm_string_free(written);
        ferrollm_converter_free(conv);
        assert!(f16.to_str().unwrap().ends_with("-f16.gguf"), "{f16:?}");

        let mut q4 = ptr::null_mut();
        assert_eq!(
            ferrollm_quantize(
                f16.as_ptr(),
                ptr::null(),
                FERROLLM_TYPE_Q4_0,
                FERROLLM_CONTAINER_GGUF,
                None,
                ptr::null_mut(),
                &mut q4
            ),
            FERROLLM_OK,
            "{}",
            last_error()
        );
        let q4_path = CStr::from_ptr(q4).to_owned();
        ferrollm_string_free(q4);
        assert!(
            q4_path.to_str().unwrap().ends_with("-q4_0.gguf"),
            "{q4_path:?}"
        );

        let mut model = ptr::null_mut();
        assert_eq!(
            ferrollm_model_load(q4_path.as_ptr(), ptr::null(), &mut model),
            FERROLLM_OK,
            "{}",
            last_error()
        );
        let mut session = ptr::null_mut();
        assert_eq!(
            ferrollm_session_new(model, ptr::null(), &mut session),
            FERROLLM_OK,
            "{}",
            last_error()
        );
        // The session keeps the model alive after the caller frees its handle.
        ferrollm_model_free(model);
        let mut gp: ferrollm_generate_params = std::mem::zeroed();
        assert_eq!(ferrollm_generate_default_params(&mut gp), FERROLLM_OK);
        gp.max_new_tokens = 8;
        let prompt = CString::new("The old lighthouse").unwrap();
        let mut streamed: Vec<u8> = Vec::new();
        let mut result = ptr::null_mut();
        let st = ferrollm_session_generate(
            session,
            prompt.as_ptr(),
            &gp,
            Some(collect),
            &mut streamed as *mut Vec<u8> as *mut c_void,
            &mut result,
        );
        assert_eq!(st, FERROLLM_OK, "{}", last_error());
        let text = CStr::from_ptr(ferrollm_generation_text(result))
            .to_bytes()
            .to_vec();
        assert_eq!(
            text, streamed,
            "the streamed pieces add up to the result text"
        );
        let (mut toks, mut n) = (ptr::null(), 0usize);
        assert_eq!(
            ferrollm_generation_tokens(result, &mut toks, &mut n),
            FERROLLM_OK
        );
        let mut reason = 99;
        assert_eq!(
            ferrollm_generation_info(
                result,
                &mut reason,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut()
            ),
            FERROLLM_OK
        );
        assert!(
            reason == FERROLLM_STOP_MAX_LENGTH && n == 8
                || reason == FERROLLM_STOP_END_TOKEN && n < 8,
            "{reason} {n}"
        );
        ferrollm_generation_free(result);

        // Cancelling from the callback is a stop reason, not an error.
        let mut calls = 0u32;
        let mut result = ptr::null_mut();
        gp.max_new_tokens = 0;
        gp.temperature = 0.0;
        let st = ferrollm_session_generate(
            session,
            prompt.as_ptr(),
            &gp,
            Some(stop_after_two),
            &mut calls as *mut u32 as *mut c_void,
            &mut result,
        );
        assert_eq!(st, FERROLLM_OK, "{}", last_error());
        ferrollm_generation_info(
            result,
            &mut reason,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        assert_eq!(reason, FERROLLM_STOP_CANCELLED);
        ferrollm_generation_free(result);
        ferrollm_session_free(session);
    }
}

#[test]
fn converter_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    unsafe {
        let mut conv = ptr::null_mut();
        let missing = cstr(&dir.path().join("nothing-here"));
        assert_ne!(
            ferrollm_converter_open(missing.as_ptr(), &mut conv),
            FERROLLM_OK
        );
        assert!(conv.is_null());
        assert!(last_error().contains("nothing-here"), "{}", last_error());
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"architectures": ["FalconForCausalLM"], "model_type": "falcon"}"#,
        )
        .unwrap();
        let d = cstr(dir.path());
        assert_eq!(
            ferrollm_converter_open(d.as_ptr(), &mut conv),
            FERROLLM_ERR_UNSUPPORTED
        );
        let msg = last_error();
        assert!(
            msg.contains("FalconForCausalLM") && msg.contains("LlamaForCausalLM"),
            "{msg}"
        );
        assert_eq!(
            ferrollm_converter_open_as(d.as_ptr(), 77, &mut conv),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            ferrollm_converter_open(ptr::null(), &mut conv),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        let hf = cstr(&common::fixture("hf/llama"));
        assert_eq!(ferrollm_converter_open(hf.as_ptr(), &mut conv), FERROLLM_OK);
        let mut p: ferrollm_convert_params = std::mem::zeroed();
        ferrollm_convert_default_params(&mut p);
        p.container = 9;
        let out = cstr(dir.path());
        assert_eq!(
            ferrollm_converter_convert(
                conv,
                out.as_ptr(),
                &p,
                None,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("container"), "{}", last_error());
        ferrollm_converter_free(conv);
    }
}
