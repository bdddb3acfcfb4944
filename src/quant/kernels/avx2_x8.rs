//! AVX2 kernels of the eight-row interleaved layouts (`crate::quant::interleaved`) and the
//! multi-row float kernels.
//!
//! Each lane of a 256-bit register is one of the group's eight rows: the four weight bytes of a
//! lane are multiplied with the same four activation bytes (a 32-bit broadcast), so the integer
//! sums of eight rows build up side by side and each block ends with one conversion and one FMA
//! for all eight rows. One call handles up to four activation rows, reusing each unpacked weight
//! register for all of them (prompt processing).
//!
//! Two builds of the same code: plain AVX2 (`maddubs` + `madd`) and AVX-VNNI (`vpdpbusd`, VEX).
//! [`install`] picks the best the CPU has, preferring the 512-bit kernels of `avx512_x16.rs`.
//!
//! Unsigned × signed byte products: 4-bit weight codes (0..=15) are unsigned as stored, and the
//! block's `8 Σa` (Q4_0) is subtracted afterwards; Q8_0 weights are made unsigned by flipping their
//! sign bit (`w + 128`) and `128 Σa` is subtracted (VNNI), or use `maddubs`'s sign trick (AVX2).
//! Activation quants are in −127..=127, so no 16-bit intermediate overflows: eight `maddubs` pairs
//! of 4-bit weights sum to at most 8 · 2 · 15 · 127 = 30480.

use std::arch::x86_64::*;

use super::{Kernels, PF_BYTES, PF_BYTES_Q4_0};
use crate::quant::interleaved::{
    in_pairs, ActRow, CTile, F16Gemm, PairKernel, Q4kSuper, Tile, TokenKernel, MAX_TOKENS,
    Q4K_SUPER,
};

/// Sets the interleaved and float-row kernels of `k` to the best this CPU supports (the caller
/// has checked AVX2, FMA and F16C): 16-row groups on 512-bit registers with AVX-512F/BW/VL
/// (`vpdpbusd` with AVX-512 VNNI), else 8-row groups with AVX-VNNI or plain AVX2.
pub(super) fn install(k: &mut Kernels, allow_avx512: bool) {
    use super::avx512_x16 as x16;
    let avx512 = allow_avx512
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw");
    if avx512 && is_x86_feature_detected!("avx512vnni") {
        (k.q4_0x8, k.q8_0x8, k.q4_kx8) =
            (x16::vnni::q4_0x16, x16::vnni::q8_0x16, x16::vnni::q4_kx16);
        k.q4_0_token = Some(x16::vnni::q4_0x16_token as TokenKernel);
        k.q4_0_pair = Some(x16::vnni::q4_0x16_pair as PairKernel);
        k.q4_k_pair = Some(x16::vnni::q4_kx16_pair as PairKernel);
        k.q8_0_pair = Some(x16::vnni::q8_0x16_pair as PairKernel);
        (k.group_width, k.matrix_name) = (16, "avx512vnni");
    } else if avx512 {
        (k.q4_0x8, k.q8_0x8, k.q4_kx8) = (
            x16::plain::q4_0x16,
            x16::plain::q8_0x16,
            x16::plain::q4_kx16,
        );
        k.q4_0_token = Some(x16::plain::q4_0x16_token as TokenKernel);
        k.q4_0_pair = Some(x16::plain::q4_0x16_pair as PairKernel);
        k.q4_k_pair = Some(x16::plain::q4_kx16_pair as PairKernel);
        k.q8_0_pair = Some(x16::plain::q8_0x16_pair as PairKernel);
        (k.group_width, k.matrix_name) = (16, "avx512bw");
    } else if is_x86_feature_detected!("avxvnni") {
        (k.q4_0x8, k.q8_0x8, k.q4_kx8) = (vnni::q4_0x8, vnni::q8_0x8, vnni::q4_kx8);
        k.q4_0_token = Some(vnni::q4_0x8_token as TokenKernel);
        (k.group_width, k.matrix_name) = (8, "avxvnni");
    } else {
        (k.q4_0x8, k.q8_0x8, k.q4_kx8) = (plain::q4_0x8, plain::q8_0x8, plain::q4_kx8);
        k.q4_0_token = Some(plain::q4_0x8_token as TokenKernel);
        (k.group_width, k.matrix_name) = (8, "avx2");
    }
    k.f16_rows = if avx512 { x16::f16_rows } else { f16_rows };
    k.q8_0_rows = Some(if avx512 && is_x86_feature_detected!("avx512vnni") {
        super::q8_rows::vnni::q8_0_rows
    } else {
        super::q8_rows::plain::q8_0_rows
    });
    k.f16_gemm = Some(if avx512 { x16::F16_GEMM } else { F16_GEMM });
}

