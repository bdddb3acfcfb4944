//! PyTorch `.bin` checkpoints (`torch.save` of a state dict), read with no Python and nothing
//! executed: `pytorch_model.bin`, or the shards listed by `pytorch_model.bin.index.json`.
//!
//! [`super::Checkpoint`] opens these when a model folder has no safetensors weights, so
//! conversion reads `.bin` and `.safetensors` folders alike (and gives the same file for the same
//! weights). The API mirrors the safetensors source of the converter: [`TorchCheckpoint::tensors`] lists
//! (name, dtype, shape), [`TorchCheckpoint::data`] gives a tensor's values as contiguous
//! little-endian bytes — borrowed from the mmap when the tensor is a contiguous view, owned
//! (materialised, bounded by the storage's size) when it is not. Only F32, F16 and BF16 values are
//! given out; other dtypes are listed (so a converter can skip, say, an int64 `position_ids` buffer)
//! and refused by `data` with an UNSUPPORTED error naming the tensor and its dtype.
//!
//! # Facts relied on
//!
//! From PyTorch 2.x `torch/serialization.py` (`_save`, `_load`), `torch/_utils.py` and
//! `torch/_weights_only_unpickler.py`, checked against files written by torch 2.15:
//!
//! - **Container** (since torch 1.6, `_use_new_zipfile_serialization=True`): a zip archive whose
//!   entries all sit under one folder, the *archive name* (`archive/`, or the file's stem, e.g.
//!   `pytorch_model/`): `data.pkl` (the pickled object), `byteorder` (`little` or `big`; absent in
//!   old files, meaning little), `version`, `.format_version`, `.storage_alignment`,
//!   `.data/serialization_id`, and one entry `data/<key>` per storage holding its raw bytes
//!   (`numel × element size`, native byte order of the saving machine as `byteorder` says). Entries
//!   are stored uncompressed; storage data is padded (via the local header's extra field) to start
//!   at a 64-byte boundary; local headers use data descriptors, so sizes come from the central
//!   directory; a zip64 end record is always present. See [`zip`] for the layout details.
//!   The older formats (a bare pickle stream or a tar, before torch 1.6) are refused as UNSUPPORTED.
//! - **Pickle**: protocol 2 (`DEFAULT_PROTOCOL`). A state dict is
//!   `collections.OrderedDict` called with `()` (`GLOBAL` + `EMPTY_TUPLE` + `REDUCE`), filled by
//!   `MARK … SETITEMS` (or `SETITEM`), optionally followed by `BUILD` with its `_metadata` attribute
//!   (a dict of dicts of versions). transformers' sharded saves pickle a plain dict (`EMPTY_DICT`).
//!   Opcodes observed in files torch 2.15 writes (pickletools): `PROTO GLOBAL BINPUT LONG_BINPUT
//!   BINGET EMPTY_TUPLE EMPTY_DICT MARK TUPLE TUPLE1 TUPLE2 TUPLE3 BINUNICODE BININT1 BININT2 BININT
//!   NEWFALSE NEWTRUE REDUCE BINPERSID SETITEM SETITEMS BUILD STOP` (`LONG_BINPUT` past 256 memo
//!   entries, `BININT` for ints of 2^16 and more); by CPython's `pickle.py`, `LONG_BINGET` is the
//!   getter for memo indices past 255 and `LONG1` encodes ints of 2^31 and more (a storage of more
//!   than 2^31 elements), so both are accepted. We also accept the harmless data
//!   opcodes of later protocols (see [`pickle`]) and refuse everything that could construct or call
//!   anything (`INST`, `OBJ`, `NEWOBJ`, `NEWOBJ_EX`, `EXT*`, text-mode `GET/PUT/PERSID`, …).
//! - **Tensors**: each value is `torch._utils._rebuild_tensor_v2(storage, storage_offset, size,
//!   stride, requires_grad, backward_hooks[, metadata])` — offset and strides in elements, size and
//!   stride tuples outermost first, `backward_hooks` an empty `OrderedDict()`, `metadata` present only
//!   for conj/neg views. (`_rebuild_tensor(storage, storage_offset, size, stride)` is the older
//!   four-argument form; `_rebuild_parameter(data, requires_grad, backward_hooks)` wraps a tensor
//!   saved as an `nn.Parameter`.)
//! - **Storages**: a storage argument is a persistent id (`BINPERSID`) of the tuple
//!   `('storage', torch.<T>Storage, key, location, numel)`: `<T>Storage` gives the dtype
//!   (`FloatStorage` = f32, `HalfStorage` = f16, `BFloat16Storage` = bf16, …), `key` names the entry
//!   `data/<key>`, `location` is a device tag (`cpu`, `cuda:0`; irrelevant here) and `numel` counts
//!   elements. Several tensors may reference one storage (tied weights, views); the storage is
//!   written once.
//!
//! # Safety properties
//!
//! The unpickler ([`pickle`]) never imports or calls anything: globals are matched against a fixed
//! list of names ([`pickle::ALLOWED_GLOBALS`]) and any other is an error naming it. Every size,
//! offset and stride is checked (with overflow checks) against the zip entry that holds the storage
//! before a tensor is listed. Compressed entries are refused before their data is touched, so no
//! decompression of an attacker-chosen size ever happens. Every allocation is bounded by the input's
//! size: objects by the pickle's length, a materialised tensor by its storage's length.

