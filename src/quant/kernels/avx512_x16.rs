//! AVX-512 kernels of the interleaved layouts with 16-row groups, and the f16 row kernels.
//!
//! The same scheme as `avx2_x8.rs` on 512-bit registers: lane `r` of a register is row `r` of the
//! group, four weight bytes per lane against four broadcast activation bytes. Two builds:
//! AVX-512 VNNI (`vpdpbusd`) and AVX-512BW without VNNI (`vpmaddubsw` + `vpmaddwd`); [`install`]
//! in `avx2_x8.rs` picks one when the CPU has AVX-512F/BW/VL.

use std::arch::x86_64::*;

use super::{PF_BYTES, PF_BYTES_Q4_0, PF_L2_BYTES_Q4_0};
use crate::quant::interleaved::{
    in_pairs, ActRow, CTile, F16Gemm, Q4kSuper, Tile, MAX_TOKENS, Q4K_SUPER,
};

/// Broadcast of the four activation bytes at `p` to every lane.
macro_rules! bcast4 {
    ($p:expr) => {
        _mm512_set1_epi32(std::ptr::read_unaligned($p as *const i32))
    };
}

/// A running sum of 4-byte dot products of unsigned weight bytes with broadcast activation
/// bytes, per lane, that ends as i32 plus a correction `c`: `dot_start!(mode, c)` begins it,
/// `dot_step!(mode, s, w, y)` adds `w · y`, `dot_finish!(mode, s, c)` gives the i32 sum. VNNI
/// accumulates in i32 from `c` on; the plain build in i16 (`maddubs`; up to eight steps with
/// weights ≤ 15: 8 · 2 · 15 · 127 = 30480) and widens at the end.
macro_rules! dot_start {
    (vnni, $c:expr) => {
        _mm512_set1_epi32($c)
    };
    (plain, $c:expr) => {{
        let _ = $c; // added by `dot_finish`
        _mm512_setzero_si512()
    }};
}
macro_rules! dot_step {
    (vnni, $s:expr, $w:expr, $y:expr) => {
        _mm512_dpbusd_epi32($s, $w, $y)
    };
    (plain, $s:expr, $w:expr, $y:expr) => {
        _mm512_add_epi16($s, _mm512_maddubs_epi16($w, $y))
    };
}
macro_rules! dot_finish {
    (vnni, $s:expr, $c:expr) => {
        $s
    };
    (plain, $s:expr, $c:expr) => {
        _mm512_add_epi32(
            _mm512_madd_epi16($s, _mm512_set1_epi16(1)),
            _mm512_set1_epi32($c),
        )
    };
}

/// The same for signed weight bytes (Q8_0): the VNNI build gets `w + 128` (unsigned) and starts
/// from `c` = −128 Σ a; the plain build uses `maddubs`'s sign trick (|w| against `y` with `w`'s
/// sign, AVX-512 having no `vpsignb`) and widens every step (two would overflow i16).
macro_rules! sdot_start {
    (vnni, $c:expr) => {
        _mm512_set1_epi32($c)
    };
    (plain, $c:expr) => {{
        let _ = $c; // not needed: the plain build multiplies signed bytes
        _mm512_setzero_si512()
    }};
}
macro_rules! sdot_step {
    (vnni, $s:expr, $w:expr, $y:expr) => {
        _mm512_dpbusd_epi32($s, $w, $y)
    };
    (plain, $s:expr, $w:expr, $y:expr) => {{
        let (w, y) = ($w, $y);
        let neg = _mm512_movepi8_mask(w);
        let sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
        let p = _mm512_maddubs_epi16(_mm512_abs_epi8(w), sy);
        _mm512_add_epi32($s, _mm512_madd_epi16(p, _mm512_set1_epi16(1)))
    }};
}

