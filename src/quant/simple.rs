//! The 32-value block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the Q8_1 activation operand.
//!
//! Facts relied on (ggml `ggml/src/ggml-quants.c`, `quantize_row_*_ref` and `dequantize_row_*`):
//! - Q4_0/Q5_0 take `max`, the first value of largest magnitude (strict `<` on `fabsf`), set
//!   `d = max / -8` (`/ -16`), `id = d ? 1/d : 0`, and store `MIN(15, (int8_t)(x*id + 8.5f))`
//!   (`MIN(31, (int8_t)(x*id + 16.5f))`): a C truncating conversion, not a rounding function.
//! - Q4_1/Q5_1 take the block's min and max (starting from ±FLT_MAX), `d = (max - min) / 15` (`/ 31`),
//!   store `d` and `m = min` as f16, and quantize `(x - min)*id + 0.5f` truncated (Q4_1 clamps with
//!   `MIN(15, …)` after an `int8_t` conversion; Q5_1 converts to `uint8_t` with no clamp).
//! - Q8_0/Q8_1: `d = amax / 127`, `q = roundf(x * id)` (ties away from zero); Q8_1 also stores
//!   `s = f16(Σq * d)`.
//! - Every product and sum is an f32 operation in source order (ggml-base is built without FMA
//!   contraction: its flags carry no `-march`, and we checked the object code has no FMA).
//! - Dequantization is `q*d` (Q4_0 `(q-8)*d`, Q5_0 `(q-16)*d`) and `q*d + m` for the `_1` types.

use crate::format::GgmlType;
use crate::quant::blocks::*;
use crate::quant::kernels::scalar;
use crate::quant::math::{c_roundf, c_trunc};

/// The first value of largest magnitude (ggml's `amax`/`max` loop with a strict comparison).
#[inline]
pub(crate) fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

/// `amax = MAX(amax, fabsf(v))` with C's `MAX(a, b) = a > b ? a : b`.
#[inline]
pub(crate) fn c_max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |amax, &v| {
        let a = v.abs();
        if amax > a {
            amax
        } else {
            a
        }
    })
}

#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

impl BlockFormat for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const VALUES: usize = QK;
    fn zeroed() -> Self {
        BlockQ4_0 {
            d: Half::ZERO,
            qs: [0; QK / 2],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK).zip(dst) {
            let (_, max) = signed_absmax(x);
            let d = max / -8.0;
            let id = inverse(d);
            y.d = Half::from_f32(d);
            for j in 0..QK / 2 {
                let q0 = (c_trunc(x[j] * id + 8.5) as i8 as i32).min(15) as u8;
                let q1 = (c_trunc(x[j + QK / 2] * id + 8.5) as i8 as i32).min(15) as u8;
                y.qs[j] = q0 | (q1 << 4);
            }
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
            let d = x.d.to_f32();
            for j in 0..QK / 2 {
                y[j] = ((x.qs[j] & 0x0f) as i32 - 8) as f32 * d;
                y[j + QK / 2] = ((x.qs[j] >> 4) as i32 - 8) as f32 * d;
            }
        }
    }
}

impl BlockFormat for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const VALUES: usize = QK;
    fn zeroed() -> Self {
        BlockQ4_1 {
            d: Half::ZERO,
            m: Half::ZERO,
            qs: [0; QK / 2],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK).zip(dst) {
            let (min, max) = min_max(x);
            let d = (max - min) / 15.0;
            let id = inverse(d);
            y.d = Half::from_f32(d);
            y.m = Half::from_f32(min);
            for j in 0..QK / 2 {
                let q0 = (c_trunc((x[j] - min) * id + 0.5) as i8 as i32).min(15) as u8;
                let q1 = (c_trunc((x[j + QK / 2] - min) * id + 0.5) as i8 as i32).min(15) as u8;
                y.qs[j] = q0 | (q1 << 4);
            }
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
            let d = x.d.to_f32();
            let m = x.m.to_f32();
            for j in 0..QK / 2 {
                y[j] = (x.qs[j] & 0x0f) as f32 * d + m;
                y[j + QK / 2] = (x.qs[j] >> 4) as f32 * d + m;
            }
        }
    }
}

