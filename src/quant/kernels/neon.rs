//! NEON kernels (aarch64, where NEON is part of the baseline).
//!
//! Byte products are widened exactly (`vmull_s8`, then pairwise adds), so unlike the AVX2 kernels
//! these accept any byte in activations. Only baseline NEON is used (no `dotprod`, no `fp16`:
//! f16 → f32 is done with integer operations, and an exact product for subnormals). The activation
//! quantizers give exactly the scalar reference's bytes: `vcvtaq_s32_f32` is C's `roundf`,
//! `vcvtnq_s32_f32` is `nearest_int` in its exact range; blocks with non-finite values, or whose
//! inverse scale overflows, are handed to the scalar code.

// Index loops mirror the block layouts; pointer arithmetic stays within the blocks it is given.
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;

use super::{scalar, Kernels};
use crate::quant::blocks::*;
use crate::quant::k_quants::{fill_bsums, get_scale_min_k4, q3k_scales};

/// The NEON kernel set.
pub(super) fn kernels() -> Kernels {
    Kernels {
        name: "neon",
        dot_f32,
        dot_f16,
        dot_bf16,
        dot_q4_0,
        dot_q4_1,
        dot_q5_0,
        dot_q5_1,
        dot_q8_0,
        dot_q2_k,
        dot_q3_k,
        dot_q4_k,
        dot_q5_k,
        dot_q6_k,
        quantize_q8_0,
        quantize_q8_1,
        quantize_q8_k,
        ..Kernels::SCALAR
    }
}

// Safe wrappers. SAFETY (all of them): NEON is always present on aarch64 targets.
macro_rules! wrap {
    ($($name:ident($($arg:ident: $t:ty),*) $(-> $r:ty)? => $imp:ident;)*) => {
        $(fn $name($($arg: $t),*) $(-> $r)? {
            unsafe { $imp($($arg),*) }
        })*
    };
}

wrap! {
    dot_f32(w: &[u8], a: &[u8]) -> f32 => dot_f32_imp;
    dot_f16(w: &[u8], a: &[u8]) -> f32 => dot_f16_imp;
    dot_bf16(w: &[u8], a: &[u8]) -> f32 => dot_bf16_imp;
    dot_q4_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 => dot_q4_0_imp;
    dot_q4_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 => dot_q4_1_imp;
    dot_q5_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 => dot_q5_0_imp;
    dot_q5_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 => dot_q5_1_imp;
    dot_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 => dot_q8_0_imp;
    dot_q2_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 => dot_q2_k_imp;
    dot_q3_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 => dot_q3_k_imp;
    dot_q4_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 => dot_q4_k_imp;
    dot_q5_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 => dot_q5_k_imp;
    dot_q6_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 => dot_q6_k_imp;
    quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) => quantize_q8_0_imp;
    quantize_q8_1(x: &[f32], y: &mut [BlockQ8_1]) => quantize_q8_1_imp;
    quantize_q8_k(x: &[f32], y: &mut [BlockQ8K]) => quantize_q8_k_imp;
}

// ---------------------------------------------------------------- helpers

/// Σ of the 16 products `a[i]·b[i]` in four i32 lanes (exact).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot16(a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_high_s8(a, b);
    vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_s8(p: *const i8) -> int8x16_t {
    vld1q_s8(p)
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_u8(p: *const u8) -> uint8x16_t {
    vld1q_u8(p)
}

/// Low and high nibbles of 16 bytes, as signed bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn nibbles(v: uint8x16_t) -> (int8x16_t, int8x16_t) {
    let m4 = vdupq_n_u8(0x0f);
    (
        vreinterpretq_s8_u8(vandq_u8(v, m4)),
        vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)),
    )
}

/// Bits 0..16 and 16..32 of the little-endian `qh` as bytes 0 or `value`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q5_high(qh: &[u8; 4], value: u8) -> (uint8x16_t, uint8x16_t) {
    let bits = u32::from_le_bytes(*qh);
    let masks: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let m = vld1q_u8(masks.as_ptr());
    let spread = |b0: u8, b1: u8| {
        let v = vcombine_u8(vdup_n_u8(b0), vdup_n_u8(b1));
        vandq_u8(vtstq_u8(v, m), vdupq_n_u8(value))
    };
    let b = bits.to_le_bytes();
    (spread(b[0], b[1]), spread(b[2], b[3]))
}

// ---------------------------------------------------------------- float rows

