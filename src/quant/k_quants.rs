//! The k-quants: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (256-value super-blocks) and the Q8_K activation
//! operand.
//!
//! Facts relied on (ggml `ggml/src/ggml-quants.c`: `quantize_row_q{2..6}_K_ref`, `quantize_row_q8_K_ref`,
//! `make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`, `nearest_int`, `get_scale_min_k4`,
//! `GROUP_MAX_EPS = 1e-15f`, and the `dequantize_row_*` functions):
//! - Q2_K: per 16 values, `make_qkx2_quants(16, nmax 3, weights |x|, rmin -0.5, rdelta 0.1, 15 steps,
//!   mean absolute error)`; scales and mins are requantized to 4 bits against `max/15`, then the
//!   values are requantized with the stored (f16-rounded) scales: `nearest_int((x + dm)/d)`.
//! - Q3_K: per 16 values, `make_q3_quants(16, nmax 4, rmse)`; the scales to 6 bits signed against
//!   `-32/max_scale` (the scale of largest magnitude, first wins), `d = f16(1/iscale)`; values
//!   requantized as `nearest_int(x/d)` clamped to −4..=3.
//! - Q4_K/Q5_K: per 32 values, weights `sqrt(Σx²/32) + |x|`, `make_qkx2_quants(32, 15 or 31, rmin -1
//!   or -0.5, rdelta 0.1, 20 or 15 steps, squared error)`; 6-bit scales and mins against `max/63`.
//! - Q6_K: per 16 values `make_qx_quants(16, nmax 32, rmse_type 1)` (weights x²); 8-bit scales
//!   against `-128/max_scale`; a super-block whose largest scale is below `GROUP_MAX_EPS` is all zero.
//! - Q8_K: `iscale = -127/max` (the value of largest magnitude, first wins), `q = MIN(127,
//!   nearest_int(iscale*x))`, `d = 1/iscale` as f32, and the sums of each 16 `q`s.
//! - Where a sub-block's requantized scale is 0, ggml keeps the levels from the first search; so do we.
//! - Integer → narrower-integer stores wrap (C conversions), and every float expression is evaluated
//!   in source order in f32.

// Index loops mirror the reference's index arithmetic, which keeps the two easy to compare.
#![allow(clippy::needless_range_loop)]

use crate::format::GgmlType;
use crate::quant::blocks::*;
use crate::quant::kernels::scalar;
use crate::quant::math::nearest_int;

const GROUP_MAX_EPS: f32 = 1e-15;

/// `N` elements of `s` from `at`, as an array (fixed sizes let the compiler drop bounds checks).
#[inline(always)]
fn sub<T, const N: usize>(s: &[T], at: usize) -> &[T; N] {
    s[at..at + N].try_into().unwrap()
}

#[inline(always)]
fn sub_mut<T, const N: usize>(s: &mut [T], at: usize) -> &mut [T; N] {
    (&mut s[at..at + N]).try_into().unwrap()
}

/// Q4_K/Q5_K 6-bit scale `j` (0..8) and min from the 12 packed bytes (ggml's `get_scale_min_k4`).
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q3_K's 16 signed scales (still offset by 32) from its 12 packed bytes: scale `j` has its low
/// nibble in byte `j % 8` (low nibble for j < 8, high nibble after) and its top two bits in byte
/// `8 + j % 4` at bit `2 * (j / 4)`.
#[inline]
pub fn q3k_scales(s: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8;
    }
    out
}

