//! File containers: GGUF, the legacy GGML/GGMF/GGJT family, and the `.meta` JSON sidecar of llm-rs.
//!
//! Every container is read into one shape, [`ModelFile`]: an mmap of the file, ordered metadata in
//! GGUF's vocabulary (legacy hyperparameters are mapped onto the same keys), and a tensor table whose
//! entries point into the mmap (zero-copy views). Every container is written through one streaming
//! interface, [`TensorWriter`]: tensors are declared up front (GGUF needs their offsets in its header)
//! and their bytes are written one tensor at a time into a temporary file that is renamed into place
//! by `finish`.

pub mod gguf;
pub mod legacy;
pub mod meta;
pub mod output;
pub mod report;
pub mod types;
pub mod value;
pub mod vocab;

pub use output::OutputFile;
pub use types::GgmlType;
pub use value::{Metadata, Value, ValueType};

use crate::error::{Error, IoContext, Result};
use crate::Architecture;
use std::fmt;
use std::path::{Path, PathBuf};

/// A family of file layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    /// GGUF (versions 2 and 3 read; version 3 written).
    Gguf,
    /// GGJT (versions 1–3 read; version 3 written): llm-rs' default, 32-byte aligned tensor data.
    Ggjt,
    /// GGMF version 1 (read only).
    Ggmf,
    /// Unversioned GGML.
    Ggml,
}

impl Container {
    /// Lower-case name: "gguf", "ggjt", "ggmf", "ggml".
    pub fn name(self) -> &'static str {
        match self {
            Container::Gguf => "gguf",
            Container::Ggjt => "ggjt",
            Container::Ggmf => "ggmf",
            Container::Ggml => "ggml",
        }
    }
    pub fn from_name(name: &str) -> Option<Container> {
        match name.to_ascii_lowercase().as_str() {
            "gguf" => Some(Container::Gguf),
            "ggjt" => Some(Container::Ggjt),
            "ggmf" => Some(Container::Ggmf),
            "ggml" => Some(Container::Ggml),
            _ => None,
        }
    }
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a file: where its bytes are and how to read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    /// Dimensions, innermost (contiguous) first, as ggml counts them.
    pub shape: Vec<u64>,
    /// Absolute offset of the first byte of the tensor's data in the file.
    pub offset: u64,
    /// Number of bytes of data (`ty.tensor_size(&shape)`).
    pub size: u64,
}

impl TensorInfo {
    /// Number of values.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A tensor that a [`TensorWriter`] will write: declared before any data is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub ty: GgmlType,
    /// Dimensions, innermost first.
    pub shape: Vec<u64>,
}

/// A legacy (GGML/GGMF/GGJT) embedded vocabulary: raw token bytes (not necessarily valid UTF-8)
/// and, from GGMF on, a score per token.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LegacyVocab {
    pub tokens: Vec<Vec<u8>>,
    pub scores: Vec<f32>,
}

/// A model file opened for reading: the mmap, its metadata and its tensor table.
pub struct ModelFile {
    pub path: PathBuf,
    pub container: Container,
    /// Container version (GGUF 2 or 3, GGJT 1–3, GGMF 1; 0 for unversioned GGML).
    pub version: u32,
    /// Metadata in GGUF's key vocabulary (`general.architecture`, `llama.block_count`, …). For legacy
    /// files the architecture's hyperparameters are mapped onto these keys.
    pub metadata: Metadata,
    /// The embedded vocabulary of a legacy file (GGUF keeps its vocabulary in `metadata`).
    pub legacy_vocab: Option<LegacyVocab>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    data: Storage,
}

/// The bytes of a model file: a read-only mmap, or an owned buffer (tests, fuzzing).
pub(crate) enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

impl ModelFile {
    /// Opens and maps a model file of any supported container, recognised by its magic.
    ///
    /// `arch_hint` tells a legacy reader which hyperparameter layout to expect; without it the
    /// `.meta` sidecar is consulted, then the layouts are tried in turn. GGUF files name their own
    /// architecture and ignore the hint.
    ///
    /// The file is memory-mapped: it must not be modified while the `ModelFile` lives.
    pub fn open(path: &Path, arch_hint: Option<Architecture>) -> Result<ModelFile> {
        let file = std::fs::File::open(path).at(path, "open")?;
        if file.metadata().at(path, "read the size of")?.len() == 0 {
            return Err(Error::format(path, "file is empty"));
        }
        // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not being
        // truncated or modified while it is mapped (documented above).
        let map = unsafe { memmap2::Mmap::map(&file) }.at(path, "memory-map")?;
        Self::parse(path.to_path_buf(), Storage::Mapped(map), arch_hint)
    }

    /// Reads a model file held in memory; `path` only names it in messages. Used by tests and fuzzing.
    pub fn from_bytes(
        path: &Path,
        bytes: Vec<u8>,
        arch_hint: Option<Architecture>,
    ) -> Result<ModelFile> {
        Self::parse(path.to_path_buf(), Storage::Owned(bytes), arch_hint)
    }

