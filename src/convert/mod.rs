//! Hugging Face checkpoint → GGML-family file, with no Python: the `AutoConverter` of llm-rs
//! 0.2.15, streaming and checked.
//!
//! ```no_run
//! use ferrollm::convert::{Converter, ConvertParams};
//! let conv = Converter::open("models/tiny-llama".as_ref())?;
//! let written = conv.convert("out/".as_ref(), &ConvertParams::default(), &mut |_| true)?;
//! # Ok::<(), ferrollm::Error>(())
//! ```
//!
//! A model folder holds `config.json`, the weights (`model.safetensors`, or shards listed by
//! `model.safetensors.index.json`; without those, PyTorch's `pytorch_model.bin` or the shards of
//! `pytorch_model.bin.index.json`, read by [`torch`] without executing anything) and the tokenizer (`tokenizer.json`, with
//! `tokenizer_config.json` and `special_tokens_map.json` when present). [`Converter::open`]
//! detects the architecture from config.json's `architectures[0]` (else `model_type`);
//! [`Converter::open_as`] takes it from the caller.
//!
//! [`Converter::convert`]:
//! 1. builds the architecture's plan (`gpt2.rs`, `gptj.rs`, `gptneox.rs`, `llama.rs`, `mpt.rs`,
//!    `bloom.rs`: metadata keys, output tensors, transforms; each file lists the facts it relies on)
//!    and checks every checkpoint tensor against it — a missing or unexpected tensor, a shape that
//!    disagrees with config.json or an unsupported dtype is an error naming the tensor and file,
//!    before anything is written. Buffers llama.cpp skips (`.attn.bias`, `.attn.masked_bias`,
//!    `.attention.bias`, `.attention.masked_bias`, `.rotary_emb.inv_freq`) are skipped;
//! 2. reads the vocabulary ([`vocab`]);
//! 3. streams the tensors, one at a time, into a [`TensorWriter`] writing a temporary file beside
//!    the target, renamed into place when complete. The progress callback is called before each
//!    tensor and once at the end; returning false cancels ([`ErrorKind::Cancelled`]) and leaves no
//!    file (nor the directories created for it). Source pages are released as they are read, so
//!    memory stays near the largest output tensor whatever the checkpoint size;
//! 4. writes llm-rs' `.meta` sidecar beside the file (`format::meta`; `base_model` is the model
//!    folder as given, as llm-rs records the path it converted).
//!
//! The output is deterministic: the same checkpoint and parameters give the same bytes. GGUF tensors
//! are written in the order llama.cpp's loader creates them: the global tensors (`token_embd`,
//! `token_embd_norm`, `position_embd`, `output_norm`, `output`, `rope_freqs`), then block 0, 1, …
//! each in the architecture's order (norm, attention, norm, feed-forward). GGJT (v3) and GGML files
//! take llm-rs 0.2.15's tensor names, order (its models' `state_dict` order), transforms and
//! hyperparameter layouts (`format::legacy`), including the tied head llm-rs writes again; what
//! those layouts cannot express is refused with the reason, suggesting GGUF.
//!
//! Types: F32, F16 and BF16 checkpoint tensors are read; the file's weights are F16 (default) or
//! F32, while 1-D tensors, norms, biases and position embeddings stay F32 (llama.cpp's rule).
//!
//! Where the file goes ([`Converter::output_path`]): an existing directory gets a generated name,
//! `<model-name>-<dtype>.gguf` (`.bin` for the legacy containers), as llm-rs names files, where the
//! model name is the last component of config.json's `_name_or_path`, else the folder's name. An
//! existing file is replaced. A path that does not exist yet is a file when its last component has
//! an extension (`out/model.gguf`), and otherwise — or when it ends with a path separator — a
//! directory, created together with any missing parents (llm-rs turns a not-yet-existing `x.bin`
//! into a directory; we do not). Parent folders of a file target are created too. Directories are
//! created only once the checkpoint has passed every check.

mod bloom;
mod checkpoint;
mod config;
mod gpt2;
mod gptj;
mod gptneox;
mod llama;
mod mpt;
mod plan;
mod tensor;
pub mod torch;
pub mod vocab;

