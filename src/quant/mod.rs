//! Block formats: quantize, dequantize and dot products, bit-identical to ggml's reference code.
//!
//! Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 (activation operand), Q2_K, Q3_K,
//! Q4_K, Q5_K, Q6_K and Q8_K (activation operand).
//!
//! - [`quantize`] produces exactly the bytes of ggml's `quantize_row_*_ref` (what `llama-quantize`
//!   writes without an importance matrix), F16 and BF16 exactly `GGML_FP32_TO_FP16`/`_BF16`.
//! - [`dequantize`] produces exactly ggml's `dequantize_row_*` values.
//! - [`vec_dot`] takes one weight row and one activation row already quantized to
//!   [`vec_dot_type`] (ggml's pairing: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the
//!   k-quants) or, for float weights, f32 activations.
//!
//! The block structs and the [`blocks::BlockFormat`]/[`blocks::VecDot`] traits are public for code
//! that works on typed blocks; the byte-level functions below are the stable entry points.
//! Kernels (scalar, AVX2, NEON) are chosen once per process: see [`kernel_name`].

pub mod blocks;
pub mod float16;
pub mod interleaved;
pub mod k_quants;
pub mod kernels;
mod math;
pub mod simple;

use crate::error::{Error, Result};
use crate::format::GgmlType;
use blocks::*;

/// True if [`quantize`] supports `ty`.
pub fn can_quantize(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16
            | BF16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q8_1
            | Q2_K
            | Q3_K
            | Q4_K
            | Q5_K
            | Q6_K
            | Q8_K
    )
}

/// True if [`dequantize`] supports `ty` (the same set as [`can_quantize`]; Q8_1 dequantizes as
/// `q * d`, ggml has no dequantizer for it).
pub fn can_dequantize(ty: GgmlType) -> bool {
    can_quantize(ty)
}

/// The type activations are quantized to for dot products with weights of `ty`, as ggml's
/// `vec_dot_type`: Q8_0 for Q4_0, Q5_0 and Q8_0; Q8_1 for Q4_1 and Q5_1; Q8_K for Q2_K … Q6_K.
/// `None` for float weights (F32, F16, BF16: activations are plain f32) and for types [`vec_dot`]
/// does not support (including the operands Q8_1 and Q8_K themselves).
///
/// Unlike ggml, F16 and BF16 weights are dotted with f32 activations (ggml rounds the activations
/// to F16/BF16 first).
pub fn vec_dot_type(ty: GgmlType) -> Option<GgmlType> {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => Some(Q8_0),
        Q4_1 | Q5_1 => Some(Q8_1),
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => Some(Q8_K),
        _ => None,
    }
}

/// True if [`vec_dot`] supports weights of type `ty`.
pub fn can_vec_dot(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) || vec_dot_type(ty).is_some()
}

/// The name of the kernel set this process uses: `"avx2"`, `"neon"` or `"scalar"`.
pub fn kernel_name() -> &'static str {
    kernels::get().name
}

fn unsupported(what: &str, ty: GgmlType) -> Error {
    Error::unsupported(format!("{what}: tensor type {ty} is not supported"))
}

/// Bytes of `n` values of `ty`, or an error naming the type when `n` is not a whole number of blocks.
fn bytes_for(what: &str, ty: GgmlType, n: usize) -> Result<usize> {
    ty.row_size(n as u64).map(|b| b as usize).ok_or_else(|| {
        Error::invalid_argument(format!(
            "{what}: {n} values of {ty} are not a whole number of {}-value blocks",
            ty.block_size()
        ))
    })
}

fn check_len(what: &str, ty: GgmlType, n: usize, role: &str, got: usize) -> Result<()> {
    let want = bytes_for(what, ty, n)?;
    if got != want {
        return Err(Error::invalid_argument(format!(
            "{what}: {n} values of {ty} take {want} bytes, but the {role} has {got}"
        )));
    }
    Ok(())
}

fn quantize_blocks<B: BlockFormat>(src: &[f32], dst: &mut [u8]) {
    B::from_float(src, cast_mut::<B>(dst));
}

fn dequantize_blocks<B: BlockFormat>(src: &[u8], dst: &mut [f32]) {
    B::to_float(cast::<B>(src), dst);
}

/// Quantizes `src` (length a multiple of `ty.block_size()`) into `dst` (length
/// `ty.row_size(src.len())`), exactly as ggml's `quantize_row_*_ref` (see the module documentation).
///
/// Every byte of `dst` is written (where ggml leaves the `bsums` of an all-zero Q8_K block
/// unwritten, we write zeros). Blocks so small that ggml's inverse scale overflows, and inputs with
/// NaN or inf, give the bytes an x86-64 build of ggml gives (on other platforms too, except that a
/// NaN scale created by arithmetic on inf, e.g. `0 × inf`, takes the platform's default-NaN sign).
/// docs/QUANTIZATION.md lists the facts relied on and the comparisons with gguf-py and libggml.
pub fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    if !can_quantize(ty) {
        return Err(unsupported("quantize", ty));
    }
    check_len("quantize", ty, src.len(), "destination", dst.len())?;
    let k = kernels::get();
    use GgmlType::*;
    match ty {
        F32 => {
            for (d, &v) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        F16 => {
            for (d, &v) in dst.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&float16::f32_to_f16(v).to_le_bytes());
            }
        }
        BF16 => {
            for (d, &v) in dst.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&float16::f32_to_bf16(v).to_le_bytes());
            }
        }
        Q4_0 => quantize_blocks::<BlockQ4_0>(src, dst),
        Q4_1 => quantize_blocks::<BlockQ4_1>(src, dst),
        Q5_0 => quantize_blocks::<BlockQ5_0>(src, dst),
        Q5_1 => quantize_blocks::<BlockQ5_1>(src, dst),
        Q8_0 => (k.quantize_q8_0)(src, cast_mut(dst)),
        Q8_1 => (k.quantize_q8_1)(src, cast_mut(dst)),
        Q2_K => quantize_blocks::<BlockQ2K>(src, dst),
        Q3_K => quantize_blocks::<BlockQ3K>(src, dst),
        Q4_K => quantize_blocks::<BlockQ4K>(src, dst),
        Q5_K => quantize_blocks::<BlockQ5K>(src, dst),
        Q6_K => quantize_blocks::<BlockQ6K>(src, dst),
        Q8_K => (k.quantize_q8_k)(src, cast_mut(dst)),
        _ => unreachable!("can_quantize covers every type above"),
    }
    Ok(())
}