    fn parse(path: PathBuf, data: Storage, arch_hint: Option<Architecture>) -> Result<ModelFile> {
        let Some(magic) = data.get(..4) else {
            return Err(Error::format(
                &path,
                format!(
                    "file is {} bytes long, too short for a model file",
                    data.len()
                ),
            ));
        };
        let magic: [u8; 4] = magic.try_into().expect("four bytes");
        match &magic {
            b"GGUF" => gguf::read(path, data),
            _ => match legacy::LegacyMagic::from_bytes(magic) {
                Some(legacy_magic) => legacy::read(path, data, legacy_magic, arch_hint),
                None => Err(Error::format(
                    &path,
                    format!("not a GGUF or GGML-family model file (magic bytes {magic:02x?})"),
                )),
            },
        }
    }

    /// Maps the pages of `offset..offset + len` now (`MADV_POPULATE_READ` on Linux 5.14+, after a
    /// `MADV_WILLNEED` that starts reading them if they are not cached), so that reading them later
    /// takes no page faults. Does nothing for owned buffers or where the OS does not support it.
    pub fn prefault(&self, offset: usize, len: usize) {
        #[cfg(target_os = "linux")]
        if let Storage::Mapped(m) = &self.data {
            let _ = m.advise_range(memmap2::Advice::WillNeed, offset, len);
            let _ = m.advise_range(memmap2::Advice::PopulateRead, offset, len);
        }
        let _ = (offset, len);
    }

    /// Drops the whole pages of tensor `t`'s bytes from this process's resident set, for a
    /// mapped file (see [`release_pages`]): tools that stream through a file tensor by tensor
    /// (the quantizer) then hold one tensor's pages at a time, not the whole file.
    pub fn release(&self, t: &TensorInfo) {
        if let Storage::Mapped(m) = &self.data {
            release_pages(m, t.offset as usize, (t.offset + t.size) as usize);
        }
    }

    /// The bytes of a tensor of this file (a view into the mmap).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        // Readers validate offset + size against the file length before a TensorInfo is made.
        &self.data[t.offset as usize..(t.offset + t.size) as usize]
    }
    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
    /// The architecture name (`general.architecture`), if the file says.
    pub fn architecture(&self) -> Option<&str> {
        self.metadata.get_str("general.architecture")
    }
    /// The whole mapped file.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

/// A streaming writer for one output file. Tensors are written in the order they were declared.
/// Nothing appears at the target path until `finish` succeeds; dropping the writer without `finish`
/// (an error, a cancellation) leaves no file behind.
pub trait TensorWriter {
    /// Writes the bytes of the next declared tensor (exactly its size).
    fn write_tensor(&mut self, data: &[u8]) -> crate::Result<()>;
    /// Completes the file, flushes it to disk and renames it into place.
    fn finish(self: Box<Self>) -> crate::Result<PathBuf>;
}

/// Starts writing a model file in `container`: GGUF v3 (tensor data aligned as `general.alignment`
/// says, default 32), GGJT v3 or unversioned GGML (llm-rs' layouts, which need the architecture
/// and a byte vocabulary). Every job that writes a model file goes through here.
pub fn create_writer(
    path: &Path,
    container: Container,
    arch: Architecture,
    metadata: &Metadata,
    legacy_vocab: Option<&LegacyVocab>,
    tensors: Vec<TensorSpec>,
) -> Result<Box<dyn TensorWriter>> {
    match container {
        Container::Gguf => {
            let alignment = metadata
                .get_u64("general.alignment")
                .unwrap_or(gguf::DEFAULT_ALIGNMENT);
            Ok(Box::new(gguf::GgufWriter::create(
                path, metadata, &tensors, alignment,
            )?))
        }
        Container::Ggjt | Container::Ggml => {
            let format = legacy::LegacyFormat {
                container,
                version: if container == Container::Ggjt { 3 } else { 0 },
            };
            let vocab = match legacy_vocab {
                Some(v) => v.clone(),
                None => vocab::legacy_vocab_from_metadata(metadata)?,
            };
            Ok(Box::new(legacy::LegacyWriter::create(
                path, format, arch, metadata, &vocab, tensors,
            )?))
        }
        Container::Ggmf => Err(Error::unsupported(
            "ferrollm reads GGMF files but writes only GGUF, GGJT (v3) and GGML",
        )),
    }
}

/// Drops from the resident set the whole pages of `map` within `start..end`; the bytes stay
/// readable (they are read again from the file, usually from the page cache, if touched).
pub(crate) fn release_pages(map: &memmap2::Mmap, start: usize, end: usize) {
    #[cfg(unix)]
    {
        let page = 4096;
        let start = start.next_multiple_of(page);
        let end = end.min(map.len()) / page * page;
        if end > start {
            // SAFETY: MADV_DONTNEED on a read-only, file-backed shared mapping only drops
            // resident pages; later reads fault them in again from the unchanged file, so
            // no slice into the map ever observes different bytes.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
    #[cfg(not(unix))]
    let _ = (map, start, end);
}