pub mod pickle;
pub mod zip;

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::Storage;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The single-file weights name of a Hugging Face folder.
pub const SINGLE_FILE: &str = "pytorch_model.bin";
/// The index of a sharded PyTorch checkpoint.
pub const INDEX_FILE: &str = "pytorch_model.bin.index.json";

/// The element type of a PyTorch storage (the legacy typed-storage classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TorchDtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    C64,
    C128,
}

impl TorchDtype {
    /// The dtype of `torch.<name>` (a storage class name such as `FloatStorage`).
    pub fn from_storage_name(name: &str) -> Option<TorchDtype> {
        Some(match name {
            "FloatStorage" => TorchDtype::F32,
            "HalfStorage" => TorchDtype::F16,
            "BFloat16Storage" => TorchDtype::BF16,
            "DoubleStorage" => TorchDtype::F64,
            "LongStorage" => TorchDtype::I64,
            "IntStorage" => TorchDtype::I32,
            "ShortStorage" => TorchDtype::I16,
            "CharStorage" => TorchDtype::I8,
            "ByteStorage" | "UntypedStorage" => TorchDtype::U8,
            "BoolStorage" => TorchDtype::Bool,
            "ComplexFloatStorage" => TorchDtype::C64,
            "ComplexDoubleStorage" => TorchDtype::C128,
            _ => return None,
        })
    }
    /// The storage class name (`FloatStorage`, …).
    pub fn storage_name(self) -> &'static str {
        match self {
            TorchDtype::F64 => "DoubleStorage",
            TorchDtype::F32 => "FloatStorage",
            TorchDtype::F16 => "HalfStorage",
            TorchDtype::BF16 => "BFloat16Storage",
            TorchDtype::I64 => "LongStorage",
            TorchDtype::I32 => "IntStorage",
            TorchDtype::I16 => "ShortStorage",
            TorchDtype::I8 => "CharStorage",
            TorchDtype::U8 => "ByteStorage",
            TorchDtype::Bool => "BoolStorage",
            TorchDtype::C64 => "ComplexFloatStorage",
            TorchDtype::C128 => "ComplexDoubleStorage",
        }
    }
    /// The safetensors-style name: `F32`, `BF16`, `I64`, …
    pub fn name(self) -> &'static str {
        match self {
            TorchDtype::F64 => "F64",
            TorchDtype::F32 => "F32",
            TorchDtype::F16 => "F16",
            TorchDtype::BF16 => "BF16",
            TorchDtype::I64 => "I64",
            TorchDtype::I32 => "I32",
            TorchDtype::I16 => "I16",
            TorchDtype::I8 => "I8",
            TorchDtype::U8 => "U8",
            TorchDtype::Bool => "BOOL",
            TorchDtype::C64 => "C64",
            TorchDtype::C128 => "C128",
        }
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TorchDtype::I8 | TorchDtype::U8 | TorchDtype::Bool => 1,
            TorchDtype::F16 | TorchDtype::BF16 | TorchDtype::I16 => 2,
            TorchDtype::F32 | TorchDtype::I32 => 4,
            TorchDtype::F64 | TorchDtype::I64 | TorchDtype::C64 => 8,
            TorchDtype::C128 => 16,
        }
    }
    /// Whether [`TorchCheckpoint::data`] gives out values of this dtype (F32, F16, BF16).
    pub fn is_supported(self) -> bool {
        matches!(self, TorchDtype::F32 | TorchDtype::F16 | TorchDtype::BF16)
    }
}

