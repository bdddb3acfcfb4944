//! Dot-product and activation-quantization kernels, chosen once per process.
//!
//! [`scalar`] is the reference. On x86-64, `avx2` is used when the CPU has AVX2, FMA and F16C
//! (checked once with `is_x86_feature_detected!`; the crate is never built with
//! `target-cpu=native`, so a shipped library runs on any x86-64). On aarch64, `neon` (NEON is
//! part of the aarch64 baseline). Setting `FERROLLM_KERNELS=scalar` in the environment before the
//! first call forces the scalar kernels, and `FERROLLM_KERNELS=avx2` the best x86-64 kernels
//! without AVX-512 (for debugging, and to measure on an AVX-512 machine what CPUs without it run).
//!
//! The activation quantizers of every kernel set produce exactly the reference bytes; dot products
//! differ from the scalar ones only by float summation order.

use std::sync::OnceLock;

use crate::quant::blocks::*;
use crate::quant::interleaved::{
    self as il, F16Gemm, GroupKernel, PairKernel, Q8RowsKernel, RowsKernel, TokenKernel,
};

pub mod act;
pub mod scalar;

/// How far ahead (bytes) the one-token x86-64 kernels prefetch the weights they stream (figures
/// from the AVX-512 kernels). Generation reads every weight once per token, so the kernels wait
/// on memory; the hardware prefetchers alone kept 1.1B Q4_0 generation at about 15 GB/s where a
/// vectorised read reaches 24–31 GB/s. Measured on 1.1B Q4_0, 2 threads (tg32): no prefetch
/// 23.7 tok/s, 2 KB ahead 30.0, 4 KB ahead 34.6.
#[cfg(target_arch = "x86_64")]
pub(crate) const PF_BYTES: usize = 4096;
/// Q4_0 reads half the bytes per block of the others, so it runs further ahead of memory: 8 KB
/// ahead gave 40.9 / 42.1 tokens/s where 4 KB gave 35.4 / 38.4 (1.1B Q4_0, 2 threads, same
/// run; prefetching the scales' stream too, or into L2 only, did not help; Q4_K stayed within
/// noise at 8 KB).
#[cfg(target_arch = "x86_64")]
pub(crate) const PF_BYTES_Q4_0: usize = 8192;
/// How far ahead the AVX-512 Q4_0 kernel prefetches into L2: 3 × [`PF_BYTES_Q4_0`] rather than
/// the 2 × of the others. `cargo bench --bench stream -- 2 640 q4_0`, product ÷ read (one matrix
/// / 26 layers), 4 alternations: 16 KB 0.93–0.98 / 0.93–0.96, 24 KB 0.96–0.98 / 0.98–1.00, 32 KB
/// 0.94–1.01 / 0.94–1.02; and again, 16 KB against 24 KB, 0.94–0.96 / 0.92–0.97 against
/// 0.95–1.02 / 0.92–0.99. Not for the AVX2 Q4_0 kernel (0.89–0.98 either way), nor Q4_K and Q8_0
/// (Q4_K 0.94–1.02 at 2 ×, 0.93–0.99 at 3 ×; Q8_0 1.01–1.08 both).
#[cfg(target_arch = "x86_64")]
pub(crate) const PF_L2_BYTES_Q4_0: usize = 3 * PF_BYTES_Q4_0;

/// Prefetches the `lines` cache lines from `p + ahead` into L1 (default [`PF_BYTES`]), and the
/// same lines from `p + ahead_l2` (default `2 ahead`) into L2 (hints: never fault, even past the
/// end of the group).
/// The L2 requests keep more misses in flight than L1's fill buffers allow: benches/stream Q4_0
/// product ÷ read 0.90 → 0.96 (3 runs); 1.1B tg, 2 threads, medians of 3–4 alternations: AVX-512
/// Q4_0 41.6 → 44.4 and Q4_K 44.6 → 46.3 tok/s, AVX2 Q4_0 38.2 → 46.8 and Q4_K 35.8 → 43.3.
#[cfg(target_arch = "x86_64")]
macro_rules! prefetch_ahead {
    ($p:expr, $lines:expr) => {
        prefetch_ahead!($p, $lines, PF_BYTES)
    };
    ($p:expr, $lines:expr, $ahead:expr) => {
        prefetch_ahead!($p, $lines, $ahead, 2 * $ahead)
    };
    ($p:expr, $lines:expr, $ahead:expr, $ahead_l2:expr) => {
        for l in 0..$lines {
            _mm_prefetch::<_MM_HINT_T0>($p.wrapping_add($ahead + 64 * l) as *const i8);
            _mm_prefetch::<_MM_HINT_T1>($p.wrapping_add($ahead_l2 + 64 * l) as *const i8);
        }
    };
}

