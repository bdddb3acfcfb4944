//! GGUF v2/v3 reader and v3 streaming writer.
//!
//! # Facts relied on
//!
//! From ggml's `docs/gguf.md`, ggml's `src/gguf.cpp` (the reader llama.cpp uses) and gguf-py 0.19.0
//! (`gguf_reader.py`, `gguf_writer.py`, `constants.py`; the reference `tests/gguf_interop.rs` runs):
//!
//! - Layout: magic `GGUF` (the four bytes 0x47 0x47 0x55 0x46), `u32` version, `u64` tensor count,
//!   `u64` metadata key/value count, the key/value pairs, the tensor infos, zero padding up to the
//!   next multiple of the alignment, then the tensor data section. Everything is little-endian.
//! - Versions: 1 used 32-bit counts and string lengths and is obsolete (gguf.cpp and gguf-py refuse
//!   it); 2 made them 64-bit; 3 only allowed big-endian files, with no marker in the file. So 2 and 3
//!   share one layout. A big-endian file is recognised by its version's low 16 bits being zero (the
//!   version is byte-swapped: 3 reads as 0x0300_0000), as gguf.cpp and gguf-py do; we refuse it.
//! - A string is a `u64` byte length and that many bytes of UTF-8, not NUL-terminated.
//! - A key/value pair is a string key, a `u32` value type (0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32,
//!   6 f32, 7 bool, 8 string, 9 array, 10 u64, 11 i64, 12 f64) and the value. An array is a `u32`
//!   element type, a `u64` element count and the elements. gguf.md allows arrays of arrays and
//!   gguf-py reads and writes them, but gguf.cpp refuses them: llama.cpp cannot load a file with a
//!   nested array (we read and write them; callers that target llama.cpp should not use them).
//! - A bool is one byte; gguf.md says anything but 0 or 1 is invalid (gguf.cpp reads non-zero as
//!   true). We refuse other values.
//! - Keys: gguf.cpp refuses empty and duplicate keys; gguf-py refuses duplicate keys.
//! - `general.alignment`: gguf.cpp and gguf-py both require the type `u32` and a non-zero power of
//!   two, and default to 32 when the key is absent. gguf.md also says "a multiple of 8": the reader
//!   accepts any power of two (as both implementations do); the writer requires a power of two of
//!   at least 8 so that what we write satisfies the spec and both implementations.
//! - A tensor info is a string name, a `u32` dimension count (at most `GGML_MAX_DIMS` = 4), that many
//!   `u64` dimensions innermost first (gguf.cpp reads them as `int64_t`, so above 2^63-1 they are
//!   negative and refused, and so is an element count that does not fit in `int64_t`), a `u32` ggml
//!   type id and a `u64` offset relative to the start of the data section. gguf.cpp refuses ids of
//!   removed types (4, 5, 31–33, 36–38: their block size is 0), rows (`ne[0]`) that are not a multiple
//!   of the type's block size, byte sizes that overflow, duplicate names, and names of 64 bytes or
//!   more (`GGML_MAX_NAME` = 64, NUL included).
//! - The data section starts at the end of the tensor infos rounded up to the alignment.
//! - gguf.md: each offset must be a multiple of the alignment. gguf.cpp is stricter: tensor `i` must
//!   start exactly where tensor `i-1` ends, padded to the alignment (tensors packed in file order).
//!   gguf.cpp and gguf-py write that layout, padding after every tensor including the last. Our
//!   writer does the same; our reader accepts any order and gaps, but refuses misaligned offsets,
//!   data past the end of the file and tensors whose bytes overlap.
//!
//! Deliberate differences from gguf.cpp: it accepts a dimension of 0 (an empty tensor); we refuse
//! it, since no model stores an empty tensor and every use of one would be a special case. It
//! refuses tensor names of 64 bytes or more; we read them (nothing in the layout depends on the
//! limit) but never write them, so that llama.cpp can load what we write.
//!
//! # Hardening
//!
//! The reader trusts no count or length: each is checked against the bytes actually left before
//! anything is allocated (preallocation is capped further, so memory follows the bytes parsed, not
//! the bytes claimed), arrays may nest at most [`MAX_ARRAY_DEPTH`] deep, all arithmetic is checked,
//! and every failure is an [`ErrorKind::Format`](crate::ErrorKind::Format) error naming the file and
//! what is wrong with it.

use super::{
    Container, GgmlType, Metadata, ModelFile, OutputFile, Storage, TensorInfo, TensorSpec,
    TensorWriter, Value, ValueType,
};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The first four bytes of every GGUF file.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The version the writer produces.
pub const VERSION: u32 = 3;
/// The alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that sets the alignment (a `u32`).
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;
/// The longest tensor name ggml can hold (`GGML_MAX_NAME` - 1 bytes); the writer enforces it.
pub const MAX_TENSOR_NAME_LEN: usize = 63;
/// How deep arrays of arrays may nest (the outermost array is depth 1).
pub const MAX_ARRAY_DEPTH: usize = 32;