/// Every build this CPU can run, for tests.
#[cfg(test)]
pub(super) fn all_builds() -> Vec<super::MatrixBuild> {
    use super::avx512_x16 as x16;
    use super::MatrixBuild;
    let mut v = vec![MatrixBuild {
        name: "avx2",
        width: 8,
        group: [plain::q4_0x8, plain::q8_0x8, plain::q4_kx8],
        token: [Some(plain::q4_0x8_token), None, None],
        pair: [None; 3],
        f16_rows,
        q8_0_rows: super::q8_rows::plain::q8_0_rows,
        f16_gemm: Some(F16_GEMM),
    }];
    if is_x86_feature_detected!("avxvnni") {
        v.push(MatrixBuild {
            name: "avxvnni",
            width: 8,
            group: [vnni::q4_0x8, vnni::q8_0x8, vnni::q4_kx8],
            token: [Some(vnni::q4_0x8_token), None, None],
            pair: [None; 3],
            f16_rows,
            q8_0_rows: super::q8_rows::plain::q8_0_rows,
            f16_gemm: Some(F16_GEMM),
        });
    }
    let avx512 = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw");
    if avx512 && is_x86_feature_detected!("avx512vnni") {
        v.push(MatrixBuild {
            name: "avx512vnni",
            width: 16,
            group: [x16::vnni::q4_0x16, x16::vnni::q8_0x16, x16::vnni::q4_kx16],
            token: [Some(x16::vnni::q4_0x16_token), None, None],
            pair: [
                Some(x16::vnni::q4_0x16_pair),
                Some(x16::vnni::q8_0x16_pair),
                Some(x16::vnni::q4_kx16_pair),
            ],
            f16_rows: x16::f16_rows,
            q8_0_rows: super::q8_rows::vnni::q8_0_rows,
            f16_gemm: Some(x16::F16_GEMM),
        });
    }
    if avx512 {
        v.push(MatrixBuild {
            name: "avx512bw",
            width: 16,
            group: [
                x16::plain::q4_0x16,
                x16::plain::q8_0x16,
                x16::plain::q4_kx16,
            ],
            token: [Some(x16::plain::q4_0x16_token), None, None],
            pair: [
                Some(x16::plain::q4_0x16_pair),
                Some(x16::plain::q8_0x16_pair),
                Some(x16::plain::q4_kx16_pair),
            ],
            f16_rows: x16::f16_rows,
            q8_0_rows: super::q8_rows::plain::q8_0_rows,
            f16_gemm: Some(x16::F16_GEMM),
        });
    }
    v
}

/// Broadcast of the four activation bytes at `p` to every lane.
macro_rules! bcast4 {
    ($p:expr) => {
        _mm256_set1_epi32(std::ptr::read_unaligned($p as *const i32))
    };
}

/// Σ over `j < 8` of the 4-byte dot products of `w[j]` (unsigned, ≤ 15 in the plain build) with the
/// activation bytes `a[4 j .. 4 j + 4]`, per lane, as i32.
macro_rules! sum8_u4 {
    (plain, $w:expr, $a:expr) => {{
        let (w, a) = (&$w, $a);
        let p0 = _mm256_add_epi16(
            _mm256_maddubs_epi16(w[0], bcast4!(a)),
            _mm256_maddubs_epi16(w[1], bcast4!(a.add(4))),
        );
        let p1 = _mm256_add_epi16(
            _mm256_maddubs_epi16(w[2], bcast4!(a.add(8))),
            _mm256_maddubs_epi16(w[3], bcast4!(a.add(12))),
        );
        let p2 = _mm256_add_epi16(
            _mm256_maddubs_epi16(w[4], bcast4!(a.add(16))),
            _mm256_maddubs_epi16(w[5], bcast4!(a.add(20))),
        );
        let p3 = _mm256_add_epi16(
            _mm256_maddubs_epi16(w[6], bcast4!(a.add(24))),
            _mm256_maddubs_epi16(w[7], bcast4!(a.add(28))),
        );
        let p = _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3));
        _mm256_madd_epi16(p, _mm256_set1_epi16(1))
    }};
    ($dp:ident, $w:expr, $a:expr) => {{
        let (w, a) = (&$w, $a);
        let mut s0 = _mm256_setzero_si256();
        let mut s1 = _mm256_setzero_si256();
        s0 = $dp(s0, w[0], bcast4!(a));
        s1 = $dp(s1, w[1], bcast4!(a.add(4)));
        s0 = $dp(s0, w[2], bcast4!(a.add(8)));
        s1 = $dp(s1, w[3], bcast4!(a.add(12)));
        s0 = $dp(s0, w[4], bcast4!(a.add(16)));
        s1 = $dp(s1, w[5], bcast4!(a.add(20)));
        s0 = $dp(s0, w[6], bcast4!(a.add(24)));
        s1 = $dp(s1, w[7], bcast4!(a.add(28)));
        _mm256_add_epi32(s0, s1)
    }};
}

