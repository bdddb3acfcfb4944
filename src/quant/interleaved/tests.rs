//! The interleaved layouts and kernels: the scalar kernels against `vec_dot_reference` on the
//! original rows, and every SIMD build this CPU runs against the scalar kernels.

#![allow(clippy::needless_range_loop)]
use super::*;
use crate::quant;
use crate::quant::kernels::matrix_builds;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
    fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

const TYPES: [GgmlType; 3] = [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K];

/// A quantized `rows × cols` matrix of N(0, scale²) values; for Q8_0 some quants are then set to
/// −128 (a byte ggml's quantizer never writes but a file may hold).
fn weights(ty: GgmlType, rows: usize, cols: usize, scale: f32, rng: &mut Rng) -> Vec<u8> {
    let rs = ty.row_size(cols as u64).unwrap() as usize;
    let mut out = vec![0u8; rs * rows];
    for r in 0..rows {
        let x = rng.normals(cols, scale);
        quant::quantize(ty, &x, &mut out[r * rs..(r + 1) * rs]).unwrap();
    }
    if ty == GgmlType::Q8_0 {
        for b in out.chunks_exact_mut(34).step_by(3) {
            b[2 + (rng.next() % 32) as usize] = 0x80;
        }
    }
    out
}

struct Case {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: Vec<u8>,
    x: Vec<f32>,
    n: usize,
}

fn cases() -> Vec<Case> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut v = Vec::new();
    for ty in TYPES {
        let bv = Layout::for_type(ty).unwrap().block_values();
        for (rows, blocks, n) in [(8, 1, 1), (13, 3, 5), (16, 2, 4), (3, 4, 2), (24, 5, 7)] {
            for scale in [1e-3f32, 1.0, 50.0] {
                let cols = bv * blocks;
                v.push(Case {
                    ty,
                    rows,
                    cols,
                    w: weights(ty, rows, cols, scale, &mut rng),
                    x: rng.normals(cols * n, 1.0 / scale),
                    n,
                });
            }
        }
    }
    v
}

fn acts_of(kind: ActKind, x: &[f32], cols: usize, n: usize) -> Acts {
    let mut a = Acts::default();
    a.reset(kind, cols, n);
    let nb = cols / QK;
    let ns = cols / kind.scale_values();
    let (qs, d, sum) = a.parts_mut();
    for t in 0..n {
        quantize_row(
            kind,
            &x[t * cols..(t + 1) * cols],
            &mut qs[t * cols..(t + 1) * cols],
            &mut d[t * ns..(t + 1) * ns],
            &mut sum[t * nb..(t + 1) * nb],
        );
    }
    a
}

/// `[token][row]` results of `kernel` over every group and token tile.
fn run(kernel: GroupKernel, p: &Interleaved, acts: &Acts) -> Vec<Vec<f32>> {
    let w = p.width();
    let n = acts.len();
    let mut out = vec![vec![0f32; p.rows]; n];
    for g in 0..p.groups() {
        let mut t0 = 0;
        while t0 < n {
            let nt = (n - t0).min(MAX_TOKENS);
            let rows: Vec<ActRow<'_>> = (t0..t0 + nt).map(|t| acts.row(t)).collect();
            let mut tile = [[f32::NAN; MAX_ROWS]; MAX_TOKENS];
            kernel(p.group(g), p.blocks(), &rows, &mut tile);
            for t in 0..nt {
                for r in 0..w {
                    if g * w + r < p.rows {
                        out[t0 + t][g * w + r] = tile[t][r];
                    }
                }
            }
            t0 += nt;
        }
    }
    out
}

/// Σ |w_i a_i| of the dequantized row and activation: the scale of rounding differences.
fn magnitude(ty: GgmlType, w: &[u8], x: &[f32]) -> f32 {
    let mut wf = vec![0f32; x.len()];
    quant::dequantize(ty, w, &mut wf).unwrap();
    wf.iter().zip(x).map(|(a, b)| (a * b).abs()).sum()
}

