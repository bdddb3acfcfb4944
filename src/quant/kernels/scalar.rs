//! Scalar dot-product kernels: the reference the SIMD kernels are tested against.
//!
//! They follow ggml's portable kernels (`ggml/src/ggml-cpu/quants.c`, `ggml_vec_dot_*_generic`):
//! integer sums per block, then one f32 multiply-add per block in ggml's order (for Q3_K…Q6_K, ggml's
//! eight f32 lanes `sums[l] += d * aux32[l]`, summed at the end). Float rows (F32/F16/BF16 weights
//! against f32 activations) accumulate each f32 product in f64, as ggml's `ggml_vec_dot_f32`/`_f16`
//! scalar code does.

// Index loops mirror ggml's index arithmetic.
#![allow(clippy::needless_range_loop)]

use crate::quant::blocks::*;
use crate::quant::k_quants::{get_scale_min_k4, q3k_scales};
use crate::quant::simple::unpack_q5;

#[inline]
fn f32_at(bytes: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([
        bytes[4 * i],
        bytes[4 * i + 1],
        bytes[4 * i + 2],
        bytes[4 * i + 3],
    ])
}

/// Σ w·a over f32 rows given as little-endian bytes.
pub fn dot_f32(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (x, y) in w.chunks_exact(4).zip(a.chunks_exact(4)) {
        let x = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
        let y = f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        sum += (x * y) as f64;
    }
    sum as f32
}

/// Σ w·a with f16 weights and f32 activations.
pub fn dot_f16(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (i, x) in w.chunks_exact(2).enumerate() {
        let x = Half([x[0], x[1]]).to_f32();
        sum += (x * f32_at(a, i)) as f64;
    }
    sum as f32
}

/// Σ w·a with bf16 weights and f32 activations.
pub fn dot_bf16(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (i, x) in w.chunks_exact(2).enumerate() {
        let x = crate::quant::float16::bf16_to_f32(u16::from_le_bytes([x[0], x[1]]));
        sum += (x * f32_at(a, i)) as f64;
    }
    sum as f32
}

pub fn dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let v0 = (x.qs[j] & 0x0f) as i32 - 8;
            let v1 = (x.qs[j] >> 4) as i32 - 8;
            sumi += v0 * y.qs[j] as i32 + v1 * y.qs[j + QK / 2] as i32;
        }
        sumf += sumi as f32 * x.d.to_f32() * y.d.to_f32();
    }
    sumf
}

pub fn dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let v0 = (x.qs[j] & 0x0f) as i32;
            let v1 = (x.qs[j] >> 4) as i32;
            sumi += v0 * y.qs[j] as i32 + v1 * y.qs[j + QK / 2] as i32;
        }
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32();
    }
    sumf
}

pub fn dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = unpack_q5(&x.qs, &x.qh);
        let sumi: i32 = q
            .iter()
            .zip(&y.qs)
            .map(|(&q, &a)| (q as i32 - 16) * a as i32)
            .sum();
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32;
    }
    sumf
}

pub fn dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let q = unpack_q5(&x.qs, &x.qh);
        let sumi: i32 = q
            .iter()
            .zip(&y.qs)
            .map(|(&q, &a)| q as i32 * a as i32)
            .sum();
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32();
    }
    sumf
}

pub fn dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
        sumf += sumi as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sumf
}