impl fmt::Display for TorchDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a checkpoint: a view on a storage, validated against it when the file was
/// opened (so its fields are read-only: the reads rely on them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorchTensor {
    name: String,
    shard: usize,
    dtype: TorchDtype,
    shape: Vec<usize>,
    strides: Vec<usize>,
    storage_offset: usize,
    /// Index of the storage in its file.
    storage: usize,
}

impl TorchTensor {
    /// The state dict key.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Index of its file in [`TorchCheckpoint::files`].
    pub fn shard(&self) -> usize {
        self.shard
    }
    pub fn dtype(&self) -> TorchDtype {
        self.dtype
    }
    /// Row-major shape, outermost first (PyTorch's order); empty for a 0-d tensor.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Strides in elements, outermost first.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    /// Offset of the first element in its storage, in elements.
    pub fn storage_offset(&self) -> usize {
        self.storage_offset
    }
    /// Number of values (1 for a 0-d tensor).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Size of the contiguous values in bytes.
    pub fn nbytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }
    /// Whether the values are laid out row-major without gaps (PyTorch's `is_contiguous()`:
    /// dimensions of size 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
        let mut expected = 1usize;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size != 1 {
                if stride != expected {
                    return false;
                }
                expected *= size;
            }
        }
        true
    }
}

/// A storage of a file: its dtype and where its bytes are.
#[derive(Clone, Debug)]
struct StorageData {
    key: String,
    dtype: TorchDtype,
    bytes: Range<usize>,
}

/// One `torch.save` zip file, mapped.
pub struct TorchFile {
    path: PathBuf,
    data: Storage,
    big_endian: bool,
    storages: Vec<StorageData>,
    tensors: Vec<TorchTensor>,
}

impl TorchFile {
    /// Maps and parses a `torch.save` file.
    ///
    /// The file is memory-mapped: it must not be modified while the `TorchFile` lives.
    pub fn open(path: &Path) -> Result<TorchFile> {
        let file = std::fs::File::open(path).at(path, "open")?;
        if file.metadata().at(path, "read the size of")?.len() == 0 {
            return Err(Error::format(path, "file is empty"));
        }
        // SAFETY: read-only map; like every mmap-based reader we rely on the checkpoint not being
        // modified while it is read (documented above).
        let map = unsafe { memmap2::Mmap::map(&file) }.at(path, "memory-map")?;
        Self::parse(path.to_path_buf(), Storage::Mapped(map))
    }