/// Preallocate at most this many items for a claimed count; beyond it vectors grow as items are
/// actually parsed.
const PREALLOC_CAP: u64 = 1 << 16;
/// The smallest key/value pair: key length, a one-byte key, value type, a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
/// The smallest tensor info: name length (empty name), dimension count (0), type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// The smallest encoding of a value of type `ty`.
fn min_value_bytes(ty: ValueType) -> u64 {
    match ty {
        ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
        ValueType::U16 | ValueType::I16 => 2,
        ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
        ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
        ValueType::Array => 12,
    }
}

/// Names of type ids that ggml once had and has removed.
fn removed_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        4 => "q4_2",
        5 => "q4_3",
        31 => "q4_0_4_4",
        32 => "q4_0_4_8",
        33 => "q4_0_8_8",
        36 => "iq4_nl_4_4",
        37 => "iq4_nl_4_8",
        38 => "iq4_nl_8_8",
        _ => return None,
    })
}

/// Reads a GGUF file whose first four bytes are `GGUF`.
pub(crate) fn read(path: PathBuf, data: Storage) -> Result<ModelFile> {
    let parsed = parse(&path, &data)?;
    Ok(ModelFile {
        path,
        container: Container::Gguf,
        version: parsed.version,
        metadata: parsed.metadata,
        legacy_vocab: None,
        tensors: parsed.tensors,
        data,
    })
}

/// The parsed header of a GGUF file.
struct Parsed {
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
}

/// A bounds-checked little-endian reader over the file's bytes. Error contexts are closures so
/// that no message is formatted unless something is wrong.
struct Cursor<'a> {
    path: &'a Path,
    data: &'a [u8],
    /// Invariant: `pos <= data.len()`.
    pos: usize,
}

type Ctx<'c> = &'c dyn Fn() -> String;

impl<'a> Cursor<'a> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::format(self.path, msg)
    }

    fn remaining(&self) -> u64 {
        (self.data.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: Ctx) -> Result<&'a [u8]> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let bytes = usize::try_from(n)
            .ok()
            .and_then(|n| rest.get(..n))
            .ok_or_else(|| {
                self.err(format_args!(
                    "file is truncated: {} needs {n} bytes at offset {}, but the file is {} bytes long",
                    what(),
                    self.pos,
                    self.data.len()
                ))
            })?;
        self.pos += bytes.len();
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: Ctx) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: Ctx) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: Ctx) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }
    fn u64(&mut self, what: Ctx) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string, borrowed from the file.
    fn string(&mut self, what: Ctx) -> Result<&'a str> {
        let at = self.pos;
        let len = self.u64(&|| format!("the length of {}", what()))?;
        if len > self.remaining() {
            return Err(self.err(format_args!(
                "{} at offset {at} has length {len}, more than the {} bytes left in the file",
                what(),
                self.remaining()
            )));
        }
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes).map_err(|e| {
            self.err(format_args!(
                "{} at offset {at} is not valid UTF-8 ({e})",
                what()
            ))
        })
    }

    /// A metadata value of type `ty`; `depth` is the number of arrays it is inside.
    fn value(&mut self, ty: ValueType, depth: usize, what: Ctx) -> Result<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.u8(what)?),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => {
                let at = self.pos;
                match self.u8(what)? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    other => {
                        return Err(self.err(format_args!(
                            "{} at offset {at} is a bool of value {other}; only 0 and 1 are valid",
                            what()
                        )))
                    }
                }
            }
            ValueType::String => Value::String(self.string(what)?.to_owned()),
            ValueType::Array => {
                let at = self.pos;
                let elem_id = self.u32(&|| format!("the element type of {}", what()))?;
                let elem = ValueType::from_id(elem_id).ok_or_else(|| {
                    self.err(format_args!(
                        "{} at offset {at} is an array of unknown value type id {elem_id}",
                        what()
                    ))
                })?;
                if depth + 1 > MAX_ARRAY_DEPTH {
                    return Err(self.err(format_args!(
                        "{} at offset {at}: arrays are nested more than {MAX_ARRAY_DEPTH} deep",
                        what()
                    )));
                }
                let len = self.u64(&|| format!("the length of {}", what()))?;
                let min = min_value_bytes(elem);
                if len > self.remaining() / min {
                    return Err(self.err(format_args!(
                        "{} at offset {at} is an array of {len} {} values, which needs at least \
                         {} bytes, but only {} bytes are left in the file",
                        what(),
                        elem.name(),
                        len.saturating_mul(min),
                        self.remaining()
                    )));
                }
                let mut items = Vec::with_capacity(len.min(PREALLOC_CAP) as usize);
                for i in 0..len {
                    items.push(self.value(elem, depth + 1, &|| format!("{}[{i}]", what()))?);
                }
                Value::Array(elem, items)
            }
        })
    }
}