macro_rules! x16_build {
    ($feat:literal, $mode:ident) => {
        use super::*;

        const VNNI: bool = matches!(stringify!($mode).as_bytes(), b"vnni");

        /// `G` groups (one, or two walked side by side: see [`TokenKernel`]) of a Q4_0 (`Q4`)
        /// or Q8_0 interleaved matrix against `NT` activation rows; `out[g][t][r]`.
        ///
        /// Each broadcast of four activation bytes feeds the dot products of all `G` groups:
        /// on this Ice Lake a 512-bit broadcast from memory costs about as much as a
        /// `vpdpbusd` (ten of each per loop: 2.6–2.8 G dot products/s; ten with five broadcasts,
        /// each used twice: 3.8–4.0 G; ten alone 4.9 G), so a dot product that does its own
        /// broadcast, as `vpdpbusd m32bcst` does, runs at half the rate. The correction of the
        /// weights' offset starts each block's sum: Σ (q − 8) a = Σ q a − 8 Σ a for Q4_0's
        /// nibbles, and the VNNI build's Q8_0 bytes, taken as unsigned `w + 128`, need − 128 Σ a.
        /// The integer sums are exact, so the order of their additions does not change any
        /// result.
        ///
        /// [`TokenKernel`]: crate::quant::interleaved::TokenKernel
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn q0_imp<const NT: usize, const G: usize, const Q4: bool>(
            groups: [&[u8]; G],
            nb: usize,
            acts: &[ActRow<'_>],
            out: &mut [Tile],
        ) {
            // quant bytes per block of a group: 16 rows × 32 values of 4 or 8 bits
            let qb = if Q4 { 256 } else { 512 };
            debug_assert!(groups.iter().all(|g| g.len() >= nb * (qb + 32)) && acts.len() == NT);
            debug_assert!(out.len() >= G);
            let qs = groups.map(|g| g.as_ptr());
            let d = qs.map(|q| q.add(nb * qb));
            let (m4, flip) = (_mm512_set1_epi8(15), _mm512_set1_epi8(-128));
            let off = if Q4 { 8 } else { 128 };
            let mut acc = [[_mm512_setzero_ps(); NT]; G];
            for b in 0..nb {
                let p = qs.map(|q| q.add(b * qb));
                if NT == 1 {
                    for p in p {
                        if Q4 {
                            prefetch_ahead!(p, 4, PF_BYTES_Q4_0, PF_L2_BYTES_Q4_0);
                        } else {
                            prefetch_ahead!(p, 8);
                        }
                    }
                }
                let mut s: [[__m512i; NT]; G] = [std::array::from_fn(|t| {
                    let c = -off * *acts[t].sum.get_unchecked(b);
                    if Q4 {
                        dot_start!($mode, c)
                    } else {
                        sdot_start!($mode, c)
                    }
                }); G];
                for j in 0..8 {
                    // Q4_0: quants 4j'..4j'+4 of every row of block b, the low nibbles of the
                    // bytes at 64 j' (j' = j mod 4) for j < 4, their high nibbles for j ≥ 4;
                    // Q8_0: the bytes at 64 j
                    let w: [__m512i; G] = std::array::from_fn(|g| {
                        if Q4 {
                            let v = _mm512_loadu_si512(p[g].add(64 * (j % 4)) as *const _);
                            let v = if j < 4 { v } else { _mm512_srli_epi16::<4>(v) };
                            _mm512_and_si512(v, m4)
                        } else {
                            let v = _mm512_loadu_si512(p[g].add(64 * j) as *const _);
                            if VNNI {
                                _mm512_xor_si512(v, flip)
                            } else {
                                v
                            }
                        }
                    });
                    for t in 0..NT {
                        let y = bcast4!(acts[t].qs.as_ptr().add(32 * b + 4 * j));
                        for g in 0..G {
                            s[g][t] = if Q4 {
                                dot_step!($mode, s[g][t], w[g], y)
                            } else {
                                sdot_step!($mode, s[g][t], w[g], y)
                            };
                        }
                    }
                }
                for g in 0..G {
                    let dw =
                        _mm512_cvtph_ps(_mm256_loadu_si256(d[g].add(32 * b) as *const __m256i));
                    for t in 0..NT {
                        let s = if Q4 {
                            dot_finish!($mode, s[g][t], -8 * *acts[t].sum.get_unchecked(b))
                        } else {
                            s[g][t] // the plain build multiplies signed bytes: nothing to add
                        };
                        let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*acts[t].d.get_unchecked(b)));
                        acc[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[g][t]);
                    }
                }
            }
            for g in 0..G {
                for t in 0..NT {
                    _mm512_storeu_ps(out[g][t].as_mut_ptr(), acc[g][t]);
                }
            }
        }

        /// [`q0_imp`] for Q4_0.
        #[target_feature(enable = $feat)]
        unsafe fn q4_0_imp<const NT: usize, const G: usize>(
            groups: [&[u8]; G],
            nb: usize,
            acts: &[ActRow<'_>],
            out: &mut [Tile],
        ) {
            q0_imp::<NT, G, true>(groups, nb, acts, out)
        }

        /// [`q0_imp`] for Q8_0.
        #[target_feature(enable = $feat)]
        unsafe fn q8_0_imp<const NT: usize, const G: usize>(
            groups: [&[u8]; G],
            nb: usize,
            acts: &[ActRow<'_>],
            out: &mut [Tile],
        ) {
            q0_imp::<NT, G, false>(groups, nb, acts, out)
        }

        /// `G` groups (one, or a pair for prompt batches) against `NT` activation rows;
        /// `out[g][t][r]`. As in [`q0_imp`], each four-byte activation broadcast feeds the dot
        /// products of all `G` groups; the integer sums are exact, so a pair gives each group's
        /// results bit for bit as the group kernel does.
        #[target_feature(enable = $feat)]
        unsafe fn q4_k_imp<const NT: usize, const G: usize>(
            groups: [&[u8]; G],
            ns: usize,
            acts: &[ActRow<'_>],
            out: &mut [Tile],
        ) {
            debug_assert!(groups.iter().all(|g| g.len() >= ns * Q4K_SUPER * 16));
            debug_assert!(acts.len() == NT && out.len() >= G);
            const O: Q4kSuper = Q4kSuper::new(16);
            let m4 = _mm512_set1_epi8(15);
            let mut acc = [[_mm512_setzero_ps(); NT]; G];
            for s in 0..ns {
                // The super-block's scales, then its quants: one forward stream, prefetched
                // ahead line by line (the scales' lines here, the quants' beside each chunk).
                let sb = groups.map(|g| g.as_ptr().add(s * Q4K_SUPER * 16));
                if NT == 1 {
                    for sb in sb {
                        prefetch_ahead!(sb, O.qs.div_ceil(64));
                    }
                }
                let dw =
                    sb.map(|sb| _mm512_cvtph_ps(_mm256_loadu_si256(sb.add(O.d) as *const __m256i)));
                // Σ_sub sub-block dot · scale, in f32 with the row's d folded into the scales:
                // a conversion and an FMA per sub-block and token instead of a 32-bit integer
                // multiply (two uops on the port the dot products use).
                let mut fsum = [[_mm512_setzero_ps(); NT]; G];
                for c in 0..4 {
                    if NT == 1 {
                        for sb in sb {
                            prefetch_ahead!(sb.add(O.qs + 512 * c), 8);
                        }
                    }
                    for half in 0..2 {
                        let sub = 2 * c + half;
                        let mut x = [[dot_start!($mode, 0); NT]; G];
                        for j in 0..8 {
                            // the low nibbles of the chunk's 64-byte line j for sub-block 2c,
                            // its high nibbles for 2c + 1
                            let w: [__m512i; G] = std::array::from_fn(|g| {
                                let p = sb[g].add(O.qs + 512 * c + 64 * j);
                                let v = _mm512_loadu_si512(p as *const _);
                                let v = if half == 0 {
                                    v
                                } else {
                                    _mm512_srli_epi16::<4>(v)
                                };
                                _mm512_and_si512(v, m4)
                            });
                            for t in 0..NT {
                                let a = acts[t].qs.as_ptr().add(s * 256 + 32 * sub + 4 * j);
                                let y = bcast4!(a);
                                for g in 0..G {
                                    x[g][t] = dot_step!($mode, x[g][t], w[g], y);
                                }
                            }
                        }
                        for g in 0..G {
                            let scv = _mm512_cvtepu8_epi32(_mm_loadu_si128(
                                sb[g].add(O.scales + 16 * sub) as *const __m128i,
                            ));
                            let scf = _mm512_mul_ps(_mm512_cvtepi32_ps(scv), dw[g]);
                            for t in 0..NT {
                                let x = dot_finish!($mode, x[g][t], 0);
                                fsum[g][t] =
                                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(x), scf, fsum[g][t]);
                            }
                        }
                    }
                }
                for g in 0..G {
                    let mn = sb[g].add(O.mins);
                    let mw =
                        _mm512_cvtph_ps(_mm256_loadu_si256(sb[g].add(O.dmin) as *const __m256i));
                    // The mins of sub-blocks 2k and 2k+1 as a pair of i16 per lane, once for
                    // every token: each token's Σ_sub min · bsum is then four `madd_epi16` (its
                    // bsums, |Σ 32 q8| ≤ 4064, fit i16) instead of eight 32-bit multiplies.
                    let mpair: [__m512i; 4] = std::array::from_fn(|k| {
                        let m0 = _mm_loadu_si128(mn.add(32 * k) as *const __m128i);
                        let m1 = _mm_loadu_si128(mn.add(32 * k + 16) as *const __m128i);
                        _mm512_cvtepu8_epi16(_mm256_set_m128i(
                            _mm_unpackhi_epi8(m0, m1),
                            _mm_unpacklo_epi8(m0, m1),
                        ))
                    });
                    for t in 0..NT {
                        let a = &acts[t];
                        let mut msum = _mm512_setzero_si512();
                        for (k, mp) in mpair.iter().enumerate() {
                            let b0 = *a.sum.get_unchecked(s * 8 + 2 * k);
                            let b1 = *a.sum.get_unchecked(s * 8 + 2 * k + 1);
                            let bs = _mm512_set1_epi32((b0 & 0xffff) | (b1 << 16));
                            msum = _mm512_add_epi32(msum, _mm512_madd_epi16(*mp, bs));
                        }
                        let da = _mm512_set1_ps(*a.d.get_unchecked(s));
                        acc[g][t] = _mm512_fmadd_ps(fsum[g][t], da, acc[g][t]);
                        acc[g][t] = _mm512_fnmadd_ps(
                            _mm512_cvtepi32_ps(msum),
                            _mm512_mul_ps(mw, da),
                            acc[g][t],
                        );
                    }
                }
            }
            for g in 0..G {
                for t in 0..NT {
                    _mm512_storeu_ps(out[g][t].as_mut_ptr(), acc[g][t]);
                }
            }
        }

        by_tokens!(q4_0x16, q4_0_imp, grouped);
        by_tokens!(q8_0x16, q8_0_imp, grouped);
        by_tokens!(q8_0x16_pair, q8_0_imp, pair);
        by_tokens!(q4_kx16, q4_k_imp, grouped);
        by_tokens!(q4_kx16_pair, q4_k_imp, pair);

        by_tokens!(q4_0x16_pair, q4_0_imp, pair);
        by_pairs!(q4_0x16_token, q4_0_imp, 16, |nb| nb * 288);
    };
}

pub(crate) mod plain {
    x16_build!("avx2,fma,f16c,avx512f,avx512bw,avx512vl", plain);
}

pub(crate) mod vnni {
    x16_build!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", vnni);
}

// ---------------------------------------------------------------- float rows

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn hsum512(v: __m512) -> f32 {
    _mm512_reduce_add_ps(v)
}

/// `R` f16 rows against `T` f32 rows of `n` values (a multiple of 8).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn f16_tile<const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [*const f32; T],
    n: usize,
) -> [[f32; R]; T] {
    let mut acc = [[_mm512_setzero_ps(); R]; T];
    // The rows of a matrix are contiguous, so the next call's rows follow `w[R - 1]`: each row
    // prefetches the same position `R` rows further on. (A fixed 4 KB ahead landed inside the
    // current quad when a row is 4 KB — 2048 f16 columns — and so prefetched nothing new: 1.1B
    // F16 tg, 2 threads, same run: 4 KB ahead 7.3–8.7 tokens/s, one quad ahead 10.5–11.8, one
    // quad ahead into L2 only 9.6–10.3.)
    let ahead = (w[R - 1] as usize)
        .wrapping_sub(w[0] as usize)
        .wrapping_add(2 * n);
    let mut k = 0;
    while k + 16 <= n {
        if T == 1 && k % 32 == 0 {
            // one activation row (generation): stream the weight rows ahead, a line each
            for p in w {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(2 * k + ahead) as *const i8);
            }
        }
        let wv: [__m512; R] = std::array::from_fn(|r| {
            _mm512_cvtph_ps(_mm256_loadu_si256(w[r].add(2 * k) as *const __m256i))
        });
        for t in 0..T {
            let xv = _mm512_loadu_ps(x[t].add(k));
            for r in 0..R {
                acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
            }
        }
        k += 16;
    }
    if k < n {
        // eight values left: masked loads of the low halves
        let wv: [__m512; R] = std::array::from_fn(|r| {
            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                0xff,
                w[r].add(2 * k) as *const i16,
            ))
        });
        for t in 0..T {
            let xv = _mm512_maskz_loadu_ps(0xff, x[t].add(k));
            for r in 0..R {
                acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
            }
        }
    }
    let mut out = [[0f32; R]; T];
    if R * T == 16 {
        // 16 sums at once: 45 shuffles and adds instead of 16 separate reductions (about 128);
        // attention scores (four keys × four queries of 64 values) spent most of their time here.
        let flat: [__m512; 16] = std::array::from_fn(|i| acc[i / R][i % R]);
        let sums = hsum512x16(flat);
        for t in 0..T {
            for r in 0..R {
                out[t][r] = sums[t * R + r];
            }
        }
        return out;
    }
    for t in 0..T {
        for r in 0..R {
            out[t][r] = hsum512(acc[t][r]);
        }
    }
    out
}

