//! Legacy containers of llm-rs 0.2.15 / early llama.cpp: unversioned GGML, GGMF v1, GGJT v1–v3.
//!
//! # Layouts relied on
//!
//! Facts read from llm-rs 0.2.15 (`llm_rs/convert/models/*.py`, `auto.py`) and from the `llm` crate
//! of rustformers at the revision llm-rs 0.2.15 pins (`rev = "129b84a"`: `crates/ggml/src/format/
//! loader.rs` and `saver.rs`, `crates/ggml/src/lib.rs`, `crates/llm-base/src/loader.rs` and every
//! `crates/models/*/src/lib.rs`), checked against files written by the real llm-rs
//! (`tests/fixtures/legacy/`). All integers are little-endian.
//!
//! ```text
//! magic        u32   0x67676d6c "ggml" (unversioned) | 0x67676d66 "ggmf" | 0x67676a74 "ggjt"
//! version      u32   GGMF and GGJT only: GGMF 1, GGJT 1, 2 or 3
//! hyperparameters    per architecture, see below (all i32 unless said; one of them is `ftype`)
//! vocabulary   n_vocab × { len u32, bytes[len], score f32 (GGMF and GGJT only) }
//! tensors      until the end of the file, each:
//!     n_dims   i32   1 or 2 in llm (we read 1..=4)
//!     name_len i32
//!     type     u32   ggml type id of 2023: 0 f32, 1 f16, 2 q4_0, 3 q4_1, (4 q4_2, 5 q4_3: removed),
//!                    6 q5_0, 7 q5_1, 8 q8_0, 9 q8_1, 10–14 q2_k…q6_k, 15 q8_k, 16 i8, 17 i16, 18 i32
//!                    (16–18 are 24–26 in today's ggml; we translate both ways)
//!     dims     n_dims × i32, innermost first (ne0 = row length)
//!     name     name_len bytes (UTF-8)
//!     padding  GGJT only: zero bytes up to the next multiple of 32 bytes from the file start
//!              (all GGJT versions; llm-rs' Python writer seeks, the llm saver writes zeros)
//!     data     ggml row size × rows, no padding after it
//! ```
//!
//! `ftype` = `llama_ftype` + 1000 × quantization version (`GGML_QNT_VERSION_FACTOR`); the llm
//! quantizer writes quantization version 2 (`GGML_QNT_VERSION`), llm-rs' Python converter writes
//! plain 1 (mostly f16). `llama_ftype`: 0 all f32, 1 mostly f16, 2 q4_0, 3 q4_1, 4 q4_1 some f16,
//! 7 q8_0, 8 q5_0, 9 q5_1, 10 q2_k, 11–13 q3_k s/m/l, 14–15 q4_k s/m, 16–17 q5_k s/m, 18 q6_k. It is
//! mapped onto `general.file_type` (= ftype % 1000) and `general.quantization_version`
//! (= ftype / 1000).
//!
//! Hyperparameters, in file order (→ GGUF key; `{a}.` is the llama.cpp architecture name):
//!
//! | arch    | fields |
//! |---------|--------|
//! | GPT-2   | n_vocab, n_ctx, n_embd, n_head, n_layer, ftype, n_vocab again (must match) |
//! | GPT-J   | n_vocab, n_ctx, n_embd, n_head, n_layer, n_rot, ftype, n_vocab again |
//! | GPT-NeoX| n_vocab, n_ctx, n_embd, n_head, n_layer, n_rot, use_parallel_residual (i32 0/1), ftype |
//! | LLaMA   | n_vocab, n_embd, n_mult, n_head, n_layer, n_rot, ftype |
//! | MPT     | n_embd, max_seq_len, n_head, n_layer, n_vocab, alibi_bias_max f32, clip_kqv f32, ftype |
//! | BLOOM   | n_vocab, n_embd, n_mult, n_head, n_layer, ftype |
//!
//! n_vocab → `{a}.vocab_size`, n_ctx / max_seq_len → `{a}.context_length`, n_embd →
//! `{a}.embedding_length`, n_head → `{a}.attention.head_count`, n_layer → `{a}.block_count`, n_rot
//! → `{a}.rope.dimension_count`, use_parallel_residual → `gptneox.use_parallel_residual`,
//! alibi_bias_max → `mpt.attention.max_alibi_bias`, clip_kqv → `mpt.attention.clamp_kqv` (only when
//! not 0.0, which llm-rs writes for "no clipping"), n_mult → `legacy.n_mult` (no GGUF key). Derived
//! on reading (ignored by the writer except for the checks below): `{a}.feed_forward_length` from the
//! first layer's up-projection, and for LLaMA `llama.attention.head_count_kv` from `wk`.
//!
//! Per-architecture facts of llm-rs 0.2.15: its Python converters write unversioned GGML for GPT-2,
//! GPT-J, GPT-NeoX, MPT and BLOOM (no scores), and GGJT **v1** for LLaMA (with SentencePiece scores),
//! n_mult = 256 for LLaMA and 1 for BLOOM; the llm quantizer writes GGML or GGJT v3, listing the
//! tensors in hash-map order. llm derives LLaMA's n_ff from n_mult as
//! `((2·4·n_embd/3 + n_mult − 1) / n_mult) · n_mult`, so the legacy LLaMA layout cannot express
//! grouped-query attention, a RoPE base other than 10000, or an n_ff that formula cannot produce.
//! llm's loader and saver refuse Q4_0/Q4_1 tensors whose rows are not a multiple of 64 values, and
//! its saver refuses a GGML (score-less) file for a vocabulary with non-zero scores. llm computes
//! tensor sizes with the GGJT v3 block layouts whatever the file's version, so it misreads Q4_0,
//! Q4_1 and Q8_0 tensors of GGJT v1/v2 files (f32 block scales then); we refuse such files instead.

