//! How close the one-token (generation) product kernels come to the memory's read rate:
//! `cargo bench --bench stream [-- THREADS [MiB [TYPE]]]` (defaults 2, 640 and all of Q4_0, Q8_0,
//! Q4_K).
//!
//! Generation multiplies every weight matrix with one activation row, so its speed is the rate
//! at which the kernels stream weight bytes from memory. This bench builds one large matrix per
//! interleaved layout (larger than the last-level cache, so every pass reads memory), and
//! alternates, on the same pool of threads and the same bytes, a plain read of the packed matrix
//! (the ceiling: nothing but loads) with the one-token product, split into tasks as
//! `model::matmul` splits it: through the group kernel one group at a time ("groups"), and
//! through the one-token kernel that walks two groups side by side ("token", what generation
//! uses, where the build has one). It prints the median GB/s of each and their ratio to the read:
//! the kernels' efficiency, free of the machine's drift because all are measured in the same
//! seconds. A second read takes each task's bytes as 8 sequences side by side ("streams read"),
//! which this VM serves faster than one (see `tools/bench/stream.c`), and the products are given
//! as a fraction of it too.
//!
//! Two shapes: one matrix of 2048 columns, and the 1.1B bench model's layers (Q, K, V in one
//! step; output; gate and up in one step; down), as many as fill the size, each step one
//! fork-join as in generation. The read prefetches `STREAM_READ_PREFETCH` bytes ahead (default
//! 4096; 0, 4096 and 8192 read within 5 % of each other here).

mod common;
use common::{acts, median};
use std::hint::black_box;
use std::time::Instant;

use ferrollm::format::GgmlType;
use ferrollm::pool::Pool;
use ferrollm::quant;
use ferrollm::quant::interleaved::{self as il, Acts, Interleaved, Layout, Tile};

/// Tasks per thread, as `model::matmul` splits a product.
const TASKS_PER_THREAD: usize = 16;

fn xorshift(s: &mut u32) -> u32 {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    *s
}

/// `rows × cols` weights of `ty` (random values quantized, 1024 distinct rows repeated).
fn matrix(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let distinct = 1024.min(rows);
    let mut s = 7u32;
    let x: Vec<f32> = (0..distinct * cols)
        .map(|_| xorshift(&mut s) as f32 / u32::MAX as f32 - 0.5)
        .collect();
    let row = ty.row_size(cols as u64).unwrap() as usize;
    let mut some = vec![0u8; distinct * row];
    quant::quantize(ty, &x, &mut some).unwrap();
    let mut w = vec![0u8; rows * row];
    for (i, r) in w.chunks_exact_mut(row).enumerate() {
        let j = i % distinct;
        r.copy_from_slice(&some[j * row..(j + 1) * row]);
    }
    w
}

/// The output buffer, written by the tasks at disjoint ranges.
struct Out(*mut f32);
// SAFETY: each task writes only its own groups' rows.
unsafe impl Sync for Out {}
impl Out {
    fn at(&self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Sum of `b` as 64-bit words (its length a multiple of 64): loads and adds only, vectorised
/// where the CPU allows, prefetching `pf` bytes ahead (0: none).
fn read_sum(b: &[u8], pf: usize) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        return unsafe { read_sum_avx2(b, pf) };
    }
    let _ = pf;
    b.chunks_exact(8).fold(0u64, |a, w| {
        a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn read_sum_avx2(b: &[u8], pf: usize) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 2];
    let p = b.as_ptr();
    for i in (0..b.len() / 64 * 64).step_by(64) {
        if pf > 0 {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i + pf) as *const i8);
        }
        for (j, a) in acc.iter_mut().enumerate() {
            let v = _mm256_loadu_si256(p.add(i + 32 * j) as *const __m256i);
            *a = _mm256_add_epi64(*a, v);
        }
    }
    let a: [u64; 4] = std::mem::transmute(_mm256_add_epi64(acc[0], acc[1]));
    a.iter().fold(0, |x, &y| x.wrapping_add(y))
}