    /// Parses a `torch.save` file held in memory; `path` only names it in messages (tests, fuzzing).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<TorchFile> {
        Self::parse(path.to_path_buf(), Storage::Owned(bytes))
    }

    fn parse(path: PathBuf, data: Storage) -> Result<TorchFile> {
        let in_file = |e: Error| e.context(path.display());
        if !data.starts_with(b"PK\x03\x04") && !data.starts_with(b"PK\x05\x06") {
            // A legacy (pre-1.6) torch.save file starts with a pickled magic number (protocol 2
            // PROTO opcode); a tar-based one with a tar header.
            let legacy =
                data.first() == Some(&0x80) || data.get(257..262) == Some(b"ustar".as_slice());
            return Err(if legacy {
                Error::unsupported(format!(
                    "{}: is in PyTorch's legacy (pre-1.6, non-zip) serialization format, which \
                     ferrollm does not read; re-save it with a current torch.save, or as safetensors",
                    path.display()
                ))
            } else {
                Error::format(&path, "is not a PyTorch checkpoint (not a zip archive)")
            });
        }
        let archive = zip::ZipArchive::parse(&data).map_err(in_file)?;
        // The archive name: the folder holding data.pkl (torch puts every record under it).
        let mut pkls = archive.entries().iter().filter(|e| {
            e.name
                .strip_suffix("/data.pkl")
                .is_some_and(|prefix| !prefix.is_empty() && !prefix.contains('/'))
        });
        let (Some(pkl), None) = (pkls.next(), pkls.next()) else {
            return Err(Error::format(
                &path,
                "is a zip archive but not a torch.save checkpoint: it needs exactly one \
                 `<archive>/data.pkl` record",
            ));
        };
        let prefix = pkl.name.strip_suffix("data.pkl").expect("matched above");
        let pkl_range = archive.data_range(&data, pkl).map_err(in_file)?;

        let big_endian = match archive.entry(&format!("{prefix}byteorder")) {
            None => false,
            Some(e) => {
                let r = archive.data_range(&data, e).map_err(in_file)?;
                match &data[r] {
                    b"little" => false,
                    b"big" => true,
                    other => {
                        return Err(Error::format(
                            &path,
                            format!(
                                "record `{}` says {:?}; expected \"little\" or \"big\"",
                                e.name,
                                String::from_utf8_lossy(&other[..other.len().min(32)])
                            ),
                        ))
                    }
                }
            }
        };

        let state = pickle::load_state_dict(&data[pkl_range])
            .map_err(|e| e.context(format!("{}: {}", path.display(), pkl.name)))?;

        // Storages: each zip entry located and its size checked against the pickle's numel.
        let mut storages = Vec::with_capacity(state.storages.len());
        for s in &state.storages {
            // Only on error: which tensor uses it (a search, so not done for every storage).
            let user = || {
                state
                    .tensors
                    .iter()
                    .find(|(_, t)| state.storages[t.storage].key == s.key)
                    .map(|(n, _)| format!(" (of tensor `{n}`)"))
                    .unwrap_or_default()
            };
            let entry_name = format!("{prefix}data/{}", s.key);
            let Some(entry) = archive.entry(&entry_name) else {
                return Err(Error::format(
                    &path,
                    format!(
                        "storage `{}`{} is missing: no zip entry `{entry_name}`",
                        s.key,
                        user()
                    ),
                ));
            };
            let bytes = archive.data_range(&data, entry).map_err(in_file)?;
            let want = s.numel.checked_mul(s.dtype.size() as u64);
            if want != Some(bytes.len() as u64) {
                return Err(Error::format(
                    &path,
                    format!(
                        "storage `{}`{} declares {} elements of {} ({} bytes) but its zip \
                         entry `{entry_name}` holds {} bytes",
                        s.key,
                        user(),
                        s.numel,
                        s.dtype,
                        want.map_or_else(|| "overflowing".to_string(), |w| w.to_string()),
                        bytes.len()
                    ),
                ));
            }
            storages.push(StorageData {
                key: s.key.clone(),
                dtype: s.dtype,
                bytes,
            });
        }

        let mut tensors = Vec::with_capacity(state.tensors.len());
        for (name, t) in state.tensors {
            let st = &storages[t.storage];
            tensors.push(
                validate(&name, &t, st)
                    .map_err(|m| Error::format(&path, format!("tensor `{name}`: {m}")))?,
            );
        }
        Ok(TorchFile {
            path,
            data,
            big_endian,
            storages,
            tensors,
        })
    }

    /// Tells the OS that the bytes `range` of `t`'s values will not be needed again soon (see
    /// [`Checkpoint::release`](super::Checkpoint::release)). Only contiguous views of a mapped
    /// little-endian file are borrowed from the map, so only their pages are released.
    pub fn release(&self, t: &TorchTensor, range: Range<usize>) {
        if let Storage::Mapped(map) = &self.data {
            if t.is_contiguous() && !self.big_endian {
                let start =
                    self.storages[t.storage].bytes.start + t.storage_offset * t.dtype.size();
                let end = start + range.end.min(t.nbytes());
                crate::format::release_pages(map, start + range.start, end);
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Its tensors, in the order the state dict holds them.
    pub fn tensors(&self) -> &[TorchTensor] {
        &self.tensors
    }
    /// Whether the storages were written on a big-endian machine (values are swapped when read).
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    /// The values of `t` (a tensor of this file) as contiguous little-endian bytes: borrowed from
    /// the map when `t` is a contiguous view (and the file little-endian), else materialised.
    /// UNSUPPORTED for dtypes other than F32/F16/BF16, and for a non-contiguous view that would
    /// materialise more bytes than its storage holds (a broadcast / expanded tensor).
    pub fn data(&self, t: &TorchTensor) -> Result<Cow<'_, [u8]>> {
        if !t.dtype.is_supported() {
            return Err(Error::unsupported(format!(
                "{}: tensor `{}` has dtype {} ({}); ferrollm reads F32, F16 and BF16 tensors",
                self.path.display(),
                t.name,
                t.dtype,
                t.dtype.storage_name()
            )));
        }
        let st = &self.storages[t.storage];
        let storage = &self.data[st.bytes.clone()];
        let size = t.dtype.size();
        let nbytes = t.nbytes();
        if t.is_contiguous() {
            let start = t.storage_offset * size;
            let bytes = &storage[start..start + nbytes];
            if !self.big_endian {
                return Ok(Cow::Borrowed(bytes));
            }
            let mut out = bytes.to_vec();
            swap_bytes(&mut out, size);
            return Ok(Cow::Owned(out));
        }
        if nbytes > storage.len() {
            return Err(Error::unsupported(format!(
                "{}: tensor `{}` ({:?} with strides {:?}) views {} bytes of storage `{}` as {} \
                 bytes: overlapping (expanded) views are not materialised",
                self.path.display(),
                t.name,
                t.shape,
                t.strides,
                storage.len(),
                st.key,
                nbytes
            )));
        }
        let mut out = Vec::with_capacity(nbytes);
        gather(storage, t, size, &mut out);
        debug_assert_eq!(out.len(), nbytes);
        if self.big_endian {
            swap_bytes(&mut out, size);
        }
        Ok(Cow::Owned(out))
    }
}

/// Checks a tensor view against its storage; on success gives the listed tensor.
fn validate(name: &str, t: &pickle::TensorRef, st: &StorageData) -> Result<TorchTensor, String> {
    let size = st.dtype.size();
    let storage_numel = (st.bytes.len() / size) as u64;
    let mut numel: u64 = 1;
    for &d in &t.shape {
        numel = numel
            .checked_mul(d)
            .ok_or_else(|| format!("shape {:?} has more elements than fit in 64 bits", t.shape))?;
    }
    numel
        .checked_mul(size as u64)
        .filter(|&n| n <= isize::MAX as u64)
        .ok_or_else(|| {
            format!(
                "shape {:?} of {} is too large ({numel} elements × {size} bytes)",
                t.shape, st.dtype
            )
        })?;
    if numel == 0 {
        if t.offset > storage_numel {
            return Err(format!(
                "storage offset {} is past the end of storage `{}` ({storage_numel} elements)",
                t.offset, st.key
            ));
        }
    } else {
        // The last element: offset + Σ (size_i − 1)·stride_i, which must be inside the storage.
        let mut last = t.offset;
        for (&d, &s) in t.shape.iter().zip(&t.stride) {
            last = (d - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| {
                    format!(
                        "offset {} with shape {:?} and strides {:?} overflows",
                        t.offset, t.shape, t.stride
                    )
                })?;
        }
        if last >= storage_numel {
            return Err(format!(
                "view (offset {}, shape {:?}, strides {:?}) reaches element {last} of storage \
                 `{}`, which has {storage_numel} elements of {}",
                t.offset, t.shape, t.stride, st.key, st.dtype
            ));
        }
    }
    // Everything is now bounded by the storage length (or zero elements), so fits in usize.
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| format!("{v} does not fit in usize"));
    Ok(TorchTensor {
        name: name.to_string(),
        shard: 0,
        dtype: st.dtype,
        shape: t
            .shape
            .iter()
            .map(|&d| to_usize(d))
            .collect::<Result<_, _>>()?,
        strides: t
            .stride
            .iter()
            .map(|&s| to_usize(s))
            .collect::<Result<_, _>>()?,
        storage_offset: to_usize(t.offset)?,
        storage: t.storage,
    })
}