fn check_version(path: &Path, version: u32) -> Result<()> {
    let msg = match version {
        2 | 3 => return Ok(()),
        0 => "invalid GGUF version 0".to_string(),
        v if v & 0xFFFF == 0 => format!(
            "GGUF version field reads {v:#010x}, which is version {} with its bytes swapped: \
             this looks like a big-endian GGUF file, and only little-endian files are supported",
            v.swap_bytes()
        ),
        1 => "GGUF version 1 is not supported (an obsolete layout with 32-bit counts); \
              versions 2 and 3 are"
            .to_string(),
        v => format!("GGUF version {v} is not supported; versions 2 and 3 are"),
    };
    Err(Error::format(path, msg))
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut c = Cursor {
        path,
        data: bytes,
        pos: 0,
    };
    let magic: [u8; 4] = c.array(&|| "the magic number".into())?;
    if magic != MAGIC {
        return Err(c.err(format_args!(
            "not a GGUF file (magic bytes {magic:02x?}, expected \"GGUF\")"
        )));
    }
    let version = c.u32(&|| "the GGUF version".into())?;
    check_version(path, version)?;
    let n_tensors = c.u64(&|| "the tensor count".into())?;
    let n_kv = c.u64(&|| "the metadata key count".into())?;

    // Counts are checked against what the rest of the file could hold before anything is allocated.
    let rest = c.remaining();
    if n_kv > rest / MIN_KV_BYTES {
        return Err(c.err(format_args!(
            "the header claims {n_kv} metadata keys, but the {rest} bytes after the header \
             can hold at most {}",
            rest / MIN_KV_BYTES
        )));
    }
    if n_tensors > rest / MIN_TENSOR_INFO_BYTES {
        return Err(c.err(format_args!(
            "the header claims {n_tensors} tensors, but the {rest} bytes after the header \
             can hold at most {} tensor infos",
            rest / MIN_TENSOR_INFO_BYTES
        )));
    }
    // Both are now below `rest`, so neither product nor the sum can overflow.
    if n_kv * MIN_KV_BYTES + n_tensors * MIN_TENSOR_INFO_BYTES > rest {
        return Err(c.err(format_args!(
            "the header claims {n_kv} metadata keys and {n_tensors} tensors, more than the \
             {rest} bytes after the header can hold"
        )));
    }

    // Metadata.
    let mut metadata = Metadata::new();
    let mut keys: HashSet<&str> = HashSet::with_capacity(n_kv.min(PREALLOC_CAP) as usize);
    for i in 0..n_kv {
        let at = c.pos;
        let key = c.string(&|| format!("the key of metadata entry {i}"))?;
        if key.is_empty() {
            return Err(c.err(format_args!(
                "metadata entry {i} at offset {at} has an empty key"
            )));
        }
        if !keys.insert(key) {
            return Err(c.err(format_args!(
                "duplicate metadata key {key:?} (entry {i} at offset {at})"
            )));
        }
        let type_at = c.pos;
        let type_id = c.u32(&|| format!("the value type of metadata key {key:?}"))?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| {
            c.err(format_args!(
                "metadata key {key:?} has unknown value type id {type_id} (at offset {type_at})"
            ))
        })?;
        let value = c.value(ty, 0, &|| format!("metadata key {key:?}"))?;
        metadata.push_new(key.to_owned(), value);
    }

    let alignment = match metadata.get(ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some(&Value::U32(a)) if a.is_power_of_two() => u64::from(a),
        Some(&Value::U32(a)) => {
            return Err(c.err(format_args!(
                "{ALIGNMENT_KEY} is {a}, but it must be a non-zero power of two"
            )))
        }
        Some(other) => {
            return Err(c.err(format_args!(
                "{ALIGNMENT_KEY} has type {}, but it must be a u32",
                other.value_type().name()
            )))
        }
    };

    // Tensor infos.
    struct Raw<'a> {
        name: &'a str,
        ty: GgmlType,
        shape: Vec<u64>,
        size: u64,
        offset: u64,
    }
    let mut raws: Vec<Raw> = Vec::with_capacity(n_tensors.min(PREALLOC_CAP) as usize);
    let mut names: HashSet<&str> = HashSet::with_capacity(n_tensors.min(PREALLOC_CAP) as usize);
    for i in 0..n_tensors {
        let at = c.pos;
        let name = c.string(&|| format!("the name of tensor {i}"))?;
        if !names.insert(name) {
            return Err(c.err(format_args!(
                "duplicate tensor name {name:?} (tensor {i} at offset {at})"
            )));
        }
        let n_dims = c.u32(&|| format!("the dimension count of tensor {name:?}"))?;
        if n_dims as usize > MAX_DIMS {
            return Err(c.err(format_args!(
                "tensor {name:?} has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}"
            )));
        }
        let mut shape = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let dim = c.u64(&|| format!("dimension {d} of tensor {name:?}"))?;
            if dim == 0 || dim > i64::MAX as u64 {
                return Err(c.err(format_args!(
                    "tensor {name:?} has dimension {d} = {dim}; each dimension must be between \
                     1 and {}",
                    i64::MAX
                )));
            }
            shape.push(dim);
        }
        let n_elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64);
        if n_elements.is_none() {
            return Err(c.err(format_args!(
                "tensor {name:?} with shape {shape:?} has more than {} elements (the product of \
                 its dimensions overflows)",
                i64::MAX
            )));
        }
        let type_id = c.u32(&|| format!("the type of tensor {name:?}"))?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| match removed_type_name(type_id) {
            Some(old) => c.err(format_args!(
                "tensor {name:?} has ggml type id {type_id} ({old}), which ggml has removed"
            )),
            None => c.err(format_args!(
                "tensor {name:?} has unknown ggml type id {type_id}"
            )),
        })?;
        let row = shape.first().copied().unwrap_or(1);
        let block = ty.block_size() as u64;
        if row % block != 0 {
            return Err(c.err(format_args!(
                "tensor {name:?} of type {ty} has rows of {row} values, not a multiple of the \
                 type's block size {block}"
            )));
        }
        let size = ty.tensor_size(&shape).ok_or_else(|| {
            c.err(format_args!(
                "tensor {name:?} of type {ty} with shape {shape:?}: its size in bytes overflows"
            ))
        })?;
        let offset = c.u64(&|| format!("the data offset of tensor {name:?}"))?;
        raws.push(Raw {
            name,
            ty,
            shape,
            size,
            offset,
        });
    }

    // Tensor data: the section starts at the end of the infos, padded to the alignment.
    let file_len = bytes.len() as u64;
    let data_start = (c.pos as u64)
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| c.err("the data section's offset overflows"))?;
    let mut tensors = Vec::with_capacity(raws.len());
    for raw in &raws {
        let name = raw.name;
        if raw.offset % alignment != 0 {
            return Err(c.err(format_args!(
                "tensor {name:?} has data offset {} (relative to the data section at {data_start}), \
                 which is not a multiple of the alignment {alignment}",
                raw.offset
            )));
        }
        let start = data_start.checked_add(raw.offset);
        let end = start.and_then(|s| s.checked_add(raw.size));
        let (Some(start), Some(end)) = (start, end) else {
            return Err(c.err(format_args!(
                "tensor {name:?} has data offset {}, which overflows when added to the data \
                 section's offset {data_start}",
                raw.offset
            )));
        };
        if end > file_len {
            return Err(c.err(format_args!(
                "tensor {name:?} ({}, shape {:?}, {} bytes) has data at bytes {start}..{end}, \
                 past the end of the file ({file_len} bytes)",
                raw.ty, raw.shape, raw.size
            )));
        }
        tensors.push(TensorInfo {
            name: name.to_owned(),
            ty: raw.ty,
            shape: raw.shape.clone(),
            offset: start,
            size: raw.size,
        });
    }
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    for pair in order.windows(2) {
        let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
        if a.offset + a.size > b.offset {
            return Err(c.err(format_args!(
                "the data of tensors {:?} (bytes {}..{}) and {:?} (bytes {}..{}) overlap",
                a.name,
                a.offset,
                a.offset + a.size,
                b.name,
                b.offset,
                b.offset + b.size
            )));
        }
    }

    Ok(Parsed {
        version,
        metadata,
        tensors,
    })
}

