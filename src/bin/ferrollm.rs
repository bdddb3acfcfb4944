//! The `ferrollm` command-line tool.

#[path = "ferrollm/run.rs"]
mod run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferrollm",
    version,
    about = "Convert, quantize and run GGML-family language models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the ggml tensor types ferrollm knows, with block sizes and bits per weight.
    Types,
    #[command(flatten)]
    Run(run::RunCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: ferrollm::Result<()> = match cli.command {
        Command::Types => {
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
