//! The SIMD kernels of this CPU (`Kernels::detect`: AVX2 on x86-64, NEON on aarch64) against the
//! scalar reference, on random data: odd numbers of blocks, extreme magnitudes, random bit patterns
//! (NaN-free). Activation quantizers must match byte for byte; dot products may differ only by float
//! summation order, bounded relative to Σ|wᵢ·aᵢ| (plus the min/offset terms for the asymmetric
//! formats, whose partial sums can cancel).

use super::*;
use crate::format::GgmlType;
use crate::quant::k_quants::fill_bsums;

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
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// A finite f16 scale of roughly `scale`.
    fn half(&mut self, scale: f32) -> Half {
        Half::from_f32(self.normal() * scale)
    }
}

fn simd() -> Kernels {
    let k = Kernels::detect(true);
    if k.name == "scalar" {
        eprintln!("no SIMD kernel set on this CPU: comparing scalar with itself");
    }
    k
}

/// Weight scales; with activation scales up to 10 every f16 field (Q8_1's `s = d·Σq` included)
/// stays finite, as the comparison needs.
const SCALES: [f32; 5] = [1e-4, 1e-2, 1.0, 100.0, 1e3];
const BLOCK_COUNTS: [usize; 5] = [1, 3, 7, 33, 2];

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Random weight bytes of `blocks` blocks of `ty`: random quant bits, finite random f16 scales.
fn random_weights(ty: GgmlType, blocks: usize, scale: f32, rng: &mut Rng) -> Vec<u8> {
    let mut b = rng.bytes(blocks * ty.type_size());
    macro_rules! fix {
        ($t:ty, |$x:ident| $body:expr) => {
            for $x in cast_mut::<$t>(&mut b) {
                $body;
            }
        };
    }
    match ty {
        GgmlType::Q4_0 => fix!(BlockQ4_0, |x| x.d = rng.half(scale)),
        GgmlType::Q5_0 => fix!(BlockQ5_0, |x| x.d = rng.half(scale)),
        GgmlType::Q8_0 => fix!(BlockQ8_0, |x| x.d = rng.half(scale)),
        GgmlType::Q4_1 => fix!(BlockQ4_1, |x| {
            x.d = rng.half(scale);
            x.m = rng.half(scale * 8.0)
        }),
        GgmlType::Q5_1 => fix!(BlockQ5_1, |x| {
            x.d = rng.half(scale);
            x.m = rng.half(scale * 16.0)
        }),
        GgmlType::Q2_K => fix!(BlockQ2K, |x| {
            x.d = rng.half(scale);
            x.dmin = rng.half(scale)
        }),
        GgmlType::Q3_K => fix!(BlockQ3K, |x| x.d = rng.half(scale)),
        GgmlType::Q4_K => fix!(BlockQ4K, |x| {
            x.d = rng.half(scale);
            x.dmin = rng.half(scale)
        }),
        GgmlType::Q5_K => fix!(BlockQ5K, |x| {
            x.d = rng.half(scale);
            x.dmin = rng.half(scale)
        }),
        GgmlType::Q6_K => fix!(BlockQ6K, |x| x.d = rng.half(scale)),
        _ => unreachable!(),
    }
    b
}

/// The same blocks with every quant set to zero: dequantized, they are the offset (min) terms.
fn zero_quants(ty: GgmlType, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut b = bytes.to_vec();
    match ty {
        GgmlType::Q4_1 => cast_mut::<BlockQ4_1>(&mut b)
            .iter_mut()
            .for_each(|x| x.qs = [0; 16]),
        GgmlType::Q5_1 => cast_mut::<BlockQ5_1>(&mut b).iter_mut().for_each(|x| {
            x.qs = [0; 16];
            x.qh = [0; 4]
        }),
        GgmlType::Q2_K => cast_mut::<BlockQ2K>(&mut b)
            .iter_mut()
            .for_each(|x| x.qs = [0; 64]),
        GgmlType::Q4_K => cast_mut::<BlockQ4K>(&mut b)
            .iter_mut()
            .for_each(|x| x.qs = [0; 128]),
        GgmlType::Q5_K => cast_mut::<BlockQ5K>(&mut b).iter_mut().for_each(|x| {
            x.qs = [0; 128];
            x.qh = [0; 32]
        }),
        _ => return None,
    }
    Some(b)
}

