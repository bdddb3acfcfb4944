//! What each output tensor is made of, and making it: the plan types shared by the architecture
//! files, the weight transforms, and the conversion of values to the output type.
//!
//! Every transform llama.cpp's converter applies to these architectures is a permutation of rows
//! (fused-QKV reordering, the rotary permutation of LLaMA's Q/K) or a transpose (GPT-2's Conv1D).
//! A tensor is therefore produced straight into the output buffer, one source row at a time:
//! memory use is the output tensor plus one row, never a float32 copy of the tensor.

use super::checkpoint::SourceType;
use crate::format::GgmlType;

/// How the rows of a checkpoint tensor (row-major, PyTorch's order) become the output tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Values as they are.
    Copy,
    /// A 2-D `[a, b]` tensor becomes `[b, a]` (GPT-2's Conv1D weights are stored transposed).
    Transpose,
    /// A fused QKV projection stored per head as `[q_h, k_h, v_h]` for h = 0..n_head
    /// (GPT-NeoX, BLOOM) becomes `[q_0..q_n; k_0..k_n; v_0..v_n]`:
    /// `reshape(n_head, 3, head_dim, …) → swap axes 0 and 1 → reshape back`. For weights and biases.
    QkvHeadsToBlocks { n_head: usize },
    /// LLaMA's rotary permutation of Q/K rows, as llama.cpp's `permute`:
    /// `reshape(n_head, 2, rows / n_head / 2, …) → swap axes 1 and 2 → reshape back`.
    RopePermute { n_head: usize },
}

impl Transform {
    /// The row-major shape of the result for a source of row-major shape `shape`.
    pub fn output_shape(self, shape: &[usize]) -> Vec<usize> {
        match self {
            Transform::Transpose => shape.iter().rev().copied().collect(),
            _ => shape.to_vec(),
        }
    }

    /// Whether the transform can apply to a tensor of row-major `shape` (a description of what
    /// is wrong otherwise).
    pub fn check(self, shape: &[usize]) -> Result<(), String> {
        let rows = shape.first().copied().unwrap_or(1);
        match self {
            Transform::Copy => Ok(()),
            Transform::Transpose if shape.len() == 2 => Ok(()),
            Transform::Transpose => Err(format!("cannot transpose a {}-D tensor", shape.len())),
            Transform::QkvHeadsToBlocks { n_head } => {
                if n_head > 0 && rows % (3 * n_head) == 0 {
                    Ok(())
                } else {
                    Err(format!("{rows} rows do not split into 3 × {n_head} heads"))
                }
            }
            Transform::RopePermute { n_head } => {
                if n_head > 0 && rows % (2 * n_head) == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "{rows} rows do not split into {n_head} heads of even size"
                    ))
                }
            }
        }
    }

    /// The source row that output row `r` comes from, for row permutations (`rows` rows).
    fn source_row(self, r: usize, rows: usize) -> usize {
        match self {
            Transform::Copy | Transform::Transpose => r,
            Transform::QkvHeadsToBlocks { n_head } => {
                // output (part, head, d) <- source (head, part, d)
                let head_dim = rows / 3 / n_head;
                let block = n_head * head_dim;
                let (part, rem) = (r / block, r % block);
                let (head, d) = (rem / head_dim, rem % head_dim);
                (head * 3 + part) * head_dim + d
            }
            Transform::RopePermute { n_head } => {
                // output (head, i, j) <- source (head, j, i), i < half, j < 2
                let per_head = rows / n_head;
                let half = per_head / 2;
                let (head, within) = (r / per_head, r % per_head);
                let (i, j) = (within / 2, within % 2);
                head * per_head + j * half + i
            }
        }
    }
}

/// Where an output tensor's values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A checkpoint tensor with the row-major shape config.json implies, and a transform.
    Tensor {
        name: String,
        shape: Vec<usize>,
        transform: Transform,
    },
    /// Values computed from config.json (LLaMA 3's `rope_freqs`); row-major shape.
    Generated { shape: Vec<usize>, values: Vec<f32> },
}