pub use checkpoint::{Checkpoint, SourceTensor, SourceType};
pub use config::{HfConfig, RopeConfig};
pub use plan::ArchPlan;
pub use tensor::{Source, TensorPlan, Transform};

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::format::meta::{Meta, QuantizationVersion};
use crate::format::{Container, GgmlType, Metadata, TensorSpec, Value};
use crate::progress::{report, Progress, ProgressFn};
use crate::quantizer;
use crate::Architecture;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The `architectures[0]` classes [`Converter::open`] recognises.
pub const SUPPORTED_CLASSES: &[(&str, Architecture)] = &[
    ("GPT2LMHeadModel", Architecture::Gpt2),
    ("GPTJForCausalLM", Architecture::GptJ),
    ("GPTNeoXForCausalLM", Architecture::GptNeoX),
    ("LlamaForCausalLM", Architecture::Llama),
    ("LLaMAForCausalLM", Architecture::Llama),
    ("MistralForCausalLM", Architecture::Llama),
    ("MPTForCausalLM", Architecture::Mpt),
    ("MptForCausalLM", Architecture::Mpt),
    ("BloomForCausalLM", Architecture::Bloom),
];

/// The `model_type` values used when config.json has no `architectures`.
const SUPPORTED_MODEL_TYPES: &[(&str, Architecture)] = &[
    ("gpt2", Architecture::Gpt2),
    ("gptj", Architecture::GptJ),
    ("gpt_neox", Architecture::GptNeoX),
    ("llama", Architecture::Llama),
    ("mistral", Architecture::Llama),
    ("mpt", Architecture::Mpt),
    ("bloom", Architecture::Bloom),
];

/// Checkpoint buffers that are not weights (causal masks, rotary caches); llama.cpp skips them.
const SKIPPED_SUFFIXES: &[&str] = &[
    ".attn.bias",
    ".attn.masked_bias",
    ".attention.bias",
    ".attention.masked_bias",
    ".rotary_emb.inv_freq",
];

/// How to convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvertParams {
    /// The output container: GGUF (default), or the legacy GGJT (v3) or GGML of llm-rs.
    pub container: Container,
    /// The type of the weight matrices: `GgmlType::F16` (default), `GgmlType::F32`, or any type
    /// the quantizer produces (`quantizer::TARGET_TYPES`). For the latter each tensor is converted
    /// to what the F16 file would hold and quantized as it streams through, with the quantizer's
    /// tensor policy, so the bytes equal converting to F16 and then quantizing — without the F16
    /// file on disk.
    pub dtype: GgmlType,
}

impl Default for ConvertParams {
    fn default() -> Self {
        ConvertParams {
            container: Container::Gguf,
            dtype: GgmlType::F16,
        }
    }
}

impl ConvertParams {
    fn check(&self) -> Result<()> {
        if !quantizer::is_target_type(self.dtype) {
            return Err(Error::invalid_argument(format!(
                "cannot convert to {}; choose one of: {}",
                self.dtype,
                quantizer::TARGET_TYPES
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if self.container == Container::Ggmf {
            return Err(Error::unsupported(
                "GGMF is read-only; write gguf, ggjt or ggml".to_string(),
            ));
        }
        Ok(())
    }
}

/// An opened Hugging Face model folder, ready to convert.
pub struct Converter {
    dir: PathBuf,
    config: HfConfig,
    arch: Architecture,
    model_name: String,
    checkpoint: Checkpoint,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("dir", &self.dir)
            .field("arch", &self.arch)
            .field("model_name", &self.model_name)
            .finish_non_exhaustive()
    }
}

/// The architecture a config.json names, or an error listing the supported ones.
pub fn detect_architecture(config: &HfConfig) -> Result<Architecture> {
    let supported = || {
        SUPPORTED_CLASSES
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(class) = config.architecture_class() {
        return SUPPORTED_CLASSES
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "{}: architecture {class:?} is not supported; supported: {} (a model with one \
                     of these layouts under another name can be converted with an explicit \
                     architecture)",
                    config.path().display(),
                    supported()
                ))
            });
    }
    match config.opt_str("model_type") {
        Some(mt) => SUPPORTED_MODEL_TYPES
            .iter()
            .find(|(t, _)| *t == mt)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "{}: model_type {mt:?} is not supported; supported: {}",
                    config.path().display(),
                    supported()
                ))
            }),
        None => Err(Error::format(
            config.path(),
            format!(
                "names no architecture (no `architectures` or `model_type`); supported: {}",
                supported()
            ),
        )),
    }
}

