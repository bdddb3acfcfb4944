//! Weight matrices repacked at load time for the matrix kernels: 8 or 16 rows interleaved.
//!
//! ggml's row layout stores each block's scale next to its quants, one row after another. A dot
//! product of one row with one activation row then ends every block with a horizontal step (the
//! block's integer sum times its scale, one f16 conversion per block) that costs as much as the
//! multiply-adds. Interleaving `W` rows (as llama.cpp's `q4_0_8x8` repacking does for AVX2, and its
//! AMX path does for tiles) puts the same value position of `W` rows in the `W` 32-bit lanes of
//! one register (`W` = 8 for 256-bit registers, 16 for 512-bit ones): a byte dot product of four
//! weights per lane with four broadcast activation bytes (`vpdpbusd`, or `maddubs` + `madd`) gives
//! `W` row sums at once, and the block's `W` scales are one load converted with one instruction.
//! Nothing is horizontal until the very end, and for prompt processing each weight block, once
//! loaded and unpacked, is dotted with several activation rows while it is in registers.
//!
//! Layouts (a *group* is `W` consecutive rows; the last group is padded with zero rows; each
//! group's bytes are contiguous and start 64-byte aligned when the row length is a multiple of 128):
//!
//! - [`Layout::Q4_0x8`]: for each of the `nb = cols / 32` blocks, `16 W` bytes of quants, then all
//!   the blocks' scales: `qs[nb][16 W]`, `d[nb][W]` (f16). In block `b`, byte `4 W j + 4 r + i`
//!   (`j < 4`, row `r < W`, `i < 4`) holds value `4 j + i` of row `r` in its low nibble and value
//!   `16 + 4 j + i` in its high nibble, as 0..=15 (the quant without Q4_0's −8).
//! - [`Layout::Q8_0x8`]: `qs[nb][32 W]`, `d[nb][W]`; byte `4 W j + 4 r + i` (`j < 8`) is value
//!   `4 j + i` of row `r`.
//! - [`Layout::Q4_Kx8`]: the `ns = cols / 256` super-blocks one after another, [`Q4K_SUPER`]` W`
//!   bytes each: `scales[8][W]`, `mins[8][W]` (sub-block-major, 6-bit values as bytes), `d[W]`,
//!   `dmin[W]` (f16), then `qs[128 W]` (offsets in [`Q4kSuper`]). In `qs`, the `32 W` bytes from
//!   `32 W c` hold sub-blocks `2c` (low nibbles) and `2c + 1` (high nibbles): byte
//!   `32 W c + 4 W j + 4 r + i` (`j < 8`) holds value `4 j + i` of both sub-blocks of row `r`.
//!   Each super-block's scales come just before the quants they scale, so a one-token product
//!   reads its group as one forward stream: with all quants first and all scales after them, the
//!   kernels needed the scales 16 KB ahead of the stream (a jump and a demand miss at every
//!   group's start) and read the scales, mins and f16 scales as four more streams. AVX-512,
//!   `benches/stream` Q4_K product ÷ read, 7 alternations, medians: one matrix 0.96 → 0.98, the
//!   1.1B layers 0.97 → 1.00 (each better in 5 of 7); 1.1B Q4_K tg32, 2 threads, 6 alternations:
//!   34.7 → 35.3 tok/s (medians); pp128 within this VM's noise.
//!
//! (The layout names say x8; the group width `W` is the kernel set's, see [`Interleaved::width`].)
//!
//! Activations are quantized once per product, as ggml does, to Q8_0 (for Q4_0/Q8_0 weights) or
//! Q8_K (Q4_K) with the same bytes as [`crate::quant::quantize`], and laid out for the kernels as
//! [`Acts`]: the quants of each row, the scale of each block as f32, and the sum of each 32-value
//! block's quants (which turn the unsigned weight codes back into signed values:
//! `Σ (q − 8)·a = Σ q·a − 8 Σ a`).
//!
//! The scalar kernels here are the reference the SIMD ones are tested against; they compute the
//! same sums as [`crate::quant::vec_dot`] in a different order of float additions.

