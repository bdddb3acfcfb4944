//! Throughput of the quantization kernels: `cargo bench --bench quant`.
//!
//! For each type: reference quantization (values/s), and the dot product of one 4096-value weight
//! row with one activation row, scalar reference against the kernels this CPU dispatches to
//! (`quant::kernel_name()`), in ns per row and GB/s of weight bytes; then the load-time repacking
//! of a 4096 × 4096 matrix into the interleaved layouts (GB/s of source bytes, fresh destination
//! pages included, as at load). Plain `std::time` timing (no harness), fastest of several runs.

mod common;
use common::data;
use std::hint::black_box;
use std::time::Instant;

use ferrollm::format::GgmlType;
use ferrollm::quant;

const TYPES: &[GgmlType] = &[
    GgmlType::F32,
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

/// Fastest seconds per call of `f` over 9 runs of `iters` calls (the least disturbed by other load).
fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() / iters as f64
        })
        .collect();
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    runs[0]
}

fn main() {
    let n = 4096;
    let rows = 64;
    println!("kernels: {}", quant::kernel_name());
    println!(
        "| type | quantize (Mvalues/s) | dot scalar (ns/row) | dot {} (ns/row) | speed-up | {} GB/s |",
        quant::kernel_name(),
        quant::kernel_name()
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let x = data(n * rows, 1);
    let a = data(n, 2);
    for &ty in TYPES {
        let row = ty.row_size(n as u64).unwrap() as usize;
        let mut w = vec![0u8; row * rows];
        let tq = time(1, || quant::quantize(ty, black_box(&x), &mut w).unwrap());
        let act = quant::vec_dot_type(ty).unwrap_or(GgmlType::F32);
        let mut aq = vec![0u8; act.row_size(n as u64).unwrap() as usize];
        quant::quantize(act, &a, &mut aq).unwrap();
        let dot = |f: fn(GgmlType, usize, &[u8], &[u8]) -> ferrollm::Result<f32>| {
            time(20, || {
                for r in 0..rows {
                    black_box(f(ty, n, black_box(&w[r * row..(r + 1) * row]), &aq).unwrap());
                }
            }) / rows as f64
        };
        let ts = dot(quant::vec_dot_reference);
        let tv = dot(quant::vec_dot);
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {:.1}× | {:.1} |",
            ty.name().to_uppercase(),
            (n * rows) as f64 / tq / 1e6,
            ts * 1e9,
            tv * 1e9,
            ts / tv,
            row as f64 / tv / 1e9
        );
    }
    for act in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
        let mut out = vec![0u8; act.row_size((n * rows) as u64).unwrap() as usize];
        let t = time(3, || quant::quantize(act, black_box(&x), &mut out).unwrap());
        println!(
            "activations → {}: {:.0} Mvalues/s",
            act.name().to_uppercase(),
            (n * rows) as f64 / t / 1e6
        );
    }
    let (prow, pcols) = (4096, 4096);
    let x = data(prow * pcols, 3);
    let width =
        ferrollm::quant::interleaved::kernel(ferrollm::quant::interleaved::Layout::Q4_0x8).1;
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K] {
        let mut w = vec![0u8; ty.row_size((prow * pcols) as u64).unwrap() as usize];
        quant::quantize(ty, &x, &mut w).unwrap();
        let t = time(1, || {
            black_box(
                ferrollm::quant::interleaved::Interleaved::pack(ty, prow, pcols, width, &w)
                    .unwrap(),
            );
        });
        println!(
            "repack {} {prow}x{pcols} into {width}-row groups: {:.1} ms, {:.2} GB/s",
            ty.name().to_uppercase(),
            t * 1e3,
            w.len() as f64 / t / 1e9
        );
    }
}
