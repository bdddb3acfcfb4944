//! Quantizing a model file into another (the seed's `AutoQuantizer` and `Model.quantize`).
//!
//! Rules, following llm-rs 0.2.15 where it is right and fixing where DESIGN.md says it is not:
//! - **Source**: any container ferrollm reads. Its architecture comes from the file (GGUF), else
//!   its `.meta` sidecar, else the legacy reader's detection. A source that already holds quantized
//!   tensors is refused (the seed refuses anything but F16; F32 and BF16 sources are fine here).
//! - **Target name** ([`target_path`]): `dst` may be a file path (used as is), a folder, or absent
//!   (the source's folder). In a folder the name is the source's stem without `-f16`, plus
//!   `-<type>` (`-q4_0`, `-q4_k`, `-bf16`; nothing for f16, as the seed names F16 outputs), plus `-ggjt`
//!   for GGJT, with `.gguf` for GGUF and `.bin` for the legacy containers. A path that does not
//!   exist yet is a file if its last component has an extension, else a folder (created); the seed
//!   made every non-existing path a folder.
//! - **Containers**: GGUF sources quantize into GGUF, legacy sources into GGJT or GGML (tensor
//!   names and layouts differ between the two families; crossing is refused with a message saying
//!   how to get the other container).
//! - **Existing target**: not overwritten; its path is returned with `skipped_existing` set and a
//!   warning logged (the seed's behaviour).
//! - **Tensor policy** ([`tensor_type`]), llama.cpp's "pure" quantization: weight matrices (tensors
//!   of two or more dimensions; in these architectures norms and biases are 1-D) get the requested
//!   type — token embedding and output head included — except learned position embeddings (GGUF
//!   `position_embd`, llm-rs' GPT-2 `model/wpe`) and anything named like a norm; everything else is
//!   F32. A row length the type cannot hold falls back as llama.cpp does (Q4_K →
//!   Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; Q2_K and Q3_K → Q4_0, where llama.cpp picks IQ4_NL), and to
//!   F16 when even 32 does not divide it; each fallback is logged and listed in the outcome.
//! - **Output**: tensors in the source's order, written as they are produced through a temporary
//!   file renamed into place, so the same source and settings give the same bytes and a failure or
//!   cancellation leaves nothing. A `.meta` sidecar compatible with llm-rs is written beside it.
//! - **Work**: one tensor at a time; its rows are quantized in parallel (rayon). Peak memory is
//!   about one tensor's output plus the mapped source.

use crate::error::{Error, ErrorKind, Result};
use crate::format::meta::{meta_path_for, Meta, QuantizationVersion};
use crate::format::{
    self, Container, GgmlType, Metadata, ModelFile, TensorInfo, TensorSpec, Value,
};
use crate::progress::{report, Progress, ProgressFn};
use crate::{quant, Architecture};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The types a model can be quantized to.
pub const TARGET_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// True if `ty` is a type [`Quantizer::quantize`] can produce.
pub fn is_target_type(ty: GgmlType) -> bool {
    TARGET_TYPES.contains(&ty)
}

/// `llama_ftype` of a file whose weights are all `ty` (`general.file_type`); k-quants use the
/// `_S` variants, which llama.cpp's "pure" mode produces.
pub fn file_type_of(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        GgmlType::Q2_K => 10,
        GgmlType::Q3_K => 11,
        GgmlType::Q4_K => 14,
        GgmlType::Q5_K => 16,
        GgmlType::Q6_K => 18,
        GgmlType::BF16 => 32,
        _ => return None,
    })
}

/// A tensor that could not take the requested type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub tensor: String,
    pub requested: GgmlType,
    pub used: GgmlType,
    pub reason: String,
}

/// What a quantization did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizeOutcome {
    /// The model file written (or found already there).
    pub path: PathBuf,
    /// Its `.meta` sidecar.
    pub meta_path: PathBuf,
    /// True if the target existed and was left alone.
    pub skipped_existing: bool,
    /// Tensors given the requested type.
    pub quantized: usize,
    /// Tensors kept in F32.
    pub kept: usize,
    pub fallbacks: Vec<Fallback>,
}

/// The type a tensor gets when `requested` is asked for; see the module documentation. Returns
/// the type and, for a fallback, why.
pub fn tensor_type(name: &str, shape: &[u64], requested: GgmlType) -> (GgmlType, Option<String>) {
    let is_norm = name.contains("norm");
    let is_position = name.starts_with("position_embd") || name.ends_with("wpe");
    if shape.len() < 2 || is_norm || is_position {
        return (GgmlType::F32, None);
    }
    let cols = shape[0];
    if requested.row_size(cols).is_some() {
        return (requested, None);
    }
    let fallback = match requested {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        _ => GgmlType::F16,
    };
    let used = if fallback.row_size(cols).is_some() {
        fallback
    } else {
        GgmlType::F16
    };
    (
        used,
        Some(format!(
            "rows of {cols} values are not a multiple of {}'s block of {}",
            requested,
            requested.block_size()
        )),
    )
}