use std::sync::{Arc, Mutex, Weak};

use crate::format::GgmlType;
use crate::pool::SharedMut;
use crate::quant::blocks::*;
use crate::quant::k_quants::get_scale_min_k4;

/// The widest group (rows per group) of any kernel set.
pub const MAX_ROWS: usize = 16;
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
    /// Bytes per row of one block (quants and scales), so a group's block takes `width` times this.
    pub fn block_bytes_per_row(self) -> usize {
        match self {
            Layout::Q4_0x8 => 16 + 2,
            Layout::Q8_0x8 => 32 + 2,
            Layout::Q4_Kx8 => Q4K_SUPER,
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

/// Zeroed memory for a packed matrix: a range carved from a shared anonymous mapping with
/// transparent huge pages requested (see [`carve`]), or a heap allocation where mapping fails.
enum Buf {
    Carved {
        chunk: Arc<Chunk>,
        off: usize,
        len: usize,
    },
    Heap(Vec<Line>),
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Huge page size on x86-64 and aarch64 with 4 KiB base pages.
const HUGE_PAGE: usize = 2 << 20;
/// Bytes of a shared chunk (more for a matrix larger than this).
const CHUNK_BYTES: usize = 64 << 20;

/// A 2 MiB-aligned anonymous mapping that packed matrices are carved from, unmapped when the
/// last of them is dropped.
struct Chunk {
    _map: memmap2::MmapMut,
    base: *mut u8,
    len: usize,
}

// SAFETY: `base` points into `_map`, which lives as long as the chunk; each carved range is used
// only through the one `Buf` that owns it.
unsafe impl Send for Chunk {}
unsafe impl Sync for Chunk {}

/// The chunk new matrices are carved from, and how much of it is used.
static CURRENT: Mutex<(Weak<Chunk>, usize)> = Mutex::new((Weak::new(), 0));

/// `len` zeroed bytes, 64-byte aligned, carved right after the previous matrix from the current
/// chunk, or from a new one. Packed weights are streamed once per token: on 4 KiB pages every page
/// costs a TLB miss and stops the hardware prefetchers. The kernel backs a mapping with huge pages
/// only where a whole 2 MiB-aligned page fits inside it, so a mapping per matrix left 42 % of 1.1B
/// Q4_K's packed bytes on small pages (a 2.4 MB matrix holds at most one huge page, the 0.6 MB K
/// and V none); carved one after another from 2 MiB-aligned chunks, all but the last partial page
/// of a chunk are huge. 1.1B generation, 2 threads, medians of 4 alternations: Q4_K 32.4 → 34.2,
/// Q4_0 36.6 → 37.4 tokens/s.
fn carve(len: usize) -> Option<Buf> {
    let span = len.next_multiple_of(64);
    let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(chunk) = cur.0.upgrade() {
        if chunk.len - cur.1 >= span {
            let off = cur.1;
            cur.1 += span;
            return Some(Buf::Carved { chunk, off, len });
        }
    }
    let size = span.max(CHUNK_BYTES).next_multiple_of(HUGE_PAGE);
    let mut map = memmap2::MmapMut::map_anon(size + HUGE_PAGE).ok()?;
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    let start = map.as_mut_ptr();
    let skip = (start as usize).next_multiple_of(HUGE_PAGE) - start as usize;
    let chunk = Arc::new(Chunk {
        base: start.wrapping_add(skip),
        len: size,
        _map: map,
    });
    *cur = (Arc::downgrade(&chunk), span);
    Some(Buf::Carved { chunk, off: 0, len })
}

impl Buf {
    fn zeroed(len: usize) -> Buf {
        if len == 0 {
            return Buf::Heap(Vec::new());
        }
        carve(len).unwrap_or_else(|| Buf::Heap(vec![Line([0; 64]); len.div_ceil(64)]))
    }
    fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: `off..off + len` lies in the chunk's mapping and belongs to this buffer.
            Buf::Carved { chunk, off, len } => unsafe {
                std::slice::from_raw_parts(chunk.base.add(*off), *len)
            },
            // SAFETY: `Line` is 64 plain bytes.
            Buf::Heap(v) => unsafe {
                std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 64)
            },
        }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            // SAFETY: as in `bytes`; no other buffer covers these bytes.
            Buf::Carved { chunk, off, len } => unsafe {
                std::slice::from_raw_parts_mut(chunk.base.add(*off), *len)
            },
            // SAFETY: as in `bytes`.
            Buf::Heap(v) => unsafe {
                std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 64)
            },
        }
    }
}