use super::{Container, LegacyVocab, Metadata, ModelFile, Storage, TensorInfo, TensorSpec, Value};
use super::{GgmlType, OutputFile, TensorWriter};
use crate::error::{Error, ErrorKind, Result};
use crate::Architecture;
use std::path::{Path, PathBuf};

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
            MAGIC_GGML => Some(LegacyMagic::Ggml),
            MAGIC_GGMF => Some(LegacyMagic::Ggmf),
            MAGIC_GGJT => Some(LegacyMagic::Ggjt),
            _ => None,
        }
    }
}

const MAGIC_GGML: u32 = 0x6767_6d6c;
const MAGIC_GGMF: u32 = 0x6767_6d66;
const MAGIC_GGJT: u32 = 0x6767_6a74;

/// GGJT aligns every tensor's data to this many bytes from the start of the file.
pub const GGJT_ALIGNMENT: u64 = 32;
/// `ftype = llama_ftype + QUANTIZATION_VERSION_FACTOR × quantization version`.
pub const QUANTIZATION_VERSION_FACTOR: u32 = 1000;
/// The quantization version of the current ggml block layouts (GGJT v3).
pub const CURRENT_QUANTIZATION_VERSION: u32 = 2;

/// A legacy container and its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LegacyFormat {
    pub container: Container,
    /// 0 for unversioned GGML, 1 for GGMF, 1–3 for GGJT.
    pub version: u32,
}

impl LegacyFormat {
    /// Unversioned GGML: no token scores, no alignment.
    pub const GGML: LegacyFormat = LegacyFormat {
        container: Container::Ggml,
        version: 0,
    };
    /// GGMF v1: GGML plus a version and token scores.
    pub const GGMF_V1: LegacyFormat = LegacyFormat {
        container: Container::Ggmf,
        version: 1,
    };
    /// GGJT v3: token scores and 32-byte aligned tensor data; current block layouts.
    pub const GGJT_V3: LegacyFormat = LegacyFormat {
        container: Container::Ggjt,
        version: 3,
    };

    /// True when the vocabulary stores a score per token (GGMF, GGJT).
    pub fn has_scores(self) -> bool {
        self.container != Container::Ggml
    }

    /// True when tensor data is aligned to [`GGJT_ALIGNMENT`] (GGJT).
    pub fn is_aligned(self) -> bool {
        self.container == Container::Ggjt
    }

    fn is_valid(self) -> bool {
        matches!(
            (self.container, self.version),
            (Container::Ggml, 0) | (Container::Ggmf, 1) | (Container::Ggjt, 1..=3)
        )
    }

    fn magic(self) -> u32 {
        match self.container {
            Container::Ggmf => MAGIC_GGMF,
            Container::Ggjt => MAGIC_GGJT,
            _ => MAGIC_GGML,
        }
    }
}

impl std::fmt::Display for LegacyFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.container {
            Container::Ggml => f.write_str("GGML"),
            c => write!(f, "{} v{}", c.name().to_ascii_uppercase(), self.version),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hyperparameter layouts

/// Where a hyperparameter goes in the metadata.
#[derive(Clone, Copy, Debug)]
enum Key {
    /// `{arch}.` + this.
    Arch(&'static str),
    /// This exact key.
    Abs(&'static str),
}

/// One field of a hyperparameter layout.
#[derive(Clone, Copy, Debug)]
enum Field {
    /// A positive i32 count stored as a u32 value.
    Count(Key),
    /// An i32 that is 0 or 1.
    Bool(Key),
    /// An f32.
    F32(Key),
    /// An f32 that is omitted from the metadata when its bits are 0 (and written as 0.0 when absent).
    F32ZeroAbsent(Key),
    /// The ftype (`general.file_type` + 1000 × `general.quantization_version`).
    FileType,
    /// n_vocab written a second time (GPT-2, GPT-J): must equal `{arch}.vocab_size`.
    VocabAgain,
}

const VOCAB: Key = Key::Arch("vocab_size");
const CTX: Key = Key::Arch("context_length");
const EMBD: Key = Key::Arch("embedding_length");
const HEAD: Key = Key::Arch("attention.head_count");
const LAYER: Key = Key::Arch("block_count");
const ROT: Key = Key::Arch("rope.dimension_count");
const N_MULT: Key = Key::Abs("legacy.n_mult");

fn layout(arch: Architecture) -> &'static [Field] {
    use Field::*;
    match arch {
        Architecture::Gpt2 => &[
            Count(VOCAB),
            Count(CTX),
            Count(EMBD),
            Count(HEAD),
            Count(LAYER),
            FileType,
            VocabAgain,
        ],
        Architecture::GptJ => &[
            Count(VOCAB),
            Count(CTX),
            Count(EMBD),
            Count(HEAD),
            Count(LAYER),
            Count(ROT),
            FileType,
            VocabAgain,
        ],
        Architecture::GptNeoX => &[
            Count(VOCAB),
            Count(CTX),
            Count(EMBD),
            Count(HEAD),
            Count(LAYER),
            Count(ROT),
            Bool(Key::Arch("use_parallel_residual")),
            FileType,
        ],
        Architecture::Llama => &[
            Count(VOCAB),
            Count(EMBD),
            Count(N_MULT),
            Count(HEAD),
            Count(LAYER),
            Count(ROT),
            FileType,
        ],
        Architecture::Mpt => &[
            Count(EMBD),
            Count(CTX),
            Count(HEAD),
            Count(LAYER),
            Count(VOCAB),
            F32(Key::Arch("attention.max_alibi_bias")),
            F32ZeroAbsent(Key::Arch("attention.clamp_kqv")),
            FileType,
        ],
        Architecture::Bloom => &[
            Count(VOCAB),
            Count(EMBD),
            Count(N_MULT),
            Count(HEAD),
            Count(LAYER),
            FileType,
        ],
    }
}

fn key_name(arch: Architecture, key: Key) -> String {
    match key {
        Key::Arch(k) => format!("{}.{k}", arch.gguf_name()),
        Key::Abs(k) => k.to_string(),
    }
}

/// The legacy (2023) ggml type id of `ty`, if a legacy file can hold it.
fn legacy_type_id(ty: GgmlType) -> Option<u32> {
    match ty {
        GgmlType::I8 => Some(16),
        GgmlType::I16 => Some(17),
        GgmlType::I32 => Some(18),
        t if (t as u32) <= 15 => Some(t as u32),
        _ => None,
    }
}

/// The type of legacy ggml type id `id`.
fn type_from_legacy_id(id: u32) -> std::result::Result<GgmlType, String> {
    match id {
        4 | 5 => Err(format!(
            "type id {id} (Q4_{}) was removed from ggml and cannot be read",
            id - 2
        )),
        16 => Ok(GgmlType::I8),
        17 => Ok(GgmlType::I16),
        18 => Ok(GgmlType::I32),
        0..=15 => Ok(GgmlType::from_id(id).expect("ids 0-15 but 4 and 5 exist")),
        _ => Err(format!("unknown tensor type id {id}")),
    }
}

/// The tensor whose second dimension is the feed-forward width, per architecture.
fn ffn_tensor(arch: Architecture) -> &'static str {
    match arch {
        Architecture::Gpt2 => "model/h0/mlp/c_fc/w",
        Architecture::GptJ => "transformer.h.0.mlp.fc_in.weight",
        Architecture::GptNeoX => "gpt_neox.layers.0.mlp.dense_h_to_4h.weight",
        Architecture::Llama | Architecture::Bloom => "layers.0.feed_forward.w1.weight",
        Architecture::Mpt => "transformer.blocks.0.ffn.up_proj.weight",
    }
}

/// Name prefixes of the tensors llm-rs writes for `arch` (used only to tell architectures apart).
fn name_prefixes(arch: Architecture) -> &'static [&'static str] {
    match arch {
        Architecture::Gpt2 => &["model/"],
        Architecture::GptJ | Architecture::Mpt => &["transformer.", "lm_head."],
        Architecture::GptNeoX => &["gpt_neox.", "embed_out."],
        Architecture::Llama => &["tok_embeddings.", "norm.", "output.", "layers."],
        Architecture::Bloom => &[
            "tok_embeddings.",
            "norm.",
            "output_norm.",
            "output.",
            "layers.",
        ],
    }
}

