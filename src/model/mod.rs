//! Loaded models: one generic decoder (`forward.rs`) driven by a per-architecture [`Spec`] and the
//! weights found in the file (`weights.rs`).

pub mod forward;
pub mod legacy_names;
pub mod matmul;
pub mod ops;
pub mod spec;
pub mod weights;

pub use forward::KvType;
pub use spec::Spec;

use crate::error::{Error, ErrorKind, Result};
use crate::format::ModelFile;
use crate::tokenizer::Tokenizer;
use crate::Architecture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weights::Weights;

/// How to load a model.
#[derive(Clone, Debug)]
pub struct LoadParams {
    /// The architecture, for files that do not say (legacy files without a `.meta` sidecar).
    pub architecture: Option<Architecture>,
    /// Map the file (default) rather than read it into memory.
    pub prefer_mmap: bool,
    /// A Hugging Face `tokenizer.json` to use instead of the tokenizer stored in the file.
    pub tokenizer_path: Option<PathBuf>,
}

impl Default for LoadParams {
    fn default() -> Self {
        LoadParams {
            architecture: None,
            prefer_mmap: true,
            tokenizer_path: None,
        }
    }
}

/// A loaded model: immutable, shared by any number of sessions on any threads.
pub struct Model {
    file: Arc<ModelFile>,
    spec: Spec,
    weights: Weights,
    alibi: Vec<f32>,
    tokenizer: Option<Tokenizer>,
}

/// The model file to load from `path`: the path itself, or the one model file in a folder.
pub fn resolve_model_path(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, "list", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("gguf" | "bin" | "ggml" | "ggjt")
                )
        })
        .collect();
    candidates.sort();
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(Error::invalid_argument(format!(
            "{}: folder holds no model file (*.gguf, *.bin)",
            path.display()
        ))),
        _ => Err(Error::invalid_argument(format!(
            "{}: folder holds {} model files; name one of them: {}",
            path.display(),
            candidates.len(),
            candidates
                .iter()
                .map(|c| c.file_name().unwrap_or_default().to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

impl Model {
    /// Loads a model file (or the one model file in a folder).
    pub fn load(path: &Path, params: &LoadParams) -> Result<Model> {
        let path = resolve_model_path(path)?;
        let file = if params.prefer_mmap {
            ModelFile::open(&path, params.architecture)?
        } else {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, "read", e))?;
            ModelFile::from_bytes(&path, bytes, params.architecture)?
        };
        let mut model = Self::from_file(file, params.architecture)?;
        if let Some(tp) = &params.tokenizer_path {
            model.tokenizer = Some(Tokenizer::from_hf_file(tp)?.with_special_ids_from(&model.file));
        }
        Ok(model)
    }

    /// Builds a model over an opened file.
    pub fn from_file(mut file: ModelFile, arch_override: Option<Architecture>) -> Result<Model> {
        let arch = match (file.architecture(), arch_override) {
            (Some(name), _) => Architecture::from_name(name).ok_or_else(|| {
                Error::unsupported(format!(
                    "{}: architecture {name:?} is not supported; supported: {}",
                    file.path.display(),
                    Architecture::ALL.map(|a| a.gguf_name()).join(", ")
                ))
            })?,
            (None, Some(a)) => a,
            (None, None) => {
                return Err(Error::invalid_argument(format!(
                    "{}: the file does not name its architecture; pass it explicitly",
                    file.path.display()
                )))
            }
        };
        let legacy = file.container != crate::format::Container::Gguf;
        if legacy {
            for t in &mut file.tensors {
                if let Some(name) = legacy_names::gguf_name(arch, &t.name) {
                    t.name = name;
                }
            }
        }
        let embd = file.tensor("token_embd.weight").ok_or_else(|| {
            Error::new(
                ErrorKind::Format,
                format!(
                    "{}: tensor token_embd.weight is missing",
                    file.path.display()
                ),
            )
        })?;
        let n_vocab = embd.shape.get(1).copied().unwrap_or(0) as usize;
        let spec = Spec::from_metadata(arch, &file.metadata, n_vocab)
            .map_err(|e| e.context(file.path.display()))?;
        let file = Arc::new(file);
        let interleaved_qkv = legacy && legacy_names::interleaved_qkv(arch);
        let weights = Weights::load(&file, &spec, interleaved_qkv)?;
        weights.prepare();
        let alibi = match spec.position {
            spec::Position::Alibi { max_bias, rule } => {
                ops::alibi_slopes(spec.n_head, max_bias, rule)
            }
            _ => Vec::new(),
        };
        let tokenizer = Tokenizer::from_model_file(&file)?;
        Ok(Model {
            file,
            spec,
            weights,
            alibi,
            tokenizer,
        })
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }
    pub fn file(&self) -> &ModelFile {
        &self.file
    }
    /// The model's tokenizer; an error naming the file when it has none.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::unsupported(format!(
                "{}: the file holds no tokenizer ferrollm can use; pass a tokenizer.json",
                self.file.path.display()
            ))
        })
    }
    pub(crate) fn weights(&self) -> &Weights {
        &self.weights
    }
    pub(crate) fn alibi(&self) -> &[f32] {
        &self.alibi
    }
}
