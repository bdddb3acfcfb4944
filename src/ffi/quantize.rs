//! C API: quantizing model files (the seed's `AutoQuantizer` and `Model.quantize`), and the
//! progress callback shared by every long job.

use super::args::{free_handle, into_handle, owned_string, path_arg, ref_arg, OptOut, Out};
use super::{boundary, ferrollm_status};
use crate::error::{Error, Result};
use crate::format::{Container, GgmlType};
use crate::progress::Progress;
use crate::quantizer::{self, Quantizer};
use std::ffi::{c_char, c_void, CString};
use std::path::Path;

/// A ggml tensor type id (`uint32_t`), as stored in files.
pub type ferrollm_type = u32;
pub const FERROLLM_TYPE_F32: ferrollm_type = 0;
pub const FERROLLM_TYPE_F16: ferrollm_type = 1;
pub const FERROLLM_TYPE_Q4_0: ferrollm_type = 2;
pub const FERROLLM_TYPE_Q4_1: ferrollm_type = 3;
pub const FERROLLM_TYPE_Q5_0: ferrollm_type = 6;
pub const FERROLLM_TYPE_Q5_1: ferrollm_type = 7;
pub const FERROLLM_TYPE_Q8_0: ferrollm_type = 8;
pub const FERROLLM_TYPE_Q2_K: ferrollm_type = 10;
pub const FERROLLM_TYPE_Q3_K: ferrollm_type = 11;
pub const FERROLLM_TYPE_Q4_K: ferrollm_type = 12;
pub const FERROLLM_TYPE_Q5_K: ferrollm_type = 13;
pub const FERROLLM_TYPE_Q6_K: ferrollm_type = 14;
pub const FERROLLM_TYPE_BF16: ferrollm_type = 30;

/// A file container (`uint32_t`).
pub type ferrollm_container = u32;
/// GGUF v3 (the default; llama.cpp reads it).
pub const FERROLLM_CONTAINER_GGUF: ferrollm_container = 0;
/// GGJT v3, llm-rs' default container.
pub const FERROLLM_CONTAINER_GGJT: ferrollm_container = 1;
/// Unversioned GGML.
pub const FERROLLM_CONTAINER_GGML: ferrollm_container = 2;

pub(crate) fn container_from_c(c: ferrollm_container) -> Result<Container> {
    match c {
        FERROLLM_CONTAINER_GGUF => Ok(Container::Gguf),
        FERROLLM_CONTAINER_GGJT => Ok(Container::Ggjt),
        FERROLLM_CONTAINER_GGML => Ok(Container::Ggml),
        other => Err(Error::invalid_argument(format!(
            "container = {other} is not a ferrollm_container value"
        ))),
    }
}

fn type_from_c(t: ferrollm_type) -> Result<GgmlType> {
    GgmlType::from_id(t)
        .ok_or_else(|| Error::invalid_argument(format!("type = {t} is not a ggml type id")))
}

/// The lower-case ggml name of a type ("q4_0", "f16", …), or NULL for an unknown id. Static.
#[no_mangle]
pub extern "C" fn ferrollm_type_name(ty: ferrollm_type) -> *const c_char {
    static NAMES: std::sync::OnceLock<Vec<(GgmlType, CString)>> = std::sync::OnceLock::new();
    super::boundary_or(std::ptr::null(), || {
        let names = NAMES.get_or_init(|| {
            GgmlType::ALL
                .iter()
                .map(|&t| (t, CString::new(t.name()).unwrap_or_default()))
                .collect()
        });
        names
            .iter()
            .find(|(t, _)| *t as u32 == ty)
            .map_or(std::ptr::null(), |(_, n)| n.as_ptr())
    })
}

/// The type named `name` (ggml's spelling, any case: "q4_0", "Q4_K", "bf16") into *type_out.
///
/// # Safety
/// `name` is NUL-terminated; `type_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_type_from_name(
    name: *const c_char,
    type_out: *mut ferrollm_type,
) -> ferrollm_status {
    boundary(|| {
        let name = unsafe { super::args::str_arg(name, "name") }?;
        let out = unsafe { Out::new(type_out, "type_out") }?;
        let t = GgmlType::from_name(name)
            .ok_or_else(|| Error::invalid_argument(format!("unknown type name {name:?}")))?;
        out.write(t as u32);
        Ok(())
    })
}

/// A progress report passed to a ferrollm_progress_fn; valid only during the call.
#[repr(C)]
pub struct ferrollm_progress {
    pub struct_size: u32,
    /// What is being done: "convert", "quantize", …
    pub stage: *const c_char,
    /// The tensor being processed, or "" between tensors.
    pub tensor: *const c_char,
    /// Units done so far and the total (tensors, for conversion and quantization).
    pub current: u64,
    pub total: u64,
}

/// Called during long work; return false to cancel it (the call then fails with
/// FERROLLM_ERR_CANCELLED and leaves no output file).
pub type ferrollm_progress_fn = Option<
    unsafe extern "C" fn(progress: *const ferrollm_progress, user_data: *mut c_void) -> bool,
