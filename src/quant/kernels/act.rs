//! The gated SiLU of LLaMA-style feed-forward blocks, `up[i] *= gate[i] / (1 + exp(-gate[i]))`,
//! and the exponentials of the attention's softmax, `x[i] = exp(x[i] − max)` with their sum,
//! vectorized: `exp` by range reduction (`x = n ln2 + r`, |r| ≤ ln2/2, ln2 split in two parts) and
//! a degree-6 polynomial (Taylor, error below 2e-7 relative on the interval), scaled by `2^n`
//! through the exponent bits. Arguments are clamped to ±88 (where `2^n` is still a normal number)
//! and arguments above 88 give +inf (so SiLU of a very negative gate is −0, as with `expf`). NaN
//! gates give NaN.

/// A gated-SiLU kernel: `up[i] *= silu(gate[i])`.
pub type SiluMul = fn(&mut [f32], &[f32]);

/// The reference: `up[i] *= silu(gate[i])` with the standard library's `exp`.
pub fn silu_mul_scalar(up: &mut [f32], gate: &[f32]) {
    for (u, &g) in up.iter_mut().zip(gate) {
        *u *= g / (1.0 + (-g).exp());
    }
}

/// A softmax-exponent kernel: `x[i] = exp(x[i] − max)`; returns the sum of the results.
pub type ExpShift = fn(&mut [f32], f32) -> f64;

/// The reference: the standard library's `exp`, summed in f64.
pub fn exp_shift_scalar(x: &mut [f32], max: f32) -> f64 {
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    sum
}