/// Copies the values of the validated view `t` row-major into `out`.
fn gather(storage: &[u8], t: &TorchTensor, size: usize, out: &mut Vec<u8>) {
    if t.numel() == 0 {
        return;
    }
    let Some((&inner, outer_shape)) = t.shape.split_last() else {
        // 0-d: one value.
        let at = t.storage_offset * size;
        out.extend_from_slice(&storage[at..at + size]);
        return;
    };
    let inner_stride = t.strides[t.strides.len() - 1];
    let outer_strides = &t.strides[..t.strides.len() - 1];
    let mut idx = vec![0usize; outer_shape.len()];
    // Element offset of the current row; kept up to date as the odometer turns.
    let mut base = t.storage_offset;
    loop {
        if inner_stride == 1 {
            out.extend_from_slice(&storage[base * size..(base + inner) * size]);
        } else {
            for j in 0..inner {
                let at = (base + j * inner_stride) * size;
                out.extend_from_slice(&storage[at..at + size]);
            }
        }
        // Next row: the odometer over the outer dimensions.
        let mut d = outer_shape.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            base += outer_strides[d];
            if idx[d] < outer_shape[d] {
                break;
            }
            base -= outer_strides[d] * outer_shape[d];
            idx[d] = 0;
        }
    }
}

/// Reverses the bytes of every `size`-byte element (big-endian storage → little-endian values).
fn swap_bytes(b: &mut [u8], size: usize) {
    if size > 1 {
        for chunk in b.chunks_exact_mut(size) {
            chunk.reverse();
        }
    }
}