/// Σ over `j < 8` of the 4-byte dot products of signed `w[j]` with `a[4 j ..]`, per lane, as i32.
/// The VNNI builds get `w` with flipped sign bits (`w + 128`) and subtract `128 Σa` themselves.
macro_rules! sum8_s8 {
    (plain, $w:expr, $a:expr) => {{
        let (w, a) = (&$w, $a);
        let mut s = _mm256_setzero_si256();
        let ones = _mm256_set1_epi16(1);
        for j in 0..8 {
            let y = bcast4!(a.add(4 * j));
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w[j], w[j]), _mm256_sign_epi8(y, w[j]));
            s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
        }
        s
    }};
    ($dp:ident, $w:expr, $a:expr) => {
        sum8_u4!($dp, $w, $a)
    };
}

macro_rules! x8_build {
    ($feat:literal, $dp:ident) => {
        use super::*;

        /// `G` groups (one, or two walked side by side: see [`TokenKernel`]) against `NT`
        /// activation rows; `out[g][t][r]`.
        #[target_feature(enable = $feat)]
        unsafe fn q4_0_imp<const NT: usize, const G: usize>(
            groups: [&[u8]; G],
            nb: usize,
            acts: &[ActRow<'_>],
            out: &mut [Tile],
        ) {
            debug_assert!(groups.iter().all(|g| g.len() >= nb * 144) && acts.len() == NT);
            debug_assert!(out.len() >= G);
            let qs = groups.map(|g| g.as_ptr());
            let d = qs.map(|q| q.add(nb * 128));
            let m4 = _mm256_set1_epi8(15);
            let mut acc = [[_mm256_setzero_ps(); NT]; G];
            for b in 0..nb {
                for g in 0..G {
                    let p = qs[g].add(b * 128);
                    if NT == 1 {
                        prefetch_ahead!(p, 2, PF_BYTES_Q4_0);
                    }
                    let mut w = [_mm256_setzero_si256(); 8];
                    for j in 0..4 {
                        let v = _mm256_loadu_si256(p.add(32 * j) as *const __m256i);
                        w[j] = _mm256_and_si256(v, m4);
                        w[j + 4] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4);
                    }
                    let dw = _mm256_cvtph_ps(_mm_loadu_si128(d[g].add(16 * b) as *const __m128i));
                    for t in 0..NT {
                        let a = &acts[t];
                        let s = sum8_u4!($dp, w, a.qs.as_ptr().add(32 * b));
                        let s = _mm256_sub_epi32(s, _mm256_set1_epi32(8 * *a.sum.get_unchecked(b)));
                        let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(b)));
                        acc[g][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[g][t]);
                    }
                }
            }
            for g in 0..G {
                for t in 0..NT {
                    _mm256_storeu_ps(out[g][t].as_mut_ptr(), acc[g][t]);
                }
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn q8_0_imp<const NT: usize>(
            group: &[u8],
            nb: usize,
            acts: &[ActRow<'_>],
            out: &mut Tile,
        ) {
            debug_assert!(group.len() >= nb * 272 && acts.len() == NT);
            let qs = group.as_ptr();
            let d = qs.add(nb * 256);
            let vnni = stringify!($dp) != "plain";
            let flip = _mm256_set1_epi8(-128);
            let mut acc = [_mm256_setzero_ps(); NT];
            for b in 0..nb {
                let p = qs.add(b * 256);
                if NT == 1 {
                    prefetch_ahead!(p, 4);
                }
                let mut w = [_mm256_setzero_si256(); 8];
                for j in 0..8 {
                    let v = _mm256_loadu_si256(p.add(32 * j) as *const __m256i);
                    w[j] = if vnni { _mm256_xor_si256(v, flip) } else { v };
                }
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(d.add(16 * b) as *const __m128i));
                for t in 0..NT {
                    let a = &acts[t];
                    let mut s = sum8_s8!($dp, w, a.qs.as_ptr().add(32 * b));
                    if vnni {
                        s = _mm256_sub_epi32(s, _mm256_set1_epi32(128 * *a.sum.get_unchecked(b)));
                    }
                    let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(b)));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[t]);
                }
            }
            for t in 0..NT {
                _mm256_storeu_ps(out[t].as_mut_ptr(), acc[t]);
            }
        }

        #[target_feature(enable = $feat)]
        unsafe fn q4_k_imp<const NT: usize>(
            group: &[u8],
            ns: usize,
            acts: &[ActRow<'_>],
            out: &mut Tile,
        ) {
            debug_assert!(group.len() >= ns * Q4K_SUPER * 8 && acts.len() == NT);
            const O: Q4kSuper = Q4kSuper::new(8);
            let m4 = _mm256_set1_epi8(15);
            let mut acc = [_mm256_setzero_ps(); NT];
            for s in 0..ns {
                // one forward stream, as in avx512_x16.rs
                let sb = group.as_ptr().add(s * Q4K_SUPER * 8);
                let (sc, mn, qs) = (sb.add(O.scales), sb.add(O.mins), sb.add(O.qs));
                if NT == 1 {
                    prefetch_ahead!(sb, O.qs.div_ceil(64));
                }
                let mut isum = [_mm256_setzero_si256(); NT];
                for sub in 0..8 {
                    let p = qs.add(256 * (sub / 2));
                    if NT == 1 && sub % 2 == 0 {
                        prefetch_ahead!(p, 4);
                    }
                    let mut w = [_mm256_setzero_si256(); 8];
                    for j in 0..8 {
                        let v = _mm256_loadu_si256(p.add(32 * j) as *const __m256i);
                        w[j] = if sub % 2 == 0 {
                            _mm256_and_si256(v, m4)
                        } else {
                            _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4)
                        };
                    }
                    let scv =
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64(sc.add(8 * sub) as *const __m128i));
                    for t in 0..NT {
                        let a = acts[t].qs.as_ptr().add(s * 256 + 32 * sub);
                        let v = sum8_u4!($dp, w, a);
                        isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(v, scv));
                    }
                }
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(sb.add(O.d) as *const __m128i));
                let mw = _mm256_cvtph_ps(_mm_loadu_si128(sb.add(O.dmin) as *const __m128i));
                for t in 0..NT {
                    let a = &acts[t];
                    let mut msum = _mm256_setzero_si256();
                    for sub in 0..8 {
                        let mv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                            mn.add(8 * sub) as *const __m128i
                        ));
                        let bs = _mm256_set1_epi32(*a.sum.get_unchecked(s * 8 + sub));
                        msum = _mm256_add_epi32(msum, _mm256_mullo_epi32(mv, bs));
                    }
                    let da = _mm256_set1_ps(*a.d.get_unchecked(s));
                    acc[t] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(dw, da), acc[t]);
                    acc[t] =
                        _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(mw, da), acc[t]);
                }
            }
            for t in 0..NT {
                _mm256_storeu_ps(out[t].as_mut_ptr(), acc[t]);
            }
        }

        by_tokens!(q4_0x8, q4_0_imp, grouped);
        by_tokens!(q8_0x8, q8_0_imp);
        by_tokens!(q4_kx8, q4_k_imp);
        by_pairs!(q4_0x8_token, q4_0_imp, 8, |nb| nb * 144);
    };
}

