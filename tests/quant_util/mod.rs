//! Test data and helpers shared by the `quant_*` integration tests.
#![allow(dead_code)]

use std::path::Path;

use ferrollm::format::GgmlType;

/// A small deterministic generator (xorshift64*), so every run tests the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
    pub fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A named test matrix: `rows` rows of `cols` values.
pub struct Case {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// The matrices every bit-exactness test runs: several shapes (`cols` a multiple of 256 so every
/// type can take them), N(0,1) data, rows of all-equal values, zeros, large magnitudes, tiny values,
/// mixed signs with outliers, values that fall exactly on rounding ties, and integer grids.
pub fn cases() -> Vec<Case> {
    let mut rng = Rng::new(42);
    let mut out = Vec::new();
    let mut push = |name: &str, rows: usize, cols: usize, data: Vec<f32>| {
        assert_eq!(data.len(), rows * cols);
        out.push(Case {
            name: name.to_string(),
            rows,
            cols,
            data,
        });
    };
    push("normal 1x256", 1, 256, rng.normals(256, 1.0));
    push("normal 3x512", 3, 512, rng.normals(3 * 512, 1.0));
    push("normal 7x768", 7, 768, rng.normals(7 * 768, 1.0));
    push("normal 2x4096 *0.02", 2, 4096, rng.normals(2 * 4096, 0.02));
    let mut equal = Vec::new();
    for v in [1.0f32, -1.0, 0.37, -1234.5, 7.0, 1e-3] {
        equal.extend_from_slice(&[v; 256]);
    }
    push("all-equal rows", 6, 256, equal);
    push("zeros", 2, 256, vec![0.0; 512]);
    let mut z = vec![0.0f32; 512];
    z[3] = 1.0;
    z[300] = -2.0;
    push("zeros with one value", 2, 256, z);
    push("large 1e3", 2, 512, rng.normals(1024, 1e3));
    push("large 3e4", 1, 512, rng.normals(512, 3e4));
    push("tiny 1e-6", 2, 256, rng.normals(512, 1e-6));
    push("tiny 1e-20", 1, 256, rng.normals(256, 1e-20));
    let mixed: Vec<f32> = (0..1024)
        .map(|i| {
            let s = if i % 2 == 0 { 1.0 } else { -1.0 };
            let outlier = if i % 97 == 5 { 40.0 } else { 1.0 };
            s * outlier * (0.5 + rng.uniform() as f32)
        })
        .collect();
    push("mixed signs, outliers", 4, 256, mixed);
    let positive: Vec<f32> = (0..512).map(|_| 3.0 + rng.uniform() as f32).collect();
    push("positive offset", 2, 256, positive);
    let negative: Vec<f32> = (0..512)
        .map(|_| -10.0 - 5.0 * rng.uniform() as f32)
        .collect();
    push("negative offset", 2, 256, negative);
    // integers and halves: x * id lands exactly on .5 for several formats
    let grid: Vec<f32> = (0..1024)
        .map(|i| ((i * 7 % 33) as f32 - 16.0) * 0.5)
        .collect();
    push("half-integer grid", 4, 256, grid);
    let ints: Vec<f32> = (0..512).map(|i| ((i * 5 % 17) as f32) - 8.0).collect();
    push("integer grid", 2, 256, ints);
    // max 127 → d = 1 for Q8_0/Q8_1 and iscale = -1 for Q8_K: every other value is a rounding tie
    let ties: Vec<f32> = (0..512)
        .map(|i| {
            if i % 16 == 0 {
                127.0
            } else {
                (i * 3 % 50) as f32 - 25.0 + 0.5
            }
        })
        .collect();
    push("rounding ties at scale 1", 2, 256, ties);
    let cos: Vec<f32> = (0..4096).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect();
    push("ggml test data 0.1+2cos(i)", 1, 4096, cos);
    out
}

/// Raw little-endian f32 file.
pub fn write_f32(path: &Path, data: &[f32]) {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Bytes of `n` values of `ty`.
pub fn row_bytes(ty: GgmlType, n: usize) -> usize {
    ty.row_size(n as u64).unwrap() as usize
}

/// The index and values of the first pair that differ bitwise (NaN equals NaN), if any.
pub fn first_float_mismatch(a: &[f32], b: &[f32]) -> Option<(usize, f32, f32)> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))
        .map(|(i, (x, y))| (i, *x, *y))
}

/// Index of the first differing byte, if any.
pub fn first_byte_mismatch(a: &[u8], b: &[u8]) -> Option<usize> {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// Random bytes for `blocks` blocks of `ty`: every quant and scale encoding occurs (including f16
/// scales that are inf or NaN; comparisons treat NaN as equal to NaN).
pub fn random_blocks(ty: GgmlType, blocks: usize, rng: &mut Rng) -> Vec<u8> {
    rng.bytes(blocks * ty.type_size())
}

/// A fresh temporary folder.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
