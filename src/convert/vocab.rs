//! The vocabulary of a checkpoint, from `tokenizer.json` (+ `tokenizer_config.json`,
//! `special_tokens_map.json`, `config.json`), embedded as llama.cpp's converter embeds it.
//!
//! Facts relied on (llama.cpp `convert_hf_to_gguf.py` / `conversion/base.py`: `get_vocab_base`,
//! `_set_vocab_gpt2`, `_set_vocab_llama_hf`; `gguf-py/gguf/vocab.py`: `SpecialVocab`,
//! `LlamaHfVocab`; `src/llama-vocab.cpp`):
//! - A byte-level BPE (`model.type == "BPE"` without `byte_fallback`) is `tokenizer.ggml.model =
//!   "gpt2"`: tokens are the vocabulary strings as they are (byte-level alphabet), with
//!   `tokenizer.ggml.merges` ("a b" strings; pairs given as lists are joined with a space, a space
//!   inside a part written as U+0120) and a `tokenizer.ggml.pre` naming the pre-tokenizer regex.
//!   llama.cpp picks `pre` by hashing the token ids of a test string; we pick it from the
//!   `pre_tokenizer` in tokenizer.json: a lone `ByteLevel` with its regex is llama.cpp's "gpt-2"
//!   (also the regex of "mpt" and "olmo"), BLOOM's `Split` + `ByteLevel` is "bloom", LLaMA 3's
//!   `Split` is "llama-bpe"; anything else is "default".
//! - A BPE with `byte_fallback` (SentencePiece converted to tokenizer.json: LLaMA, Mistral) is
//!   `"llama"`: tokens keep `▁`, `<0xXX>` tokens are type BYTE, and `tokenizer.ggml.scores` rank
//!   merges (llama.cpp's SentencePiece tokenizer merges the pair whose result has the highest
//!   score). llama.cpp's `LlamaHfVocab` writes -1000 for every score, which makes its tokenizer
//!   merge left to right; we write `-rank` of the first merge producing each token (0 for tokens no
//!   merge produces, -1000 for added tokens and padding, as `_create_vocab_sentencepiece` does),
//!   which reproduces BPE's merge order. `add_space_prefix` follows the tokenizer's `Prepend("▁")`
//!   normalizer or `Metaspace` pre-tokenizer.
//! - Token types: 1 normal, 2 unknown (the `unk_token` of a "llama" vocabulary), 3 control (added
//!   tokens marked special, or looking special: `<|…|>`, `<pad>`, `<mask>`, …), 4 user defined
//!   (other added tokens; `▁` in them becomes a space), 5 unused (padding), 6 byte.
//! - The list is padded to config.json's `vocab_size` with `[PAD{i}]` (type unused) where no token
//!   has the id; a token id at or past `vocab_size` is an error (llama.cpp asserts the same).
//! - Special tokens (`bos`, `eos`, `unk`, `sep`, `pad`, `mask`): the `{typ}_token` of
//!   tokenizer_config.json (a string or `{"content": …}`), else of special_tokens_map.json, found by
//!   content among tokenizer.json's added tokens (then its vocabulary); else config.json's
//!   `{typ}_token_id`. Ids outside the vocabulary are dropped.
//! - `add_bos_token`/`add_eos_token`: from the `post_processor` (a `TemplateProcessing` whose single
//!   template starts/ends with the BOS/EOS token; a `ByteLevel` one adds neither), else from
//!   tokenizer_config.json.
//! - `tokenizer.chat_template` from tokenizer_config.json's `chat_template` or
//!   `chat_template.jinja`; the whole tokenizer.json as `tokenizer.huggingface.json`.

use super::config::HfConfig;
use crate::error::{Error, IoContext, Result};
use crate::format::{Metadata, Value, ValueType};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::Path;

/// llama.cpp token types.
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// Which tokenizer family the vocabulary belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// Byte-level BPE (GPT-2 style): llama.cpp's "gpt2".
    ByteLevelBpe,
    /// SentencePiece-style BPE with byte fallback: llama.cpp's "llama".
    SentencePieceBpe,
}

