//! Tokenizers: Hugging Face `tokenizer.json` (embedded in our GGUF files as
//! `tokenizer.huggingface.json`, or given as a file) through the `tokenizers` crate, so text is
//! split exactly as transformers splits it — BOS/EOS are added only where the tokenizer's own
//! post-processor says so.
//!
//! Streaming: [`StreamDecoder`] turns generated ids into text pieces that are always valid UTF-8,
//! holding back a token whose bytes end in an incomplete character (the decoder's output ends in
//! U+FFFD) until the next token completes it.

use crate::error::{Error, ErrorKind, Result};
use crate::format::ModelFile;
use std::path::Path;

/// A tokenizer for a model.
pub struct Tokenizer {
    hf: Box<tokenizers::Tokenizer>,
    bos: Option<u32>,
    eos: Option<u32>,
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
            hf: Box::new(hf),
            bos: None,
            eos: None,
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
        let Some(json) = file.metadata.get_str("tokenizer.huggingface.json") else {
            return Ok(None);
        };
        let t = Self::from_hf_json(
            json,
            &format!("{}: tokenizer.huggingface.json", file.path.display()),
        )?;
        Ok(Some(t.with_special_ids_from(file)))
    }

    /// Token ids of `text`; with `add_special`, the tokenizer's own special tokens (e.g. LLaMA's
    /// BOS) are added as transformers would.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .hf
            .encode_fast(text, add_special)
            .map_err(|e| Error::invalid_argument(format!("cannot tokenize the text: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids` (special tokens included).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.hf
            .decode(ids, false)
            .map_err(|e| Error::invalid_argument(format!("cannot decode tokens: {e}")))
    }

    /// Number of tokens the tokenizer knows (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.hf.get_vocab_size(true)
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
        self.hf.id_to_token(id)
    }
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