/// llm's LLaMA feed-forward width for `n_embd` and `n_mult`.
pub fn llama_n_ff(n_embd: u64, n_mult: u64) -> Option<u64> {
    let base = (2 * 4 * n_embd) / 3;
    Some(base.checked_add(n_mult)?.checked_sub(1)? / n_mult.max(1) * n_mult)
}

// ---------------------------------------------------------------------------------------------
// Reader

/// A bounds-checked little-endian cursor over the file; errors name the file and what was read.
struct Cursor<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::format(self.path, msg)
    }
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    fn bytes(&mut self, n: usize, what: &dyn std::fmt::Display) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format_args!(
                "truncated: {what} needs {n} bytes at offset {}, but the file ends after {} more",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &dyn std::fmt::Display) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn i32(&mut self, what: &dyn std::fmt::Display) -> Result<i32> {
        Ok(self.u32(what)? as i32)
    }
    fn f32(&mut self, what: &dyn std::fmt::Display) -> Result<f32> {
        Ok(f32::from_bits(self.u32(what)?))
    }
}

/// Everything a legacy file holds, parsed under one architecture's layout.
struct Parsed {
    metadata: Metadata,
    vocab: LegacyVocab,
    tensors: Vec<TensorInfo>,
}

/// Reads a legacy file.
pub(crate) fn read(
    path: PathBuf,
    data: Storage,
    magic: LegacyMagic,
    arch_hint: Option<Architecture>,
) -> Result<ModelFile> {
    let mut cur = Cursor {
        path: &path,
        data: &data,
        pos: 4,
    };
    let format = match magic {
        LegacyMagic::Ggml => LegacyFormat::GGML,
        LegacyMagic::Ggmf | LegacyMagic::Ggjt => {
            let container = if magic == LegacyMagic::Ggmf {
                Container::Ggmf
            } else {
                Container::Ggjt
            };
            let version = cur.u32(&"the container version")?;
            let format = LegacyFormat { container, version };
            if !format.is_valid() {
                return Err(Error::unsupported(format!(
                    "{}: {} version {version} is not a known version (GGMF 1, GGJT 1-3)",
                    path.display(),
                    container.name().to_ascii_uppercase()
                )));
            }
            format
        }
    };
    let start = cur.pos;

    let (arch, parsed) = match arch_hint {
        Some(arch) => (arch, parse(&path, &data, start, format, arch, false)?),
        None => {
            let from_meta = match &data {
                Storage::Mapped(_) => super::meta::Meta::read(&super::meta::meta_path_for(&path))
                    .ok()
                    .map(|m| m.model),
                Storage::Owned(_) => None,
            };
            match from_meta {
                Some(arch) => {
                    let parsed = parse(&path, &data, start, format, arch, false).map_err(|e| {
                        e.context(format!(
                            "(read as {arch}, the architecture named by {})",
                            super::meta::meta_path_for(&path).display()
                        ))
                    })?;
                    (arch, parsed)
                }
                None => detect(&path, &data, start, format)?,
            }
        }
    };

    let mut metadata = Metadata::new();
    metadata.set(
        "general.architecture",
        Value::String(arch.gguf_name().to_string()),
    );
    for (k, v) in parsed.metadata.iter() {
        metadata.set(k, v.clone());
    }
    Ok(ModelFile {
        path,
        container: format.container,
        version: format.version,
        metadata,
        legacy_vocab: Some(parsed.vocab),
        tensors: parsed.tensors,
        data,
    })
}

