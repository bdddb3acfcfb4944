//! Tokenizers, from the best source a model file offers:
//! 1. a Hugging Face `tokenizer.json` (embedded in our GGUF files as `tokenizer.huggingface.json`,
//!    or given as a file) through the `tokenizers` crate, so text is split exactly as transformers
//!    splits it — BOS/EOS are added only where the tokenizer's own post-processor says so;
//! 2. a GGUF byte-level BPE vocabulary (`tokenizer.ggml.model` "gpt2", with merges), rebuilt as a
//!    `tokenizers` BPE with GPT-2's byte-level pre-tokenizer and decoder;
//! 3. a SentencePiece-style vocabulary with scores (`tokenizer.ggml.model` "llama", or the
//!    vocabulary embedded in a legacy file), see [`spm`].
//!
//! For 2 and 3, a BOS is added only when `tokenizer.ggml.add_bos_token` says so (default: for
//! "llama" vocabularies), never for every architecture.
//!
//! Streaming: [`StreamDecoder`] turns generated ids into text pieces that are always valid UTF-8,
//! holding back a token whose bytes end in an incomplete character (the decoder's output ends in
//! U+FFFD) until the next token completes it.

pub mod spm;

use crate::error::{Error, ErrorKind, Result};
use crate::format::{vocab::token_bytes, ModelFile, Value};
use std::path::Path;

enum Kind {
    Hf(Box<tokenizers::Tokenizer>),
    Spm(Box<spm::SpmVocab>),
}

/// A tokenizer for a model.
pub struct Tokenizer {
    kind: Kind,
    bos: Option<u32>,
    eos: Option<u32>,
    /// For vocabulary-built tokenizers: put the BOS in front when asked for special tokens.
    add_bos: bool,
}

fn hf_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Format, format!("{what}: {e}"))
}

impl Tokenizer {
    /// A tokenizer from the text of a Hugging Face `tokenizer.json`; `what` names it in errors.
    pub fn from_hf_json(json: &str, what: &str) -> Result<Tokenizer> {
        let hf: tokenizers::Tokenizer = json.parse().map_err(|e| hf_error(what, e))?;
        Ok(Self::from_hf(hf))
    }

    /// A tokenizer from a `tokenizer.json` file.
    pub fn from_hf_file(path: &Path) -> Result<Tokenizer> {
        let json = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
        Self::from_hf_json(&json, &path.display().to_string())
    }

    fn from_hf(hf: tokenizers::Tokenizer) -> Tokenizer {
        Tokenizer {
            kind: Kind::Hf(Box::new(hf)),
            bos: None,
            eos: None,
            add_bos: false,
        }
    }

    /// Takes the special token ids from the model file's `tokenizer.ggml.bos_token_id` and
    /// `eos_token_id` (which the converter takes from the checkpoint's configuration), never from
    /// guessed token strings.
    pub fn with_special_ids_from(mut self, file: &ModelFile) -> Tokenizer {
        let id = |k: &str| file.metadata.get_u64(k).and_then(|v| u32::try_from(v).ok());
        self.bos = id("tokenizer.ggml.bos_token_id");
        self.eos = id("tokenizer.ggml.eos_token_id");
        self
    }

