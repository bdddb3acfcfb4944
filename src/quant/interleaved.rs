//! Weight matrices repacked at load time for the matrix kernels: eight rows interleaved.
//!
//! ggml's row layout stores each block's scale next to its quants, one row after another. A dot
//! product of one row with one activation row then ends every block with a horizontal step (the
//! block's integer sum times its scale, one f16 conversion per block) that costs as much as the
//! multiply-adds. Interleaving eight rows (as llama.cpp's `q4_0_8x8` repacking does for AVX2, and its
//! AMX path does for tiles) puts the same value position of eight rows in the eight 32-bit lanes of
//! one register: a byte dot product of four weights per lane with four broadcast activation bytes
//! (`vpdpbusd`, or `maddubs` + `madd`) gives eight row sums at once, and the block's eight scales
//! are one 16-byte load converted with one instruction. Nothing is horizontal until the very end,
//! and for prompt processing each weight block, once loaded and unpacked, is dotted with several
//! activation rows while it is in registers.
//!
//! Layouts (a *group* is eight consecutive rows; the last group is padded with zero rows; each
//! group's bytes are contiguous and start 64-byte aligned when the row length is a multiple of 128):
//!
//! - [`Layout::Q4_0x8`]: for each of the `nb = cols / 32` blocks, 128 bytes of quants, then all the
//!   blocks' scales: `qs[nb][128]`, `d[nb][8]` (f16). In block `b`, byte `32 j + 4 r + i`
//!   (`j < 4`, row `r < 8`, `i < 4`) holds value `4 j + i` of row `r` in its low nibble and value
//!   `16 + 4 j + i` in its high nibble, as 0..=15 (the quant without Q4_0's −8).
//! - [`Layout::Q8_0x8`]: `qs[nb][256]`, `d[nb][8]`; byte `32 j + 4 r + i` (`j < 8`) is value
//!   `4 j + i` of row `r`.
//! - [`Layout::Q4_Kx8`]: for the `ns = cols / 256` super-blocks: `qs[ns][1024]`, `scales[ns][8][8]`,
//!   `mins[ns][8][8]` (sub-block-major: `[sub-block][row]`, 6-bit values as bytes), `d[ns][8]`,
//!   `dmin[ns][8]` (f16). In super-block `s`, the 256 bytes `256 c + …` hold sub-blocks `2c` (low
//!   nibbles) and `2c + 1` (high nibbles): byte `256 c + 32 j + 4 r + i` (`j < 8`) holds value
//!   `4 j + i` of both sub-blocks of row `r`.
//!
//! Activations are quantized once per product, as ggml does, to Q8_0 (for Q4_0/Q8_0 weights) or
//! Q8_K (Q4_K) with the same bytes as [`crate::quant::quantize`], and laid out for the kernels as
//! [`Acts`]: the quants of each row, the scale of each block as f32, and the sum of each 32-value
//! block's quants (which turn the unsigned weight codes back into signed values:
//! `Σ (q − 8)·a = Σ q·a − 8 Σ a`).
//!
//! The scalar kernels here are the reference the SIMD ones are tested against; they compute the
//! same sums as [`crate::quant::vec_dot`] in a different order of float additions.

use crate::format::GgmlType;
use crate::quant::blocks::*;
use crate::quant::k_quants::get_scale_min_k4;

/// Rows per interleaved group.
pub const ROWS: usize = 8;
/// Activation rows one kernel call handles at most.
pub const MAX_TOKENS: usize = 4;

/// An interleaved layout (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum Layout {
    Q4_0x8,
    Q8_0x8,
    Q4_Kx8,
}

