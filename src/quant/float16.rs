//! f32 ⇄ f16 / bf16 conversions with exactly ggml's results.
//!
//! Facts relied on (ggml `ggml/src/ggml-impl.h`, read 2026-11):
//! - `GGML_FP32_TO_FP16` (`ggml_compute_fp32_to_fp16`, the conversion ggml-base and every
//!   `quantize_row_*_ref` uses) rounds to nearest, ties to even, overflows to ±inf, produces f16
//!   subnormals (no flush to zero), and maps **every NaN to `sign | 0x7e00`** (the payload is dropped).
//! - `GGML_FP16_TO_FP32` is exact; a NaN keeps its payload and comes out quiet (bit 22 set, what
//!   the multiplication in ggml's version does on x86-64 and aarch64).
//! - `GGML_FP32_TO_BF16` (`ggml_compute_fp32_to_bf16`) rounds to nearest even by adding
//!   `0x7fff + lsb` to the bits; a NaN becomes `(bits >> 16) | 0x40` (quiet, payload truncated).
//!   `GGML_BF16_TO_FP32` is `bits << 16`. gguf-py's `BF16.quantize_blocks` does the same.
//!
//! The `half` crate (2.x) rounds f32 → f16 and f32 → bf16 to nearest even as well, but keeps NaN
//! payloads in f32 → f16 (ggml does not), and picks a hardware path at run time; so the conversions
//! used for quantized bytes are these small integer functions, and the unit tests below check them
//! against `half` on every non-NaN input class.

/// ggml's f32 → f16 (bits), see the module documentation.
#[inline]
pub fn f32_to_f16(f: f32) -> u16 {
    let bits = f.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let abs = bits & 0x7fff_ffff;
    let magnitude = if abs > 0x7f80_0000 {
        0x7e00 // NaN: ggml's canonical quiet NaN, payload dropped
    } else if abs >= 0x4780_0000 {
        0x7c00 // ≥ 65536 (and inf): infinity
    } else if abs < 0x3880_0000 {
        // Below 2^-14 the result is an f16 subnormal (or zero): count units of 2^-24. Adding 0.5
        // (whose ulp is 2^-24) makes the FPU round that count to nearest even.
        ((f32::from_bits(abs) + 0.5).to_bits() - 0x3f00_0000) as u16
    } else {
        // Normal range: round the 23-bit mantissa to 10 bits (nearest, ties to even; a carry moves
        // into the exponent), then rebias the exponent from 127 to 15. Overflow saturates to inf.
        let rounded = abs + 0x0fff + ((abs >> 13) & 1);
        let h = (rounded >> 13) - (112 << 10);
        h.min(0x7c00) as u16
    };
    sign | magnitude
}

/// Exact f16 (bits) → f32, as ggml (NaNs come out quiet).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0x1f {
        if man == 0 {
            0x7f80_0000
        } else {
            0x7fc0_0000 | (man << 13)
        }
    } else if exp == 0 {
        // zero or subnormal: man × 2^-24, exact in f32
        (man as f32 * f32::from_bits(0x3380_0000)).to_bits()
    } else {
        ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(sign | bits)
}

/// ggml's f32 → bf16 (bits), see the module documentation.
#[inline]
pub fn f32_to_bf16(f: f32) -> u16 {
    let bits = f.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// bf16 (bits) → f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f32 bit patterns that exercise every rounding case: each sign, exponent and top f16 mantissa
    /// bits, combined with the low-bit patterns around the rounding point, plus a pseudo-random sweep.
    fn probe_bits() -> Vec<u32> {
        let mut out = Vec::new();
        let lows = [0u32, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x0800, 0x17ff];
        for high in 0..(1u32 << 19) {
            for &low in &lows {
                out.push((high << 13) | low);
            }
        }
        let mut s = 0x9e37_79b9_u32;
        for _ in 0..2_000_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            out.push(s);
        }
        out
    }

    #[test]
    fn f16_matches_half_on_non_nan() {
        for bits in probe_bits() {
            let f = f32::from_bits(bits);
            if f.is_nan() {
                let h = f32_to_f16(f);
                assert_eq!(h & 0x7fff, 0x7e00, "{bits:#x}");
                assert_eq!(h & 0x8000, ((bits >> 16) & 0x8000) as u16);
                continue;
            }
            assert_eq!(
                f32_to_f16(f),
                half::f16::from_f32(f).to_bits(),
                "f32 bits {bits:#010x}"
            );
        }
    }

    #[test]
    fn f16_to_f32_is_exact() {
        for h in 0..=u16::MAX {
            let ours = f16_to_f32(h);
            let theirs = half::f16::from_bits(h).to_f32();
            if theirs.is_nan() {
                assert!(ours.is_nan());
                assert_eq!(ours.to_bits() & 0x8000_0000, theirs.to_bits() & 0x8000_0000);
                assert_eq!(ours.to_bits() & 0x003f_ffff, theirs.to_bits() & 0x003f_ffff);
            } else {
                assert_eq!(ours.to_bits(), theirs.to_bits(), "{h:#06x}");
                // and every finite f16 round-trips
                assert_eq!(f32_to_f16(ours), h, "{h:#06x}");
            }
        }
    }

    #[test]
    fn bf16_matches_half_on_non_nan() {
        for bits in probe_bits() {
            let f = f32::from_bits(bits);
            let ours = f32_to_bf16(f);
            if f.is_nan() {
                assert_eq!(ours, ((bits >> 16) | 0x40) as u16);
                continue;
            }
            assert_eq!(ours, half::bf16::from_f32(f).to_bits(), "{bits:#010x}");
            assert_eq!(bf16_to_f32(ours), half::bf16::from_bits(ours).to_f32());
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65519.99), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16(-f32::INFINITY), 0xfc00);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(f32_to_f16(f32::from_bits(0x3300_0000)), 0); // 2^-25: tie to even → 0
        assert_eq!(f32_to_f16(f32::from_bits(0x3300_0001)), 1);
        assert_eq!(f32_to_f16(-f32::NAN), 0xfe00);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f7f_ffff)), 0x7f80); // rounds up to inf
    }
}