/// Tries every architecture's layout; exactly one must parse the whole file with plausible names.
fn detect(
    path: &Path,
    data: &[u8],
    start: usize,
    format: LegacyFormat,
) -> Result<(Architecture, Parsed)> {
    let mut fits = Vec::new();
    let mut failures = Vec::new();
    for arch in Architecture::ALL {
        match parse(path, data, start, format, arch, true) {
            Ok(p) => fits.push((arch, p)),
            Err(e) => {
                let prefix = format!("{}: ", path.display());
                let msg = e.message().strip_prefix(&prefix).unwrap_or(e.message());
                failures.push(format!("as {arch}: {msg}"));
            }
        }
    }
    match fits.len() {
        1 => Ok(fits.pop().expect("one")),
        0 => Err(Error::format(
            path,
            format!(
                "no architecture's {format} layout fits this file, and no architecture was given or \
                 found in a .meta file ({}); pass the architecture explicitly",
                failures.join("; ")
            ),
        )),
        _ => Err(Error::unsupported(format!(
            "{}: the file fits the {format} layouts of {}; pass the architecture explicitly",
            path.display(),
            fits.iter()
                .map(|(a, _)| a.to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        ))),
    }
}

fn parse(
    path: &Path,
    data: &[u8],
    start: usize,
    format: LegacyFormat,
    arch: Architecture,
    strict_names: bool,
) -> Result<Parsed> {
    let mut cur = Cursor {
        path,
        data,
        pos: start,
    };
    let mut metadata = Metadata::new();
    let mut n_vocab = None;
    let mut quantization_version = 0;
    for field in layout(arch) {
        match *field {
            Field::Count(key) => {
                let name = key_name(arch, key);
                let v = cur.i32(&format_args!("hyperparameter {name}"))?;
                if v <= 0 {
                    return Err(cur.err(format_args!(
                        "hyperparameter {name} is {v}; it must be positive"
                    )));
                }
                if matches!(key, Key::Arch("vocab_size")) {
                    n_vocab = Some(v as u32);
                }
                metadata.set(name, Value::U32(v as u32));
            }
            Field::Bool(key) => {
                let name = key_name(arch, key);
                let v = cur.i32(&format_args!("hyperparameter {name}"))?;
                if v != 0 && v != 1 {
                    return Err(cur.err(format_args!(
                        "hyperparameter {name} is {v}; a boolean must be 0 or 1"
                    )));
                }
                metadata.set(name, Value::Bool(v == 1));
            }
            Field::F32(key) | Field::F32ZeroAbsent(key) => {
                let name = key_name(arch, key);
                let v = cur.f32(&format_args!("hyperparameter {name}"))?;
                if !v.is_finite() {
                    return Err(cur.err(format_args!("hyperparameter {name} is {v}")));
                }
                if matches!(field, Field::F32(_)) || v.to_bits() != 0 {
                    metadata.set(name, Value::F32(v));
                }
            }
            Field::FileType => {
                let v = cur.i32(&"hyperparameter ftype")?;
                if v < 0 {
                    return Err(cur.err(format_args!("ftype is {v}; it must not be negative")));
                }
                let v = v as u32;
                quantization_version = v / QUANTIZATION_VERSION_FACTOR;
                metadata.set(
                    "general.file_type",
                    Value::U32(v % QUANTIZATION_VERSION_FACTOR),
                );
                metadata.set(
                    "general.quantization_version",
                    Value::U32(quantization_version),
                );
            }
            Field::VocabAgain => {
                let v = cur.i32(&"the vocabulary size (repeated)")?;
                let expected = n_vocab.expect("vocab_size comes first");
                if v as u32 != expected || v < 0 {
                    return Err(cur.err(format_args!(
                        "the vocabulary size is given as {expected} and then as {v}"
                    )));
                }
            }
        }
    }
    let n_vocab = n_vocab.expect("every layout has vocab_size") as usize;

    // Vocabulary. Never trust the claimed count for an allocation: each token takes >= 4 bytes.
    let mut vocab = LegacyVocab {
        tokens: Vec::with_capacity(n_vocab.min(cur.remaining() / 4)),
        scores: Vec::new(),
    };
    if format.has_scores() {
        vocab.scores.reserve(vocab.tokens.capacity());
    }
    for i in 0..n_vocab {
        let len = cur.u32(&format_args!("the length of token {i} of {n_vocab}"))? as usize;
        let bytes = cur.bytes(len, &format_args!("token {i} of {n_vocab} ({len} bytes)"))?;
        vocab.tokens.push(bytes.to_vec());
        if format.has_scores() {
            let s = cur.f32(&format_args!("the score of token {i} of {n_vocab}"))?;
            vocab.scores.push(s);
        }
    }

    // Tensors, to the end of the file.
    let mut tensors: Vec<TensorInfo> = Vec::new();
    let mut names = std::collections::HashSet::new();
    while cur.remaining() > 0 {
        let idx = tensors.len();
        let header_at = cur.pos;
        let what = |s: &str| format!("tensor #{idx} (header at offset {header_at}): {s}");
        let n_dims = cur.i32(&what("the number of dimensions"))?;
        if !(1..=4).contains(&n_dims) {
            return Err(cur.err(what(&format!(
                "has {n_dims} dimensions; legacy files hold 1 to 4"
            ))));
        }
        let name_len = cur.i32(&what("the name length"))?;
        let type_id = cur.u32(&what("the type"))?;
        let mut shape = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let v = cur.i32(&what(&format!("dimension {d}")))?;
            if v <= 0 {
                return Err(cur.err(what(&format!("dimension {d} is {v}; it must be positive"))));
            }
            shape.push(v as u64);
        }
        if name_len <= 0 {
            return Err(cur.err(what(&format!(
                "the name length is {name_len}; it must be positive"
            ))));
        }
        let name_bytes = cur.bytes(name_len as usize, &what("the name"))?;
        let name = match std::str::from_utf8(name_bytes) {
            Ok(s) => s.to_string(),
            Err(_) => {
                return Err(cur.err(what(&format!(
                    "the name is not valid UTF-8 ({})",
                    String::from_utf8_lossy(name_bytes)
                ))))
            }
        };
        let what = |s: &str| format!("tensor '{name}' (header at offset {header_at}): {s}");
        if strict_names
            && !(name_prefixes(arch).iter().any(|p| name.starts_with(p))
                && name.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(cur.err(what("is not a tensor name of this architecture")));
        }
        if !names.insert(name.clone()) {
            return Err(cur.err(what("appears twice")));
        }
        let ty = match type_from_legacy_id(type_id) {
            Ok(t) => t,
            Err(msg) if type_id == 4 || type_id == 5 => {
                return Err(Error::unsupported(format!(
                    "{}: {}",
                    path.display(),
                    what(&msg)
                )))
            }
            Err(msg) => return Err(cur.err(what(&msg))),
        };
        let Some(size) = ty.tensor_size(&shape) else {
            return Err(cur.err(what(&format!(
                "shape {shape:?} of type {ty} is invalid (rows must be a multiple of {} values; \
                 the size must fit in 64 bits)",
                ty.block_size()
            ))));
        };
        let mut offset = cur.pos as u64;
        if format.is_aligned() {
            let aligned = offset.next_multiple_of(GGJT_ALIGNMENT);
            let pad = (aligned - offset) as usize;
            let padding = cur.bytes(pad, &what("the alignment padding"))?;
            if padding.iter().any(|&b| b != 0) {
                return Err(cur.err(what(&format!(
                    "the {pad} bytes before its data at offset {offset} are not zero padding: the \
                     data is not {GGJT_ALIGNMENT}-byte aligned as GGJT requires"
                ))));
            }
            offset = aligned;
        }
        let end = offset.checked_add(size);
        match end {
            Some(end) if end <= data.len() as u64 => cur.pos = end as usize,
            _ => {
                return Err(cur.err(what(&format!(
                    "its data ({size} bytes at offset {offset}) runs past the end of the file \
                     ({} bytes)",
                    data.len()
                ))))
            }
        }
        tensors.push(TensorInfo {
            name,
            ty,
            shape,
            offset,
            size,
        });
    }

    if tensors.is_empty() {
        return Err(cur.err(format_args!(
            "the file ends after the vocabulary (offset {}): it holds no tensors",
            cur.pos
        )));
    }

    // Block layouts older than quantization version 2 / GGJT v3 are not today's.
    let old_layout = match format.container {
        Container::Ggjt => format.version < 3,
        _ => quantization_version < CURRENT_QUANTIZATION_VERSION,
    };
    if old_layout {
        if let Some(t) = tensors.iter().find(|t| {
            matches!(
                t.ty,
                GgmlType::Q4_0
                    | GgmlType::Q4_1
                    | GgmlType::Q5_0
                    | GgmlType::Q5_1
                    | GgmlType::Q8_0
                    | GgmlType::Q8_1
            )
        }) {
            return Err(Error::unsupported(format!(
                "{}: tensor '{}' is {} in a {format} file of quantization version \
                 {quantization_version}, whose block layout predates ggml's current one (GGJT v3, \
                 quantization version 2); re-quantize it from an f16 or f32 file",
                path.display(),
                t.name,
                t.ty
            )));
        }
    }

    derive(arch, &mut metadata, &tensors);
    Ok(Parsed {
        metadata,
        vocab,
        tensors,
    })
}