/// A GGUF v3 file being written: the header (all metadata and every tensor info, with offsets
/// computed from the declared tensors) is written by [`GgufWriter::create`]; tensor data is then
/// streamed through [`TensorWriter::write_tensor`] in declaration order, each tensor padded to the
/// alignment. Memory use does not depend on the size of the tensors. The file appears at its path
/// only when [`TensorWriter::finish`] succeeds.
pub struct GgufWriter {
    out: OutputFile,
    tensors: Vec<Planned>,
    next: usize,
    alignment: u64,
    data_start: u64,
    /// Set while bytes are being written, so that a failed write poisons the writer.
    broken: bool,
}

/// A declared tensor with its place in the file.
struct Planned {
    spec: TensorSpec,
    size: u64,
    /// Relative to the data section.
    offset: u64,
}

impl GgufWriter {
    /// Starts writing a GGUF v3 file at `path` with `metadata` and the `tensors` that will follow.
    ///
    /// `alignment` is the alignment of tensor data: a power of two of at least 8
    /// ([`DEFAULT_ALIGNMENT`] is what readers assume when the file does not say). It is recorded in
    /// the file only if `metadata` has `general.alignment`, which must then be a `u32` equal to it.
    ///
    /// Bad arguments (a misformed metadata value, a tensor name that is empty, too long for ggml
    /// or repeated, a shape ggml cannot hold) give [`ErrorKind::InvalidArgument`] naming the key or
    /// tensor; nothing is created then.
    ///
    /// [`ErrorKind::InvalidArgument`]: crate::ErrorKind::InvalidArgument
    pub fn create(
        path: &Path,
        metadata: &Metadata,
        tensors: &[TensorSpec],
        alignment: u64,
    ) -> Result<GgufWriter> {
        let bad = |msg: String| Error::invalid_argument(format!("{}: {msg}", path.display()));
        if !alignment.is_power_of_two() || alignment < 8 || alignment > u64::from(u32::MAX) {
            return Err(bad(format!(
                "GGUF alignment {alignment} must be a power of two between 8 and 2^31"
            )));
        }
        match metadata.get(ALIGNMENT_KEY) {
            None => {}
            Some(&Value::U32(a)) if u64::from(a) == alignment => {}
            Some(other) => {
                return Err(bad(format!(
                "metadata {ALIGNMENT_KEY} = {other} ({}) does not match the alignment {alignment} \
                     (it must be a u32 equal to it)",
                other.value_type().name()
            )))
            }
        }
        for (key, value) in metadata.iter() {
            if key.is_empty() {
                return Err(bad("a metadata key is empty".into()));
            }
            check_value(value, 0).map_err(|msg| bad(format!("metadata key {key:?}: {msg}")))?;
        }

        let mut planned = Vec::with_capacity(tensors.len());
        let mut names = HashSet::with_capacity(tensors.len());
        let mut next_offset = 0u64;
        for spec in tensors {
            let name = &spec.name;
            let tensor_err = |msg: String| bad(format!("tensor {name:?}: {msg}"));
            if name.is_empty() {
                return Err(bad("a tensor has an empty name".into()));
            }
            if name.len() > MAX_TENSOR_NAME_LEN {
                return Err(tensor_err(format!(
                    "the name is {} bytes long; ggml allows at most {MAX_TENSOR_NAME_LEN}",
                    name.len()
                )));
            }
            if !names.insert(name.as_str()) {
                return Err(tensor_err("declared twice".into()));
            }
            if spec.shape.len() > MAX_DIMS {
                return Err(tensor_err(format!(
                    "shape {:?} has {} dimensions; GGUF allows at most {MAX_DIMS}",
                    spec.shape,
                    spec.shape.len()
                )));
            }
            if let Some(d) = spec.shape.iter().find(|&&d| d == 0 || d > i64::MAX as u64) {
                return Err(tensor_err(format!(
                    "shape {:?} has dimension {d}; each must be between 1 and {}",
                    spec.shape,
                    i64::MAX
                )));
            }
            let elements = spec.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            if !matches!(elements, Some(n) if n <= i64::MAX as u64) {
                return Err(tensor_err(format!(
                    "shape {:?} has more elements than ggml can count",
                    spec.shape
                )));
            }
            let size = spec.ty.tensor_size(&spec.shape).ok_or_else(|| {
                tensor_err(format!(
                    "shape {:?} does not fit type {}: rows must be a multiple of {} values",
                    spec.shape,
                    spec.ty,
                    spec.ty.block_size()
                ))
            })?;
            let offset = next_offset;
            next_offset = size
                .checked_next_multiple_of(alignment)
                .and_then(|padded| offset.checked_add(padded))
                .ok_or_else(|| tensor_err("the file would be larger than 2^64 bytes".into()))?;
            planned.push(Planned {
                spec: spec.clone(),
                size,
                offset,
            });
        }

        let mut out = OutputFile::create(path)?;
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&(planned.len() as u64).to_le_bytes());
        buf.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata.iter() {
            put_string(&mut buf, key);
            buf.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            put_value(&mut buf, value);
            out.write_all(&buf)?;
            buf.clear();
        }
        for t in &planned {
            put_string(&mut buf, &t.spec.name);
            buf.extend_from_slice(&(t.spec.shape.len() as u32).to_le_bytes());
            for d in &t.spec.shape {
                buf.extend_from_slice(&d.to_le_bytes());
            }
            buf.extend_from_slice(&(t.spec.ty as u32).to_le_bytes());
            buf.extend_from_slice(&t.offset.to_le_bytes());
            out.write_all(&buf)?;
            buf.clear();
        }
        out.pad_to(alignment)?;
        let data_start = out.position();
        Ok(GgufWriter {
            out,
            tensors: planned,
            next: 0,
            alignment,
            data_start,
            broken: false,
        })
    }

    /// The absolute offset of the data section (where the first tensor's bytes go).
    pub fn data_offset(&self) -> u64 {
        self.data_start
    }

    fn error(&self, msg: impl std::fmt::Display) -> Error {
        Error::invalid_argument(format!("{}: {msg}", self.out.target().display()))
    }
}

