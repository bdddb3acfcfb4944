//! The `ferrollm` command-line tool.

#[path = "ferrollm/convert.rs"]
mod convert;
#[path = "ferrollm/jobs.rs"]
mod jobs;
#[path = "ferrollm/quantize.rs"]
mod quantize;
#[path = "ferrollm/quickstart.rs"]
mod quickstart;
#[path = "ferrollm/run.rs"]
mod run;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferrollm",
    version,
    about = "Convert, quantize and run GGML-family language models"
)]
struct Cli {
    /// Print what is being done (information-level logs) on standard error.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole flow on the bundled demo model: convert, quantize, load, generate.
    Quickstart(quickstart::QuickstartArgs),
    /// List the ggml tensor types ferrollm knows, with block sizes and bits per weight.
    #[command(after_help = "Example:
  ferrollm types --json")]
    Types {
        /// Print one JSON array of {id, name, block_size, type_size, bits_per_weight}.
        #[arg(long)]
        json: bool,
    },
    /// Show a model file's container, architecture, metadata, vocabulary size and tensors.
    #[command(after_help = "Examples:
  ferrollm info model.gguf
  ferrollm info gpt2-q4_0-ggjt.bin --json")]
    Info {
        /// The model file (GGUF, GGJT, GGMF or GGML).
        file: PathBuf,
        /// Print one JSON object (keys: container, version, architecture, metadata, vocab_size,
        /// tensors) instead of text.
        #[arg(long)]
        json: bool,
    },
    Quantize(quantize::QuantizeArgs),
    Convert(convert::ConvertArgs),
    #[command(flatten)]
    Run(run::RunCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jobs::init_logging(cli.verbose);
    let result: ferrollm::Result<()> = match cli.command {
        Command::Quickstart(a) => quickstart::run(a),
        Command::Types { json: true } => {
            let types: Vec<_> = ferrollm::format::GgmlType::ALL
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": *t as u32,
                        "name": t.name(),
                        "block_size": t.block_size(),
                        "type_size": t.type_size(),
                        "bits_per_weight": t.bits_per_weight(),
                    })
                })
                .collect();
            println!("{}", serde_json::Value::from(types));
            Ok(())
        }
        Command::Types { json: false } => {
            for t in ferrollm::format::GgmlType::ALL {
                println!(
                    "{:>3} {:<8} block {:>3}  {:>3} bytes  {:.4} bits/weight",
                    *t as u32,
                    t.name(),
                    t.block_size(),
                    t.type_size(),
                    t.bits_per_weight()
                );
            }
            Ok(())
        }
        Command::Info { file, json } => {
            ferrollm::format::ModelFile::open(&file, None).map(|model| {
                if json {
                    emit(&format!("{}\n", model.report_json()));
                } else {
                    emit(&model.report_text());
                }
            })
        }
        Command::Quantize(a) => quantize::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Run(cmd) => run::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to standard output; a reader that went away (`ferrollm info f | head`) is not
/// an error.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