/// Adds what the tensor table tells beyond the hyperparameters.
fn derive(arch: Architecture, metadata: &mut Metadata, tensors: &[TensorInfo]) {
    let a = arch.gguf_name();
    if let Some(t) = tensors.iter().find(|t| t.name == ffn_tensor(arch)) {
        if t.shape.len() == 2 {
            metadata.set(
                format!("{a}.feed_forward_length"),
                Value::U32(t.shape[1] as u32),
            );
        }
    }
    if arch == Architecture::Llama {
        let embd = metadata.get_u64("llama.embedding_length").unwrap_or(0);
        let heads = metadata.get_u64("llama.attention.head_count").unwrap_or(0);
        let wk = tensors
            .iter()
            .find(|t| t.name == "layers.0.attention.wk.weight");
        let kv = match wk {
            Some(t) if t.shape.len() == 2 && heads > 0 && embd.is_multiple_of(heads) => {
                let head_dim = embd / heads;
                if t.shape[1] % head_dim == 0 {
                    t.shape[1] / head_dim
                } else {
                    heads
                }
            }
            _ => heads,
        };
        metadata.set("llama.attention.head_count_kv", Value::U32(kv as u32));
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

/// A streaming writer of a legacy file; see [`LegacyWriter::create`].
pub struct LegacyWriter {
    out: OutputFile,
    format: LegacyFormat,
    tensors: Vec<TensorSpec>,
    next: usize,
}

fn invalid(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::invalid_argument(format!("{}: {msg}", path.display()))
}

fn unsupported(path: &Path, format: LegacyFormat, msg: impl std::fmt::Display) -> Error {
    Error::unsupported(format!(
        "{}: the {format} layout of llm-rs cannot express this model: {msg}; write GGUF instead",
        path.display()
    ))
}

impl LegacyWriter {
    /// Starts writing `path` as a legacy file of `format` for `arch`.
    ///
    /// `metadata` uses the keys the reader produces (see the module documentation): the
    /// architecture's hyperparameters, `general.file_type` (required) and
    /// `general.quantization_version` (default 0, or 2 when a tensor is quantized). Keys the layout
    /// has no place for are ignored, except that what the layout would silently change is refused
    /// (UNSUPPORTED): LLaMA with `head_count_kv` ≠ `head_count`, a RoPE base other than 10000, RoPE
    /// scaling, or a `feed_forward_length` that no n_mult produces. `vocab` must have
    /// `{arch}.vocab_size` tokens; GGML cannot store non-zero scores. `tensors` are declared here
    /// and written in this order with [`TensorWriter::write_tensor`].
    ///
    /// The header, hyperparameters and vocabulary are written now; nothing appears at `path` until
    /// `finish`.
    pub fn create(
        path: &Path,
        format: LegacyFormat,
        arch: Architecture,
        metadata: &Metadata,
        vocab: &LegacyVocab,
        tensors: Vec<TensorSpec>,
    ) -> Result<LegacyWriter> {
        let header = encode_header(path, format, arch, metadata, vocab, &tensors)?;
        let mut out = OutputFile::create(path)?;
        out.write_all(&header)?;
        Ok(LegacyWriter {
            out,
            format,
            tensors,
            next: 0,
        })
    }
}

fn get_count(path: &Path, metadata: &Metadata, key: &str) -> Result<Option<u32>> {
    match metadata.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= i32::MAX as u64 => Ok(Some(n as u32)),
            _ => Err(invalid(
                path,
                format!("metadata {key} is {v}; the legacy layout needs an integer in 1..=2^31-1"),
            )),
        },
    }
}

