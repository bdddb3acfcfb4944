//! The C API: the only place with `extern "C"`.
//!
//! Every exported function has the same shape: its body runs inside [`boundary`], which catches
//! panics, turns an [`Error`] into a status code and records its message for `ferrollm_last_error`.
//! Arguments are checked with the helpers in [`args`], so NULL pointers and out-of-range values give
//! `FERROLLM_ERR_INVALID_ARGUMENT` and never undefined behaviour. Nothing else in the crate imports
//! this module.

#![allow(non_camel_case_types)]

pub mod args;
pub mod convert;
pub mod model;
pub mod quantize;

pub use convert::*;
pub use model::*;
pub use quantize::*;

use crate::error::{Error, ErrorKind, Result};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The result of every fallible function: `FERROLLM_OK` (0) or one of the `FERROLLM_ERR_*` codes.
/// A `uint32_t` rather than a C enum so that codes added later are never undefined behaviour.
/// The codes equal the discriminants of the Rust `ErrorKind` (a unit test checks it).
pub type ferrollm_status = u32;

/// Success.
pub const FERROLLM_OK: ferrollm_status = 0;
/// A NULL pointer, an out-of-range enum value or an otherwise invalid parameter.
pub const FERROLLM_ERR_INVALID_ARGUMENT: ferrollm_status = 1;
/// The operating system refused to open, read, write, rename or map a file.
pub const FERROLLM_ERR_IO: ferrollm_status = 2;
/// A file is malformed (bad magic, truncated, inconsistent sizes, …).
pub const FERROLLM_ERR_FORMAT: ferrollm_status = 3;
/// Well-formed input that ferrollm does not handle (architecture, tensor type, container feature).
pub const FERROLLM_ERR_UNSUPPORTED: ferrollm_status = 4;
/// A callback returned false; no partial output was left behind.
pub const FERROLLM_ERR_CANCELLED: ferrollm_status = 5;
/// A caller-supplied buffer is too small; the function reports the size it needs.
pub const FERROLLM_ERR_BUFFER_TOO_SMALL: ferrollm_status = 6;
/// The tokens do not fit in the session's context.
pub const FERROLLM_ERR_CONTEXT_FULL: ferrollm_status = 7;
/// An internal panic (a bug in ferrollm) was caught at the boundary.
pub const FERROLLM_ERR_PANIC: ferrollm_status = 8;

/// The ABI version of this header. It changes only when a change breaks existing callers;
/// compare it with ferrollm_abi_version() at run time.
pub const FERROLLM_ABI_VERSION: u32 = 1;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // An interior NUL cannot be represented in a C string: cut the message there.
    let message = message.split('\0').next().unwrap_or_default();
    let message = CString::new(message).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = message);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs the body of an exported function: catches panics, maps errors to status codes and records
/// the message for `ferrollm_last_error`. Every `extern "C"` function that can fail goes through it.
pub(crate) fn boundary(f: impl FnOnce() -> Result<()>) -> ferrollm_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => FERROLLM_OK,
        Ok(Err(err)) => {
            set_last_error(err.message());
            err.kind() as u32
        }
        Err(payload) => {
            let err = Error::new(
                ErrorKind::Panic,
                format!("internal panic in ferrollm: {}", panic_message(&*payload)),
            );
            set_last_error(err.message());
            FERROLLM_ERR_PANIC
        }
    }
}

/// Like [`boundary`] for functions that cannot report a status: returns `fallback` on panic.
pub(crate) fn boundary_or<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        set_last_error(&format!(
            "internal panic in ferrollm: {}",
            panic_message(&*payload)
        ));
        fallback
    })
}

/// The message of the most recent failed call on the calling thread, or "" if none failed yet.
///
/// Ownership: the string belongs to the library; do not free it. It stays valid until the next
/// failing call on the same thread. Thread safety: each thread has its own message.
#[no_mangle]
pub extern "C" fn ferrollm_last_error() -> *const c_char {
    boundary_or(c"".as_ptr(), || {
        LAST_ERROR.with(|slot| slot.borrow().as_ptr())
    })
}

/// A static, human-readable name for a status code ("ok", "invalid argument", ...); "unknown status"
/// for a code this version does not know. Never NULL; do not free. Thread-safe.
#[no_mangle]
pub extern "C" fn ferrollm_status_name(status: ferrollm_status) -> *const c_char {
    let name: &'static CStr = match status {
        FERROLLM_OK => c"ok",
        FERROLLM_ERR_INVALID_ARGUMENT => c"invalid argument",
        FERROLLM_ERR_IO => c"I/O error",
        FERROLLM_ERR_FORMAT => c"format error",
        FERROLLM_ERR_UNSUPPORTED => c"unsupported",
        FERROLLM_ERR_CANCELLED => c"cancelled",
        FERROLLM_ERR_BUFFER_TOO_SMALL => c"buffer too small",
        FERROLLM_ERR_CONTEXT_FULL => c"context full",
        FERROLLM_ERR_PANIC => c"internal panic",
        _ => c"unknown status",
    };
    name.as_ptr()
}

/// The library's version, e.g. "0.1.0". Static: do not free. Thread-safe.
#[no_mangle]
pub extern "C" fn ferrollm_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// The ABI version of the loaded library; equal to FERROLLM_ABI_VERSION when the header and the
/// library match. Thread-safe.
#[no_mangle]
pub extern "C" fn ferrollm_abi_version() -> u32 {
    FERROLLM_ABI_VERSION
}

/// Frees a string that the library returned through a `char**` out-parameter. NULL is accepted and
/// does nothing. Freeing the same string twice, or a string the library did not allocate, is
/// undefined behaviour.
///
/// # Safety
/// `s` is NULL or a string returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ferrollm_string_free(s: *mut c_char) {
    boundary_or((), || {
        if !s.is_null() {
            // SAFETY: the caller passes a pointer produced by CString::into_raw in this library.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_match_error_kinds() {
        for (code, kind) in [
            (FERROLLM_ERR_INVALID_ARGUMENT, ErrorKind::InvalidArgument),
            (FERROLLM_ERR_IO, ErrorKind::Io),
            (FERROLLM_ERR_FORMAT, ErrorKind::Format),
            (FERROLLM_ERR_UNSUPPORTED, ErrorKind::Unsupported),
            (FERROLLM_ERR_CANCELLED, ErrorKind::Cancelled),
            (FERROLLM_ERR_BUFFER_TOO_SMALL, ErrorKind::BufferTooSmall),
            (FERROLLM_ERR_CONTEXT_FULL, ErrorKind::ContextFull),
            (FERROLLM_ERR_PANIC, ErrorKind::Panic),
        ] {
            assert_eq!(code, kind as u32);
            // SAFETY: ferrollm_status_name returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(ferrollm_status_name(code)) };
            assert_eq!(name.to_str().unwrap(), kind.name());
        }
    }

    #[test]
    fn panics_become_status_and_message() {
        let status = boundary(|| panic!("boom {}", 42));
        assert_eq!(status, FERROLLM_ERR_PANIC);
        // SAFETY: ferrollm_last_error returns a valid NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(ferrollm_last_error()) };
        assert!(msg.to_str().unwrap().contains("boom 42"), "{msg:?}");
    }

    #[test]
    fn errors_become_status_and_message() {
        let status = boundary(|| Err(Error::invalid_argument("path must not be NULL")));
        assert_eq!(status, FERROLLM_ERR_INVALID_ARGUMENT);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(ferrollm_last_error()) };
        assert_eq!(msg.to_str().unwrap(), "path must not be NULL");
    }
}