/// Where the quantized file goes; see the module documentation.
pub fn target_path(
    source: &Path,
    dst: Option<&Path>,
    ty: GgmlType,
    container: Container,
) -> Result<PathBuf> {
    let folder = match dst {
        None => source
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        Some(d) if d.is_dir() => d.to_path_buf(),
        Some(d) if d.exists() || d.extension().is_some() => return Ok(d.to_path_buf()),
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, "create the folder", e))?;
            d.to_path_buf()
        }
    };
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().replace("-f16", ""))
        .unwrap_or_default();
    let mut name = stem;
    if ty != GgmlType::F16 {
        name.push('-');
        name.push_str(ty.name());
    }
    if container == Container::Ggjt {
        name.push_str("-ggjt");
    }
    name.push_str(if container == Container::Gguf {
        ".gguf"
    } else {
        ".bin"
    });
    Ok(folder.join(name))
}

/// An opened source model, ready to be quantized (the seed's `AutoQuantizer`).
pub struct Quantizer {
    source: ModelFile,
    arch: Architecture,
    base_model: Option<String>,
}

impl Quantizer {
    /// Opens `source` and reads its metadata (GGUF keys, or the `.meta` sidecar of a legacy file).
    pub fn open(source: &Path) -> Result<Quantizer> {
        let sidecar = meta_path_for(source);
        let meta = if sidecar.is_file() {
            Some(Meta::read(&sidecar)?)
        } else {
            None
        };
        let file = ModelFile::open(source, meta.as_ref().map(|m| m.model))?;
        let arch = match file.architecture() {
            Some(name) => Architecture::from_name(name).ok_or_else(|| {
                Error::unsupported(format!(
                    "{}: architecture {name:?} is not supported",
                    source.display()
                ))
            })?,
            None => meta.as_ref().map(|m| m.model).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "{}: the file does not name its architecture",
                    source.display()
                ))
            })?,
        };
        if let Some(t) = file.tensors.iter().find(|t| t.ty.is_quantized()) {
            return Err(Error::unsupported(format!(
                "{}: the model is already quantized (tensor {} is {}); quantize from an F16 or F32 file",
                source.display(),
                t.name,
                t.ty
            )));
        }
        let base_model = meta.and_then(|m| m.base_model).or_else(|| {
            file.metadata
                .get_str("general.base_model")
                .map(str::to_string)
        });
        Ok(Quantizer {
            source: file,
            arch,
            base_model,
        })
    }

    pub fn architecture(&self) -> Architecture {
        self.arch
    }
    pub fn source(&self) -> &ModelFile {
        &self.source
    }

    /// Quantizes into `dst` (see [`target_path`]) with `ty` in `container`.
    pub fn quantize(
        &self,
        dst: Option<&Path>,
        ty: GgmlType,
        container: Container,
        progress: &mut ProgressFn<'_>,
    ) -> Result<QuantizeOutcome> {
        if !is_target_type(ty) {
            return Err(Error::invalid_argument(format!(
                "cannot quantize to {ty}; choose one of: {}",
                TARGET_TYPES
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // The quantizer keeps the source's tensor names and layouts, which differ between GGUF
        // (llama.cpp's) and the legacy containers (llm-rs'): crossing families would write a file
        // neither llama.cpp nor llm-rs can load.
        let source_is_gguf = self.source.container == Container::Gguf;
        if source_is_gguf != (container == Container::Gguf) {
            return Err(Error::unsupported(format!(
                "{}: cannot quantize a {} file into {}: tensor names and layouts differ between GGUF \
                 and llm-rs' containers; quantize into {}, or convert the Hugging Face checkpoint \
                 with the container you want (`ferrollm convert --container {} --type {ty}`)",
                self.source.path.display(),
                self.source.container,
                container,
                if source_is_gguf { "gguf" } else { "ggjt or ggml" },
                container
            )));
        }
        let path = target_path(&self.source.path, dst, ty, container)?;
        let meta_path = meta_path_for(&path);
        if path.exists() {
            log::warn!(
                "target file {} already exists, skipping quantization",
                path.display()
            );
            return Ok(QuantizeOutcome {
                path,
                meta_path,
                skipped_existing: true,
                quantized: 0,
                kept: 0,
                fallbacks: Vec::new(),
            });
        }
        let plan: Vec<(&TensorInfo, GgmlType, Option<String>)> = self
            .source
            .tensors
            .iter()
            .map(|t| {
                let (used, why) = tensor_type(&t.name, &t.shape, ty);
                (t, used, why)
            })
            .collect();
        let mut fallbacks = Vec::new();
        for (t, used, why) in &plan {
            if let Some(reason) = why {
                log::warn!("{}: {reason}; using {used} instead of {ty}", t.name);
                fallbacks.push(Fallback {
                    tensor: t.name.clone(),
                    requested: ty,
                    used: *used,
                    reason: reason.clone(),
                });
            }
        }
        let legacy_vocab_len = self.source.legacy_vocab.as_ref().map(|v| v.tokens.len());
        let metadata = quantized_metadata(
            &self.source.metadata,
            self.arch,
            ty,
            container,
            legacy_vocab_len,
        );
        let specs = plan
            .iter()
            .map(|(t, used, _)| TensorSpec {
                name: t.name.clone(),
                ty: *used,
                shape: t.shape.clone(),
            })
            .collect();
        let mut writer = format::create_writer(
            &path,
            container,
            self.arch,
            &metadata,
            self.source.legacy_vocab.as_ref(),
            specs,
        )?;
        let total = plan.len() as u64;
        let (mut quantized, mut kept) = (0, 0);
        for (i, (t, used, _)) in plan.iter().enumerate() {
            report(
                progress,
                Progress {
                    stage: "quantize",
                    tensor: &t.name,
                    current: i as u64,
                    total,
                },
            )?;
            let bytes = convert_bytes(&t.name, self.source.tensor_data(t), t.ty, &t.shape, *used)?;
            writer.write_tensor(&bytes)?;
            // Done with the source tensor: its pages leave the resident set (peak memory is one
            // tensor's source and output, not the whole source file).
            self.source.release(t);
            if *used == ty {
                quantized += 1;
            } else if *used == GgmlType::F32 {
                kept += 1;
            }
        }
        report(
            progress,
            Progress {
                stage: "quantize",
                tensor: "",
                current: total,
                total,
            },
        )?;
        let path = writer.finish()?;
        let written = ModelFile::open(&path, Some(self.arch))?;
        let mut meta = Meta::describe(&written, self.base_model.clone())?;
        meta.quantization_version = if ty.is_quantized() {
            QuantizationVersion::V2
        } else {
            QuantizationVersion::NotQuantized
        };
        let (meta_path, _) = Meta::write(&path, &meta).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })?;
        Ok(QuantizeOutcome {
            path,
            meta_path,
            skipped_existing: false,
            quantized,
            kept,
            fallbacks,
        })
    }
}

/// The metadata of a file holding `source`'s model quantized to `ty`: `general.file_type` and
/// `general.quantization_version` updated, and for legacy containers `{arch}.vocab_size` filled in
/// when missing (their layouts store it).
pub fn quantized_metadata(
    source: &Metadata,
    arch: Architecture,
    ty: GgmlType,
    container: Container,
    legacy_vocab_len: Option<usize>,
) -> Metadata {
    let mut metadata = source.clone();
    metadata.set(
        "general.file_type",
        Value::U32(file_type_of(ty).expect("target types have a file type")),
    );
    if ty.is_quantized() {
        metadata.set("general.quantization_version", Value::U32(2));
    }
    let vocab_key = format!("{}.vocab_size", arch.gguf_name());
    if container != Container::Gguf && metadata.get(&vocab_key).is_none() {
        if let Some(n) = legacy_vocab_len.or_else(|| {
            metadata
                .get_array("tokenizer.ggml.tokens")
                .map(<[Value]>::len)
        }) {
            metadata.set(vocab_key, Value::U32(n as u32));
        }
    }
    metadata
}

/// A tensor's bytes (`data`, type `from`, `shape` innermost first) in type `to`: rows converted to
/// f32 and quantized in parallel, blocks of rows at a time. `name` names it in errors.
pub fn convert_bytes(
    name: &str,
    data: &[u8],
    from: GgmlType,
    shape: &[u64],
    to: GgmlType,
) -> Result<Vec<u8>> {
    if from == to {
        return Ok(data.to_vec());
    }
    let cols = shape.first().copied().unwrap_or(1) as usize;
    let n: u64 = shape.iter().product();
    let rows = n as usize / cols.max(1);
    let in_row = from.row_size(cols as u64).ok_or_else(|| {
        Error::new(
            ErrorKind::Format,
            format!("tensor {name}: rows of {cols} do not fit {from}"),
        )
    })? as usize;
    let out_row = to.row_size(cols as u64).ok_or_else(|| {
        Error::invalid_argument(format!("tensor {name}: rows of {cols} do not fit {to}"))
    })? as usize;
    let mut out = vec![0u8; out_row * rows];
    const ROWS_PER_TASK: usize = 16;
    out.par_chunks_mut(out_row * ROWS_PER_TASK)
        .enumerate()
        .try_for_each(|(c, dst)| -> Result<()> {
            let mut f = vec![0f32; cols];
            for (i, dst_row) in dst.chunks_exact_mut(out_row).enumerate() {
                let r = c * ROWS_PER_TASK + i;
                quant::dequantize(from, &data[r * in_row..(r + 1) * in_row], &mut f)?;
                quant::quantize(to, &f, dst_row)?;
            }
            Ok(())
        })?;
    Ok(out)
}

/// Quantizes `source` into `dst` in one call (the seed's `Model.quantize`).
pub fn quantize(
    source: &Path,
    dst: Option<&Path>,
    ty: GgmlType,
    container: Container,
    progress: &mut ProgressFn<'_>,
) -> Result<QuantizeOutcome> {
    Quantizer::open(source)?.quantize(dst, ty, container, progress)
}