impl Layout {
    /// The layout for weights of type `ty`, if there is one.
    pub fn for_type(ty: GgmlType) -> Option<Layout> {
        match ty {
            GgmlType::Q4_0 => Some(Layout::Q4_0x8),
            GgmlType::Q8_0 => Some(Layout::Q8_0x8),
            GgmlType::Q4_K => Some(Layout::Q4_Kx8),
            _ => None,
        }
    }
    /// Values per block (32) or super-block (256).
    pub fn block_values(self) -> usize {
        match self {
            Layout::Q4_0x8 | Layout::Q8_0x8 => QK,
            Layout::Q4_Kx8 => QK_K,
        }
    }
    /// Bytes of one group's block (all eight rows, quants and scales).
    pub fn block_bytes(self) -> usize {
        match self {
            Layout::Q4_0x8 => 128 + 16,
            Layout::Q8_0x8 => 256 + 16,
            Layout::Q4_Kx8 => 1024 + 64 + 64 + 16 + 16,
        }
    }
    /// The activation format of this layout.
    pub fn act_kind(self) -> ActKind {
        match self {
            Layout::Q4_0x8 | Layout::Q8_0x8 => ActKind::Q8_0,
            Layout::Q4_Kx8 => ActKind::Q8_K,
        }
    }
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A weight matrix in an interleaved layout.
pub struct Interleaved {
    pub layout: Layout,
    pub rows: usize,
    pub cols: usize,
    groups: usize,
    group_bytes: usize,
    data: Vec<Line>,
}

impl Interleaved {
    /// Repacks `rows × cols` weights of type `ty` given in ggml's row layout. `None` when `ty` has
    /// no interleaved layout or `cols` is not a whole number of blocks.
    pub fn pack(ty: GgmlType, rows: usize, cols: usize, src: &[u8]) -> Option<Interleaved> {
        let layout = Layout::for_type(ty)?;
        if cols == 0 || !cols.is_multiple_of(layout.block_values()) {
            return None;
        }
        let row_size = ty.row_size(cols as u64)? as usize;
        assert_eq!(
            src.len(),
            row_size * rows,
            "source bytes of a {rows}×{cols} {ty} matrix"
        );
        let nb = cols / layout.block_values();
        let group_bytes = nb * layout.block_bytes();
        let groups = rows.div_ceil(ROWS);
        let mut p = Interleaved {
            layout,
            rows,
            cols,
            groups,
            group_bytes,
            data: vec![Line([0; 64]); (groups * group_bytes).div_ceil(64)],
        };
        for g in 0..groups {
            let dst = p.group_mut(g);
            let row = |r: usize| -> Option<&[u8]> {
                let r = g * ROWS + r;
                (r < rows).then(|| &src[r * row_size..(r + 1) * row_size])
            };
            match layout {
                Layout::Q4_0x8 => pack_q4_0(dst, nb, row),
                Layout::Q8_0x8 => pack_q8_0(dst, nb, row),
                Layout::Q4_Kx8 => pack_q4_k(dst, nb, row),
            }
        }
        Some(p)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `Line` is 64 plain bytes.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().cast::<u8>(), self.data.len() * 64) }
    }
    fn group_mut(&mut self, g: usize) -> &mut [u8] {
        let gb = self.group_bytes;
        // SAFETY: as in `bytes`.
        let all = unsafe {
            std::slice::from_raw_parts_mut(
                self.data.as_mut_ptr().cast::<u8>(),
                self.data.len() * 64,
            )
        };
        &mut all[g * gb..(g + 1) * gb]
    }
    /// The bytes of group `g` (rows `8 g .. 8 g + 8`).
    pub fn group(&self, g: usize) -> &[u8] {
        &self.bytes()[g * self.group_bytes..(g + 1) * self.group_bytes]
    }
    /// Number of eight-row groups.
    pub fn groups(&self) -> usize {
        self.groups
    }
    /// Blocks (or super-blocks) per row.
    pub fn blocks(&self) -> usize {
        self.cols / self.layout.block_values()
    }
    /// Bytes of the packed matrix.
    pub fn size(&self) -> usize {
        self.groups * self.group_bytes
    }
}

fn pack_q4_0<'a>(dst: &mut [u8], nb: usize, row: impl Fn(usize) -> Option<&'a [u8]>) {
    let (qs, d) = dst.split_at_mut(nb * 128);
    for r in 0..ROWS {
        let Some(src) = row(r) else { continue };
        let blocks: &[BlockQ4_0] = cast(src);
        for (b, x) in blocks.iter().enumerate() {
            d[b * 16 + 2 * r..b * 16 + 2 * r + 2].copy_from_slice(&x.d.0);
            for j in 0..4 {
                for i in 0..4 {
                    // low nibble: value 4j+i = low nibble of qs[4j+i]; high: value 16+4j+i =
                    // high nibble of qs[4j+i]. So the byte is simply qs[4j+i].
                    qs[b * 128 + 32 * j + 4 * r + i] = x.qs[4 * j + i];
                }
            }
        }
    }
}