impl Converter {
    /// Opens the model folder `dir`, detecting its architecture (the AutoConverter).
    pub fn open(dir: &Path) -> Result<Converter> {
        let config = HfConfig::load(dir)?;
        let arch = detect_architecture(&config)?;
        Self::with_config(dir, config, arch)
    }

    /// Opens the model folder `dir` as architecture `arch`, whatever config.json says (a manual
    /// converter).
    pub fn open_as(dir: &Path, arch: Architecture) -> Result<Converter> {
        let config = HfConfig::load(dir)?;
        Self::with_config(dir, config, arch)
    }

    fn with_config(dir: &Path, config: HfConfig, arch: Architecture) -> Result<Converter> {
        let checkpoint = Checkpoint::open(dir)?;
        let model_name = model_name(dir, &config);
        Ok(Converter {
            dir: dir.to_path_buf(),
            config,
            arch,
            model_name,
            checkpoint,
        })
    }

    /// The architecture detected (or given).
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// The model's name: the last component of config.json's `_name_or_path`, else the folder's.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed config.json.
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// The opened weights.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The file name given to the output in a directory: `<model-name>-<dtype>.gguf` (`.bin` for
    /// GGJT and GGML).
    pub fn default_file_name(&self, params: &ConvertParams) -> String {
        let ext = match params.container {
            Container::Gguf => "gguf",
            _ => "bin",
        };
        // As llm-rs names a converted file and then its quantization: `-f16`, or `-q4_0` (with
        // `-ggjt` for a quantized GGJT file).
        let ggjt = if params.dtype.is_quantized() && params.container == Container::Ggjt {
            "-ggjt"
        } else {
            ""
        };
        format!("{}-{}{ggjt}.{ext}", self.model_name, params.dtype.name())
    }

    /// The path `convert(out, params, …)` writes (see the module documentation); creates nothing.
    pub fn output_path(&self, out: &Path, params: &ConvertParams) -> PathBuf {
        resolve_output(out, &self.default_file_name(params)).0
    }

    /// Builds and checks the plan for `container`: every tensor present with the shape
    /// config.json implies and a supported dtype, nothing unexpected left over, nothing the
    /// container cannot express.
    pub fn plan(&self, container: Container) -> Result<ArchPlan> {
        let cfg = &self.config;
        let plan = match self.arch {
            Architecture::Gpt2 => gpt2::plan(cfg),
            Architecture::GptJ => gptj::plan(cfg),
            Architecture::GptNeoX => gptneox::plan(cfg),
            Architecture::Llama => llama::plan(cfg),
            Architecture::Mpt => mpt::plan(cfg),
            Architecture::Bloom => bloom::plan(cfg),
        }?;
        let plan = match container {
            Container::Gguf => plan,
            Container::Ggjt | Container::Ggml => {
                let n_layer = plan
                    .keys
                    .iter()
                    .find(|(k, _)| k.ends_with(".block_count"))
                    .and_then(|(_, v)| v.as_u64())
                    .expect("every plan has block_count") as usize;
                match self.arch {
                    Architecture::Gpt2 => gpt2::legacy(&plan, n_layer),
                    Architecture::GptJ => gptj::legacy(&plan, n_layer),
                    Architecture::GptNeoX => gptneox::legacy(&plan, n_layer)?,
                    Architecture::Llama => llama::legacy(&plan, cfg)?,
                    Architecture::Mpt => mpt::legacy(&plan, n_layer)?,
                    Architecture::Bloom => bloom::legacy(&plan, n_layer),
                }
            }
            Container::Ggmf => {
                return Err(Error::unsupported(
                    "GGMF is read-only; write gguf, ggjt or ggml".to_string(),
                ))
            }
        };
        self.check_plan(&plan)?;
        Ok(plan)
    }