fn get_f32(path: &Path, metadata: &Metadata, key: &str) -> Result<Option<f32>> {
    match metadata.get(key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) => Ok(Some(x as f32)),
            None => Err(invalid(
                path,
                format!("metadata {key} is {v}; expected a float"),
            )),
        },
    }
}

/// Checks what the legacy layout of `arch` cannot store, and fills in what it needs.
fn resolve(
    path: &Path,
    format: LegacyFormat,
    arch: Architecture,
    metadata: &Metadata,
    n_tokens: usize,
) -> Result<Metadata> {
    let a = arch.gguf_name();
    let key = |k: &str| format!("{a}.{k}");
    let mut m = metadata.clone();
    let vocab = get_count(path, &m, &key("vocab_size"))?;
    match vocab {
        Some(v) if v as usize != n_tokens => {
            return Err(invalid(
                path,
                format!("{a}.vocab_size is {v} but the vocabulary has {n_tokens} tokens"),
            ))
        }
        Some(_) => {}
        None => {
            if n_tokens == 0 || n_tokens > i32::MAX as usize {
                return Err(invalid(
                    path,
                    format!("the vocabulary has {n_tokens} tokens"),
                ));
            }
            m.set(key("vocab_size"), Value::U32(n_tokens as u32));
        }
    }
    let embd = get_count(path, &m, &key("embedding_length"))?;
    let heads = get_count(path, &m, &key("attention.head_count"))?;
    match arch {
        Architecture::Llama => {
            let (Some(embd), Some(heads)) = (embd, heads) else {
                return Err(invalid(
                    path,
                    "llama.embedding_length and llama.attention.head_count are required",
                ));
            };
            if let Some(kv) = get_count(path, &m, "llama.attention.head_count_kv")? {
                if kv != heads {
                    return Err(unsupported(
                        path,
                        format,
                        format_args!(
                            "grouped-query attention (llama.attention.head_count_kv = {kv}, \
                             head_count = {heads}) has no field in it (llm-rs 0.2.15 converts such \
                             a model and then aborts on first use)"
                        ),
                    ));
                }
            }
            if let Some(base) = get_f32(path, &m, "llama.rope.freq_base")? {
                if base != 10000.0 {
                    return Err(unsupported(
                        path,
                        format,
                        format_args!(
                            "llama.rope.freq_base is {base}; the layout has no field for it and \
                             readers assume 10000"
                        ),
                    ));
                }
            }
            if let Some(v) = m.get("llama.rope.scaling.type") {
                if v.as_str() != Some("none") {
                    return Err(unsupported(
                        path,
                        format,
                        format_args!("RoPE scaling ({v}) has no field in it"),
                    ));
                }
            }
            if let Some(f) = get_f32(path, &m, "llama.rope.scaling.factor")? {
                if f != 1.0 && f != 0.0 {
                    return Err(unsupported(
                        path,
                        format,
                        format_args!("llama.rope.scaling.factor {f} has no field in it"),
                    ));
                }
            }
            let ff = get_count(path, &m, "llama.feed_forward_length")?;
            match (get_count(path, &m, "legacy.n_mult")?, ff) {
                (Some(n_mult), Some(ff)) => {
                    let got = llama_n_ff(embd.into(), n_mult.into());
                    if got != Some(ff.into()) {
                        return Err(unsupported(
                            path,
                            format,
                            format_args!(
                                "legacy.n_mult {n_mult} gives a feed-forward width of {got:?}, \
                                 not llama.feed_forward_length {ff}"
                            ),
                        ));
                    }
                }
                (Some(_), None) => {}
                (None, Some(ff)) => {
                    let n_mult = find_n_mult(embd.into(), ff.into()).ok_or_else(|| {
                        unsupported(
                            path,
                            format,
                            format_args!(
                                "llama.feed_forward_length {ff} cannot be written as an n_mult \
                                 for embedding length {embd} (llm derives the width from n_mult)"
                            ),
                        )
                    })?;
                    m.set("legacy.n_mult", Value::U32(n_mult as u32));
                }
                (None, None) => {
                    return Err(invalid(
                        path,
                        "LLaMA needs legacy.n_mult or llama.feed_forward_length",
                    ))
                }
            }
            if m.get("llama.rope.dimension_count").is_none() {
                m.set(
                    "llama.rope.dimension_count",
                    Value::U32(embd / heads.max(1)),
                );
            }
        }
        Architecture::GptNeoX => {
            if m.get("gptneox.use_parallel_residual").is_none() {
                m.set("gptneox.use_parallel_residual", Value::Bool(true));
            }
        }
        Architecture::Mpt => {
            if m.get("mpt.attention.max_alibi_bias").is_none() {
                m.set("mpt.attention.max_alibi_bias", Value::F32(8.0));
            }
        }
        Architecture::Bloom => {
            if m.get("legacy.n_mult").is_none() {
                m.set("legacy.n_mult", Value::U32(1));
            }
        }
        Architecture::Gpt2 | Architecture::GptJ => {}
    }
    Ok(m)
}

