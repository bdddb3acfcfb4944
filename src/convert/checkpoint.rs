//! The weights of a Hugging Face checkpoint: `model.safetensors`, or the shards listed by
//! `model.safetensors.index.json`, each memory-mapped and parsed with the `safetensors` crate —
//! or, when a folder has no safetensors weights, PyTorch's `pytorch_model.bin` (or the shards of
//! `pytorch_model.bin.index.json`), read by [`super::torch`] with a restricted unpickler and
//! nothing executed. Safetensors are preferred when a folder has both.
//!
//! Nothing is copied when a checkpoint is opened: the headers are parsed (and fully validated by
//! `safetensors`: offsets contiguous, sizes matching shapes and dtypes, data covering the file) and
//! tensors are views into the maps. After a tensor has been converted its pages can be released
//! ([`Checkpoint::release`]), so the resident memory of a conversion stays near one tensor.

use super::torch::{self, TorchCheckpoint, TorchTensor};
use crate::error::{Error, IoContext, Result};
use memmap2::Mmap;
use safetensors::tensor::SafeTensors;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The single-file weights name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The element type of a checkpoint tensor, as far as conversion cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceType {
    F32,
    F16,
    BF16,
}

impl SourceType {
    pub fn size(self) -> usize {
        match self {
            SourceType::F32 => 4,
            SourceType::F16 | SourceType::BF16 => 2,
        }
    }

    /// Converts `src` (little-endian values of this type) into `out` (same number of values).
    pub fn to_f32(self, src: &[u8], out: &mut [f32]) {
        debug_assert_eq!(src.len(), out.len() * self.size());
        match self {
            SourceType::F32 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            SourceType::F16 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            SourceType::BF16 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
                }
            }
        }
    }
}

/// One tensor of a checkpoint: where it is and what it holds.
#[derive(Clone, Debug)]
pub struct SourceTensor {
    /// Index of its shard (in the order [`Checkpoint::files`] lists them).
    pub shard: usize,
    /// The dtype as safetensors names it ("F32", "BF16", "I64", …; PyTorch dtypes by the same
    /// names, plus "C128").
    pub dtype: String,
    /// Row-major shape, outermost first (PyTorch's order).
    pub shape: Vec<usize>,
    location: Location,
}

/// Where a tensor's bytes are.
#[derive(Clone, Debug)]
enum Location {
    /// Absolute byte range in a safetensors shard file.
    Range { start: usize, end: usize },
    /// A (validated) view on a storage of a PyTorch file.
    Torch(TorchTensor),
}

impl SourceTensor {
    /// The dtype, if conversion supports it.
    pub fn source_type(&self) -> Option<SourceType> {
        match self.dtype.as_str() {
            "F32" => Some(SourceType::F32),
            "F16" => Some(SourceType::F16),
            "BF16" => Some(SourceType::BF16),
            _ => None,
        }
    }

    /// Size of the tensor's values in bytes.
    pub fn nbytes(&self) -> usize {
        match &self.location {
            Location::Range { start, end } => end - start,
            Location::Torch(t) => t.nbytes(),
        }
    }
}

struct Shard {
    path: PathBuf,
    map: Option<Mmap>,
}

/// The opened weights of a checkpoint.
pub struct Checkpoint {
    /// The safetensors files (empty for a PyTorch checkpoint).
    shards: Vec<Shard>,
    /// The PyTorch files, when the weights are `pytorch_model.bin` (sharded or not).
    torch: Option<TorchCheckpoint>,
    tensors: BTreeMap<String, SourceTensor>,
}

