//! A SentencePiece-style tokenizer over a byte vocabulary with scores: for GGUF files whose
//! `tokenizer.ggml.model` is "llama" and that carry no `tokenizer.huggingface.json`, and for the
//! vocabularies embedded in legacy files.
//!
//! Encoding follows llama.cpp's `llm_tokenizer_spm`: the text (with a space put in front, as
//! SentencePiece's `add_dummy_prefix` does) is split into UTF-8 characters; repeatedly, the
//! adjacent pair whose concatenation is a token with the highest score (leftmost on ties) is
//! merged; what remains is looked up, and unknown pieces fall back to byte tokens (type 6,
//! `<0xNN>`) or, without those, to the unknown token. Legacy vocabularies of byte-level BPE models
//! (GPT-2 style) have no merge ranks, so for them this is an approximation: pass the model's
//! `tokenizer.json` for exact tokenization.

use crate::error::{Error, Result};
use std::collections::HashMap;

pub struct SpmVocab {
    tokens: Vec<Vec<u8>>,
    scores: Vec<f32>,
    /// Normal tokens by their bytes (byte tokens excluded, so "a" finds the token "a").
    lookup: HashMap<Vec<u8>, u32>,
    /// Byte-fallback tokens by byte value.
    byte_tokens: [Option<u32>; 256],
    unk: Option<u32>,
    /// Tokens decoded as nothing (control tokens such as BOS/EOS).
    hidden: Vec<bool>,
    add_space_prefix: bool,
}

impl SpmVocab {
    /// `kinds[i]`: GGUF token type (1 normal, 2 unknown, 3 control, 6 byte, …).
    pub fn new(
        tokens: Vec<Vec<u8>>,
        scores: Vec<f32>,
        kinds: Vec<i64>,
        add_space_prefix: bool,
    ) -> Result<SpmVocab> {
        if tokens.is_empty() {
            return Err(Error::unsupported("the model's vocabulary is empty"));
        }
        let mut lookup = HashMap::with_capacity(tokens.len());
        let mut byte_tokens = [None; 256];
        let mut unk = None;
        let mut hidden = vec![false; tokens.len()];
        for (i, t) in tokens.iter().enumerate() {
            let kind = kinds.get(i).copied().unwrap_or(1);
            match kind {
                6 if t.len() == 1 => byte_tokens[t[0] as usize] = Some(i as u32),
                2 => {
                    unk.get_or_insert(i as u32);
                    hidden[i] = true;
                }
                3 => hidden[i] = true,
                _ => {
                    lookup.entry(t.clone()).or_insert(i as u32);
                }
            }
        }
        let scores = if scores.len() == tokens.len() {
            scores
        } else {
            vec![0.0; tokens.len()]
        };
        Ok(SpmVocab {
            tokens,
            scores,
            lookup,
            byte_tokens,
            unk,
            hidden,
            add_space_prefix,
        })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.tokens.get(id as usize).map(Vec::as_slice)
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut s = String::with_capacity(text.len() + 1);
        if self.add_space_prefix {
            s.push(' ');
        }
        s.push_str(text);
        let bytes = s.as_bytes();
        // Symbols are byte ranges; merged symbols are marked dead by an empty range.
        let mut sym: Vec<(usize, usize)> = s
            .char_indices()
            .map(|(i, c)| (i, i + c.len_utf8()))
            .collect();
        loop {
            let mut best: Option<(f32, usize, usize)> = None; // (score, left index, right index)
            let mut prev: Option<usize> = None;
            for i in 0..sym.len() {
                if sym[i].0 == sym[i].1 {
                    continue;
                }
                if let Some(p) = prev {
                    let piece = &bytes[sym[p].0..sym[i].1];
                    if let Some(&id) = self.lookup.get(piece) {
                        let score = self.scores[id as usize];
                        if best.is_none_or(|(b, _, _)| score > b) {
                            best = Some((score, p, i));
                        }
                    }
                }
                prev = Some(i);
            }
            let Some((_, l, r)) = best else { break };
            sym[l].1 = sym[r].1;
            sym[r] = (0, 0);
        }
        let mut out = Vec::new();
        for &(a, b) in sym.iter().filter(|(a, b)| a != b) {
            let piece = &bytes[a..b];
            match self.lookup.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for &byte in piece {
                        if let Some(id) = self.byte_tokens[byte as usize]
                            .or_else(|| self.lookup.get(&[byte][..]).copied())
                            .or(self.unk)
                        {
                            out.push(id);
                        }
                    }
                }
            }
        }
        out
    }

    /// The bytes of `ids` (control tokens decode as nothing); with the space prefix, the space
    /// before the first token of the text is removed, as SentencePiece does.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for &id in ids {
            let t = self.tokens.get(id as usize).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "token id {id} is out of range (vocabulary size {})",
                    self.tokens.len()
                ))
            })?;
            if !self.hidden[id as usize] {
                out.extend_from_slice(t);
            }
        }
        if self.add_space_prefix && out.first() == Some(&b' ') {
            out.remove(0);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> SpmVocab {
        let toks: Vec<&[u8]> = vec![
            b"<unk>",
            b"<s>",
            b"</s>",
            b" ",
            b"a",
            b"b",
            b" a",
            b"ab",
            b" ab",
            &[0xe2],
            &[0x82],
            &[0xac],
        ];
        let kinds = vec![2, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6, 6];
        let scores = vec![
            0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -2.0, -3.0, -1.5, 0.0, 0.0, 0.0,
        ];
        SpmVocab::new(
            toks.into_iter().map(<[u8]>::to_vec).collect(),
            scores,
            kinds,
            true,
        )
        .unwrap()
    }

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let v = vocab();
        // " ab": candidates " a" (-2) and "ab" (-3): " a" first, then " ab" (-1.5).
        assert_eq!(v.encode("ab"), vec![8]);
        // "€" is not in the vocabulary: its three UTF-8 bytes.
        assert_eq!(v.encode("b€"), vec![3, 5, 9, 10, 11]);
        assert_eq!(v.decode_bytes(&[1, 8, 2]).unwrap(), b"ab");
    }
}