/// The n_mult from which llm derives `ff` for `embd` (256 first, as llm-rs writes, then the largest).
fn find_n_mult(embd: u64, ff: u64) -> Option<u64> {
    if llama_n_ff(embd, 256) == Some(ff) {
        return Some(256);
    }
    (1..=ff.min(i32::MAX as u64))
        .rev()
        .find(|&m| llama_n_ff(embd, m) == Some(ff))
}

/// Everything before the first tensor: magic, version, hyperparameters, vocabulary. Also checks
/// the tensor specs, so that nothing is created for a model the layout cannot hold.
fn encode_header(
    path: &Path,
    format: LegacyFormat,
    arch: Architecture,
    metadata: &Metadata,
    vocab: &LegacyVocab,
    tensors: &[TensorSpec],
) -> Result<Vec<u8>> {
    if !format.is_valid() {
        return Err(invalid(path, format!("{format} is not a legacy format")));
    }
    if !vocab.scores.is_empty() && vocab.scores.len() != vocab.tokens.len() {
        return Err(invalid(
            path,
            format!(
                "the vocabulary has {} tokens but {} scores",
                vocab.tokens.len(),
                vocab.scores.len()
            ),
        ));
    }
    if !format.has_scores() && vocab.scores.iter().any(|s| s.to_bits() != 0) {
        return Err(Error::unsupported(format!(
            "{}: the GGML container has no token scores, and this vocabulary has non-zero scores; \
             write GGJT or GGUF instead",
            path.display()
        )));
    }
    let m = resolve(path, format, arch, metadata, vocab.tokens.len())?;
    let file_type = m.get("general.file_type").and_then(|v| v.as_u64());
    let Some(file_type) = file_type.filter(|&f| f < QUANTIZATION_VERSION_FACTOR as u64) else {
        return Err(invalid(
            path,
            "metadata general.file_type (an integer below 1000) is required for a legacy file",
        ));
    };
    let any_quantized = tensors.iter().any(|t| t.ty.is_quantized());
    let qv = match m.get("general.quantization_version") {
        Some(v) => v
            .as_u64()
            .filter(|&q| {
                q.checked_mul(QUANTIZATION_VERSION_FACTOR as u64)
                    .and_then(|x| x.checked_add(file_type))
                    .is_some_and(|x| x <= i32::MAX as u64)
            })
            .ok_or_else(|| invalid(path, format!("general.quantization_version is {v}")))?,
        None if any_quantized => CURRENT_QUANTIZATION_VERSION as u64,
        None => 0,
    };
    let ftype = (qv * QUANTIZATION_VERSION_FACTOR as u64 + file_type) as i32;
    let old_layout = match format.container {
        Container::Ggjt => format.version < 3,
        _ => qv < CURRENT_QUANTIZATION_VERSION as u64,
    };

    // Tensor specs.
    let mut names = std::collections::HashSet::new();
    for t in tensors {
        let bad =
            |msg: String| unsupported(path, format, format_args!("tensor '{}' {msg}", t.name));
        if t.name.is_empty() || t.name.len() > i32::MAX as usize {
            return Err(invalid(
                path,
                format!("tensor name '{}' is empty or too long", t.name),
            ));
        }
        if !names.insert(t.name.as_str()) {
            return Err(invalid(
                path,
                format!("tensor '{}' is declared twice", t.name),
            ));
        }
        if t.shape.is_empty() || t.shape.len() > 2 {
            return Err(bad(format!(
                "has {} dimensions; llm-rs reads 1 or 2",
                t.shape.len()
            )));
        }
        if t.shape.iter().any(|&d| d == 0 || d > i32::MAX as u64) {
            return Err(invalid(
                path,
                format!("tensor '{}' has shape {:?}", t.name, t.shape),
            ));
        }
        if legacy_type_id(t.ty).is_none() || matches!(t.ty, GgmlType::Q8_K | GgmlType::I16) {
            return Err(bad(format!(
                "is of type {}, which llm-rs cannot read",
                t.ty
            )));
        }
        if t.ty.tensor_size(&t.shape).is_none() {
            return Err(invalid(
                path,
                format!(
                    "tensor '{}' of type {} has shape {:?}: rows must be a multiple of {} values",
                    t.name,
                    t.ty,
                    t.shape,
                    t.ty.block_size()
                ),
            ));
        }
        if matches!(t.ty, GgmlType::Q4_0 | GgmlType::Q4_1) && t.shape[0] % 64 != 0 {
            return Err(bad(format!(
                "is {} with rows of {} values; llm-rs 0.2.15 requires a multiple of 64",
                t.ty, t.shape[0]
            )));
        }
        if old_layout
            && t.ty.is_quantized()
            && !matches!(
                t.ty,
                GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K
            )
        {
            return Err(invalid(
                path,
                format!(
                    "tensor '{}' is {} but a {format} file of quantization version {qv} implies an \
                     older block layout; write GGJT v3 with quantization version 2",
                    t.name, t.ty
                ),
            ));
        }
    }

    let mut h = Vec::with_capacity(1024 + vocab.tokens.iter().map(|t| t.len() + 8).sum::<usize>());
    h.extend_from_slice(&format.magic().to_le_bytes());
    if format.container != Container::Ggml {
        h.extend_from_slice(&format.version.to_le_bytes());
    }
    for field in layout(arch) {
        match *field {
            Field::Count(key) => {
                let name = key_name(arch, key);
                let v = get_count(path, &m, &name)?
                    .ok_or_else(|| invalid(path, format!("metadata {name} is required")))?;
                h.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Field::Bool(key) => {
                let name = key_name(arch, key);
                let v = match m.get(&name) {
                    Some(v) => v
                        .as_bool()
                        .or_else(|| v.as_u64().filter(|&x| x <= 1).map(|x| x == 1)),
                    None => None,
                }
                .ok_or_else(|| invalid(path, format!("metadata {name} (a boolean) is required")))?;
                h.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Field::F32(key) | Field::F32ZeroAbsent(key) => {
                let name = key_name(arch, key);
                let v = get_f32(path, &m, &name)?.unwrap_or(0.0);
                h.extend_from_slice(&v.to_le_bytes());
            }
            Field::FileType => h.extend_from_slice(&ftype.to_le_bytes()),
            Field::VocabAgain => h.extend_from_slice(&(vocab.tokens.len() as i32).to_le_bytes()),
        }
    }
    for (i, token) in vocab.tokens.iter().enumerate() {
        let len = u32::try_from(token.len())
            .map_err(|_| invalid(path, format!("token {i} is longer than 4 GiB")))?;
        h.extend_from_slice(&len.to_le_bytes());
        h.extend_from_slice(token);
        if format.has_scores() {
            let s = vocab.scores.get(i).copied().unwrap_or(0.0);
            h.extend_from_slice(&s.to_le_bytes());
        }
    }
    Ok(h)
}

impl TensorWriter for LegacyWriter {
    fn write_tensor(&mut self, data: &[u8]) -> Result<()> {
        let target = self.out.target().to_path_buf();
        let Some(t) = self.tensors.get(self.next) else {
            return Err(invalid(
                &target,
                format!(
                    "all {} declared tensors are already written",
                    self.tensors.len()
                ),
            ));
        };
        let size = t.ty.tensor_size(&t.shape).expect("checked in create");
        if data.len() as u64 != size {
            return Err(invalid(
                &target,
                format!(
                    "tensor '{}' ({} {:?}) takes {size} bytes, but {} were given",
                    t.name,
                    t.ty,
                    t.shape,
                    data.len()
                ),
            ));
        }
        let mut header = Vec::with_capacity(12 + 4 * t.shape.len() + t.name.len());
        header.extend_from_slice(&(t.shape.len() as i32).to_le_bytes());
        header.extend_from_slice(&(t.name.len() as i32).to_le_bytes());
        let id = legacy_type_id(t.ty).expect("checked in create");
        header.extend_from_slice(&id.to_le_bytes());
        for &d in &t.shape {
            header.extend_from_slice(&(d as i32).to_le_bytes());
        }
        header.extend_from_slice(t.name.as_bytes());
        self.out.write_all(&header)?;
        if self.format.is_aligned() {
            self.out.pad_to(GGJT_ALIGNMENT)?;
        }
        self.out.write_all(data)?;
        self.next += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<PathBuf> {
        if self.next != self.tensors.len() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{}: only {} of {} declared tensors were written",
                    self.out.target().display(),
                    self.next,
                    self.tensors.len()
                ),
            ));
        }
        self.out.finish()
    }
}