#[target_feature(enable = "neon")]
unsafe fn dot_f32_imp(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 4;
    let (wp, ap) = (w.as_ptr() as *const f32, a.as_ptr() as *const f32);
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            *acc = vfmaq_f32(
                *acc,
                vld1q_f32(wp.add(i + 4 * k)),
                vld1q_f32(ap.add(i + 4 * k)),
            );
        }
        i += 16;
    }
    let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    vaddvq_f32(sum) + scalar::dot_f32(&w[4 * i..], &a[4 * i..])
}

/// Four f16 (bits) → f32, exactly (as the scalar conversion): normal values by rebiasing the
/// exponent in the integer domain, subnormals as `mantissa × 2^-24` (a product of normal numbers, so
/// correct even with flush-to-zero enabled), inf/NaN with the f32 all-ones exponent (NaNs quieted).
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn f16x4_to_f32(h: uint16x4_t) -> float32x4_t {
    let w = vmovl_u16(h);
    let sign = vshlq_n_u32::<16>(vandq_u32(w, vdupq_n_u32(0x8000)));
    let em = vshlq_n_u32::<13>(vandq_u32(w, vdupq_n_u32(0x7fff)));
    let normal = vaddq_u32(em, vdupq_n_u32(0x3800_0000));
    let man = vcvtq_f32_u32(vandq_u32(w, vdupq_n_u32(0x3ff)));
    let sub = vreinterpretq_u32_f32(vmulq_n_f32(man, f32::from_bits(0x3380_0000)));
    let is_sub = vcltq_u32(em, vdupq_n_u32(0x0080_0000));
    let special = vcgeq_u32(em, vdupq_n_u32(0x0f80_0000));
    let nan = vcgtq_u32(em, vdupq_n_u32(0x0f80_0000));
    let inf_nan = vorrq_u32(
        vorrq_u32(em, vdupq_n_u32(0x7f80_0000)),
        vandq_u32(nan, vdupq_n_u32(0x0040_0000)),
    );
    let bits = vbslq_u32(is_sub, sub, vbslq_u32(special, inf_nan, normal));
    vreinterpretq_f32_u32(vorrq_u32(bits, sign))
}

#[target_feature(enable = "neon")]
unsafe fn dot_f16_imp(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 2;
    let (wp, ap) = (w.as_ptr() as *const u16, a.as_ptr() as *const f32);
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut i = 0;
    while i + 8 <= n {
        let h = vld1q_u16(wp.add(i));
        acc[0] = vfmaq_f32(acc[0], f16x4_to_f32(vget_low_u16(h)), vld1q_f32(ap.add(i)));
        acc[1] = vfmaq_f32(
            acc[1],
            f16x4_to_f32(vget_high_u16(h)),
            vld1q_f32(ap.add(i + 4)),
        );
        i += 8;
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1])) + scalar::dot_f16(&w[2 * i..], &a[4 * i..])
}

#[target_feature(enable = "neon")]
unsafe fn dot_bf16_imp(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 2;
    let (wp, ap) = (w.as_ptr() as *const u16, a.as_ptr() as *const f32);
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut i = 0;
    while i + 8 <= n {
        let h = vld1q_u16(wp.add(i));
        let lo = vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h)));
        let hi = vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_high_u16(h)));
        acc[0] = vfmaq_f32(acc[0], lo, vld1q_f32(ap.add(i)));
        acc[1] = vfmaq_f32(acc[1], hi, vld1q_f32(ap.add(i + 4)));
        i += 8;
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1])) + scalar::dot_bf16(&w[2 * i..], &a[4 * i..])
}

// ---------------------------------------------------------------- 32-value blocks

/// Σ qx·qy over a 32-value block given as two halves of 16 signed bytes each.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn block_dot(x0: int8x16_t, x1: int8x16_t, qs: &[i8; 32]) -> int32x4_t {
    let y0 = load_s8(qs.as_ptr());
    let y1 = load_s8(qs.as_ptr().add(16));
    vaddq_s32(dot16(x0, y0), dot16(x1, y1))
}

#[target_feature(enable = "neon")]
unsafe fn dot_q4_0_imp(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    let eight = vdupq_n_s8(8);
    for (x, y) in x.iter().zip(y) {
        let (lo, hi) = nibbles(load_u8(x.qs.as_ptr()));
        let s = block_dot(vsubq_s8(lo, eight), vsubq_s8(hi, eight), &y.qs);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), x.d.to_f32() * y.d.to_f32());
    }
    vaddvq_f32(acc)
}