>;

/// Runs `f` with a Rust progress closure that forwards to the C callback (or always continues).
pub(crate) fn with_progress<T>(
    cb: ferrollm_progress_fn,
    user_data: *mut c_void,
    f: impl FnOnce(&mut dyn FnMut(&Progress<'_>) -> bool) -> Result<T>,
) -> Result<T> {
    let mut forward = |p: &Progress<'_>| -> bool {
        let Some(cb) = cb else { return true };
        let stage = CString::new(p.stage).unwrap_or_default();
        let tensor = CString::new(p.tensor.replace('\0', "")).unwrap_or_default();
        let report = ferrollm_progress {
            struct_size: std::mem::size_of::<ferrollm_progress>() as u32,
            stage: stage.as_ptr(),
            tensor: tensor.as_ptr(),
            current: p.current,
            total: p.total,
        };
        // SAFETY: the caller's callback gets a report valid for the duration of the call.
        unsafe { cb(&report, user_data) }
    };
    f(&mut forward)
}

/// An opened source model ready to be quantized. Free with ferrollm_quantizer_free().
pub struct ferrollm_quantizer {
    inner: Quantizer,
}

/// Opens the model file `source` for quantization (llm-rs' AutoQuantizer): reads its metadata
/// (GGUF keys, or the `.meta` sidecar of a legacy file). A source that is already quantized is
/// refused with FERROLLM_ERR_UNSUPPORTED.
///
/// # Safety
/// `source` is NUL-terminated; `quantizer_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_quantizer_open(
    source: *const c_char,
    quantizer_out: *mut *mut ferrollm_quantizer,
) -> ferrollm_status {
    boundary(|| {
        let source = unsafe { path_arg(source, "source") }?;
        let out = unsafe { Out::new(quantizer_out, "quantizer_out") }?;
        out.write(into_handle(ferrollm_quantizer {
            inner: Quantizer::open(source)?,
        }));
        Ok(())
    })
}

/// Quantizes the opened source to `type` in `container`. `destination` is a file path (used as
/// is), a folder, or NULL (the source's folder); in a folder the name follows llm-rs: the source
/// stem without "-f16", plus "-<type>", plus "-ggjt" for GGJT, ".gguf" or ".bin". An existing
/// target is not overwritten: its path is returned and a warning logged. A `.meta` sidecar is
/// written beside the output. On success *written_path_out (may be NULL) receives the path, to be
/// freed with ferrollm_string_free(). The quantizer may be used again (e.g. for another type).
///
/// # Safety
/// `quantizer` is live; `destination` is NULL or NUL-terminated; `written_path_out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_quantizer_quantize(
    quantizer: *const ferrollm_quantizer,
    destination: *const c_char,
    ty: ferrollm_type,
    container: ferrollm_container,
    progress: ferrollm_progress_fn,
    user_data: *mut c_void,
    written_path_out: *mut *mut c_char,
) -> ferrollm_status {
    boundary(|| {
        let q = &unsafe { ref_arg(quantizer, "quantizer") }?.inner;
        let dst = unsafe { super::args::opt_str_arg(destination, "destination") }?.map(Path::new);
        let ty = type_from_c(ty)?;
        let container = container_from_c(container)?;
        let outcome = with_progress(progress, user_data, |p| q.quantize(dst, ty, container, p))?;
        OptOut::new(written_path_out).write(owned_string(&outcome.path.to_string_lossy()));
        Ok(())
    })
}

/// Frees a quantizer. NULL is accepted.
///
/// # Safety
/// `quantizer` is NULL or live and used by no other call.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_quantizer_free(quantizer: *mut ferrollm_quantizer) {
    super::boundary_or((), || unsafe { free_handle(quantizer) })
}

/// Quantizes `source` into `destination` in one call (llm-rs' Model.quantize); the rules are
/// those of ferrollm_quantizer_quantize().
///
/// # Safety
/// As ferrollm_quantizer_open() and ferrollm_quantizer_quantize().
#[no_mangle]
pub unsafe extern "C" fn ferrollm_quantize(
    source: *const c_char,
    destination: *const c_char,
    ty: ferrollm_type,
    container: ferrollm_container,
    progress: ferrollm_progress_fn,
    user_data: *mut c_void,
    written_path_out: *mut *mut c_char,
) -> ferrollm_status {
    boundary(|| {
        let source = unsafe { path_arg(source, "source") }?;
        let dst = unsafe { super::args::opt_str_arg(destination, "destination") }?.map(Path::new);
        let ty = type_from_c(ty)?;
        let container = container_from_c(container)?;
        let outcome = with_progress(progress, user_data, |p| {
            quantizer::quantize(source, dst, ty, container, p)
        })?;
        OptOut::new(written_path_out).write(owned_string(&outcome.path.to_string_lossy()));
        Ok(())
    })
}