/// Dequantizes `src` into `dst` (`dst.len()` a multiple of the block size, `src.len() ==
/// ty.row_size(dst.len())`), exactly as ggml's `dequantize_row_*`.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    if !can_dequantize(ty) {
        return Err(unsupported("dequantize", ty));
    }
    check_len("dequantize", ty, dst.len(), "source", src.len())?;
    use GgmlType::*;
    match ty {
        F32 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        F16 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = float16::f16_to_f32(u16::from_le_bytes([s[0], s[1]]));
            }
        }
        BF16 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = float16::bf16_to_f32(u16::from_le_bytes([s[0], s[1]]));
            }
        }
        Q4_0 => dequantize_blocks::<BlockQ4_0>(src, dst),
        Q4_1 => dequantize_blocks::<BlockQ4_1>(src, dst),
        Q5_0 => dequantize_blocks::<BlockQ5_0>(src, dst),
        Q5_1 => dequantize_blocks::<BlockQ5_1>(src, dst),
        Q8_0 => dequantize_blocks::<BlockQ8_0>(src, dst),
        Q8_1 => dequantize_blocks::<BlockQ8_1>(src, dst),
        Q2_K => dequantize_blocks::<BlockQ2K>(src, dst),
        Q3_K => dequantize_blocks::<BlockQ3K>(src, dst),
        Q4_K => dequantize_blocks::<BlockQ4K>(src, dst),
        Q5_K => dequantize_blocks::<BlockQ5K>(src, dst),
        Q6_K => dequantize_blocks::<BlockQ6K>(src, dst),
        Q8_K => dequantize_blocks::<BlockQ8K>(src, dst),
        _ => unreachable!("can_dequantize covers every type above"),
    }
    Ok(())
}

/// Dot product of one weight row (type `ty`, `n` values) with one activation row already in
/// [`vec_dot_type`]`(ty)` (or little-endian f32 bytes for F32/F16/BF16 weights).
///
/// The activation row is meant to come from [`quantize`]: as in ggml, the kernels rely on its
/// invariants (quants in −127..=127, Q8_1's `s` and Q8_K's `bsums` matching the quants); other
/// bytes give a wrong number, never undefined behaviour. Results of different kernel sets differ
/// only by float summation order.
pub fn vec_dot(ty: GgmlType, n: usize, weights: &[u8], activations: &[u8]) -> Result<f32> {
    dot_with(kernels::get(), ty, n, weights, activations)
}

/// The scalar reference of [`vec_dot`] (same contract), for tests and benchmarks of the SIMD
/// kernels.
pub fn vec_dot_reference(
    ty: GgmlType,
    n: usize,
    weights: &[u8],
    activations: &[u8],
) -> Result<f32> {
    dot_with(&kernels::Kernels::SCALAR, ty, n, weights, activations)
}

fn dot_with(k: &kernels::Kernels, ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<f32> {
    if !can_vec_dot(ty) {
        return Err(unsupported("vec_dot", ty));
    }
    let act_ty = vec_dot_type(ty).unwrap_or(GgmlType::F32);
    check_len("vec_dot", ty, n, "weight row", w.len())?;
    check_len("vec_dot", act_ty, n, "activation row", a.len())?;
    use GgmlType::*;
    Ok(match ty {
        F32 => (k.dot_f32)(w, a),
        F16 => (k.dot_f16)(w, a),
        BF16 => (k.dot_bf16)(w, a),
        Q4_0 => (k.dot_q4_0)(cast(w), cast(a)),
        Q4_1 => (k.dot_q4_1)(cast(w), cast(a)),
        Q5_0 => (k.dot_q5_0)(cast(w), cast(a)),
        Q5_1 => (k.dot_q5_1)(cast(w), cast(a)),
        Q8_0 => (k.dot_q8_0)(cast(w), cast(a)),
        Q2_K => (k.dot_q2_k)(cast(w), cast(a)),
        Q3_K => (k.dot_q3_k)(cast(w), cast(a)),
        Q4_K => (k.dot_q4_k)(cast(w), cast(a)),
        Q5_K => (k.dot_q5_k)(cast(w), cast(a)),
        Q6_K => (k.dot_q6_k)(cast(w), cast(a)),
        _ => unreachable!("can_vec_dot covers every type above"),
    })
}