/// The same sum with `b` read as [`STREAMS`] equal parts side by side (line `i` of each part in
/// turn, no software prefetch): several sequences in flight, which this VM serves faster than
/// one (see `tools/bench/stream.c`).
fn read_sum_streams(b: &[u8]) -> u64 {
    let part = b.len() / STREAMS / 64 * 64;
    let mut acc = [0u64; 8];
    for i in (0..part).step_by(64) {
        for k in 0..STREAMS {
            let line = &b[k * part + i..k * part + i + 64];
            for (a, w) in acc.iter_mut().zip(line.chunks_exact(8)) {
                *a = a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
            }
        }
    }
    let rest = read_sum(&b[STREAMS * part..], 0);
    acc.iter().fold(rest, |x, &y| x.wrapping_add(y))
}

/// Sequences per task of the [`Pass::ReadStreams`] pass.
const STREAMS: usize = 8;

/// One parallel step: the matrices one `pool.run` covers (as `model::matmul::linear_multi` runs
/// Q, K and V, or gate and up, together).
type Step<'a> = Vec<&'a Interleaved>;

/// What a pass does with every matrix.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    /// Reads its bytes.
    Read,
    /// Reads them as [`STREAMS`] sequences side by side, task by task.
    ReadStreams,
    /// Multiplies it with one activation row, one group at a time (the group kernel).
    Groups,
    /// The same through the one-token kernel (two groups side by side), as generation does.
    Token,
}