/// `pub(crate) fn $name(group, nb, acts, out)`, a [`GroupKernel`], from a kernel generic over the
/// number of activation rows: `by_tokens!(name, imp)` for `imp::<NT>(group, nb, acts, out)`, and
/// `by_tokens!(name, imp, grouped)` for one over `G` groups, `imp::<NT, 1>([group], nb, acts,
/// [out])` (see [`by_pairs`]); `by_tokens!(name, imp, pair)` makes a [`PairKernel`] from the same,
/// `imp::<NT, 2>`.
#[cfg(target_arch = "x86_64")]
macro_rules! by_tokens {
    ($name:ident, $imp:ident, pair) => {
        pub(crate) fn $name(groups: [&[u8]; 2], nb: usize, acts: &[ActRow<'_>], out: &mut [Tile; 2]) {
            // SAFETY: as above.
            unsafe {
                match acts.len() {
                    0 => {}
                    1 => $imp::<1, 2>(groups, nb, acts, out),
                    2 => $imp::<2, 2>(groups, nb, acts, out),
                    3 => $imp::<3, 2>(groups, nb, acts, out),
                    _ => $imp::<MAX_TOKENS, 2>(groups, nb, &acts[..MAX_TOKENS], out),
                }
            }
        }
    };
    ($name:ident, $imp:ident $(, $grouped:ident)?) => {
        pub(crate) fn $name(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
            // SAFETY: installed only after the build's features were detected; the group and
            // activation lengths are the caller's (`debug_assert` inside).
            unsafe {
                match acts.len() {
                    0 => {}
                    1 => by_tokens!(@call $imp, 1, group, nb, acts, out $(, $grouped)?),
                    2 => by_tokens!(@call $imp, 2, group, nb, acts, out $(, $grouped)?),
                    3 => by_tokens!(@call $imp, 3, group, nb, acts, out $(, $grouped)?),
                    _ => by_tokens!(@call $imp, MAX_TOKENS, group, nb, &acts[..MAX_TOKENS], out
                                    $(, $grouped)?),
                }
            }
        }
    };
    (@call $imp:ident, $nt:expr, $g:ident, $nb:ident, $a:expr, $o:ident) => {
        $imp::<$nt>($g, $nb, $a, $o)
    };
    (@call $imp:ident, $nt:expr, $g:ident, $nb:ident, $a:expr, $o:ident, grouped) => {
        $imp::<$nt, 1>([$g], $nb, $a, std::slice::from_mut($o))
    };
}

/// `pub(crate) fn $name`, a [`TokenKernel`] over groups of `$width` rows of at least
/// `$bytes(nb)` bytes, from a kernel generic over tokens and groups: `imp::<1, 2>` on each pair
/// of groups, `imp::<1, 1>` on a lone last one.
#[cfg(target_arch = "x86_64")]
macro_rules! by_pairs {
    ($name:ident, $imp:ident, $width:expr, $bytes:expr) => {
        pub(crate) fn $name(
            groups: &[u8],
            stride: usize,
            nb: usize,
            act: &ActRow<'_>,
            out: &mut [f32],
        ) {
            assert!(stride >= $bytes(nb) && act.qs.len() >= 32 * nb);
            assert!(act.d.len() >= nb && act.sum.len() >= nb);
            let acts = std::slice::from_ref(act);
            in_pairs(groups, stride, $width, out, |g, tiles| {
                // SAFETY: installed only after the build's features were detected; `in_pairs`
                // hands out groups of `stride` bytes, and the activation was checked above.
                unsafe {
                    match *g {
                        [a, b] => $imp::<1, 2>([a, b], nb, acts, tiles),
                        [a] => $imp::<1, 1>([a], nb, acts, tiles),
                        _ => unreachable!("one or two groups at a time"),
                    }
                }
            });
        }
    };
}

/// Asks the CPU to start loading the cache lines of `p..p + bytes` into L1 (with write intent if
/// `write`). A hint: it never faults, and does nothing off x86-64.
#[inline]
pub(crate) fn prefetch(p: *const u8, bytes: usize, write: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
        let off = p as usize & 63;
        let base = p.wrapping_sub(off);
        for line in 0..(off + bytes).div_ceil(64) * (bytes > 0) as usize {
            let at = base.wrapping_add(64 * line) as *const i8;
            // SAFETY: prefetches never fault, whatever the address.
            unsafe {
                if write {
                    _mm_prefetch::<_MM_HINT_ET0>(at)
                } else {
                    _mm_prefetch::<_MM_HINT_T0>(at)
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes, write);
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_x8;
#[cfg(target_arch = "x86_64")]
mod avx512_x16;
#[cfg(target_arch = "x86_64")]
mod q8_rows;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
mod neon_x8;

/// One set of kernels. Every function pointer here is safe to call on the running CPU: a SIMD set
/// is only constructed after its features were detected.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub name: &'static str,
    pub dot_f32: fn(&[u8], &[u8]) -> f32,
    pub dot_f16: fn(&[u8], &[u8]) -> f32,
    pub dot_bf16: fn(&[u8], &[u8]) -> f32,
    pub dot_q4_0: fn(&[BlockQ4_0], &[BlockQ8_0]) -> f32,
    pub dot_q4_1: fn(&[BlockQ4_1], &[BlockQ8_1]) -> f32,
    pub dot_q5_0: fn(&[BlockQ5_0], &[BlockQ8_0]) -> f32,
    pub dot_q5_1: fn(&[BlockQ5_1], &[BlockQ8_1]) -> f32,
    pub dot_q8_0: fn(&[BlockQ8_0], &[BlockQ8_0]) -> f32,
    pub dot_q2_k: fn(&[BlockQ2K], &[BlockQ8K]) -> f32,
    pub dot_q3_k: fn(&[BlockQ3K], &[BlockQ8K]) -> f32,
    pub dot_q4_k: fn(&[BlockQ4K], &[BlockQ8K]) -> f32,
    pub dot_q5_k: fn(&[BlockQ5K], &[BlockQ8K]) -> f32,
    pub dot_q6_k: fn(&[BlockQ6K], &[BlockQ8K]) -> f32,
    pub quantize_q8_0: fn(&[f32], &mut [BlockQ8_0]),
    pub quantize_q8_1: fn(&[f32], &mut [BlockQ8_1]),
    pub quantize_q8_k: fn(&[f32], &mut [BlockQ8K]),
    /// The matrix kernels' build (`"scalar"`, `"avx2"`, `"avxvnni"`, `"avx512vnni-256"`, `"neon"`).
    pub matrix_name: &'static str,
    /// Rows per interleaved group the kernels below expect (8 or 16).
    pub group_width: usize,
    pub q4_0x8: GroupKernel,
    pub q8_0x8: GroupKernel,
    pub q4_kx8: GroupKernel,
    /// The one-token kernel of the Q4_0 layout (generation), where the build has one. (Q4_K's
    /// group kernel already reads as fast as a plain read; walking its groups in pairs did not
    /// help: docs/BENCHMARKS.md, ninth session.)
    pub q4_0_token: Option<TokenKernel>,
    /// The pair kernels of the interleaved layouts (prompt batches), where the build has them.
    pub q4_0_pair: Option<PairKernel>,
    pub q8_0_pair: Option<PairKernel>,
    pub q4_k_pair: Option<PairKernel>,
    pub f16_rows: RowsKernel,
    /// Q8_0 rows as stored against a few activation rows, where a SIMD build exists: Q8_0
    /// matrices are then not repacked at load (see `q8_rows.rs`).
    pub q8_0_rows: Option<Q8RowsKernel>,
    /// The f16 GEMM for batches of tokens (None: `f16_rows` serves them).
    pub f16_gemm: Option<F16Gemm>,
    /// `up[i] *= silu(gate[i])` (see [`act`]).
    pub silu_mul: act::SiluMul,
    /// `x[i] = exp(x[i] − max)` and their sum, for the softmax (see [`act`]).
    pub exp_shift: act::ExpShift,
}

impl Kernels {
    pub(crate) const SCALAR: Kernels = Kernels {
        name: "scalar",
        dot_f32: scalar::dot_f32,
        dot_f16: scalar::dot_f16,
        dot_bf16: scalar::dot_bf16,
        dot_q4_0: scalar::dot_q4_0_q8_0,
        dot_q4_1: scalar::dot_q4_1_q8_1,
        dot_q5_0: scalar::dot_q5_0_q8_0,
        dot_q5_1: scalar::dot_q5_1_q8_1,
        dot_q8_0: scalar::dot_q8_0_q8_0,
        dot_q2_k: scalar::dot_q2_k_q8_k,
        dot_q3_k: scalar::dot_q3_k_q8_k,
        dot_q4_k: scalar::dot_q4_k_q8_k,
        dot_q5_k: scalar::dot_q5_k_q8_k,
        dot_q6_k: scalar::dot_q6_k_q8_k,
        quantize_q8_0: <BlockQ8_0 as BlockFormat>::from_float,
        quantize_q8_1: <BlockQ8_1 as BlockFormat>::from_float,
        quantize_q8_k: <BlockQ8K as BlockFormat>::from_float,
        matrix_name: "scalar",
        group_width: 8,
        q4_0x8: il::q4_0_scalar::<8>,
        q8_0x8: il::q8_0_scalar::<8>,
        q4_kx8: il::q4_k_scalar::<8>,
        q4_0_token: None,
        q4_0_pair: None,
        q8_0_pair: None,
        q4_k_pair: None,
        f16_rows: il::f16_rows_scalar,
        q8_0_rows: None,
        f16_gemm: None,
        silu_mul: act::silu_mul_scalar,
        exp_shift: act::exp_shift_scalar,
    };

    /// The best kernel set this CPU supports (ignoring `FERROLLM_KERNELS`), without the
    /// AVX-512 ones unless `avx512`.
    pub(crate) fn detect(avx512: bool) -> Kernels {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(mut k) = avx2::kernels() {
                avx2_x8::install(&mut k, avx512);
                if avx512 && is_x86_feature_detected!("avx512f") {
                    k.silu_mul = act::x86::silu_mul_avx512;
                    k.exp_shift = act::x86::exp_shift_avx512;
                } else {
                    k.silu_mul = act::x86::silu_mul_avx2;
                    k.exp_shift = act::x86::exp_shift_avx2;
                }
                return k;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            let _ = avx512; // no AVX-512 to leave out here
            let mut k = neon::kernels();
            neon_x8::install(&mut k);
            k.silu_mul = act::arm::silu_mul_neon;
            k.exp_shift = act::arm::exp_shift_neon;
            return k;
        }
        #[allow(unreachable_code)]
        {
            let _ = avx512;
            Kernels::SCALAR
        }
    }
}

/// The kernels this process uses (chosen on first use).
pub(crate) fn get() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| match std::env::var("FERROLLM_KERNELS").as_deref() {
        Ok("scalar") => Kernels::SCALAR,
        Ok("avx2") => Kernels::detect(false),
        _ => Kernels::detect(true),
    })
}

#[cfg(test)]
mod tests;

/// One build of the matrix kernels, for tests.
#[cfg(test)]
pub(crate) struct MatrixBuild {
    pub name: &'static str,
    pub width: usize,
    /// Q4_0, Q8_0, Q4_K.
    pub group: [GroupKernel; 3],
    /// Q4_0, Q8_0, Q4_K, where the build has them.
    pub token: [Option<TokenKernel>; 3],
    /// Q4_0, Q8_0, Q4_K, where the build has them.
    pub pair: [Option<PairKernel>; 3],
    pub f16_rows: RowsKernel,
    pub q8_0_rows: Q8RowsKernel,
    pub f16_gemm: Option<F16Gemm>,
}

/// Every build of the matrix kernels this CPU can run (the scalar ones first), for tests.
#[cfg(test)]
pub(crate) fn matrix_builds() -> Vec<MatrixBuild> {
    let s = Kernels::SCALAR;
    #[allow(unused_mut)]
    let mut v = vec![MatrixBuild {
        name: "scalar",
        width: 8,
        group: [s.q4_0x8, s.q8_0x8, s.q4_kx8],
        token: [None; 3],
        pair: [None; 3],
        f16_rows: s.f16_rows,
        q8_0_rows: il::q8_0_rows_scalar,
        f16_gemm: None,
    }];
    #[cfg(target_arch = "x86_64")]
    v.extend(avx2_x8::all_builds());
    #[cfg(target_arch = "aarch64")]
    {
        let best = Kernels::detect(true);
        v.push(MatrixBuild {
            name: "neon",
            width: best.group_width,
            group: [best.q4_0x8, best.q8_0x8, best.q4_kx8],
            token: [best.q4_0_token, None, None],
            pair: [best.q4_0_pair, best.q8_0_pair, best.q4_k_pair],
            f16_rows: best.f16_rows,
            q8_0_rows: il::q8_0_rows_scalar,
            f16_gemm: best.f16_gemm,
        });
    }
    v
}
