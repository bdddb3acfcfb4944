//! Describing an opened model file, as `ferrollm info` shows it: one JSON object for programs
//! (and, later, the C API) and a text summary for people.

use super::{ModelFile, Value};
use serde_json::json;
use std::fmt::Write as _;

/// Arrays with more items than this are summarised in reports (length and first items).
pub const REPORT_ARRAY_ITEMS: usize = 16;
/// Longer metadata values are cut in the text report.
const TEXT_VALUE_CHARS: usize = 120;

impl ModelFile {
    /// Number of tokens in the embedded vocabulary: the length of GGUF's `tokenizer.ggml.tokens`,
    /// else of a legacy file's vocabulary.
    pub fn vocab_size(&self) -> Option<usize> {
        self.metadata
            .get_array("tokenizer.ggml.tokens")
            .map(<[Value]>::len)
            .or_else(|| self.legacy_vocab.as_ref().map(|v| v.tokens.len()))
    }

    /// A JSON description of the file, with exactly these keys: `container` ("gguf", "ggjt",
    /// "ggmf" or "ggml"), `version`, `architecture` (string or null), `metadata` (an object; arrays
    /// of more than [`REPORT_ARRAY_ITEMS`] items are summarised as
    /// `{"type": "array", "element_type", "len", "first"}`), `vocab_size` (number or null) and
    /// `tensors` (in file order, each `{name, type, shape, size, offset}`: lower-case ggml type
    /// name, dimensions innermost first, bytes of data, absolute offset in the file).
    pub fn report_json(&self) -> serde_json::Value {
        let metadata: serde_json::Map<String, serde_json::Value> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_json(REPORT_ARRAY_ITEMS)))
            .collect();
        let tensors: Vec<_> = self
            .tensors
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "type": t.ty.name(),
                    "shape": t.shape,
                    "size": t.size,
                    "offset": t.offset,
                })
            })
            .collect();
        json!({
            "container": self.container.name(),
            "version": self.version,
            "architecture": self.architecture(),
            "metadata": metadata,
            "vocab_size": self.vocab_size(),
            "tensors": tensors,
        })
    }

    /// A text description of the file: container and version, architecture, vocabulary size,
    /// metadata (long values abbreviated) and a table of tensors.
    pub fn report_text(&self) -> String {
        let mut s = String::new();
        let total: u64 = self.tensors.iter().map(|t| t.size).sum();
        // Writing to a String cannot fail.
        let _ = writeln!(s, "file:         {}", self.path.display());
        let _ = writeln!(
            s,
            "container:    {} version {}",
            self.container, self.version
        );
        let _ = writeln!(
            s,
            "architecture: {}",
            self.architecture().unwrap_or("(not stated)")
        );
        let _ = match self.vocab_size() {
            Some(n) => writeln!(s, "vocabulary:   {n} tokens"),
            None => writeln!(s, "vocabulary:   (none embedded)"),
        };
        let _ = writeln!(
            s,
            "tensors:      {} ({total} bytes, {:.2} MiB)",
            self.tensors.len(),
            total as f64 / (1024.0 * 1024.0)
        );
        let _ = writeln!(s, "\nmetadata ({} keys):", self.metadata.len());
        for (key, value) in self.metadata.iter() {
            let _ = writeln!(s, "  {key} = {}", abbreviate(&value.to_string()));
        }
        if !self.tensors.is_empty() {
            let name_w = self.tensors.iter().map(|t| t.name.len()).max().unwrap_or(0);
            let shapes: Vec<String> = self
                .tensors
                .iter()
                .map(|t| format!("{:?}", t.shape))
                .collect();
            let shape_w = shapes.iter().map(String::len).max().unwrap_or(0);
            let _ = writeln!(
                s,
                "\n  {:<name_w$}  {:<7}  {:<shape_w$}  {:>12}  {:>12}",
                "name", "type", "shape", "bytes", "offset"
            );
            for (t, shape) in self.tensors.iter().zip(&shapes) {
                let _ = writeln!(
                    s,
                    "  {:<name_w$}  {:<7}  {:<shape_w$}  {:>12}  {:>12}",
                    t.name,
                    t.ty.name(),
                    shape,
                    t.size,
                    t.offset
                );
            }
        }
        s
    }
}

/// `text`, cut to [`TEXT_VALUE_CHARS`] characters with a count of what was left out.
fn abbreviate(text: &str) -> String {
    let n = text.chars().count();
    if n <= TEXT_VALUE_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(TEXT_VALUE_CHARS).collect();
    format!("{head}… ({} more characters)", n - TEXT_VALUE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Metadata, ValueType};
    use std::path::Path;

    fn file_with(metadata: &Metadata) -> ModelFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.gguf");
        let w = crate::format::gguf::GgufWriter::create(&path, metadata, &[], 32).unwrap();
        crate::format::TensorWriter::finish(Box::new(w)).unwrap();
        ModelFile::from_bytes(Path::new("r.gguf"), std::fs::read(&path).unwrap(), None).unwrap()
    }

    #[test]
    fn long_values_are_summarised() {
        let mut m = Metadata::new();
        let tokens = (0..100).map(|i| Value::String(format!("t{i}"))).collect();
        m.set(
            "tokenizer.ggml.tokens",
            Value::Array(ValueType::String, tokens),
        );
        m.set("chat", Value::String("x".repeat(1000)));
        let f = file_with(&m);
        assert_eq!(f.vocab_size(), Some(100));
        let j = f.report_json();
        assert_eq!(j["vocab_size"], 100);
        assert_eq!(j["architecture"], serde_json::Value::Null);
        assert_eq!(j["metadata"]["tokenizer.ggml.tokens"]["len"], 100);
        assert_eq!(
            j["metadata"]["tokenizer.ggml.tokens"]["first"]
                .as_array()
                .unwrap()
                .len(),
            REPORT_ARRAY_ITEMS
        );
        let text = f.report_text();
        assert!(text.contains("vocabulary:   100 tokens"), "{text}");
        assert!(text.contains("(882 more characters)"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() < 200), "{text}");
    }
}
