//! The block formats: one `#[repr(C)]` struct per ggml block type, byte for byte ggml's layout
//! (`ggml/src/ggml-common.h`), and the [`BlockFormat`] trait that quantizes and dequantizes them.
//!
//! Every struct here has alignment 1 (multi-byte fields are little-endian byte arrays: [`Half`],
//! [`LeF32`], [`LeI16`]), so a tensor's bytes can be viewed as a slice of blocks wherever they sit
//! in a file or mmap (legacy containers do not align tensor data). ggml stores these fields in the
//! host's byte order and every ggml host is little-endian; we read and write little-endian on any host.

use crate::format::GgmlType;
use crate::quant::float16;

/// Values per k-quant super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;
/// Values per block of the 32-value formats (ggml's `QK4_0` … `QK8_1`).
pub const QK: usize = 32;

/// Plain old data: `#[repr(C)]` or `#[repr(transparent)]`, alignment 1, no padding, and every bit
/// pattern is a valid value.
///
/// # Safety
/// Implement only for types with those properties: [`cast`] and [`cast_mut`] reinterpret arbitrary
/// bytes as `Self`.
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

/// Views `bytes` as blocks. Panics when the length is not a multiple of the block's size (callers
/// check lengths first and report errors).
pub fn cast<T: Pod>(bytes: &[u8]) -> &[T] {
    const { assert!(std::mem::align_of::<T>() == 1) };
    let size = std::mem::size_of::<T>();
    assert_eq!(
        bytes.len() % size,
        0,
        "byte length is not a whole number of blocks"
    );
    // SAFETY: `T: Pod` has alignment 1 and accepts every bit pattern; the length is a whole
    // number of `T`s and the lifetime is carried over.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) }
}

/// Views `bytes` as mutable blocks (see [`cast`]).
pub fn cast_mut<T: Pod>(bytes: &mut [u8]) -> &mut [T] {
    const { assert!(std::mem::align_of::<T>() == 1) };
    let size = std::mem::size_of::<T>();
    assert_eq!(
        bytes.len() % size,
        0,
        "byte length is not a whole number of blocks"
    );
    // SAFETY: as in `cast`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<T>(), bytes.len() / size) }
}

/// The bytes of a slice of blocks.
pub fn as_bytes<T: Pod>(blocks: &[T]) -> &[u8] {
    // SAFETY: `T: Pod` has no padding, so all its bytes are initialized.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
    }
}

/// The mutable bytes of a slice of blocks.
pub fn as_bytes_mut<T: Pod>(blocks: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; any bytes written form a valid `T`.
    unsafe {
        std::slice::from_raw_parts_mut(
            blocks.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(blocks),
        )
    }
}

/// An IEEE half (ggml's `ggml_half`), stored little-endian.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct Half(pub [u8; 2]);

impl Half {
    pub const ZERO: Half = Half([0, 0]);
    #[inline]
    pub fn bits(self) -> u16 {
        u16::from_le_bytes(self.0)
    }
    #[inline]
    pub fn from_bits(bits: u16) -> Half {
        Half(bits.to_le_bytes())
    }
    /// ggml's `GGML_FP32_TO_FP16`.
    #[inline]
    pub fn from_f32(f: f32) -> Half {
        Half::from_bits(float16::f32_to_f16(f))
    }
    /// ggml's `GGML_FP16_TO_FP32`.
    #[inline]
    pub fn to_f32(self) -> f32 {
        float16::f16_to_f32(self.bits())
    }
}

/// An f32 stored little-endian (Q8_K's scale).
#[derive(Clone, Copy, Default, PartialEq, Debug)]
#[repr(transparent)]
pub struct LeF32(pub [u8; 4]);

impl LeF32 {
    #[inline]
    pub fn get(self) -> f32 {
        f32::from_le_bytes(self.0)
    }
    #[inline]
    pub fn new(v: f32) -> LeF32 {
        LeF32(v.to_le_bytes())
    }
}

/// An i16 stored little-endian (Q8_K's block sums).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct LeI16(pub [u8; 2]);

impl LeI16 {
    #[inline]
    pub fn get(self) -> i16 {
        i16::from_le_bytes(self.0)
    }
    #[inline]
    pub fn new(v: i16) -> LeI16 {
        LeI16(v.to_le_bytes())
    }
}

/// Q4_0: 32 values as 4-bit `q`, value = `d * (q - 8)`; `qs[j]` holds value `j` in its low nibble and
/// value `j + 16` in its high nibble.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: Half,
    pub qs: [u8; QK / 2],
}

/// Q4_1: value = `d * q + m`, 4-bit `q`, nibbles as Q4_0.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: Half,
    pub m: Half,
    pub qs: [u8; QK / 2],
}

/// Q5_0: value = `d * (q - 16)`, 5-bit `q`: low nibbles as Q4_0, bit 4 of value `j` is bit `j` of the
/// little-endian u32 `qh`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: Half,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// Q5_1: value = `d * q + m`, 5-bit `q` stored as in Q5_0.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: Half,
    pub m: Half,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// Q8_0: value = `d * q`, 8-bit signed `q`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: Half,
    pub qs: [i8; QK],
}

/// Q8_1 (activation operand of Q4_1/Q5_1 dot products): as Q8_0 plus `s = d * Σ q` (current ggml's
/// 36-byte layout with f16 `d` and `s`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: Half,
    pub s: Half,
    pub qs: [i8; QK],
}