/// Random activations of `n` values in `ty` (Q8_0, Q8_1 or Q8_K): quants in −127..=127.
fn random_activations(ty: GgmlType, n: usize, scale: f32, rng: &mut Rng) -> Vec<u8> {
    let mut b = rng.bytes(ty.row_size(n as u64).unwrap() as usize);
    let q = |v: u8| if v == 0x80 { 0x81u8 as i8 } else { v as i8 };
    match ty {
        GgmlType::Q8_0 => cast_mut::<BlockQ8_0>(&mut b).iter_mut().for_each(|y| {
            y.qs.iter_mut().for_each(|v| *v = q(*v as u8));
            y.d = rng.half(scale);
        }),
        GgmlType::Q8_1 => cast_mut::<BlockQ8_1>(&mut b).iter_mut().for_each(|y| {
            y.qs.iter_mut().for_each(|v| *v = q(*v as u8));
            y.d = rng.half(scale);
            let sum: i32 = y.qs.iter().map(|&v| v as i32).sum();
            y.s = Half::from_f32(sum as f32 * y.d.to_f32());
        }),
        GgmlType::Q8_K => cast_mut::<BlockQ8K>(&mut b).iter_mut().for_each(|y| {
            y.qs.iter_mut().for_each(|v| *v = q(*v as u8));
            y.d = LeF32::new(rng.normal() * scale);
            fill_bsums(y);
        }),
        _ => unreachable!(),
    }
    b
}

fn dequant(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    crate::quant::dequantize(ty, bytes, &mut out).unwrap();
    out
}

fn call_dot(k: &Kernels, ty: GgmlType, w: &[u8], a: &[u8]) -> f32 {
    use GgmlType::*;
    match ty {
        Q4_0 => (k.dot_q4_0)(cast(w), cast(a)),
        Q4_1 => (k.dot_q4_1)(cast(w), cast(a)),
        Q5_0 => (k.dot_q5_0)(cast(w), cast(a)),
        Q5_1 => (k.dot_q5_1)(cast(w), cast(a)),
        Q8_0 => (k.dot_q8_0)(cast(w), cast(a)),
        Q2_K => (k.dot_q2_k)(cast(w), cast(a)),
        Q3_K => (k.dot_q3_k)(cast(w), cast(a)),
        Q4_K => (k.dot_q4_k)(cast(w), cast(a)),
        Q5_K => (k.dot_q5_k)(cast(w), cast(a)),
        Q6_K => (k.dot_q6_k)(cast(w), cast(a)),
        F32 => (k.dot_f32)(w, a),
        F16 => (k.dot_f16)(w, a),
        BF16 => (k.dot_bf16)(w, a),
        _ => unreachable!(),
    }
}

fn check_dot(k: &Kernels, ty: GgmlType, w: &[u8], a: &[u8], n: usize, what: &str) {
    let act = crate::quant::vec_dot_type(ty).unwrap_or(GgmlType::F32);
    let wd = dequant(ty, w, n);
    let ad = dequant(act, a, n);
    let mut s: f64 = wd.iter().zip(&ad).map(|(x, y)| (x * y).abs() as f64).sum();
    if let Some(z) = zero_quants(ty, w) {
        let off = dequant(ty, &z, n);
        s += off
            .iter()
            .zip(&ad)
            .map(|(x, y)| (x * y).abs() as f64)
            .sum::<f64>();
    }
    let blocks = n / ty.block_size();
    let terms = if ty.block_size() == 1 { n / 8 } else { blocks };
    let tol = 3e-7 * (terms as f64 + 8.0) * s;
    let want = call_dot(&Kernels::SCALAR, ty, w, a);
    let got = call_dot(k, ty, w, a);
    assert!(want.is_finite(), "{ty} {what}: test data overflowed");
    assert!(
        ((got as f64) - (want as f64)).abs() <= tol,
        "{} {ty} {what}, {n} values: {} got {got}, scalar {want} (tolerance {tol:e})",
        k.name,
        k.name
    );
}