/// Runs `task(i)` for every `i < n_tasks`, possibly on several threads: `par(n_tasks, task)`.
pub type Par<'a> = &'a dyn Fn(usize, &(dyn Fn(usize) + Sync));

/// A weight matrix in an interleaved layout.
pub struct Interleaved {
    pub layout: Layout,
    pub rows: usize,
    pub cols: usize,
    width: usize,
    groups: usize,
    group_bytes: usize,
    data: Buf,
}

impl Interleaved {
    /// Repacks `rows × cols` weights of type `ty` given in ggml's row layout into groups of
    /// `width` (8 or 16) rows. `None` when `ty` has no interleaved layout or `cols` is not a whole
    /// number of blocks.
    pub fn pack(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        width: usize,
        src: &[u8],
    ) -> Option<Interleaved> {
        Self::pack_with(ty, rows, cols, width, src, &|n, f| (0..n).for_each(f))
    }

    /// [`Interleaved::pack`] with the groups packed in tasks run by `par(n_tasks, task)`, which
    /// calls `task(i)` once for every `i < n_tasks`, possibly from several threads.
    pub fn pack_with(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        width: usize,
        src: &[u8],
        par: Par<'_>,
    ) -> Option<Interleaved> {
        assert!(width == 8 || width == 16, "group width {width}");
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
        let group_bytes = nb * layout.block_bytes_per_row() * width;
        let groups = rows.div_ceil(width);
        let mut data = Buf::zeroed(groups * group_bytes);
        const GROUPS_PER_TASK: usize = 16;
        let dst = SharedMut::new(data.bytes_mut());
        par(groups.div_ceil(GROUPS_PER_TASK), &|task| {
            for g in task * GROUPS_PER_TASK..((task + 1) * GROUPS_PER_TASK).min(groups) {
                // SAFETY: each group's bytes are written by the one task that owns the group.
                let dst = unsafe { dst.range(g * group_bytes, group_bytes) };
                let n = width.min(rows - g * width);
                let rows: [&[u8]; MAX_ROWS] = std::array::from_fn(|r| {
                    let row = g * width + r.min(n - 1);
                    &src[row * row_size..(row + 1) * row_size]
                });
                let rows = &rows[..n];
                match layout {
                    Layout::Q4_0x8 => pack_q4_0(dst, nb, width, rows),
                    Layout::Q8_0x8 => pack_q8_0(dst, nb, width, rows),
                    Layout::Q4_Kx8 => pack_q4_k(dst, nb, width, rows),
                }
            }
        });
        Some(Interleaved {
            layout,
            rows,
            cols,
            width,
            groups,
            group_bytes,
            data,
        })
    }

    fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }
    /// The bytes of groups `g0..g1`.
    pub fn groups_bytes(&self, g0: usize, g1: usize) -> &[u8] {
        &self.bytes()[g0 * self.group_bytes..g1 * self.group_bytes]
    }
    /// Bytes per group.
    pub fn group_bytes(&self) -> usize {
        self.group_bytes
    }
    /// The bytes of group `g` (rows `width · g ..`).
    pub fn group(&self, g: usize) -> &[u8] {
        self.groups_bytes(g, g + 1)
    }
    /// Rows per group (8 or 16).
    pub fn width(&self) -> usize {
        self.width
    }
    /// Number of groups.
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