fn pack_q8_0<'a>(dst: &mut [u8], nb: usize, row: impl Fn(usize) -> Option<&'a [u8]>) {
    let (qs, d) = dst.split_at_mut(nb * 256);
    for r in 0..ROWS {
        let Some(src) = row(r) else { continue };
        let blocks: &[BlockQ8_0] = cast(src);
        for (b, x) in blocks.iter().enumerate() {
            d[b * 16 + 2 * r..b * 16 + 2 * r + 2].copy_from_slice(&x.d.0);
            for j in 0..8 {
                for i in 0..4 {
                    qs[b * 256 + 32 * j + 4 * r + i] = x.qs[4 * j + i] as u8;
                }
            }
        }
    }
}

fn pack_q4_k<'a>(dst: &mut [u8], ns: usize, row: impl Fn(usize) -> Option<&'a [u8]>) {
    let (qs, rest) = dst.split_at_mut(ns * 1024);
    let (sc, rest) = rest.split_at_mut(ns * 64);
    let (mn, rest) = rest.split_at_mut(ns * 64);
    let (d, dmin) = rest.split_at_mut(ns * 16);
    for r in 0..ROWS {
        let Some(src) = row(r) else { continue };
        let blocks: &[BlockQ4K] = cast(src);
        for (s, x) in blocks.iter().enumerate() {
            d[s * 16 + 2 * r..s * 16 + 2 * r + 2].copy_from_slice(&x.d.0);
            dmin[s * 16 + 2 * r..s * 16 + 2 * r + 2].copy_from_slice(&x.dmin.0);
            for j in 0..8 {
                let (a, m) = get_scale_min_k4(j, &x.scales);
                sc[s * 64 + 8 * j + r] = a;
                mn[s * 64 + 8 * j + r] = m;
            }
            // Q4_K: sub-block 2c = low nibbles of qs[32c..32c+32], 2c+1 = their high nibbles.
            for c in 0..4 {
                for j in 0..8 {
                    for i in 0..4 {
                        qs[s * 1024 + 256 * c + 32 * j + 4 * r + i] = x.qs[32 * c + 4 * j + i];
                    }
                }
            }
        }
    }
}

/// Activation formats of the interleaved kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ActKind {
    /// Q8_0: 32-value blocks, f16-rounded scale per block.
    Q8_0,
    /// Q8_K: 256-value super-blocks, f32 scale per super-block.
    Q8_K,
}

impl ActKind {
    /// Values per scale.
    pub fn scale_values(self) -> usize {
        match self {
            ActKind::Q8_0 => QK,
            ActKind::Q8_K => QK_K,
        }
    }
}

/// Quantized activation rows for the interleaved kernels (buffers reused between products).
#[derive(Default)]
pub struct Acts {
    kind: Option<ActKind>,
    cols: usize,
    n: usize,
    /// `n × cols` quants.
    pub qs: Vec<i8>,
    /// One scale per block (Q8_0) or super-block (Q8_K), per row.
    pub d: Vec<f32>,
    /// Σ quants of every 32-value block, per row.
    pub sum: Vec<i32>,
}

/// One activation row as the kernels read it.
#[derive(Clone, Copy)]
pub struct ActRow<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub sum: &'a [i32],
}

