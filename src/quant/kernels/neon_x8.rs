//! NEON kernels of the interleaved layouts (8-row groups) and the f16 row kernels.
//!
//! Baseline NEON only (no `dotprod`): a 16-byte half of a 32-byte chunk holds four bytes of each of
//! four rows; `vmull_s8` multiplies them with the broadcast activation bytes exactly into 16 bits,
//! `vpadalq_s16` adds pairs into 32-bit lanes (two lanes per row), and one `vpaddq_s32` per block
//! finishes each row's sum. Weight codes are 0..=15 (Q4_0, Q4_K) or signed bytes (Q8_0), so no
//! flipping is needed, and like the other NEON kernels any activation byte is accepted.

// Index loops mirror the block layouts; pointer arithmetic stays within the blocks it is given.
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;

use super::neon::f16x4_to_f32;
use super::Kernels;
use crate::quant::interleaved::{ActRow, Q4kSuper, Tile, MAX_TOKENS, Q4K_SUPER};

pub(super) fn install(k: &mut Kernels) {
    k.q4_0x8 = q4_0x8;
    k.q8_0x8 = q8_0x8;
    k.q4_kx8 = q4_kx8;
    k.group_width = 8;
    k.matrix_name = "neon";
    k.f16_rows = f16_rows;
}

/// The four activation bytes at `p` repeated over 16 bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn bcast4(p: *const i8) -> int8x16_t {
    vreinterpretq_s8_u32(vdupq_n_u32(std::ptr::read_unaligned(p as *const u32)))
}

/// Row sums of one 32-value group chunk set: `w[j]` are eight chunk pairs `(rows 0-3, rows 4-7)`
/// of signed bytes for values `4 j .. 4 j + 4`, `a` the 32 activation bytes; returns the sums of
/// rows 0-3 and 4-7.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn sum8(w: &[(int8x16_t, int8x16_t); 8], a: *const i8) -> (int32x4_t, int32x4_t) {
    let (mut p01, mut p23) = (vdupq_n_s32(0), vdupq_n_s32(0));
    let (mut p45, mut p67) = (vdupq_n_s32(0), vdupq_n_s32(0));
    for j in 0..8 {
        let y = bcast4(a.add(4 * j));
        let (lo, hi) = w[j];
        p01 = vpadalq_s16(p01, vmull_s8(vget_low_s8(lo), vget_low_s8(y)));
        p23 = vpadalq_s16(p23, vmull_high_s8(lo, y));
        p45 = vpadalq_s16(p45, vmull_s8(vget_low_s8(hi), vget_low_s8(y)));
        p67 = vpadalq_s16(p67, vmull_high_s8(hi, y));
    }
    (vpaddq_s32(p01, p23), vpaddq_s32(p45, p67))
}

/// The eight f16 scales at `p` as two f32 vectors (rows 0-3, 4-7).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn scales8(p: *const u8) -> (float32x4_t, float32x4_t) {
    let h = vld1q_u16(p as *const u16);
    (
        f16x4_to_f32(vget_low_u16(h)),
        f16x4_to_f32(vget_high_u16(h)),
    )
}

