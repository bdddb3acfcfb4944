//! C API: loading models, tokenizing, sessions, evaluation, embeddings and generation.

use super::args::{
    free_handle, into_handle, mut_arg, opt_str_arg, owned_string, params_arg, path_arg, ref_arg,
    slice_arg, slice_mut_arg, str_arg, write_default_params, Out, Params,
};
use super::{boundary, ferrollm_status};
use crate::error::{Error, ErrorKind};
use crate::generate::{self, GenerateParams, GenerateResult, StopReason};
use crate::model::{KvType, LoadParams, Model};
use crate::sampling::SamplerParams;
use crate::session::{Logits, Session, SessionParams};
use crate::Architecture;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// A model architecture (`uint32_t`).
pub type ferrollm_arch = u32;
/// Detect the architecture from the file (GGUF metadata or the `.meta` sidecar).
pub const FERROLLM_ARCH_AUTO: ferrollm_arch = 0;
pub const FERROLLM_ARCH_GPT2: ferrollm_arch = 1;
pub const FERROLLM_ARCH_GPTJ: ferrollm_arch = 2;
pub const FERROLLM_ARCH_GPTNEOX: ferrollm_arch = 3;
pub const FERROLLM_ARCH_LLAMA: ferrollm_arch = 4;
pub const FERROLLM_ARCH_MPT: ferrollm_arch = 5;
pub const FERROLLM_ARCH_BLOOM: ferrollm_arch = 6;

pub(crate) fn arch_from_c(a: ferrollm_arch, name: &str) -> Result<Option<Architecture>, Error> {
    Ok(Some(match a {
        FERROLLM_ARCH_AUTO => return Ok(None),
        FERROLLM_ARCH_GPT2 => Architecture::Gpt2,
        FERROLLM_ARCH_GPTJ => Architecture::GptJ,
        FERROLLM_ARCH_GPTNEOX => Architecture::GptNeoX,
        FERROLLM_ARCH_LLAMA => Architecture::Llama,
        FERROLLM_ARCH_MPT => Architecture::Mpt,
        FERROLLM_ARCH_BLOOM => Architecture::Bloom,
        other => {
            return Err(Error::invalid_argument(format!(
                "{name} = {other} is not a ferrollm_arch value"
            )))
        }
    }))
}

pub(crate) fn arch_to_c(a: Architecture) -> ferrollm_arch {
    match a {
        Architecture::Gpt2 => FERROLLM_ARCH_GPT2,
        Architecture::GptJ => FERROLLM_ARCH_GPTJ,
        Architecture::GptNeoX => FERROLLM_ARCH_GPTNEOX,
        Architecture::Llama => FERROLLM_ARCH_LLAMA,
        Architecture::Mpt => FERROLLM_ARCH_MPT,
        Architecture::Bloom => FERROLLM_ARCH_BLOOM,
    }
}

/// A loaded model. Immutable after loading: any number of threads may use one model at the same
/// time (each with its own sessions). Free with ferrollm_model_free().
pub struct ferrollm_model {
    inner: Arc<Model>,
}

/// Settings for ferrollm_model_load(). Initialise with ferrollm_model_default_params().
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ferrollm_model_params {
    /// sizeof(ferrollm_model_params), set by ferrollm_model_default_params().
    pub struct_size: u32,
    /// FERROLLM_ARCH_AUTO (default) or the architecture of a file that does not name it.
    pub architecture: ferrollm_arch,
    /// Map the file into memory (default true) instead of reading it.
    pub prefer_mmap: bool,
    /// A Hugging Face tokenizer.json to use instead of the file's own tokenizer, or NULL (default).
    pub tokenizer_path: *const c_char,
}

impl Default for ferrollm_model_params {
    fn default() -> Self {
        ferrollm_model_params {
            struct_size: std::mem::size_of::<Self>() as u32,
            architecture: FERROLLM_ARCH_AUTO,
            prefer_mmap: true,
            tokenizer_path: std::ptr::null(),
        }
    }
}
// SAFETY: repr(C), starts with struct_size, plain data.
unsafe impl Params for ferrollm_model_params {}