const CLAMP: f32 = 88.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
const P: [f32; 7] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
];

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp8(x0: __m256) -> __m256 {
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(x0, _mm256_set1_ps(CLAMP));
        let x = _mm256_min_ps(
            _mm256_max_ps(x0, _mm256_set1_ps(-CLAMP)),
            _mm256_set1_ps(CLAMP),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(P[6]);
        for &c in P[..6].iter().rev() {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_blendv_ps(
            _mm256_mul_ps(p, _mm256_castsi256_ps(e)),
            _mm256_set1_ps(f32::INFINITY),
            big,
        )
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn silu_mul_avx2_imp(up: &mut [f32], gate: &[f32]) {
        let n = up.len().min(gate.len());
        let mut i = 0;
        let one = _mm256_set1_ps(1.0);
        while i + 8 <= n {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
            let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            _mm256_storeu_ps(up.as_mut_ptr().add(i), _mm256_mul_ps(u, s));
            i += 8;
        }
        silu_mul_scalar(&mut up[i..n], &gate[i..n]);
    }

    /// AVX2 + FMA version (installed only when those were detected).
    pub(in crate::quant::kernels) fn silu_mul_avx2(up: &mut [f32], gate: &[f32]) {
        // SAFETY: installed only after AVX2 and FMA were detected.
        unsafe { silu_mul_avx2_imp(up, gate) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_shift_avx2_imp(x: &mut [f32], max: f32) -> f64 {
        let n = x.len();
        let m = _mm256_set1_ps(max);
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), m);
            // exp8 clamps, which would turn NaN into a number: keep NaN.
            let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
            let e = _mm256_blendv_ps(exp8(v), v, nan);
            _mm256_storeu_ps(x.as_mut_ptr().add(i), e);
            acc = _mm256_add_ps(acc, e);
            i += 8;
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        lanes.iter().map(|&l| l as f64).sum::<f64>() + exp_shift_scalar(&mut x[i..], max)
    }

    /// AVX2 + FMA version (installed only when those were detected).
    pub(in crate::quant::kernels) fn exp_shift_avx2(x: &mut [f32], max: f32) -> f64 {
        // SAFETY: installed only after AVX2 and FMA were detected.
        unsafe { exp_shift_avx2_imp(x, max) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp16(x0: __m512) -> __m512 {
        let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x0, _mm512_set1_ps(CLAMP));
        let x = _mm512_min_ps(
            _mm512_max_ps(x0, _mm512_set1_ps(-CLAMP)),
            _mm512_set1_ps(CLAMP),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(P[6]);
        for &c in P[..6].iter().rev() {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n),
            _mm512_set1_epi32(127),
        ));
        let v = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
        _mm512_mask_blend_ps(big, v, _mm512_set1_ps(f32::INFINITY))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn silu_mul_avx512_imp(up: &mut [f32], gate: &[f32]) {
        let n = up.len().min(gate.len());
        let mut i = 0;
        let one = _mm512_set1_ps(1.0);
        while i + 16 <= n {
            let g = _mm512_loadu_ps(gate.as_ptr().add(i));
            let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
            let s = _mm512_div_ps(g, _mm512_add_ps(one, e));
            let u = _mm512_loadu_ps(up.as_ptr().add(i));
            _mm512_storeu_ps(up.as_mut_ptr().add(i), _mm512_mul_ps(u, s));
            i += 16;
        }
        silu_mul_scalar(&mut up[i..n], &gate[i..n]);
    }

    /// AVX-512F version (installed only when AVX-512F was detected).
    pub(in crate::quant::kernels) fn silu_mul_avx512(up: &mut [f32], gate: &[f32]) {
        // SAFETY: installed only after AVX-512F was detected.
        unsafe { silu_mul_avx512_imp(up, gate) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn exp_shift_avx512_imp(x: &mut [f32], max: f32) -> f64 {
        let n = x.len();
        let m = _mm512_set1_ps(max);
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            let v = _mm512_sub_ps(_mm512_loadu_ps(x.as_ptr().add(i)), m);
            // exp16 clamps, which would turn NaN into a number: keep NaN.
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let e = _mm512_mask_blend_ps(nan, exp16(v), v);
            _mm512_storeu_ps(x.as_mut_ptr().add(i), e);
            acc = _mm512_add_ps(acc, e);
            i += 16;
        }
        let mut lanes = [0f32; 16];
        _mm512_storeu_ps(lanes.as_mut_ptr(), acc);
        lanes.iter().map(|&l| l as f64).sum::<f64>() + exp_shift_scalar(&mut x[i..], max)
    }

    /// AVX-512F version (installed only when AVX-512F was detected).
    pub(in crate::quant::kernels) fn exp_shift_avx512(x: &mut [f32], max: f32) -> f64 {
        // SAFETY: installed only after AVX-512F was detected.
        unsafe { exp_shift_avx512_imp(x, max) }
    }
}

#[cfg(target_arch = "aarch64")]
pub(super) mod arm {
    use super::*;
    use std::arch::aarch64::*;

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn exp4(x0: float32x4_t) -> float32x4_t {
        let big = vcgtq_f32(x0, vdupq_n_f32(CLAMP));
        let x = vminq_f32(vmaxq_f32(x0, vdupq_n_f32(-CLAMP)), vdupq_n_f32(CLAMP));
        let n = vrndnq_f32(vmulq_n_f32(x, LOG2E));
        let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
        let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
        let mut p = vdupq_n_f32(P[6]);
        for &c in P[..6].iter().rev() {
            p = vfmaq_f32(vdupq_n_f32(c), p, r);
        }
        let e = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)));
        vbslq_f32(
            big,
            vdupq_n_f32(f32::INFINITY),
            vmulq_f32(p, vreinterpretq_f32_s32(e)),
        )
    }

    #[target_feature(enable = "neon")]
    unsafe fn silu_mul_neon_imp(up: &mut [f32], gate: &[f32]) {
        let n = up.len().min(gate.len());
        let mut i = 0;
        while i + 4 <= n {
            let g = vld1q_f32(gate.as_ptr().add(i));
            let e = exp4(vnegq_f32(g));
            let s = vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0), e));
            let u = vld1q_f32(up.as_ptr().add(i));
            vst1q_f32(up.as_mut_ptr().add(i), vmulq_f32(u, s));
            i += 4;
        }
        silu_mul_scalar(&mut up[i..n], &gate[i..n]);
    }

    pub(in crate::quant::kernels) fn silu_mul_neon(up: &mut [f32], gate: &[f32]) {
        // SAFETY: NEON is always present on aarch64.
        unsafe { silu_mul_neon_imp(up, gate) }
    }

    #[target_feature(enable = "neon")]
    unsafe fn exp_shift_neon_imp(x: &mut [f32], max: f32) -> f64 {
        let n = x.len();
        let m = vdupq_n_f32(max);
        let mut acc = vdupq_n_f32(0.0);
        let mut i = 0;
        while i + 4 <= n {
            let v = vsubq_f32(vld1q_f32(x.as_ptr().add(i)), m);
            // exp4 clamps, which would turn NaN into a number: keep NaN.
            let e = vbslq_f32(vceqq_f32(v, v), exp4(v), v);
            vst1q_f32(x.as_mut_ptr().add(i), e);
            acc = vaddq_f32(acc, e);
            i += 4;
        }
        let mut lanes = [0f32; 4];
        vst1q_f32(lanes.as_mut_ptr(), acc);
        lanes.iter().map(|&l| l as f64).sum::<f64>() + exp_shift_scalar(&mut x[i..], max)
    }

    pub(in crate::quant::kernels) fn exp_shift_neon(x: &mut [f32], max: f32) -> f64 {
        // SAFETY: NEON is always present on aarch64.
        unsafe { exp_shift_neon_imp(x, max) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_exp_shift_matches_scalar() {
        let k = crate::quant::kernels::Kernels::detect(true);
        // Scores as attention gives them: the maximum itself, values far below it (down to
        // where exp underflows), and lengths that leave tails for the scalar loop.
        let mut x: Vec<f32> = vec![3.0, 2.5, -80.0, -90.0, -120.0, 3.0 - 1e-6, -3e38, 0.0];
        x.extend((0..4000).map(|i| 3.0 - (i as f32) * 0.021));
        #[allow(unused_mut)]
        let mut fs: Vec<ExpShift> = vec![k.exp_shift];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            fs.push(x86::exp_shift_avx2);
        }
        for len in [x.len(), 1, 7, 8, 15, 16, 17, 33] {
            let mut want = x[..len].to_vec();
            let want_sum = exp_shift_scalar(&mut want, 3.0);
            for &f in &fs {
                let mut got = x[..len].to_vec();
                let sum = f(&mut got, 3.0);
                for i in 0..len {
                    // exp(x − 3) for x ≤ −85 is below 1e-38: clamped to exp(−88) or flushed,
                    // either way nothing next to the maximum's 1.
                    let tol = 4e-7 * want[i].abs() + 1e-37;
                    assert!(
                        (got[i] - want[i]).abs() <= tol,
                        "{}: exp({} − 3): {} vs {}",
                        k.name,
                        x[i],
                        got[i],
                        want[i]
                    );
                }
                assert!(
                    (sum - want_sum).abs() <= 1e-6 * want_sum,
                    "{}: sum {sum} vs {want_sum}",
                    k.name
                );
            }
        }
        for &f in &fs {
            let mut v = [1.0f32; 33];
            v[20] = f32::NAN;
            assert!(
                f(&mut v, 1.0).is_nan() && v[20].is_nan(),
                "{}: NaN kept",
                k.name
            );
        }
    }

    #[test]
    fn simd_silu_matches_scalar() {
        let k = crate::quant::kernels::Kernels::detect(true);
        // Special values first, so that every SIMD width sees them in vector lanes.
        let mut gate: Vec<f32> = vec![
            0.0, -0.0, 1e-30, -1e-30, 80.0, -80.0, 87.5, -87.5, 88.5, -88.5, 100.0, -100.0, 3e38,
            -3e38, 16.0, -16.0,
        ];
        gate.extend((0..4000).map(|i| (i as f32 - 2000.0) * 0.013));
        let up: Vec<f32> = (0..gate.len()).map(|i| 1.0 + (i % 7) as f32).collect();
        let mut want = up.clone();
        silu_mul_scalar(&mut want, &gate);
        #[allow(unused_mut)]
        let mut fs: Vec<SiluMul> = vec![k.silu_mul];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            fs.push(x86::silu_mul_avx2);
        }
        for f in fs {
            let mut got = up.clone();
            f(&mut got, &gate);
            for i in 0..gate.len() {
                let tol = 4e-7 * want[i].abs() + 1e-30;
                assert!(
                    got[i] == want[i] || (got[i] - want[i]).abs() <= tol,
                    "{}: silu({}) * {}: {} vs {}",
                    k.name,
                    gate[i],
                    up[i],
                    got[i],
                    want[i]
                );
            }
            let mut u = [1.0f32; 33];
            f(&mut u, &[f32::NAN; 33]);
            assert!(u.iter().all(|v| v.is_nan()));
        }
    }
}