    /// Finds a planned source tensor in the checkpoint (trying the optional prefix).
    fn find<'a>(&'a self, plan: &ArchPlan, name: &'a str) -> Option<(&'a str, &'a SourceTensor)> {
        if let Some(t) = self.checkpoint.get(name) {
            return Some((name, t));
        }
        let short = name.strip_prefix(plan.optional_prefix?)?;
        self.checkpoint.get(short).map(|t| (short, t))
    }

    fn check_plan(&self, plan: &ArchPlan) -> Result<()> {
        let mut used: HashSet<&str> = HashSet::new();
        let ck = &self.checkpoint;
        for tp in &plan.tensors {
            let Source::Tensor {
                name,
                shape,
                transform,
            } = &tp.source
            else {
                continue;
            };
            let Some((found, t)) = self.find(plan, name) else {
                let files: Vec<String> = ck.files().map(|p| p.display().to_string()).collect();
                return Err(Error::new(
                    ErrorKind::Format,
                    format!(
                        "{}: tensor `{name}` (shape {shape:?}) is missing; a {} model with this \
                         config.json needs it",
                        files.join(", "),
                        self.arch
                    ),
                ));
            };
            used.insert(found);
            let file = ck.shard_path(t);
            if t.source_type().is_none() {
                return Err(Error::unsupported(format!(
                    "{}: tensor `{found}` has dtype {}; only F32, F16 and BF16 tensors can be converted",
                    file.display(),
                    t.dtype
                )));
            }
            if &t.shape != shape {
                return Err(Error::format(
                    file,
                    format!(
                        "tensor `{found}` has shape {:?}, but {} implies {shape:?}",
                        t.shape,
                        self.config.path().display()
                    ),
                ));
            }
            transform
                .check(shape)
                .map_err(|why| Error::format(file, format!("tensor `{found}`: {why}")))?;
        }
        let ignored: HashSet<&str> = plan.ignored.iter().map(String::as_str).collect();
        let mut extra = Vec::new();
        for (name, t) in ck.tensors() {
            let canonical = match plan.optional_prefix {
                Some(p) if !name.starts_with(p) => format!("{p}{name}"),
                _ => name.to_string(),
            };
            if used.contains(name)
                || ignored.contains(name)
                || ignored.contains(canonical.as_str())
                || SKIPPED_SUFFIXES.iter().any(|s| name.ends_with(s))
            {
                continue;
            }
            extra.push((name, t));
        }
        if let Some((name, t)) = extra.first() {
            let more = match extra.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            return Err(Error::format(
                ck.shard_path(t),
                format!(
                    "unexpected tensor `{name}`{more}: not part of a {} model as {} describes it",
                    self.arch,
                    self.config.path().display()
                ),
            ));
        }
        Ok(())
    }

    /// Converts the checkpoint into `out` (a file or a directory; see the module documentation)
    /// and returns the path written. `progress` is called before each tensor and at the end;
    /// returning false cancels the conversion, which then leaves no file.
    pub fn convert(
        &self,
        out: &Path,
        params: &ConvertParams,
        progress: &mut ProgressFn<'_>,
    ) -> Result<PathBuf> {
        params.check()?;
        let plan = self.plan(params.container)?;
        let vocab = vocab::Vocab::load(&self.dir, &self.config, plan.vocab_size)?.ok_or_else(|| {
            Error::format(
                &self.dir.join("tokenizer.json"),
                "not found: the converted file embeds the vocabulary, read from the fast-tokenizer \
                 file tokenizer.json (save it with `tokenizer.save_pretrained(dir)` in transformers)",
            )
        })?;
        // Floats are written directly; anything else goes through what the F16 file would hold.
        let direct = matches!(params.dtype, GgmlType::F16 | GgmlType::F32);
        let base = if direct { params.dtype } else { GgmlType::F16 };
        let base_params = ConvertParams {
            dtype: base,
            ..*params
        };
        let mut metadata = self.metadata(&plan, &vocab, &base_params);
        let base_specs: Vec<TensorSpec> = plan
            .tensors
            .iter()
            .map(|tp| TensorSpec {
                name: tp.name.clone(),
                ty: tp.output_type(base),
                shape: tp.output_shape().iter().rev().map(|&d| d as u64).collect(),
            })
            .collect();
        let mut specs = base_specs.clone();
        if !direct {
            metadata = quantizer::quantized_metadata(
                &metadata,
                self.arch,
                params.dtype,
                params.container,
                None,
            );
            for s in &mut specs {
                let (ty, why) = quantizer::tensor_type(&s.name, &s.shape, params.dtype);
                if let Some(reason) = why {
                    log::warn!(
                        "{}: {reason}; using {ty} instead of {}",
                        s.name,
                        params.dtype
                    );
                }
                s.ty = ty;
            }
        }
        let out_bytes: u64 = specs
            .iter()
            .map(|s| s.ty.tensor_size(&s.shape).unwrap_or(0))
            .sum();
        log::info!(
            "{}: {} tensors, {out_bytes} bytes of tensor data",
            self.dir.display(),
            specs.len()
        );

        let (target, create_dir) = resolve_output(out, &self.default_file_name(params));
        let mut created = CreatedDirs::default();
        if let Some(dir) = create_dir {
            created.create(&dir)?;
        }
        let total = plan.tensors.len() as u64;
        let mut step = |tensor: &str, current: u64| {
            report(
                progress,
                Progress {
                    stage: "convert",
                    tensor,
                    current,
                    total,
                },
            )
        };
        step("", 0)?;
        let mut writer = crate::format::create_writer(
            &target,
            params.container,
            self.arch,
            &metadata,
            None,
            specs.clone(),
        )?;
        let mut buf = Vec::new();
        for (i, tp) in plan.tensors.iter().enumerate() {
            step(&tp.name, i as u64)?;
            let ty = base_specs[i].ty;
            match &tp.source {
                Source::Tensor {
                    name,
                    shape,
                    transform,
                } => {
                    let (_, t) = self.find(&plan, name).expect("checked by plan()");
                    let st = t.source_type().expect("checked by plan()");
                    let data = self.checkpoint.data(t)?;
                    tensor::produce(&data, st, shape, *transform, ty, &mut buf, &mut |range| {
                        self.checkpoint.release(t, range)
                    });
                }
                Source::Generated { values, .. } => tensor::produce_generated(values, ty, &mut buf),
            }
            if specs[i].ty == ty {
                writer.write_tensor(&buf)?;
            } else {
                let q = quantizer::convert_bytes(&tp.name, &buf, ty, &specs[i].shape, specs[i].ty)?;
                writer.write_tensor(&q)?;
            }
        }
        drop(buf);
        step("", total)?;
        let written = writer.finish()?;
        created.keep();
        // The llm-rs sidecar (llm-rs needs it to autoload a file; `base_model` is the model folder,
        // as llm-rs records the path it converted).
        let meta = Meta {
            model: self.arch,
            quantization: params.dtype,
            quantization_version: if params.dtype.is_quantized() {
                QuantizationVersion::V2
            } else {
                QuantizationVersion::NotQuantized
            },
            container: params.container,
            converter: "ferrollm".to_string(),
            hash: None,
            base_model: Some(self.dir.display().to_string()),
        };
        Meta::write(&written, &meta)?;
        Ok(written)
    }

    /// The file's metadata: `general.*`, the architecture's keys, `tokenizer.*`.
    fn metadata(&self, plan: &ArchPlan, vocab: &vocab::Vocab, params: &ConvertParams) -> Metadata {
        let mut md = Metadata::new();
        md.set(
            "general.architecture",
            Value::String(self.arch.gguf_name().into()),
        );
        md.set("general.type", Value::String("model".into()));
        md.set("general.name", Value::String(self.model_name.clone()));
        for (k, v) in &plan.keys {
            md.set(k.clone(), v.clone());
        }
        // llama_ftype: 0 = all F32, 1 = mostly F16.
        let ftype = if params.dtype == GgmlType::F32 { 0 } else { 1 };
        md.set("general.file_type", Value::U32(ftype));
        md.set("general.quantization_version", Value::U32(2));
        vocab.add_to(&mut md);
        md
    }
}

