//! The commands that run models: generate, logits, tokenize, embed, perplexity, bench.

use clap::{Args, Subcommand};
use ferrollm::generate::{generate, GenerateParams};
use ferrollm::model::{KvType, LoadParams, Model};
use ferrollm::sampling::SamplerParams;
use ferrollm::session::{Logits, Session, SessionParams};
use ferrollm::{Architecture, Error, Result};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// How to load the model and set up the session (shared by every run command).
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Model file (GGUF, GGJT, GGMF, GGML) or a folder holding exactly one.
    pub model: PathBuf,
    /// Worker threads (default: one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Context length in tokens (default: the model's).
    #[arg(long = "ctx", default_value_t = 0)]
    pub ctx: usize,
    /// Architecture of a legacy file that does not say (gpt2, gptj, gptneox, llama, mpt, bloom).
    #[arg(long)]
    pub arch: Option<String>,
    /// A Hugging Face tokenizer.json to use instead of the file's tokenizer.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Element type of the key/value cache: f16 or f32.
    #[arg(long = "kv-type", default_value = "f16")]
    pub kv_type: String,
}

impl ModelArgs {
    fn load(&self) -> Result<Arc<Model>> {
        let architecture = match &self.arch {
            Some(name) => Some(Architecture::from_name(name).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "unknown architecture {name:?}; supported: {}",
                    Architecture::ALL.map(|a| a.gguf_name()).join(", ")
                ))
            })?),
            None => None,
        };
        let params = LoadParams {
            architecture,
            tokenizer_path: self.tokenizer.clone(),
            ..Default::default()
        };
        Ok(Arc::new(Model::load(&self.model, &params)?))
    }
    fn session(&self, model: Arc<Model>) -> Result<Session> {
        let kv_type = match self.kv_type.as_str() {
            "f16" => KvType::F16,
            "f32" => KvType::F32,
            other => {
                return Err(Error::invalid_argument(format!(
                    "--kv-type {other:?}: use f16 or f32"
                )))
            }
        };
        Session::new(
            model,
            SessionParams {
                threads: self.threads,
                context_length: self.ctx,
                kv_type,
                ..Default::default()
            },
        )
    }
}