/// Q2_K: 16 sub-blocks of 16 values; value = `d * (scales[i] & 15) * q - dmin * (scales[i] >> 4)`
/// with 2-bit `q`. `qs` holds, per 128 values, 32 bytes whose 2-bit fields 0..3 are values
/// `l`, `l + 32`, `l + 64`, `l + 96`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: Half,
    pub dmin: Half,
}

/// Q3_K: 16 sub-blocks of 16 values; value = `d * (scale - 32) * (q - 4)`, 3-bit `q` (2 low bits in
/// `qs` laid out as Q2_K, the high bit in `hmask`: bit `b` of `hmask[m]` belongs to value
/// `32 * b + m`), 6-bit scales packed in 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: Half,
}

/// Q4_K: 8 sub-blocks of 32 values; value = `d * sc * q - dmin * m` with 4-bit `q` and 6-bit
/// `sc`, `m` packed in 12 bytes (see [`get_scale_min_k4`](crate::quant::k_quants::get_scale_min_k4)).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4K {
    pub d: Half,
    pub dmin: Half,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

/// Q5_K: as Q4_K with a fifth bit per value in `qh`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ5K {
    pub d: Half,
    pub dmin: Half,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// Q6_K: 16 sub-blocks of 16 values; value = `d * scales[i] * (q - 32)`, 6-bit `q` (4 bits in
/// `ql`, 2 in `qh`), signed 8-bit scales.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: Half,
}

/// Q8_K (activation operand of k-quant dot products): f32 `d`, 256 signed 8-bit `q`, and the sums
/// of each group of 16 `q`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8K {
    pub d: LeF32,
    pub qs: [i8; QK_K],
    pub bsums: [LeI16; QK_K / 16],
}

// SAFETY: byte arrays have alignment 1, no padding, and every bit pattern is valid.
unsafe impl<const N: usize> Pod for [u8; N] {}

macro_rules! pod_blocks {
    ($($t:ty = $size:literal;)*) => {
        $(
            // SAFETY: repr(C)/repr(transparent) over byte arrays only: alignment 1, no padding,
            // every bit pattern valid.
            unsafe impl Pod for $t {}
            const _: () = assert!(std::mem::size_of::<$t>() == $size);
            const _: () = assert!(std::mem::align_of::<$t>() == 1);
        )*
    };
}

// Sizes are ggml's `type_size` (checked against `GgmlType::type_size()` in the tests below).
pod_blocks! {
    Half = 2;
    LeF32 = 4;
    LeI16 = 2;
    BlockQ4_0 = 18;
    BlockQ4_1 = 20;
    BlockQ5_0 = 22;
    BlockQ5_1 = 24;
    BlockQ8_0 = 34;
    BlockQ8_1 = 36;
    BlockQ2K = 84;
    BlockQ3K = 110;
    BlockQ4K = 144;
    BlockQ5K = 176;
    BlockQ6K = 210;
    BlockQ8K = 292;
}

/// A block format: ggml's type id and block size, its reference quantizer (`from_float`, bit for bit
/// ggml's `quantize_row_*_ref`) and its dequantizer (`to_float`, ggml's `dequantize_row_*`).
pub trait BlockFormat: Pod {
    /// The ggml type of this block.
    const TYPE: GgmlType;
    /// Values per block.
    const VALUES: usize;
    /// A block of zeros (all fields zero).
    fn zeroed() -> Self;
    /// Quantizes `src` (exactly `dst.len() * VALUES` values) into `dst`.
    fn from_float(src: &[f32], dst: &mut [Self]);
    /// Dequantizes `src` into `dst` (exactly `src.len() * VALUES` values).
    fn to_float(src: &[Self], dst: &mut [f32]);
}

/// A weight block format with a dot product against activations quantized to [`VecDot::Rhs`]
/// (ggml's `vec_dot_type`). `vec_dot` here is the scalar reference (ggml's `*_generic` kernels);
/// [`crate::quant::vec_dot`] dispatches to SIMD versions tested against it.
pub trait VecDot: BlockFormat {
    /// The activation block type.
    type Rhs: BlockFormat;
    /// Σ weights × activations over equally long block slices.
    fn vec_dot(weights: &[Self], activations: &[Self::Rhs]) -> f32;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: BlockFormat>() {
        assert_eq!(std::mem::size_of::<T>(), T::TYPE.type_size(), "{}", T::TYPE);
        assert_eq!(T::VALUES, T::TYPE.block_size(), "{}", T::TYPE);
        let z = T::zeroed();
        assert!(as_bytes(std::slice::from_ref(&z)).iter().all(|&b| b == 0));
    }

    #[test]
    fn sizes_match_ggml_type_table() {
        check::<BlockQ4_0>();
        check::<BlockQ4_1>();
        check::<BlockQ5_0>();
        check::<BlockQ5_1>();
        check::<BlockQ8_0>();
        check::<BlockQ8_1>();
        check::<BlockQ2K>();
        check::<BlockQ3K>();
        check::<BlockQ4K>();
        check::<BlockQ5K>();
        check::<BlockQ6K>();
        check::<BlockQ8K>();
    }

    #[test]
    fn casts_work_at_any_offset() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1 + 2 * 18).collect();
        let blocks: &[BlockQ4_0] = cast(&bytes[1..]);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].d.bits(), u16::from_le_bytes([19, 20]));
        assert_eq!(as_bytes(blocks), &bytes[1..]);
    }
}
