//! C API: converting Hugging Face checkpoints (the seed's `AutoConverter` and its per-architecture
//! converters).

use super::args::{
    free_handle, into_handle, owned_string, params_arg, path_arg, ref_arg, write_default_params,
    OptOut, Out, Params,
};
use super::model::{arch_from_c, arch_to_c, ferrollm_arch};
use super::quantize::{
    container_from_c, ferrollm_container, ferrollm_progress_fn, ferrollm_type, with_progress,
    FERROLLM_CONTAINER_GGUF, FERROLLM_TYPE_F16,
};
use super::{boundary, ferrollm_status};
use crate::convert::{ConvertParams, Converter};
use crate::error::Error;
use crate::format::GgmlType;
use std::ffi::{c_char, c_void};

/// An opened Hugging Face model folder, ready to convert. Free with ferrollm_converter_free().
pub struct ferrollm_converter {
    inner: Converter,
}

/// Settings for ferrollm_converter_convert(). Initialise with ferrollm_convert_default_params().
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ferrollm_convert_params {
    pub struct_size: u32,
    /// FERROLLM_CONTAINER_GGUF (default), FERROLLM_CONTAINER_GGJT or FERROLLM_CONTAINER_GGML.
    pub container: ferrollm_container,
    /// Type of the weight matrices: FERROLLM_TYPE_F16 (default), FERROLLM_TYPE_F32,
    /// FERROLLM_TYPE_BF16 or any quantization (FERROLLM_TYPE_Q4_0 …): quantized types are applied
    /// as tensors stream through, giving the same bytes as converting to F16 and then quantizing.
    /// Norms, biases and other 1-D tensors stay F32.
    pub dtype: ferrollm_type,
}

impl Default for ferrollm_convert_params {
    fn default() -> Self {
        ferrollm_convert_params {
            struct_size: std::mem::size_of::<Self>() as u32,
            container: FERROLLM_CONTAINER_GGUF,
            dtype: FERROLLM_TYPE_F16,
        }
    }
}
// SAFETY: repr(C), starts with struct_size, plain data.
unsafe impl Params for ferrollm_convert_params {}

/// Fills *params with the defaults. Pass `sizeof *params` as `struct_size`: the library writes
/// only that many bytes (an older or newer header's struct is never overrun) and records the count
/// in params->struct_size.
///
/// # Safety
/// `params` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_convert_default_params(
    params: *mut ferrollm_convert_params,
    struct_size: usize,
) -> ferrollm_status {
    boundary(|| unsafe { write_default_params(params, struct_size, "params") })
}

/// Opens a Hugging Face model folder (config.json, model.safetensors or a sharded index — or
/// pytorch_model.bin or its sharded index, read without executing anything —
/// tokenizer.json) and detects its architecture from config.json (`architectures[0]`, else
/// `model_type`). An unsupported architecture gives FERROLLM_ERR_UNSUPPORTED with the list of
/// supported ones.
///
/// # Safety
/// `hf_dir` is NUL-terminated; `converter_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_converter_open(
    hf_dir: *const c_char,
    converter_out: *mut *mut ferrollm_converter,
) -> ferrollm_status {
    boundary(|| {
        let dir = unsafe { path_arg(hf_dir, "hf_dir") }?;
        let out = unsafe { Out::new(converter_out, "converter_out") }?;
        out.write(into_handle(ferrollm_converter {
            inner: Converter::open(dir)?,
        }));
        Ok(())
    })
}

/// Opens a Hugging Face model folder as architecture `arch` (a manual converter; not
/// FERROLLM_ARCH_AUTO).
///
/// # Safety
/// As ferrollm_converter_open().
#[no_mangle]
pub unsafe extern "C" fn ferrollm_converter_open_as(
    hf_dir: *const c_char,
    arch: ferrollm_arch,
    converter_out: *mut *mut ferrollm_converter,
) -> ferrollm_status {
    boundary(|| {
        let dir = unsafe { path_arg(hf_dir, "hf_dir") }?;
        let arch = arch_from_c(arch, "arch")?.ok_or_else(|| {
            Error::invalid_argument("arch must name an architecture, not FERROLLM_ARCH_AUTO")
        })?;
        let out = unsafe { Out::new(converter_out, "converter_out") }?;
        out.write(into_handle(ferrollm_converter {
            inner: Converter::open_as(dir, arch)?,
        }));
        Ok(())
    })
}

/// The architecture the converter detected (or was given).
///
/// # Safety
/// `converter` is live; `arch_out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_converter_arch(
    converter: *const ferrollm_converter,
    arch_out: *mut ferrollm_arch,
) -> ferrollm_status {
    boundary(|| {
        let c = &unsafe { ref_arg(converter, "converter") }?.inner;
        unsafe { Out::new(arch_out, "arch_out") }?.write(arch_to_c(c.architecture()));
        Ok(())
    })
}

/// Converts the checkpoint. `out` is a file path (used as is) or a folder, where the name is
/// llm-rs': `<model-name>-f16.gguf` (`.bin` for legacy containers), the model name being the last
/// component of `_name_or_path` in config.json, else the folder's name. A `.meta` sidecar is
/// written beside the output. `params` may be NULL for the defaults. Nothing is left behind on
/// failure or cancellation. On success *written_path_out (may be NULL) receives the path written,
/// to be freed with ferrollm_string_free().
///
/// # Safety
/// `converter` is live; `out` is NUL-terminated; `params` is NULL or valid; `written_path_out` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_converter_convert(
    converter: *const ferrollm_converter,
    out: *const c_char,
    params: *const ferrollm_convert_params,
    progress: ferrollm_progress_fn,
    user_data: *mut c_void,
    written_path_out: *mut *mut c_char,
) -> ferrollm_status {
    boundary(|| {
        let c = &unsafe { ref_arg(converter, "converter") }?.inner;
        let out = unsafe { path_arg(out, "out") }?;
        let p = unsafe { params_arg(params, "params") }?;
        let params = ConvertParams {
            container: container_from_c(p.container)?,
            dtype: GgmlType::from_id(p.dtype).ok_or_else(|| {
                Error::invalid_argument(format!("params.dtype = {} is not a ggml type id", p.dtype))
            })?,
        };
        let path = with_progress(progress, user_data, |cb| c.convert(out, &params, cb))?;
        OptOut::new(written_path_out).write(owned_string(&path.to_string_lossy()));
        Ok(())
    })
}

/// Frees a converter. NULL is accepted.
///
/// # Safety
/// `converter` is NULL or live and used by no other call.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_converter_free(converter: *mut ferrollm_converter) {
    super::boundary_or((), || unsafe { free_handle(converter) })
}