impl TensorWriter for GgufWriter {
    fn write_tensor(&mut self, data: &[u8]) -> Result<()> {
        if self.broken {
            return Err(self.error("an earlier write failed; the file cannot be completed"));
        }
        let Some(t) = self.tensors.get(self.next) else {
            return Err(self.error(format_args!(
                "all {} declared tensors have already been written",
                self.tensors.len()
            )));
        };
        if data.len() as u64 != t.size {
            return Err(self.error(format_args!(
                "tensor {:?} ({}, shape {:?}) takes {} bytes, but {} bytes were given",
                t.spec.name,
                t.spec.ty,
                t.spec.shape,
                t.size,
                data.len()
            )));
        }
        debug_assert_eq!(self.out.position(), self.data_start + t.offset);
        self.broken = true;
        self.out.write_all(data)?;
        self.out.pad_to(self.alignment)?;
        self.broken = false;
        self.next += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<PathBuf> {
        if self.broken {
            return Err(self.error("an earlier write failed; the file cannot be completed"));
        }
        if let Some(missing) = self.tensors.get(self.next) {
            return Err(self.error(format_args!(
                "only {} of {} declared tensors were written; tensor {:?} and any after it are missing",
                self.next,
                self.tensors.len(),
                missing.spec.name
            )));
        }
        self.out.finish()
    }
}

/// Checks that an array's items all have its element type (recursively) and that arrays nest no
/// deeper than the reader accepts.
fn check_value(value: &Value, depth: usize) -> std::result::Result<(), String> {
    if let Value::Array(ty, items) = value {
        if depth + 1 > MAX_ARRAY_DEPTH {
            return Err(format!("arrays nest more than {MAX_ARRAY_DEPTH} deep"));
        }
        for (i, item) in items.iter().enumerate() {
            if item.value_type() != *ty {
                return Err(format!(
                    "element {i} of an array of {} is a {}",
                    ty.name(),
                    item.value_type().name()
                ));
            }
            check_value(item, depth + 1).map_err(|e| format!("element {i}: {e}"))?;
        }
    }
    Ok(())
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Appends the encoding of `value` (without its type id).
fn put_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => buf.push(*v),
        Value::I8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => buf.push(u8::from(*v)),
        Value::String(s) => put_string(buf, s),
        Value::Array(ty, items) => {
            buf.extend_from_slice(&(*ty as u32).to_le_bytes());
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(buf, item);
            }
        }
        Value::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn spec(name: &str, ty: GgmlType, shape: &[u64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            ty,
            shape: shape.to_vec(),
        }
    }

