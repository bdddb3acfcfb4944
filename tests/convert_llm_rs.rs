//! Files that ferrollm's converter writes in llm-rs' legacy containers (GGJT v3 and GGML, F32 and
//! F16), loaded and run by the real llm-rs 0.2.15 and compared with transformers (issue #4).
//!
//! Optional: needs `FERROLLM_LLMRS_PYTHON`, a Python with `llm_rs` 0.2.15 and — for llm-rs' own
//! converter — transformers 4.x and torch (see `tools/legacy/make_legacy_fixtures.py` for the
//! environment). Skipped otherwise. Run it with `-- --nocapture` to see the result table.
//!
//! For every fixture of `tests/fixtures/hf` the converter writes the four files; a refusal
//! (`ErrorKind::Unsupported`: grouped-query attention, a RoPE base other than 10000, a
//! feed-forward width no `n_mult` gives, a GGML file for a vocabulary with scores) skips that file
//! and is listed. The reference is transformers in float32 as recorded in the fixture's
//! `reference.json` (`tools/fixtures/make_checkpoints.py`); nothing expected comes from ferrollm.
//!
//! # What llm-rs does, and what each check relies on
//!
//! Facts read from llm-rs 0.2.15 (`src/model_base.rs`) and the `llm` crate it wraps
//! (rustformers/llm at `129b84a`: `crates/llm-base/src/tokenizer/{embedded,huggingface}.rs`,
//! `inference_session.rs`, `util.rs`, `crates/models/*/src/lib.rs`):
//!
//! 1. **Tokenization.** `Model.generate` takes text only (no token ids), and the embedded
//!    vocabulary's tokenizer is neither BPE nor SentencePiece: it picks the split of the raw UTF-8
//!    bytes (no normalization, no prefix space) that maximizes the sum of the squared token
//!    lengths, and a split that needs token id 0 fails (id 0 marks "no token" in its table).
//!    `tokenize(text)` adds no BOS, but `generate` prepends id 1 *whatever the architecture*
//!    (llm-rs' "BOS for every architecture"). So llm-rs' tokenization differs from transformers'
//!    because of llm-rs; the table reports how often it agrees (`tok=hf`, against
//!    `ids_no_special`; `prompt`: the ids `generate` feeds, `[1] + tokenize(prompt)`, against
//!    `input_ids`), and the test requires llm-rs' tokenization of our file to equal that
//!    algorithm (`llm_tokenize`) run over the bytes the fixture's tokenizer.json gives each token
//!    (`legacy_token_bytes`), which fails if our vocabulary spells a token the texts need wrongly
//!    (`tok=rule`).
//! 2. **Greedy ids.** Given `tokenizer_name_or_path` naming a tokenizer.json file, llm uses that
//!    Hugging Face tokenizer (tokenizers 0.13) instead of the file's vocabulary: `generate`
//!    encodes the prompt and post-processes it (nothing is added without a post-processor) and
//!    streams the new part of `decode(all ids)`. A WordLevel tokenizer that maps the word `t<id>`
//!    to `<id>` (`ids_tokenizer`) therefore feeds llm-rs exactly transformers' `input_ids` and
//!    reads the generated ids back (`greedy`): the weights and hyperparameters of our file as
//!    llm-rs computes with them, free of its tokenizer. Greedy is `top_k = 1` with no repetition
//!    penalty, the key/value cache in f32, one thread.
//! 3. **End token.** llm-rs stops when it samples its end token, which each llm model looks up
//!    by a hard-coded string (`<|endoftext|>` for GPT-2, GPT-J, GPT-NeoX and MPT, `</s>` for LLaMA
//!    and BLOOM; the WordLevel tokenizer gives the fixture's EOS id that name), while the reference
//!    masks EOS (`min_new_tokens`). The expected continuation is transformers' greedy ids up to the
//!    first step at which its unmasked argmax was EOS (`steps_where_unmasked_argmax_was_eos`),
//!    then the stop reason `EndToken`; all 16 ids and `MaxLength` otherwise.
//! 4. **Text.** `decode(ids)` with our file's vocabulary concatenates the token bytes and refuses
//!    bytes that are not UTF-8 (`generate` would drop them silently), so the test spells
//!    transformers' greedy ids with llm-rs in the longest spans it can decode (an undecodable
//!    token alone) and requires exactly the spans the tokenizer.json's bytes give
//!    (`spell_rule`; `decode=bytes`). Against transformers' text (`text vs transformers`): `=`
//!    exact, else `≈` when every stretch of transformers' text between replacement characters
//!    appears in llm-rs' text in order — transformers replaces invalid UTF-8 its own way (the
//!    byte-level decoder per invalid sequence; SentencePiece's byte-fallback decoder turns a whole
//!    run of byte tokens into one U+FFFD per token when the run is not UTF-8, valid ASCII bytes in
//!    it included), and SentencePiece decoders drop the space their encoder prepends, which
//!    llm-rs keeps (one leading space is ignored for them). llm-rs' own files show `=` where ours
//!    show `≈` because its vocabulary stores U+FFFD for tokens that are partial UTF-8 — the lossy
//!    vocabulary that also breaks its tokenization of non-ASCII text (`tok=rule` below 22/22).
//! 5. **llm-rs itself differs from transformers** where llm's MPT reads `clip_kqv` but never
//!    applies it. For MPT with `clip_qkv` the F32 greedy ids are compared with llm-rs on a file
//!    written by llm-rs' own converter instead (`vs llm-rs' own`), which must then exist.
//! 6. **llm-rs' own converter** (`llm_rs.convert.models.*Converter`, the tokenizer from the same
//!    folder — MPT's would download one) loads checkpoints in float16, rounding the norms and
//!    biases our files keep in f32; the checkpoint is reloaded in float32 before its `convert`, so
//!    its F16 file holds the values ours does (2-D weights as f16, the rest f32, by its own type
//!    rule), and an F32 file is written with its f16 rule switched off. Its names, transforms,
//!    hyperparameters and vocabulary are its own. Its LLaMA converter needs a SentencePiece
//!    `tokenizer.model` (`LlamaTokenizer`), which the fixtures do not have (`n/a`). With
//!    transformers 4.x it reads a transformers-5 config.json without `rotary_pct` as the default
//!    0.25 (`gptneox-sequential`: n_rot 3 of 12, on which ggml's RoPE aborts). Its files are a
//!    reference only where its F32 file reproduces transformers (or for item 5).
//! 7. **F16.** ggml's f16 matrix products round the activations to f16, so an F16 file's greedy
//!    ids are compared with transformers for information only, and required to equal llm-rs on
//!    llm-rs' own F16 file where that file is a reference (item 6).
//! 8. llm-rs (ggml) runs out of its context pool when one process loads several models: one
//!    Python process per file and mode.