#[derive(Subcommand)]
pub enum RunCommand {
    /// Generate a continuation of a prompt, streaming it to standard output.
    #[command(after_help = "Examples:
  ferrollm generate model.gguf -p \"Once upon a time\" -n 64
  ferrollm generate model.gguf -p \"Q: 2+2?\" --temperature 0 --stop \"\\n\"
  ferrollm generate model.gguf -p \"Hello\" -n 16 --json")]
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        /// The prompt.
        #[arg(short = 'p', long)]
        prompt: String,
        /// Stop after this many new tokens (default: end token or full context).
        #[arg(short = 'n', long)]
        max_new_tokens: Option<usize>,
        /// Sample among the k most likely tokens (0: all).
        #[arg(long, default_value_t = 40)]
        top_k: usize,
        /// Sample among the most likely tokens whose probabilities sum to p (nucleus sampling).
        #[arg(long, default_value_t = 0.95)]
        top_p: f32,
        /// 0 means greedy decoding.
        #[arg(long, default_value_t = 0.8)]
        temperature: f32,
        /// Divide the logits of recently seen tokens by this (1: off).
        #[arg(long, default_value_t = 1.3)]
        repetition_penalty: f32,
        /// How many recent tokens the repetition penalty looks at.
        #[arg(long, default_value_t = 512)]
        repetition_penalty_last_n: usize,
        /// Random seed: the same seed gives the same text.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Stop before this text (repeatable).
        #[arg(long = "stop")]
        stop_words: Vec<String>,
        /// Print one JSON object (text, tokens, stop_reason, times) instead of streaming.
        #[arg(long)]
        json: bool,
    },
    /// Print the logits of a token sequence as JSON.
    #[command(after_help = "Example:
  ferrollm logits model.gguf --tokens 1,2,3 --all --json")]
    Logits {
        #[command(flatten)]
        model: ModelArgs,
        /// Comma-separated token ids.
        #[arg(long, value_delimiter = ',', required = true)]
        tokens: Vec<u32>,
        /// Logits of every position, not just the last.
        #[arg(long)]
        all: bool,
        /// JSON output (the only format).
        #[arg(long)]
        json: bool,
    },
    /// Print the token ids of a text.
    #[command(after_help = "Examples:
  ferrollm tokenize model.gguf \"Hello world\"
  ferrollm tokenize model.gguf \"Hello world\" --no-special --json")]
    Tokenize {
        #[command(flatten)]
        model: ModelArgs,
        /// The text to tokenize.
        text: String,
        /// Do not add the tokenizer's special tokens (e.g. BOS).
        #[arg(long)]
        no_special: bool,
        /// Print one JSON object ({"tokens": [...]}) instead of one id per line with its text.
        #[arg(long)]
        json: bool,
    },
    /// Print the embedding of a text (mean of the final hidden states).
    #[command(after_help = "Example:
  ferrollm embed model.gguf \"Hello world\" --json")]
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// The text to embed.
        text: String,
        /// Print one JSON object ({"embedding": [...]}) instead of the values on one line.
        #[arg(long)]
        json: bool,
    },
    /// Perplexity of a model on a text file (chunks of --ctx tokens; the second half of each
    /// chunk is scored, as llama.cpp's perplexity tool does).
    #[command(after_help = "Examples:
  ferrollm perplexity model.gguf -f heldout.txt --ctx 128
  ferrollm perplexity models/demo.gguf -f models/demo/heldout.txt --ctx 256 --json")]
    Perplexity {
        #[command(flatten)]
        model: ModelArgs,
        /// The text file (UTF-8) to score.
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Print one JSON object (perplexity, scored_tokens, chunks, ctx) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure prompt processing and generation speed (tokens per second), like llama-bench.
    #[command(after_help = "Examples:
  ferrollm bench model.gguf -t 2 -p 128 -n 32 -r 3
  ferrollm bench model.gguf -t 1 --json          # one JSON object: pp/tg tokens per second
  FERROLLM_PROFILE=1 ferrollm bench model.gguf -p 0 -n 32   # also each step's share of the time")]
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Prompt tokens processed in one batch.
        #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
        n_prompt: usize,
        /// Tokens generated one at a time.
        #[arg(short = 'n', long = "n-gen", default_value_t = 32)]
        n_gen: usize,
        /// Repetitions (the median is reported).
        #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
        repetitions: usize,
        /// Print one JSON object (model, threads, n_prompt, n_gen, repetitions, pp_tokens_per_s,
        /// tg_tokens_per_s) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn run(cmd: RunCommand) -> Result<()> {
    match cmd {
        RunCommand::Generate {
            model,
            prompt,
            max_new_tokens,
            top_k,
            top_p,
            temperature,
            repetition_penalty,
            repetition_penalty_last_n,
            seed,
            stop_words,
            json,
        } => {
            let m = model.load()?;
            let mut session = model.session(m)?;
            let params = GenerateParams {
                sampler: SamplerParams {
                    top_k,
                    top_p,
                    temperature,
                    repetition_penalty,
                    repetition_penalty_last_n,
                    seed,
                },
                max_new_tokens,
                stop_words,
            };
            let mut stdout = std::io::stdout().lock();
            let mut on_piece = |piece: &str| {
                if !json {
                    let _ = stdout.write_all(piece.as_bytes());
                    let _ = stdout.flush();
                }
                true
            };
            let r = generate(&mut session, &prompt, &params, &mut on_piece)?;
            if json {
                let out = json!({
                    "text": r.text,
                    "tokens": r.tokens,
                    "prompt_tokens": r.prompt_tokens,
                    "stop_reason": r.stop_reason.name(),
                    "times": {"prompt_ms": r.times.prompt_ms, "generation_ms": r.times.generation_ms, "total_ms": r.times.total_ms},
                });
                println!("{out}");
            } else {
                println!();
                eprintln!(
                    "[{} prompt tokens, {} generated, stop: {}, {:.1} ms prompt, {:.1} ms generation]",
                    r.prompt_tokens,
                    r.tokens.len(),
                    r.stop_reason.name(),
                    r.times.prompt_ms,
                    r.times.generation_ms
                );
            }
            Ok(())
        }
        RunCommand::Logits {
            model,
            tokens,
            all,
            json: _,
        } => {
            let m = model.load()?;
            let n_vocab = m.spec().n_vocab;
            let mut session = model.session(m)?;
            let logits = session.eval(&tokens, if all { Logits::All } else { Logits::Last })?;
            let rows: Vec<&[f32]> = logits.chunks(n_vocab).collect();
            println!("{}", json!({"n_vocab": n_vocab, "logits": rows}));
            Ok(())
        }
        RunCommand::Tokenize {
            model,
            text,
            no_special,
            json,
        } => {
            let m = model.load()?;
            let ids = m.tokenizer()?.encode(&text, !no_special)?;
            if json {
                println!("{}", json!({"tokens": ids}));
            } else {
                let tok = m.tokenizer()?;
                for id in ids {
                    println!("{id:>8} {:?}", tok.token_text(id).unwrap_or_default());
                }
            }
            Ok(())
        }
        RunCommand::Embed { model, text, json } => {
            let m = model.load()?;
            let ids = m.tokenizer()?.encode(&text, true)?;
            let mut session = model.session(m)?;
            let e = session.embed(&ids)?;
            if json {
                println!("{}", json!({"embedding": e}));
            } else {
                println!(
                    "{}",
                    e.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            Ok(())
        }
        RunCommand::Perplexity { model, file, json } => {
            let m = model.load()?;
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, "read", e))?;
            let tok = m.tokenizer()?;
            let ids = tok.encode(&text, false)?;
            let mut session = model.session(m.clone())?;
            let n_ctx = session.context_length();
            let n_vocab = m.spec().n_vocab;
            if ids.len() < n_ctx {
                return Err(Error::invalid_argument(format!(
                    "{}: {} tokens, fewer than one context of {n_ctx}; use a longer text or a smaller --ctx",
                    file.display(),
                    ids.len()
                )));
            }
            let (mut nll, mut count) = (0f64, 0usize);
            for chunk in ids.chunks_exact(n_ctx) {
                session.reset();
                let mut input = chunk.to_vec();
                // As llama.cpp: the first token of each chunk becomes the BOS when the tokenizer
                // adds one.
                if let (true, Some(bos)) = (tok.adds_bos(), tok.bos()) {
                    input[0] = bos;
                }
                let logits = session.eval(&input, Logits::All)?;
                for pos in n_ctx / 2..n_ctx - 1 {
                    let row = &logits[pos * n_vocab..(pos + 1) * n_vocab];
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let lse = max
                        + row
                            .iter()
                            .map(|&l| (l as f64 - max).exp())
                            .sum::<f64>()
                            .ln();
                    nll += lse - row[chunk[pos + 1] as usize] as f64;
                    count += 1;
                }
            }
            let ppl = (nll / count as f64).exp();
            if json {
                println!(
                    "{}",
                    json!({"perplexity": ppl, "scored_tokens": count, "chunks": ids.len() / n_ctx, "ctx": n_ctx})
                );
            } else {
                println!(
                    "perplexity {ppl:.4} over {count} tokens ({} chunks of {n_ctx})",
                    ids.len() / n_ctx
                );
            }
            Ok(())
        }
        RunCommand::Bench {
            model,
            n_prompt,
            n_gen,
            repetitions,
            json,
        } => {
            let m = model.load()?;
            let n_vocab = m.spec().n_vocab as u32;
            let mut session = model.session(m)?;
            let threads = session.threads();
            // Deterministic pseudo-random tokens, as llama-bench feeds random ids.
            let mut rng = ferrollm::sampling::Rng::new(1234);
            let prompt: Vec<u32> = (0..n_prompt)
                .map(|_| (rng.next_u64() % n_vocab as u64) as u32)
                .collect();
            let (mut pp, mut tg) = (Vec::new(), Vec::new());
            for r in 0..=repetitions {
                if n_prompt > 0 {
                    session.reset();
                    let t = Instant::now();
                    session.eval(&prompt, Logits::Last)?;
                    if r > 0 {
                        pp.push(n_prompt as f64 / t.elapsed().as_secs_f64());
                    }
                }
                if n_gen > 0 {
                    session.reset();
                    let t = Instant::now();
                    let mut next = prompt.first().copied().unwrap_or(0);
                    for _ in 0..n_gen {
                        next = ferrollm::sampling::argmax(session.eval(&[next], Logits::Last)?);
                    }
                    if r > 0 {
                        tg.push(n_gen as f64 / t.elapsed().as_secs_f64());
                    }
                }
            }
            let (pp, tg) = (
                (!pp.is_empty()).then(|| median(pp)),
                (!tg.is_empty()).then(|| median(tg)),
            );
            if json {
                println!(
                    "{}",
                    json!({"model": model.model, "threads": threads, "n_prompt": n_prompt, "n_gen": n_gen,
                           "repetitions": repetitions, "pp_tokens_per_s": pp, "tg_tokens_per_s": tg})
                );
            } else {
                println!("model {} threads {threads}", model.model.display());
                if let Some(pp) = pp {
                    println!("pp{n_prompt}: {pp:.2} tokens/s (median of {repetitions})");
                }
                if let Some(tg) = tg {
                    println!("tg{n_gen}: {tg:.2} tokens/s (median of {repetitions})");
                }
            }
            if ferrollm::profile::enabled() {
                eprint!("{}", ferrollm::profile::report());
            }
            Ok(())
        }
    }
}