impl Acts {
    /// Sizes the buffers for `n` rows of `cols` values of `kind` (contents unspecified until
    /// [`Acts::rows_mut`] fills them).
    pub fn reset(&mut self, kind: ActKind, cols: usize, n: usize) {
        self.kind = Some(kind);
        self.cols = cols;
        self.n = n;
        self.qs.resize(n * cols, 0);
        self.d.resize(n * (cols / kind.scale_values()), 0.0);
        self.sum.resize(n * (cols / QK), 0);
    }
    pub fn kind(&self) -> ActKind {
        self.kind.expect("reset first")
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn row(&self, t: usize) -> ActRow<'_> {
        let (c, ns) = (self.cols, self.cols / self.kind().scale_values());
        let nb = self.cols / QK;
        ActRow {
            qs: &self.qs[t * c..(t + 1) * c],
            d: &self.d[t * ns..(t + 1) * ns],
            sum: &self.sum[t * nb..(t + 1) * nb],
        }
    }
    /// Raw parts for filling rows from several threads: see [`quantize_row`].
    pub fn parts_mut(&mut self) -> (&mut [i8], &mut [f32], &mut [i32]) {
        (&mut self.qs, &mut self.d, &mut self.sum)
    }
}

/// Quantizes one activation row `x` into its slots of an [`Acts`] (`qs`: `x.len()` values,
/// `d`: one per block or super-block, `sum`: one per 32 values), with the bytes
/// [`crate::quant::quantize`] gives for Q8_0 or Q8_K.
pub fn quantize_row(kind: ActKind, x: &[f32], qs: &mut [i8], d: &mut [f32], sum: &mut [i32]) {
    let k = crate::quant::kernels::get();
    match kind {
        ActKind::Q8_0 => {
            let mut blk = [BlockQ8_0 {
                d: Half::ZERO,
                qs: [0; QK],
            }];
            for (b, xb) in x.chunks_exact(QK).enumerate() {
                (k.quantize_q8_0)(xb, &mut blk);
                d[b] = blk[0].d.to_f32();
                qs[b * QK..(b + 1) * QK].copy_from_slice(&blk[0].qs);
                sum[b] = blk[0].qs.iter().map(|&q| q as i32).sum();
            }
        }
        ActKind::Q8_K => {
            let mut blk = [BlockQ8K::zeroed()];
            for (s, xs) in x.chunks_exact(QK_K).enumerate() {
                (k.quantize_q8_k)(xs, &mut blk);
                d[s] = blk[0].d.get();
                qs[s * QK_K..(s + 1) * QK_K].copy_from_slice(&blk[0].qs);
                for j in 0..8 {
                    sum[s * 8 + j] =
                        blk[0].bsums[2 * j].get() as i32 + blk[0].bsums[2 * j + 1].get() as i32;
                }
            }
        }
    }
}

/// The output of one kernel call: eight row results for each of up to [`MAX_TOKENS`] tokens.
pub type Tile = [[f32; ROWS]; MAX_TOKENS];

/// A kernel: one group of an interleaved matrix (`nb` blocks) against `acts.len()` (1 ..=
/// [`MAX_TOKENS`]) activation rows; `out[t][r]` gets row `r` · activation `t`.
pub type GroupKernel = fn(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile);

/// A float-row kernel: `out[t][r]` = row `w[r]` (up to four, f16 bytes) · `x[t]` (up to
/// [`MAX_TOKENS`] f32 rows), all `n` values long (`n` a multiple of 8).
pub type RowsKernel = fn(w: &[&[u8]], x: &[&[f32]], n: usize, out: &mut [[f32; 4]; MAX_TOKENS]);

/// Scalar f16 row kernel (f64 accumulation, as the scalar `vec_dot`).
pub fn f16_rows_scalar(w: &[&[u8]], x: &[&[f32]], n: usize, out: &mut [[f32; 4]; MAX_TOKENS]) {
    for (t, xr) in x.iter().enumerate() {
        for (r, wr) in w.iter().enumerate() {
            let mut s = 0f64;
            for i in 0..n {
                let h = Half([wr[2 * i], wr[2 * i + 1]]).to_f32();
                s += (h * xr[i]) as f64;
            }
            out[t][r] = s as f32;
        }
    }
}

fn f16s(d: &[u8], b: usize) -> [f32; ROWS] {
    std::array::from_fn(|r| Half([d[16 * b + 2 * r], d[16 * b + 2 * r + 1]]).to_f32())
}