mod common;
mod convert_common;

use convert_common::{fixtures, legacy_token_bytes, read_json};
use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};
use ferrollm::ErrorKind;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Runs one file in llm-rs. Arguments: architecture, path, mode, job (JSON). Mode `ids`: greedy
/// generation through the WordLevel tokenizer `job.tokenizer`; mode `embedded`: tokenization of
/// `job.texts`, the spelling of `job.ids` and a greedy generation, with the file's vocabulary.
const LLMRS_RUN: &str = r#"
import json, sys
import llm_rs
from llm_rs import GenerationConfig, Precision, SessionConfig
arch, path, mode, job = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
cls = {"gpt2": llm_rs.Gpt2, "gptj": llm_rs.GptJ, "gptneox": llm_rs.GptNeoX, "llama": llm_rs.Llama,
       "mpt": llm_rs.Mpt, "bloom": llm_rs.Bloom}[arch]
session = SessionConfig(threads=1, context_length=64, keys_memory_type=Precision.FP32,
                        values_memory_type=Precision.FP32)
greedy = GenerationConfig(top_k=1, top_p=1.0, temperature=1.0, repetition_penalty=1.0,
                          max_new_tokens=job["max_new_tokens"])

def attempt(f, *args):
    try:
        return {"ok": f(*args)}
    except BaseException as e:  # a Rust panic arrives as pyo3's PanicException
        return {"error": f"{type(e).__name__}: {e}"}