#[target_feature(enable = "neon")]
unsafe fn dot_q4_1_imp(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    let mut summs = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        summs += x.m.to_f32() * y.s.to_f32();
        let (lo, hi) = nibbles(load_u8(x.qs.as_ptr()));
        let s = block_dot(lo, hi, &y.qs);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), x.d.to_f32() * y.d.to_f32());
    }
    vaddvq_f32(acc) + summs
}

#[target_feature(enable = "neon")]
unsafe fn dot_q5_0_imp(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    let sixteen = vdupq_n_s8(16);
    for (x, y) in x.iter().zip(y) {
        let (lo, hi) = nibbles(load_u8(x.qs.as_ptr()));
        let (h0, h1) = q5_high(&x.qh, 0x10);
        let x0 = vsubq_s8(vorrq_s8(lo, vreinterpretq_s8_u8(h0)), sixteen);
        let x1 = vsubq_s8(vorrq_s8(hi, vreinterpretq_s8_u8(h1)), sixteen);
        let s = block_dot(x0, x1, &y.qs);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), x.d.to_f32() * y.d.to_f32());
    }
    vaddvq_f32(acc)
}

#[target_feature(enable = "neon")]
unsafe fn dot_q5_1_imp(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    let mut summs = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        summs += x.m.to_f32() * y.s.to_f32();
        let (lo, hi) = nibbles(load_u8(x.qs.as_ptr()));
        let (h0, h1) = q5_high(&x.qh, 0x10);
        let x0 = vorrq_s8(lo, vreinterpretq_s8_u8(h0));
        let x1 = vorrq_s8(hi, vreinterpretq_s8_u8(h1));
        let s = block_dot(x0, x1, &y.qs);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), x.d.to_f32() * y.d.to_f32());
    }
    vaddvq_f32(acc) + summs
}

#[target_feature(enable = "neon")]
unsafe fn dot_q8_0_imp(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    for (x, y) in x.iter().zip(y) {
        let x0 = load_s8(x.qs.as_ptr());
        let x1 = load_s8(x.qs.as_ptr().add(16));
        let s = block_dot(x0, x1, &y.qs);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), x.d.to_f32() * y.d.to_f32());
    }
    vaddvq_f32(acc)
}

// ---------------------------------------------------------------- k-quants

/// Σ over 16 values of `q`·`q8` (exact), as one integer.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn sum16(q: int8x16_t, q8: *const i8) -> i32 {
    vaddvq_s32(dot16(q, load_s8(q8)))
}

#[target_feature(enable = "neon")]
unsafe fn dot_q2_k_imp(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    let m3 = vdupq_n_u8(3);
    for (x, y) in x.iter().zip(y) {
        let mins: i32 = (0..16)
            .map(|j| y.bsums[j].get() as i32 * (x.scales[j] >> 4) as i32)
            .sum();
        let mut isum = 0i32;
        for h in 0..2 {
            for k in 0..2 {
                let q2 = load_u8(x.qs.as_ptr().add(32 * h + 16 * k));
                for s in 0..4 {
                    let q = vandq_u8(vshlq_u8(q2, vdupq_n_s8(-2 * s as i8)), m3);
                    let p = y.qs.as_ptr().add(128 * h + 32 * s + 16 * k);
                    let sc = (x.scales[8 * h + 2 * s + k] & 0x0f) as i32;
                    isum += sc * sum16(vreinterpretq_s8_u8(q), p);
                }
            }
        }
        let yd = y.d.get();
        sumf += yd * x.d.to_f32() * isum as f32 - yd * x.dmin.to_f32() * mins as f32;
    }
    sumf
}

#[target_feature(enable = "neon")]
unsafe fn dot_q3_k_imp(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    let m3 = vdupq_n_u8(3);
    let four = vdupq_n_u8(4);
    for (x, y) in x.iter().zip(y) {
        let sc = q3k_scales(&x.scales);
        let mut isum = 0i32;
        for h in 0..2 {
            for k in 0..2 {
                let q3 = load_u8(x.qs.as_ptr().add(32 * h + 16 * k));
                let hm = load_u8(x.hmask.as_ptr().add(16 * k));
                for s in 0..4 {
                    let low = vandq_u8(vshlq_u8(q3, vdupq_n_s8(-2 * s as i8)), m3);
                    // subtract 4 where the high bit is clear
                    let bit = vtstq_u8(hm, vdupq_n_u8(1 << (4 * h + s)));
                    let sub = vbicq_u8(four, bit);
                    let q = vsubq_s8(vreinterpretq_s8_u8(low), vreinterpretq_s8_u8(sub));
                    let p = y.qs.as_ptr().add(128 * h + 32 * s + 16 * k);
                    isum += (sc[8 * h + 2 * s + k] as i32 - 32) * sum16(q, p);
                }
            }
        }
        sumf += x.d.to_f32() * y.d.get() * isum as f32;
    }
    sumf
}

