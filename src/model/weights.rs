//! Weights of a loaded model: views into the mapped file (or owned buffers where a layout had to be
//! rewritten), checked against the spec's shapes at load time.

use super::spec::Spec;
use crate::error::{Error, ErrorKind, Result};
use crate::format::{GgmlType, ModelFile, TensorInfo};
use crate::quant;
use std::sync::{Arc, OnceLock};

/// The bytes of a weight: a tensor of the shared mapped file, or an owned buffer.
#[derive(Clone)]
enum Bytes {
    File {
        file: Arc<ModelFile>,
        offset: usize,
        len: usize,
    },
    Owned(Arc<[u8]>),
}

/// A 2-D weight `rows × cols` (ggml shape `[cols, rows]`: each row is `cols` contiguous values).
#[derive(Clone)]
pub struct Matrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    bytes: Bytes,
    row_size: usize,
    /// How products with this matrix are computed (made on first use or by [`Weights::prepare`];
    /// shared by clones, e.g. tied output embeddings).
    plan: Arc<OnceLock<super::matmul::Plan>>,
}

impl Matrix {
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::File { file, offset, len } => &file.bytes()[*offset..*offset + *len],
            Bytes::Owned(b) => b,
        }
    }
    /// Maps the pages of a matrix read from the file now (see [`ModelFile::prefault`]).
    fn prefault(&self) {
        if let Bytes::File { file, offset, len } = &self.bytes {
            file.prefault(*offset, *len);
        }
    }
    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.bytes()[r * self.row_size..(r + 1) * self.row_size]
    }
    /// Bytes per row.
    pub fn row_size(&self) -> usize {
        self.row_size
    }
    /// The matrix's product plan (repacked weights, kernels), made on first use.
    pub(crate) fn plan(&self) -> &super::matmul::Plan {
        self.plan.get_or_init(|| super::matmul::Plan::new(self))
    }
    /// Row `r` as f32 values.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        quant::dequantize(self.ty, self.row(r), out)
    }
}

/// A norm's scale and optional shift.
pub struct Norm {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

/// A linear layer `y = W x + b`.
pub struct Linear {
    pub w: Matrix,
    pub b: Option<Vec<f32>>,
}

/// The Q, K and V projections: fused into one matrix (rows Q, then K, then V) or separate.
pub enum Qkv {
    Fused(Linear),
    Separate { q: Linear, k: Linear, v: Linear },
}

pub struct Layer {
    pub attn_norm: Norm,
    pub qkv: Qkv,
    pub attn_out: Linear,
    pub ffn_norm: Option<Norm>,
    pub ffn_gate: Option<Linear>,
    pub ffn_up: Linear,
    pub ffn_down: Linear,
}

pub struct Weights {
    pub token_embd: Matrix,
    pub position_embd: Option<Matrix>,
    pub embd_norm: Option<Norm>,
    pub layers: Vec<Layer>,
    pub output_norm: Norm,
    pub output: Linear,
}

/// Finds tensors by GGUF name and checks their shapes.
struct Loader<'a> {
    file: &'a Arc<ModelFile>,
}

fn shape_error(file: &ModelFile, t: &TensorInfo, want: &[u64]) -> Error {
    Error::new(
        ErrorKind::Format,
        format!(
            "{}: tensor {} has shape {:?}, expected {:?} (innermost first)",
            file.path.display(),
            t.name,
            t.shape,
            want
        ),
    )
}