    /// The tokenizer stored in a model file, if any: `tokenizer.huggingface.json` (GGUF).
    pub fn from_model_file(file: &ModelFile) -> Result<Option<Tokenizer>> {
        let what = |k: &str| format!("{}: {k}", file.path.display());
        if let Some(json) = file.metadata.get_str("tokenizer.huggingface.json") {
            let t = Self::from_hf_json(json, &what("tokenizer.huggingface.json"))?;
            return Ok(Some(t.with_special_ids_from(file)));
        }
        let md = &file.metadata;
        let model = md.get_str("tokenizer.ggml.model");
        let add_bos = md.get_bool("tokenizer.ggml.add_bos_token");
        if let Some(tokens) = md.get_array("tokenizer.ggml.tokens") {
            let strings: Vec<&str> = tokens
                .iter()
                .map(|t| {
                    t.as_str().ok_or_else(|| {
                        hf_error(&what("tokenizer.ggml.tokens"), "not an array of strings")
                    })
                })
                .collect::<Result<_>>()?;
            let kinds: Vec<i64> = md
                .get_array("tokenizer.ggml.token_type")
                .map(|a| a.iter().map(|v| v.as_i64().unwrap_or(1)).collect())
                .unwrap_or_default();
            let mut t = match model {
                Some("gpt2") => Self::from_gguf_bpe(md, &strings, &kinds).map_err(|e| e.context(what("tokenizer.ggml")))?,
                Some("llama") => {
                    let bytes = strings.iter().enumerate().map(|(i, s)| token_bytes("llama", s, kinds.get(i).copied().unwrap_or(1))).collect();
                    let scores = md.get_array("tokenizer.ggml.scores").map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect()).unwrap_or_default();
                    let add_space = md.get_bool("tokenizer.ggml.add_space_prefix").unwrap_or(true);
                    Tokenizer { kind: Kind::Spm(Box::new(spm::SpmVocab::new(bytes, scores, kinds, add_space)?)), bos: None, eos: None, add_bos: add_bos.unwrap_or(true) }
                }
                other => {
                    return Err(Error::unsupported(format!(
                        "{}: tokenizer.ggml.model {other:?} is not supported (gpt2 and llama are); pass a tokenizer.json",
                        file.path.display()
                    )))
                }
            };
            if model == Some("gpt2") {
                t.add_bos = add_bos.unwrap_or(false);
            }
            return Ok(Some(t.with_special_ids_from(file)));
        }
        if let Some(v) = &file.legacy_vocab {
            // llm-rs' embedded vocabulary: raw bytes, scores in GGMF/GGJT files. LLaMA-style
            // vocabularies (SentencePiece) get the space prefix; byte-level ones do not.
            let spm_style = file.architecture() == Some("llama");
            let (kinds, bos, eos) = if spm_style {
                legacy_spm_kinds(&v.tokens)
            } else {
                (vec![1; v.tokens.len()], None, None)
            };
            let vocab = spm::SpmVocab::new(v.tokens.clone(), v.scores.clone(), kinds, spm_style)?;
            let t = Tokenizer {
                kind: Kind::Spm(Box::new(vocab)),
                bos,
                eos,
                add_bos: spm_style,
            };
            // Ids the metadata names (none in llm-rs' files) take precedence.
            let named = t.with_special_ids_from(file);
            return Ok(Some(Tokenizer {
                bos: named.bos.or(bos),
                eos: named.eos.or(eos),
                ..named
            }));
        }
        Ok(None)
    }

    /// GGUF byte-level BPE (`tokenizer.ggml.model` "gpt2"): tokens, merges and control tokens
    /// rebuilt as a `tokenizers` BPE with GPT-2's byte-level pre-tokenizer and decoder.
    fn from_gguf_bpe(
        md: &crate::format::Metadata,
        tokens: &[&str],
        kinds: &[i64],
    ) -> Result<Tokenizer> {
        use tokenizers::models::bpe::{Merges, Vocab, BPE};
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let merges: Merges = md
            .get_array("tokenizer.ggml.merges")
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::unsupported(format!("cannot build the BPE model: {e}")))?;
        let mut hf = tokenizers::Tokenizer::new(bpe);
        hf.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        hf.with_decoder(Some(ByteLevel::default()));
        let specials: Vec<tokenizers::AddedToken> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| matches!(kinds.get(*i), Some(3 | 4)))
            .map(|(_, t)| tokenizers::AddedToken::from(t.to_string(), true))
            .collect();
        hf.add_special_tokens(&specials);
        Ok(Self::from_hf(hf))
    }

    /// Token ids of `text`; with `add_special`, the tokenizer's own special tokens (e.g. LLaMA's
    /// BOS) are added as transformers would.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let mut ids = match &self.kind {
            Kind::Hf(hf) => {
                let enc = hf.encode_fast(text, add_special).map_err(|e| {
                    Error::invalid_argument(format!("cannot tokenize the text: {e}"))
                })?;
                enc.get_ids().to_vec()
            }
            Kind::Spm(v) => v.encode(text),
        };
        if let (true, true, Some(b)) = (add_special, self.add_bos, self.bos) {
            ids.insert(0, b);
        }
        Ok(ids)
    }

    /// The text of `ids` (special tokens included for Hugging Face tokenizers; control tokens of
    /// vocabulary-built ones decode as nothing). Bytes that are not valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match &self.kind {
            Kind::Hf(hf) => hf
                .decode(ids, false)
                .map_err(|e| Error::invalid_argument(format!("cannot decode tokens: {e}"))),
            Kind::Spm(v) => Ok(String::from_utf8_lossy(&v.decode_bytes(ids)?).into_owned()),
        }
    }

    /// Number of tokens the tokenizer knows (added tokens included).
    pub fn vocab_size(&self) -> usize {
        match &self.kind {
            Kind::Hf(hf) => hf.get_vocab_size(true),
            Kind::Spm(v) => v.len(),
        }
    }
    /// True if encoding with special tokens puts the BOS in front (as for LLaMA; not GPT-2).
    pub fn adds_bos(&self) -> bool {
        let with = self.encode("a", true).ok();
        let without = self.encode("a", false).ok();
        match (self.bos, with, without) {
            (Some(b), Some(w), Some(wo)) => w.first() == Some(&b) && wo.first() != Some(&b),
            _ => false,
        }
    }
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    /// The end-of-text token generation stops at.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// The string of one token, as the vocabulary spells it.
    pub fn token_text(&self, id: u32) -> Option<String> {
        match &self.kind {
            Kind::Hf(hf) => hf.id_to_token(id),
            Kind::Spm(v) => v
                .token_bytes(id)
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        }
    }
}