/// The sums of the 16 lanes of each of `a[0..16]`, in order. Three stages, each halving the
/// values per sum: 512-bit halves (`a[2i]`, `a[2i + 1]` share a register), 128-bit quarters (four
/// inputs' quarters per register), then the four lanes of each quarter (a 4 × 4 transpose
/// with adds), whose result has `a[4k + c]`'s sum in lane `4c + k`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn hsum512x16(a: [__m512; 16]) -> [f32; 16] {
    // v[i]: quarters 0, 1 are partial sums of a[2i], quarters 2, 3 of a[2i + 1]
    let v: [__m512; 8] = std::array::from_fn(|i| {
        let (x, y) = (a[2 * i], a[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(x, y),
            _mm512_shuffle_f32x4::<0xEE>(x, y),
        )
    });
    // w[i]: quarter c is a 4-lane partial sum of a[4i + c]
    let w: [__m512; 4] = std::array::from_fn(|i| {
        let (x, y) = (v[2 * i], v[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(x, y),
            _mm512_shuffle_f32x4::<0xDD>(x, y),
        )
    });
    let pair =
        |x: __m512, y: __m512| _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y));
    let (s01, s23) = (pair(w[0], w[1]), pair(w[2], w[3]));
    let r = _mm512_add_ps(
        _mm512_shuffle_ps::<0x44>(s01, s23),
        _mm512_shuffle_ps::<0xEE>(s01, s23),
    );
    // lane 4c + k holds a[4k + c]: transpose the 4 × 4 lane index
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    std::mem::transmute::<__m512, [f32; 16]>(_mm512_permutexvar_ps(idx, r))
}