impl Loader<'_> {
    fn find(&self, name: &str) -> Option<&TensorInfo> {
        self.file.tensor(name)
    }

    fn matrix_opt(&self, name: &str, cols: usize, rows: Option<usize>) -> Result<Option<Matrix>> {
        let Some(t) = self.find(name) else {
            return Ok(None);
        };
        let want_rows = rows.unwrap_or(t.shape.get(1).copied().unwrap_or(0) as usize);
        let want = [cols as u64, want_rows as u64];
        if t.shape.len() != 2 || t.shape[..] != want {
            return Err(shape_error(self.file, t, &want));
        }
        if !quant::can_dequantize(t.ty) {
            return Err(Error::unsupported(format!(
                "tensor {name} has type {}, which ferrollm cannot compute with",
                t.ty
            )));
        }
        let row_size =
            t.ty.row_size(cols as u64)
                .ok_or_else(|| shape_error(self.file, t, &want))? as usize;
        Ok(Some(Matrix {
            ty: t.ty,
            rows: want_rows,
            cols,
            bytes: Bytes::File {
                file: self.file.clone(),
                offset: t.offset as usize,
                len: t.size as usize,
            },
            row_size,
            plan: Default::default(),
        }))
    }

    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<Matrix> {
        self.matrix_opt(name, cols, Some(rows))?
            .ok_or_else(|| missing(self.file, name))
    }

    fn vector_opt(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        let Some(t) = self.find(name) else {
            return Ok(None);
        };
        let n: u64 = t.shape.iter().product();
        if n != len as u64 || t.shape.first() != Some(&(len as u64)) {
            return Err(shape_error(self.file, t, &[len as u64]));
        }
        let mut out = vec![0f32; len];
        quant::dequantize(t.ty, self.file.tensor_data(t), &mut out)
            .map_err(|e| e.context(format!("tensor {name}")))?;
        Ok(Some(out))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        self.vector_opt(name, len)?
            .ok_or_else(|| missing(self.file, name))
    }

    fn norm(&self, prefix: &str, len: usize) -> Result<Norm> {
        Ok(Norm {
            weight: self.vector(&format!("{prefix}.weight"), len)?,
            bias: self.vector_opt(&format!("{prefix}.bias"), len)?,
        })
    }

    fn norm_opt(&self, prefix: &str, len: usize) -> Result<Option<Norm>> {
        if self.find(&format!("{prefix}.weight")).is_none() {
            return Ok(None);
        }
        self.norm(prefix, len).map(Some)
    }

    fn linear(&self, prefix: &str, cols: usize, rows: usize) -> Result<Linear> {
        Ok(Linear {
            w: self.matrix(&format!("{prefix}.weight"), cols, rows)?,
            b: self.vector_opt(&format!("{prefix}.bias"), rows)?,
        })
    }
}

fn missing(file: &ModelFile, name: &str) -> Error {
    Error::new(
        ErrorKind::Format,
        format!("{}: tensor {name} is missing", file.path.display()),
    )
}

impl Weights {
    /// Finds every weight of `spec` in `file` (llama.cpp's GGUF tensor names) and checks its shape.
    /// With `interleaved_qkv`, fused QKV tensors are stored per head (`[head][q,k,v][head_dim]`
    /// rows, GPT-NeoX's layout in legacy files) and are reordered into `[q; k; v]` here.
    pub fn load(file: &Arc<ModelFile>, spec: &Spec, interleaved_qkv: bool) -> Result<Weights> {
        let l = Loader { file };
        let d = spec.n_embd;
        let token_embd = l.matrix("token_embd.weight", d, spec.n_vocab)?;
        let position_embd = match spec.position {
            super::spec::Position::Learned => Some(
                l.matrix_opt("position_embd.weight", d, None)?
                    .ok_or_else(|| missing(file, "position_embd.weight"))?,
            ),
            _ => None,
        };
        let embd_norm = if spec.embedding_norm {
            Some(l.norm("token_embd_norm", d)?)
        } else {
            None
        };
        let (qd, kvd) = (spec.q_dim(), spec.kv_dim());
        let mut layers = Vec::with_capacity(spec.n_layer);
        for i in 0..spec.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let qkv = if l.find(&p("attn_qkv.weight")).is_some() {
                let lin = l.linear(&p("attn_qkv"), d, qd + 2 * kvd)?;
                Qkv::Fused(if interleaved_qkv {
                    deinterleave_qkv(lin, spec)?
                } else {
                    lin
                })
            } else {
                Qkv::Separate {
                    q: l.linear(&p("attn_q"), d, qd)?,
                    k: l.linear(&p("attn_k"), d, kvd)?,
                    v: l.linear(&p("attn_v"), d, kvd)?,
                }
            };
            layers.push(Layer {
                attn_norm: l.norm(&p("attn_norm"), d)?,
                qkv,
                attn_out: l.linear(&p("attn_output"), qd, d)?,
                ffn_norm: l.norm_opt(&p("ffn_norm"), d)?,
                ffn_gate: if spec.gated_ffn {
                    Some(l.linear(&p("ffn_gate"), d, spec.n_ff)?)
                } else {
                    None
                },
                ffn_up: l.linear(&p("ffn_up"), d, spec.n_ff)?,
                ffn_down: l.linear(&p("ffn_down"), spec.n_ff, d)?,
            });
            if spec.residual == super::spec::Residual::Sequential && layers[i].ffn_norm.is_none() {
                return Err(missing(file, &p("ffn_norm.weight")));
            }
        }
        let output_norm = l.norm("output_norm", d)?;
        let output = match l.matrix_opt("output.weight", d, Some(spec.n_vocab))? {
            Some(w) => Linear {
                w,
                b: l.vector_opt("output.bias", spec.n_vocab)?,
            },
            None => Linear {
                w: token_embd.clone(),
                b: None,
            }, // tied embeddings
        };
        Ok(Weights {
            token_embd,
            position_embd,
            embd_norm,
            layers,
            output_norm,
            output,
        })
    }
}