/// The opened weights of a PyTorch checkpoint: one file, or the shards of an index.
pub struct TorchCheckpoint {
    files: Vec<TorchFile>,
    /// Name → (file, index in that file's tensors).
    index: BTreeMap<String, (usize, usize)>,
}

impl TorchCheckpoint {
    /// Opens the PyTorch weights of the model folder `dir`: the index and its shards when
    /// `pytorch_model.bin.index.json` exists, else `pytorch_model.bin`.
    pub fn open(dir: &Path) -> Result<TorchCheckpoint> {
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::open_index(&index);
        }
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            return Self::open_file(&single);
        }
        Err(Error::new(
            ErrorKind::Format,
            format!(
                "{}: no PyTorch weights found: expected {SINGLE_FILE} or {INDEX_FILE}",
                dir.display()
            ),
        ))
    }

    /// Opens one `torch.save` file as a whole checkpoint.
    pub fn open_file(path: &Path) -> Result<TorchCheckpoint> {
        let mut ck = TorchCheckpoint {
            files: Vec::new(),
            index: BTreeMap::new(),
        };
        ck.add_file(TorchFile::open(path)?)?;
        Ok(ck)
    }

    /// A checkpoint of one file held in memory (tests, fuzzing).
    pub fn from_file(file: TorchFile) -> Result<TorchCheckpoint> {
        let mut ck = TorchCheckpoint {
            files: Vec::new(),
            index: BTreeMap::new(),
        };
        ck.add_file(file)?;
        Ok(ck)
    }

    /// Opens a sharded checkpoint from its `pytorch_model.bin.index.json` (`{"weight_map":
    /// {tensor: shard file}}`; shards are plain file names beside the index).
    pub fn open_index(index: &Path) -> Result<TorchCheckpoint> {
        let dir = index.parent().unwrap_or(Path::new("."));
        let text = std::fs::read_to_string(index).at(index, "read the weights index")?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(index, format!("is not valid JSON: {e}")))?;
        let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) else {
            return Err(Error::format(index, "has no `weight_map` object"));
        };
        let mut files: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (tensor, file) in map {
            let Some(file) = file.as_str() else {
                return Err(Error::format(
                    index,
                    format!("weight_map entry for tensor `{tensor}` is not a file name"),
                ));
            };
            if file.is_empty()
                || file.contains(['/', '\\'])
                || Path::new(file).components().count() != 1
                || file == ".."
                || file == "."
            {
                return Err(Error::format(
                    index,
                    format!(
                        "weight_map names shard `{file}` for tensor `{tensor}`: shards must be \
                         plain file names in the model folder"
                    ),
                ));
            }
            files.entry(file).or_default().push(tensor);
        }
        if files.is_empty() {
            return Err(Error::format(index, "weight_map is empty"));
        }
        let mut ck = TorchCheckpoint {
            files: Vec::new(),
            index: BTreeMap::new(),
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
            let shard = ck.add_file(TorchFile::open(&path)?)?;
            for name in names {
                match ck.index.get(name) {
                    Some(&(f, _)) if f == shard => {}
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

    fn add_file(&mut self, mut file: TorchFile) -> Result<usize> {
        let shard = self.files.len();
        for (i, t) in file.tensors.iter_mut().enumerate() {
            t.shard = shard;
            if let Some(&(prev, _)) = self.index.get(&t.name) {
                return Err(Error::format(
                    &file.path,
                    format!(
                        "tensor `{}` is also in {}; a tensor must be in one shard",
                        t.name,
                        self.files[prev].path.display()
                    ),
                ));
            }
            self.index.insert(t.name.clone(), (shard, i));
        }
        self.files.push(file);
        Ok(shard)
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&TorchTensor> {
        self.index
            .get(name)
            .map(|&(f, i)| &self.files[f].tensors[i])
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &TorchTensor)> {
        self.index
            .iter()
            .map(|(k, &(f, i))| (k.as_str(), &self.files[f].tensors[i]))
    }

    /// The values of `t` as contiguous little-endian bytes (see [`TorchFile::data`]).
    pub fn data(&self, t: &TorchTensor) -> Result<Cow<'_, [u8]>> {
        self.files[t.shard].data(t)
    }

    /// Releases the pages of `t`'s values in `range` (see [`TorchFile::release`]).
    pub fn release(&self, t: &TorchTensor, range: Range<usize>) {
        self.files[t.shard].release(t, range);
    }

    /// The file holding `t`.
    pub fn shard_path(&self, t: &TorchTensor) -> &Path {
        &self.files[t.shard].path
    }

    /// The files, in the order they were opened.
    pub fn files(&self) -> &[TorchFile] {
        &self.files
    }

    /// Total bytes of tensor values (as [`data`](Self::data) gives them).
    pub fn data_size(&self) -> u64 {
        self.tensors().map(|(_, t)| t.nbytes() as u64).sum()
    }
}