/// Σ bsums × mins for Q4_K/Q5_K, and the eight scales.
#[inline]
fn qk_scales_mins(scales: &[u8; 12], y: &BlockQ8K) -> ([i32; 8], i32) {
    let mut sc = [0i32; 8];
    let mut mins = 0i32;
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, scales);
        sc[j] = s as i32;
        mins += (y.bsums[2 * j].get() as i32 + y.bsums[2 * j + 1].get() as i32) * m as i32;
    }
    (sc, mins)
}

#[target_feature(enable = "neon")]
unsafe fn dot_q4_k_imp(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let (sc, mins) = qk_scales_mins(&x.scales, y);
        let mut isum = 0i32;
        for c in 0..4 {
            for k in 0..2 {
                let (lo, hi) = nibbles(load_u8(x.qs.as_ptr().add(32 * c + 16 * k)));
                let p = y.qs.as_ptr().add(64 * c + 16 * k);
                isum += sc[2 * c] * sum16(lo, p) + sc[2 * c + 1] * sum16(hi, p.add(32));
            }
        }
        let yd = y.d.get();
        sumf += x.d.to_f32() * yd * isum as f32 - x.dmin.to_f32() * yd * mins as f32;
    }
    sumf
}

#[target_feature(enable = "neon")]
unsafe fn dot_q5_k_imp(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    let sixteen = vdupq_n_u8(16);
    for (x, y) in x.iter().zip(y) {
        let (sc, mins) = qk_scales_mins(&x.scales, y);
        let mut isum = 0i32;
        for c in 0..4 {
            for k in 0..2 {
                let (lo, hi) = nibbles(load_u8(x.qs.as_ptr().add(32 * c + 16 * k)));
                let qh = load_u8(x.qh.as_ptr().add(16 * k));
                let hl = vandq_u8(vtstq_u8(qh, vdupq_n_u8(1 << (2 * c))), sixteen);
                let hh = vandq_u8(vtstq_u8(qh, vdupq_n_u8(2 << (2 * c))), sixteen);
                let lo = vorrq_s8(lo, vreinterpretq_s8_u8(hl));
                let hi = vorrq_s8(hi, vreinterpretq_s8_u8(hh));
                let p = y.qs.as_ptr().add(64 * c + 16 * k);
                isum += sc[2 * c] * sum16(lo, p) + sc[2 * c + 1] * sum16(hi, p.add(32));
            }
        }
        let yd = y.d.get();
        sumf += x.d.to_f32() * yd * isum as f32 - x.dmin.to_f32() * yd * mins as f32;
    }
    sumf
}

#[target_feature(enable = "neon")]
unsafe fn dot_q6_k_imp(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    let m4 = vdupq_n_u8(0x0f);
    let m3 = vdupq_n_u8(3);
    let m32 = vdupq_n_s8(32);
    for (x, y) in x.iter().zip(y) {
        let mut isum = 0i32;
        for h in 0..2 {
            for k in 0..2 {
                let ql0 = load_u8(x.ql.as_ptr().add(64 * h + 16 * k));
                let ql1 = load_u8(x.ql.as_ptr().add(64 * h + 32 + 16 * k));
                let qh = load_u8(x.qh.as_ptr().add(32 * h + 16 * k));
                let lows = [
                    vandq_u8(ql0, m4),
                    vandq_u8(ql1, m4),
                    vshrq_n_u8::<4>(ql0),
                    vshrq_n_u8::<4>(ql1),
                ];
                for (s, low) in lows.into_iter().enumerate() {
                    let high = vandq_u8(vshlq_u8(qh, vdupq_n_s8(-2 * s as i8)), m3);
                    let q = vorrq_u8(low, vshlq_n_u8::<4>(high));
                    let q = vsubq_s8(vreinterpretq_s8_u8(q), m32);
                    let p = y.qs.as_ptr().add(128 * h + 32 * s + 16 * k);
                    isum += x.scales[8 * h + 2 * s + k] as i32 * sum16(q, p);
                }
            }
        }
        sumf += x.d.to_f32() * y.d.get() * isum as f32;
    }
    sumf
}

// ---------------------------------------------------------------- activation quantizers