const QUANT_TYPES: [GgmlType; 10] = [
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

#[test]
fn quantized_dots_match_scalar_on_random_bits() {
    let k = simd();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for ty in QUANT_TYPES {
        let act = crate::quant::vec_dot_type(ty).unwrap();
        for blocks in BLOCK_COUNTS {
            for &ws in &SCALES {
                for &as_ in &[1e-3f32, 1.0, 10.0] {
                    for _ in 0..3 {
                        let n = blocks * ty.block_size();
                        let w = random_weights(ty, blocks, ws, &mut rng);
                        let a = random_activations(act, n, as_, &mut rng);
                        check_dot(&k, ty, &w, &a, n, "random bits");
                    }
                }
            }
        }
        // a single block many times: every scale / quant combination shows up
        for _ in 0..300 {
            let w = random_weights(ty, 1, 1.0, &mut rng);
            let a = random_activations(act, ty.block_size(), 1.0, &mut rng);
            check_dot(&k, ty, &w, &a, ty.block_size(), "single block");
        }
    }
}

#[test]
fn quantized_dots_match_scalar_on_quantized_data() {
    let k = simd();
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    for ty in QUANT_TYPES {
        let act = crate::quant::vec_dot_type(ty).unwrap();
        for blocks in BLOCK_COUNTS {
            for &scale in &SCALES {
                let n = blocks * ty.block_size();
                let (x, y) = (rng.normals(n, scale * 10.0), rng.normals(n, 1.0));
                let mut w = vec![0u8; ty.row_size(n as u64).unwrap() as usize];
                crate::quant::quantize(ty, &x, &mut w).unwrap();
                let mut a = vec![0u8; act.row_size(n as u64).unwrap() as usize];
                crate::quant::quantize(act, &y, &mut a).unwrap();
                check_dot(&k, ty, &w, &a, n, "quantized N(0,1)");
            }
        }
    }
}

#[test]
fn float_dots_match_scalar() {
    let k = simd();
    let mut rng = Rng(0x0f0f_1234_4321_f0f0);
    let lengths: Vec<usize> = (1..=70).chain([127, 128, 129, 1000, 4097]).collect();
    for n in lengths {
        for &scale in &[1e-3f32, 1.0, 1e3] {
            let x = rng.normals(n, scale);
            let a = f32_bytes(&rng.normals(n, 1.0));
            let w32 = f32_bytes(&x);
            check_dot(&k, GgmlType::F32, &w32, &a, n, "f32");
            let w16: Vec<u8> = x
                .iter()
                .flat_map(|&v| crate::quant::float16::f32_to_f16(v).to_le_bytes())
                .collect();
            check_dot(&k, GgmlType::F16, &w16, &a, n, "f16");
            let wb: Vec<u8> = x
                .iter()
                .flat_map(|&v| crate::quant::float16::f32_to_bf16(v).to_le_bytes())
                .collect();
            check_dot(&k, GgmlType::BF16, &wb, &a, n, "bf16");
        }
    }
}

/// Activation data that exercises the quantizers' corner cases.
fn activation_rows(rng: &mut Rng) -> Vec<Vec<f32>> {
    let mut rows = Vec::new();
    for &s in &[1e-38f32, 1e-30, 1e-6, 1.0, 1e4, 1e30, 3e38] {
        rows.push(rng.normals(256 * 3, s));
    }
    rows.push(vec![0.0; 512]);
    rows.push(
        (0..512)
            .map(|i| {
                if i % 16 == 0 {
                    127.0
                } else {
                    (i % 40) as f32 - 20.5
                }
            })
            .collect(),
    );
    rows.push(
        (0..256)
            .map(|i| if i % 2 == 0 { -3.0 } else { 3.0 })
            .collect(),
    );
    let mut special = rng.normals(256 * 4, 1.0);
    special[5] = f32::INFINITY;
    special[300] = f32::NAN;
    special[600] = -f32::INFINITY;
    special[900] = f32::from_bits(1); // smallest subnormal
    rows.push(special);
    let mut tiny = vec![0.0f32; 256];
    tiny[17] = f32::from_bits(3);
    tiny[18] = -f32::from_bits(3);
    rows.push(tiny);
    rows
}

#[test]
fn activation_quantizers_match_scalar_bytes() {
    let k = simd();
    let mut rng = Rng(0x5555_aaaa_3333_cccc);
    for x in activation_rows(&mut rng) {
        let n = x.len();
        let mut ours = vec![BlockQ8_0::zeroed(); n / 32];
        let mut want = ours.clone();
        (k.quantize_q8_0)(&x, &mut ours);
        (Kernels::SCALAR.quantize_q8_0)(&x, &mut want);
        assert_eq!(as_bytes(&ours), as_bytes(&want), "q8_0 {}", k.name);
        let mut ours = vec![BlockQ8_1::zeroed(); n / 32];
        let mut want = ours.clone();
        (k.quantize_q8_1)(&x, &mut ours);
        (Kernels::SCALAR.quantize_q8_1)(&x, &mut want);
        assert_eq!(as_bytes(&ours), as_bytes(&want), "q8_1 {}", k.name);
        let mut ours = vec![BlockQ8K::zeroed(); n / 256];
        let mut want = ours.clone();
        (k.quantize_q8_k)(&x, &mut ours);
        (Kernels::SCALAR.quantize_q8_k)(&x, &mut want);
        assert_eq!(as_bytes(&ours), as_bytes(&want), "q8_k {}", k.name);
    }
}

#[test]
fn dispatch_uses_detected_kernels() {
    let name = crate::quant::kernel_name();
    if std::env::var("FERROLLM_KERNELS").is_ok_and(|v| v == "scalar") {
        assert_eq!(name, "scalar");
    } else {
        assert_eq!(name, Kernels::detect(true).name);
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(Kernels::detect(true).name, "neon");
}

/// The scalar reference itself against Σ dequantized weight × dequantized activation (in f64):
/// activation scales are powers of two and Q8_1 quants stay within ±63, so Q8_1's f16 `s = d·Σq` is
/// exact and the two sides agree up to float rounding.
#[test]
fn scalar_dots_equal_dequantized_dot() {
    let mut rng = Rng(0x7777_1111_2222_9999);
    for ty in QUANT_TYPES {
        let act = crate::quant::vec_dot_type(ty).unwrap();
        for blocks in BLOCK_COUNTS {
            for _ in 0..20 {
                let n = blocks * ty.block_size();
                let w = random_weights(ty, blocks, 1.0, &mut rng);
                let mut a = random_activations(act, n, 1.0, &mut rng);
                let d = (2.0f32).powi(-((rng.next() % 12) as i32));
                match act {
                    GgmlType::Q8_0 => cast_mut::<BlockQ8_0>(&mut a)
                        .iter_mut()
                        .for_each(|y| y.d = Half::from_f32(d)),
                    GgmlType::Q8_1 => cast_mut::<BlockQ8_1>(&mut a).iter_mut().for_each(|y| {
                        y.qs.iter_mut().for_each(|q| *q /= 2);
                        y.d = Half::from_f32(d);
                        let sum: i32 = y.qs.iter().map(|&q| q as i32).sum();
                        y.s = Half::from_f32(sum as f32 * d);
                        assert_eq!(y.s.to_f32(), sum as f32 * d);
                    }),
                    _ => cast_mut::<BlockQ8K>(&mut a)
                        .iter_mut()
                        .for_each(|y| y.d = LeF32::new(d)),
                }
                let (wd, ad) = (dequant(ty, &w, n), dequant(act, &a, n));
                let exact: f64 = wd.iter().zip(&ad).map(|(&x, &y)| x as f64 * y as f64).sum();
                let mut s: f64 = wd.iter().zip(&ad).map(|(x, y)| (x * y).abs() as f64).sum();
                if let Some(z) = zero_quants(ty, &w) {
                    let off = dequant(ty, &z, n);
                    s += off
                        .iter()
                        .zip(&ad)
                        .map(|(x, y)| (x * y).abs() as f64)
                        .sum::<f64>();
                }
                let got = call_dot(&Kernels::SCALAR, ty, &w, &a) as f64;
                let tol = 3e-7 * (blocks as f64 + 8.0) * s;
                assert!(
                    (got - exact).abs() <= tol,
                    "{ty}, {n} values: scalar {got}, exact {exact}"
                );
            }
        }
    }
}