/// Scalar Q4_0x8 kernel (the reference).
pub fn q4_0x8_scalar(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    let (qs, d) = group.split_at(nb * 128);
    for (t, a) in acts.iter().enumerate() {
        let mut acc = [0f32; ROWS];
        for b in 0..nb {
            let dw = f16s(d, b);
            for r in 0..ROWS {
                let mut s = 0i32;
                for j in 0..4 {
                    for i in 0..4 {
                        let q = qs[b * 128 + 32 * j + 4 * r + i];
                        s += (q & 15) as i32 * a.qs[b * 32 + 4 * j + i] as i32;
                        s += (q >> 4) as i32 * a.qs[b * 32 + 16 + 4 * j + i] as i32;
                    }
                }
                s -= 8 * a.sum[b];
                acc[r] += s as f32 * (dw[r] * a.d[b]);
            }
        }
        out[t] = acc;
    }
}

/// Scalar Q8_0x8 kernel (the reference).
pub fn q8_0x8_scalar(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    let (qs, d) = group.split_at(nb * 256);
    for (t, a) in acts.iter().enumerate() {
        let mut acc = [0f32; ROWS];
        for b in 0..nb {
            let dw = f16s(d, b);
            for r in 0..ROWS {
                let mut s = 0i32;
                for j in 0..8 {
                    for i in 0..4 {
                        let q = qs[b * 256 + 32 * j + 4 * r + i] as i8;
                        s += q as i32 * a.qs[b * 32 + 4 * j + i] as i32;
                    }
                }
                acc[r] += s as f32 * (dw[r] * a.d[b]);
            }
        }
        out[t] = acc;
    }
}

/// Scalar Q4_Kx8 kernel (the reference).
pub fn q4_kx8_scalar(group: &[u8], ns: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    let (qs, rest) = group.split_at(ns * 1024);
    let (sc, rest) = rest.split_at(ns * 64);
    let (mn, rest) = rest.split_at(ns * 64);
    let (d, dmin) = rest.split_at(ns * 16);
    for (t, a) in acts.iter().enumerate() {
        let mut acc = [0f32; ROWS];
        for s in 0..ns {
            let (dw, mw) = (f16s(d, s), f16s(dmin, s));
            for r in 0..ROWS {
                let (mut isum, mut msum) = (0i32, 0i32);
                for c in 0..4 {
                    let (mut lo, mut hi) = (0i32, 0i32);
                    for j in 0..8 {
                        for i in 0..4 {
                            let q = qs[s * 1024 + 256 * c + 32 * j + 4 * r + i];
                            let v = s * 256 + 64 * c + 4 * j + i;
                            lo += (q & 15) as i32 * a.qs[v] as i32;
                            hi += (q >> 4) as i32 * a.qs[v + 32] as i32;
                        }
                    }
                    isum += lo * sc[s * 64 + 8 * (2 * c) + r] as i32
                        + hi * sc[s * 64 + 8 * (2 * c + 1) + r] as i32;
                }
                for j in 0..8 {
                    msum += mn[s * 64 + 8 * j + r] as i32 * a.sum[s * 8 + j];
                }
                acc[r] += a.d[s] * (dw[r] * isum as f32 - mw[r] * msum as f32);
            }
        }
        out[t] = acc;
    }
}

/// The scalar kernel of a layout.
pub fn scalar_kernel(layout: Layout) -> GroupKernel {
    match layout {
        Layout::Q4_0x8 => q4_0x8_scalar,
        Layout::Q8_0x8 => q8_0x8_scalar,
        Layout::Q4_Kx8 => q4_kx8_scalar,
    }
}

/// The f16 row kernel this process uses.
pub fn f16_rows_kernel() -> RowsKernel {
    crate::quant::kernels::get().f16_rows
}

/// The name of the matrix kernels' build this process uses.
pub fn kernel_name() -> &'static str {
    crate::quant::kernels::get().matrix_name
}

/// The kernel this process uses for a layout (SIMD when the CPU has it).
pub fn kernel(layout: Layout) -> GroupKernel {
    let k = crate::quant::kernels::get();
    match layout {
        Layout::Q4_0x8 => k.q4_0x8,
        Layout::Q8_0x8 => k.q8_0x8,
        Layout::Q4_Kx8 => k.q4_kx8,
    }
}

#[cfg(test)]
mod tests;
