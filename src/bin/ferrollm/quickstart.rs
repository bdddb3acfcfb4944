//! `ferrollm quickstart`: the whole flow on the bundled demo model, step by step.

use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};
use ferrollm::generate::{generate, GenerateParams};
use ferrollm::model::{LoadParams, Model};
use ferrollm::quantizer::quantize;
use ferrollm::sampling::SamplerParams;
use ferrollm::session::{Session, SessionParams};
use ferrollm::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Convert the bundled demo model to GGUF F16, quantize it to Q4_0, load it and stream a
/// continuation of a prompt, printing each step.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  cargo run --release -- quickstart
  ferrollm quickstart --prompt \"It was a truth\"")]
pub struct QuickstartArgs {
    /// The Hugging Face model folder to use (default: the bundled models/demo).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the converted and quantized files go.
    #[arg(long, default_value = "target/quickstart")]
    pub out: PathBuf,
    #[arg(short = 'p', long, default_value = "The old man looked at the sea and")]
    pub prompt: String,
    #[arg(short = 'n', long, default_value_t = 60)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn demo_folder(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    // From the repository root, or wherever the binary was built from.
    let candidates = [
        PathBuf::from("models/demo"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo"),
    ];
    candidates.into_iter().find(|p| p.join("config.json").is_file()).ok_or_else(|| {
        Error::invalid_argument("the bundled demo model (models/demo) was not found; run from the repository or pass --model")
    })
}

fn size(path: &Path) -> String {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    format!("{:.2} MB", bytes as f64 / 1e6)
}

pub fn run(a: QuickstartArgs) -> Result<()> {
    let model_dir = demo_folder(a.model)?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, "create the folder", e))?;
    // Fresh outputs each time (the quantizer keeps existing targets, as llm-rs does).
    let conv = Converter::open(&model_dir)?;
    let params = ConvertParams {
        container: Container::Gguf,
        dtype: GgmlType::F16,
    };
    let f16_path = conv.output_path(&a.out, &params);
    for p in [
        f16_path.clone(),
        f16_path.with_file_name(
            f16_path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .replace("-f16", "-q4_0"),
        ),
    ] {
        let _ = std::fs::remove_file(&p);
    }

    println!(
        "1. convert   {} ({}, {} architecture)",
        model_dir.display(),
        conv.model_name(),
        conv.architecture()
    );
    let t = Instant::now();
    let f16 = conv.convert(&a.out, &params, &mut |_| true)?;
    println!(
        "             -> {} ({}, {:.0} ms)",
        f16.display(),
        size(&f16),
        t.elapsed().as_secs_f64() * 1e3
    );

    println!("2. quantize  to q4_0");
    let t = Instant::now();
    let q = quantize(&f16, None, GgmlType::Q4_0, Container::Gguf, &mut |_| true)?;
    println!(
        "             -> {} ({}, {:.0} ms)",
        q.path.display(),
        size(&q.path),
        t.elapsed().as_secs_f64() * 1e3
    );

    println!("3. load      {}", q.path.display());
    let t = Instant::now();
    let model = Arc::new(Model::load(&q.path, &LoadParams::default())?);
    let spec = model.spec();
    println!(
        "             {} layers, {} hidden, vocabulary {}, context {} ({:.0} ms)",
        spec.n_layer,
        spec.n_embd,
        spec.n_vocab,
        spec.n_ctx_train,
        t.elapsed().as_secs_f64() * 1e3
    );

    println!(
        "4. generate  (seed {}, up to {} tokens)\n",
        a.seed, a.max_new_tokens
    );
    let mut session = Session::new(model, SessionParams::default())?;
    let gen = GenerateParams {
        sampler: SamplerParams {
            seed: a.seed,
            ..Default::default()
        },
        max_new_tokens: Some(a.max_new_tokens),
        stop_words: Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", a.prompt);
    let r = generate(&mut session, &a.prompt, &gen, &mut |piece| {
        let _ = write!(out, "{piece}");
        let _ = out.flush();
        true
    })?;
    drop(out);
    println!(
        "\n\n             {} prompt tokens in {:.0} ms, {} new tokens in {:.0} ms ({:.1} tokens/s), stop: {}",
        r.prompt_tokens,
        r.times.prompt_ms,
        r.tokens.len(),
        r.times.generation_ms,
        r.tokens.len() as f64 / (r.times.generation_ms / 1e3).max(1e-9),
        r.stop_reason.name()
    );
    Ok(())
}