impl Weights {
    /// Every matrix used in products, once each.
    fn product_matrices(&self) -> Vec<&Matrix> {
        let mut v = Vec::new();
        for l in &self.layers {
            match &l.qkv {
                Qkv::Fused(lin) => v.push(&lin.w),
                Qkv::Separate { q, k, v: vv } => v.extend([&q.w, &k.w, &vv.w]),
            }
            v.push(&l.attn_out.w);
            if let Some(g) = &l.ffn_gate {
                v.push(&g.w);
            }
            v.push(&l.ffn_up.w);
            v.push(&l.ffn_down.w);
        }
        v.push(&self.output.w);
        v
    }

    /// Makes the product plan of every matrix now (repacking in parallel) rather than on first use,
    /// after mapping the pages of its bytes in one go (no page faults while packing, or in the
    /// first products for matrices used as stored); maps the embeddings' pages too.
    ///
    /// Q8_0 matrices are kept as stored for generation (their row kernel keeps up with memory)
    /// unless all of them fit in the CPU's last-level cache: then memory does not bound
    /// generation, the interleaved kernel is faster (160M Q8_0, 2 threads: 235 against 163
    /// tokens/s), and the fresh memory the packed copy needs is small.
    pub fn prepare(&self) {
        use rayon::prelude::*;
        // The embeddings are read from the file a row per token, so they are mapped now too:
        // otherwise a row whose pages are not cached costs a disk read in the middle of
        // generation (1.1B Q4_0 tg64 with the file evicted before loading: 0.9 % of the time in
        // the embedding step, against 0.02 % with this).
        for m in std::iter::once(&self.token_embd).chain(&self.position_embd) {
            m.prefault();
        }
        let matrices = self.product_matrices();
        matrices.par_iter().for_each(|m| {
            m.prefault();
            m.plan();
        });
        let lazy: Vec<&&Matrix> = matrices
            .iter()
            .filter(|m| m.plan().packs_lazily())
            .collect();
        let lazy_bytes: usize = lazy.iter().map(|m| m.bytes().len()).sum();
        if !lazy.is_empty() && lazy_bytes <= crate::pool::last_level_cache_bytes() {
            lazy.par_iter().for_each(|m| m.plan().pack_now(m));
        }
    }
}

/// Reorders the rows of a per-head interleaved QKV projection (`[head][q,k,v][head_dim]`) into
/// `[q heads; k heads; v heads]`, as llama.cpp's converter does for GPT-NeoX. Rows are independent
/// runs of bytes in every ggml type, so this works on quantized weights too.
fn deinterleave_qkv(lin: Linear, spec: &Spec) -> Result<Linear> {
    let (nh, hd) = (spec.n_head, spec.head_dim);
    if spec.n_head_kv != nh {
        return Err(Error::unsupported(
            "an interleaved QKV layout with grouped-query attention",
        ));
    }
    // Target row (j, h, d) comes from source row (h, j, d).
    let source_row = |r: usize| {
        let (j, rest) = (r / (nh * hd), r % (nh * hd));
        let (h, d) = (rest / hd, rest % hd);
        h * 3 * hd + j * hd + d
    };
    let w = &lin.w;
    let mut bytes = Vec::with_capacity(w.bytes().len());
    for r in 0..w.rows {
        bytes.extend_from_slice(w.row(source_row(r)));
    }
    let b = lin
        .b
        .map(|b| (0..b.len()).map(|r| b[source_row(r)]).collect());
    Ok(Linear {
        w: Matrix::owned(w.ty, w.rows, w.cols, bytes)?,
        b,
    })
}

impl Matrix {
    /// A matrix over owned bytes (a layout rewritten at load time).
    pub fn owned(ty: GgmlType, rows: usize, cols: usize, bytes: Vec<u8>) -> Result<Matrix> {
        let row_size = ty
            .row_size(cols as u64)
            .filter(|rs| rs * rows as u64 == bytes.len() as u64)
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "{rows}×{cols} {ty} matrix needs a different byte count than {}",
                    bytes.len()
                ))
            })? as usize;
        Ok(Matrix {
            ty,
            rows,
            cols,
            bytes: Bytes::Owned(bytes.into()),
            row_size,
            plan: Default::default(),
        })
    }
}