/// `out[t][r]` = f16 row `w[r]` · f32 row `x[t]` (see `interleaved::RowsKernel`).
pub(crate) fn f16_rows(w: &[&[u8]], x: &[&[f32]], n: usize, out: &mut [[f32; 4]; MAX_TOKENS]) {
    assert!(n.is_multiple_of(8) && !w.is_empty() && w.len() <= 4 && x.len() <= MAX_TOKENS);
    assert!(w.iter().all(|r| r.len() >= 2 * n) && x.iter().all(|r| r.len() >= n));
    let wp: [*const u8; 4] = std::array::from_fn(|r| w[r.min(w.len() - 1)].as_ptr());
    // SAFETY: installed only when AVX-512F/BW/VL (and AVX2, FMA, F16C) were detected; lengths
    // checked above (missing rows repeat the last one, whose results are ignored).
    unsafe {
        match x.len() {
            0 => {}
            1 => out[0] = f16_tile::<4, 1>(wp, [x[0].as_ptr()], n)[0],
            2 => {
                let o = f16_tile::<4, 2>(wp, [x[0].as_ptr(), x[1].as_ptr()], n);
                out[..2].copy_from_slice(&o);
            }
            3 => {
                let o = f16_tile::<4, 3>(wp, [x[0].as_ptr(), x[1].as_ptr(), x[2].as_ptr()], n);
                out[..3].copy_from_slice(&o);
            }
            _ => {
                let xp = [x[0].as_ptr(), x[1].as_ptr(), x[2].as_ptr(), x[3].as_ptr()];
                *out = f16_tile::<4, 4>(wp, xp, n);
            }
        }
    }
}

