//! `ferrollm quantize`.

use super::jobs::Bar;
use clap::Args;
use ferrollm::format::{Container, GgmlType};
use ferrollm::quantizer::{Quantizer, TARGET_TYPES};
use ferrollm::{Error, Result};
use std::path::PathBuf;

/// Quantize a model file (llm-rs' AutoQuantizer rules).
///
/// DST may be a file, a folder or omitted (the source's folder); in a folder the name is the
/// source's stem without -f16, plus -<type>, plus -ggjt for GGJT. An existing target is kept
/// (with a warning). The last line of standard output is the path written.
#[derive(Args)]
#[command(after_help = "Examples:
  ferrollm quantize gpt2-f16.gguf --type q4_0                    # gpt2-q4_0.gguf
  ferrollm quantize gpt2-f16.gguf out/ --type q4_k               # out/gpt2-q4_k.gguf
  ferrollm quantize gpt2-f16.bin --type q4_0 --container ggjt    # gpt2-q4_0-ggjt.bin
  ferrollm quantize gpt2-f16.gguf small.gguf --type q8_0 --json")]
pub struct QuantizeArgs {
    /// The F32/F16/BF16 model file to quantize.
    pub source: PathBuf,
    /// Output file or folder.
    pub destination: Option<PathBuf>,
    /// Target type, as ggml names it: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k,
    /// q4_k, q5_k, q6_k.
    #[arg(short = 't', long = "type")]
    pub ty: String,
    /// Output container: gguf, ggjt or ggml (default: gguf for a GGUF source, ggjt — llm-rs'
    /// default — for a legacy one).
    #[arg(long)]
    pub container: Option<String>,
    /// Print a JSON object describing the result before the path.
    #[arg(long)]
    pub json: bool,
}

pub fn parse_container(name: &str) -> Result<Container> {
    match Container::from_name(name) {
        Some(c) if c != Container::Ggmf => Ok(c),
        _ => Err(Error::invalid_argument(format!(
            "unknown container {name:?}; use gguf, ggjt or ggml"
        ))),
    }
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    let ty = GgmlType::from_name(&a.ty)
        .filter(|t| TARGET_TYPES.contains(t))
        .ok_or_else(|| {
            Error::invalid_argument(format!(
                "unknown type {:?}; use one of {}",
                a.ty,
                TARGET_TYPES
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let q = Quantizer::open(&a.source)?;
    let container = match &a.container {
        Some(name) => parse_container(name)?,
        None if q.source().container == Container::Gguf => Container::Gguf,
        None => Container::Ggjt,
    };
    let bar = Bar::new();
    let outcome = q.quantize(a.destination.as_deref(), ty, container, &mut bar.callback());
    bar.finish();
    let outcome = outcome?;
    if a.json {
        let fallbacks: Vec<_> = outcome
            .fallbacks
            .iter()
            .map(|f| serde_json::json!({"tensor": f.tensor, "requested": f.requested.name(), "used": f.used.name(), "reason": f.reason}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "path": outcome.path, "meta": outcome.meta_path, "skipped_existing": outcome.skipped_existing,
                "quantized_tensors": outcome.quantized, "f32_tensors": outcome.kept, "fallbacks": fallbacks,
            })
        );
    }
    println!("{}", outcome.path.display());
    Ok(())
}