/// Fills *params with the defaults. Pass `sizeof *params` as `struct_size`: the library writes
/// only that many bytes (an older or newer header's struct is never overrun) and records the count
/// in params->struct_size.
///
/// # Safety
/// `params` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_model_default_params(
    params: *mut ferrollm_model_params,
    struct_size: usize,
) -> ferrollm_status {
    boundary(|| unsafe { write_default_params(params, struct_size, "params") })
}

/// Loads a model file — GGUF (v2, v3), GGJT (v1–v3), GGMF or GGML — or the one model file in a
/// folder (with several, the error lists them). `params` may be NULL for the defaults. On success
/// *model_out receives a new model, owned by the caller.
///
/// # Safety
/// `path` is a NUL-terminated string; `params` is NULL or valid; `model_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_model_load(
    path: *const c_char,
    params: *const ferrollm_model_params,
    model_out: *mut *mut ferrollm_model,
) -> ferrollm_status {
    boundary(|| {
        let path = unsafe { path_arg(path, "path") }?;
        let p = unsafe { params_arg(params, "params") }?;
        let out = unsafe { Out::new(model_out, "model_out") }?;
        let tokenizer_path = unsafe { opt_str_arg(p.tokenizer_path, "params.tokenizer_path") }?;
        let lp = LoadParams {
            architecture: arch_from_c(p.architecture, "params.architecture")?,
            prefer_mmap: p.prefer_mmap,
            tokenizer_path: tokenizer_path.map(Into::into),
        };
        let model = Model::load(path, &lp)?;
        out.write(into_handle(ferrollm_model {
            inner: Arc::new(model),
        }));
        Ok(())
    })
}

/// Frees a model. NULL is accepted. Sessions made from it stay valid (they keep what they need).
///
/// # Safety
/// `model` is NULL or a model from ferrollm_model_load() not yet freed, used by no other call.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_model_free(model: *mut ferrollm_model) {
    super::boundary_or((), || unsafe { free_handle(model) })
}

/// Basic facts about a loaded model. Any out-pointer may be NULL.
///
/// # Safety
/// `model` is a live model; non-NULL out-pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_model_describe(
    model: *const ferrollm_model,
    arch_out: *mut ferrollm_arch,
    n_vocab_out: *mut u32,
    n_ctx_train_out: *mut u32,
    n_embd_out: *mut u32,
) -> ferrollm_status {
    boundary(|| {
        let m = &unsafe { ref_arg(model, "model") }?.inner;
        let s = m.spec();
        super::args::OptOut::new(arch_out).write(arch_to_c(s.arch));
        super::args::OptOut::new(n_vocab_out).write(s.n_vocab as u32);
        super::args::OptOut::new(n_ctx_train_out).write(s.n_ctx_train as u32);
        super::args::OptOut::new(n_embd_out).write(s.n_embd as u32);
        Ok(())
    })
}

fn text_arg<'a>(text: *const c_char, len: usize) -> Result<&'a str, Error> {
    let bytes = unsafe { slice_arg(text.cast::<u8>(), len, "text") }?;
    std::str::from_utf8(bytes)
        .map_err(|e| Error::invalid_argument(format!("text is not valid UTF-8: {e}")))
}

/// Tokenizes `len` bytes of UTF-8 `text`. With `add_special`, the tokenizer's own special tokens
/// (e.g. LLaMA's BOS) are added as transformers would. Writes up to `cap` ids to `tokens` and the
/// count to *n_out; if `cap` is too small, returns FERROLLM_ERR_BUFFER_TOO_SMALL with the needed
/// count in *n_out (call with cap 0 to ask). Thread-safe on a shared model.
///
/// # Safety
/// `text` points to `len` bytes; `tokens` to `cap` writable ids; `n_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_tokenize(
    model: *const ferrollm_model,
    text: *const c_char,
    len: usize,
    add_special: bool,
    tokens: *mut u32,
    cap: usize,
    n_out: *mut usize,
) -> ferrollm_status {
    boundary(|| {
        let m = &unsafe { ref_arg(model, "model") }?.inner;
        let text = text_arg(text, len)?;
        let n_out = unsafe { mut_arg(n_out, "n_out") }?;
        let buf = unsafe { slice_mut_arg(tokens, cap, "tokens") }?;
        let ids = m.tokenizer()?.encode(text, add_special)?;
        *n_out = ids.len();
        if ids.len() > buf.len() {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("tokens holds {} ids; {} are needed", buf.len(), ids.len()),
            ));
        }
        buf[..ids.len()].copy_from_slice(&ids);
        Ok(())
    })
}

