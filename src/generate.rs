//! The generation loop: feed the prompt, then sample one token at a time, streaming text pieces
//! (always valid UTF-8) until an end token, a stop word, the length limit or a cancellation.

use crate::error::{Error, ErrorKind, Result};
use crate::sampling::{Sampler, SamplerParams};
use crate::session::{Logits, Session};
use crate::tokenizer::StreamDecoder;
use std::time::Instant;

/// Settings of one generation (the seed's `GenerationConfig`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerateParams {
    pub sampler: SamplerParams,
    /// Stop after this many new tokens (None: at the end token or when the context is full).
    pub max_new_tokens: Option<usize>,
    /// Stop as soon as the generated text contains one of these; the text returned and streamed
    /// ends just before it.
    pub stop_words: Vec<String>,
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced its end-of-text token.
    EndToken = 0,
    /// `max_new_tokens` were produced, or the context is full.
    MaxLength = 1,
    /// A stop word appeared.
    StopWord = 2,
    /// The streaming callback asked to stop.
    Cancelled = 3,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::EndToken => "end_token",
            StopReason::MaxLength => "max_length",
            StopReason::StopWord => "stop_word",
            StopReason::Cancelled => "cancelled",
        }
    }
}

/// Milliseconds spent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Times {
    pub prompt_ms: f64,
    pub generation_ms: f64,
    pub total_ms: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenerateResult {
    /// The generated text (without the prompt, and without a stop word that ended it).
    pub text: String,
    /// The generated token ids (the end token excluded).
    pub tokens: Vec<u32>,
    /// Number of prompt tokens fed.
    pub prompt_tokens: usize,
    pub stop_reason: StopReason,
    pub times: Times,
}

/// Holds back streamed text that could still turn into a stop word.
struct StopWords<'a> {
    words: &'a [String],
    text: String,
    emitted: usize,
}

impl StopWords<'_> {
    /// Appends a piece; returns the text that is safe to emit and whether a stop word was found.
    fn push(&mut self, piece: &str) -> (String, bool) {
        self.text.push_str(piece);
        let pending = &self.text[self.emitted..];
        if let Some(i) = self
            .words
            .iter()
            .filter(|w| !w.is_empty())
            .filter_map(|w| pending.find(w.as_str()))
            .min()
        {
            let out = pending[..i].to_string();
            self.text.truncate(self.emitted + i);
            self.emitted = self.text.len();
            return (out, true);
        }
        // Keep back the longest suffix that is a proper prefix of a stop word.
        let mut keep = 0;
        for w in self.words {
            for (i, _) in w.char_indices().skip(1) {
                if pending.ends_with(&w[..i]) {
                    keep = keep.max(i);
                }
            }
        }
        let cut = pending.len() - keep;
        let out = pending[..cut].to_string();
        self.emitted += cut;
        (out, false)
    }
    fn flush(&mut self) -> String {
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }
}

/// Generates a continuation of `prompt` after whatever the session already holds. `on_piece`
/// receives each new piece of text; returning false cancels (stop reason `Cancelled`).
pub fn generate(
    session: &mut Session,
    prompt: &str,
    params: &GenerateParams,
    on_piece: &mut dyn FnMut(&str) -> bool,
) -> Result<GenerateResult> {
    let start = Instant::now();
    let model = session.model().clone();
    let tok = model.tokenizer()?;
    let mut sampler = Sampler::new(params.sampler.clone())?;
    let prompt_tokens = tok.encode(prompt, session.tokens().is_empty())?;
    if prompt_tokens.is_empty() {
        return Err(Error::invalid_argument(
            "the prompt is empty: there is nothing to continue",
        ));
    }
    if session.tokens().len() + prompt_tokens.len() >= session.context_length() {
        return Err(Error::new(
            ErrorKind::ContextFull,
            format!(
                "the prompt is {} tokens long; with {} tokens already in the session it does not fit in the context of {} tokens with room to generate",
                prompt_tokens.len(),
                session.tokens().len(),
                session.context_length()
            ),
        ));
    }
    session.eval(&prompt_tokens, Logits::Last)?;
    let prompt_ms = start.elapsed().as_secs_f64() * 1e3;
    let gen_start = Instant::now();
    // The last prompt token gives the first generated piece its context (a leading space).
    let mut decoder = StreamDecoder::with_context(&prompt_tokens[prompt_tokens.len() - 1..]);
    let mut stops = StopWords {
        words: &params.stop_words,
        text: String::new(),
        emitted: 0,
    };
    let mut out_text = String::new();
    let mut tokens = Vec::new();
    let mut emit = |s: String, out_text: &mut String| -> bool {
        if s.is_empty() {
            return true;
        }
        out_text.push_str(&s);
        on_piece(&s)
    };
    let stop_reason = loop {
        if params.max_new_tokens.is_some_and(|m| tokens.len() >= m) {
            break StopReason::MaxLength;
        }
        let next = sampler.sample(session.logits(), session.tokens());
        if Some(next) == tok.eos() {
            break StopReason::EndToken;
        }
        tokens.push(next);
        if let Some(piece) = decoder.push(tok, next)? {
            let (safe, hit) = stops.push(&piece);
            if !emit(safe, &mut out_text) {
                break StopReason::Cancelled;
            }
            if hit {
                break StopReason::StopWord;
            }
        }
        if session.tokens().len() + 1 > session.context_length() {
            break StopReason::MaxLength;
        }
        if params.max_new_tokens.is_some_and(|m| tokens.len() >= m) {
            // The last token's logits are not needed: it joins the context unevaluated and the
            // next evaluation of this session runs it (as llama.cpp's generation loop does).
            session.defer(&[next])?;
            break StopReason::MaxLength;
        }
        session.eval(&[next], Logits::Last)?;
    };
    if matches!(stop_reason, StopReason::EndToken | StopReason::MaxLength) {
        if let Some(piece) = decoder.flush(tok)? {
            let (safe, hit) = stops.push(&piece);
            emit(safe, &mut out_text);
            if hit {
                return finish(
                    out_text,
                    tokens,
                    prompt_tokens.len(),
                    StopReason::StopWord,
                    prompt_ms,
                    gen_start,
                    start,
                );
            }
        }
        let rest = stops.flush();
        emit(rest, &mut out_text);
    }
    finish(
        out_text,
        tokens,
        prompt_tokens.len(),
        stop_reason,
        prompt_ms,
        gen_start,
        start,
    )
}

fn finish(
    text: String,
    tokens: Vec<u32>,
    prompt_tokens: usize,
    stop_reason: StopReason,
    prompt_ms: f64,
    gen_start: Instant,
    start: Instant,
) -> Result<GenerateResult> {
    Ok(GenerateResult {
        text,
        tokens,
        prompt_tokens,
        stop_reason,
        times: Times {
            prompt_ms,
            generation_ms: gen_start.elapsed().as_secs_f64() * 1e3,
            total_ms: start.elapsed().as_secs_f64() * 1e3,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_hold_back_prefixes() {
        let words = vec!["END".to_string()];
        let mut s = StopWords {
            words: &words,
            text: String::new(),
            emitted: 0,
        };
        assert_eq!(s.push("hello E"), ("hello ".to_string(), false));
        assert_eq!(s.push("N"), (String::new(), false));
        assert_eq!(s.push("Dx"), (String::new(), true));
        let mut s = StopWords {
            words: &words,
            text: String::new(),
            emitted: 0,
        };
        assert_eq!(s.push("a E"), ("a ".to_string(), false));
        assert_eq!(s.push("Z"), ("EZ".to_string(), false));
        assert_eq!(s.flush(), "");
    }
}