/// The writer for `container` at `path`.
/// Directories created for the output, removed again (when still empty) unless the conversion
/// succeeds.
#[derive(Default)]
struct CreatedDirs {
    /// Newly created directories, outermost first.
    dirs: Vec<PathBuf>,
}

impl CreatedDirs {
    fn create(&mut self, dir: &Path) -> Result<()> {
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        std::fs::create_dir_all(dir).at(dir, "create the output directory")?;
        self.dirs = missing;
        Ok(())
    }
    fn keep(&mut self) {
        self.dirs.clear();
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d); // only succeeds when empty
        }
    }
}

/// The model name: the last component of `_name_or_path`, else the folder's name.
fn model_name(dir: &Path, config: &HfConfig) -> String {
    let from_config = config
        .opt_str("_name_or_path")
        .and_then(|p| p.rsplit(['/', '\\']).find(|s| !s.is_empty()))
        .map(str::to_string);
    from_config
        .or_else(|| {
            let d = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
            d.file_name().map(|n| n.to_string_lossy().into_owned())
        })
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "model".to_string())
}

/// Where `out` leads: the target file, and a directory to create first (if any).
fn resolve_output(out: &Path, default_name: &str) -> (PathBuf, Option<PathBuf>) {
    if out.is_dir() {
        return (out.join(default_name), None);
    }
    if out.exists() {
        return (out.to_path_buf(), None);
    }
    let text = out.as_os_str().to_string_lossy();
    let ends_with_sep = text.ends_with('/') || (cfg!(windows) && text.ends_with('\\'));
    if !ends_with_sep && out.extension().is_some() {
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !p.exists())
            .map(Path::to_path_buf);
        (out.to_path_buf(), parent)
    } else {
        (out.join(default_name), Some(out.to_path_buf()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("exists.bin"), b"x").unwrap();
        let r = |p: &Path| resolve_output(p, "m-f16.gguf");
        assert_eq!(r(d), (d.join("m-f16.gguf"), None));
        assert_eq!(r(&d.join("exists.bin")), (d.join("exists.bin"), None));
        assert_eq!(r(&d.join("new.bin")), (d.join("new.bin"), None));
        assert_eq!(
            r(&d.join("a/b/new.gguf")),
            (d.join("a/b/new.gguf"), Some(d.join("a/b")))
        );
        assert_eq!(
            r(&d.join("newdir")),
            (d.join("newdir/m-f16.gguf"), Some(d.join("newdir")))
        );
        let slash = PathBuf::from(format!("{}/x.bin/", d.display()));
        assert_eq!(r(&slash).0, slash.join("m-f16.gguf"));
    }

    #[test]
    fn names_from_config_or_folder() {
        let c = |j: &str| HfConfig::parse(PathBuf::from("config.json"), j).unwrap();
        assert_eq!(
            model_name(
                Path::new("/x/y"),
                &c(r#"{"_name_or_path": "org/tiny-gpt2"}"#)
            ),
            "tiny-gpt2"
        );
        assert_eq!(model_name(Path::new("/x/folder"), &c("{}")), "folder");
        assert_eq!(
            model_name(Path::new("/x/folder"), &c(r#"{"_name_or_path": ""}"#)),
            "folder"
        );
    }

    #[test]
    fn detection() {
        let c = |j: &str| HfConfig::parse(PathBuf::from("config.json"), j).unwrap();
        assert_eq!(
            detect_architecture(&c(r#"{"architectures": ["MptForCausalLM"]}"#)).unwrap(),
            Architecture::Mpt
        );
        assert_eq!(
            detect_architecture(&c(r#"{"model_type": "gpt_neox"}"#)).unwrap(),
            Architecture::GptNeoX
        );
        let e = detect_architecture(&c(
            r#"{"architectures": ["FalconForCausalLM"], "model_type": "falcon"}"#,
        ))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(
            e.message().contains("GPT2LMHeadModel") && e.message().contains("FalconForCausalLM"),
            "{e}"
        );
    }
}
