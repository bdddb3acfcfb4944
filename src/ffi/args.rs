//! Checked conversions of C arguments. Each returns `FERROLLM_ERR_INVALID_ARGUMENT` (as an
//! [`Error`]) naming the parameter, instead of dereferencing NULL or reading invalid UTF-8.

use crate::error::{Error, Result};
use std::ffi::{c_char, CStr, CString};
use std::path::Path;

fn null(name: &str) -> Error {
    Error::invalid_argument(format!("{name} must not be NULL"))
}

/// A required UTF-8, NUL-terminated string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|e| Error::invalid_argument(format!("{name} is not valid UTF-8: {e}")))
}

/// An optional string: NULL gives `None`.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// A required path string.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn path_arg<'a>(p: *const c_char, name: &str) -> Result<&'a Path> {
    let s = unsafe { str_arg(p, name) }?;
    if s.is_empty() {
        return Err(Error::invalid_argument(format!("{name} must not be empty")));
    }
    Ok(Path::new(s))
}

/// A required shared reference (handles, input structs).
///
/// # Safety
/// `p` is NULL or points to a valid `T` that outlives `'a`.
pub(crate) unsafe fn ref_arg<'a, T>(p: *const T, name: &str) -> Result<&'a T> {
    unsafe { p.as_ref() }.ok_or_else(|| null(name))
}

/// A required exclusive reference (sessions, which one thread uses at a time).
///
/// # Safety
/// `p` is NULL or points to a valid `T` that no one else uses during `'a`.
pub(crate) unsafe fn mut_arg<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T> {
    unsafe { p.as_mut() }.ok_or_else(|| null(name))
}

/// A buffer given as pointer and length; NULL is accepted when `len` is 0.
///
/// # Safety
/// `p` is NULL or points to `len` valid `T`s that outlive `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL, `len` elements per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A writable buffer given as pointer and capacity; NULL is accepted when `cap` is 0.
///
/// # Safety
/// `p` is NULL or points to `cap` writable `T`s that no one else uses during `'a`.
pub(crate) unsafe fn slice_mut_arg<'a, T>(
    p: *mut T,
    cap: usize,
    name: &str,
) -> Result<&'a mut [T]> {
    if cap == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL, `cap` elements per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, cap) })
}

/// An out-pointer, checked for NULL before any work is done and written only on success.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// # Safety
    /// `p` is NULL or valid for a write of `T` until [`Out::write`] is called.
    pub(crate) unsafe fn new(p: *mut T, name: &str) -> Result<Self> {
        if p.is_null() {
            Err(null(name))
        } else {
            Ok(Out(p))
        }
    }
    pub(crate) fn write(self, value: T) {
        // SAFETY: checked non-NULL in `new`; the caller promised it is writable.
        unsafe { self.0.write(value) }
    }
}

/// An optional out-pointer: NULL means the caller does not want the value.
pub(crate) struct OptOut<T>(*mut T);

impl<T> OptOut<T> {
    pub(crate) fn new(p: *mut T) -> Self {
        OptOut(p)
    }
    pub(crate) fn write(self, value: T) {
        if !self.0.is_null() {
            // SAFETY: non-NULL, and the caller promised it is writable.
            unsafe { self.0.write(value) }
        }
    }
}

/// A string handed to the caller, to be freed with `ferrollm_string_free`.
pub(crate) fn owned_string(s: &str) -> *mut c_char {
    let s = s.split('\0').next().unwrap_or_default();
    CString::new(s).unwrap_or_default().into_raw()
}

/// A parameter struct that starts with `uint32_t struct_size`, so it can grow at its end without
/// breaking callers compiled against an older header.
///
/// # Safety
/// Implementors are `#[repr(C)]`, start with a `u32` struct size and are valid for any bytes a
/// caller's (possibly older) version of the struct can hold in the fields it knows.
pub(crate) unsafe trait Params: Copy + Default {}

/// Reads a parameter struct: NULL gives the defaults; otherwise the first `struct_size` bytes known to
/// this version are taken from the caller and the rest keep their defaults.
///
/// # Safety
/// `p` is NULL or points to at least `struct_size` readable bytes, `struct_size` being its first field.
pub(crate) unsafe fn params_arg<T: Params>(p: *const T, name: &str) -> Result<T> {
    let mut value = T::default();
    if p.is_null() {
        return Ok(value);
    }
    // SAFETY: every Params struct starts with a u32 struct_size.
    let size = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    if size < std::mem::size_of::<u32>() {
        return Err(Error::invalid_argument(format!(
            "{name}.struct_size is {size}; initialise the struct with its _default_params() function"
        )));
    }
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: the caller's struct has at least `size` bytes; T is plain data valid for these bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&mut value as *mut T).cast::<u8>(), n);
    }
    Ok(value)
}

/// Writes a parameter struct's defaults for a caller whose struct is `size` bytes long (its
/// `sizeof`, which may differ from this version's): the first `min(size, ours)` bytes are written and
/// `struct_size` is set to that count, so an older caller's smaller struct is never overrun and a
/// newer caller's extra fields are left as they are.
///
/// # Safety
/// `p` is NULL or points to at least `size` writable bytes.
pub(crate) unsafe fn write_default_params<T: Params>(
    p: *mut T,
    size: usize,
    name: &str,
) -> Result<()> {
    if p.is_null() {
        return Err(null(name));
    }
    if size < std::mem::size_of::<u32>() {
        return Err(Error::invalid_argument(format!(
            "struct_size {size} is too small for {name}; pass sizeof(*{name})"
        )));
    }
    let n = size.min(std::mem::size_of::<T>());
    let value = T::default();
    // SAFETY: the caller's struct has at least `size` >= n bytes; T is plain data.
    unsafe {
        std::ptr::copy_nonoverlapping((&value as *const T).cast::<u8>(), p.cast::<u8>(), n);
        p.cast::<u32>().write_unaligned(n as u32);
    }
    Ok(())
}

/// Moves `value` to the heap and hands ownership to the caller as an opaque handle.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees a handle made by [`into_handle`]; NULL does nothing.
///
/// # Safety
/// `p` is NULL or a live handle made by [`into_handle`] for the same `T`.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per the caller's contract.
        drop(unsafe { Box::from_raw(p) });
    }
}