#[target_feature(enable = "neon")]
unsafe fn q4_0_imp(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    assert!(group.len() >= nb * 144 && acts.len() <= MAX_TOKENS);
    let qs = group.as_ptr();
    let d = qs.add(nb * 128);
    let m4 = vdupq_n_u8(15);
    let mut acc = [(vdupq_n_f32(0.0), vdupq_n_f32(0.0)); MAX_TOKENS];
    for b in 0..nb {
        let p = qs.add(b * 128);
        let mut w = [(vdupq_n_s8(0), vdupq_n_s8(0)); 8];
        for j in 0..4 {
            let v0 = vld1q_u8(p.add(32 * j));
            let v1 = vld1q_u8(p.add(32 * j + 16));
            w[j] = (
                vreinterpretq_s8_u8(vandq_u8(v0, m4)),
                vreinterpretq_s8_u8(vandq_u8(v1, m4)),
            );
            w[j + 4] = (
                vreinterpretq_s8_u8(vshrq_n_u8::<4>(v0)),
                vreinterpretq_s8_u8(vshrq_n_u8::<4>(v1)),
            );
        }
        let (dlo, dhi) = scales8(d.add(16 * b));
        for (t, a) in acts.iter().enumerate() {
            let (s0, s1) = sum8(&w, a.qs.as_ptr().add(32 * b));
            let corr = vdupq_n_s32(8 * a.sum[b]);
            let da = a.d[b];
            acc[t].0 = vfmaq_f32(
                acc[t].0,
                vcvtq_f32_s32(vsubq_s32(s0, corr)),
                vmulq_n_f32(dlo, da),
            );
            acc[t].1 = vfmaq_f32(
                acc[t].1,
                vcvtq_f32_s32(vsubq_s32(s1, corr)),
                vmulq_n_f32(dhi, da),
            );
        }
    }
    for t in 0..acts.len() {
        vst1q_f32(out[t].as_mut_ptr(), acc[t].0);
        vst1q_f32(out[t].as_mut_ptr().add(4), acc[t].1);
    }
}

#[target_feature(enable = "neon")]
unsafe fn q8_0_imp(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    assert!(group.len() >= nb * 272 && acts.len() <= MAX_TOKENS);
    let qs = group.as_ptr();
    let d = qs.add(nb * 256);
    let mut acc = [(vdupq_n_f32(0.0), vdupq_n_f32(0.0)); MAX_TOKENS];
    for b in 0..nb {
        let p = qs.add(b * 256) as *const i8;
        let mut w = [(vdupq_n_s8(0), vdupq_n_s8(0)); 8];
        for j in 0..8 {
            w[j] = (vld1q_s8(p.add(32 * j)), vld1q_s8(p.add(32 * j + 16)));
        }
        let (dlo, dhi) = scales8(d.add(16 * b));
        for (t, a) in acts.iter().enumerate() {
            let (s0, s1) = sum8(&w, a.qs.as_ptr().add(32 * b));
            let da = a.d[b];
            acc[t].0 = vfmaq_f32(acc[t].0, vcvtq_f32_s32(s0), vmulq_n_f32(dlo, da));
            acc[t].1 = vfmaq_f32(acc[t].1, vcvtq_f32_s32(s1), vmulq_n_f32(dhi, da));
        }
    }
    for t in 0..acts.len() {
        vst1q_f32(out[t].as_mut_ptr(), acc[t].0);
        vst1q_f32(out[t].as_mut_ptr().add(4), acc[t].1);
    }
}

/// Eight bytes at `p` widened to two i32 vectors.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn bytes8(p: *const u8) -> (int32x4_t, int32x4_t) {
    let v = vmovl_u8(vld1_u8(p));
    (
        vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(v))),
        vreinterpretq_s32_u32(vmovl_high_u16(v)),
    )
}

