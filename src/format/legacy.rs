//! Legacy containers of llm-rs 0.2.15 / early llama.cpp: unversioned GGML, GGMF v1, GGJT v1–v3.

use super::{ModelFile, Storage};
use crate::error::{Error, Result};
use crate::Architecture;
use std::path::PathBuf;

/// The magic number at the start of a legacy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyMagic {
    Ggml,
    Ggmf,
    Ggjt,
}

impl LegacyMagic {
    /// Recognises the magic (a little-endian u32: 0x67676d6c GGML, 0x67676d66 GGMF, 0x67676a74 GGJT).
    pub fn from_bytes(bytes: [u8; 4]) -> Option<LegacyMagic> {
        match u32::from_le_bytes(bytes) {
            0x6767_6d6c => Some(LegacyMagic::Ggml),
            0x6767_6d66 => Some(LegacyMagic::Ggmf),
            0x6767_6a74 => Some(LegacyMagic::Ggjt),
            _ => None,
        }
    }
}

/// Reads a legacy file.
pub(crate) fn read(
    path: PathBuf,
    _data: Storage,
    _magic: LegacyMagic,
    _arch_hint: Option<Architecture>,
) -> Result<ModelFile> {
    Err(Error::unsupported(format!(
        "{}: legacy reading is not implemented yet",
        path.display()
    )))
}