pub fn dot_q2_k_q8_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let summs: i32 = (0..16)
            .map(|j| y.bsums[j].get() as i32 * (x.scales[j] >> 4) as i32)
            .sum();
        let dall = y.d.get() * x.d.to_f32();
        let dmin = y.d.get() * x.dmin.to_f32();
        let mut isum = 0i32;
        // values 128*h + 32*s + 16*k + l: bits 2*s of qs[32*h + 16*k + l], scale 8*h + 2*s + k
        for h in 0..2 {
            for s in 0..4 {
                for k in 0..2 {
                    let q2 = &x.qs[32 * h + 16 * k..32 * h + 16 * k + 16];
                    let q8 = &y.qs[128 * h + 32 * s + 16 * k..128 * h + 32 * s + 16 * k + 16];
                    let isuml: i32 = q2
                        .iter()
                        .zip(q8)
                        .map(|(&q, &a)| ((q >> (2 * s)) & 3) as i32 * a as i32)
                        .sum();
                    isum += (x.scales[8 * h + 2 * s + k] & 0x0f) as i32 * isuml;
                }
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// ggml's eight-lane accumulation of the Q3_K…Q6_K generic kernels: with the block's values
/// unpacked to `levels`, `aux32[l]` collects, for every value whose index is `l` modulo 8, its
/// product with the activation times its sub-block scale (`scale(i / 16)` for 16-value groups).
#[inline]
fn lane_sums(levels: &[i8; QK_K], q8: &[i8; QK_K], scale: impl Fn(usize) -> i32) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for (g, (a, b)) in levels.chunks_exact(16).zip(q8.chunks_exact(16)).enumerate() {
        let sc = scale(g);
        for half in 0..2 {
            for l in 0..8 {
                aux32[l] += sc * (a[8 * half + l] as i32 * b[8 * half + l] as i32);
            }
        }
    }
    aux32
}

#[inline]
fn add_lanes(sums: &mut [f32; 8], d: f32, aux32: &[i32; 8]) {
    for l in 0..8 {
        sums[l] += d * aux32[l] as f32;
    }
}

pub fn dot_q3_k_q8_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in x.iter().zip(y) {
        let mut levels = [0i8; QK_K];
        // value 128*h + 32*s + m: bits 2*s of qs[32*h + m], high bit 4*h + s of hmask[m]
        for (g, out) in levels.chunks_exact_mut(32).enumerate() {
            let (h, s) = (g / 4, g % 4);
            let (q3, bit) = (&x.qs[32 * h..32 * h + 32], 1u8 << g);
            for m in 0..32 {
                let q = ((q3[m] >> (2 * s)) & 3) as i8;
                out[m] = q - if x.hmask[m] & bit != 0 { 0 } else { 4 };
            }
        }
        let sc = q3k_scales(&x.scales);
        let aux32 = lane_sums(&levels, &y.qs, |g| sc[g] as i32 - 32);
        add_lanes(&mut sums, x.d.to_f32() * y.d.get(), &aux32);
    }
    sums.iter().fold(0.0f32, |acc, &s| acc + s)
}

/// Shared by Q4_K/Q5_K once their levels are unpacked.
#[inline]
fn dot_qk_asym(
    scales: &[u8; 12],
    d: f32,
    dmin: f32,
    levels: &[i8; QK_K],
    y: &BlockQ8K,
    sums: &mut [f32; 8],
    sumf: &mut f32,
) {
    let mut sc = [0i32; 8];
    let mut mins = [0i32; 8];
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, scales);
        sc[j] = s as i32;
        mins[j] = m as i32;
    }
    let sumi: i32 = (0..16).map(|j| y.bsums[j].get() as i32 * mins[j / 2]).sum();
    let aux32 = lane_sums(levels, &y.qs, |g| sc[g / 2]);
    add_lanes(sums, d * y.d.get(), &aux32);
    *sumf -= dmin * y.d.get() * sumi as f32;
}

pub fn dot_q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut levels = [0i8; QK_K];
        for (c, out) in levels.chunks_exact_mut(64).enumerate() {
            let q = &x.qs[32 * c..32 * c + 32];
            for l in 0..32 {
                out[l] = (q[l] & 0x0f) as i8;
                out[l + 32] = (q[l] >> 4) as i8;
            }
        }
        dot_qk_asym(
            &x.scales,
            x.d.to_f32(),
            x.dmin.to_f32(),
            &levels,
            y,
            &mut sums,
            &mut sumf,
        );
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}

pub fn dot_q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (x, y) in x.iter().zip(y) {
        let mut levels = [0i8; QK_K];
        for (c, out) in levels.chunks_exact_mut(64).enumerate() {
            let q = &x.qs[32 * c..32 * c + 32];
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for l in 0..32 {
                out[l] = ((q[l] & 0x0f) + if x.qh[l] & u1 != 0 { 16 } else { 0 }) as i8;
                out[l + 32] = ((q[l] >> 4) + if x.qh[l] & u2 != 0 { 16 } else { 0 }) as i8;
            }
        }
        dot_qk_asym(
            &x.scales,
            x.d.to_f32(),
            x.dmin.to_f32(),
            &levels,
            y,
            &mut sums,
            &mut sumf,
        );
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}

pub fn dot_q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in x.iter().zip(y) {
        let mut levels = [0i8; QK_K];
        for h in 0..2 {
            let (ql, qh) = (&x.ql[64 * h..64 * h + 64], &x.qh[32 * h..32 * h + 32]);
            let out = &mut levels[128 * h..128 * h + 128];
            for l in 0..32 {
                out[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
                out[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                out[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        let aux32 = lane_sums(&levels, &y.qs, |g| x.scales[g] as i32);
        add_lanes(&mut sums, x.d.to_f32() * y.d.get(), &aux32);
    }
    sums.iter().fold(0.0f32, |acc, &s| acc + s)
}