/// Token kinds (GGUF numbering) and BOS/EOS ids of a SentencePiece vocabulary as llm-rs 0.2.15's
/// LLaMA converter writes it, which keeps no token types: control tokens are written as empty
/// strings and byte-fallback tokens `<0xNN>` as the raw byte, so "h" is spelled both by a byte token
/// and by a normal piece. The byte tokens are recognised as a run of 256 tokens holding the bytes
/// 0x00..=0xFF in order (SentencePiece's byte-fallback pieces; ids 3..=258 in LLaMA's
/// vocabulary) and marked as bytes, so text is split into normal pieces as SentencePiece splits
/// it; empty tokens are marked as control tokens. BOS and EOS are SentencePiece's default ids 1
/// and 2 (those of LLaMA, and those llama.cpp's GGJT-era code hard-coded), taken only when the
/// vocabulary has control tokens there.
fn legacy_spm_kinds(tokens: &[Vec<u8>]) -> (Vec<i64>, Option<u32>, Option<u32>) {
    let mut kinds: Vec<i64> = tokens
        .iter()
        .map(|t| if t.is_empty() { 3 } else { 1 })
        .collect();
    let byte_run = (0..tokens.len().saturating_sub(255))
        .find(|&k| (0..256).all(|b| tokens[k + b].as_slice() == [b as u8]));
    if let Some(k) = byte_run {
        kinds[k..k + 256].iter_mut().for_each(|kind| *kind = 6);
    }
    let control = |id: usize| (kinds.get(id) == Some(&3)).then_some(id as u32);
    let (bos, eos) = (control(1), control(2));
    (kinds, bos, eos)
}

/// Incremental detokenizer for streaming; see the module documentation.
#[derive(Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }
    /// A decoder whose first pieces are decoded after `context` (e.g. the end of the prompt), so
    /// that a leading space of the first generated token is kept.
    pub fn with_context(context: &[u32]) -> Self {
        StreamDecoder {
            ids: context.to_vec(),
            prefix_offset: 0,
            read_offset: context.len(),
        }
    }
    /// Adds a token; returns the new complete text it makes available, if any.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let text = tok.decode(&self.ids[self.prefix_offset..])?;
        if text.len() > prefix.len()
            && !text.ends_with('\u{FFFD}')
            && text.is_char_boundary(prefix.len())
        {
            let piece = text[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(Some(piece))
        } else {
            Ok(None)
        }
    }
    /// Whatever is still held back (at the end of generation), lossily decoded.
    pub fn flush(&mut self, tok: &Tokenizer) -> Result<Option<String>> {
        let prefix = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let text = tok.decode(&self.ids[self.prefix_offset..])?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(
            (text.len() > prefix.len() && text.is_char_boundary(prefix.len()))
                .then(|| text[prefix.len()..].to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_spm_vocabulary_kinds() {
        // As llm-rs writes LLaMA's vocabulary: unknown, two control tokens (empty), the 256 byte
        // tokens as raw bytes, then pieces (one of which is the single character "h").
        let mut tokens: Vec<Vec<u8>> = vec![" \u{2047} ".into(), vec![], vec![]];
        tokens.extend((0..=255u8).map(|b| vec![b]));
        tokens.extend([b" h".to_vec(), b"h".to_vec()]);
        let (kinds, bos, eos) = legacy_spm_kinds(&tokens);
        assert_eq!((bos, eos), (Some(1), Some(2)));
        assert_eq!(&kinds[..4], &[1, 3, 3, 6]);
        assert_eq!(&kinds[258..], &[6, 1, 1]);
        // Without the byte run or the control tokens, nothing is guessed.
        let (kinds, bos, eos) = legacy_spm_kinds(&[b"a".to_vec(), b"b".to_vec()]);
        assert_eq!((kinds, bos, eos), (vec![1, 1], None, None));
    }
}