/// A vocabulary ready to embed.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub kind: VocabKind,
    /// `tokenizer.ggml.pre` (byte-level BPE only).
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    /// Scores (SentencePiece-style only).
    pub scores: Option<Vec<f32>>,
    /// Merges (byte-level BPE only).
    pub merges: Option<Vec<String>>,
    /// (`bos`, id), … in the order `bos, eos, unk, sep, pad, mask`.
    pub special: Vec<(&'static str, u32)>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    pub chat_template: Option<String>,
    /// The text of tokenizer.json.
    pub hf_json: String,
}

const SPECIAL_TYPES: [&str; 6] = ["bos", "eos", "unk", "sep", "pad", "mask"];

fn special_key(typ: &str) -> &'static str {
    match typ {
        "bos" => "tokenizer.ggml.bos_token_id",
        "eos" => "tokenizer.ggml.eos_token_id",
        "unk" => "tokenizer.ggml.unknown_token_id",
        "sep" => "tokenizer.ggml.seperator_token_id", // sic: llama.cpp's spelling
        "pad" => "tokenizer.ggml.padding_token_id",
        "mask" => "tokenizer.ggml.mask_token_id",
        _ => unreachable!(),
    }
}

fn read_json(path: &Path) -> Result<Option<Json>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).at(path, "read")?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::format(path, format!("is not valid JSON: {e}")))
}

/// Does the token look like a control token although not marked special (llama.cpp's
/// `does_token_look_special`)?
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

fn is_byte_token(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && b[3].is_ascii_hexdigit()
        && b[4].is_ascii_hexdigit()
}

struct Added {
    id: usize,
    content: String,
    special: bool,
}