mod plain {
    x8_build!("avx2,fma,f16c", plain);
}

mod vnni {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn dp(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, w, a)
    }
    x8_build!("avx2,fma,f16c,avxvnni", dp);
}

// ---------------------------------------------------------------- float rows

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `R` f16 rows against `T` f32 rows of `n` values (a multiple of 8).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_tile<const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [*const f32; T],
    n: usize,
) -> [[f32; R]; T] {
    let mut acc = [[_mm256_setzero_ps(); R]; T];
    let mut k = 0;
    while k + 8 <= n {
        let wv: [__m256; R] = std::array::from_fn(|r| {
            _mm256_cvtph_ps(_mm_loadu_si128(w[r].add(2 * k) as *const __m128i))
        });
        for t in 0..T {
            let xv = _mm256_loadu_ps(x[t].add(k));
            for r in 0..R {
                acc[t][r] = _mm256_fmadd_ps(wv[r], xv, acc[t][r]);
            }
        }
        k += 8;
    }
    let mut out = [[0f32; R]; T];
    for t in 0..T {
        for r in 0..R {
            out[t][r] = hsum(acc[t][r]);
        }
    }
    out
}

/// Four f16 rows against one f32 row, two accumulators per row.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_gemv4(w: [*const u8; 4], x: *const f32, n: usize) -> [f32; 4] {
    let mut a0 = [_mm256_setzero_ps(); 4];
    let mut a1 = [_mm256_setzero_ps(); 4];
    // Each row prefetches the same position four rows further on (the next call's rows, which
    // follow `w[3]` in the matrix), as `avx512_x16::f16_tile` does.
    let ahead = (w[3] as usize)
        .wrapping_sub(w[0] as usize)
        .wrapping_add(2 * n);
    let mut k = 0;
    while k + 16 <= n {
        if k % 32 == 0 {
            for p in w {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(2 * k + ahead) as *const i8);
            }
        }
        let x0 = _mm256_loadu_ps(x.add(k));
        let x1 = _mm256_loadu_ps(x.add(k + 8));
        for r in 0..4 {
            let w0 = _mm256_cvtph_ps(_mm_loadu_si128(w[r].add(2 * k) as *const __m128i));
            let w1 = _mm256_cvtph_ps(_mm_loadu_si128(w[r].add(2 * k + 16) as *const __m128i));
            a0[r] = _mm256_fmadd_ps(w0, x0, a0[r]);
            a1[r] = _mm256_fmadd_ps(w1, x1, a1[r]);
        }
        k += 16;
    }
    if k < n {
        let x0 = _mm256_loadu_ps(x.add(k));
        for r in 0..4 {
            let w0 = _mm256_cvtph_ps(_mm_loadu_si128(w[r].add(2 * k) as *const __m128i));
            a0[r] = _mm256_fmadd_ps(w0, x0, a0[r]);
        }
    }
    std::array::from_fn(|r| hsum(_mm256_add_ps(a0[r], a1[r])))
}

