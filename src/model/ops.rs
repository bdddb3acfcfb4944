//! Element-wise and row-wise operations of the decoder: norms, activations, rotary embeddings, ALiBi
//! slopes, softmax. All work on f32 rows; the formulas follow transformers' float32 code for each
//! architecture (noted per function), which the tests compare against.

/// LayerNorm over one row: `(x - mean) / sqrt(var + eps) * w + b`, variance without Bessel's
/// correction (torch.nn.LayerNorm). Accumulates in f64 so long rows keep their precision.
pub fn layer_norm(x: &mut [f32], weight: &[f32], bias: Option<&[f32]>, eps: f32) {
    let n = x.len() as f64;
    let mean = sum_f64(x, |v| v) / n;
    let var = sum_f64(x, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps as f64).sqrt();
    for (i, v) in x.iter_mut().enumerate() {
        let normed = ((*v as f64 - mean) * inv) as f32;
        *v = normed * weight[i] + bias.map_or(0.0, |b| b[i]);
    }
}

/// RMSNorm over one row: `x / sqrt(mean(x²) + eps) * w` (LlamaRMSNorm).
pub fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    let n = x.len() as f64;
    let ms = sum_f64(x, |v| v * v) / n;
    let inv = (1.0 / (ms + eps as f64).sqrt()) as f32;
    for (v, w) in x.iter_mut().zip(weight) {
        *v = *v * inv * w;
    }
}

/// `Σ f(x_i)` in f64, over 8 independent partial sums: the compiler can vectorise it, where one
/// running sum waited for every addition (four cycles each: about 3 µs for a row of 2048, a norm
/// of 1.1B generation, of which a token has 45).
fn sum_f64(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    const L: usize = 8;
    let mut acc = [0f64; L];
    let chunks = x.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v as f64);
        }
    }
    acc.iter().sum::<f64>() + rest.iter().map(|&v| f(v as f64)).sum::<f64>()
}

/// The activation function of the feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, BLOOM's `bloom_gelu`).
    GeluTanh,
    /// Exact GELU with erf (`nn.GELU()`, `gelu`).
    GeluErf,
    /// SiLU, used gated (`silu(gate) * up`) by LLaMA.
    Silu,
}

impl Activation {
    /// The activation named like transformers' `hidden_act` values.
    pub fn from_hf_name(name: &str) -> Option<Activation> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "bloom_gelu" => {
                Some(Activation::GeluTanh)
            }
            "gelu" => Some(Activation::GeluErf),
            "silu" | "swish" => Some(Activation::Silu),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Activation::GeluTanh => "gelu_tanh",
            Activation::GeluErf => "gelu",
            Activation::Silu => "silu",
        }
    }

    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::GeluTanh => {
                // 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
            }
            Activation::GeluErf => {
                0.5 * x * (1.0 + libm::erf(x as f64 / std::f64::consts::SQRT_2) as f32)
            }
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }
}

/// Which pairs of a head's dimensions a rotary embedding rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (0,1), (2,3), … — GPT-J's `rotate_every_two`; also LLaMA in GGUF files,
    /// whose Q/K rows the converter permutes (as llama.cpp's converter does) so this style applies.
    Interleaved,
    /// Halves (i, i + n_rot/2) — GPT-NeoX's `rotate_half`.
    Neox,
}

/// Rotary position embedding of one head vector at position `pos`: the first `n_rot` dimensions
/// are rotated, the rest pass through. The angle of pair i is `pos * freq_scale * theta^(-2i/n_rot)`
/// (transformers computes `inv_freq` in float32; computing the angle in f64 differs by far less
/// than the test tolerance).
pub fn rope(
    head: &mut [f32],
    pos: usize,
    n_rot: usize,
    theta: f32,
    freq_scale: f32,
    style: RopeStyle,
) {
    let half = n_rot / 2;
    for i in 0..half {
        let inv_freq = (theta as f64).powf(-(2.0 * i as f64) / n_rot as f64);
        let angle = pos as f64 * freq_scale as f64 * inv_freq;
        let (sin, cos) = angle.sin_cos();
        let (sin, cos) = (sin as f32, cos as f32);
        let (a, b) = match style {
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            RopeStyle::Neox => (i, i + half),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos - x1 * sin;
        head[b] = x0 * sin + x1 * cos;
    }
}

/// How an architecture derives its ALiBi slopes when the head count is not a power of two
/// (for a power of two both give `2^(-max_bias (h+1) / n_head)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlibiRule {
    /// BLOOM (and ggml's `ggml_soft_max_ext`): the closest lower power of two p gets slopes
    /// `m0^(h+1)`, `m0 = 2^(-max_bias/p)`; the remaining heads take the odd powers of
    /// `m1 = 2^(-max_bias/(2p))`.
    Bloom,
    /// MPT (`build_mpt_alibi_tensor`): slopes for the next power of two P,
    /// `2^(-(h+1) max_bias / P)`, taken at the odd indices then the even ones.
    Mpt,
}