    /// Deterministic bytes for tensor `i` of `len` bytes.
    fn pattern(i: usize, len: u64) -> Vec<u8> {
        (0..len)
            .map(|j| (j as usize * 31 + i * 7 + 1) as u8)
            .collect()
    }

    fn all_values() -> Metadata {
        let mut m = Metadata::new();
        m.set("general.architecture", Value::String("llama".into()));
        m.set("t.u8", Value::U8(200));
        m.set("t.i8", Value::I8(-100));
        m.set("t.u16", Value::U16(60000));
        m.set("t.i16", Value::I16(-30000));
        m.set("t.u32", Value::U32(4_000_000_000));
        m.set("t.i32", Value::I32(-2_000_000_000));
        m.set("t.f32", Value::F32(1.5e-3));
        m.set("t.bool", Value::Bool(true));
        m.set("t.string", Value::String("héllo\n\"world\"".into()));
        m.set("t.u64", Value::U64(u64::MAX));
        m.set("t.i64", Value::I64(i64::MIN));
        m.set("t.f64", Value::F64(-2.5e300));
        m.set("t.empty", Value::Array(ValueType::F32, vec![]));
        m.set(
            "t.strings",
            Value::Array(
                ValueType::String,
                vec![Value::String("".into()), Value::String("ab".into())],
            ),
        );
        m.set(
            "t.nested",
            Value::Array(
                ValueType::Array,
                vec![
                    Value::Array(ValueType::I16, vec![Value::I16(1), Value::I16(-2)]),
                    Value::Array(ValueType::Bool, vec![]),
                ],
            ),
        );
        m
    }