/// Max |x| of 32 values and whether all are finite.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn absmax32(x: &[f32]) -> (f32, bool) {
    let p = x.as_ptr();
    let mut m = vdupq_n_f32(0.0);
    let mut bad = vdupq_n_u32(0);
    let inf = vdupq_n_f32(f32::INFINITY);
    for k in 0..8 {
        let a = vabsq_f32(vld1q_f32(p.add(4 * k)));
        m = vmaxq_f32(m, a);
        // !(a < inf) is true for inf and NaN
        bad = vorrq_u32(bad, vmvnq_u32(vcltq_f32(a, inf)));
    }
    (vmaxvq_f32(m), vmaxvq_u32(bad) == 0)
}

/// Narrows 32 i32 lanes (each in −128..=127) to bytes in order.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store_i8(q: &[int32x4_t; 8], out: *mut i8) {
    for half in 0..2 {
        let a = vcombine_s16(vqmovn_s32(q[4 * half]), vqmovn_s32(q[4 * half + 1]));
        let b = vcombine_s16(vqmovn_s32(q[4 * half + 2]), vqmovn_s32(q[4 * half + 3]));
        vst1q_s8(
            out.add(16 * half),
            vcombine_s8(vqmovn_s16(a), vqmovn_s16(b)),
        );
    }
}

/// Quantizes one 32-value block as Q8_0/Q8_1 do; `None` when the scalar code must do it.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q8_block(x: &[f32], qs: &mut [i8; 32]) -> Option<f32> {
    let (amax, finite) = absmax32(x);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    if !finite || !id.is_finite() {
        return None;
    }
    let p = x.as_ptr();
    let mut q = [vdupq_n_s32(0); 8];
    for (k, q) in q.iter_mut().enumerate() {
        // vcvtaq: round to nearest, ties away from zero = roundf
        *q = vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(p.add(4 * k)), id));
    }
    store_i8(&q, qs.as_mut_ptr());
    Some(d)
}

#[target_feature(enable = "neon")]
unsafe fn quantize_q8_0_imp(x: &[f32], y: &mut [BlockQ8_0]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        match q8_block(xb, &mut yb.qs) {
            Some(d) => yb.d = Half::from_f32(d),
            None => BlockQ8_0::from_float(xb, std::slice::from_mut(yb)),
        }
    }
}

#[target_feature(enable = "neon")]
unsafe fn quantize_q8_1_imp(x: &[f32], y: &mut [BlockQ8_1]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        match q8_block(xb, &mut yb.qs) {
            Some(d) => {
                yb.d = Half::from_f32(d);
                let sum: i32 = yb.qs.iter().map(|&q| q as i32).sum();
                yb.s = Half::from_f32(sum as f32 * d);
            }
            None => BlockQ8_1::from_float(xb, std::slice::from_mut(yb)),
        }
    }
}

#[target_feature(enable = "neon")]
unsafe fn quantize_q8_k_imp(x: &[f32], y: &mut [BlockQ8K]) {
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut amax = 0.0f32;
        let mut finite = true;
        for c in xb.chunks_exact(32) {
            let (m, f) = absmax32(c);
            amax = amax.max(m);
            finite &= f;
        }
        // the first value of largest magnitude gives the sign of the scale
        let max = xb.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
        let iscale = -127.0 / max;
        if !finite || amax == 0.0 || !iscale.is_finite() {
            BlockQ8K::from_float(xb, std::slice::from_mut(yb));
            continue;
        }
        let limit = vdupq_n_s32(127);
        for (c, xc) in xb.chunks_exact(32).enumerate() {
            let p = xc.as_ptr();
            let mut q = [vdupq_n_s32(0); 8];
            for (k, q) in q.iter_mut().enumerate() {
                // vcvtnq: round to nearest even = nearest_int for |v| ≤ 127·(1+ε)
                let r = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(p.add(4 * k)), iscale));
                *q = vminq_s32(r, limit);
            }
            store_i8(&q, yb.qs.as_mut_ptr().add(32 * c));
        }
        fill_bsums(yb);
        yb.d = LeF32::new(1.0 / iscale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_is_exact_for_every_value() {
        for base in (0..=u16::MAX).step_by(4) {
            let h = [base, base + 1, base + 2, base + 3];
            let mut out = [0f32; 4];
            // SAFETY: NEON is baseline on aarch64; `h` and `out` hold four elements.
            unsafe { vst1q_f32(out.as_mut_ptr(), f16x4_to_f32(vld1_u16(h.as_ptr()))) };
            for (&h, &o) in h.iter().zip(&out) {
                let want = crate::quant::float16::f16_to_f32(h);
                assert_eq!(o.to_bits(), want.to_bits(), "f16 bits {h:#06x}");
            }
        }
    }
}
