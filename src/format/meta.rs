//! The `.meta` JSON sidecar that llm-rs 0.2.15 writes beside every model file.
//!
//! Facts (llm-rs 0.2.15 `llm_rs/auto.py`, `ModelMetadata`; `convert/models/_base.py`):
//! - The sidecar of `dir/name.ext` is `dir/name.meta` (Python's `Path.with_suffix(".meta")`: the
//!   last suffix is replaced; a name without one — including a dot-file such as `.bin` — gets
//!   `.meta` appended).
//! - It is `json.dumps(obj, indent=4)`: 4-space indentation, `", "`-free item separators
//!   (`,` + newline), `": "` after keys, non-ASCII escaped as `\uXXXX`, no trailing newline.
//! - Keys, in this order: `model` (`KnownModels` name: `Gpt2`, `GptJ`, `GptNeoX`, `Llama`, `Mpt`,
//!   `Bloom`), `quantization` (`Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0`, `F16`), `quantization_version`
//!   (`Not_Quantized`, `V1`, `V2`; quantized files are `V2`), `container` (`GGML`, `GGJT`),
//!   `converter` (`"llm-rs"`), `hash` (blake3 hex of the model file, or null), `base_model` (the
//!   source model's name or path, or null). llm-rs requires the first five when it reads a sidecar;
//!   `hash` and `base_model` may be missing.
//! - llm-rs' converter writes `"container": "GGML"` for every architecture, although its LLaMA
//!   converter writes a GGJT file; ferrollm writes the container the file really has.
//! - ferrollm also writes values llm-rs does not know (`F32`, k-quants, `GGUF`, `GGMF`) when that is
//!   the truth; llm-rs cannot autoload such files, which it could not run anyway.

use super::{Container, GgmlType, ModelFile, OutputFile};
use crate::error::{Error, IoContext, Result};
use crate::Architecture;
use std::path::{Path, PathBuf};

/// The quantization version of a `.meta` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantizationVersion {
    NotQuantized,
    V1,
    V2,
}

impl QuantizationVersion {
    /// llm-rs' spelling: `Not_Quantized`, `V1`, `V2`.
    pub fn name(self) -> &'static str {
        match self {
            QuantizationVersion::NotQuantized => "Not_Quantized",
            QuantizationVersion::V1 => "V1",
            QuantizationVersion::V2 => "V2",
        }
    }
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Not_Quantized" => Some(QuantizationVersion::NotQuantized),
            "V1" => Some(QuantizationVersion::V1),
            "V2" => Some(QuantizationVersion::V2),
            _ => None,
        }
    }
}

/// The contents of a `.meta` sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub model: Architecture,
    /// The file's main tensor type (`F16`, `Q4_0`, …).
    pub quantization: GgmlType,
    pub quantization_version: QuantizationVersion,
    pub container: Container,
    /// The program that wrote the file (`llm-rs`, `ferrollm`).
    pub converter: String,
    /// blake3 hex of the model file.
    pub hash: Option<String>,
    pub base_model: Option<String>,
}

/// The sidecar path of `model_path`: its last extension replaced by `.meta`, as llm-rs does.
pub fn meta_path_for(model_path: &Path) -> PathBuf {
    let name = model_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = match name.rfind('.') {
        Some(i) if i > 0 && i < name.len() - 1 => &name[..i],
        _ => &name[..],
    };
    model_path.with_file_name(format!("{stem}.meta"))
}

/// llm-rs' `KnownModels` name of `arch`.
pub fn known_model_name(arch: Architecture) -> &'static str {
    match arch {
        Architecture::Gpt2 => "Gpt2",
        Architecture::GptJ => "GptJ",
        Architecture::GptNeoX => "GptNeoX",
        Architecture::Llama => "Llama",
        Architecture::Mpt => "Mpt",
        Architecture::Bloom => "Bloom",
    }
}

/// The main tensor type of a `llama_ftype` (`general.file_type`), as llm-rs names quantizations.
pub fn quantization_of_file_type(file_type: u64) -> Option<GgmlType> {
    Some(match file_type {
        0 => GgmlType::F32,
        1 => GgmlType::F16,
        2 => GgmlType::Q4_0,
        3 | 4 => GgmlType::Q4_1,
        7 => GgmlType::Q8_0,
        8 => GgmlType::Q5_0,
        9 => GgmlType::Q5_1,
        10 => GgmlType::Q2_K,
        11..=13 => GgmlType::Q3_K,
        14 | 15 => GgmlType::Q4_K,
        16 | 17 => GgmlType::Q5_K,
        18 => GgmlType::Q6_K,
        32 => GgmlType::BF16,
        _ => return None,
    })
}