/// The text of `n` token ids, as a new string in *text_out (free with ferrollm_string_free()).
///
/// # Safety
/// `tokens` points to `n` ids; `text_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_detokenize(
    model: *const ferrollm_model,
    tokens: *const u32,
    n: usize,
    text_out: *mut *mut c_char,
) -> ferrollm_status {
    boundary(|| {
        let m = &unsafe { ref_arg(model, "model") }?.inner;
        let ids = unsafe { slice_arg(tokens, n, "tokens") }?;
        let out = unsafe { Out::new(text_out, "text_out") }?;
        let n_vocab = m.spec().n_vocab;
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::invalid_argument(format!(
                "token id {bad} is out of range (vocabulary size {n_vocab})"
            )));
        }
        let text = m.tokenizer()?.decode(ids)?;
        out.write(owned_string(&text));
        Ok(())
    })
}

/// Element type of a session's key/value cache (`uint32_t`).
pub type ferrollm_kv_type = u32;
pub const FERROLLM_KV_F16: ferrollm_kv_type = 0;
pub const FERROLLM_KV_F32: ferrollm_kv_type = 1;

/// Settings for ferrollm_session_new(). Initialise with ferrollm_session_default_params().
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ferrollm_session_params {
    pub struct_size: u32,
    /// Worker threads; 0 (default) = one per core.
    pub threads: u32,
    /// Prompt tokens fed per forward pass (default 512).
    pub batch_size: u32,
    /// Context length in tokens; 0 (default) = the model's training context.
    pub context_length: u32,
    /// FERROLLM_KV_F16 (default) or FERROLLM_KV_F32.
    pub kv_type: ferrollm_kv_type,
    /// Rope frequency scale override; 0 (default) = the model's.
    pub rope_frequency_scale: f32,
    /// Rope frequency base (theta) override; 0 (default) = the model's.
    pub rope_frequency_base: f32,
}

impl Default for ferrollm_session_params {
    fn default() -> Self {
        let d = SessionParams::default();
        ferrollm_session_params {
            struct_size: std::mem::size_of::<Self>() as u32,
            threads: d.threads as u32,
            batch_size: d.batch_size as u32,
            context_length: d.context_length as u32,
            kv_type: FERROLLM_KV_F16,
            rope_frequency_scale: 0.0,
            rope_frequency_base: 0.0,
        }
    }
}
// SAFETY: repr(C), starts with struct_size, plain data.
unsafe impl Params for ferrollm_session_params {}

/// Fills *params with the defaults. Pass `sizeof *params` as `struct_size`: the library writes
/// only that many bytes (an older or newer header's struct is never overrun) and records the count
/// in params->struct_size.
///
/// # Safety
/// `params` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_session_default_params(
    params: *mut ferrollm_session_params,
    struct_size: usize,
) -> ferrollm_status {
    boundary(|| unsafe { write_default_params(params, struct_size, "params") })
}

/// A session: a KV cache, sampler state and worker threads over a model. One thread at a time may
/// use a session; give each thread its own. Free with ferrollm_session_free().
pub struct ferrollm_session {
    inner: Session,
}

/// Creates a session over `model` (which may be freed afterwards: the session keeps it alive).
/// `params` may be NULL for the defaults.
///
/// # Safety
/// `model` is a live model; `params` is NULL or valid; `session_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_session_new(
    model: *const ferrollm_model,
    params: *const ferrollm_session_params,
    session_out: *mut *mut ferrollm_session,
) -> ferrollm_status {
    boundary(|| {
        let m = unsafe { ref_arg(model, "model") }?.inner.clone();
        let p = unsafe { params_arg(params, "params") }?;
        let out = unsafe { Out::new(session_out, "session_out") }?;
        let kv_type = match p.kv_type {
            FERROLLM_KV_F16 => KvType::F16,
            FERROLLM_KV_F32 => KvType::F32,
            other => {
                return Err(Error::invalid_argument(format!(
                    "params.kv_type = {other} is not a ferrollm_kv_type value"
                )))
            }
        };
        let opt = |v: f32| (v != 0.0).then_some(v);
        let sp = SessionParams {
            threads: p.threads as usize,
            batch_size: p.batch_size as usize,
            context_length: p.context_length as usize,
            kv_type,
            rope_frequency_scale: opt(p.rope_frequency_scale),
            rope_frequency_base: opt(p.rope_frequency_base),
        };
        out.write(into_handle(ferrollm_session {
            inner: Session::new(m, sp)?,
        }));
        Ok(())
    })
}

