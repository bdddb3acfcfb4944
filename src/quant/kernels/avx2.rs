//! AVX2 + FMA + F16C kernels (x86-64).
//!
//! Every `unsafe fn` here has `#[target_feature(enable = "avx2,fma,f16c")]`; they are reachable only
//! through the [`Kernels`] returned by [`kernels`], which checks those features first. The dot
//! products follow ggml's AVX2 approach (`ggml/src/ggml-cpu/arch/x86/quants.c`): unsigned×signed byte
//! products with `maddubs`, pairs widened with `madd`, one f32 FMA per block or super-block. The
//! activation quantizers give exactly the scalar reference's bytes (blocks with non-finite values, or
//! whose inverse scale overflows, are handed to the scalar code).
//!
//! Precondition shared with ggml: activation quants are in −127..=127 (what every Q8 quantizer here
//! produces); weights may use the whole byte range.

// Index loops mirror the block layouts; pointer arithmetic stays within the blocks it is given.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::{scalar, Kernels};
use crate::quant::blocks::*;
use crate::quant::k_quants::{fill_bsums, get_scale_min_k4, q3k_scales};

/// The AVX2 kernel set, when this CPU has AVX2, FMA and F16C.
pub(super) fn kernels() -> Option<Kernels> {
    if !(is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c"))
    {
        return None;
    }
    Some(Kernels {
        name: "avx2",
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
    })
}

// Safe wrappers. SAFETY (all of them): only stored in the `Kernels` built by `kernels()` after the
// features were detected, so the target-feature functions run on a CPU that has them.
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

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hmax_ps(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load16(p: *const u8) -> __m128i {
    _mm_loadu_si128(p as *const __m128i)
}

/// 16 bytes of packed nibbles → 32 bytes: the low nibbles in bytes 0..16, the high ones in 16..32
/// (the order of the 32-value formats).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
    let t = load16(qs.as_ptr());
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(t), t);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// The 32 bits of `qh` (little-endian) → 32 bytes, 0xff where the bit is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bits_to_bytes(qh: &[u8; 4]) -> __m256i {
    let v = _mm256_set1_epi32(i32::from_le_bytes(*qh));
    // byte i takes source byte i / 8 …
    let spread = _mm256_shuffle_epi8(
        v,
        _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
        ),
    );
    // … and tests bit i % 8
    let mask = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask)
}

/// Σ of signed bytes `x`·`y` in pairs → eight i32 lanes as f32 (ggml's `mul_sum_i8_pairs_float`).
/// `y` must not contain −128.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_u8_i8(ax, sy)
}

/// Σ of unsigned bytes `x` times signed bytes `y` → eight i32 lanes as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_sum_u8_i8(x: __m256i, y: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
}

/// Sixteen i16 lanes: `lo` in lanes 0..8, `hi` in 8..16 (two sub-block scales over 32 values).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scales2(lo: i16, hi: i16) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

/// Bit `b` of every byte as 0 or 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bit_of_bytes(v: __m256i, b: u32) -> __m256i {
    let shifted = _mm256_srl_epi16(v, _mm_cvtsi32_si128(b as i32));
    _mm256_and_si256(shifted, _mm256_set1_epi8(1))
}

/// Two bits `2s..2s+2` of every byte as 0..=3.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn two_bits_of_bytes(v: __m256i, s: u32) -> __m256i {
    let shifted = _mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * s as i32));
    _mm256_and_si256(shifted, _mm256_set1_epi8(3))
}

// ---------------------------------------------------------------- float rows

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_imp(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 4;
    let (wp, ap) = (w.as_ptr() as *const f32, a.as_ptr() as *const f32);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(wp.add(i + 8 * k));
            let y = _mm256_loadu_ps(ap.add(i + 8 * k));
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(
            _mm256_loadu_ps(wp.add(i)),
            _mm256_loadu_ps(ap.add(i)),
            acc[0],
        );
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum_ps(sum);
    s += scalar::dot_f32(&w[4 * i..], &a[4 * i..]);
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_imp(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 2;
    let ap = a.as_ptr() as *const f32;
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_cvtph_ps(load16(w.as_ptr().add(2 * (i + 8 * k))));
            *acc = _mm256_fmadd_ps(x, _mm256_loadu_ps(ap.add(i + 8 * k)), *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        let x = _mm256_cvtph_ps(load16(w.as_ptr().add(2 * i)));
        acc[0] = _mm256_fmadd_ps(x, _mm256_loadu_ps(ap.add(i)), acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum_ps(sum) + scalar::dot_f16(&w[2 * i..], &a[4 * i..])
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_bf16_imp(w: &[u8], a: &[u8]) -> f32 {
    let n = w.len() / 2;
    let ap = a.as_ptr() as *const f32;
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i + 16 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let h = _mm256_cvtepu16_epi32(load16(w.as_ptr().add(2 * (i + 8 * k))));
            let x = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h));
            *acc = _mm256_fmadd_ps(x, _mm256_loadu_ps(ap.add(i + 8 * k)), *acc);
        }
        i += 16;
    }
    hsum_ps(_mm256_add_ps(acc[0], acc[1])) + scalar::dot_bf16(&w[2 * i..], &a[4 * i..])
}