impl Meta {
    /// Parses the text of a `.meta` file; `path` names it in errors.
    pub fn parse_at(path: &Path, bytes: &[u8]) -> Result<Meta> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::format(path, format!("not valid JSON: {e}")))?;
        let Some(obj) = v.as_object() else {
            return Err(Error::format(path, "not a JSON object"));
        };
        let string = |key: &str, required: bool| -> Result<Option<String>> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) if !required => Ok(None),
                None | Some(serde_json::Value::Null) => {
                    Err(Error::format(path, format!("the key \"{key}\" is missing")))
                }
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(Error::format(
                    path,
                    format!("\"{key}\" is {other}, expected a string"),
                )),
            }
        };
        let model = string("model", true)?.expect("required");
        let model = Architecture::from_name(&model)
            .ok_or_else(|| Error::format(path, format!("unknown model \"{model}\"")))?;
        let quantization = string("quantization", true)?.expect("required");
        let quantization = GgmlType::from_name(&quantization).ok_or_else(|| {
            Error::format(path, format!("unknown quantization \"{quantization}\""))
        })?;
        let container = string("container", true)?.expect("required");
        let container = Container::from_name(&container)
            .ok_or_else(|| Error::format(path, format!("unknown container \"{container}\"")))?;
        let quantization_version = match string("quantization_version", false)? {
            None => QuantizationVersion::NotQuantized,
            Some(s) => QuantizationVersion::from_name(&s).ok_or_else(|| {
                Error::format(path, format!("unknown quantization_version \"{s}\""))
            })?,
        };
        Ok(Meta {
            model,
            quantization,
            quantization_version,
            container,
            converter: string("converter", false)?.unwrap_or_default(),
            hash: string("hash", false)?,
            base_model: string("base_model", false)?,
        })
    }

    /// Parses the text of a `.meta` file (for fuzzing and tests).
    pub fn parse(bytes: &[u8]) -> Result<Meta> {
        Self::parse_at(Path::new("<.meta>"), bytes)
    }

    /// Reads the `.meta` file at `path` (the sidecar itself; see [`meta_path_for`]).
    pub fn read(path: &Path) -> Result<Meta> {
        let bytes = std::fs::read(path).at(path, "read")?;
        Self::parse_at(path, &bytes)
    }

    /// Reads the sidecar of `model_path` if there is one (`Ok(None)` when there is none).
    pub fn read_for_model(model_path: &Path) -> Result<Option<Meta>> {
        let path = meta_path_for(model_path);
        if !path.exists() {
            return Ok(None);
        }
        Self::read(&path).map(Some)
    }

    /// Describes a model file truthfully: its architecture, container and main tensor type.
    pub fn describe(model: &ModelFile, base_model: Option<String>) -> Result<Meta> {
        let arch = model
            .architecture()
            .and_then(Architecture::from_name)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "{}: architecture {:?} has no llm-rs model name",
                    model.path.display(),
                    model.architecture()
                ))
            })?;
        let file_type = model.metadata.get_u64("general.file_type");
        let quantization = file_type
            .and_then(quantization_of_file_type)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "{}: general.file_type {file_type:?} names no quantization",
                    model.path.display()
                ))
            })?;
        let quantization_version = if !quantization.is_quantized() {
            QuantizationVersion::NotQuantized
        } else {
            match model.metadata.get_u64("general.quantization_version") {
                Some(1) => QuantizationVersion::V1,
                _ => QuantizationVersion::V2,
            }
        };
        Ok(Meta {
            model: arch,
            quantization,
            quantization_version,
            container: model.container,
            converter: "ferrollm".to_string(),
            hash: None,
            base_model,
        })
    }

    /// The JSON text llm-rs writes for this metadata (byte for byte).
    pub fn to_json(&self) -> String {
        let opt = |v: &Option<String>| match v {
            Some(s) => py_json_string(s),
            None => "null".to_string(),
        };
        format!(
            "{{\n    \"model\": {},\n    \"quantization\": {},\n    \"quantization_version\": {},\n    \
             \"container\": {},\n    \"converter\": {},\n    \"hash\": {},\n    \"base_model\": {}\n}}",
            py_json_string(known_model_name(self.model)),
            py_json_string(&self.quantization.name().to_ascii_uppercase()),
            py_json_string(self.quantization_version.name()),
            py_json_string(&self.container.name().to_ascii_uppercase()),
            py_json_string(&self.converter),
            opt(&self.hash),
            opt(&self.base_model),
        )
    }

    /// Writes the sidecar of `model_path` (see [`meta_path_for`]) with `meta`, its `hash` set to the
    /// blake3 of the model file (read in a stream). The file appears atomically (temporary file +
    /// rename). Returns the sidecar's path and the metadata written.
    pub fn write(model_path: &Path, meta: &Meta) -> Result<(PathBuf, Meta)> {
        let mut meta = meta.clone();
        meta.hash = Some(hash_file(model_path)?);
        let path = meta_path_for(model_path);
        let mut out = OutputFile::create(&path)?;
        out.write_all(meta.to_json().as_bytes())?;
        let path = out.finish()?;
        Ok((path, meta))
    }
}

/// The blake3 hex digest of a file, read in a stream.
pub fn hash_file(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).at(path, "open")?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::io::BufReader::with_capacity(1 << 20, file))
        .at(path, "read")?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`).
fn py_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_follow_pathlib() {
        let m = |p: &str| meta_path_for(Path::new(p)).to_string_lossy().into_owned();
        assert_eq!(m("dir/model-f16.bin"), "dir/model-f16.meta");
        assert_eq!(m("a.b.bin"), "a.b.meta");
        assert_eq!(m("model"), "model.meta");
        assert_eq!(m(".bin"), ".bin.meta");
        assert_eq!(m("model."), "model..meta");
    }

    #[test]
    fn python_string_escapes() {
        assert_eq!(py_json_string("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(
            py_json_string("é😀\u{1}\u{7f}"),
            r#""\u00e9\ud83d\ude00\u0001\u007f""#
        );
    }
}