impl Vocab {
    /// Loads the vocabulary of the model folder `dir` for an embedding of `vocab_size` rows.
    /// Returns `None` when the folder has no tokenizer.json.
    pub fn load(dir: &Path, config: &HfConfig, vocab_size: usize) -> Result<Option<Vocab>> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Ok(None);
        }
        let hf_json = std::fs::read_to_string(&path).at(&path, "read")?;
        let tok: Json = serde_json::from_str(&hf_json)
            .map_err(|e| Error::format(&path, format!("is not valid JSON: {e}")))?;
        let tc = read_json(&dir.join("tokenizer_config.json"))?;
        let stm = read_json(&dir.join("special_tokens_map.json"))?;
        let mut v = Self::build(&path, &tok, tc.as_ref(), stm.as_ref(), config, vocab_size)?;
        v.hf_json = hf_json;
        if v.chat_template.is_none() {
            let jinja = dir.join("chat_template.jinja");
            if jinja.is_file() {
                v.chat_template = Some(std::fs::read_to_string(&jinja).at(&jinja, "read")?);
            }
        }
        Ok(Some(v))
    }

    fn build(
        path: &Path,
        tok: &Json,
        tc: Option<&Json>,
        stm: Option<&Json>,
        config: &HfConfig,
        vocab_size: usize,
    ) -> Result<Vocab> {
        let bad = |msg: String| Error::format(path, msg);
        let model = tok
            .get("model")
            .and_then(Json::as_object)
            .ok_or_else(|| bad("has no `model` object".into()))?;
        let model_type = model.get("type").and_then(Json::as_str).unwrap_or("BPE");
        if model_type != "BPE" {
            return Err(Error::unsupported(format!(
                "{}: tokenizer model type {model_type:?} is not supported (only BPE: byte-level, or SentencePiece-style with byte fallback)",
                path.display()
            )));
        }
        let byte_fallback = model
            .get("byte_fallback")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let kind = if byte_fallback {
            VocabKind::SentencePieceBpe
        } else {
            VocabKind::ByteLevelBpe
        };
        let vocab = model
            .get("vocab")
            .and_then(Json::as_object)
            .ok_or_else(|| bad("has no `model.vocab` object".into()))?;

        // Token ids -> text.
        let mut slots: Vec<Option<String>> = vec![None; vocab_size];
        let place = |slots: &mut Vec<Option<String>>,
                     text: &str,
                     id: Option<u64>|
         -> Result<usize> {
            let id = id.ok_or_else(|| bad(format!("token {text:?} has no valid id")))?;
            let i = usize::try_from(id).ok().filter(|&i| i < vocab_size).ok_or_else(|| {
                bad(format!(
                    "token {text:?} has id {id}, but config.json's vocab_size is {vocab_size} (the embedding has that many rows)"
                ))
            })?;
            match &slots[i] {
                Some(prev) if prev != text => Err(bad(format!(
                    "tokens {prev:?} and {text:?} both have id {i}"
                ))),
                _ => {
                    slots[i] = Some(text.to_string());
                    Ok(i)
                }
            }
        };
        for (text, id) in vocab {
            place(&mut slots, text, id.as_u64())?;
        }
        let mut added = Vec::new();
        for a in tok
            .get("added_tokens")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let content = a
                .get("content")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("an added token has no `content`".into()))?;
            let id = place(&mut slots, content, a.get("id").and_then(Json::as_u64))?;
            added.push(Added {
                id,
                content: content.to_string(),
                special: a.get("special").and_then(Json::as_bool).unwrap_or(false),
            });
        }

        // Merges, as "a b" strings.
        let merges: Vec<String> = match model.get("merges") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|m| match m {
                    Json::String(s) => Ok(s.clone()),
                    Json::Array(pair) if pair.len() == 2 => {
                        let part = |p: &Json| -> Result<String> {
                            p.as_str()
                                .map(|s| s.replace(' ', "\u{120}"))
                                .ok_or_else(|| bad(format!("merge {m} is not a pair of strings")))
                        };
                        Ok(format!("{} {}", part(&pair[0])?, part(&pair[1])?))
                    }
                    _ => Err(bad(format!(
                        "merge {m} is neither \"a b\" nor [\"a\", \"b\"]"
                    ))),
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(bad("`model.merges` is not a list".into())),
        };

        let unk_content = model.get("unk_token").and_then(Json::as_str);
        let added_by_id: HashMap<usize, &Added> = added.iter().map(|a| (a.id, a)).collect();
        let mut tokens = Vec::with_capacity(vocab_size);
        let mut types = Vec::with_capacity(vocab_size);
        for (i, slot) in slots.iter().enumerate() {
            let Some(text) = slot else {
                tokens.push(format!("[PAD{i}]"));
                types.push(token_type::UNUSED);
                continue;
            };
            let (text, ty) = match kind {
                VocabKind::ByteLevelBpe => match added_by_id.get(&i) {
                    Some(a) if a.special || looks_special(text) => {
                        (text.clone(), token_type::CONTROL)
                    }
                    Some(_) => (text.replace('\u{2581}', " "), token_type::USER_DEFINED),
                    None => (text.clone(), token_type::NORMAL),
                },
                VocabKind::SentencePieceBpe => {
                    if is_byte_token(text) {
                        (text.clone(), token_type::BYTE)
                    } else if Some(text.as_str()) == unk_content {
                        (text.clone(), token_type::UNKNOWN)
                    } else {
                        match added_by_id.get(&i) {
                            Some(a) if a.special || looks_special(text) => {
                                (text.clone(), token_type::CONTROL)
                            }
                            Some(_) => (text.replace('\u{2581}', " "), token_type::USER_DEFINED),
                            None => (text.clone(), token_type::NORMAL),
                        }
                    }
                }
            };
            tokens.push(text);
            types.push(ty);
        }

        let scores = match kind {
            VocabKind::ByteLevelBpe => None,
            VocabKind::SentencePieceBpe => {
                let index: HashMap<&str, usize> = slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.as_deref().map(|s| (s, i)))
                    .collect();
                let mut scores = vec![0f32; vocab_size];
                let mut ranked = vec![false; vocab_size];
                for (rank, m) in merges.iter().enumerate() {
                    let Some((a, b)) = m.split_once(' ') else {
                        continue;
                    };
                    let joined = format!("{a}{b}").replace('\u{120}', " ");
                    if let Some(&i) = index.get(joined.as_str()) {
                        if !ranked[i] {
                            ranked[i] = true;
                            scores[i] = -(rank as f32);
                        }
                    }
                }
                for (i, ty) in types.iter().enumerate() {
                    if matches!(
                        *ty,
                        token_type::UNUSED | token_type::CONTROL | token_type::USER_DEFINED
                    ) {
                        scores[i] = -1000.0;
                    }
                }
                Some(scores)
            }
        };

        // Special tokens.
        let content_of = |j: Option<&Json>, typ: &str| -> Option<String> {
            match j?.get(format!("{typ}_token"))? {
                Json::String(s) => Some(s.clone()),
                Json::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let id_of_content = |c: &str| -> Option<usize> {
            added
                .iter()
                .find(|a| a.content == c)
                .map(|a| a.id)
                .or_else(|| vocab.get(c).and_then(Json::as_u64).map(|i| i as usize))
        };
        let template = tok
            .get("post_processor")
            .map(post_processor_flags)
            .unwrap_or_default();
        let mut special = Vec::new();
        for typ in SPECIAL_TYPES {
            let mut content = content_of(tc, typ).or_else(|| content_of(stm, typ));
            if content.is_none() && tc.is_none() && stm.is_none() {
                content = match typ {
                    "bos" => template.first.clone(),
                    "eos" => template.last.clone(),
                    _ => None,
                };
            }
            let id = match content.as_deref().and_then(id_of_content) {
                Some(id) => Some(id as u64),
                None => config
                    .opt_usize(&[&format!("{typ}_token_id")])
                    .ok()
                    .flatten()
                    .map(|i| i as u64),
            };
            match id {
                Some(id) if id < vocab_size as u64 => special.push((typ, id as u32)),
                Some(id) => log::warn!(
                    "{}: {typ} token id {id} is outside the vocabulary of {vocab_size} tokens; not recorded",
                    path.display()
                ),
                None => {}
            }
        }
        let bos_content = content_of(tc, "bos").or_else(|| content_of(stm, "bos"));
        let eos_content = content_of(tc, "eos").or_else(|| content_of(stm, "eos"));
        let config_flag = |k: &str| tc.and_then(|t| t.get(k)).and_then(Json::as_bool);
        let add_bos = match (&template.kind, &template.first) {
            (PostKind::Template, Some(first)) => {
                Some(bos_content.as_deref().is_none_or(|b| b == first))
            }
            (PostKind::ByteLevel, _) => Some(false),
            _ => config_flag("add_bos_token"),
        };
        let add_eos = match (&template.kind, &template.last) {
            (PostKind::Template, Some(last)) => {
                Some(eos_content.as_deref().is_none_or(|e| e == last))
            }
            (PostKind::ByteLevel, _) => Some(false),
            _ => config_flag("add_eos_token"),
        };
        let add_bos = add_bos.or_else(|| config_flag("add_bos_token"));
        let add_eos = add_eos.or_else(|| config_flag("add_eos_token"));

        let add_space_prefix = match kind {
            VocabKind::ByteLevelBpe => None,
            VocabKind::SentencePieceBpe => {
                Some(config_flag("add_prefix_space").unwrap_or_else(|| prepends_space(tok)))
            }
        };
        let pre = match kind {
            VocabKind::ByteLevelBpe => {
                Some(pre_tokenizer_name(tok.get("pre_tokenizer")).to_string())
            }
            VocabKind::SentencePieceBpe => None,
        };
        let chat_template = tc
            .and_then(|t| t.get("chat_template"))
            .and_then(Json::as_str)
            .map(str::to_string);

        Ok(Vocab {
            kind,
            pre,
            tokens,
            types,
            scores,
            merges: (kind == VocabKind::ByteLevelBpe).then_some(merges),
            special,
            add_bos,
            add_eos,
            add_space_prefix,
            chat_template,
            hf_json: String::new(),
        })
    }

    /// Appends the `tokenizer.*` keys, in llama.cpp's order.
    pub fn add_to(&self, md: &mut Metadata) {
        let strings = |v: &[String]| {
            Value::Array(
                ValueType::String,
                v.iter().map(|s| Value::String(s.clone())).collect(),
            )
        };
        match self.kind {
            VocabKind::ByteLevelBpe => {
                md.set("tokenizer.ggml.model", Value::String("gpt2".into()));
                md.set(
                    "tokenizer.ggml.pre",
                    Value::String(self.pre.clone().unwrap_or_else(|| "default".into())),
                );
            }
            VocabKind::SentencePieceBpe => {
                md.set("tokenizer.ggml.model", Value::String("llama".into()));
                md.set("tokenizer.ggml.pre", Value::String("default".into()));
            }
        }
        md.set("tokenizer.ggml.tokens", strings(&self.tokens));
        if let Some(scores) = &self.scores {
            md.set(
                "tokenizer.ggml.scores",
                Value::Array(
                    ValueType::F32,
                    scores.iter().map(|&s| Value::F32(s)).collect(),
                ),
            );
        }
        md.set(
            "tokenizer.ggml.token_type",
            Value::Array(
                ValueType::I32,
                self.types.iter().map(|&t| Value::I32(t)).collect(),
            ),
        );
        if let Some(merges) = &self.merges {
            md.set("tokenizer.ggml.merges", strings(merges));
        }
        for &(typ, id) in &self.special {
            md.set(special_key(typ), Value::U32(id));
        }
        if let Some(b) = self.add_bos {
            md.set("tokenizer.ggml.add_bos_token", Value::Bool(b));
        }
        if let Some(b) = self.add_eos {
            md.set("tokenizer.ggml.add_eos_token", Value::Bool(b));
        }
        if let Some(b) = self.add_space_prefix {
            md.set("tokenizer.ggml.add_space_prefix", Value::Bool(b));
        }
        if let Some(t) = &self.chat_template {
            md.set("tokenizer.chat_template", Value::String(t.clone()));
        }
        md.set(
            "tokenizer.huggingface.json",
            Value::String(self.hf_json.clone()),
        );
    }
}

