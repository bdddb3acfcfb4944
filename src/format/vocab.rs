//! Vocabularies across containers: the byte vocabulary of legacy files from the string vocabulary
//! of GGUF (`tokenizer.ggml.*`).
//!
//! Facts relied on (llama.cpp `src/llama-vocab.cpp`, `gguf-py/gguf/constants.py`):
//! - `tokenizer.ggml.model` "gpt2": byte-level BPE; each token string spells its bytes through
//!   GPT-2's `bytes_to_unicode` table (the printable bytes `!`..`~`, `¡`..`¬`, `®`..`ÿ` stand for
//!   themselves, the other 68 bytes for U+0100 onwards, in byte order).
//! - `tokenizer.ggml.model` "llama": SentencePiece; `▁` (U+2581) stands for a space and byte tokens
//!   (token type 6) are spelled `<0xNN>`.
//! - token types: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte. Control and
//!   user-defined tokens are literal text in every model.

use super::{LegacyVocab, Metadata, Value};
use crate::error::{Error, ErrorKind, Result};

/// GPT-2's `bytes_to_unicode`, inverted: the byte each mapped character stands for.
fn gpt2_char_to_byte(c: char) -> Option<u8> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let cp = c as u32;
    if cp < 256 && printable(cp) {
        return Some(cp as u8);
    }
    // The n-th non-printable byte (in byte order) maps to U+0100 + n.
    let n = cp.checked_sub(0x100)?;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(n as usize)
        .map(|b| b as u8)
}

/// The raw bytes of one token of a GGUF vocabulary.
pub fn token_bytes(model: &str, token: &str, token_type: i64) -> Vec<u8> {
    const CONTROL: i64 = 3;
    const USER_DEFINED: i64 = 4;
    const BYTE: i64 = 6;
    if token_type == CONTROL || token_type == USER_DEFINED {
        return token.as_bytes().to_vec();
    }
    match model {
        "gpt2" => {
            let mapped: Option<Vec<u8>> = token.chars().map(gpt2_char_to_byte).collect();
            mapped.unwrap_or_else(|| token.as_bytes().to_vec())
        }
        "llama" => {
            if token_type == BYTE {
                if let Some(b) = token
                    .strip_prefix("<0x")
                    .and_then(|t| t.strip_suffix('>'))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    return vec![b];
                }
            }
            token.replace('\u{2581}', " ").into_bytes()
        }
        _ => token.as_bytes().to_vec(),
    }
}

/// The legacy byte vocabulary (with scores, zero where the file has none) of GGUF metadata.
pub fn legacy_vocab_from_metadata(metadata: &Metadata) -> Result<LegacyVocab> {
    let missing = || {
        Error::new(
            ErrorKind::Unsupported,
            "the model has no tokenizer.ggml.tokens vocabulary to store in a legacy file",
        )
    };
    let tokens = metadata
        .get_array("tokenizer.ggml.tokens")
        .ok_or_else(missing)?;
    let model = metadata.get_str("tokenizer.ggml.model").unwrap_or("");
    let types = metadata.get_array("tokenizer.ggml.token_type");
    let scores = metadata.get_array("tokenizer.ggml.scores");
    let mut vocab = LegacyVocab {
        tokens: Vec::with_capacity(tokens.len()),
        scores: Vec::with_capacity(tokens.len()),
    };
    for (i, t) in tokens.iter().enumerate() {
        let text = t.as_str().ok_or_else(|| {
            Error::new(
                ErrorKind::Format,
                format!("tokenizer.ggml.tokens[{i}] is not a string"),
            )
        })?;
        let ty = types
            .and_then(|ts| ts.get(i))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        vocab.tokens.push(token_bytes(model, text, ty));
        vocab.scores.push(
            scores
                .and_then(|s| s.get(i))
                .and_then(Value::as_f64)
                .unwrap_or(0.0) as f32,
        );
    }
    Ok(vocab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_byte_map() {
        assert_eq!(token_bytes("gpt2", "Ġhello", 1), b" hello");
        assert_eq!(token_bytes("gpt2", "Ċ", 1), b"\n");
        assert_eq!(token_bytes("gpt2", "!", 1), b"!");
        // U+0100 is byte 0; 'ÿ' is byte 0xff itself; a partial UTF-8 byte survives.
        assert_eq!(token_bytes("gpt2", "\u{100}", 1), [0u8]);
        assert_eq!(token_bytes("gpt2", "ÿ", 1), [0xffu8]);
        assert_eq!(token_bytes("gpt2", "<|endoftext|>", 3), b"<|endoftext|>");
    }

    #[test]
    fn llama_bytes_and_spaces() {
        assert_eq!(token_bytes("llama", "<0xE2>", 6), [0xe2u8]);
        assert_eq!(token_bytes("llama", "\u{2581}the", 1), b" the");
        assert_eq!(token_bytes("llama", "<s>", 3), b"<s>");
    }
}