def generate(m, prompt):
    r = m.generate(prompt, greedy)
    return {"text": r.text, "stop_reason": str(r.stop_reason)}

def spell(m, ids):
    pieces, i = [], 0
    while i < len(ids):
        for j in range(len(ids), i, -1):
            try:
                pieces.append(m.decode(ids[i:j]))
                i = j
                break
            except Exception:
                pass
        else:
            pieces.append(None)
            i += 1
    return pieces

if mode == "ids":
    m = cls(path, session, job["tokenizer"])
    out = {"generate": attempt(generate, m, job["prompt"])}
else:
    m = cls(path, session)
    out = {"tokenize": [attempt(m.tokenize, t) for t in job["texts"]],
           "spell": spell(m, job["ids"]),
           "generate": attempt(generate, m, job["prompt"])}
print(json.dumps(out))
"#;

/// llm-rs' own converter on a checkpoint folder (see item 6). Arguments: architecture, folder,
/// output folder. Prints `{"f16": path, "f32": path}` or `{"error": why}`.
const LLMRS_CONVERT: &str = r#"
import json, os, sys
import torch
torch.set_num_threads(1)
from llm_rs.convert.models import (Gpt2Converter, GptJConverter, GptNeoXConverter, LlamaConverter,
                                   MPTConverter, BloomConverter)
from llm_rs.convert.models._base import BaseAdapter, FileTypes
arch, hf, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
cls = {"gpt2": Gpt2Converter, "gptj": GptJConverter, "gptneox": GptNeoXConverter,
       "llama": LlamaConverter, "mpt": MPTConverter, "bloom": BloomConverter}[arch]
out = {}
try:
    conv = cls(hf, hf)
    conv.model = type(conv.model).from_pretrained(hf, torch_dtype=torch.float32).eval()
    path = os.path.join(out_dir, "llm-rs-f16.bin")
    conv.convert(path)
    out["f16"] = path
    conv._filter_f16_weights = lambda name, data: False
    conv.write_file_type = lambda f, file_type=None: BaseAdapter.write_file_type(
        conv, f, FileTypes.FP32)
    path = os.path.join(out_dir, "llm-rs-f32.bin")
    conv.convert(path)
    out["f32"] = path
except Exception as e:
    while e.__cause__ or e.__context__:  # transformers hides some causes behind an ImportError
        e = e.__cause__ or e.__context__
    out["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
print(json.dumps(out))
"#;

/// The files written per fixture.
const FILES: [(Container, GgmlType); 4] = [
    (Container::Ggjt, GgmlType::F32),
    (Container::Ggml, GgmlType::F32),
    (Container::Ggjt, GgmlType::F16),
    (Container::Ggml, GgmlType::F16),
];

/// llm 129b84a's embedded tokenizer (`EmbeddedTokenizer::tokenize`, without BOS) over `vocab`
/// (the bytes of each token id): the split of `text`'s bytes with the largest sum of squared token
/// lengths, later ids winning for equal bytes; `Err` where llm fails (the best split ends in id 0).
fn llm_tokenize(vocab: &[Vec<u8>], text: &str) -> Result<Vec<u32>, String> {
    let mut id_of: HashMap<&[u8], u32> = HashMap::new();
    let mut max_len = 0;
    for (id, bytes) in vocab.iter().enumerate() {
        max_len = max_len.max(bytes.len());
        id_of.insert(bytes, id as u32);
    }
    let b = text.as_bytes();
    let mut score = vec![0usize; b.len() + 1];
    let mut prev = vec![0u32; b.len() + 1];
    for i in 0..b.len() {
        for len in 1..=(b.len() - i).min(max_len) {
            if let Some(&id) = id_of.get(&b[i..i + len]) {
                let s = score[i] + len * len;
                if score[i + len] < s {
                    score[i + len] = s;
                    prev[i + len] = id;
                }
            }
        }
    }
    let mut ids = Vec::new();
    let mut i = b.len();
    while i > 0 {
        let id = prev[i];
        if id == 0 {
            return Err(format!("no split ends at byte {i}"));
        }
        ids.push(id);
        i -= vocab[id as usize].len();
    }
    ids.reverse();
    Ok(ids)
}

/// The name llm's model of `arch` looks its end token up by.
fn end_token_name(arch: &str) -> &'static str {
    match arch {
        "llama" | "bloom" => "</s>",
        _ => "<|endoftext|>",
    }
}

