//! The one error type of ferrollm.
//!
//! An [`Error`] is a kind plus a message. The kind maps 1:1 onto a C status code
//! (`ferrollm_status`, see `src/ffi/`); the message names the file, tensor or parameter at fault, so
//! that a caller reading only `ferrollm_last_error()` knows what went wrong.

use std::fmt;
use std::path::Path;

/// What class of failure an [`Error`] is. The discriminants are the C status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorKind {
    /// A NULL pointer, an out-of-range enum value or an otherwise invalid parameter.
    InvalidArgument = 1,
    /// The operating system refused a read, write, open, rename or mmap.
    Io = 2,
    /// A file's contents are malformed: bad magic, truncated, inconsistent sizes, …
    Format = 3,
    /// Well-formed input that ferrollm does not handle (architecture, tensor type, container feature).
    Unsupported = 4,
    /// A progress or streaming callback asked to stop.
    Cancelled = 5,
    /// A caller-supplied buffer is too small; the message says how large it must be.
    BufferTooSmall = 6,
    /// The tokens do not fit in the session's context.
    ContextFull = 7,
    /// A panic inside the library (a bug); caught at the C boundary.
    Panic = 8,
}

impl ErrorKind {
    /// A short, stable, lower-case name of this kind.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Io => "I/O error",
            ErrorKind::Format => "format error",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::BufferTooSmall => "buffer too small",
            ErrorKind::ContextFull => "context full",
            ErrorKind::Panic => "internal panic",
        }
    }
}

/// An error: what kind of failure, and a message naming what is at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The result type used across ferrollm.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    /// A malformed file: the message is prefixed with the file's path.
    pub fn format(path: &Path, message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Format, format!("{}: {message}", path.display()))
    }
    /// An operating-system failure on `path`; `what` says what was being done ("open", "read", …).
    pub fn io(path: &Path, what: &str, err: std::io::Error) -> Self {
        Self::new(
            ErrorKind::Io,
            format!("{}: cannot {what}: {err}", path.display()),
        )
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, message)
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The same error with `context` put in front of its message ("context: message").
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Adds a path to I/O errors: `file.read_exact(..).at(path, "read")?`.
pub trait IoContext<T> {
    fn at(self, path: &Path, what: &str) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path, what: &str) -> Result<T> {
        self.map_err(|e| Error::io(path, what, e))
    }
}