/// Frees a session. NULL is accepted.
///
/// # Safety
/// `session` is NULL or a live session used by no other call.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_session_free(session: *mut ferrollm_session) {
    super::boundary_or((), || unsafe { free_handle(session) })
}

/// Forgets every token fed to the session.
///
/// # Safety
/// `session` is a live session used by no other call.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_session_reset(session: *mut ferrollm_session) -> ferrollm_status {
    boundary(|| {
        unsafe { mut_arg(session, "session") }?.inner.reset();
        Ok(())
    })
}

/// Which logits ferrollm_session_eval() returns (`uint32_t`).
pub type ferrollm_logits_mode = u32;
/// No logits (only fill the KV cache).
pub const FERROLLM_LOGITS_NONE: ferrollm_logits_mode = 0;
/// The logits of the last token: n_vocab floats.
pub const FERROLLM_LOGITS_LAST: ferrollm_logits_mode = 1;
/// The logits of every token fed: n × n_vocab floats, one row per token.
pub const FERROLLM_LOGITS_ALL: ferrollm_logits_mode = 2;

/// Feeds `n` tokens after those already in the session and writes logits per `mode` to `logits`
/// (capacity `cap` floats) and their count to *n_out (may be NULL). If `cap` is too small, returns
/// FERROLLM_ERR_BUFFER_TOO_SMALL with the needed count in *n_out — the tokens have been fed.
/// Tokens past the context give FERROLLM_ERR_CONTEXT_FULL (nothing fed); out-of-range ids give
/// FERROLLM_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `session` is a live session used by no other call; `tokens` points to `n` ids; `logits` to
/// `cap` writable floats; `n_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_session_eval(
    session: *mut ferrollm_session,
    tokens: *const u32,
    n: usize,
    mode: ferrollm_logits_mode,
    logits: *mut f32,
    cap: usize,
    n_out: *mut usize,
) -> ferrollm_status {
    boundary(|| {
        let s = &mut unsafe { mut_arg(session, "session") }?.inner;
        let ids = unsafe { slice_arg(tokens, n, "tokens") }?;
        let buf = unsafe { slice_mut_arg(logits, cap, "logits") }?;
        let mode = match mode {
            FERROLLM_LOGITS_NONE => Logits::None,
            FERROLLM_LOGITS_LAST => Logits::Last,
            FERROLLM_LOGITS_ALL => Logits::All,
            other => {
                return Err(Error::invalid_argument(format!(
                    "mode = {other} is not a ferrollm_logits_mode value"
                )))
            }
        };
        let values = s.eval(ids, mode)?;
        super::args::OptOut::new(n_out).write(values.len());
        if values.len() > buf.len() {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!(
                    "logits holds {} floats; {} are needed",
                    buf.len(),
                    values.len()
                ),
            ));
        }
        buf[..values.len()].copy_from_slice(values);
        Ok(())
    })
}

/// The embedding of `len` bytes of UTF-8 `text`: the mean over its tokens of the model's final
/// hidden states (n_embd floats), computed in a fresh context (the session is reset). Buffer rules
/// as ferrollm_session_eval().
///
/// # Safety
/// As ferrollm_session_eval(); `text` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_session_embed(
    session: *mut ferrollm_session,
    text: *const c_char,
    len: usize,
    embedding: *mut f32,
    cap: usize,
    n_out: *mut usize,
) -> ferrollm_status {
    boundary(|| {
        let s = &mut unsafe { mut_arg(session, "session") }?.inner;
        let text = text_arg(text, len)?;
        let buf = unsafe { slice_mut_arg(embedding, cap, "embedding") }?;
        let model = s.model().clone();
        let ids = model.tokenizer()?.encode(text, true)?;
        let values = s.embed(&ids)?;
        super::args::OptOut::new(n_out).write(values.len());
        if values.len() > buf.len() {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!(
                    "embedding holds {} floats; {} are needed",
                    buf.len(),
                    values.len()
                ),
            ));
        }
        buf[..values.len()].copy_from_slice(&values);
        Ok(())
    })
}

