//! Sessions: a KV cache and a thread pool over a shared [`Model`]; feeds tokens and returns logits
//! or embeddings.

use crate::error::{Error, ErrorKind, Result};
use crate::model::forward::{self, KvCache, RopeOverride, Scratch};
use crate::model::{KvType, Model};
use crate::pool::Pool;
use std::sync::Arc;

/// Settings of a session.
#[derive(Clone, Debug)]
pub struct SessionParams {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Tokens fed per forward pass while evaluating a prompt.
    pub batch_size: usize,
    /// Context length in tokens (0: the model's training context).
    pub context_length: usize,
    pub kv_type: KvType,
    /// Overrides the model's rope frequency scale (positions are multiplied by it).
    pub rope_frequency_scale: Option<f32>,
    /// Overrides the model's rope frequency base (theta).
    pub rope_frequency_base: Option<f32>,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            threads: 0,
            batch_size: 512,
            context_length: 0,
            kv_type: KvType::F16,
            rope_frequency_scale: None,
            rope_frequency_base: None,
        }
    }
}

/// Which logits `eval` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    None,
    /// Those of the last token fed.
    Last,
    /// Those of every token fed, one row each.
    All,
}

/// One conversation with a model: used by one thread at a time.
pub struct Session {
    model: Arc<Model>,
    params: SessionParams,
    kv: KvCache,
    /// Every token of the context: the first `evaluated` are in the KV cache, the rest were
    /// appended by [`Session::defer`] and run first by the next evaluation.
    history: Vec<u32>,
    evaluated: usize,
    pool: Pool,
    scratch: Scratch,
    /// The final hidden states of the last evaluation's rows; kept, like `logits`, so that the
    /// per-token loop allocates nothing.
    hidden: Vec<f32>,
    /// The logits of the last evaluation.
    logits: Vec<f32>,
}