#[derive(Default, Debug, PartialEq)]
enum PostKind {
    #[default]
    None,
    ByteLevel,
    Template,
}

#[derive(Default, Debug)]
struct PostFlags {
    kind: PostKind,
    /// Content of the special token a single sequence starts / ends with.
    first: Option<String>,
    last: Option<String>,
}

/// What the `post_processor` adds around a single sequence (llama.cpp's crude reading of
/// `TemplateProcessing`: only templates of more than one piece count).
fn post_processor_flags(pp: &Json) -> PostFlags {
    let list: Vec<&Json> = match pp.get("processors").and_then(Json::as_array) {
        Some(ps) => ps.iter().collect(),
        None => vec![pp],
    };
    let mut flags = PostFlags::default();
    for p in list {
        match p.get("type").and_then(Json::as_str) {
            Some("ByteLevel") if flags.kind == PostKind::None => flags.kind = PostKind::ByteLevel,
            Some("TemplateProcessing") => {
                let single = p
                    .get("single")
                    .and_then(Json::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                flags.kind = PostKind::Template;
                if single.len() > 1 {
                    let special = |j: &Json| {
                        j.get("SpecialToken")?
                            .get("id")?
                            .as_str()
                            .map(str::to_string)
                    };
                    flags.first = special(&single[0]);
                    flags.last = special(&single[single.len() - 1]);
                }
            }
            _ => {}
        }
    }
    flags
}

/// Whether a SentencePiece-style tokenizer puts `▁` in front of the text.
fn prepends_space(tok: &Json) -> bool {
    fn walk(j: &Json, f: &dyn Fn(&Json) -> bool) -> bool {
        if f(j) {
            return true;
        }
        ["normalizers", "pretokenizers"].iter().any(|k| {
            j.get(*k)
                .and_then(Json::as_array)
                .is_some_and(|items| items.iter().any(|i| walk(i, f)))
        })
    }
    let prepend = |j: &Json| {
        j.get("type").and_then(Json::as_str) == Some("Prepend")
            && j.get("prepend").and_then(Json::as_str) == Some("\u{2581}")
    };
    let metaspace = |j: &Json| {
        j.get("type").and_then(Json::as_str) == Some("Metaspace")
            && match j.get("prepend_scheme").and_then(Json::as_str) {
                Some(s) => s != "never",
                None => j
                    .get("add_prefix_space")
                    .and_then(Json::as_bool)
                    .unwrap_or(true),
            }
    };
    tok.get("normalizer").is_some_and(|n| walk(n, &prepend))
        || tok
            .get("pre_tokenizer")
            .is_some_and(|p| walk(p, &metaspace))
}

/// llama.cpp's pre-tokenizer name for a byte-level BPE's `pre_tokenizer`.
fn pre_tokenizer_name(pre: Option<&Json>) -> &'static str {
    let Some(pre) = pre else { return "default" };
    fn ty(j: &Json) -> &str {
        j.get("type").and_then(Json::as_str).unwrap_or("")
    }
    let regex = |j: &Json| {
        j.get("pattern")
            .and_then(|p| p.get("Regex").or_else(|| p.get("String")))
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string()
    };
    match ty(pre) {
        "ByteLevel" if pre.get("use_regex").and_then(Json::as_bool).unwrap_or(true) => "gpt-2",
        "Sequence" => {
            let items = pre
                .get("pretokenizers")
                .and_then(Json::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            match items {
                [split, byte_level]
                    if ty(split) == "Split"
                        && ty(byte_level) == "ByteLevel"
                        && !byte_level
                            .get("use_regex")
                            .and_then(Json::as_bool)
                            .unwrap_or(true) =>
                {
                    let r = regex(split);
                    if r.contains("…。，") {
                        "bloom"
                    } else if r.contains("\\p{N}{1,3}")
                        && r.contains("(?i:'s|'t|'re|'ve|'m|'ll|'d)")
                    {
                        "llama-bpe"
                    } else {
                        "default"
                    }
                }
                _ => "default",
            }
        }
        _ => "default",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn cfg(j: Json) -> HfConfig {
        HfConfig::parse(PathBuf::from("config.json"), &j.to_string()).unwrap()
    }

    #[test]
    fn byte_level_vocab() {
        let tok = json!({
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġa": 3},
                      "merges": [["a", "b"], "Ġ a"]},
            "added_tokens": [{"id": 4, "content": "<|endoftext|>", "special": true},
                             {"id": 5, "content": "hello▁x", "special": false}],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
            "post_processor": {"type": "ByteLevel"}
        });
        let tc = json!({"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>"}, "add_bos_token": true});
        let v = Vocab::build(
            &PathBuf::from("t.json"),
            &tok,
            Some(&tc),
            None,
            &cfg(json!({"bos_token_id": 50256})),
            8,
        )
        .unwrap();
        assert_eq!(
            v.tokens,
            [
                "a",
                "b",
                "ab",
                "Ġa",
                "<|endoftext|>",
                "hello x",
                "[PAD6]",
                "[PAD7]"
            ]
        );
        assert_eq!(v.types, [1, 1, 1, 1, 3, 4, 5, 5]);
        assert_eq!(v.merges.as_deref().unwrap(), ["a b", "Ġ a"]);
        assert_eq!(v.pre.as_deref(), Some("gpt-2"));
        assert_eq!(v.special, [("bos", 4), ("eos", 4)]);
        assert_eq!(v.add_bos, Some(false)); // the ByteLevel post-processor wins, as in llama.cpp
    }

    #[test]
    fn sentencepiece_vocab() {
        let tok = json!({
            "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
                      "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "▁": 4, "t": 5, "▁t": 6, "he": 7, "h": 8, "e": 9},
                      "merges": ["▁ t", "h e"]},
            "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                             {"id": 1, "content": "<s>", "special": true},
                             {"id": 2, "content": "</s>", "special": true}],
            "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace"}]},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]}
        });
        let tc = json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_eos_token": false});
        let v = Vocab::build(
            &PathBuf::from("t.json"),
            &tok,
            Some(&tc),
            None,
            &cfg(json!({})),
            11,
        )
        .unwrap();
        assert_eq!(v.types, [2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 5]);
        assert_eq!(v.scores.as_ref().unwrap()[6], 0.0);
        assert_eq!(v.scores.as_ref().unwrap()[7], -1.0);
        assert_eq!(v.scores.as_ref().unwrap()[10], -1000.0);
        assert_eq!(v.special, [("bos", 1), ("eos", 2), ("unk", 0)]);
        assert_eq!((v.add_bos, v.add_eos), (Some(true), Some(false)));
        assert_eq!(v.add_space_prefix, Some(true));
    }

    #[test]
    fn ids_past_the_vocabulary_are_an_error() {
        let tok = json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 5}, "merges": []}});
        let e = Vocab::build(
            &PathBuf::from("t.json"),
            &tok,
            None,
            None,
            &cfg(json!({})),
            4,
        )
        .unwrap_err();
        assert!(e.message().contains("\"b\" has id 5"), "{e}");
    }

    #[test]
    fn pre_tokenizer_names() {
        let bl = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": use_regex});
        assert_eq!(pre_tokenizer_name(Some(&bl(true))), "gpt-2");
        assert_eq!(pre_tokenizer_name(None), "default");
        let split = |re: &str| {
            json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false}, bl(false)]})
        };
        let bloom = " ?[^(\\s|[.,!?\u{2026}\u{3002}\u{ff0c}\u{3001}\u{0964}\u{06d4}\u{060c}])]+";
        assert_eq!(pre_tokenizer_name(Some(&split(bloom))), "bloom");
        let llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
        assert_eq!(pre_tokenizer_name(Some(&split(llama3))), "llama-bpe");
        assert_eq!(pre_tokenizer_name(Some(&split("\\w+"))), "default");
    }
}