impl ModelFile {
    /// The legacy container and version of this file, if it is a legacy file.
    pub fn legacy_format(&self) -> Option<LegacyFormat> {
        let f = LegacyFormat {
            container: self.container,
            version: self.version,
        };
        f.is_valid().then_some(f)
    }

    /// Writes this (legacy) file's architecture, metadata, vocabulary and tensors again as `format`:
    /// with the format it was read from, the bytes are identical.
    pub fn write_legacy(&self, path: &Path, format: LegacyFormat) -> Result<PathBuf> {
        let arch = self
            .architecture()
            .and_then(Architecture::from_name)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "{}: architecture {:?} has no legacy layout",
                    self.path.display(),
                    self.architecture()
                ))
            })?;
        let empty = LegacyVocab::default();
        let vocab = self.legacy_vocab.as_ref().unwrap_or(&empty);
        let specs = self
            .tensors
            .iter()
            .map(|t| TensorSpec {
                name: t.name.clone(),
                ty: t.ty,
                shape: t.shape.clone(),
            })
            .collect();
        let mut w = Box::new(LegacyWriter::create(
            path,
            format,
            arch,
            &self.metadata,
            vocab,
            specs,
        )?);
        for t in &self.tensors {
            w.write_tensor(self.tensor_data(t))?;
        }
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_type_ids_round_trip() {
        for id in 0..=18 {
            match type_from_legacy_id(id) {
                Ok(t) => assert_eq!(legacy_type_id(t), Some(id)),
                Err(_) => assert!(id == 4 || id == 5),
            }
        }
        assert!(type_from_legacy_id(19).is_err());
        assert_eq!(legacy_type_id(GgmlType::BF16), None);
    }

    #[test]
    fn llama_n_ff_matches_llm() {
        // 7B: n_embd 4096, n_mult 256 -> 11008.
        assert_eq!(llama_n_ff(4096, 256), Some(11008));
        assert_eq!(find_n_mult(4096, 11008), Some(256));
        assert_eq!(llama_n_ff(64, 256), Some(256));
    }
}