impl Checkpoint {
    /// Opens the weights of the model folder `dir`: the index and its shards when
    /// `model.safetensors.index.json` exists, else `model.safetensors`; without either, the
    /// PyTorch weights (`pytorch_model.bin.index.json` and its shards, else `pytorch_model.bin`).
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::open_sharded(dir, &index);
        }
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            let mut ck = Checkpoint {
                shards: Vec::new(),
                torch: None,
                tensors: BTreeMap::new(),
            };
            ck.add_shard(single)?;
            return Ok(ck);
        }
        if dir.join(torch::INDEX_FILE).is_file() || dir.join(torch::SINGLE_FILE).is_file() {
            return Self::from_torch(TorchCheckpoint::open(dir)?);
        }
        Err(Error::new(
            crate::ErrorKind::Format,
            format!(
                "{}: no weights found: expected {SINGLE_FILE}, {INDEX_FILE}, {} or {}",
                dir.display(),
                torch::SINGLE_FILE,
                torch::INDEX_FILE
            ),
        ))
    }

    /// The tensors of an opened PyTorch checkpoint.
    fn from_torch(tc: TorchCheckpoint) -> Result<Checkpoint> {
        let tensors = tc
            .tensors()
            .map(|(name, t)| {
                (
                    name.to_string(),
                    SourceTensor {
                        shard: t.shard(),
                        dtype: t.dtype().name().to_string(),
                        shape: t.shape().to_vec(),
                        location: Location::Torch(t.clone()),
                    },
                )
            })
            .collect();
        Ok(Checkpoint {
            shards: Vec::new(),
            torch: Some(tc),
            tensors,
        })
    }

    fn open_sharded(dir: &Path, index: &Path) -> Result<Checkpoint> {
        let text = std::fs::read_to_string(index).at(index, "read the weights index")?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(index, format!("is not valid JSON: {e}")))?;
        let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) else {
            return Err(Error::format(index, "has no `weight_map` object"));
        };
        // Files in sorted order (deterministic), each opened once.
        let mut files: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (tensor, file) in map {
            let Some(file) = file.as_str() else {
                return Err(Error::format(
                    index,
                    format!("weight_map entry for tensor `{tensor}` is not a file name"),
                ));
            };
            if file.is_empty()
                || Path::new(file).components().count() != 1
                || file.contains(['/', '\\'])
            {
                return Err(Error::format(
                    index,
                    format!("weight_map names shard `{file}` for tensor `{tensor}`: shards must be plain file names in the model folder"),
                ));
            }
            files.entry(file).or_default().push(tensor);
        }
        if files.is_empty() {
            return Err(Error::format(index, "weight_map is empty"));
        }
        let mut ck = Checkpoint {
            shards: Vec::new(),
            torch: None,
            tensors: BTreeMap::new(),
        };
        for (file, names) in files {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(Error::format(
                    index,
                    format!(
                        "names shard {file} (holding tensor `{}`), but {} does not exist",
                        names[0],
                        path.display()
                    ),
                ));
            }
            let shard = ck.add_shard(path.clone())?;
            for name in names {
                match ck.tensors.get(name) {
                    Some(t) if t.shard == shard => {}
                    _ => {
                        return Err(Error::format(
                            index,
                            format!(
                                "says tensor `{name}` is in {file}, but {} does not contain it",
                                path.display()
                            ),
                        ))
                    }
                }
            }
        }
        Ok(ck)
    }

    /// Maps one safetensors file and adds its tensors; returns its shard index.
    fn add_shard(&mut self, path: PathBuf) -> Result<usize> {
        let file = std::fs::File::open(&path).at(&path, "open")?;
        let len = file.metadata().at(&path, "read the size of")?.len();
        if len < 8 {
            return Err(Error::format(
                &path,
                format!("is {len} bytes long, too short for a safetensors file"),
            ));
        }
        // SAFETY: read-only map; like every mmap-based reader we rely on the checkpoint not being
        // modified while it is converted.
        let map = unsafe { Mmap::map(&file) }.at(&path, "memory-map")?;
        let (header_len, meta) = SafeTensors::read_metadata(&map)
            .map_err(|e| Error::format(&path, format!("is not a valid safetensors file: {e}")))?;
        let data_start = 8 + header_len;
        let shard = self.shards.len();
        let mut names: Vec<_> = meta.tensors().into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, info) in names {
            if let Some(prev) = self.tensors.get(&name) {
                return Err(Error::format(
                    &path,
                    format!(
                        "tensor `{name}` is also in {}; a tensor must be in one shard",
                        self.shards[prev.shard].path.display()
                    ),
                ));
            }
            self.tensors.insert(
                name,
                SourceTensor {
                    shard,
                    dtype: format!("{:?}", info.dtype),
                    shape: info.shape.clone(),
                    location: Location::Range {
                        start: data_start + info.data_offsets.0,
                        end: data_start + info.data_offsets.1,
                    },
                },
            );
        }
        self.shards.push(Shard {
            path,
            map: Some(map),
        });
        Ok(shard)
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&SourceTensor> {
        self.tensors.get(name)
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &SourceTensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The file holding `t`.
    pub fn shard_path(&self, t: &SourceTensor) -> &Path {
        match &self.torch {
            Some(tc) => tc.files()[t.shard].path(),
            None => &self.shards[t.shard].path,
        }
    }

    /// Paths of the weight files, in the order they were opened.
    pub fn files(&self) -> Box<dyn Iterator<Item = &Path> + '_> {
        match &self.torch {
            Some(tc) => Box::new(tc.files().iter().map(|f| f.path())),
            None => Box::new(self.shards.iter().map(|s| s.path.as_path())),
        }
    }

    /// Total bytes of tensor data.
    pub fn data_size(&self) -> u64 {
        self.tensors.values().map(|t| t.nbytes() as u64).sum()
    }

    /// The bytes of `t`: a view into its shard's map, or — for a PyTorch tensor that is not a
    /// contiguous little-endian view of its storage — a contiguous copy. Fails only for PyTorch
    /// tensors (an unsupported dtype, or an expanded view; see [`TorchCheckpoint::data`]).
    pub fn data(&self, t: &SourceTensor) -> Result<Cow<'_, [u8]>> {
        match &t.location {
            Location::Range { start, end } => {
                let map = self.shards[t.shard].map.as_ref().expect("shard is mapped");
                Ok(Cow::Borrowed(&map[*start..*end]))
            }
            Location::Torch(tt) => self.torch.as_ref().expect("a PyTorch checkpoint").data(tt),
        }
    }

    /// Tells the OS that the bytes `range` of tensor `t` (relative to its first byte) will not be
    /// needed again soon, so that the whole pages among them leave this process's resident set
    /// (they are read again from the file if touched).
    pub fn release(&self, t: &SourceTensor, range: std::ops::Range<usize>) {
        match &t.location {
            Location::Range { start, end } => {
                let map = self.shards[t.shard].map.as_ref().expect("shard is mapped");
                crate::format::release_pages(
                    map,
                    start + range.start,
                    start + range.end.min(end - start),
                );
            }
            Location::Torch(tt) => {
                if let Some(tc) = &self.torch {
                    tc.release(tt, range);
                }
            }
        }
    }
}
