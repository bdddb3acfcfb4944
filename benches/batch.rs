//! Prompt-batch products: `cargo bench --bench batch [-- THREADS [TOKENS [TYPE|kernels]]]`
//! (defaults 2, 128 and all of F16, Q8_0, Q4_0, Q4_K; `kernels`: the group kernels alone).
//!
//! Prompt processing multiplies every weight matrix with a batch of activation rows; each weight
//! is used once per token, so the products are bound by arithmetic, not memory. This bench runs
//! `model::matmul::linear` (activation quantization or packing included, as the engine runs it)
//! on the matrix shapes of the two bench models' layers and prints the median rate in GMAC/s
//! (multiply-adds of weights with activations), in total and per thread, with the kernels this
//! CPU dispatches to. Compare a kernel change in the same minutes: this VM's CPU share drifts.

mod common;
use common::{acts, data, median};
use std::hint::black_box;
use std::time::Instant;

use ferrollm::format::GgmlType;
use ferrollm::model::matmul::{linear, MatScratch};
use ferrollm::model::weights::{Linear, Matrix};
use ferrollm::pool::Pool;
use ferrollm::quant;
use ferrollm::quant::interleaved::{self as il, Interleaved, Layout, Tile};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(128);
    let only = args.next().map(|a| a.to_uppercase());
    let pool = Pool::new(threads).unwrap();
    println!(
        "kernels: {} / {}, {threads} threads, {n} tokens",
        quant::kernel_name(),
        quant::interleaved::kernel_name()
    );
    println!("| type | rows × cols | GMAC/s | GMAC/s per thread |");
    println!("|---|---|---:|---:|");
    // (rows, cols): the 160M model's Q/K/V/O, gate/up and down; the 1.1B model's Q/O, gate/up
    // and down.
    let shapes = [
        (768, 768),
        (2048, 768),
        (768, 2048),
        (2048, 2048),
        (5632, 2048),
        (2048, 5632),
    ];
    kernels_alone(only.as_deref().filter(|&o| o != "KERNELS"));
    if only.as_deref() == Some("KERNELS") {
        return;
    }
    for ty in [
        GgmlType::F16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_K,
    ] {
        if only
            .as_ref()
            .is_some_and(|o| *o != ty.name().to_uppercase())
        {
            continue;
        }
        for (rows, cols) in shapes {
            let w = data(rows * cols, 7);
            let row = ty.row_size(cols as u64).unwrap() as usize;
            let mut bytes = vec![0u8; rows * row];
            quant::quantize(ty, &w, &mut bytes).unwrap();
            let lin = Linear {
                w: Matrix::owned(ty, rows, cols, bytes).unwrap(),
                b: None,
            };
            let x = data(n * cols, 11);
            let mut out = vec![0f32; n * rows];
            let mut s = MatScratch::default();
            // Enough calls for about 0.1 s at 50 GMAC/s, at least 3.
            let macs = (rows * cols * n) as f64;
            let calls = ((5e9 / macs) as usize).max(3);
            linear(&pool, &mut s, &lin, &x, n, &mut out); // packs lazily packed layouts
            let runs: Vec<f64> = (0..7)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..calls {
                        linear(&pool, &mut s, &lin, black_box(&x), n, &mut out);
                    }
                    macs * calls as f64 / t.elapsed().as_secs_f64() / 1e9
                })
                .collect();
            black_box(&out);
            let g = median(runs);
            println!(
                "| {} | {rows} × {cols} | {g:.1} | {:.1} |",
                ty.name(),
                g / threads as f64
            );
        }
    }
}

/// The group kernels alone, on this thread: one group of 2048 columns (in L1/L2) against
/// [`il::MAX_TOKENS`] activation rows, called over and over; GMAC/s, the fastest of 15 runs (the
/// least disturbed: compute-bound code on this VM only ever runs slower than it can).
fn kernels_alone(only: Option<&str>) {
    const COLS: usize = 2048;
    println!("| kernel alone | 1 group × {COLS} | GMAC/s | |");
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K] {
        if only.is_some_and(|o| o != ty.name().to_uppercase()) {
            continue;
        }
        let layout = Layout::for_type(ty).unwrap();
        let (kernel, width) = il::kernel(layout);
        let row = ty.row_size(COLS as u64).unwrap() as usize;
        let mut bytes = vec![0u8; width * row];
        quant::quantize(ty, &data(width * COLS, 3), &mut bytes).unwrap();
        let serial = |n: usize, f: &(dyn Fn(usize) + Sync)| (0..n).for_each(f);
        let p = Interleaved::pack_with(ty, width, COLS, width, &bytes, &serial).unwrap();
        let acts = acts(layout.act_kind(), &data(il::MAX_TOKENS * COLS, 5), COLS);
        let rows: Vec<_> = (0..il::MAX_TOKENS).map(|t| acts.row(t)).collect();
        let mut tile: Tile = [[0.0; il::MAX_ROWS]; il::MAX_TOKENS];
        let calls = 5_000;
        let runs: Vec<f64> = (0..15)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..calls {
                    kernel(black_box(p.group(0)), p.blocks(), &rows, &mut tile);
                }
                (width * COLS * il::MAX_TOKENS * calls) as f64 / t.elapsed().as_secs_f64() / 1e9
            })
            .collect();
        black_box(&tile);
        let best = runs.iter().fold(0f64, |a, &b| a.max(b));
        println!("| {} | width {width} | {best:.1} | |", ty.name());
        if let Some((two, _)) = il::pair_kernel(layout) {
            let mut tiles = [tile; 2];
            let runs: Vec<f64> = (0..15)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..calls / 2 {
                        two([p.group(0), p.group(0)], p.blocks(), &rows, &mut tiles);
                        black_box(&tiles);
                    }
                    (width * COLS * il::MAX_TOKENS * calls) as f64 / t.elapsed().as_secs_f64() / 1e9
                })
                .collect();
            let best = runs.iter().fold(0f64, |a, &b| a.max(b));
            println!("| {} pair | width {width} | {best:.1} | |", ty.name());
        }
    }
}