// ---------------------------------------------------------------- 32-value blocks

/// `f16(a) · f16(b)`, both converted at once with F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn half_product(a: Half, b: Half) -> f32 {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(
        (a.bits() as u32 | (b.bits() as u32) << 16) as i32,
    ));
    _mm_cvtss_f32(_mm_mul_ss(v, _mm_movehdup_ps(v)))
}

/// Runs `$body` (giving a block's scale, its eight i32-sum lanes as f32, and a scalar term) over
/// the block pairs of `$x`, `$y`, with two independent FMA chains; returns the total.
macro_rules! sum_blocks {
    ($x:expr, $y:expr, |$xb:ident, $yb:ident| $body:expr) => {{
        let (xs, ys) = ($x, $y);
        let n = xs.len().min(ys.len());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut extra = 0.0f32;
        let mut i = 0;
        while i + 2 <= n {
            let ($xb, $yb) = (&xs[i], &ys[i]);
            let (d, q, e): (f32, __m256, f32) = $body;
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d), q, acc0);
            extra += e;
            let ($xb, $yb) = (&xs[i + 1], &ys[i + 1]);
            let (d, q, e): (f32, __m256, f32) = $body;
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d), q, acc1);
            extra += e;
            i += 2;
        }
        if i < n {
            let ($xb, $yb) = (&xs[i], &ys[i]);
            let (d, q, e): (f32, __m256, f32) = $body;
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d), q, acc0);
            extra += e;
        }
        hsum_ps(_mm256_add_ps(acc0, acc1)) + extra
    }};
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_0_imp(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let eight = _mm256_set1_epi8(8);
    sum_blocks!(x, y, |x, y| {
        let qx = _mm256_sub_epi8(nibbles(&x.qs), eight);
        let qy = load32(y.qs.as_ptr() as *const u8);
        (half_product(x.d, y.d), mul_sum_i8(qx, qy), 0.0)
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_1_imp(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    sum_blocks!(x, y, |x, y| {
        let qy = load32(y.qs.as_ptr() as *const u8);
        let q = mul_sum_u8_i8(nibbles(&x.qs), qy);
        (half_product(x.d, y.d), q, half_product(x.m, y.s))
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_0_imp(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let f0 = _mm256_set1_epi8(0xf0u8 as i8);
    sum_blocks!(x, y, |x, y| {
        // q - 16 = nibble when bit 4 is set, else nibble | 0xf0 (two's complement of nibble - 16)
        let high = _mm256_andnot_si256(bits_to_bytes(&x.qh), f0);
        let qx = _mm256_or_si256(nibbles(&x.qs), high);
        let qy = load32(y.qs.as_ptr() as *const u8);
        (half_product(x.d, y.d), mul_sum_i8(qx, qy), 0.0)
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_1_imp(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let b4 = _mm256_set1_epi8(0x10);
    sum_blocks!(x, y, |x, y| {
        let high = _mm256_and_si256(bits_to_bytes(&x.qh), b4);
        let qx = _mm256_or_si256(nibbles(&x.qs), high);
        let qy = load32(y.qs.as_ptr() as *const u8);
        (
            half_product(x.d, y.d),
            mul_sum_u8_i8(qx, qy),
            half_product(x.m, y.s),
        )
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q8_0_imp(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    sum_blocks!(x, y, |x, y| {
        let qx = load32(x.qs.as_ptr() as *const u8);
        let qy = load32(y.qs.as_ptr() as *const u8);
        (half_product(x.d, y.d), mul_sum_i8(qx, qy), 0.0)
    })
}

// ---------------------------------------------------------------- k-quants

/// Σ over `pairs` of `maddubs(q, q8)` weighted by the scale vector, as i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scaled(p16: __m256i, scales: __m256i) -> __m256i {
    _mm256_madd_epi16(p16, scales)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q2_k_imp(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let yd = y.d.get();
        let mins: i32 = (0..16)
            .map(|j| y.bsums[j].get() as i32 * (x.scales[j] >> 4) as i32)
            .sum();
        summs += yd * x.dmin.to_f32() * mins as f32;
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q2 = load32(x.qs.as_ptr().add(32 * h));
            for s in 0..4 {
                let q = two_bits_of_bytes(q2, s as u32);
                let q8 = load32(y.qs.as_ptr().add(128 * h + 32 * s) as *const u8);
                let j = 8 * h + 2 * s;
                let sc = scales2((x.scales[j] & 0x0f) as i16, (x.scales[j + 1] & 0x0f) as i16);
                sumi = _mm256_add_epi32(sumi, scaled(_mm256_maddubs_epi16(q, q8), sc));
            }
        }
        acc = _mm256_fmadd_ps(
            _mm256_set1_ps(yd * x.d.to_f32()),
            _mm256_cvtepi32_ps(sumi),
            acc,
        );
    }
    hsum_ps(acc) - summs
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q3_k_imp(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let four = _mm256_set1_epi8(4);
    for (x, y) in x.iter().zip(y) {
        let sc = q3k_scales(&x.scales);
        let hm = load32(x.hmask.as_ptr());
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q3 = load32(x.qs.as_ptr().add(32 * h));
            for s in 0..4 {
                // level + 4 = low two bits + 4 × high bit, in 0..=7; subtract 4 × Σq8 afterwards
                let low = two_bits_of_bytes(q3, s as u32);
                let high = bit_of_bytes(hm, (4 * h + s) as u32);
                let q = _mm256_or_si256(low, _mm256_slli_epi16::<2>(high));
                let q8 = load32(y.qs.as_ptr().add(128 * h + 32 * s) as *const u8);
                let p16 =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(q, q8), _mm256_maddubs_epi16(four, q8));
                let j = 8 * h + 2 * s;
                let scv = scales2(sc[j] as i16 - 32, sc[j + 1] as i16 - 32);
                sumi = _mm256_add_epi32(sumi, scaled(p16, scv));
            }
        }
        let d = _mm256_set1_ps(x.d.to_f32() * y.d.get());
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}

/// Σ bsums × mins for Q4_K/Q5_K, and the eight scales.
#[inline]
fn qk_scales_mins(scales: &[u8; 12], y: &BlockQ8K) -> ([i16; 8], i32) {
    let mut sc = [0i16; 8];
    let mut mins = 0i32;
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, scales);
        sc[j] = s as i16;
        mins += (y.bsums[2 * j].get() as i32 + y.bsums[2 * j + 1].get() as i32) * m as i32;
    }
    (sc, mins)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_k_imp(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    let m4 = _mm256_set1_epi8(0x0f);
    for (x, y) in x.iter().zip(y) {
        let yd = y.d.get();
        let (sc, mins) = qk_scales_mins(&x.scales, y);
        summs += x.dmin.to_f32() * yd * mins as f32;
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let q4 = load32(x.qs.as_ptr().add(32 * c));
            let lo = _mm256_and_si256(q4, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q4), m4);
            let q8l = load32(y.qs.as_ptr().add(64 * c) as *const u8);
            let q8h = load32(y.qs.as_ptr().add(64 * c + 32) as *const u8);
            let pl = scaled(_mm256_maddubs_epi16(lo, q8l), _mm256_set1_epi16(sc[2 * c]));
            let ph = scaled(
                _mm256_maddubs_epi16(hi, q8h),
                _mm256_set1_epi16(sc[2 * c + 1]),
            );
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        let d = _mm256_set1_ps(x.d.to_f32() * yd);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - summs
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_k_imp(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    let m4 = _mm256_set1_epi8(0x0f);
    for (x, y) in x.iter().zip(y) {
        let yd = y.d.get();
        let (sc, mins) = qk_scales_mins(&x.scales, y);
        summs += x.dmin.to_f32() * yd * mins as f32;
        let qh = load32(x.qh.as_ptr());
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let q4 = load32(x.qs.as_ptr().add(32 * c));
            let hl = _mm256_slli_epi16::<4>(bit_of_bytes(qh, 2 * c as u32));
            let hh = _mm256_slli_epi16::<4>(bit_of_bytes(qh, 2 * c as u32 + 1));
            let lo = _mm256_or_si256(_mm256_and_si256(q4, m4), hl);
            let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(q4), m4), hh);
            let q8l = load32(y.qs.as_ptr().add(64 * c) as *const u8);
            let q8h = load32(y.qs.as_ptr().add(64 * c + 32) as *const u8);
            let pl = scaled(_mm256_maddubs_epi16(lo, q8l), _mm256_set1_epi16(sc[2 * c]));
            let ph = scaled(
                _mm256_maddubs_epi16(hi, q8h),
                _mm256_set1_epi16(sc[2 * c + 1]),
            );
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        let d = _mm256_set1_ps(x.d.to_f32() * yd);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - summs
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q6_k_imp(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let m4 = _mm256_set1_epi8(0x0f);
    let m32 = _mm256_set1_epi8(32);
    for (x, y) in x.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let qh = load32(x.qh.as_ptr().add(32 * h));
            let ql0 = load32(x.ql.as_ptr().add(64 * h));
            let ql1 = load32(x.ql.as_ptr().add(64 * h + 32));
            let lows = [
                _mm256_and_si256(ql0, m4),
                _mm256_and_si256(ql1, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
            ];
            for (s, low) in lows.into_iter().enumerate() {
                // level + 32 in 0..=63; subtract 32 × Σq8 afterwards
                let q =
                    _mm256_or_si256(low, _mm256_slli_epi16::<4>(two_bits_of_bytes(qh, s as u32)));
                let q8 = load32(y.qs.as_ptr().add(128 * h + 32 * s) as *const u8);
                let p16 =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(q, q8), _mm256_maddubs_epi16(m32, q8));
                let j = 8 * h + 2 * s;
                let scv = scales2(x.scales[j] as i16, x.scales[j + 1] as i16);
                sumi = _mm256_add_epi32(sumi, scaled(p16, scv));
            }
        }
        let d = _mm256_set1_ps(x.d.to_f32() * y.d.get());
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}

// ---------------------------------------------------------------- activation quantizers

/// |v| as a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn abs_ps(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

/// Loads 32 values; returns them, their max |x| and whether all are finite.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_block32(x: &[f32]) -> ([__m256; 4], f32, bool) {
    let p = x.as_ptr();
    let v = [
        _mm256_loadu_ps(p),
        _mm256_loadu_ps(p.add(8)),
        _mm256_loadu_ps(p.add(16)),
        _mm256_loadu_ps(p.add(24)),
    ];
    let m = _mm256_max_ps(
        _mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])),
        _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3])),
    );
    // "not less than inf" is true for inf and (unordered) NaN
    let inf = _mm256_set1_ps(f32::INFINITY);
    let mut bad = 0;
    for vi in v {
        bad |= _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NLT_UQ>(abs_ps(vi), inf));
    }
    (v, hmax_ps(m), bad == 0)
}

/// C's `roundf` (ties away from zero) of each lane, converted to i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn roundf_epi32(v: __m256) -> __m256i {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let frac = abs_ps(_mm256_sub_ps(v, t));
    let away = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
    let one = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0)), _mm256_set1_ps(1.0));
    _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(away, one)))
}

