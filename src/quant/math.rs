//! Scalar rounding helpers with exactly the results ggml's C reference code gets.

/// ggml's `nearest_int`: rounds to nearest (ties to even) by adding 1.5 × 2^23 and reading the low
/// mantissa bits back. ggml asserts `|x| <= 4194303` in debug builds only; outside that range (and for
/// inf/NaN) the bit trick still gives a deterministic value, which we reproduce.
#[inline(always)]
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// A C float → integer conversion (`(int)v`, `(int8_t)v`, …) as x86-64 compilers emit it
/// (`cvttss2si`): truncation toward zero, and the "integer indefinite" `i32::MIN` for NaN and
/// values outside the i32 range (C leaves those undefined; this is what a ggml built for x86-64
/// produces). Narrower C targets then keep the low bits (`as u8`/`as i8` on the result).
#[inline(always)]
pub fn c_trunc(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// C's `roundf` (ties away from zero) converted to an integer type as above.
#[inline(always)]
pub fn c_roundf(v: f32) -> i32 {
    c_trunc(v.round())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.4999), -2);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
        assert_eq!(nearest_int(f32::INFINITY), -0x40_0000);
    }

    #[test]
    fn c_conversions() {
        assert_eq!(c_trunc(-0.9), 0);
        assert_eq!(c_trunc(15.99), 15);
        assert_eq!(c_trunc(f32::NAN), i32::MIN);
        assert_eq!(c_trunc(f32::INFINITY), i32::MIN);
        assert_eq!(c_trunc(3e9), i32::MIN);
        assert_eq!(c_roundf(2.5), 3);
        assert_eq!(c_roundf(-2.5), -3);
        assert_eq!(c_roundf(-0.4), 0);
    }
}
