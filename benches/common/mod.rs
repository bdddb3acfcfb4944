//! Helpers shared by the benches (`mod common;` in each).
#![allow(dead_code)] // each bench uses some of them

use ferrollm::quant::interleaved::{self as il, ActKind, Acts};

/// `n` deterministic values in −1..1 (xorshift from `seed`).
pub fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Median of `v`.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The `x.len() / cols` rows of `x` quantized as activations of `kind`, as a product does.
pub fn acts(kind: ActKind, x: &[f32], cols: usize) -> Acts {
    let n = x.len() / cols;
    let mut a = Acts::default();
    a.reset(kind, cols, n);
    let (ns, nb) = (cols / kind.scale_values(), cols / 32);
    let (qs, d, sum) = a.parts_mut();
    for t in 0..n {
        il::quantize_row(
            kind,
            &x[t * cols..(t + 1) * cols],
            &mut qs[t * cols..(t + 1) * cols],
            &mut d[t * ns..(t + 1) * ns],
            &mut sum[t * nb..(t + 1) * nb],
        );
    }
    a
}