/// Settings of one generation (llm-rs' GenerationConfig). Initialise with
/// ferrollm_generate_default_params().
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ferrollm_generate_params {
    pub struct_size: u32,
    /// Keep the k most likely tokens (default 40; 0 = all).
    pub top_k: u32,
    /// Nucleus sampling threshold in (0, 1] (default 0.95).
    pub top_p: f32,
    /// Default 0.8; 0 = greedy.
    pub temperature: f32,
    /// Default 1.3; 1 = off.
    pub repetition_penalty: f32,
    /// Tokens the repetition penalty looks back on (default 512).
    pub repetition_penalty_last_n: u32,
    /// Random seed (default 42): the same seed gives the same text.
    pub seed: u64,
    /// Stop after this many new tokens; 0 (default) = until the end token or a full context.
    pub max_new_tokens: u32,
    /// `n_stop_words` UTF-8 strings; generation stops before the first one that appears.
    pub stop_words: *const *const c_char,
    pub n_stop_words: usize,
}

impl Default for ferrollm_generate_params {
    fn default() -> Self {
        let d = SamplerParams::default();
        ferrollm_generate_params {
            struct_size: std::mem::size_of::<Self>() as u32,
            top_k: d.top_k as u32,
            top_p: d.top_p,
            temperature: d.temperature,
            repetition_penalty: d.repetition_penalty,
            repetition_penalty_last_n: d.repetition_penalty_last_n as u32,
            seed: d.seed,
            max_new_tokens: 0,
            stop_words: std::ptr::null(),
            n_stop_words: 0,
        }
    }
}
// SAFETY: repr(C), starts with struct_size, plain data.
unsafe impl Params for ferrollm_generate_params {}

/// Fills *params with the defaults. Pass `sizeof *params` as `struct_size`: the library writes
/// only that many bytes (an older or newer header's struct is never overrun) and records the count
/// in params->struct_size.
///
/// # Safety
/// `params` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_generate_default_params(
    params: *mut ferrollm_generate_params,
    struct_size: usize,
) -> ferrollm_status {
    boundary(|| unsafe { write_default_params(params, struct_size, "params") })
}

/// Receives each new piece of generated text (`len` bytes of valid UTF-8, not NUL-terminated,
/// valid only during the call). Return false to stop generating.
pub type ferrollm_piece_fn =
    Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user_data: *mut c_void) -> bool>;

/// Why generation stopped (`uint32_t`).
pub type ferrollm_stop_reason = u32;
pub const FERROLLM_STOP_END_TOKEN: ferrollm_stop_reason = 0;
pub const FERROLLM_STOP_MAX_LENGTH: ferrollm_stop_reason = 1;
pub const FERROLLM_STOP_STOP_WORD: ferrollm_stop_reason = 2;
pub const FERROLLM_STOP_CANCELLED: ferrollm_stop_reason = 3;

/// The result of a generation; read it with the ferrollm_generation_* functions and free it with
/// ferrollm_generation_free().
pub struct ferrollm_generation {
    result: GenerateResult,
    text: std::ffi::CString,
}

