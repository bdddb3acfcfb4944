//! Quantization error and dot-product error within ggml's own bounds
//! (`tests/test-quantize-fns.cpp`: MAX_QUANTIZATION_TOTAL_ERROR = 0.002, _2BITS = 0.0075 for Q2_K,
//! _3BITS = 0.004 for Q3_K; MAX_DOT_PRODUCT_ERROR = 0.02, _LOWBIT = 0.04 for Q2_K;
//! MAX_QUANTIZATION_REFERENCE_ERROR = 0.0001 for the f32 dot product). ggml's error measure is
//! `sqrt(Σ (x - x')²) / n` (not an RMSE: it divides by n, not √n), its dot-product measure
//! `|dot - exact| / n`, on `0.1 + 2 cos(i + offset)` data of 4096 values; we apply the same measures
//! and bounds to that data and to N(0,1) data.
//!
//! `cargo test --test quant_error -- --ignored --nocapture` prints the table of
//! docs/QUANTIZATION.md.

mod quant_util;

use ferrollm::format::GgmlType;
use ferrollm::quant;
use quant_util::*;

const TYPES: &[GgmlType] = &[
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// ggml's `generate_data`.
fn ggml_data(offset: f32, n: usize, amplitude: f32) -> Vec<f32> {
    (0..n)
        .map(|i| 0.1 + amplitude * (i as f32 + offset).cos())
        .collect()
}

fn max_total_error(ty: GgmlType) -> f64 {
    match ty {
        GgmlType::Q2_K => 0.0075,
        GgmlType::Q3_K => 0.0040,
        _ => 0.002,
    }
}

fn max_dot_error(ty: GgmlType) -> f64 {
    match ty {
        GgmlType::Q2_K => 0.04,
        _ => 0.02,
    }
}

fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    let mut q = vec![0u8; row_bytes(ty, x.len())];
    quant::quantize(ty, x, &mut q).unwrap();
    let mut y = vec![0f32; x.len()];
    quant::dequantize(ty, &q, &mut y).unwrap();
    y
}

/// ggml's `array_rmse`: sqrt(Σ d²) / n.
fn ggml_error(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    s.sqrt() / a.len() as f64
}

fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    (s / a.len() as f64).sqrt()
}

fn exact_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `vec_dot` of `w` quantized to `ty` with `a` quantized to `vec_dot_type(ty)` (or f32).
fn quantized_dot(ty: GgmlType, w: &[f32], a: &[f32]) -> (f32, Vec<u8>, Vec<u8>) {
    let n = w.len();
    let mut wq = vec![0u8; row_bytes(ty, n)];
    quant::quantize(ty, w, &mut wq).unwrap();
    let act_ty = quant::vec_dot_type(ty).unwrap_or(GgmlType::F32);
    let mut aq = vec![0u8; row_bytes(act_ty, n)];
    quant::quantize(act_ty, a, &mut aq).unwrap();
    (quant::vec_dot(ty, n, &wq, &aq).unwrap(), wq, aq)
}

#[test]
fn total_quantization_error_within_ggml_bounds() {
    let n = 32 * 128;
    let cos = ggml_data(0.0, n, 2.0);
    let normal = Rng::new(1).normals(n, 1.0);
    for &ty in TYPES {
        for (name, x) in [("ggml cos data", &cos), ("N(0,1)", &normal)] {
            let err = ggml_error(x, &round_trip(ty, x));
            assert!(
                err < max_total_error(ty),
                "{ty} on {name}: {err} ≥ {}",
                max_total_error(ty)
            );
        }
    }
}

#[test]
fn dot_product_error_within_ggml_bounds() {
    let n = 32 * 128;
    let (x1, x2) = (ggml_data(0.0, n, 2.0), ggml_data(1.0, n, 2.0));
    let mut rng = Rng::new(2);
    let (n1, n2) = (rng.normals(n, 1.0), rng.normals(n, 1.0));
    for &ty in TYPES {
        for (name, w, a) in [("ggml cos data", &x1, &x2), ("N(0,1)", &n1, &n2)] {
            let (dot, wq, _) = quantized_dot(ty, w, a);
            // against the exact dot of the original data (ggml's test) …
            let err = (dot as f64 - exact_dot(w, a)).abs() / n as f64;
            assert!(err < max_dot_error(ty), "{ty} on {name}: {err}");
            // … and against the dequantized weights times the original activations
            let mut wd = vec![0f32; n];
            quant::dequantize(ty, &wq, &mut wd).unwrap();
            let err = (dot as f64 - exact_dot(&wd, a)).abs() / n as f64;
            assert!(
                err < max_dot_error(ty),
                "{ty} on {name} vs dequantized: {err}"
            );
        }
    }
}

#[test]
fn f32_dot_within_ggml_reference_error() {
    for n in [
        1usize, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 67, 127, 129, 193, 255, 1023,
    ] {
        let (a, b) = (ggml_data(0.0, n, 2.0), ggml_data(1.0, n, 2.0));
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let got = quant::vec_dot(GgmlType::F32, n, &bytes(&a), &bytes(&b)).unwrap();
        let err = (got as f64 - exact_dot(&a, &b)).abs() / n as f64;
        assert!(err < 1e-4, "f32 n={n}: {err}");
    }
}

/// Prints the RMSE / bits-per-weight table of docs/QUANTIZATION.md.
#[test]
#[ignore = "prints a table; run with --ignored --nocapture"]
fn print_error_table() {
    let n = 256 * 1024;
    let mut rng = Rng::new(3);
    let x = rng.normals(n, 1.0);
    let cos = ggml_data(0.0, 4096, 2.0);
    let (c1, c2) = (ggml_data(0.0, 4096, 2.0), ggml_data(1.0, 4096, 2.0));
    // 64 row pairs of 4096 N(0,1) values for the dot-product error
    let rows: Vec<(Vec<f32>, Vec<f32>)> = (0..64)
        .map(|_| (rng.normals(4096, 1.0), rng.normals(4096, 1.0)))
        .collect();
    println!("| type | bits/weight | RMSE | max abs error | dot error | ggml quantization measure (bound) | ggml dot measure (bound) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for &ty in TYPES {
        let y = round_trip(ty, &x);
        let max = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let ggml = ggml_error(&cos, &round_trip(ty, &cos));
        // RMS over rows of (vec_dot - exact dot) / √n: comparable with the RMSE column
        let dot_err = (rows
            .iter()
            .map(|(w, a)| {
                let (dot, _, _) = quantized_dot(ty, w, a);
                ((dot as f64 - exact_dot(w, a)) / (w.len() as f64).sqrt()).powi(2)
            })
            .sum::<f64>()
            / rows.len() as f64)
            .sqrt();
        let (cdot, _, _) = quantized_dot(ty, &c1, &c2);
        let ggml_dot = (cdot as f64 - exact_dot(&c1, &c2)).abs() / c1.len() as f64;
        println!(
            "| {} | {:.4} | {:.5} | {:.4} | {:.5} | {:.6} ({}) | {:.6} ({}) |",
            ty.name().to_uppercase(),
            ty.bits_per_weight(),
            rmse(&x, &y),
            max,
            dot_err,
            ggml,
            max_total_error(ty),
            ggml_dot,
            max_dot_error(ty),
        );
    }
}
