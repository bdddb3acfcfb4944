//! ferrollm: convert Hugging Face checkpoints into GGML-family files, quantize them, and run them on
//! the CPU — from Rust directly, or from any language through the C API (`include/ferrollm.h`).
//!
//! The Rust API is first-class; `ffi` is a thin layer over it and nothing else imports it.

pub mod arch;
pub mod convert;
pub mod error;
pub mod format;
pub mod generate;
pub mod model;
pub mod pool;
pub mod profile;
pub mod progress;
pub mod quant;
pub mod quantizer;
pub mod sampling;
pub mod session;
pub mod tokenizer;

/// The C API (`include/ferrollm.h`); Rust callers use the modules above.
#[doc(hidden)]
pub mod ffi;

pub use arch::Architecture;
pub use error::{Error, ErrorKind, Result};

/// The README's Rust snippet, compiled as a doctest so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