/// The word for token `id` in the WordLevel tokenizer of [`ids_tokenizer`].
fn word(id: u64, eos: u64, arch: &str) -> String {
    if id == eos {
        end_token_name(arch).to_string()
    } else {
        format!("t{id}")
    }
}

/// A tokenizer.json (tokenizers 0.13 format) mapping the word `t<id>` to `<id>` for every id of
/// the model, splitting on whitespace, adding nothing and decoding to the words joined by spaces.
fn ids_tokenizer(n_vocab: u64, eos: u64, arch: &str) -> Json {
    let vocab: serde_json::Map<String, Json> = (0..n_vocab)
        .map(|i| (word(i, eos, arch), json!(i)))
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
}

fn ids(j: &Json) -> Vec<u64> {
    j.as_array()
        .unwrap_or_else(|| panic!("not an array: {j}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// Greedy ids, and whether llm-rs stopped at its end token after them.
type Greedy = (Vec<u64>, bool);

/// A file run in llm-rs.
struct Run {
    label: String,
    ours: bool,
    dtype: GgmlType,
    /// Greedy ids read back through the WordLevel tokenizer, and whether llm-rs stopped at its end
    /// token; or why not.
    greedy: Result<Greedy, String>,
    /// The `embedded` mode's output, or why it failed.
    embedded: Result<Json, String>,
}

fn run_file(
    python: &str,
    arch: &str,
    path: &Path,
    ids_job: &Json,
    embedded_job: &Json,
    eos: u64,
) -> (Result<Greedy, String>, Result<Json, String>) {
    let run = |mode: &str, job: &Json| -> Result<Json, String> {
        let path = path.display().to_string();
        let job = job.to_string();
        let out = common::run_python_with(python, LLMRS_RUN, &[arch, &path, mode, &job])?;
        let last = out.lines().last().unwrap_or_default();
        serde_json::from_str(last).map_err(|e| format!("unreadable output ({e}): {out}"))
    };
    let greedy = run("ids", ids_job).and_then(|out| {
        let g = &out["generate"];
        let Some(ok) = g.get("ok") else {
            return Err(g["error"].as_str().unwrap_or_default().to_string());
        };
        let text = ok["text"].as_str().unwrap();
        let generated = text
            .split_whitespace()
            .map(|w| match w.strip_prefix('t').and_then(|n| n.parse().ok()) {
                Some(id) => Ok(id),
                None if w == end_token_name(arch) => Ok(eos),
                None => Err(format!("unexpected word {w:?} in {text:?}")),
            })
            .collect::<Result<Vec<u64>, String>>()?;
        let stop = ok["stop_reason"].as_str().unwrap_or_default();
        Ok((generated, stop.contains("EndToken")))
    });
    let embedded = run("embedded", embedded_job);
    (greedy, embedded)
}

/// The spans in which the `spell` of [`LLMRS_RUN`] decodes `ids` when token `i` is `vocab[i]`:
/// from each position the longest run of tokens whose bytes are UTF-8, or None for a token that
/// starts no such run.
fn spell_rule(vocab: &[Vec<u8>], ids: &[u64]) -> Vec<Option<String>> {
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let found = (i + 1..=ids.len()).rev().find_map(|j| {
            let bytes: Vec<u8> = ids[i..j]
                .iter()
                .flat_map(|&id| vocab[id as usize].iter().copied())
                .collect();
            String::from_utf8(bytes).ok().map(|s| (j, s))
        });
        match found {
            Some((j, s)) => {
                pieces.push(Some(s));
                i = j;
            }
            None => {
                pieces.push(None);
                i += 1;
            }
        }
    }
    pieces
}

/// `=`, `≈` or `≠`: llm-rs' spelling (pieces; None for an undecodable token) against
/// transformers' text (item 4). `≈`: every stretch of transformers' text between replacement
/// characters appears in llm-rs' text, in order.
fn compare_text(pieces: &[Option<String>], reference: &str, spm: bool) -> &'static str {
    let text: String = pieces
        .iter()
        .map(|p| p.as_deref().unwrap_or("\u{fffd}"))
        .collect();
    if pieces.iter().all(Option::is_some)
        && (text == reference || (spm && text.strip_prefix(' ') == Some(reference)))
    {
        return "=";
    }
    let mut rest = text.as_str();
    for stretch in reference.split('\u{fffd}').filter(|s| !s.is_empty()) {
        match rest.find(stretch) {
            Some(at) => rest = &rest[at + stretch.len()..],
            None => return "≠",
        }
    }
    "≈"
}

/// `k/n`: how many of `got` (per item) equal `want`.
fn count(got: &[bool]) -> String {
    format!("{}/{}", got.iter().filter(|&&b| b).count(), got.len())
}

/// Compares greedy ids with the expected continuation: `16/16`, `3/3+end`, or `5/16 ≠` (the
/// length of the common prefix); true when equal (same ids, same stop).
fn compare_greedy(got: &Greedy, want: &Greedy) -> (String, bool) {
    let common = got
        .0
        .iter()
        .zip(&want.0)
        .take_while(|(a, b)| a == b)
        .count();
    let equal = got == want;
    let end = if want.1 { "+end" } else { "" };
    let mark = if equal { "" } else { " ≠" };
    (format!("{common}/{}{end}{mark}", want.0.len()), equal)
}

#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn print(&self, header: &[&str]) {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect();
            eprintln!("| {} |", padded.join(" | "));
        };
        line(header.iter().map(|h| h.to_string()).collect());
        line(widths.iter().map(|w| "-".repeat(*w)).collect());
        for r in &self.rows {
            line(r.clone());
        }
    }
}

