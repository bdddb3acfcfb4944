//! Q8_0 weights in ggml's row layout against a few Q8_0 activation rows (x86-64): the kernel of
//! generation for Q8_0 matrices, which are then used as stored instead of being repacked at load.
//!
//! Why: repacking a Q8_0 matrix costs as many fresh bytes of memory as the matrix (1.1 GB for the
//! 1.1B model), and first-touching fresh memory is slow (on this machine's VM 0.13–1.4 s per GB),
//! which made loading the 1.1B Q8_0 file twice as slow as llama.cpp. Generation reads every weight
//! once per token, so its speed is the memory's, not the layout's, provided the kernel keeps up
//! with memory and prefetches: this one dots four rows at once, each 34-byte block (f16 scale, 32
//! signed bytes) with one 256-bit byte dot product per activation row, accumulating `W` float
//! lanes per (row, token) and reducing them only at the end. Prompt batches still use the
//! interleaved layout (packed on first use, see `model::matmul`), where one unpacked weight block
//! serves several tokens.
//!
//! Signed × signed bytes: `|w|` (unsigned, at most 128) times `a` with `w`'s sign moved onto it
//! (`vpsignb`), as ggml's AVX2 kernel does; activation quants are in −127..=127, so the
//! `maddubs` pairs (at most 2 · 128 · 127 = 32512) do not saturate. Two builds: plain AVX2
//! (`maddubs` + `madd`) and AVX-512 VNNI on 256-bit registers (`vpdpbusd`).

use std::arch::x86_64::*;

use crate::quant::interleaved::{ActRow, MAX_TOKENS};

/// Bytes of a Q8_0 block: the f16 scale, then 32 quants.
const BLOCK: usize = 34;

macro_rules! rows_build {
    ($feat:literal, $mode:ident) => {
        use super::*;

        /// Σ over the 32 bytes of `|w| · sign(w)·a`, as eight i32 lanes.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn dot32(w: __m256i, a: __m256i) -> __m256i {
            let aw = _mm256_sign_epi8(w, w);
            let sa = _mm256_sign_epi8(a, w);
            rows_build!(@dot $mode, aw, sa)
        }

        /// `R` rows × `T` tokens over `nb` blocks.
        #[target_feature(enable = $feat)]
        unsafe fn tile<const R: usize, const T: usize>(
            w: [*const u8; R],
            acts: &[ActRow<'_>],
            nb: usize,
            out: &mut [[f32; 4]; MAX_TOKENS],
        ) {
            let mut acc = [[_mm256_setzero_ps(); R]; T];
            // A matrix's rows are contiguous, so the next call's rows follow `w[R - 1]`: each row
            // prefetches the same block of the row `R` rows further on, into L2 (four streams that
            // far ahead would crowd L1). Measured on 1.1B Q8_0, 2 threads, tg (tokens/s, same
            // run): 4 KB ahead in each row 13 (interleaved kernel 18–20); one quad ahead into L1
            // 23.0–25.4, half a quad 17.6–19.7, one quad into L2 24.9–28.0 (interleaved 27.1–27.5).
            let ahead = (w[R - 1] as usize - w[0] as usize) + nb * BLOCK;
            for b in 0..nb {
                let at = b * BLOCK;
                let av: [__m256i; T] = std::array::from_fn(|t| {
                    _mm256_loadu_si256(acts[t].qs.as_ptr().add(32 * b) as *const __m256i)
                });
                let da: [__m256; T] =
                    std::array::from_fn(|t| _mm256_set1_ps(*acts[t].d.get_unchecked(b)));
                for r in 0..R {
                    let p = w[r].add(at);
                    _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(ahead) as *const i8);
                    let h = std::ptr::read_unaligned(p as *const i16);
                    let dw = _mm256_cvtph_ps(_mm_set1_epi16(h));
                    let wv = _mm256_loadu_si256(p.add(2) as *const __m256i);
                    for t in 0..T {
                        let s = _mm256_cvtepi32_ps(dot32(wv, av[t]));
                        acc[t][r] = _mm256_fmadd_ps(s, _mm256_mul_ps(dw, da[t]), acc[t][r]);
                    }
                }
            }
            for t in 0..T {
                for r in 0..R {
                    out[t][r] = hsum(acc[t][r]);
                }
            }
        }

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }

        /// `out[t][r]` = Q8_0 row `w[r]` · activation `acts[t]` (see `interleaved::Q8RowsKernel`).
        pub(crate) fn q8_0_rows(
            w: &[&[u8]],
            acts: &[ActRow<'_>],
            nb: usize,
            out: &mut [[f32; 4]; MAX_TOKENS],
        ) {
            assert!(!w.is_empty() && w.len() <= 4 && acts.len() <= MAX_TOKENS);
            assert!(w.iter().all(|r| r.len() >= nb * BLOCK));
            assert!(acts.iter().all(|a| a.qs.len() >= 32 * nb && a.d.len() >= nb));
            // Missing rows repeat the last one (their results are ignored).
            let wp: [*const u8; 4] = std::array::from_fn(|r| w[r.min(w.len() - 1)].as_ptr());
            // SAFETY: installed only after the build's features were detected; lengths checked
            // above.
            unsafe {
                match acts.len() {
                    0 => {}
                    1 => tile::<4, 1>(wp, acts, nb, out),
                    2 => tile::<4, 2>(wp, acts, nb, out),
                    3 => tile::<4, 3>(wp, acts, nb, out),
                    _ => tile::<4, 4>(wp, acts, nb, out),
                }
            }
        }
    };
    (@dot plain, $w:expr, $a:expr) => {
        _mm256_madd_epi16(_mm256_maddubs_epi16($w, $a), _mm256_set1_epi16(1))
    };
    (@dot vnni, $w:expr, $a:expr) => {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), $w, $a)
    };
}

pub(crate) mod plain {
    rows_build!("avx2,fma,f16c", plain);
}

pub(crate) mod vnni {
    rows_build!("avx2,fma,f16c,avx512f,avx512vl,avx512vnni", vnni);
}