// ---------------------------------------------------------------- f16 GEMM

/// Tokens per micro-kernel call of the AVX-512 GEMM: 32 rows (two registers) × 12 tokens = 24
/// accumulators, 2 panel registers and broadcasts within the 32 zmm registers. Per value of k:
/// 2 panel loads, 12 broadcast loads, 24 FMAs and no conversion.
const NR16: usize = 12;

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn micro_imp<const NT: usize>(panel: *const f32, xp: *const f32, kc: usize, c: &CTile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; NT];
    let (mut p, mut x) = (panel, xp);
    for _ in 0..kc {
        let a0 = _mm512_loadu_ps(p);
        let a1 = _mm512_loadu_ps(p.add(16));
        for (t, acc) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*x.add(t));
            acc[0] = _mm512_fmadd_ps(a0, b, acc[0]);
            acc[1] = _mm512_fmadd_ps(a1, b, acc[1]);
        }
        p = p.add(32);
        x = x.add(NR16);
    }
    let bits = |n: usize| ((1u32 << n.min(16)) - 1) as u16;
    let mask = [bits(c.rows), bits(c.rows.saturating_sub(16))];
    for (t, acc) in acc.iter().enumerate() {
        let o = c.ptr.wrapping_add(t * c.ldc);
        for (h, &v) in acc.iter().enumerate() {
            // masked-off lanes are neither read nor written (no fault past the tile)
            let o = o.wrapping_add(16 * h);
            let mut v = v;
            if c.add {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[h], o));
            }
            _mm512_mask_storeu_ps(o, mask[h], v);
        }
    }
}

