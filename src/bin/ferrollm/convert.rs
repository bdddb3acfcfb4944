//! `ferrollm convert`.

use super::jobs::Bar;
use clap::Args;
use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};
use ferrollm::{Architecture, Error, Result};
use std::path::PathBuf;

/// Convert a Hugging Face checkpoint (config.json, *.safetensors or pytorch_model*.bin,
/// tokenizer.json) into a GGUF (default), GGJT or GGML file.
///
/// OUT may be a file or a folder, and defaults to the model folder. In a folder the name is
/// <model>-<type>.gguf (.bin for ggjt/ggml; -<type>-ggjt.bin for a quantized GGJT file). A path that does not exist yet is a file when its
/// last component has an extension, else a folder to create. The last line of standard output is
/// the path written.
///
/// With a quantized --type the tensors are quantized as they stream through: the same bytes as
/// converting to f16 and then running `ferrollm quantize`, without the f16 file.
#[derive(Args)]
#[command(after_help = "Examples:
  ferrollm convert models/demo out/                     # out/ferrollm-demo-f16.gguf
  ferrollm convert models/demo out/ --type q4_0         # straight to Q4_0
  ferrollm convert models/demo out/ --container ggjt    # out/ferrollm-demo-f16.bin, as llm-rs writes it
  ferrollm convert models/demo model.gguf --json")]
pub struct ConvertArgs {
    /// The model folder.
    pub hf_dir: PathBuf,
    /// Output file or folder.
    pub out: Option<PathBuf>,
    /// Architecture instead of detecting it: gpt2, gptj, gptneox, llama, mpt or bloom.
    #[arg(long)]
    pub arch: Option<String>,
    /// Output container: gguf, ggjt or ggml.
    #[arg(long, default_value = "gguf")]
    pub container: String,
    /// Type of the weight matrices: f16 (default), f32, bf16, or a quantization (q4_0, q4_1,
    /// q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k).
    #[arg(
        long = "type",
        visible_alias = "dtype",
        short = 't',
        default_value = "f16"
    )]
    pub dtype: String,
    /// Print a JSON object describing the result (path, sidecar, architecture, model name, type,
    /// container) before the path.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    let container = match Container::from_name(&a.container) {
        Some(c) if c != Container::Ggmf => c,
        _ => {
            return Err(Error::invalid_argument(format!(
                "unknown container {:?}; use gguf, ggjt or ggml",
                a.container
            )))
        }
    };
    let dtype = GgmlType::from_name(&a.dtype)
        .filter(|t| ferrollm::quantizer::is_target_type(*t))
        .ok_or_else(|| {
            Error::invalid_argument(format!(
                "unknown type {:?}; use one of {}",
                a.dtype,
                ferrollm::quantizer::TARGET_TYPES
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let conv = match &a.arch {
        Some(name) => {
            let arch = Architecture::from_name(name).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "unknown architecture {name:?}; use gpt2, gptj, gptneox, llama, mpt or bloom"
                ))
            })?;
            Converter::open_as(&a.hf_dir, arch)?
        }
        None => Converter::open(&a.hf_dir)?,
    };
    log::info!(
        "{}: {} model {:?}",
        a.hf_dir.display(),
        conv.architecture(),
        conv.model_name()
    );
    let bar = Bar::new();
    let out = a.out.as_deref().unwrap_or(&a.hf_dir);
    let written = conv.convert(
        out,
        &ConvertParams { container, dtype },
        &mut bar.callback(),
    );
    bar.finish();
    let written = written?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "path": written,
                "meta": ferrollm::format::meta::meta_path_for(&written),
                "architecture": conv.architecture().gguf_name(),
                "model_name": conv.model_name(),
                "type": dtype.name(),
                "container": container.name(),
            })
        );
    }
    println!("{}", written.display());
    Ok(())
}