#[target_feature(enable = "neon")]
unsafe fn q4_k_imp(group: &[u8], ns: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    assert!(group.len() >= ns * Q4K_SUPER * 8 && acts.len() <= MAX_TOKENS);
    const O: Q4kSuper = Q4kSuper::new(8);
    let m4 = vdupq_n_u8(15);
    let mut acc = [(vdupq_n_f32(0.0), vdupq_n_f32(0.0)); MAX_TOKENS];
    for s in 0..ns {
        let sb = group.as_ptr().add(s * Q4K_SUPER * 8);
        let (sc, mn, qs) = (sb.add(O.scales), sb.add(O.mins), sb.add(O.qs));
        let mut isum = [(vdupq_n_s32(0), vdupq_n_s32(0)); MAX_TOKENS];
        for sub in 0..8 {
            let p = qs.add(256 * (sub / 2));
            let mut w = [(vdupq_n_s8(0), vdupq_n_s8(0)); 8];
            for j in 0..8 {
                let v0 = vld1q_u8(p.add(32 * j));
                let v1 = vld1q_u8(p.add(32 * j + 16));
                w[j] = if sub % 2 == 0 {
                    (
                        vreinterpretq_s8_u8(vandq_u8(v0, m4)),
                        vreinterpretq_s8_u8(vandq_u8(v1, m4)),
                    )
                } else {
                    (
                        vreinterpretq_s8_u8(vshrq_n_u8::<4>(v0)),
                        vreinterpretq_s8_u8(vshrq_n_u8::<4>(v1)),
                    )
                };
            }
            let (sc0, sc1) = bytes8(sc.add(8 * sub));
            for (t, a) in acts.iter().enumerate() {
                let (s0, s1) = sum8(&w, a.qs.as_ptr().add(s * 256 + 32 * sub));
                isum[t].0 = vmlaq_s32(isum[t].0, s0, sc0);
                isum[t].1 = vmlaq_s32(isum[t].1, s1, sc1);
            }
        }
        let (dlo, dhi) = scales8(sb.add(O.d));
        let (mlo, mhi) = scales8(sb.add(O.dmin));
        for (t, a) in acts.iter().enumerate() {
            let (mut m0, mut m1) = (vdupq_n_s32(0), vdupq_n_s32(0));
            for sub in 0..8 {
                let (v0, v1) = bytes8(mn.add(8 * sub));
                let bs = a.sum[s * 8 + sub];
                m0 = vmlaq_n_s32(m0, v0, bs);
                m1 = vmlaq_n_s32(m1, v1, bs);
            }
            let da = a.d[s];
            acc[t].0 = vfmaq_f32(acc[t].0, vcvtq_f32_s32(isum[t].0), vmulq_n_f32(dlo, da));
            acc[t].1 = vfmaq_f32(acc[t].1, vcvtq_f32_s32(isum[t].1), vmulq_n_f32(dhi, da));
            acc[t].0 = vfmsq_f32(acc[t].0, vcvtq_f32_s32(m0), vmulq_n_f32(mlo, da));
            acc[t].1 = vfmsq_f32(acc[t].1, vcvtq_f32_s32(m1), vmulq_n_f32(mhi, da));
        }
    }
    for t in 0..acts.len() {
        vst1q_f32(out[t].as_mut_ptr(), acc[t].0);
        vst1q_f32(out[t].as_mut_ptr().add(4), acc[t].1);
    }
}

// Safe wrappers. SAFETY (all): NEON is always present on aarch64; lengths are asserted inside.
fn q4_0x8(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    unsafe { q4_0_imp(group, nb, acts, out) }
}
fn q8_0x8(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    unsafe { q8_0_imp(group, nb, acts, out) }
}
fn q4_kx8(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    unsafe { q4_k_imp(group, nb, acts, out) }
}

/// Up to four f16 rows against up to four f32 rows of `n` values (a multiple of 8).
#[target_feature(enable = "neon")]
unsafe fn f16_rows_imp(w: &[&[u8]], x: &[&[f32]], n: usize, out: &mut [[f32; 4]; MAX_TOKENS]) {
    let (nr, nt) = (w.len(), x.len());
    let mut acc = [[vdupq_n_f32(0.0); 4]; MAX_TOKENS];
    let mut k = 0;
    while k + 4 <= n {
        let mut wv = [vdupq_n_f32(0.0); 4];
        for r in 0..nr {
            wv[r] = f16x4_to_f32(vld1_u16(w[r].as_ptr().add(2 * k) as *const u16));
        }
        for t in 0..nt {
            let xv = vld1q_f32(x[t].as_ptr().add(k));
            for r in 0..nr {
                acc[t][r] = vfmaq_f32(acc[t][r], wv[r], xv);
            }
        }
        k += 4;
    }
    for t in 0..nt {
        for r in 0..nr {
            out[t][r] = vaddvq_f32(acc[t][r]);
        }
    }
}

fn f16_rows(w: &[&[u8]], x: &[&[f32]], n: usize, out: &mut [[f32; 4]; MAX_TOKENS]) {
    assert!(n.is_multiple_of(8) && w.len() <= 4 && x.len() <= MAX_TOKENS);
    assert!(w.iter().all(|r| r.len() >= 2 * n) && x.iter().all(|r| r.len() >= n));
    // SAFETY: NEON is always present on aarch64; lengths checked above.
    unsafe { f16_rows_imp(w, x, n, out) }
}
