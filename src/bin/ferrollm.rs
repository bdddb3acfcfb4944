//! The `ferrollm` command-line tool.

#[path = "ferrollm/convert.rs"]
mod convert;
#[path = "ferrollm/jobs.rs"]
mod jobs;
#[path = "ferrollm/quantize.rs"]
mod quantize;
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
    /// Print what is being done (information-level logs) on standard error.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the ggml tensor types ferrollm knows, with block sizes and bits per weight.
    Types,
    Quantize(quantize::QuantizeArgs),
    Convert(convert::ConvertArgs),
    #[command(flatten)]
    Run(run::RunCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jobs::init_logging(cli.verbose);
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