/// One tensor of the output file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    /// The tensor's name in the output file.
    pub name: String,
    pub source: Source,
}

impl TensorPlan {
    /// An output tensor copied from checkpoint tensor `src` of row-major shape `shape`.
    pub fn copy(name: impl Into<String>, src: impl Into<String>, shape: &[usize]) -> Self {
        Self::with(name, src, shape, Transform::Copy)
    }

    pub fn with(
        name: impl Into<String>,
        src: impl Into<String>,
        shape: &[usize],
        transform: Transform,
    ) -> Self {
        TensorPlan {
            name: name.into(),
            source: Source::Tensor {
                name: src.into(),
                shape: shape.to_vec(),
                transform,
            },
        }
    }

    /// The row-major shape of the output tensor.
    pub fn output_shape(&self) -> Vec<usize> {
        match &self.source {
            Source::Tensor {
                shape, transform, ..
            } => transform.output_shape(shape),
            Source::Generated { shape, .. } => shape.clone(),
        }
    }

    /// The type this tensor gets when the file's weights are `dtype` (F16 or F32): llama.cpp's and
    /// llm-rs' rule — 1-D tensors (norms, biases) and the position embeddings stay F32, matrices
    /// take `dtype`.
    pub fn output_type(&self, dtype: GgmlType) -> GgmlType {
        if self.output_shape().len() <= 1 || is_position_embedding(&self.name) {
            GgmlType::F32
        } else {
            dtype
        }
    }
}

/// GPT-2's learned position table, which llama.cpp and llm-rs keep in F32.
fn is_position_embedding(name: &str) -> bool {
    name == "position_embd.weight" || name == "model/wpe"
}

/// Writes `v` as `ty` (F32 or F16, little-endian) into `out`.
fn encode(ty: GgmlType, v: &[f32], out: &mut [u8]) {
    match ty {
        GgmlType::F32 => {
            for (o, x) in out.chunks_exact_mut(4).zip(v) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for (o, x) in out.chunks_exact_mut(2).zip(v) {
                o.copy_from_slice(&half::f16::from_f32(*x).to_le_bytes());
            }
        }
        other => unreachable!("conversion writes f32 or f16, not {other}"),
    }
}

/// Source bytes processed between calls of the `release` callback of [`produce`].
const RELEASE_CHUNK: usize = 4 << 20;

/// Produces the bytes of an output tensor of type `ty` (F32 or F16) from `src` (the checkpoint
/// tensor's bytes, of type `st` and row-major `shape`), applying `transform`. `out` is cleared and
/// filled. `release` is called with byte ranges of `src` that will not be read again (sequential
/// transforms report them as they go, so a caller can drop them from memory).
pub fn produce(
    src: &[u8],
    st: SourceType,
    shape: &[usize],
    transform: Transform,
    ty: GgmlType,
    out: &mut Vec<u8>,
    release: &mut dyn FnMut(std::ops::Range<usize>),
) {
    let n: usize = shape.iter().product();
    let tsize = ty.type_size();
    let ssize = st.size();
    out.clear();
    out.resize(n * tsize, 0);
    if n == 0 {
        return;
    }
    let (rows, cols) = match shape.split_first() {
        Some((&r, rest)) if !rest.is_empty() => (r, rest.iter().product::<usize>()),
        _ => (n, 1), // a vector: every value is a row
    };
    match transform {
        Transform::Copy => {
            let per_chunk = (RELEASE_CHUNK / ssize).max(1);
            let mut buf = vec![0f32; per_chunk.min(n)];
            let mut done = 0;
            while done < n {
                let k = per_chunk.min(n - done);
                st.to_f32(&src[done * ssize..(done + k) * ssize], &mut buf[..k]);
                encode(ty, &buf[..k], &mut out[done * tsize..(done + k) * tsize]);
                release(done * ssize..(done + k) * ssize);
                done += k;
            }
        }
        Transform::Transpose => {
            // source [rows, cols] -> output [cols, rows]: source row i is output column i.
            let mut row = vec![0f32; cols];
            let mut enc = [0u8; 4];
            let mut released = 0;
            for i in 0..rows {
                let end = (i + 1) * cols * ssize;
                st.to_f32(&src[i * cols * ssize..end], &mut row);
                for (j, v) in row.iter().enumerate() {
                    let at = (j * rows + i) * tsize;
                    encode(ty, std::slice::from_ref(v), &mut enc[..tsize]);
                    out[at..at + tsize].copy_from_slice(&enc[..tsize]);
                }
                if end - released >= RELEASE_CHUNK || i + 1 == rows {
                    release(released..end);
                    released = end;
                }
            }
        }
        Transform::QkvHeadsToBlocks { .. } | Transform::RopePermute { .. } => {
            let mut row = vec![0f32; cols];
            for r in 0..rows {
                let s = transform.source_row(r, rows);
                st.to_f32(&src[s * cols * ssize..(s + 1) * cols * ssize], &mut row);
                encode(ty, &row, &mut out[r * cols * tsize..(r + 1) * cols * tsize]);
            }
            release(0..src.len());
        }
    }
}