/// Packs 32 five-bit values: low nibbles into `qs` (value j low, j + 16 high), bit 4 of value j
/// into bit j of the little-endian `qh`.
#[inline]
fn pack_q5(q: &[u8; QK], qs: &mut [u8; QK / 2], qh: &mut [u8; 4]) {
    let mut h = 0u32;
    for j in 0..QK / 2 {
        qs[j] = (q[j] & 0x0f) | ((q[j + QK / 2] & 0x0f) << 4);
        h |= (((q[j] & 0x10) >> 4) as u32) << j;
        h |= (((q[j + QK / 2] & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    *qh = h.to_le_bytes();
}

/// The 5-bit values (0..=31) of a Q5 block, in order.
#[inline]
pub(crate) fn unpack_q5(qs: &[u8; QK / 2], qh: &[u8; 4]) -> [u8; QK] {
    let h = u32::from_le_bytes(*qh);
    let mut q = [0u8; QK];
    for j in 0..QK / 2 {
        q[j] = (qs[j] & 0x0f) | ((((h >> j) << 4) & 0x10) as u8);
        q[j + QK / 2] = (qs[j] >> 4) | (((h >> (j + 12)) & 0x10) as u8);
    }
    q
}

impl BlockFormat for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const VALUES: usize = QK;
    fn zeroed() -> Self {
        BlockQ5_0 {
            d: Half::ZERO,
            qh: [0; 4],
            qs: [0; QK / 2],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK).zip(dst) {
            let (_, max) = signed_absmax(x);
            let d = max / -16.0;
            let id = inverse(d);
            y.d = Half::from_f32(d);
            let mut q = [0u8; QK];
            for (qj, &v) in q.iter_mut().zip(x) {
                *qj = (c_trunc(v * id + 16.5) as i8 as i32).min(31) as u8;
            }
            pack_q5(&q, &mut y.qs, &mut y.qh);
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
            let d = x.d.to_f32();
            let q = unpack_q5(&x.qs, &x.qh);
            for (yj, &qj) in y.iter_mut().zip(&q) {
                *yj = (qj as i32 - 16) as f32 * d;
            }
        }
    }
}

impl BlockFormat for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const VALUES: usize = QK;
    fn zeroed() -> Self {
        BlockQ5_1 {
            d: Half::ZERO,
            m: Half::ZERO,
            qh: [0; 4],
            qs: [0; QK / 2],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK).zip(dst) {
            let (min, max) = min_max(x);
            let d = (max - min) / 31.0;
            let id = inverse(d);
            y.d = Half::from_f32(d);
            y.m = Half::from_f32(min);
            let mut q = [0u8; QK];
            for (qj, &v) in q.iter_mut().zip(x) {
                *qj = c_trunc((v - min) * id + 0.5) as u8;
            }
            pack_q5(&q, &mut y.qs, &mut y.qh);
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
            let d = x.d.to_f32();
            let m = x.m.to_f32();
            let q = unpack_q5(&x.qs, &x.qh);
            for (yj, &qj) in y.iter_mut().zip(&q) {
                *yj = qj as f32 * d + m;
            }
        }
    }
}

impl BlockFormat for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const VALUES: usize = QK;
    fn zeroed() -> Self {
        BlockQ8_0 {
            d: Half::ZERO,
            qs: [0; QK],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK).zip(dst) {
            let amax = c_max_abs(x);
            let d = amax / 127.0;
            let id = inverse(d);
            y.d = Half::from_f32(d);
            for (q, &v) in y.qs.iter_mut().zip(x) {
                *q = c_roundf(v * id) as i8;
            }
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
            let d = x.d.to_f32();
            for (yj, &q) in y.iter_mut().zip(&x.qs) {
                *yj = q as f32 * d;
            }
        }
    }
}

impl BlockFormat for BlockQ8_1 {
    const TYPE: GgmlType = GgmlType::Q8_1;
    const VALUES: usize = QK;
    fn zeroed() -> Self {
        BlockQ8_1 {
            d: Half::ZERO,
            s: Half::ZERO,
            qs: [0; QK],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK).zip(dst) {
            let amax = c_max_abs(x);
            let d = amax / 127.0;
            let id = inverse(d);
            y.d = Half::from_f32(d);
            let mut sum = 0i32;
            for (q, &v) in y.qs.iter_mut().zip(x) {
                *q = c_roundf(v * id) as i8;
                sum += *q as i32;
            }
            y.s = Half::from_f32(sum as f32 * d);
        }
    }
    /// ggml has no Q8_1 dequantizer (Q8_1 only exists as a dot-product operand); this is `q * d`.
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK)) {
            let d = x.d.to_f32();
            for (yj, &q) in y.iter_mut().zip(&x.qs) {
                *yj = q as f32 * d;
            }
        }
    }
}

impl VecDot for BlockQ4_0 {
    type Rhs = BlockQ8_0;
    fn vec_dot(w: &[Self], a: &[BlockQ8_0]) -> f32 {
        scalar::dot_q4_0_q8_0(w, a)
    }
}
impl VecDot for BlockQ4_1 {
    type Rhs = BlockQ8_1;
    fn vec_dot(w: &[Self], a: &[BlockQ8_1]) -> f32 {
        scalar::dot_q4_1_q8_1(w, a)
    }
}
impl VecDot for BlockQ5_0 {
    type Rhs = BlockQ8_0;
    fn vec_dot(w: &[Self], a: &[BlockQ8_0]) -> f32 {
        scalar::dot_q5_0_q8_0(w, a)
    }
}
impl VecDot for BlockQ5_1 {
    type Rhs = BlockQ8_1;
    fn vec_dot(w: &[Self], a: &[BlockQ8_1]) -> f32 {
        scalar::dot_q5_1_q8_1(w, a)
    }
}
impl VecDot for BlockQ8_0 {
    type Rhs = BlockQ8_0;
    fn vec_dot(w: &[Self], a: &[BlockQ8_0]) -> f32 {
        scalar::dot_q8_0_q8_0(w, a)
    }
}