/// Generates a continuation of `prompt` (UTF-8, NUL-terminated) after whatever the session holds,
/// calling `on_piece` (may be NULL) with each new piece of text. A cancellation by the callback is
/// not an error: the result says FERROLLM_STOP_CANCELLED. On success *result_out receives a new
/// result owned by the caller.
///
/// # Safety
/// `session` is a live session used by no other call; `prompt` is NUL-terminated; `params` is NULL
/// or valid (its stop_words array holds n_stop_words strings); `result_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_session_generate(
    session: *mut ferrollm_session,
    prompt: *const c_char,
    params: *const ferrollm_generate_params,
    on_piece: ferrollm_piece_fn,
    user_data: *mut c_void,
    result_out: *mut *mut ferrollm_generation,
) -> ferrollm_status {
    boundary(|| {
        let s = &mut unsafe { mut_arg(session, "session") }?.inner;
        let prompt = unsafe { str_arg(prompt, "prompt") }?;
        let p = unsafe { params_arg(params, "params") }?;
        let out = unsafe { Out::new(result_out, "result_out") }?;
        let words = unsafe { slice_arg(p.stop_words, p.n_stop_words, "params.stop_words") }?;
        let stop_words = words
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                unsafe { str_arg(w, &format!("params.stop_words[{i}]")) }.map(str::to_string)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let gp = GenerateParams {
            sampler: SamplerParams {
                top_k: p.top_k as usize,
                top_p: p.top_p,
                temperature: p.temperature,
                repetition_penalty: p.repetition_penalty,
                repetition_penalty_last_n: p.repetition_penalty_last_n as usize,
                seed: p.seed,
            },
            max_new_tokens: (p.max_new_tokens != 0).then_some(p.max_new_tokens as usize),
            stop_words,
        };
        let mut callback = |piece: &str| match on_piece {
            // SAFETY: the caller's callback receives a pointer valid for the call.
            Some(f) => unsafe { f(piece.as_ptr().cast(), piece.len(), user_data) },
            None => true,
        };
        let result = generate::generate(s, prompt, &gp, &mut callback)?;
        let text = std::ffi::CString::new(result.text.replace('\0', "")).unwrap_or_default();
        out.write(into_handle(ferrollm_generation { result, text }));
        Ok(())
    })
}

/// The generated text (NUL-terminated UTF-8), owned by the result. NULL for a NULL result.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_generation_text(
    result: *const ferrollm_generation,
) -> *const c_char {
    super::boundary_or(std::ptr::null(), || {
        unsafe { result.as_ref() }.map_or(std::ptr::null(), |r| r.text.as_ptr())
    })
}

/// The generated token ids (owned by the result) and their count in *n_out.
///
/// # Safety
/// `result` is a live result; `n_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_generation_tokens(
    result: *const ferrollm_generation,
    tokens_out: *mut *const u32,
    n_out: *mut usize,
) -> ferrollm_status {
    boundary(|| {
        let r = unsafe { ref_arg(result, "result") }?;
        let t = unsafe { Out::new(tokens_out, "tokens_out") }?;
        let n = unsafe { Out::new(n_out, "n_out") }?;
        t.write(r.result.tokens.as_ptr());
        n.write(r.result.tokens.len());
        Ok(())
    })
}

/// Why generation stopped, the number of prompt tokens fed, and the times in milliseconds (prompt
/// feeding, generation, total). Any out-pointer may be NULL.
///
/// # Safety
/// `result` is a live result; non-NULL out-pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_generation_info(
    result: *const ferrollm_generation,
    stop_reason_out: *mut ferrollm_stop_reason,
    n_prompt_tokens_out: *mut usize,
    prompt_ms_out: *mut f64,
    generation_ms_out: *mut f64,
    total_ms_out: *mut f64,
) -> ferrollm_status {
    boundary(|| {
        let r = &unsafe { ref_arg(result, "result") }?.result;
        super::args::OptOut::new(stop_reason_out).write(match r.stop_reason {
            StopReason::EndToken => FERROLLM_STOP_END_TOKEN,
            StopReason::MaxLength => FERROLLM_STOP_MAX_LENGTH,
            StopReason::StopWord => FERROLLM_STOP_STOP_WORD,
            StopReason::Cancelled => FERROLLM_STOP_CANCELLED,
        });
        super::args::OptOut::new(n_prompt_tokens_out).write(r.prompt_tokens);
        super::args::OptOut::new(prompt_ms_out).write(r.times.prompt_ms);
        super::args::OptOut::new(generation_ms_out).write(r.times.generation_ms);
        super::args::OptOut::new(total_ms_out).write(r.times.total_ms);
        Ok(())
    })
}

/// Frees a generation result. NULL is accepted.
///
/// # Safety
/// `result` is NULL or a live result used by no other call.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_generation_free(result: *mut ferrollm_generation) {
    super::boundary_or((), || unsafe { free_handle(result) })
}