/// Produces a generated tensor's bytes.
pub fn produce_generated(values: &[f32], ty: GgmlType, out: &mut Vec<u8>) {
    out.clear();
    out.resize(values.len() * ty.type_size(), 0);
    encode(ty, values, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn from_bytes(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    fn run(v: &[f32], shape: &[usize], t: Transform) -> Vec<f32> {
        let mut out = Vec::new();
        produce(
            &f32_bytes(v),
            SourceType::F32,
            shape,
            t,
            GgmlType::F32,
            &mut out,
            &mut |_| {},
        );
        from_bytes(&out)
    }

    #[test]
    fn transpose() {
        let v: Vec<f32> = (0..6).map(|x| x as f32).collect();
        // [[0,1,2],[3,4,5]] -> [[0,3],[1,4],[2,5]]
        assert_eq!(
            run(&v, &[2, 3], Transform::Transpose),
            [0., 3., 1., 4., 2., 5.]
        );
    }

    #[test]
    fn qkv_reorder_of_two_heads() {
        // 2 heads, head_dim 1: rows [q0, k0, v0, q1, k1, v1] -> [q0, q1, k0, k1, v0, v1]
        let v = [10., 20., 30., 11., 21., 31.];
        assert_eq!(
            run(&v, &[6], Transform::QkvHeadsToBlocks { n_head: 2 }),
            [10., 11., 20., 21., 30., 31.]
        );
    }

    #[test]
    fn rope_permute_of_one_head() {
        // one head of 4 rows [a0, a1, b0, b1] -> [a0, b0, a1, b1]
        let v = [0., 1., 2., 3.];
        assert_eq!(
            run(&v, &[4, 1], Transform::RopePermute { n_head: 1 }),
            [0., 2., 1., 3.]
        );
    }

    #[test]
    fn dtypes() {
        let bf16: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        let mut out = Vec::new();
        produce(
            &bf16,
            SourceType::BF16,
            &[2],
            Transform::Copy,
            GgmlType::F16,
            &mut out,
            &mut |_| {},
        );
        let got: Vec<f32> = out
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        assert_eq!(got, [1.5, -2.0]);
    }

    #[test]
    fn sequential_transforms_release_what_they_have_read() {
        let n = (RELEASE_CHUNK / 4 * 2 + 10).next_multiple_of(10);
        let v: Vec<f32> = (0..n).map(|x| x as f32).collect();
        let src = f32_bytes(&v);
        for (shape, t) in [
            (vec![n], Transform::Copy),
            (vec![n / 10, 10], Transform::Transpose),
        ] {
            let mut ranges = Vec::new();
            let mut out = Vec::new();
            produce(
                &src,
                SourceType::F32,
                &shape,
                t,
                GgmlType::F32,
                &mut out,
                &mut |r| ranges.push(r),
            );
            assert!(ranges.len() >= 2, "{t:?}: {ranges:?}");
            // Contiguous, in order, covering the tensor.
            assert_eq!(ranges[0].start, 0);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            assert_eq!(ranges.last().unwrap().end, src.len());
        }
    }
}