    fn write(path: &Path, m: &Metadata, specs: &[TensorSpec], alignment: u64) -> Vec<Vec<u8>> {
        let mut w = GgufWriter::create(path, m, specs, alignment).unwrap();
        let mut datas = vec![];
        for (i, s) in specs.iter().enumerate() {
            let data = pattern(i, s.ty.tensor_size(&s.shape).unwrap());
            w.write_tensor(&data).unwrap();
            datas.push(data);
        }
        assert!(!path.exists(), "the file must not appear before finish");
        assert_eq!(Box::new(w).finish().unwrap(), path);
        datas
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let m = all_values();
        let specs = [
            spec("a", GgmlType::F32, &[3, 5]),
            spec("b", GgmlType::Q4_0, &[64, 2]),
            spec("c", GgmlType::F16, &[7]),
            spec("d", GgmlType::Q4_K, &[256, 1, 1, 2]),
            spec("scalar", GgmlType::I32, &[]),
        ];
        let datas = write(&path, &m, &specs, DEFAULT_ALIGNMENT);
        let f = ModelFile::open(&path, None).unwrap();
        assert_eq!(f.container, Container::Gguf);
        assert_eq!(f.version, 3);
        assert_eq!(f.metadata, m);
        assert_eq!(f.architecture(), Some("llama"));
        assert_eq!(f.tensors.len(), specs.len());
        let mut expected_offset = None;
        for ((t, s), data) in f.tensors.iter().zip(&specs).zip(&datas) {
            assert_eq!((&t.name, t.ty, &t.shape), (&s.name, s.ty, &s.shape));
            assert_eq!(t.offset % DEFAULT_ALIGNMENT, 0);
            if let Some(o) = expected_offset {
                assert_eq!(t.offset, o, "tensors are packed in order");
            }
            expected_offset = Some((t.offset + t.size).next_multiple_of(DEFAULT_ALIGNMENT));
            assert_eq!(f.tensor_data(t), &data[..]);
        }
        assert_eq!(f.bytes().len() as u64, expected_offset.unwrap());
    }

    #[test]
    fn alignment_is_written_only_when_in_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let specs = [
            spec("a", GgmlType::F32, &[3]),
            spec("b", GgmlType::F32, &[5]),
        ];

        let plain = dir.path().join("plain.gguf");
        write(&plain, &Metadata::new(), &specs, 32);
        let f = ModelFile::open(&plain, None).unwrap();
        assert!(f.metadata.is_empty());
        assert_eq!(f.tensors[1].offset - f.tensors[0].offset, 32);

        let mut m = Metadata::new();
        m.set(ALIGNMENT_KEY, Value::U32(256));
        let wide = dir.path().join("wide.gguf");
        write(&wide, &m, &specs, 256);
        let f = ModelFile::open(&wide, None).unwrap();
        assert_eq!(f.metadata.get_u64(ALIGNMENT_KEY), Some(256));
        assert_eq!(f.tensors[0].offset % 256, 0);
        assert_eq!(f.tensors[1].offset - f.tensors[0].offset, 256);