/// The AVX-512 GEMM micro-kernel (see `interleaved::MicroKernel`).
unsafe fn micro(panel: &[f32], xp: &[f32], kc: usize, c: &CTile) {
    assert!(panel.len() >= kc * 32 && xp.len() >= kc * NR16 && c.rows <= 32);
    let (p, x) = (panel.as_ptr(), xp.as_ptr());
    match c.tokens {
        0 => {}
        1 => micro_imp::<1>(p, x, kc, c),
        2 => micro_imp::<2>(p, x, kc, c),
        3 => micro_imp::<3>(p, x, kc, c),
        4 => micro_imp::<4>(p, x, kc, c),
        5 => micro_imp::<5>(p, x, kc, c),
        6 => micro_imp::<6>(p, x, kc, c),
        7 => micro_imp::<7>(p, x, kc, c),
        8 => micro_imp::<8>(p, x, kc, c),
        9 => micro_imp::<9>(p, x, kc, c),
        10 => micro_imp::<10>(p, x, kc, c),
        11 => micro_imp::<11>(p, x, kc, c),
        _ => micro_imp::<NR16>(p, x, kc, c),
    }
}

/// The AVX-512 f16 GEMM: 32-row panels, 12 tokens per call. The panels are packed by the AVX2
/// packer (8 × 8 transposes in ymm registers): a packer on zmm registers that stored 4-row pieces
/// after two in-lane shuffle stages measured 0.30 ns per value against 0.17–0.18.
pub(crate) const F16_GEMM: F16Gemm = F16Gemm {
    mr: 32,
    nr: NR16,
    pack: super::avx2_x8::pack_panel::<32>,
    micro,
};
