//! Progress reports of long work (conversion, quantization), shared by every job.

/// One progress report: which stage, which tensor, and how far along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress<'a> {
    /// What is being done: "convert", "quantize", "hash", …
    pub stage: &'a str,
    /// The tensor being processed, or "" between tensors.
    pub tensor: &'a str,
    /// Units done so far (tensors for conversion and quantization) and the total.
    pub current: u64,
    pub total: u64,
}

/// A progress callback: returns false to cancel the work (which then fails with
/// `ErrorKind::Cancelled` and leaves no output behind).
pub type ProgressFn<'a> = dyn FnMut(&Progress<'_>) -> bool + 'a;

/// Reports progress and turns a cancellation into an error.
pub fn report(progress: &mut ProgressFn<'_>, p: Progress<'_>) -> crate::Result<()> {
    if progress(&p) {
        Ok(())
    } else {
        Err(crate::Error::cancelled(format!(
            "{} cancelled by the progress callback",
            p.stage
        )))
    }
}
