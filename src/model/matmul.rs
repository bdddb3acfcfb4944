//! Matrix products of weights with f32 activations.
//!
//! As ggml does, the activations are converted once per product to the weight type's dot-product
//! operand (`quant::vec_dot_type`: Q8_0, Q8_1 or Q8_K for quantized weights), then every output
//! value is one `vec_dot` of a weight row with an activation row. Work is split across the
//! session's threads by blocks of weight rows, so each row is read from memory once per product
//! and reused for every token of the batch.

use super::weights::{Linear, Matrix};
use crate::error::Result;
use crate::quant;
use rayon::prelude::*;

/// The raw bytes of an f32 slice (little-endian on the platforms ferrollm supports).
pub(crate) fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and every byte of it may be read as u8; the length is exact.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

/// Activations converted to a weight type's dot-product operand, one row per token.
pub(crate) struct Operand {
    bytes: Vec<u8>,
    row_size: usize,
}

impl Operand {
    pub(crate) fn new(w: &Matrix, x: &[f32], n_tokens: usize) -> Result<Operand> {
        let cols = w.cols;
        match quant::vec_dot_type(w.ty) {
            Some(t) => {
                let row_size = t.row_size(cols as u64).expect("cols checked at load") as usize;
                let mut bytes = vec![0u8; row_size * n_tokens];
                for (dst, src) in bytes.chunks_exact_mut(row_size).zip(x.chunks_exact(cols)) {
                    quant::quantize(t, src, dst)?;
                }
                Ok(Operand { bytes, row_size })
            }
            None => Ok(Operand {
                bytes: f32_bytes(&x[..cols * n_tokens]).to_vec(),
                row_size: cols * 4,
            }),
        }
    }
    fn row(&self, t: usize) -> &[u8] {
        &self.bytes[t * self.row_size..(t + 1) * self.row_size]
    }
}

/// `out[t][r] = W[r] · x[t] + b[r]` for `n_tokens` rows of `x` (each `w.cols` long); `out` holds
/// `n_tokens × w.rows` values.
pub fn linear(lin: &Linear, x: &[f32], n_tokens: usize, out: &mut [f32]) -> Result<()> {
    let w = &lin.w;
    let (rows, cols) = (w.rows, w.cols);
    debug_assert_eq!(x.len(), n_tokens * cols);
    debug_assert_eq!(out.len(), n_tokens * rows);
    let operand = Operand::new(w, x, n_tokens)?;
    // Rows per task: enough work per task to amortise scheduling, enough tasks to balance threads.
    let chunk = (rows / (rayon::current_num_threads() * 8)).clamp(1, 64);
    if n_tokens == 1 {
        out.par_chunks_mut(chunk)
            .enumerate()
            .try_for_each(|(c, dst)| -> Result<()> {
                for (i, o) in dst.iter_mut().enumerate() {
                    *o = quant::vec_dot(w.ty, cols, w.row(c * chunk + i), operand.row(0))?;
                }
                Ok(())
            })?;
    } else {
        // Computed as [row][token] so each task owns a contiguous block, then transposed.
        let mut by_row = vec![0f32; rows * n_tokens];
        by_row
            .par_chunks_mut(chunk * n_tokens)
            .enumerate()
            .try_for_each(|(c, dst)| -> Result<()> {
                for (i, row_out) in dst.chunks_exact_mut(n_tokens).enumerate() {
                    let wr = w.row(c * chunk + i);
                    for (t, o) in row_out.iter_mut().enumerate() {
                        *o = quant::vec_dot(w.ty, cols, wr, operand.row(t))?;
                    }
                }
                Ok(())
            })?;
        for (t, out_row) in out.chunks_exact_mut(rows).enumerate() {
            for (r, o) in out_row.iter_mut().enumerate() {
                *o = by_row[r * n_tokens + t];
            }
        }
    }
    if let Some(b) = &lin.b {
        for out_row in out.chunks_exact_mut(rows) {
            for (o, bias) in out_row.iter_mut().zip(b) {
                *o += bias;
            }
        }
    }
    Ok(())
}