/// `out[t][r]` = f16 row `w[r]` · f32 row `x[t]` for up to four rows and four activation rows,
/// all `n` values long (`n` a multiple of 8; see `interleaved::RowsKernel`).
fn f16_rows(w: &[&[u8]], x: &[&[f32]], n: usize, out: &mut [[f32; 4]; MAX_TOKENS]) {
    assert!(n.is_multiple_of(8) && w.len() <= 4 && x.len() <= MAX_TOKENS);
    assert!(w.iter().all(|r| r.len() >= 2 * n) && x.iter().all(|r| r.len() >= n));
    let wp: [*const u8; 4] = std::array::from_fn(|r| w[r.min(w.len() - 1)].as_ptr());
    // SAFETY: installed only when AVX2, FMA and F16C were detected; lengths checked above
    // (missing rows repeat the last one, whose results are ignored).
    unsafe {
        if x.len() == 1 {
            let o = f16_gemv4(wp, x[0].as_ptr(), n);
            out[0] = o;
            return;
        }
        let mut t = 0;
        while t < x.len() {
            let nt = (x.len() - t).min(2);
            if nt == 2 {
                let o = f16_tile::<4, 2>(wp, [x[t].as_ptr(), x[t + 1].as_ptr()], n);
                out[t] = o[0];
                out[t + 1] = o[1];
            } else {
                let o = f16_tile::<4, 1>(wp, [x[t].as_ptr()], n);
                out[t] = o[0];
            }
            t += nt;
        }
    }
}

// ---------------------------------------------------------------- f16 GEMM