/// ggml's `make_qx_quants` for `rmse_type == 1` without importance weights (the only case the
/// reference quantizers use): levels in `L` (offset by `nmax`) and the scale.
fn make_qx_quants_rmse1<const N: usize>(nmax: i32, x: &[f32; N], levels: &mut [i8; N]) -> f32 {
    let (amax, max) = crate::quant::simple::signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (l_out, &xi) in levels.iter_mut().zip(x) {
        let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *l_out = (l + nmax) as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &xi in x {
            let lf = nearest_int(iscale * xi).clamp(-nmax, nmax - 1) as f32;
            let w = xi * xi;
            sumlx += w * xi * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l_out, &xi) in levels.iter_mut().zip(x) {
                let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
                *l_out = (nmax + l) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse` (the reference quantizer's only use): weights x², then up
/// to five passes moving single levels while that lowers the weighted error.
fn make_q3_quants_rmse<const N: usize>(nmax: i32, x: &[f32; N], levels: &mut [i8; N]) -> f32 {
    let (amax, max) = crate::quant::simple::signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (l_out, &xi) in levels.iter_mut().zip(x) {
        let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *l_out = l as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (l_i, &xi) in levels.iter_mut().zip(x) {
            let w = xi * xi;
            let li = *l_i as f32;
            let mut slx = sumlx - w * xi * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(xi * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *l_i as i32 {
                    let nl = new_l as f32;
                    slx += w * xi * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l_i = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for l in levels.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Parameters of ggml's `make_qkx2_quants` search.
struct Qkx2 {
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
}

/// ggml's `make_qkx2_quants`: an asymmetric (scale, min) fit of `x` with levels 0..=nmax, searching
/// `nstep + 1` candidate scales around `nmax / (max - min)` for the least weighted error. Returns
/// `(scale, -min)`; the levels go to `levels`.
fn make_qkx2_quants<const N: usize>(
    p: &Qkx2,
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [u8; N],
) -> (f32, f32) {
    let n = N;
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let nmaxf = p.nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let error = |diff: f32| if p.use_mad { diff.abs() } else { diff * diff };
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
        levels[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * error(diff);
    }
    let mut aux = [0u8; N];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmaxf) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
            aux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * error(diff);
            }
            if cur_error < best_error {
                *levels = aux;
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs 256 2-bit levels as Q2_K/Q3_K do: per 128 values, byte `l` holds values `l`, `l+32`,
/// `l+64`, `l+96` in bits 0-1, 2-3, 4-5, 6-7.
fn pack_2bit(levels: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for (half, q) in qs.chunks_exact_mut(32).enumerate() {
        let j = half * 128;
        for l in 0..32 {
            q[l] = levels[j + l]
                | (levels[j + l + 32] << 2)
                | (levels[j + l + 64] << 4)
                | (levels[j + l + 96] << 6);
        }
    }
}

impl BlockFormat for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const VALUES: usize = QK_K;
    fn zeroed() -> Self {
        BlockQ2K {
            scales: [0; 16],
            qs: [0; 64],
            d: Half::ZERO,
            dmin: Half::ZERO,
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        const Q4SCALE: f32 = 15.0;
        let params = Qkx2 {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            let mut levels = [0u8; QK_K];
            let mut scales = [0.0f32; 16];
            let mut mins = [0.0f32; 16];
            let mut max_scale = 0.0f32;
            let mut max_min = 0.0f32;
            for j in 0..16 {
                let xs: &[f32; 16] = sub(x, 16 * j);
                let mut weights = [0.0f32; 16];
                for (w, &v) in weights.iter_mut().zip(xs) {
                    *w = v.abs();
                }
                let (scale, min) =
                    make_qkx2_quants(&params, xs, &weights, sub_mut(&mut levels, 16 * j));
                scales[j] = scale;
                mins[j] = min;
                if scale > max_scale {
                    max_scale = scale;
                }
                if min > max_min {
                    max_min = min;
                }
            }
            if max_scale > 0.0 {
                let iscale = Q4SCALE / max_scale;
                for j in 0..16 {
                    y.scales[j] = nearest_int(iscale * scales[j]) as u8;
                }
                y.d = Half::from_f32(max_scale / Q4SCALE);
            } else {
                y.scales = [0; 16];
                y.d = Half::from_f32(0.0);
            }
            if max_min > 0.0 {
                let iscale = Q4SCALE / max_min;
                for j in 0..16 {
                    let l = nearest_int(iscale * mins[j]);
                    y.scales[j] |= (l << 4) as u8;
                }
                y.dmin = Half::from_f32(max_min / Q4SCALE);
            } else {
                y.dmin = Half::from_f32(0.0);
            }
            for j in 0..16 {
                let d = y.d.to_f32() * (y.scales[j] & 0x0f) as f32;
                if d == 0.0 {
                    continue;
                }
                let dm = y.dmin.to_f32() * (y.scales[j] >> 4) as f32;
                for ii in 0..16 {
                    let l = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3);
                    levels[16 * j + ii] = l as u8;
                }
            }
            pack_2bit(&levels, &mut y.qs);
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = x.d.to_f32();
            let min = x.dmin.to_f32();
            // value 128*h + 32*s + 16*k + l lives in qs[32*h + 16*k + l] at bits 2*s, with scale 8h+2s+k
            for (i, out) in y.iter_mut().enumerate() {
                let (h, s, k, l) = (i / 128, (i / 32) % 4, (i / 16) % 2, i % 16);
                let sc = x.scales[8 * h + 2 * s + k];
                let dl = d * (sc & 0x0f) as f32;
                let ml = min * (sc >> 4) as f32;
                let q = (x.qs[32 * h + 16 * k + l] >> (2 * s)) & 3;
                *out = dl * q as f32 - ml;
            }
        }
    }
}

impl BlockFormat for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const VALUES: usize = QK_K;
    fn zeroed() -> Self {
        BlockQ3K {
            hmask: [0; 32],
            qs: [0; 64],
            scales: [0; 12],
            d: Half::ZERO,
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            let mut levels = [0i8; QK_K];
            let mut scales = [0.0f32; 16];
            let mut max_scale = 0.0f32;
            let mut amax = 0.0f32;
            for j in 0..16 {
                scales[j] =
                    make_q3_quants_rmse::<16>(4, sub(x, 16 * j), sub_mut(&mut levels, 16 * j));
                let scale = scales[j].abs();
                if scale > amax {
                    amax = scale;
                    max_scale = scales[j];
                }
            }
            y.scales = [0; 12];
            if max_scale != 0.0 {
                let iscale = -32.0 / max_scale;
                for j in 0..16 {
                    let l = (nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32;
                    if j < 8 {
                        y.scales[j] = (l & 0x0f) as u8;
                    } else {
                        y.scales[j - 8] |= ((l & 0x0f) << 4) as u8;
                    }
                    let l = l >> 4;
                    y.scales[j % 4 + 8] |= (l << (2 * (j / 4))) as u8;
                }
                y.d = Half::from_f32(1.0 / iscale);
            } else {
                y.d = Half::from_f32(0.0);
            }
            let sc = q3k_scales(&y.scales);
            for j in 0..16 {
                let d = y.d.to_f32() * (sc[j] as i32 - 32) as f32;
                if d == 0.0 {
                    continue;
                }
                for ii in 0..16 {
                    let l = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
                    levels[16 * j + ii] = (l + 4) as i8;
                }
            }
            y.hmask = [0; 32];
            let mut low = [0u8; QK_K];
            for (j, (&l, lo)) in levels.iter().zip(low.iter_mut()).enumerate() {
                let mut l = l as u8;
                if l > 3 {
                    y.hmask[j % 32] |= 1 << (j / 32);
                    l -= 4;
                }
                *lo = l;
            }
            pack_2bit(&low, &mut y.qs);
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d_all = x.d.to_f32();
            let sc = q3k_scales(&x.scales);
            for (i, out) in y.iter_mut().enumerate() {
                let (h, s, k, l) = (i / 128, (i / 32) % 4, (i / 16) % 2, i % 16);
                let dl = d_all * (sc[8 * h + 2 * s + k] as i32 - 32) as f32;
                let m = 16 * k + l;
                let q = ((x.qs[32 * h + m] >> (2 * s)) & 3) as i32;
                let high = if x.hmask[m] & (1 << (4 * h + s)) != 0 {
                    0
                } else {
                    4
                };
                *out = dl * (q - high) as f32;
            }
        }
    }
}

/// The shared Q4_K/Q5_K scale search: per 32 values, levels (0..=nmax) and the 12 packed 6-bit
/// scale/min bytes, `d` and `dmin`; then the levels requantized with the stored scales.
fn quantize_qk_asym(
    x: &[f32],
    p: &Qkx2,
    levels: &mut [u8; QK_K],
    packed: &mut [u8; 12],
    d_out: &mut Half,
    dmin_out: &mut Half,
) {
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..8 {
        let xs: &[f32; 32] = sub(x, 32 * j);
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(p, xs, &weights, sub_mut(levels, 32 * j));
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    *d_out = Half::from_f32(max_scale / 63.0);
    *dmin_out = Half::from_f32(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, packed);
        let d = d_out.to_f32() * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_out.to_f32() * m as f32;
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, p.nmax);
            levels[32 * j + ii] = l as u8;
        }
    }
}

impl BlockFormat for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const VALUES: usize = QK_K;
    fn zeroed() -> Self {
        BlockQ4K {
            d: Half::ZERO,
            dmin: Half::ZERO,
            scales: [0; 12],
            qs: [0; 128],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        let params = Qkx2 {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            let mut levels = [0u8; QK_K];
            y.scales = [0; 12];
            quantize_qk_asym(
                x,
                &params,
                &mut levels,
                &mut y.scales,
                &mut y.d,
                &mut y.dmin,
            );
            for (c, q) in y.qs.chunks_exact_mut(32).enumerate() {
                for l in 0..32 {
                    q[l] = levels[64 * c + l] | (levels[64 * c + l + 32] << 4);
                }
            }
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = x.d.to_f32();
            let min = x.dmin.to_f32();
            for (c, out) in y.chunks_exact_mut(64).enumerate() {
                let (sc1, m1) = get_scale_min_k4(2 * c, &x.scales);
                let (sc2, m2) = get_scale_min_k4(2 * c + 1, &x.scales);
                let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
                let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
                let q = &x.qs[32 * c..32 * c + 32];
                for l in 0..32 {
                    out[l] = d1 * (q[l] & 0x0f) as f32 - m1;
                    out[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
                }
            }
        }
    }
}

impl BlockFormat for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const VALUES: usize = QK_K;
    fn zeroed() -> Self {
        BlockQ5K {
            d: Half::ZERO,
            dmin: Half::ZERO,
            scales: [0; 12],
            qh: [0; 32],
            qs: [0; 128],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        let params = Qkx2 {
            nmax: 31,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: false,
        };
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            let mut levels = [0u8; QK_K];
            y.scales = [0; 12];
            quantize_qk_asym(
                x,
                &params,
                &mut levels,
                &mut y.scales,
                &mut y.d,
                &mut y.dmin,
            );
            y.qh = [0; 32];
            for c in 0..4 {
                let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
                for j in 0..32 {
                    let mut l1 = levels[64 * c + j];
                    if l1 > 15 {
                        l1 -= 16;
                        y.qh[j] |= m1;
                    }
                    let mut l2 = levels[64 * c + j + 32];
                    if l2 > 15 {
                        l2 -= 16;
                        y.qh[j] |= m2;
                    }
                    y.qs[32 * c + j] = l1 | (l2 << 4);
                }
            }
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = x.d.to_f32();
            let min = x.dmin.to_f32();
            for (c, out) in y.chunks_exact_mut(64).enumerate() {
                let (sc1, m1) = get_scale_min_k4(2 * c, &x.scales);
                let (sc2, m2) = get_scale_min_k4(2 * c + 1, &x.scales);
                let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
                let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
                let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
                let ql = &x.qs[32 * c..32 * c + 32];
                for l in 0..32 {
                    let h1 = if x.qh[l] & u1 != 0 { 16 } else { 0 };
                    let h2 = if x.qh[l] & u2 != 0 { 16 } else { 0 };
                    out[l] = d1 * ((ql[l] & 0x0f) + h1) as f32 - m1;
                    out[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
                }
            }
        }
    }
}

/// Q6_K's signed 6-bit value `i` (−32..=31) of a block.
#[inline]
pub(crate) fn q6k_value(x: &BlockQ6K, i: usize) -> i8 {
    // value 128*h + 32*s + l: low nibble from ql[64*h + 32*(s&1) + l] (high nibble when s >= 2),
    // top two bits from qh[32*h + l] at bit 2*s
    let (h, s, l) = (i / 128, (i / 32) % 4, i % 32);
    let ql = x.ql[64 * h + 32 * (s & 1) + l];
    let low = if s < 2 { ql & 0x0f } else { ql >> 4 };
    let high = (x.qh[32 * h + l] >> (2 * s)) & 3;
    (low | (high << 4)) as i8 - 32
}

impl BlockFormat for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const VALUES: usize = QK_K;
    fn zeroed() -> Self {
        BlockQ6K {
            ql: [0; 128],
            qh: [0; 64],
            scales: [0; 16],
            d: Half::ZERO,
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            let mut levels = [0i8; QK_K];
            let mut scales = [0.0f32; 16];
            let mut max_scale = 0.0f32;
            let mut max_abs_scale = 0.0f32;
            for ib in 0..16 {
                let scale =
                    make_qx_quants_rmse1::<16>(32, sub(x, 16 * ib), sub_mut(&mut levels, 16 * ib));
                scales[ib] = scale;
                if scale.abs() > max_abs_scale {
                    max_abs_scale = scale.abs();
                    max_scale = scale;
                }
            }
            if max_abs_scale < GROUP_MAX_EPS {
                *y = Self::zeroed();
                continue;
            }
            let iscale = -128.0 / max_scale;
            y.d = Half::from_f32(1.0 / iscale);
            for ib in 0..16 {
                y.scales[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
            }
            for j in 0..16 {
                let d = y.d.to_f32() * y.scales[j] as f32;
                if d == 0.0 {
                    continue;
                }
                for ii in 0..16 {
                    let l = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
                    levels[16 * j + ii] = (l + 32) as i8;
                }
            }
            for h in 0..2 {
                let lv = &levels[128 * h..128 * h + 128];
                for l in 0..32 {
                    let q = |k: usize| lv[l + 32 * k] as u8;
                    y.ql[64 * h + l] = (q(0) & 0x0f) | ((q(2) & 0x0f) << 4);
                    y.ql[64 * h + l + 32] = (q(1) & 0x0f) | ((q(3) & 0x0f) << 4);
                    y.qh[32 * h + l] =
                        (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
                }
            }
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = x.d.to_f32();
            for (i, out) in y.iter_mut().enumerate() {
                // scale index: 8*h + 2*s + (l / 16) for value 128*h + 32*s + l
                let sc = x.scales[i / 16] as f32;
                *out = d * sc * q6k_value(x, i) as f32;
            }
        }
    }
}

impl BlockFormat for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const VALUES: usize = QK_K;
    fn zeroed() -> Self {
        BlockQ8K {
            d: LeF32::default(),
            qs: [0; QK_K],
            bsums: [LeI16::default(); 16],
        }
    }
    fn from_float(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst) {
            let (amax, max) = crate::quant::simple::signed_absmax(x);
            if amax == 0.0 {
                *y = Self::zeroed();
                continue;
            }
            let iscale = -127.0 / max;
            for (q, &v) in y.qs.iter_mut().zip(x) {
                *q = nearest_int(iscale * v).min(127) as i8;
            }
            fill_bsums(y);
            y.d = LeF32::new(1.0 / iscale);
        }
    }
    fn to_float(src: &[Self], dst: &mut [f32]) {
        for (x, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = x.d.get();
            for (out, &q) in y.iter_mut().zip(&x.qs) {
                *out = d * q as f32;
            }
        }
    }
}

/// Q8_K's sums of each 16 quants (ggml stores them as int16).
#[inline]
pub(crate) fn fill_bsums(y: &mut BlockQ8K) {
    for (j, s) in y.bsums.iter_mut().enumerate() {
        let sum: i32 = y.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
        *s = LeI16::new(sum as i16);
    }
}

macro_rules! k_dot {
    ($($t:ty => $f:ident;)*) => {
        $(impl VecDot for $t {
            type Rhs = BlockQ8K;
            fn vec_dot(w: &[Self], a: &[BlockQ8K]) -> f32 {
                scalar::$f(w, a)
            }
        })*
    };
}

k_dot! {
    BlockQ2K => dot_q2_k_q8_k;
    BlockQ3K => dot_q3_k_q8_k;
    BlockQ4K => dot_q4_k_q8_k;
    BlockQ5K => dot_q5_k_q8_k;
    BlockQ6K => dot_q6_k_q8_k;
}
