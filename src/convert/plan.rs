//! What an architecture file hands the converter: metadata keys and the list of output tensors.

use super::tensor::TensorPlan;
use crate::error::{Error, Result};
use crate::format::Value;
use crate::Architecture;

/// Everything architecture-specific about one conversion.
#[derive(Clone, Debug)]
pub struct ArchPlan {
    /// `{arch}.*` keys in the order they are written (`general.*` and `tokenizer.*` are added by
    /// the converter).
    pub keys: Vec<(String, Value)>,
    /// Output tensors, in file order.
    pub tensors: Vec<TensorPlan>,
    /// Checkpoint tensors that are deliberately not converted (a tied `lm_head.weight`).
    pub ignored: Vec<String>,
    /// A prefix that checkpoint tensor names may lack: GPT-2 and BLOOM checkpoints saved by old
    /// transformers versions name `h.0.…` what newer ones name `transformer.h.0.…`.
    pub optional_prefix: Option<&'static str>,
    /// Rows of the token embedding (config.json `vocab_size`).
    pub vocab_size: usize,
}

/// Builds the `{arch}.*` keys with the value types llama.cpp's gguf-py writes (u32 counts, f32
/// floats, bool flags).
pub struct Keys {
    prefix: &'static str,
    pub entries: Vec<(String, Value)>,
}

impl Keys {
    pub fn new(arch: Architecture) -> Self {
        Keys {
            prefix: arch.gguf_name(),
            entries: Vec::new(),
        }
    }
    pub fn u32(&mut self, key: &str, v: usize) -> Result<()> {
        let v = u32::try_from(v).map_err(|_| {
            Error::unsupported(format!(
                "{}.{key} = {v} does not fit GGUF's u32",
                self.prefix
            ))
        })?;
        self.entries
            .push((format!("{}.{key}", self.prefix), Value::U32(v)));
        Ok(())
    }
    pub fn f32(&mut self, key: &str, v: f64) {
        self.entries
            .push((format!("{}.{key}", self.prefix), Value::F32(v as f32)));
    }
    pub fn bool(&mut self, key: &str, v: bool) {
        self.entries
            .push((format!("{}.{key}", self.prefix), Value::Bool(v)));
    }
    pub fn str(&mut self, key: &str, v: &str) {
        self.entries.push((
            format!("{}.{key}", self.prefix),
            Value::String(v.to_string()),
        ));
    }
}

/// `blk.{i}.{name}`.
pub fn blk(i: usize, name: &str) -> String {
    format!("blk.{i}.{name}")
}

/// An error for a config.json whose values contradict each other.
pub fn inconsistent(cfg: &super::config::HfConfig, msg: impl std::fmt::Display) -> Error {
    Error::format(cfg.path(), msg)
}

/// Builds the tensor list of a legacy (llm-rs) file from the GGUF plan: llm-rs' names, in the order
/// llm-rs writes them (its models' `state_dict` order).
pub struct Relabel<'a> {
    from: &'a ArchPlan,
    pub out: Vec<TensorPlan>,
}

impl<'a> Relabel<'a> {
    pub fn new(from: &'a ArchPlan) -> Self {
        Relabel {
            from,
            out: Vec::with_capacity(from.tensors.len()),
        }
    }

    fn find(&self, gguf: &str) -> Option<&TensorPlan> {
        self.from.tensors.iter().find(|t| t.name == gguf)
    }

    /// The GGUF plan's tensor `gguf`, named `legacy`.
    pub fn take(&mut self, gguf: &str, legacy: impl Into<String>) {
        let t = self
            .find(gguf)
            .unwrap_or_else(|| panic!("the GGUF plan has no {gguf}"));
        self.out.push(TensorPlan {
            name: legacy.into(),
            source: t.source.clone(),
        });
    }

    /// Like [`take`](Self::take) with the values as the checkpoint stores them (no transform).
    pub fn take_untransformed(&mut self, gguf: &str, legacy: impl Into<String>) {
        self.take(gguf, legacy);
        if let Some(TensorPlan {
            source: super::tensor::Source::Tensor { transform, .. },
            ..
        }) = self.out.last_mut()
        {
            *transform = super::tensor::Transform::Copy;
        }
    }

    /// The output head: the GGUF plan's `output.weight`, or — for a tied head, which llm-rs writes
    /// as a copy of the embeddings — `token_embd.weight`.
    pub fn head(&mut self, legacy: impl Into<String>) {
        if self.find("output.weight").is_some() {
            self.take("output.weight", legacy);
        } else {
            self.take("token_embd.weight", legacy);
        }
    }

    pub fn finish(self) -> ArchPlan {
        ArchPlan {
            keys: self.from.keys.clone(),
            tensors: self.out,
            ignored: self.from.ignored.clone(),
            optional_prefix: self.from.optional_prefix,
            vocab_size: self.from.vocab_size,
        }
    }
}

/// The error for what llm-rs' legacy layout of `arch` cannot express.
pub fn legacy_refusal(arch: Architecture, what: impl std::fmt::Display) -> Error {
    Error::unsupported(format!(
        "the legacy (GGML/GGJT) {arch} layout of llm-rs cannot express {what}; convert to GGUF instead"
    ))
}