/// `out[j]` lane `i` = `r[i]` lane `j` (an 8 × 8 transpose).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // pairs of rows interleaved: t[0] = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], ...
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (
            r[i / 4 * 4 + i % 4 / 2 * 2],
            r[i / 4 * 4 + i % 4 / 2 * 2 + 1],
        );
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // four rows of columns c and c + 4: u[4h + c] for rows 4h .. 4h + 4
    let u: [__m256; 8] = std::array::from_fn(|i| {
        let (h, c) = (i / 4, i % 4);
        let (a, b) = (t[4 * h + c / 2], t[4 * h + 2 + c / 2]);
        if c % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xee>(a, b)
        }
    });
    std::array::from_fn(|j| {
        if j < 4 {
            _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[j - 4], u[j])
        }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_imp<const MR: usize>(w: &[&[u8]], k0: usize, kc: usize, panel: *mut f32) {
    for g in 0..MR / 8 {
        let p: [*const u8; 8] = std::array::from_fn(|i| w[8 * g + i].as_ptr().add(2 * k0));
        for k in (0..kc).step_by(8) {
            let r = std::array::from_fn(|i| {
                _mm256_cvtph_ps(_mm_loadu_si128(p[i].add(2 * k) as *const __m128i))
            });
            for (j, v) in transpose8(r).into_iter().enumerate() {
                _mm256_storeu_ps(panel.add((k + j) * MR + 8 * g), v);
            }
        }
    }
}

/// The panel packer of the AVX2 and AVX-512 f16 GEMMs (see `interleaved::PackPanel`): eight rows
/// × eight values at a time, converted with F16C and transposed in registers.
pub(super) fn pack_panel<const MR: usize>(w: &[&[u8]], k0: usize, kc: usize, panel: &mut [f32]) {
    assert!(w.len() == MR && kc.is_multiple_of(8) && panel.len() >= kc * MR);
    assert!(w.iter().all(|r| r.len() >= 2 * (k0 + kc)));
    // SAFETY: installed only when AVX2, FMA and F16C were detected; lengths checked above.
    unsafe { pack_imp::<MR>(w, k0, kc, panel.as_mut_ptr()) }
}

/// Tokens per micro-kernel call of the AVX2 GEMM: 16 rows (two registers) × 6 tokens = 12
/// accumulators, 2 panel registers and a broadcast within the 16 ymm registers.
const NR8: usize = 6;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn micro_imp<const NT: usize>(panel: *const f32, xp: *const f32, kc: usize, c: &CTile) {
    let mut acc = [[_mm256_setzero_ps(); 2]; NT];
    let (mut p, mut x) = (panel, xp);
    for _ in 0..kc {
        let a0 = _mm256_loadu_ps(p);
        let a1 = _mm256_loadu_ps(p.add(8));
        for (t, acc) in acc.iter_mut().enumerate() {
            let b = _mm256_broadcast_ss(&*x.add(t));
            acc[0] = _mm256_fmadd_ps(a0, b, acc[0]);
            acc[1] = _mm256_fmadd_ps(a1, b, acc[1]);
        }
        p = p.add(16);
        x = x.add(NR8);
    }
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask: [__m256i; 2] = std::array::from_fn(|h| {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(c.rows as i32 - 8 * h as i32), lane)
    });
    for (t, acc) in acc.iter().enumerate() {
        let o = c.ptr.wrapping_add(t * c.ldc);
        for (h, &v) in acc.iter().enumerate() {
            let o = o.wrapping_add(8 * h);
            let mut v = v;
            if c.rows == 16 {
                if c.add {
                    v = _mm256_add_ps(v, _mm256_loadu_ps(o));
                }
                _mm256_storeu_ps(o, v);
            } else {
                // masked-off lanes are neither read nor written (no fault past the tile)
                if c.add {
                    v = _mm256_add_ps(v, _mm256_maskload_ps(o, mask[h]));
                }
                _mm256_maskstore_ps(o, mask[h], v);
            }
        }
    }
}

/// The AVX2 GEMM micro-kernel (see `interleaved::MicroKernel`).
unsafe fn micro(panel: &[f32], xp: &[f32], kc: usize, c: &CTile) {
    assert!(panel.len() >= kc * 16 && xp.len() >= kc * NR8 && c.rows <= 16);
    let (p, x) = (panel.as_ptr(), xp.as_ptr());
    match c.tokens {
        0 => {}
        1 => micro_imp::<1>(p, x, kc, c),
        2 => micro_imp::<2>(p, x, kc, c),
        3 => micro_imp::<3>(p, x, kc, c),
        4 => micro_imp::<4>(p, x, kc, c),
        5 => micro_imp::<5>(p, x, kc, c),
        _ => micro_imp::<NR8>(p, x, kc, c),
    }
}

/// The AVX2 f16 GEMM: 16-row panels, 6 tokens per call.
pub(super) const F16_GEMM: F16Gemm = F16Gemm {
    mr: 16,
    nr: NR8,
    pack: pack_panel::<16>,
    micro,
};