// Q4_0 and Q8_0 blocks are an f16 scale followed by the quants, and both layouts move the quants
// as 4-byte words: word `j` of block `b` of row `r` goes to word `j W + r` of the block's
// destination (a transpose of the group's `W × words` matrix of words). The packer reads each row's
// block in order and scatters its words within the block's destination (`4 W words` bytes, which
// stays in L1); words are moved as 4-byte units, never byte by byte.

/// Packs the blocks of a Q4_0 (`WORDS` = 4) or Q8_0 (`WORDS` = 8) group: `qs[nb][4 W WORDS]`,
/// then `d[nb][W]`. Raw copies after one check of every bound, rather than a bounds-checked
/// slice per word: one thread packing a 22528 × 2048 matrix (page faults of the new buffer
/// included, best of 7, medians of 3 alternations) went from 2.88 to 3.25 GB/s for Q4_0 and from
/// 2.68 to 3.10 for Q8_0; what is left is mostly the stores into freshly zeroed pages.
fn pack_scaled_words<const WORDS: usize>(dst: &mut [u8], nb: usize, w: usize, rows: &[&[u8]]) {
    let block_bytes = 2 + 4 * WORDS;
    assert!(
        rows.len() <= w && w <= MAX_ROWS,
        "{} rows in a group of {w}",
        rows.len()
    );
    assert!(dst.len() >= nb * (4 * WORDS + 2) * w, "group bytes");
    assert!(
        rows.iter().all(|r| r.len() >= nb * block_bytes),
        "row bytes"
    );
    let src: [*const u8; MAX_ROWS] =
        std::array::from_fn(|r| rows.get(r).map_or(std::ptr::null(), |r| r.as_ptr()));
    let qs = dst.as_mut_ptr();
    // SAFETY: by the checks above, block b of each row is in bounds of the row, and the words
    // (4 bytes at 4 (W (WORDS b + j) + r)) and scales (2 bytes at 2 (nb 2 W WORDS + W b + r))
    // written are in bounds of `dst`; sources and destination do not overlap (`dst` is mutable).
    unsafe {
        let d = qs.add(nb * 4 * WORDS * w);
        for b in 0..nb {
            let (q, db) = (qs.add(4 * WORDS * w * b), d.add(2 * w * b));
            for (r, &row) in src[..rows.len()].iter().enumerate() {
                let block = row.add(b * block_bytes);
                std::ptr::copy_nonoverlapping(block, db.add(2 * r), 2);
                for j in 0..WORDS {
                    std::ptr::copy_nonoverlapping(block.add(2 + 4 * j), q.add(4 * (w * j + r)), 4);
                }
            }
        }
    }
}

fn pack_q4_0(dst: &mut [u8], nb: usize, w: usize, rows: &[&[u8]]) {
    // Byte 4Wj + 4r + i holds values 4j+i (low nibble) and 16+4j+i (high nibble): exactly
    // Q4_0's byte qs[4j+i].
    pack_scaled_words::<4>(dst, nb, w, rows);
}

fn pack_q8_0(dst: &mut [u8], nb: usize, w: usize, rows: &[&[u8]]) {
    pack_scaled_words::<8>(dst, nb, w, rows);
}

/// Bytes per row of one super-block of [`Layout::Q4_Kx8`] (a group's super-block is `W` times
/// this): 8 scales, 8 mins, `d` and `dmin`, 128 bytes of quants.
pub const Q4K_SUPER: usize = 8 + 8 + 2 + 2 + 128;

/// Where the parts of one [`Layout::Q4_Kx8`] super-block of a `w`-row group start, from the
/// super-block's first byte (see the module documentation).
#[derive(Clone, Copy)]
pub struct Q4kSuper {
    pub scales: usize,
    pub mins: usize,
    pub d: usize,
    pub dmin: usize,
    pub qs: usize,
}

impl Q4kSuper {
    pub const fn new(w: usize) -> Q4kSuper {
        Q4kSuper {
            scales: 0,
            mins: 8 * w,
            d: 16 * w,
            dmin: 18 * w,
            qs: 20 * w,
        }
    }
}