#[test]
fn llm_rs_runs_converted_legacy_files_like_transformers() {
    let Ok(python) = std::env::var("FERROLLM_LLMRS_PYTHON") else {
        eprintln!(
            "SKIPPED: set FERROLLM_LLMRS_PYTHON to a Python with llm_rs 0.2.15 (and transformers \
             4.x with torch for llm-rs' own converter) to run this"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut table = Table::default();
    let mut notes: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut checked = 0;
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let reference = read_json(&dir.join("reference.json"));
        let tokenizer = read_json(&dir.join("tokenizer.json"));
        let summary = &reference["config_summary"];
        let out_dir = tmp.path().join(&name);
        std::fs::create_dir_all(&out_dir).unwrap();

        // 1. Our files; a refusal skips the file.
        let conv = Converter::open(&dir).unwrap();
        let arch = conv.architecture().to_string();
        let mut files: Vec<(String, PathBuf, GgmlType)> = Vec::new();
        for (container, dtype) in FILES {
            let label = format!("{} {}", container.name(), dtype.name());
            let path = out_dir.join(format!(
                "ferrollm-{}-{}.bin",
                container.name(),
                dtype.name()
            ));
            let params = ConvertParams { container, dtype };
            match conv.convert(&path, &params, &mut |_| true) {
                Ok(p) => files.push((label, p, dtype)),
                Err(e) if e.kind() == ErrorKind::Unsupported => {
                    let mut row = vec![name.clone(), label, "refused".to_string()];
                    row.resize(10, "-".to_string());
                    table.rows.push(row);
                    let why = e
                        .message()
                        .rsplit_once(".bin: ")
                        .map_or(e.message(), |x| x.1);
                    let note = format!("{name} {}: refused: {why}", container.name());
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                Err(e) => panic!("{name}: converting to {label}: {e}"),
            }
        }
        if files.is_empty() {
            continue;
        }

        // 2. llm-rs' own conversion of the same checkpoint.
        let own = common::run_python_with(
            &python,
            LLMRS_CONVERT,
            &[
                &arch,
                &dir.display().to_string(),
                &out_dir.display().to_string(),
            ],
        )
        .and_then(|out| {
            let last = out.lines().last().unwrap_or_default();
            serde_json::from_str::<Json>(last).map_err(|e| format!("{e}: {out}"))
        });
        let own = match own {
            Ok(j) if j.get("error").is_none() => j,
            Ok(j) => {
                notes.push(format!("{name}: llm-rs' converter fails: {}", j["error"]));
                j
            }
            Err(e) => {
                notes.push(format!("{name}: llm-rs' converter fails: {e}"));
                json!({})
            }
        };
        for dtype in [GgmlType::F32, GgmlType::F16] {
            if let Some(p) = own[dtype.name()].as_str() {
                files.push((format!("llm-rs {}", dtype.name()), PathBuf::from(p), dtype));
            }
        }

        // 3. The references.
        let prompt = reference["prompt"].as_str().unwrap();
        let input_ids = ids(&reference["input_ids"]);
        let greedy = &reference["greedy"];
        let greedy_ids = ids(&greedy["ids"]);
        let eos_ids = ids(&greedy["eos_masked_ids"]);
        assert_eq!(eos_ids.len(), 1, "{name}: one EOS id");
        let eos = eos_ids[0];
        let first_eos = ids(&greedy["steps_where_unmasked_argmax_was_eos"])
            .into_iter()
            .min()
            .map(|s| s as usize);
        let expected = match first_eos {
            Some(s) if s < greedy_ids.len() => (greedy_ids[..s].to_vec(), true),
            _ => (greedy_ids.clone(), false),
        };
        let n_vocab = summary["vocab_size"].as_u64().unwrap();
        let tokenizer_path = out_dir.join("ids-tokenizer.json");
        std::fs::write(
            &tokenizer_path,
            ids_tokenizer(n_vocab, eos, &arch).to_string(),
        )
        .unwrap();
        let words: Vec<String> = input_ids.iter().map(|&i| word(i, eos, &arch)).collect();
        let ids_job = json!({
            "tokenizer": tokenizer_path.display().to_string(),
            "prompt": words.join(" "),
            "max_new_tokens": greedy_ids.len(),
        });
        let samples = reference["tokenization"].as_array().unwrap();
        let mut texts = vec![prompt.to_string()];
        texts.extend(
            samples
                .iter()
                .map(|s| s["text"].as_str().unwrap().to_string()),
        );
        let embedded_job = json!({
            "texts": texts, "ids": greedy_ids, "prompt": prompt,
            "max_new_tokens": greedy_ids.len(),
        });
        let mut vocab = vec![Vec::new(); n_vocab as usize];
        for (id, bytes) in legacy_token_bytes(&tokenizer) {
            vocab[id] = bytes;
        }
        let by_rule: Vec<Result<Vec<u32>, String>> =
            texts.iter().map(|t| llm_tokenize(&vocab, t)).collect();
        let spelled_by_rule = spell_rule(&vocab, &greedy_ids);
        let spm = tokenizer["model"]["byte_fallback"]
            .as_bool()
            .unwrap_or(false);
        let clip_ignored = arch == "mpt" && summary["clip_qkv"].as_f64().is_some();

        // 4. Run every file.
        let runs: Vec<Run> = files
            .iter()
            .map(|(label, path, dtype)| {
                let (greedy, embedded) =
                    run_file(&python, &arch, path, &ids_job, &embedded_job, eos);
                Run {
                    label: label.clone(),
                    ours: !label.starts_with("llm-rs"),
                    dtype: *dtype,
                    greedy,
                    embedded,
                }
            })
            .collect();
        for run in runs.iter().filter(|r| !r.ours) {
            if let Err(e) = run.greedy.as_ref().and(run.embedded.as_ref()) {
                notes.push(format!("{name} {}: llm-rs fails on it: {e}", run.label));
            }
        }
        let own_run = |dtype: GgmlType| runs.iter().find(|r| !r.ours && r.dtype == dtype);
        // llm-rs' own files are a reference where its F32 file reproduces transformers (item 6),
        // or where llm-rs itself cannot (item 5).
        let own_is_reference = clip_ignored
            || own_run(GgmlType::F32)
                .and_then(|r| r.greedy.as_ref().ok())
                .is_some_and(|g| *g == expected);

        // 5. Compare.
        for run in &runs {
            let ctx = format!("{name} {}", run.label);
            let mut fail = |what: String| {
                if run.ours {
                    failures.push(format!("{ctx}: {what}"));
                }
            };
            let mut row = vec![name.clone(), run.label.clone()];
            let embedded = match &run.embedded {
                Ok(e) => e.clone(),
                Err(e) => {
                    fail(format!("llm-rs failed: {e}"));
                    json!({})
                }
            };
            // Tokenization.
            let tokenized: Vec<Result<Vec<u32>, String>> = embedded["tokenize"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|t| match t.get("ok") {
                            Some(ok) => Ok(ids(ok).into_iter().map(|i| i as u32).collect()),
                            None => Err(t["error"].to_string()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if tokenized.len() == texts.len() {
                let fed: Option<Vec<u64>> = tokenized[0].as_ref().ok().map(|t| {
                    std::iter::once(1)
                        .chain(t.iter().map(|&i| u64::from(i)))
                        .collect()
                });
                row.push(
                    if fed.as_ref() == Some(&input_ids) {
                        "="
                    } else {
                        "≠"
                    }
                    .into(),
                );
                let like_hf: Vec<bool> = samples
                    .iter()
                    .zip(&tokenized[1..])
                    .map(|(s, t)| {
                        t.as_ref()
                            .ok()
                            .map(|t| t.iter().map(|&i| u64::from(i)).collect::<Vec<u64>>())
                            == Some(ids(&s["ids_no_special"]))
                    })
                    .collect();
                row.push(count(&like_hf));
                let like_rule: Vec<bool> = tokenized
                    .iter()
                    .zip(&by_rule)
                    .map(|(got, want)| got.is_ok() == want.is_ok() && (got.is_err() || got == want))
                    .collect();
                row.push(count(&like_rule));
                for ((text, ok), (got, want)) in texts
                    .iter()
                    .zip(&like_rule)
                    .zip(tokenized.iter().zip(&by_rule))
                {
                    if !ok {
                        fail(format!(
                            "llm-rs tokenizes {text:?} as {got:?}; llm's algorithm over \
                             tokenizer.json's bytes gives {want:?}"
                        ));
                    }
                }
            } else {
                row.extend(["-".into(), "-".into(), "-".into()]);
            }
            // Greedy ids.
            match &run.greedy {
                Ok(g) => {
                    let (cell, equal) = compare_greedy(g, &expected);
                    row.push(cell);
                    let own = own_run(run.dtype).filter(|o| o.ours != run.ours);
                    let own_greedy = own.and_then(|o| o.greedy.as_ref().ok());
                    row.push(match (own, own_greedy) {
                        (None, _) => "n/a".into(),
                        (Some(_), None) => "failed".into(),
                        (Some(_), Some(o)) if o == g => "=".into(),
                        (Some(_), Some(o)) => compare_greedy(g, o).0,
                    });
                    if run.dtype == GgmlType::F32 && !clip_ignored && !equal {
                        fail(format!(
                            "greedy ids {g:?} (end token: {}), transformers {expected:?}",
                            g.1
                        ));
                    }
                    let must_match_own = run.ours
                        && ((clip_ignored && run.dtype == GgmlType::F32)
                            || (own_is_reference && run.dtype == GgmlType::F16));
                    if must_match_own && own_greedy != Some(g) {
                        fail(format!(
                            "greedy ids {g:?}; llm-rs on its own conversion: {own_greedy:?}"
                        ));
                    }
                }
                Err(e) => {
                    fail(format!("llm-rs greedy run failed: {e}"));
                    row.extend(["failed".into(), "-".into()]);
                }
            }
            // Text.
            match embedded["spell"].as_array() {
                Some(a) => {
                    let pieces: Vec<Option<String>> =
                        a.iter().map(|p| p.as_str().map(str::to_string)).collect();
                    let bytes_ok = pieces == spelled_by_rule;
                    row.push(if bytes_ok { "=" } else { "≠" }.into());
                    if !bytes_ok {
                        fail(format!(
                            "llm-rs decodes transformers' greedy ids as {pieces:?}; \
                             tokenizer.json's bytes give {spelled_by_rule:?}"
                        ));
                    }
                    let mark = compare_text(&pieces, greedy["text"].as_str().unwrap(), spm);
                    if mark == "≠" {
                        fail(format!(
                            "llm-rs decodes transformers' greedy ids as {pieces:?}, transformers \
                             as {:?}",
                            greedy["text"]
                        ));
                    }
                    row.push(mark.into());
                }
                None => row.extend(["-".into(), "-".into()]),
            }
            // llm-rs' own use: generate from the text prompt with the file's vocabulary.
            row.push(match embedded.get("generate") {
                Some(g) if g.get("ok").is_some() => {
                    let stop = g["ok"]["stop_reason"].as_str().unwrap_or_default();
                    stop.rsplit('.').next().unwrap_or(stop).to_string()
                }
                Some(g) => {
                    fail(format!("llm-rs generate failed: {}", g["error"]));
                    "failed".into()
                }
                None => "-".into(),
            });
            if run.ours {
                checked += 1;
            }
            table.rows.push(row);
        }
    }

    eprintln!();
    table.print(&[
        "fixture",
        "file",
        "prompt",
        "tok=hf",
        "tok=rule",
        "greedy vs transformers",
        "vs llm-rs' own",
        "decode=bytes",
        "text vs transformers",
        "generate",
    ]);
    eprintln!(
        "\nprompt: the ids llm-rs' generate feeds ([1] + tokenize(prompt)) = transformers' \
         input_ids; tok=hf: tokenize(text) = transformers' ids_no_special, over the fixture's \
         tokenization texts; tok=rule: = llm's tokenizer algorithm over tokenizer.json's token \
         bytes (prompt + texts); greedy: llm-rs fed transformers' input_ids, common prefix / \
         expected ids (+end: transformers' unmasked argmax is EOS next, llm-rs must stop there); \
         vs llm-rs' own: the same on the file llm-rs' converter writes from the checkpoint; \
         decode=bytes: llm-rs' decode of transformers' greedy ids = tokenizer.json's bytes for \
         them (decoded in the same spans); text vs transformers: that decode vs transformers' \
         text (= exact, ≈ its stretches between U+FFFD appear in order); \
         generate: llm-rs' own generate(prompt) with the file's vocabulary, stop reason"
    );
    for n in &notes {
        eprintln!("{n}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 20, "only {checked} converted files checked");
    eprintln!("llm-rs ran {checked} files converted by ferrollm");
}