#[test]
fn scalar_kernels_match_vec_dot() {
    for c in cases() {
        let layout = Layout::for_type(c.ty).unwrap();
        for width in [8, 16] {
            let p = Interleaved::pack(c.ty, c.rows, c.cols, width, &c.w).unwrap();
            let acts = acts_of(layout.act_kind(), &c.x, c.cols, c.n);
            let got = run(scalar_kernel(layout, width), &p, &acts);
            let act_ty = quant::vec_dot_type(c.ty).unwrap();
            let rs = c.ty.row_size(c.cols as u64).unwrap() as usize;
            let ars = act_ty.row_size(c.cols as u64).unwrap() as usize;
            for t in 0..c.n {
                let x = &c.x[t * c.cols..(t + 1) * c.cols];
                let mut a = vec![0u8; ars];
                quant::quantize(act_ty, x, &mut a).unwrap();
                for r in 0..c.rows {
                    let w = &c.w[r * rs..(r + 1) * rs];
                    let want = quant::vec_dot_reference(c.ty, c.cols, w, &a).unwrap();
                    let tol = 2e-6 * magnitude(c.ty, w, x) + 1e-30;
                    assert!(
                        (got[t][r] - want).abs() <= tol,
                        "{} {}x{} t{t} r{r}: {} vs {want} (tol {tol})",
                        c.ty,
                        c.rows,
                        c.cols,
                        got[t][r]
                    );
                }
            }
        }
    }
}

#[test]
fn simd_kernels_match_scalar() {
    let builds = matrix_builds();
    assert!(!builds.is_empty());

    for c in cases() {
        let layout = Layout::for_type(c.ty).unwrap();
        let acts = acts_of(layout.act_kind(), &c.x, c.cols, c.n);
        let rs = c.ty.row_size(c.cols as u64).unwrap() as usize;
        let i = TYPES.iter().position(|&t| t == c.ty).unwrap();
        for b in &builds {
            let name = b.name;
            let p = Interleaved::pack(c.ty, c.rows, c.cols, b.width, &c.w).unwrap();
            let want = run(scalar_kernel(layout, b.width), &p, &acts);
            let got = run(b.group[i], &p, &acts);
            for t in 0..c.n {
                let x = &c.x[t * c.cols..(t + 1) * c.cols];
                for r in 0..c.rows {
                    let tol = 1e-6 * magnitude(c.ty, &c.w[r * rs..(r + 1) * rs], x) + 1e-30;
                    assert!(
                        (got[t][r] - want[t][r]).abs() <= tol,
                        "{name} {} {}x{} t{t} r{r}: {} vs {} (tol {tol})",
                        c.ty,
                        c.rows,
                        c.cols,
                        got[t][r],
                        want[t][r]
                    );
                }
            }
        }
    }
}

#[test]
fn f16_row_kernels_match_scalar() {
    let mut rng = Rng(99);
    for (cols, rows, n) in [(8, 1, 1), (24, 4, 1), (40, 3, 3), (256, 4, 4), (72, 2, 2)] {
        let w: Vec<Vec<u8>> = (0..rows)
            .map(|_| {
                let v = rng.normals(cols, 0.5);
                let mut b = vec![0u8; 2 * cols];
                quant::quantize(GgmlType::F16, &v, &mut b).unwrap();
                b
            })
            .collect();
        let x: Vec<Vec<f32>> = (0..n).map(|_| rng.normals(cols, 2.0)).collect();
        let wr: Vec<&[u8]> = w.iter().map(|v| v.as_slice()).collect();
        let xr: Vec<&[f32]> = x.iter().map(|v| v.as_slice()).collect();
        let mut want = [[0f32; 4]; MAX_TOKENS];
        f16_rows_scalar(&wr, &xr, cols, &mut want);
        for b in matrix_builds() {
            let name = b.name;
            let mut got = [[f32::NAN; 4]; MAX_TOKENS];
            (b.f16_rows)(&wr, &xr, cols, &mut got);
            for t in 0..n {
                for r in 0..rows {
                    let mag = magnitude(GgmlType::F16, &w[r], &x[t]);
                    assert!(
                        (got[t][r] - want[t][r]).abs() <= 1e-6 * mag,
                        "{name} f16 {cols} t{t} r{r}: {} vs {}",
                        got[t][r],
                        want[t][r]
                    );
                }
            }
        }
    }
}

#[test]
fn packing_rejects_other_types_and_partial_blocks() {
    assert!(Interleaved::pack(GgmlType::Q5_0, 8, 32, 8, &[0; 8 * 22]).is_none());
    assert!(Interleaved::pack(GgmlType::Q4_K, 8, 32, 16, &[]).is_none());
}

