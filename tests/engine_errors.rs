//! Bad input to the engine: a clear error naming what is wrong, and nothing lost.

mod common;

use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::ffi::*;
use ferrollm::generate::{generate, GenerateParams};
use ferrollm::model::{LoadParams, Model};
use ferrollm::session::{Logits, Session, SessionParams};
use ferrollm::ErrorKind;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Arc;

fn gpt2(dir: &Path) -> PathBuf {
    Converter::open(&common::fixture("hf/gpt2"))
        .unwrap()
        .convert(
            &dir.join("gpt2.gguf"),
            &ConvertParams::default(),
            &mut |_| true,
        )
        .unwrap()
}

#[test]
fn context_overflow_and_bad_token_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let model = Arc::new(Model::load(&gpt2(tmp.path()), &LoadParams::default()).unwrap());
    let n_vocab = model.spec().n_vocab as u32;
    let mut s = Session::new(
        model.clone(),
        SessionParams {
            context_length: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let last = s.eval(&[1, 2, 3, 4, 5], Logits::Last).unwrap().to_vec();
    let err = s.eval(&[1, 2, 3, 4], Logits::Last).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextFull);
    assert!(err.message().contains("8 tokens"), "{err}");
    assert_eq!(s.tokens().len(), 5, "a refused batch feeds nothing");
    assert_eq!(
        s.logits(),
        &last[..],
        "a refused batch leaves the last logits"
    );
    let err = s.eval(&[1, n_vocab], Logits::Last).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains(&n_vocab.to_string()), "{err}");
    assert_eq!(s.tokens().len(), 5);
    // The session is still usable.
    s.eval(&[6, 7, 8], Logits::Last).unwrap();
    // A prompt longer than the context.
    s.reset();
    let long = "word ".repeat(50);
    let err = generate(&mut s, &long, &GenerateParams::default(), &mut |_| true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextFull);
    assert!(err.message().contains("prompt"), "{err}");
    // A context beyond the learned positions of GPT-2.
    let err = Session::new(
        model,
        SessionParams {
            context_length: 100_000,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("positions"), "{err}");
}

#[test]
fn invalid_utf8_and_null_through_the_c_api() {
    let tmp = tempfile::tempdir().unwrap();
    let path = CString::new(gpt2(tmp.path()).to_str().unwrap()).unwrap();
    unsafe {
        let mut model = ptr::null_mut();
        assert_eq!(
            ferrollm_model_load(path.as_ptr(), ptr::null(), &mut model),
            FERROLLM_OK
        );
        let bad = [b'a', 0xff, 0xfe];
        let mut toks = [0u32; 16];
        let mut n = 0usize;
        let st = ferrollm_tokenize(
            model,
            bad.as_ptr().cast(),
            bad.len(),
            true,
            toks.as_mut_ptr(),
            toks.len(),
            &mut n,
        );
        assert_eq!(st, FERROLLM_ERR_INVALID_ARGUMENT);
        let msg = CStr::from_ptr(ferrollm_last_error())
            .to_string_lossy()
            .into_owned();
        assert!(msg.contains("UTF-8"), "{msg}");
        // Asking for the size, then a buffer too small.
        let text = b"Hello world";
        assert_eq!(
            ferrollm_tokenize(
                model,
                text.as_ptr().cast(),
                text.len(),
                true,
                ptr::null_mut(),
                0,
                &mut n
            ),
            FERROLLM_ERR_BUFFER_TOO_SMALL
        );
        assert!(n > 1);
        assert_eq!(
            ferrollm_tokenize(
                model,
                text.as_ptr().cast(),
                text.len(),
                true,
                toks.as_mut_ptr(),
                n,
                &mut n
            ),
            FERROLLM_OK
        );
        assert_eq!(
            ferrollm_tokenize(
                ptr::null(),
                text.as_ptr().cast(),
                text.len(),
                true,
                toks.as_mut_ptr(),
                16,
                &mut n
            ),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        let mut session = ptr::null_mut();
        let mut sp: ferrollm_session_params = std::mem::zeroed();
        ferrollm_session_default_params(&mut sp, std::mem::size_of_val(&sp));
        sp.kv_type = 42;
        assert_eq!(
            ferrollm_session_new(model, &sp, &mut session),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        assert!(session.is_null());
        sp.struct_size = 0;
        assert_eq!(
            ferrollm_session_new(model, &sp, &mut session),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        let prompt = CString::new("Hi").unwrap();
        let mut result = ptr::null_mut();
        assert_eq!(
            ferrollm_session_generate(
                ptr::null_mut(),
                prompt.as_ptr(),
                ptr::null(),
                None,
                ptr::null_mut(),
                &mut result
            ),
            FERROLLM_ERR_INVALID_ARGUMENT
        );
        ferrollm_model_free(model);
    }
}

#[test]
fn loading_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Model::load(&tmp.path().join("missing.gguf"), &LoadParams::default())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.message().contains("missing.gguf"), "{err}");
    // A folder with two model files lists them.
    let a = gpt2(tmp.path());
    std::fs::copy(&a, tmp.path().join("other.gguf")).unwrap();
    let err = Model::load(tmp.path(), &LoadParams::default())
        .err()
        .unwrap();
    assert!(
        err.message().contains("gpt2.gguf") && err.message().contains("other.gguf"),
        "{err}"
    );
    // Garbage is a format error.
    std::fs::write(tmp.path().join("junk.gguf"), b"not a model at all").unwrap();
    let err = Model::load(&tmp.path().join("junk.gguf"), &LoadParams::default())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Format);
    assert!(err.message().contains("junk.gguf"), "{err}");
}