/// Runs `how` over every matrix of `steps`, one `pool.run` per step, each matrix split into
/// `threads × TASKS_PER_THREAD` ranges of groups; returns GB/s of matrix bytes.
fn pass(pool: &Pool, steps: &[Step<'_>], acts: &[Acts], out: &mut [f32], how: Pass) -> f64 {
    let pf: usize = std::env::var("STREAM_READ_PREFETCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let t = Instant::now();
    let mut bytes = 0;
    let dst = Out(out.as_mut_ptr());
    let total = std::sync::atomic::AtomicU64::new(0);
    for step in steps {
        // (matrix, first group, end group) of every task of the step
        let mut tasks = Vec::new();
        for (m, p) in step.iter().enumerate() {
            bytes += p.size();
            let n = (pool.threads() * TASKS_PER_THREAD).min(p.groups());
            let per = p.groups().div_ceil(n);
            tasks.extend(
                (0..p.groups().div_ceil(per))
                    .map(|t| (m, t * per, ((t + 1) * per).min(p.groups()))),
            );
        }
        pool.run(tasks.len(), |task, _| {
            let (m, g0, g1) = tasks[task];
            let p = step[m];
            if how == Pass::Read {
                let s = (g0..g1).fold(0u64, |a, g| a.wrapping_add(read_sum(p.group(g), pf)));
                total.fetch_add(s, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            if how == Pass::ReadStreams {
                let s = read_sum_streams(p.groups_bytes(g0, g1));
                total.fetch_add(s, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            let a = acts
                .iter()
                .find(|a| a.qs.len() == p.cols)
                .expect("activations of this width");
            let a = [a.row(0)];
            let (kernel, width) = il::kernel(p.layout);
            if let Some((one, _)) = il::token_kernel(p.layout).filter(|_| how == Pass::Token) {
                let (n, at) = ((g1 - g0) * width, m * 32768 + g0 * width);
                let at = at % (out.len() - n);
                // SAFETY: as below, these groups' outputs belong to this task alone.
                let o = unsafe { std::slice::from_raw_parts_mut(dst.at(at), n) };
                one(
                    p.groups_bytes(g0, g1),
                    p.group_bytes(),
                    p.blocks(),
                    &a[0],
                    o,
                );
                return;
            }
            let mut tile: Tile = [[0.0; il::MAX_ROWS]; il::MAX_TOKENS];
            for g in g0..g1 {
                kernel(p.group(g), p.blocks(), &a, &mut tile);
                // SAFETY: group g's `width` outputs (within `out`) belong to this task alone
                // (steps write the first rows of `out`, one matrix at a time per offset).
                let at = (m * 32768 + g * width) % (out.len() - width);
                unsafe { std::ptr::copy_nonoverlapping(tile[0].as_ptr(), dst.at(at), width) };
            }
        });
    }
    black_box(total);
    bytes as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(640);
    let only = args.next().map(|a| a.to_uppercase());
    let pool = Pool::new(threads).unwrap();
    let par = |n: usize, f: &(dyn Fn(usize) + Sync)| pool.run(n, |i, _| f(i));
    println!(
        "kernels: {}, {threads} threads, {mib} MiB per case",
        il::kernel_name()
    );
    println!(
        "| layout | shape | read GB/s | read, {STREAMS} streams GB/s | groups GB/s | groups ÷ read \
         | groups ÷ streams read | token GB/s | token ÷ read | token ÷ streams read |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut out = vec![0f32; 1 << 20];
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K] {
        if only
            .as_ref()
            .is_some_and(|o| *o != ty.name().to_uppercase())
        {
            continue;
        }
        let layout = Layout::for_type(ty).unwrap();
        let width = il::kernel(layout).1;
        let pack = |rows: usize, cols: usize| {
            Interleaved::pack_with(ty, rows, cols, width, &matrix(ty, rows, cols), &par).unwrap()
        };
        let act = |cols: usize| {
            let x: Vec<f32> = (0..cols).map(|i| (i % 7) as f32 - 3.0).collect();
            acts(layout.act_kind(), &x, cols)
        };
        let acts = [act(2048), act(5632)];
        // one large matrix, 2048 columns
        let row = ty.row_size(2048).unwrap() as usize;
        let big = pack((mib << 20) / row / width * width, 2048);
        // the 1.1B model's layers (hidden 2048, 4 KV heads of 64, FFN 5632), as many as fill `mib`
        let layer_bytes = ty.row_size(2048).unwrap() as usize * (2048 * 2 + 512 * 2 + 5632 * 2)
            + ty.row_size(5632).unwrap() as usize * 2048;
        let layers: Vec<[Interleaved; 7]> = (0..((mib << 20) / layer_bytes).max(1))
            .map(|_| {
                [
                    pack(2048, 2048),
                    pack(512, 2048),
                    pack(512, 2048),
                    pack(2048, 2048),
                    pack(5632, 2048),
                    pack(5632, 2048),
                    pack(2048, 5632),
                ]
            })
            .collect();
        let steps: Vec<Step<'_>> = layers
            .iter()
            .flat_map(|l| {
                [
                    vec![&l[0], &l[1], &l[2]],
                    vec![&l[3]],
                    vec![&l[4], &l[5]],
                    vec![&l[6]],
                ]
            })
            .collect();
        for (shape, steps) in [
            ("one matrix".to_string(), vec![vec![&big]]),
            (format!("{} layers, 4 steps each", layers.len()), steps),
        ] {
            // the group kernel alone, and the one-token kernel where this build has one
            let hows: &[Pass] = match il::token_kernel(layout) {
                Some(_) => &[Pass::Read, Pass::ReadStreams, Pass::Groups, Pass::Token],
                None => &[Pass::Read, Pass::ReadStreams, Pass::Groups],
            };
            let mut rates = vec![Vec::new(); hows.len()];
            for _ in 0..9 {
                for (&how, rates) in hows.iter().zip(&mut rates) {
                    rates.push(pass(&pool, &steps, &acts, &mut out, how));
                }
            }
            let rates: Vec<f64> = rates.into_iter().map(median).collect();
            let (r, r8) = (rates[0], rates[1]);
            let cell = |i: usize| {
                rates.get(i).map_or("– | – | –".to_string(), |q| {
                    format!("{q:.1} | {:.2} | {:.2}", q / r, q / r8)
                })
            };
            println!(
                "| {} x{width} | {shape} | {r:.1} | {r8:.1} | {} | {} |",
                ty.name().to_uppercase(),
                cell(2),
                cell(3)
            );
        }
    }
}