/// The Q8_0 row kernels: the scalar one against `vec_dot_reference` on the same rows (including
/// −128 quants), every build against the scalar one, for 1–4 rows and 1–4 tokens.
#[test]
fn q8_0_row_kernels_match_vec_dot() {
    let builds = matrix_builds();
    for c in cases().into_iter().filter(|c| c.ty == GgmlType::Q8_0) {
        let acts = acts_of(ActKind::Q8_0, &c.x, c.cols, c.n);
        let rs = c.ty.row_size(c.cols as u64).unwrap() as usize;
        let nb = c.cols / QK;
        let mut a = vec![0u8; GgmlType::Q8_0.row_size(c.cols as u64).unwrap() as usize];
        for r0 in (0..c.rows).step_by(4) {
            let nr = 4.min(c.rows - r0);
            let w: Vec<&[u8]> = (r0..r0 + nr).map(|r| &c.w[r * rs..(r + 1) * rs]).collect();
            for t0 in (0..c.n).step_by(MAX_TOKENS) {
                let nt = MAX_TOKENS.min(c.n - t0);
                let ar: Vec<ActRow<'_>> = (t0..t0 + nt).map(|t| acts.row(t)).collect();
                let mut want = [[f32::NAN; 4]; MAX_TOKENS];
                q8_0_rows_scalar(&w, &ar, nb, &mut want);
                for t in 0..nt {
                    let x = &c.x[(t0 + t) * c.cols..(t0 + t + 1) * c.cols];
                    quant::quantize(GgmlType::Q8_0, x, &mut a).unwrap();
                    for r in 0..nr {
                        let exact = quant::vec_dot_reference(c.ty, c.cols, w[r], &a).unwrap();
                        let tol = 2e-6 * magnitude(c.ty, w[r], x) + 1e-30;
                        assert!(
                            (want[t][r] - exact).abs() <= tol,
                            "scalar q8_0 rows {}x{} t{t} r{r}: {} vs {exact}",
                            c.rows,
                            c.cols,
                            want[t][r]
                        );
                    }
                }
                for b in &builds {
                    let mut got = [[f32::NAN; 4]; MAX_TOKENS];
                    (b.q8_0_rows)(&w, &ar, nb, &mut got);
                    for t in 0..nt {
                        let x = &c.x[(t0 + t) * c.cols..(t0 + t + 1) * c.cols];
                        for r in 0..nr {
                            let tol = 2e-6 * magnitude(c.ty, w[r], x) + 1e-30;
                            assert!(
                                (got[t][r] - want[t][r]).abs() <= tol,
                                "{} q8_0 rows {}x{} t{t} r{r}: {} vs {}",
                                b.name,
                                c.rows,
                                c.cols,
                                got[t][r],
                                want[t][r]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn carved_buffers_are_zeroed_aligned_and_disjoint() {
    // Sizes around the 64-byte rounding, and one larger than a chunk (a chunk of its own).
    let sizes = [1, 63, 64, 65, 4096, 3 << 20, CHUNK_BYTES + 1];
    let mut bufs: Vec<Buf> = sizes.iter().map(|&n| Buf::zeroed(n)).collect();
    for (b, &n) in bufs.iter().zip(&sizes) {
        let bytes = b.bytes();
        assert!(bytes.len() >= n);
        assert_eq!(
            bytes.as_ptr() as usize % 64,
            0,
            "{n} bytes not 64-byte aligned"
        );
        assert!(bytes.iter().all(|&x| x == 0), "{n} bytes not zeroed");
        if let Buf::Carved { chunk, .. } = b {
            assert_eq!(
                chunk.base as usize % HUGE_PAGE,
                0,
                "chunk not huge-page aligned"
            );
        }
    }
    for (i, b) in bufs.iter_mut().enumerate() {
        b.bytes_mut().fill(i as u8 + 1);
    }
    for (i, b) in bufs.iter().enumerate() {
        assert!(
            b.bytes().iter().all(|&x| x == i as u8 + 1),
            "buffer {i} overwritten"
        );
    }
}

/// The one-token kernels (two groups side by side) give each group's rows exactly as the same
/// build's group kernel does, for runs of one to five groups from any first group (so both a pair
/// and a lone last group), with the matrix's last group partial; rows past `out` stay untouched.
#[test]
fn token_kernels_match_group_kernels() {
    let mut rng = Rng(0x70c3_e2e2);
    let builds = matrix_builds();
    for (i, ty) in TYPES.into_iter().enumerate() {
        let layout = Layout::for_type(ty).unwrap();
        for b in builds.iter().filter(|b| b.token[i].is_some()) {
            let one = b.token[i].unwrap();
            let w = b.width;
            let (rows, cols) = (5 * w - 3, 2 * layout.block_values());
            let wts = weights(ty, rows, cols, 1.0, &mut rng);
            let x = rng.normals(cols, 1.0);
            let p = Interleaved::pack(ty, rows, cols, w, &wts).unwrap();
            let acts = acts_of(layout.act_kind(), &x, cols, 1);
            let want = run(b.group[i], &p, &acts).remove(0);
            for g0 in 0..p.groups() {
                for g1 in g0 + 1..=p.groups() {
                    let n = (g1 * w).min(rows) - g0 * w;
                    let mut out = vec![f32::NAN; n + 3];
                    out[n..].fill(-7.0);
                    let bytes = p.groups_bytes(g0, g1);
                    one(
                        bytes,
                        p.group_bytes(),
                        p.blocks(),
                        &acts.row(0),
                        &mut out[..n],
                    );
                    for r in 0..n {
                        assert_eq!(
                            out[r].to_bits(),
                            want[g0 * w + r].to_bits(),
                            "{} {ty} groups {g0}..{g1} row {r}: {} vs {}",
                            b.name,
                            out[r],
                            want[g0 * w + r]
                        );
                    }
                    assert!(
                        out[n..].iter().all(|&v| v == -7.0),
                        "{} wrote past its rows",
                        b.name
                    );
                }
            }
        }
    }
}

/// The pair kernels give each of their two groups' rows exactly as the same build's group kernel
/// does, for one to five activation rows (five: only the first [`MAX_TOKENS`] are used), with
/// the pair made of any two groups (the same one twice included) and the last group partial.
#[test]
fn pair_kernels_match_group_kernels() {
    let mut rng = Rng(0x9a12_55e1);
    let builds = matrix_builds();
    let mut checked = 0;
    for (i, ty) in TYPES.into_iter().enumerate() {
        let layout = Layout::for_type(ty).unwrap();
        for b in builds.iter().filter(|b| b.pair[i].is_some()) {
            let two = b.pair[i].unwrap();
            let w = b.width;
            let (rows, cols) = (3 * w - 5, 3 * layout.block_values());
            let wts = weights(ty, rows, cols, 1.0, &mut rng);
            let p = Interleaved::pack(ty, rows, cols, w, &wts).unwrap();
            for n in 1..=MAX_TOKENS + 1 {
                let x = rng.normals(n * cols, 1.0);
                let acts = acts_of(layout.act_kind(), &x, cols, n);
                let rows_of: Vec<ActRow<'_>> = (0..n).map(|t| acts.row(t)).collect();
                let nt = n.min(MAX_TOKENS);
                for (g0, g1) in [(0, 1), (1, 2), (2, 0), (1, 1)] {
                    let mut want = [[[0f32; MAX_ROWS]; MAX_TOKENS]; 2];
                    (b.group[i])(p.group(g0), p.blocks(), &rows_of[..nt], &mut want[0]);
                    (b.group[i])(p.group(g1), p.blocks(), &rows_of[..nt], &mut want[1]);
                    let mut got = [[[f32::NAN; MAX_ROWS]; MAX_TOKENS]; 2];
                    two([p.group(g0), p.group(g1)], p.blocks(), &rows_of, &mut got);
                    for (k, g) in [g0, g1].into_iter().enumerate() {
                        for t in 0..nt {
                            for r in 0..w.min(rows - g * w) {
                                assert_eq!(
                                    got[k][t][r].to_bits(),
                                    want[k][t][r].to_bits(),
                                    "{} {ty} groups ({g0}, {g1}) n {n}: group {g} token {t} row {r}",
                                    b.name
                                );
                            }
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512bw") {
        assert!(
            checked > 0,
            "no pair kernel was checked on a CPU with AVX-512"
        );
    }
    let _ = checked;
}