        // The alignment parameter must agree with the metadata.
        let err = GgufWriter::create(&dir.path().join("x.gguf"), &m, &specs, 32)
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains(ALIGNMENT_KEY), "{err}");
        m.set(ALIGNMENT_KEY, Value::U64(256));
        assert!(GgufWriter::create(&dir.path().join("x.gguf"), &m, &specs, 256).is_err());
        for bad in [0, 4, 48, 1 << 40] {
            let err = GgufWriter::create(&dir.path().join("x.gguf"), &Metadata::new(), &specs, bad)
                .err()
                .unwrap();
            assert!(err.message().contains(&bad.to_string()), "{err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn writer_refuses_bad_declarations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gguf");
        let check = |m: &Metadata, specs: &[TensorSpec], needle: &str| {
            let err = GgufWriter::create(&path, m, specs, 32).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
            assert!(err.message().contains(needle), "{needle:?} not in {err}");
            assert!(err.message().contains("x.gguf"), "{err}");
        };
        let none = Metadata::new();
        let a = spec("a", GgmlType::F32, &[4]);
        check(&none, &[a.clone(), a.clone()], "\"a\": declared twice");
        check(&none, &[spec("", GgmlType::F32, &[1])], "empty name");
        check(
            &none,
            &[spec(&"n".repeat(64), GgmlType::F32, &[1])],
            "64 bytes",
        );
        check(&none, &[spec("q", GgmlType::Q4_0, &[48])], "multiple of 32");
        check(&none, &[spec("z", GgmlType::F32, &[4, 0])], "dimension 0");
        check(
            &none,
            &[spec("five", GgmlType::F32, &[1; 5])],
            "5 dimensions",
        );
        check(
            &none,
            &[spec("big", GgmlType::F32, &[1 << 32, 1 << 32])],
            "more elements",
        );
        let mut m = Metadata::new();
        m.set("k", Value::Array(ValueType::U8, vec![Value::U16(1)]));
        check(&m, &[], "\"k\": element 0 of an array of u8 is a u16");
        let mut m = Metadata::new();
        m.set("", Value::U8(1));
        check(&m, &[], "key is empty");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn writer_checks_lengths_and_completeness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gguf");
        let specs = [
            spec("a", GgmlType::F32, &[4]),
            spec("b", GgmlType::Q8_0, &[32]),
        ];
        let mut w = GgufWriter::create(&path, &Metadata::new(), &specs, 32).unwrap();
        let err = w.write_tensor(&[0; 15]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            err.message()
                .contains("tensor \"a\" (f32, shape [4]) takes 16 bytes, but 15"),
            "{err}"
        );
        w.write_tensor(&[0; 16]).unwrap();
        let err = Box::new(w).finish().unwrap_err();
        assert!(err.message().contains("only 1 of 2"), "{err}");
        assert!(err.message().contains("\"b\""), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut w = GgufWriter::create(&path, &Metadata::new(), &specs[..1], 32).unwrap();
        w.write_tensor(&[0; 16]).unwrap();
        let err = w.write_tensor(&[0; 16]).unwrap_err();
        assert!(err.message().contains("already been written"), "{err}");
        Box::new(w).finish().unwrap();
        assert!(path.exists());
    }

    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&n_tensors.to_le_bytes());
        b.extend_from_slice(&n_kv.to_le_bytes());
        b
    }

    fn read_err(bytes: Vec<u8>) -> Error {
        match ModelFile::from_bytes(Path::new("t.gguf"), bytes, None) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn versions() {
        for v in [2, 3] {
            let f = ModelFile::from_bytes(Path::new("t.gguf"), header(v, 0, 0), None).unwrap();
            assert_eq!(f.version, v);
            assert!(f.tensors.is_empty() && f.metadata.is_empty());
        }
        for (v, needle) in [
            (0, "invalid GGUF version 0"),
            (1, "GGUF version 1 is not supported"),
            (4, "GGUF version 4 is not supported"),
            (99, "GGUF version 99 is not supported"),
            (3u32.swap_bytes(), "big-endian"),
        ] {
            let err = read_err(header(v, 0, 0));
            assert_eq!(err.kind(), ErrorKind::Format);
            assert!(err.message().starts_with("t.gguf: "), "{err}");
            assert!(err.message().contains(needle), "{needle:?} not in {err}");
        }
    }

    #[test]
    fn bool_values_other_than_0_and_1_are_refused() {
        let mut b = header(3, 0, 1);
        put_string(&mut b, "flag");
        b.extend_from_slice(&(ValueType::Bool as u32).to_le_bytes());
        b.push(2);
        let err = read_err(b);
        assert!(
            err.message().contains("metadata key \"flag\"") && err.message().contains("value 2"),
            "{err}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion_blowup() {
        let mut b = header(3, 0, 1);
        put_string(&mut b, "deep");
        b.extend_from_slice(&(ValueType::Array as u32).to_le_bytes());
        for _ in 0..100_000 {
            b.extend_from_slice(&(ValueType::Array as u32).to_le_bytes());
            b.extend_from_slice(&1u64.to_le_bytes());
        }
        let err = read_err(b);
        assert!(err.message().contains("nested more than 32 deep"), "{err}");

        // Exactly the limit is fine, and the writer accepts and reproduces it.
        let mut v = Value::Array(ValueType::U8, vec![Value::U8(7)]);
        for _ in 1..MAX_ARRAY_DEPTH {
            v = Value::Array(ValueType::Array, vec![v]);
        }
        let mut m = Metadata::new();
        m.set("deep", v);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep.gguf");
        write(&path, &m, &[], 32);
        assert_eq!(ModelFile::open(&path, None).unwrap().metadata, m);
        m.set(
            "deep",
            Value::Array(ValueType::Array, vec![m.get("deep").unwrap().clone()]),
        );
        let err = GgufWriter::create(&path, &m, &[], 32).err().unwrap();
        assert!(err.message().contains("nest more than 32 deep"), "{err}");
    }
}