impl Session {
    pub fn new(model: Arc<Model>, params: SessionParams) -> Result<Session> {
        if params.batch_size == 0 {
            return Err(Error::invalid_argument("batch_size must be at least 1"));
        }
        let n_ctx = if params.context_length == 0 {
            model.spec().n_ctx_train
        } else {
            params.context_length
        };
        if n_ctx > 1 << 20 {
            return Err(Error::invalid_argument(format!(
                "context_length {n_ctx} is larger than 1048576"
            )));
        }
        if model
            .weights()
            .position_embd
            .as_ref()
            .is_some_and(|p| n_ctx > p.rows)
        {
            return Err(Error::invalid_argument(format!(
                "context_length {n_ctx} exceeds the model's {} learned positions",
                model.weights().position_embd.as_ref().map_or(0, |p| p.rows)
            )));
        }
        for (name, v) in [
            ("rope_frequency_scale", params.rope_frequency_scale),
            ("rope_frequency_base", params.rope_frequency_base),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return Err(Error::invalid_argument(format!(
                    "{name} must be a positive number"
                )));
            }
        }
        let threads = match params.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = Pool::new(threads)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start worker threads: {e}")))?;
        let kv = KvCache::new(model.spec(), n_ctx, params.kv_type);
        Ok(Session {
            model,
            params,
            kv,
            // Room for the whole context up front (small next to the KV cache): the per-token
            // loop never grows it.
            history: Vec::with_capacity(n_ctx),
            evaluated: 0,
            pool,
            scratch: Scratch::default(),
            hidden: Vec::new(),
            logits: Vec::new(),
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }
    /// Tokens in the context so far (including deferred ones).
    pub fn tokens(&self) -> &[u32] {
        &self.history
    }
    /// Worker threads of this session.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
    pub fn context_length(&self) -> usize {
        self.kv.n_ctx()
    }
    /// Forgets every token fed so far.
    pub fn reset(&mut self) {
        self.history.clear();
        self.evaluated = 0;
        self.logits.clear();
    }

    /// The logits the last [`Session::eval`] returned (empty after [`Session::reset`] or a
    /// `Logits::None` evaluation).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Appends `tokens` to the context without running them through the model yet: the next
    /// evaluation runs them first, in the same batch as its own tokens. Generation defers the last
    /// token it samples, whose logits nobody needs unless the conversation goes on.
    pub fn defer(&mut self, tokens: &[u32]) -> Result<()> {
        self.check(tokens)?;
        self.history.extend_from_slice(tokens);
        Ok(())
    }

    fn check(&self, tokens: &[u32]) -> Result<()> {
        let n_vocab = self.model.spec().n_vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::invalid_argument(format!(
                "token id {bad} is out of range (vocabulary size {n_vocab})"
            )));
        }
        let needed = self.history.len() + tokens.len();
        if needed > self.kv.n_ctx() {
            return Err(Error::new(
                ErrorKind::ContextFull,
                format!(
                    "{} tokens do not fit: {} already in the context of {} tokens",
                    tokens.len(),
                    self.history.len(),
                    self.kv.n_ctx()
                ),
            ));
        }
        Ok(())
    }

    /// Feeds the deferred tokens and then `tokens` in batches; leaves the final hidden states of
    /// the last token (`all = false`) or of every token of `tokens` in `self.hidden`.
    fn feed(&mut self, tokens: &[u32], all: bool) -> Result<()> {
        self.check(tokens)?;
        let kept = self.history.len();
        self.history.extend_from_slice(tokens);
        let result = self.run(kept - self.evaluated, all);
        if result.is_err() {
            // The failed batch's tokens are not in the cache; deferred ones stay deferred.
            self.history.truncate(self.evaluated.max(kept));
        }
        result
    }

    /// Runs the tokens not yet in the cache (`history[evaluated..]`) through the model; the first
    /// `skip` of them are deferred tokens, whose hidden states are not kept.
    fn run(&mut self, skip: usize, all: bool) -> Result<()> {
        let start = self.evaluated;
        let model = self.model.clone();
        let spec = model.spec();
        let rope = RopeOverride {
            freq_base: self.params.rope_frequency_base,
            freq_scale: self.params.rope_frequency_scale,
        };
        self.hidden.clear();
        let total = self.history.len() - start;
        let bs = self.params.batch_size;
        let n_batches = total.div_ceil(bs);
        for b in 0..n_batches {
            let (b0, b1) = (
                start + b * bs,
                (start + (b + 1) * bs).min(self.history.len()),
            );
            let len = b1 - b0;
            let first = if all {
                skip.saturating_sub(b * bs).min(len)
            } else if b + 1 == n_batches {
                len - 1
            } else {
                len
            };
            forward::forward(
                &self.pool,
                &mut self.scratch,
                spec,
                model.weights(),
                model.alibi(),
                rope,
                &mut self.kv,
                &self.history[b0..b1],
                b0,
                first,
                &mut self.hidden,
            )?;
            self.evaluated = b1;
        }
        Ok(())
    }

    /// Feeds `tokens` after those already in the context and returns logits per `mode`
    /// (`n_vocab` values per row). They stay readable through [`Session::logits`] until the next
    /// evaluation or reset; their buffer is reused, so generating a token allocates nothing.
    pub fn eval(&mut self, tokens: &[u32], mode: Logits) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(Error::invalid_argument("no tokens to evaluate"));
        }
        // A refused or failed evaluation returns no logits and leaves the last ones readable.
        self.feed(tokens, mode == Logits::All)?;
        if mode == Logits::None {
            self.logits.clear();
        } else {
            // (`logits` resizes the buffer, which keeps its length from token to token: no
            // zero-filling of 128 KB per token either.)
            let model = self.model.clone();
            forward::logits(
                &self.pool,
                &mut self.scratch,
                model.spec(),
                model.weights(),
                &self.hidden,
                &mut self.logits,
            );
        }
        Ok(&self.logits)
    }

    /// The embedding of `tokens`: the mean over positions of the final (normed) hidden states,
    /// computed in a fresh context (the session is reset first and afterwards).
    pub fn embed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::invalid_argument("no tokens to embed"));
        }
        self.reset();
        let fed = self.feed(tokens, true);
        self.reset();
        fed?;
        let d = self.model.spec().n_embd;
        let mut mean = vec![0f64; d];
        for row in self.hidden.chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
        }
        Ok(mean
            .iter()
            .map(|m| (m / tokens.len() as f64) as f32)
            .collect())
    }
}