/// The ALiBi slope of every head.
pub fn alibi_slopes(n_head: usize, max_bias: f32, rule: AlibiRule) -> Vec<f32> {
    match rule {
        AlibiRule::Bloom => {
            let p = 1usize << (usize::BITS - 1 - n_head.leading_zeros()); // floor power of two
            let m0 = 2f64.powf(-(max_bias as f64) / p as f64);
            let m1 = 2f64.powf(-(max_bias as f64) / 2.0 / p as f64);
            (0..n_head)
                .map(|h| {
                    if h < p {
                        m0.powi(h as i32 + 1) as f32
                    } else {
                        m1.powi(2 * (h - p) as i32 + 1) as f32
                    }
                })
                .collect()
        }
        AlibiRule::Mpt => {
            let p = n_head.next_power_of_two();
            let all: Vec<f32> = (1..=p)
                .map(|i| (1.0 / 2f64.powf(i as f64 * max_bias as f64 / p as f64)) as f32)
                .collect();
            if p == n_head {
                all
            } else {
                all.iter()
                    .skip(1)
                    .step_by(2)
                    .chain(all.iter().step_by(2))
                    .take(n_head)
                    .copied()
                    .collect()
            }
        }
    }
}

/// In-place softmax of one row (max-subtracted, f32 like torch's float32 softmax).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = (crate::quant::kernels::get().exp_shift)(x, max);
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alibi_power_of_two_rules_agree() {
        for n in [1, 2, 4, 8, 16] {
            let a = alibi_slopes(n, 8.0, AlibiRule::Bloom);
            let b = alibi_slopes(n, 8.0, AlibiRule::Mpt);
            for h in 0..n {
                let want = 2f32.powf(-8.0 * (h as f32 + 1.0) / n as f32);
                assert!(
                    (a[h] - want).abs() < 1e-7 && (b[h] - want).abs() < 1e-7,
                    "n={n} h={h}"
                );
            }
        }
    }

    #[test]
    fn bloom_slopes_for_six_heads() {
        // BLOOM's formula for 6 heads: p = 4; base 2^-2 for 4 heads, then 2^-1 to the powers 1, 3.
        let s = alibi_slopes(6, 8.0, AlibiRule::Bloom);
        let want = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{s:?}");
        }
    }

    #[test]
    fn mpt_slopes_for_six_heads() {
        // P = 8: slopes 2^-1 … 2^-8; odd indices (2^-2, 2^-4, 2^-6, 2^-8) then even (2^-1, 2^-3).
        let s = alibi_slopes(6, 8.0, AlibiRule::Mpt);
        let want = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{s:?}");
        }
    }

    #[test]
    fn rope_styles_rotate_different_pairs() {
        let mut a = [1.0, 0.0, 0.0, 0.0];
        rope(&mut a, 1, 4, 10000.0, 1.0, RopeStyle::Interleaved);
        assert!((a[0] - 1f32.cos()).abs() < 1e-6 && (a[1] - 1f32.sin()).abs() < 1e-6);
        let mut b = [1.0, 0.0, 0.0, 0.0];
        rope(&mut b, 1, 4, 10000.0, 1.0, RopeStyle::Neox);
        assert!((b[0] - 1f32.cos()).abs() < 1e-6 && (b[2] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn norms() {
        let mut x = [1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0; 4], Some(&[0.5; 4]), 0.0);
        let sd = 1.25f32.sqrt();
        assert!((x[0] - (0.5 - 1.5 / sd)).abs() < 1e-6);
        let mut y = [3.0, 4.0];
        rms_norm(&mut y, &[2.0, 1.0], 0.0);
        let rms = 12.5f32.sqrt();
        assert!((y[0] - 6.0 / rms).abs() < 1e-6 && (y[1] - 4.0 / rms).abs() < 1e-6);
    }

    #[test]
    fn norms_match_a_plain_f64_reference() {
        let mut rng = crate::sampling::Rng::new(5);
        let mut rnd = || rng.next_f64() as f32 * 4.0 - 1.0;
        for len in [1, 7, 8, 9, 768, 2049] {
            // an offset mean, as hidden states have, to exercise the variance's cancellation
            let x: Vec<f32> = (0..len).map(|_| rnd() + 3.0).collect();
            let w: Vec<f32> = (0..len).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..len).map(|_| rnd()).collect();
            let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let n = len as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let ms = xs.iter().map(|v| v * v).sum::<f64>() / n;
            let eps = 1e-5;
            let mut ln = x.clone();
            layer_norm(&mut ln, &w, Some(&b), eps as f32);
            let mut rms = x.clone();
            rms_norm(&mut rms, &w, eps as f32);
            for i in 0..len {
                let want_ln = (xs[i] - mean) / (var + eps).sqrt() * w[i] as f64 + b[i] as f64;
                let want_rms = xs[i] / (ms + eps).sqrt() * w[i] as f64;
                assert!(
                    (ln[i] as f64 - want_ln).abs() < 1e-5,
                    "layer norm, {len} values"
                );
                assert!(
                    (rms[i] as f64 - want_rms).abs() < 1e-5,
                    "RMS norm, {len} values"
                );
            }
        }
    }

    #[test]
    fn gelu_variants() {
        // Reference values of torch.nn.functional.gelu(x) and gelu(x, approximate="tanh") at 1.0.
        assert!((Activation::GeluErf.apply(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((Activation::GeluTanh.apply(1.0) - 0.841_192).abs() < 1e-6);
        assert!((Activation::Silu.apply(1.0) - 0.731_058_6).abs() < 1e-6);
    }
}
