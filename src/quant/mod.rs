//! TEMPORARY stand-in for the quant module being written on branch `quant` (F32/F16 only), so the
//! engine compiles meanwhile. Replaced wholesale when that branch is merged.
use crate::error::{Error, Result};
use crate::format::GgmlType;
use half::f16;

pub fn vec_dot_type(ty: GgmlType) -> Option<GgmlType> {
    match ty {
        GgmlType::F32 | GgmlType::F16 => None,
        _ => Some(GgmlType::Q8_0),
    }
}
pub fn can_dequantize(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16)
}
pub fn quantize(ty: GgmlType, _src: &[f32], _dst: &mut [u8]) -> Result<()> {
    Err(Error::unsupported(format!("quantize {ty}")))
}
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    match ty {
        GgmlType::F32 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes(c.try_into().unwrap());
            }
        }
        GgmlType::F16 => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f16::from_le_bytes(c.try_into().unwrap()).to_f32();
            }
        }
        _ => return Err(Error::unsupported(format!("dequantize {ty}"))),
    }
    Ok(())
}
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<f32> {
    let mut wf = vec![0f32; n];
    dequantize(ty, w, &mut wf)?;
    let mut s = 0f32;
    for (x, c) in wf.iter().zip(a.chunks_exact(4)) {
        s += x * f32::from_le_bytes(c.try_into().unwrap());
    }
    Ok(s)
}