fn pack_q4_k(dst: &mut [u8], ns: usize, w: usize, rows: &[&[u8]]) {
    let o = Q4kSuper::new(w);
    let src: Vec<&[BlockQ4K]> = rows.iter().map(|r| cast::<BlockQ4K>(r)).collect();
    for (s, sb) in dst[..ns * Q4K_SUPER * w]
        .chunks_exact_mut(Q4K_SUPER * w)
        .enumerate()
    {
        for (r, x) in src.iter().map(|b| &b[s]).enumerate() {
            sb[o.d + 2 * r..][..2].copy_from_slice(&x.d.0);
            sb[o.dmin + 2 * r..][..2].copy_from_slice(&x.dmin.0);
            for j in 0..8 {
                let (a, m) = get_scale_min_k4(j, &x.scales);
                sb[o.scales + w * j + r] = a;
                sb[o.mins + w * j + r] = m;
            }
        }
        // Q4_K: sub-block 2c = low nibbles of qs[32c..32c+32], 2c+1 = their high nibbles.
        for (k, qj) in sb[o.qs..].chunks_exact_mut(4 * w).enumerate() {
            let (c, j) = (k / 8, k % 8);
            for (r, x) in src.iter().map(|b| &b[s]).enumerate() {
                qj[4 * r..4 * r + 4].copy_from_slice(&x.qs[32 * c + 4 * j..32 * c + 4 * j + 4]);
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
    /// Scales per row (`cols / kind.scale_values()`).
    scales: usize,
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
        self.scales = cols / kind.scale_values();
        self.n = n;
        self.qs.resize(n * cols, 0);
        self.d.resize(n * self.scales, 0.0);
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
    /// Row `t`. Inlined and free of divisions: batch products take four rows per kernel call
    /// (as a call into another unit, this was 17 % of 160M Q4_0 pp128's samples in `perf`, most
    /// of them waiting on the returned row).
    #[inline]
    pub fn row(&self, t: usize) -> ActRow<'_> {
        let (c, ns) = (self.cols, self.scales);
        let nb = self.cols / QK;
        ActRow {
            qs: &self.qs[t * c..(t + 1) * c],
            d: &self.d[t * ns..(t + 1) * ns],
            sum: &self.sum[t * nb..(t + 1) * nb],
        }
    }
    /// The quants of rows `t0..t0 + nt`, contiguous (`cols` each).
    pub fn qs_rows(&self, t0: usize, nt: usize) -> &[i8] {
        &self.qs[t0 * self.cols..(t0 + nt) * self.cols]
    }
    /// The block scales of rows `t0..t0 + nt`, contiguous.
    pub fn d_rows(&self, t0: usize, nt: usize) -> &[f32] {
        let ns = self.scales;
        &self.d[t0 * ns..(t0 + nt) * ns]
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

/// The output of one kernel call: the group's row results for each of up to [`MAX_TOKENS`] tokens
/// (`out[t][r]`; a kernel of width 8 writes `r < 8`).
pub type Tile = [[f32; MAX_ROWS]; MAX_TOKENS];

/// A kernel: one group of an interleaved matrix (`nb` blocks) against `acts.len()` (1 ..=
/// [`MAX_TOKENS`]) activation rows; `out[t][r]` gets row `r` · activation `t`.
pub type GroupKernel = fn(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile);

/// A pair kernel: two groups of an interleaved matrix (`nb` blocks each) against `acts.len()` (1
/// ..= [`MAX_TOKENS`]) activation rows; `out[i][t][r]` gets row `r` of `groups[i]` · activation
/// `t`, exactly as the same build's [`GroupKernel`] gives it. Prompt batches use it where the build
/// has one: each activation broadcast then feeds the dot products of both groups (see the Q4_0
/// kernel in `kernels/avx512_x16.rs`).
pub type PairKernel = fn(groups: [&[u8]; 2], nb: usize, acts: &[ActRow<'_>], out: &mut [Tile; 2]);

/// A one-token kernel: the consecutive groups of an interleaved matrix that start at `groups`
/// (`stride` bytes apart, `nb` blocks or super-blocks each) against one activation row; `out[i]`
/// gets row `i` from the first group's first row on (`out.len()` rows: the last group's rows past
/// it, its padding, are not written).
///
/// Generation reads every weight once per token, so these products are bound by how fast one
/// core streams memory. The kernels walk two groups side by side, block by block: two streams of
/// weights in flight, each prefetched ahead, read faster than one (`benches/stream`, product ÷
/// read, see docs/BENCHMARKS.md).
pub type TokenKernel =
    fn(groups: &[u8], stride: usize, nb: usize, act: &ActRow<'_>, out: &mut [f32]);

/// Runs a one-token product over consecutive groups two at a time, for a [`TokenKernel`]:
/// `f(groups, tiles)` computes `tiles[i][0][r]`, row `r` of `groups[i]` (one or two groups of
/// `stride` bytes), and the rows are copied to `out` as [`TokenKernel`] says.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // no NEON one-token kernel yet
pub(crate) fn in_pairs(
    groups: &[u8],
    stride: usize,
    width: usize,
    out: &mut [f32],
    mut f: impl FnMut(&[&[u8]], &mut [Tile]),
) {
    let ng = out.len().div_ceil(width);
    assert!(
        groups.len() >= ng * stride,
        "groups shorter than their rows"
    );
    let mut tiles = [[[0f32; MAX_ROWS]; MAX_TOKENS]; 2];
    let mut g = 0;
    while g < ng {
        let k = (ng - g).min(2);
        let pair: [&[u8]; 2] = std::array::from_fn(|i| {
            let at = (g + i.min(k - 1)) * stride;
            &groups[at..at + stride]
        });
        f(&pair[..k], &mut tiles);
        let end = ((g + k) * width).min(out.len());
        let rows = &mut out[g * width..end];
        for (i, o) in rows.iter_mut().enumerate() {
            *o = tiles[i / width][0][i % width];
        }
        g += k;
    }
}

/// A float-row kernel: `out[t][r]` = row `w[r]` (up to four, f16 bytes) · `x[t]` (up to
/// [`MAX_TOKENS`] f32 rows), all `n` values long (`n` a multiple of 8).
pub type RowsKernel = fn(w: &[&[u8]], x: &[&[f32]], n: usize, out: &mut [[f32; 4]; MAX_TOKENS]);

/// A Q8_0 row kernel: `out[t][r]` = Q8_0 row `w[r]` (up to four, ggml's row layout, `nb` blocks)
/// · activation `acts[t]` (up to [`MAX_TOKENS`], [`ActKind::Q8_0`] rows).
pub type Q8RowsKernel =
    fn(w: &[&[u8]], acts: &[ActRow<'_>], nb: usize, out: &mut [[f32; 4]; MAX_TOKENS]);

/// Scalar Q8_0 row kernel (the reference): per block, the integer dot times both scales.
pub fn q8_0_rows_scalar(
    w: &[&[u8]],
    acts: &[ActRow<'_>],
    nb: usize,
    out: &mut [[f32; 4]; MAX_TOKENS],
) {
    for (t, a) in acts.iter().enumerate() {
        for (r, row) in w.iter().enumerate() {
            let blocks = cast::<BlockQ8_0>(&row[..nb * std::mem::size_of::<BlockQ8_0>()]);
            let mut s = 0f32;
            for (b, blk) in blocks.iter().enumerate() {
                let dot: i32 = blk
                    .qs
                    .iter()
                    .zip(&a.qs[32 * b..32 * b + 32])
                    .map(|(&w, &x)| w as i32 * x as i32)
                    .sum();
                s += dot as f32 * blk.d.to_f32() * a.d[b];
            }
            out[t][r] = s;
        }
    }
}

/// The widest weight panel ([`F16Gemm::mr`]) of any build.
pub const GEMM_MAX_MR: usize = 32;

/// A register-tiled f16 × f32 matrix product for batches of tokens (prompt processing), used by
/// `model::matmul`: weight rows are converted once per batch into f32 panels, then a micro-kernel
/// multiplies a panel with `nr` tokens per call without any conversion in its inner loop.
#[derive(Clone, Copy)]
pub struct F16Gemm {
    /// Weight rows per panel (a multiple of the register width, at most [`GEMM_MAX_MR`]).
    pub mr: usize,
    /// Tokens per micro-kernel call (the packed activations' interleave).
    pub nr: usize,
    /// Packs a panel (see [`PackPanel`]).
    pub pack: PackPanel,
    /// The micro-kernel (see [`MicroKernel`]).
    pub micro: MicroKernel,
}

/// `panel[k * mr + i]` = f16 row `w[i]` value `k0 + k`, as f32, for `k < kc` (a multiple of 8)
/// and `i < mr` (`w.len() == mr`; rows past the matrix's end are given as repeats).
pub type PackPanel = fn(w: &[&[u8]], k0: usize, kc: usize, panel: &mut [f32]);

/// The part of the output one micro-kernel call writes: `tokens` (≤ `nr`) rows of `ldc` values,
/// `rows` (≤ `mr`) of them from `ptr` on, each `ldc` apart.
pub struct CTile {
    pub ptr: *mut f32,
    pub ldc: usize,
    pub rows: usize,
    pub tokens: usize,
    /// Add to the values there (later K blocks) instead of overwriting them.
    pub add: bool,
}

/// `c[t][i]` (+)= Σ_{k < kc} `panel[k * mr + i]` · `xp[k * nr + t]` for `t < c.tokens`,
/// `i < c.rows`.
///
/// # Safety
/// `panel` holds `kc * mr` and `xp` `kc * nr` values; `c` points to writable memory for every
/// (token, row) it names, which no one else accesses during the call.
pub type MicroKernel = unsafe fn(panel: &[f32], xp: &[f32], kc: usize, c: &CTile);

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

fn f16s<const W: usize>(d: &[u8], b: usize) -> [f32; W] {
    std::array::from_fn(|r| Half([d[2 * W * b + 2 * r], d[2 * W * b + 2 * r + 1]]).to_f32())
}

/// Scalar Q4_0 kernel of width `W` (the reference).
pub fn q4_0_scalar<const W: usize>(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    let (qs, d) = group.split_at(nb * 16 * W);
    for (t, a) in acts.iter().enumerate() {
        for b in 0..nb {
            let dw = f16s::<W>(d, b);
            for r in 0..W {
                let mut s = 0i32;
                for j in 0..4 {
                    for i in 0..4 {
                        let q = qs[b * 16 * W + 4 * W * j + 4 * r + i];
                        s += (q & 15) as i32 * a.qs[b * 32 + 4 * j + i] as i32;
                        s += (q >> 4) as i32 * a.qs[b * 32 + 16 + 4 * j + i] as i32;
                    }
                }
                s -= 8 * a.sum[b];
                let v = s as f32 * (dw[r] * a.d[b]);
                out[t][r] = if b == 0 { v } else { out[t][r] + v };
            }
        }
    }
}

/// Scalar Q8_0 kernel of width `W` (the reference).
pub fn q8_0_scalar<const W: usize>(group: &[u8], nb: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    let (qs, d) = group.split_at(nb * 32 * W);
    for (t, a) in acts.iter().enumerate() {
        for b in 0..nb {
            let dw = f16s::<W>(d, b);
            for r in 0..W {
                let mut s = 0i32;
                for j in 0..8 {
                    for i in 0..4 {
                        let q = qs[b * 32 * W + 4 * W * j + 4 * r + i] as i8;
                        s += q as i32 * a.qs[b * 32 + 4 * j + i] as i32;
                    }
                }
                let v = s as f32 * (dw[r] * a.d[b]);
                out[t][r] = if b == 0 { v } else { out[t][r] + v };
            }
        }
    }
}

/// Scalar Q4_K kernel of width `W` (the reference).
pub fn q4_k_scalar<const W: usize>(group: &[u8], ns: usize, acts: &[ActRow<'_>], out: &mut Tile) {
    let o = Q4kSuper::new(W);
    for (t, a) in acts.iter().enumerate() {
        for (s, sb) in group[..ns * Q4K_SUPER * W]
            .chunks_exact(Q4K_SUPER * W)
            .enumerate()
        {
            let (dw, mw) = (f16s::<W>(&sb[o.d..], 0), f16s::<W>(&sb[o.dmin..], 0));
            let (sc, mn, qs) = (&sb[o.scales..], &sb[o.mins..], &sb[o.qs..]);
            for r in 0..W {
                let (mut isum, mut msum) = (0i32, 0i32);
                for c in 0..4 {
                    let (mut lo, mut hi) = (0i32, 0i32);
                    for j in 0..8 {
                        for i in 0..4 {
                            let q = qs[32 * W * c + 4 * W * j + 4 * r + i];
                            let v = s * 256 + 64 * c + 4 * j + i;
                            lo += (q & 15) as i32 * a.qs[v] as i32;
                            hi += (q >> 4) as i32 * a.qs[v + 32] as i32;
                        }
                    }
                    isum += lo * sc[W * (2 * c) + r] as i32 + hi * sc[W * (2 * c + 1) + r] as i32;
                }
                for j in 0..8 {
                    msum += mn[W * j + r] as i32 * a.sum[s * 8 + j];
                }
                let v = a.d[s] * (dw[r] * isum as f32 - mw[r] * msum as f32);
                out[t][r] = if s == 0 { v } else { out[t][r] + v };
            }
        }
    }
}

/// The scalar kernel of a layout for groups of `width` rows.
pub fn scalar_kernel(layout: Layout, width: usize) -> GroupKernel {
    match (layout, width) {
        (Layout::Q4_0x8, 8) => q4_0_scalar::<8>,
        (Layout::Q8_0x8, 8) => q8_0_scalar::<8>,
        (Layout::Q4_Kx8, 8) => q4_k_scalar::<8>,
        (Layout::Q4_0x8, _) => q4_0_scalar::<16>,
        (Layout::Q8_0x8, _) => q8_0_scalar::<16>,
        (Layout::Q4_Kx8, _) => q4_k_scalar::<16>,
    }
}

/// The f16 row kernel this process uses.
pub fn f16_rows_kernel() -> RowsKernel {
    crate::quant::kernels::get().f16_rows
}

/// The f16 GEMM kernels this process uses, if its build has them.
pub fn f16_gemm_kernel() -> Option<F16Gemm> {
    crate::quant::kernels::get().f16_gemm
}

/// The name of the matrix kernels' build this process uses.
pub fn kernel_name() -> &'static str {
    crate::quant::kernels::get().matrix_name
}

/// The one-token kernel this process uses for a layout, if its build has one, and the group
/// width it needs.
pub fn token_kernel(layout: Layout) -> Option<(TokenKernel, usize)> {
    let k = crate::quant::kernels::get();
    let f = match layout {
        Layout::Q4_0x8 => k.q4_0_token,
        Layout::Q8_0x8 | Layout::Q4_Kx8 => None,
    };
    f.map(|f| (f, k.group_width))
}

/// The pair kernel this process uses for a layout, where it has one, and its group width.
pub fn pair_kernel(layout: Layout) -> Option<(PairKernel, usize)> {
    let k = crate::quant::kernels::get();
    let f = match layout {
        Layout::Q4_0x8 => k.q4_0_pair,
        Layout::Q8_0x8 => k.q8_0_pair,
        Layout::Q4_Kx8 => k.q4_k_pair,
    };
    f.map(|f| (f, k.group_width))
}

/// The kernel this process uses for a layout and the group width it needs.
pub fn kernel(layout: Layout) -> (GroupKernel, usize) {
    let k = crate::quant::kernels::get();
    let f = match layout {
        Layout::Q4_0x8 => k.q4_0x8,
        Layout::Q8_0x8 => k.q8_0x8,
        Layout::Q4_Kx8 => k.q4_kx8,
    };
    (f, k.group_width)
}

#[cfg(test)]
mod tests;