/// Packs 32 i32 lanes (each in −128..=127) into 32 bytes in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_i8(q: [__m256i; 4], out: *mut u8) {
    let a = _mm256_packs_epi32(q[0], q[1]);
    let b = _mm256_packs_epi32(q[2], q[3]);
    let p = _mm256_packs_epi16(a, b);
    // packs works within 128-bit lanes: dwords come out as 0 2 4 6 1 3 5 7
    let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(out as *mut __m256i, p);
}

/// Quantizes one 32-value block as Q8_0/Q8_1 do; `None` when the scalar code must do it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_block(x: &[f32], qs: &mut [i8; 32]) -> Option<f32> {
    let (v, amax, finite) = load_block32(x);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    if !finite || !id.is_finite() {
        return None;
    }
    let idv = _mm256_set1_ps(id);
    let q = [
        roundf_epi32(_mm256_mul_ps(v[0], idv)),
        roundf_epi32(_mm256_mul_ps(v[1], idv)),
        roundf_epi32(_mm256_mul_ps(v[2], idv)),
        roundf_epi32(_mm256_mul_ps(v[3], idv)),
    ];
    pack_i8(q, qs.as_mut_ptr() as *mut u8);
    Some(d)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8_0_imp(x: &[f32], y: &mut [BlockQ8_0]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        match q8_block(xb, &mut yb.qs) {
            Some(d) => yb.d = Half::from_f32(d),
            None => BlockQ8_0::from_float(xb, std::slice::from_mut(yb)),
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
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

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8_k_imp(x: &[f32], y: &mut [BlockQ8K]) {
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut amax = 0.0f32;
        let mut finite = true;
        for c in xb.chunks_exact(32) {
            let (_, m, f) = load_block32(c);
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
        let is = _mm256_set1_ps(iscale);
        let limit = _mm256_set1_epi32(127);
        for (c, xc) in xb.chunks_exact(32).enumerate() {
            let p = xc.as_ptr();
            let mut q = [_mm256_setzero_si256(); 4];
            for (k, q) in q.iter_mut().enumerate() {
                let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(8 * k)), is);
                // nearest_int: round to nearest even (|v| ≤ 127·(1+ε), far inside its exact range)
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                *q = _mm256_min_epi32(_mm256_cvttps_epi32(r), limit);
            }
            pack_i8(q, yb.qs.as_mut_ptr().add(32 * c) as *mut u8);
        }
        fill_bsums(yb);
        yb.d = LeF32::new(1.0 / iscale);
    }
}
