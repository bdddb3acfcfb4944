//! The f16 GEMM on AMX tiles (Intel AMX-BF16), for prompt batches of F16 weights.
//!
//! AMX multiplies bf16 only, so each operand is split into bf16 parts whose sum is the value:
//! an f16 weight `w = wh + wl` exactly (f16 has 11 significant bits, `wh` is `w` truncated to
//! bf16's 8 and the remainder, at most 3 bits, is exact in bf16; f16's range lies inside bf16's),
//! and an f32 activation `x = xh + xm + xl` exactly (three times 8 bits rounded to nearest even,
//! barring overflow near f32's maximum). The products computed are
//! `wh·xh + wl·xh + wh·xm + wl·xm` ([`PRODUCTS`]); each bf16 × bf16 product is exact in f32
//! and `tdpbf16ps` accumulates in f32, so the only term left out, `wh·xl` (|xl| ≤ 2^-16 |x|,
//! together with `wl·xl`), bounds the error at about 2^-16 Σ|w x| + f32 accumulation rounding.
//! (The f32 FMA GEMM's is ~K·2^-24 Σ|w x| worst case; ggml's f16 path rounds activations to f16,
//! 2^-11.)
//!
//! Tiles: C is 16 weight rows × 16 tokens of f32; A 16 weight rows × 32 bf16 values (row-major,
//! as the weights are stored); B 16 pairs of values × 16 tokens × 2 (the pair layout
//! `tdpbf16ps` wants). A call computes 32 rows × 32 tokens in four C tiles (tmm0..3) over the
//! whole K, with A in tmm4/5 and B in tmm6/7, then stores the tiles and writes them transposed
//! into the token-major output.
//!
//! Instructions are emitted with `asm!` (Rust's AMX intrinsics are not stable); the process asks
//! Linux for the tile-data state once (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`),
//! and every call loads its tile configuration and releases the tiles at the end.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use crate::quant::interleaved::{Q4kSuper, Q4K_SUPER};

/// Weight rows per panel (two A tiles).
pub(crate) const MR: usize = 32;
/// Tokens per block of packed activations (one B tile).
pub(crate) const NB: usize = 16;
/// Values per K chunk (one tile row of bf16).
const KC: usize = 32;
/// Weight parts (`wh`, `wl`) and activation parts packed (`xh`, `xm`).
const WP: usize = 2;
const XP: usize = 2;
/// The (weight part, activation part) products summed, grouped by weight part (each group loads
/// its A tiles once). Measured on the 160M F16 file (pp128, 2 threads): see the commit message.
const PRODUCTS: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 1), (1, 0)];

/// Whether this CPU and OS run AMX-BF16 and AMX-INT8 (and the environment does not say `FERROLLM_AMX=0`).
pub(crate) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if std::env::var("FERROLLM_AMX").is_ok_and(|v| v == "0") {
            return false;
        }
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")) {
            return false;
        }
        // CPUID.(7,0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE, bit 25 AMX-INT8.
        // SAFETY: leaf 7 exists on every CPU with AVX-512 (`__cpuid_count` is safe from Rust
        // 1.94 on, unsafe before).
        #[allow(unused_unsafe)]
        let edx = unsafe { __cpuid_count(7, 0) }.edx;
        if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 || edx & (1 << 25) == 0 {
            return false;
        }
        request_tile_state()
    })
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: permission for this process's threads
/// to use the tile registers (Linux 5.16+); false where refused or not Linux.
fn request_tile_state() -> bool {
    #[cfg(target_os = "linux")]
    {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: a plain system call; it reads and writes no user memory.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// `u32` values of the packed activations of `n` tokens with `cols` values each.
pub(crate) fn acts_len(n: usize, cols: usize) -> usize {
    n.div_ceil(2 * NB) * 2 * block_len(cols)
}

/// `u32` values per block of [`NB`] tokens: for each part, `kp` pairs × 16 tokens.
fn block_len(cols: usize) -> usize {
    XP * cols.next_multiple_of(KC) / 2 * NB
}

/// The load mask of the 16 values from `at` of a row of `cols` values.
#[inline]
fn mask16(cols: usize, at: usize) -> u16 {
    if at >= cols {
        0
    } else {
        ((1u32 << (cols - at).min(16)) - 1) as u16
    }
}

/// RNE of the f32 values `v` to bf16, as f32 bit patterns (low 16 bits zero).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn round_bf16(v: __m512) -> __m512i {
    let b = _mm512_castps_si512(v);
    let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
    let r = _mm512_add_epi32(b, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
    _mm512_and_si512(r, _mm512_set1_epi32(0xffff_0000u32 as i32))
}

/// Packs token block `tb` (tokens `16 tb ..`, zeros past `n`) of the rows of `x` (`cols` values
/// each) into `out` ([`block_len`] values): part `p`, pair `kp`, token `t` at
/// `(p kp_total + kp) 16 + t`, the pair's two bf16 values in one `u32` (even value low).
pub(crate) fn pack_acts_block(x: &[f32], n: usize, cols: usize, tb: usize, out: &mut [u32]) {
    let kpad = cols.next_multiple_of(KC);
    let kp_total = kpad / 2;
    assert!(out.len() >= block_len(cols) && x.len() >= n * cols && available());
    out[..block_len(cols)].fill(0);
    // SAFETY: `available` checked AVX-512F/BW; the scatter indices stay below `block_len` and
    // the loads within row t (masked past `cols`).
    unsafe { pack_acts_imp(x, n, cols, tb, kp_total, out.as_mut_ptr()) }
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_acts_imp(
    x: &[f32],
    n: usize,
    cols: usize,
    tb: usize,
    kp_total: usize,
    out: *mut u32,
) {
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // pair j of a chunk of 32 values goes to row j: index 16 j (+ token)
    let idx = _mm512_slli_epi32::<4>(lane);
    // even words of two vectors' high halves: the bf16 of values 0..16 of `lo`, then of `hi`
    let odd_words = odd_words();
    for t in 0..NB.min(n.saturating_sub(tb * NB)) {
        let row = x.as_ptr().add((tb * NB + t) * cols);
        for k in (0..cols).step_by(KC) {
            let v = [
                _mm512_maskz_loadu_ps(mask16(cols, k), row.add(k)),
                _mm512_maskz_loadu_ps(mask16(cols, k + 16), row.add(k + 16)),
            ];
            // parts of each half: h = rne(x), m = rne(x - h)
            let mut parts = [[_mm512_setzero_si512(); 2]; XP];
            for (h, &x) in v.iter().enumerate() {
                let hb = round_bf16(x);
                parts[0][h] = hb;
                let rest = _mm512_sub_ps(x, _mm512_castsi512_ps(hb));
                parts[1][h] = round_bf16(rest);
            }
            for (p, [lo, hi]) in parts.iter().enumerate() {
                let pairs = _mm512_permutex2var_epi16(*lo, odd_words, *hi);
                let base = out.add((p * kp_total + k / 2) * NB + t);
                _mm512_i32scatter_epi32::<4>(base as *mut i32, idx, pairs);
            }
        }
    }
}

/// Word indices of `_mm512_permutex2var_epi16` taking the odd 16-bit words (the bf16 high halves
/// of 32-bit values) of two vectors: those of the first, then those of the second.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn odd_words() -> __m512i {
    _mm512_setr_epi32(
        0x0003_0001,
        0x0007_0005,
        0x000b_0009,
        0x000f_000d,
        0x0013_0011,
        0x0017_0015,
        0x001b_0019,
        0x001f_001d,
        0x0023_0021,
        0x0027_0025,
        0x002b_0029,
        0x002f_002d,
        0x0033_0031,
        0x0037_0035,
        0x003b_0039,
        0x003f_003d,
    )
}

/// Writes the packed f16 rows `w` (`MR` rows, `cols` values each; rows past the matrix are
/// repeats) as bf16 parts into `panel`: chunk `c` (32 values), part `p`, row `r`, value `kk` at
/// `((c WP + p) MR + r) 32 + kk` (zeros past `cols`). Every A tile is then 1 KB contiguous.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn pack_panel(w: &[&[u8]], cols: usize, panel: *mut u16) {
    let odd_words = odd_words();
    for (r, row) in w.iter().enumerate() {
        let p = row.as_ptr();
        for k in (0..cols).step_by(KC) {
            // (no closures here: they would not inherit the target features, and the
            // intrinsics inside would become calls)
            let v = [
                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                    mask16(cols, k),
                    p.add(2 * k) as *const i16,
                )),
                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                    mask16(cols, k + 16),
                    p.add(2 * k + 32) as *const i16,
                )),
            ];
            // wh = w truncated to bf16: w - wh has at most 3 significant bits (f16 has 11), so
            // the split is exact as with rounding, for one AND instead of four operations
            let top = _mm512_set1_epi32(0xffff_0000u32 as i32);
            let h = [
                _mm512_and_si512(_mm512_castps_si512(v[0]), top),
                _mm512_and_si512(_mm512_castps_si512(v[1]), top),
            ];
            let l = [
                _mm512_castps_si512(_mm512_sub_ps(v[0], _mm512_castsi512_ps(h[0]))),
                _mm512_castps_si512(_mm512_sub_ps(v[1], _mm512_castsi512_ps(h[1]))),
            ];
            let c = k / KC;
            for (part, [lo, hi]) in [h, l].iter().enumerate() {
                let dst = panel.add(((c * WP + part) * MR + r) * KC);
                _mm512_storeu_si512(
                    dst as *mut _,
                    _mm512_permutex2var_epi16(*lo, odd_words, *hi),
                );
            }
        }
    }
}

/// The tile configuration: palette 1, eight tiles of 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    const fn all_full() -> TileConfig {
        TileConfig::shapes([(16, 64); 8])
    }
    /// Palette 1 with tile `i` of `shapes[i].0` rows × `shapes[i].1` bytes.
    const fn shapes(shapes: [(u8, u8); 8]) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut i = 0;
        while i < 8 {
            c[16 + 2 * i] = shapes[i].1; // colsb (u16 LE)
            c[48 + i] = shapes[i].0; // rows
            i += 1;
        }
        TileConfig(c)
    }
}

static CONFIG: TileConfig = TileConfig::all_full();

macro_rules! tload {
    ($t:literal, $p:expr) => {
        asm!(
            concat!("tileloadd tmm", $t, ", [{p} + {s}*1]"),
            p = in(reg) $p,
            s = in(reg) 64usize,
            options(nostack, readonly),
        )
    };
}
macro_rules! tdp {
    ($c:literal, $a:literal, $b:literal) => {
        asm!(
            concat!("tdpbf16ps tmm", $c, ", tmm", $a, ", tmm", $b),
            options(nostack, nomem)
        )
    };
}
macro_rules! tstore {
    ($t:literal, $p:expr) => {
        asm!(
            concat!("tilestored [{p} + {s}*1], tmm", $t),
            p = in(reg) $p,
            s = in(reg) 64usize,
            options(nostack),
        )
    };
}

/// Row blocks `b0..b1` ([`MR`] rows each) of the f16 matrix with rows `row(r)` (`rows` × `cols`)
/// against `n` tokens packed by [`pack_acts_block`] in `xp`, into `dst` (`n × rows`, token-major):
/// `dst(start, len)` gives the output slice of one token's rows.
///
/// # Safety
/// `dst` is writable for every token's rows `b0 MR .. min(b1 MR, rows)` and no one else accesses
/// them during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn f16_chunk<'a>(
    row: &dyn Fn(usize) -> &'a [u8],
    rows: usize,
    cols: usize,
    xp: &[u32],
    n: usize,
    b0: usize,
    b1: usize,
    dst: *mut f32,
) {
    assert!(available() && xp.len() >= acts_len(n, cols));
    let kpad = cols.next_multiple_of(KC);
    thread_local! {
        /// The panel of each thread, reused (a fresh one of 256 KB is a fresh mapping per call).
        static PANEL: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let ntp = n.div_ceil(2 * NB);
    PANEL.with_borrow_mut(|panel| {
        if panel.len() < kpad * WP * MR {
            panel.resize(kpad * WP * MR, 0);
        }
        asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
        for b in b0..b1 {
            let r0 = b * MR;
            let nrows = MR.min(rows - r0);
            let wr: [&[u8]; MR] = std::array::from_fn(|i| row(r0 + i.min(nrows - 1)));
            assert!(wr.iter().all(|r| r.len() >= 2 * cols));
            pack_panel(&wr, cols, panel.as_mut_ptr());
            for tp in 0..ntp {
                // While the tiles run, bring the next panel's rows into L2 (a share per token pair):
                // packing read them from memory otherwise, about half of its time in the profile.
                if b + 1 < b1 {
                    for i in (tp..MR).step_by(ntp) {
                        let r = (b + 1) * MR + i;
                        if r < rows {
                            let p = row(r);
                            for l in (0..p.len()).step_by(64) {
                                _mm_prefetch::<_MM_HINT_T1>(p.as_ptr().add(l) as *const i8);
                            }
                        }
                    }
                }
                let x = xp.as_ptr().add(2 * tp * block_len(cols));
                let mut c = [[0f32; NB * NB]; 4];
                tiles(panel.as_ptr(), x, block_len(cols), kpad, &mut c);
                // C tile (rt, tt) holds rows 16 rt.., tokens 32 tp + 16 tt..
                for (i, tile) in c.iter().enumerate() {
                    let (rt, tt) = (i / 2, i % 2);
                    let t0 = 2 * tp * NB + tt * NB;
                    let rr0 = 16 * rt;
                    if t0 >= n || rr0 >= nrows {
                        continue;
                    }
                    let nr = 16.min(nrows - rr0);
                    write_transposed(
                        tile,
                        16.min(n - t0),
                        nr,
                        dst.add(t0 * rows + r0 + rr0),
                        rows,
                    );
                }
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    })
}

/// `dst[t ldd + r] = tile[r][t]` for `t < nt`, `r < nr`: each token's column gathered (16
/// loads in one instruction) and stored with a mask, instead of 256 scalar copies (those were
/// about 5 % of an F16 product's time on 2048 × 768).
#[target_feature(enable = "avx512f")]
unsafe fn write_transposed(tile: &[f32; NB * NB], nt: usize, nr: usize, dst: *mut f32, ldd: usize) {
    let idx = _mm512_setr_epi32(
        0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240,
    );
    let mask = ((1u32 << nr) - 1) as u16;
    for t in 0..nt {
        let col = _mm512_i32gather_ps::<4>(idx, tile.as_ptr().add(t));
        _mm512_mask_storeu_ps(dst.add(t * ldd), mask, col);
    }
}

/// The four C tiles of one panel against one pair of token blocks over the whole K (the tile
/// configuration loaded).
#[target_feature(enable = "avx512f")]
unsafe fn tiles(
    panel: *const u16,
    x: *const u32,
    blen: usize,
    kpad: usize,
    c: &mut [[f32; 256]; 4],
) {
    let kp_total = kpad / 2;
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        options(nostack, nomem)
    );
    for ch in 0..kpad / KC {
        let (mut wp_loaded, mut xp_loaded) = (usize::MAX, usize::MAX);
        for &(wp, xpart) in &PRODUCTS {
            if wp != wp_loaded {
                let a = panel.add((ch * WP + wp) * MR * KC);
                tload!(4, a);
                tload!(5, a.add(16 * KC));
                wp_loaded = wp;
            }
            if xpart != xp_loaded {
                let b = x.add((xpart * kp_total + ch * KC / 2) * NB);
                tload!(6, b);
                tload!(7, b.add(blen));
                xp_loaded = xpart;
            }
            tdp!(0, 4, 6);
            tdp!(1, 4, 7);
            tdp!(2, 5, 6);
            tdp!(3, 5, 7);
        }
    }
    tstore!(0, c[0].as_mut_ptr());
    tstore!(1, c[1].as_mut_ptr());
    tstore!(2, c[2].as_mut_ptr());
    tstore!(3, c[3].as_mut_ptr());
}

// ---------------------------------------------------------------- Q4_K

/// Tile shapes of the Q4_K kernel (all 16 rows × 64 bytes): tmm0..2 the products with the scaled
/// codes' high and low parts and with the mins (16 tokens × 16 weight rows of i32), tmm3 the
/// activations (16 tokens × 64 values), tmm4..6 the weights' operands (16 quads of values × 16
/// rows × 4 bytes: the quad layout of `tdpbsud`, which the interleaved Q4_K groups already use).
static CONFIG_Q4K: TileConfig = TileConfig::all_full();

/// Tokens per Q4_K tile.
pub(crate) const Q4K_TOKENS: usize = 16;

/// Groups `g0..g1` (16 rows each) of an interleaved Q4_K matrix (`Layout::Q4_Kx8` with width 16,
/// `ns` super-blocks per row, `rows` rows) against `n` Q8_K activation rows, into `dst` (`n ×
/// rows`, token-major). `group(g)` is group `g`'s bytes; `qs` the activations' quants (`n` rows of
/// `256 ns`) and `ad` their super-block scales (`n × ns`).
///
/// The sub-block scales are folded into the weights before the products: per super-block, each
/// code times its 6-bit scale (≤ 63 · 15 = 945) is split into `hi = sc q >> 2` (≤ 236) and
/// `lo = sc q & 3`, both unsigned bytes, and `Σ a sc q = 4 Σ a hi + Σ a lo` exactly; the mins'
/// term `Σ_sub min Σ a` is a third product with the min repeated over its sub-block's values. So
/// one super-block of 16 tokens × 16 rows is 12 `tdpbsud` (three per 64 values), read out once:
/// the integer sums are those of the VNNI kernel (`q4_k_imp`), and the f32 scaling (`d`, `dmin`
/// and the activations' scale) is the same.
///
/// # Safety
/// `dst` is writable for every token's rows `16 g0 .. min(16 g1, rows)` and no one else accesses
/// them during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn q4_k_chunk<'a>(
    group: &dyn Fn(usize) -> &'a [u8],
    ns: usize,
    rows: usize,
    qs: &[i8],
    ad: &[f32],
    n: usize,
    g0: usize,
    g1: usize,
    dst: *mut f32,
) {
    let cols = 256 * ns;
    assert!(available() && qs.len() >= n * cols && ad.len() >= n * ns);
    let ntb = n.div_ceil(Q4K_TOKENS);
    // the last partial block of tokens, padded with zero rows (tile loads read 16 rows)
    let tail = n % Q4K_TOKENS;
    let mut pad = vec![0i8; if tail > 0 { Q4K_TOKENS * cols } else { 0 }];
    if tail > 0 {
        pad[..tail * cols].copy_from_slice(&qs[(n - tail) * cols..n * cols]);
    }
    let mut ops = Box::new(Q4kOperands([[[0u8; 1024]; 4]; 3]));
    let mut acc = vec![[[0f32; 16]; Q4K_TOKENS]; ntb];
    asm!("ldtilecfg [{}]", in(reg) CONFIG_Q4K.0.as_ptr(), options(nostack, readonly));
    for g in g0..g1 {
        let grp = group(g);
        assert!(grp.len() >= ns * Q4K_SUPER * 16);
        for s in 0..ns {
            let sb = grp.as_ptr().add(s * Q4K_SUPER * 16);
            pack_q4_k_super(sb, &mut ops);
            for (tb, acc) in acc.iter_mut().enumerate() {
                let t0 = tb * Q4K_TOKENS;
                let a = if t0 + Q4K_TOKENS > n {
                    pad.as_ptr()
                } else {
                    qs.as_ptr().add(t0 * cols)
                };
                let das: [f32; Q4K_TOKENS] =
                    std::array::from_fn(|t| ad[(t0 + t).min(n - 1) * ns + s]);
                q4_k_super(sb, a.add(256 * s), cols, &ops, &das, acc, s == 0);
            }
        }
        let r0 = 16 * g;
        let nr = 16.min(rows - r0);
        for (tb, acc) in acc.iter().enumerate() {
            let t0 = tb * Q4K_TOKENS;
            for (t, o) in acc.iter().enumerate().take(Q4K_TOKENS.min(n - t0)) {
                let d = dst.add((t0 + t) * rows + r0);
                if nr == 16 {
                    std::ptr::copy_nonoverlapping(o.as_ptr(), d, 16);
                } else {
                    std::ptr::copy_nonoverlapping(o.as_ptr(), d, nr);
                }
            }
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

/// The weight operands of one super-block: `[part][chunk]`, part 0 `hi`, 1 `lo`, 2 the mins;
/// chunk `c` (values `64 c ..`) as 16 quads × 16 rows × 4 bytes.
#[repr(C, align(64))]
struct Q4kOperands([[[u8; 1024]; 4]; 3]);

/// Fills `ops` for the super-block at `sb` of a 16-row Q4_K group (see [`q4_k_chunk`]).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_q4_k_super(sb: *const u8, ops: &mut Q4kOperands) {
    let m4 = _mm512_set1_epi8(15);
    let low = _mm512_set1_epi16(0xff);
    const O: Q4kSuper = Q4kSuper::new(16);
    let (sc, mn) = (sb.add(O.scales), sb.add(O.mins));
    // each row's byte of sub-block j, repeated over the row's four bytes of a quad (a macro:
    // a closure would not inherit the target features)
    macro_rules! rep {
        ($p:expr) => {
            _mm512_mullo_epi32(
                _mm512_cvtepu8_epi32(_mm_loadu_si128($p as *const __m128i)),
                _mm512_set1_epi32(0x0101_0101),
            )
        };
    }
    for c in 0..4 {
        let p = sb.add(O.qs + 512 * c);
        for half in 0..2 {
            let j = 2 * c + half;
            let scv = rep!(sc.add(16 * j));
            let mnv = rep!(mn.add(16 * j));
            let (sc_e, sc_o) = (_mm512_and_si512(scv, low), _mm512_srli_epi16::<8>(scv));
            for k in 0..8 {
                let v = _mm512_loadu_si512(p.add(64 * k) as *const _);
                let q = if half == 0 {
                    _mm512_and_si512(v, m4)
                } else {
                    _mm512_and_si512(_mm512_srli_epi16::<4>(v), m4)
                };
                // sc q per byte, as 16-bit products of the even and odd bytes
                let pe = _mm512_mullo_epi16(_mm512_and_si512(q, low), sc_e);
                let po = _mm512_mullo_epi16(_mm512_srli_epi16::<8>(q), sc_o);
                let hi = _mm512_or_si512(
                    _mm512_srli_epi16::<2>(pe),
                    _mm512_slli_epi16::<8>(_mm512_srli_epi16::<2>(po)),
                );
                let three = _mm512_set1_epi16(3);
                let lo = _mm512_or_si512(
                    _mm512_and_si512(pe, three),
                    _mm512_slli_epi16::<8>(_mm512_and_si512(po, three)),
                );
                let row = 64 * (8 * half + k);
                _mm512_store_si512(ops.0[0][c].as_mut_ptr().add(row) as *mut _, hi);
                _mm512_store_si512(ops.0[1][c].as_mut_ptr().add(row) as *mut _, lo);
                _mm512_store_si512(ops.0[2][c].as_mut_ptr().add(row) as *mut _, mnv);
            }
        }
    }
}

macro_rules! tload_s {
    ($t:literal, $p:expr, $stride:expr) => {
        asm!(
            concat!("tileloadd tmm", $t, ", [{p} + {s}*1]"),
            p = in(reg) $p,
            s = in(reg) $stride,
            options(nostack, readonly),
        )
    };
}

/// One super-block (at `sb`, its operands in `ops`) of 16 rows × 16 tokens (the super-block's
/// quants from `a`, rows `lda` apart, scales `da`), added into `acc[t][r]` (written over when
/// `first`; the Q4_K tile configuration loaded).
#[target_feature(enable = "avx512f,avx512bw,f16c")]
unsafe fn q4_k_super(
    sb: *const u8,
    a: *const i8,
    lda: usize,
    ops: &Q4kOperands,
    da: &[f32; Q4K_TOKENS],
    acc: &mut [[f32; 16]; Q4K_TOKENS],
    first: bool,
) {
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        options(nostack, nomem)
    );
    for c in 0..4 {
        tload_s!(3, a.add(64 * c), lda);
        tload_s!(4, ops.0[0][c].as_ptr(), 64usize);
        tload_s!(5, ops.0[1][c].as_ptr(), 64usize);
        tload_s!(6, ops.0[2][c].as_ptr(), 64usize);
        asm!(
            "tdpbsud tmm0, tmm3, tmm4",
            "tdpbsud tmm1, tmm3, tmm5",
            "tdpbsud tmm2, tmm3, tmm6",
            options(nostack, nomem)
        );
    }
    // the three tiles' i32 results, written by `tilestored` only
    #[repr(align(64))]
    struct Buf(#[allow(dead_code)] [[[i32; 16]; 16]; 3]);
    let mut cb = std::mem::MaybeUninit::<Buf>::uninit();
    let cp = cb.as_mut_ptr() as *mut [i32; 16];
    tstore!(0, cp);
    tstore!(1, cp.add(16));
    tstore!(2, cp.add(32));
    const O: Q4kSuper = Q4kSuper::new(16);
    let dw = _mm512_cvtph_ps(_mm256_loadu_si256(sb.add(O.d) as *const __m256i));
    let mw = _mm512_cvtph_ps(_mm256_loadu_si256(sb.add(O.dmin) as *const __m256i));
    for (t, acc) in acc.iter_mut().enumerate() {
        let hi = _mm512_load_si512(cp.add(t) as *const _);
        let lo = _mm512_load_si512(cp.add(16 + t) as *const _);
        let mi = _mm512_load_si512(cp.add(32 + t) as *const _);
        let x = _mm512_add_epi32(_mm512_slli_epi32::<2>(hi), lo);
        let dav = _mm512_set1_ps(da[t]);
        let mut v = if first {
            _mm512_setzero_ps()
        } else {
            _mm512_loadu_ps(acc.as_ptr())
        };
        v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(x), _mm512_mul_ps(dw, dav), v);
        v = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mi), _mm512_mul_ps(mw, dav), v);
        _mm512_storeu_ps(acc.as_mut_ptr(), v);
    }
}

// ---------------------------------------------------------------- Q4_0 and Q8_0

/// Tile shapes of the Q4_0/Q8_0 kernel: tmm0, tmm1 and tmm6, tmm7 the products of two pairs of
/// blocks (16 tokens × 16 weight rows of i32), tmm2, tmm3 a pair's activations (16 tokens × 32
/// values), tmm4, tmm5 its weights (8 quads of values × 16 rows × 4 bytes: the quad layout of
/// `tdpbssd`, which is the interleaved Q4_0/Q8_0 groups' own, see `quant::interleaved`). One
/// `tdpbssd` is one 32-value block: the blocks' scales differ, so each block's integer sums are
/// scaled on their own.
static CONFIG_Q0: TileConfig = TileConfig::shapes([
    (16, 64),
    (16, 64),
    (16, 32),
    (16, 32),
    (8, 64),
    (8, 64),
    (16, 64),
    (16, 64),
]);

/// Tokens per tile of the Q4_0/Q8_0 kernel; batches must have at least this many.
pub(crate) const Q0_TOKENS: usize = 16;

/// Bytes of one block's weight operand (8 quads × 16 rows × 4 bytes).
const Q0_OPERAND: usize = 512;

/// Groups `g0..g1` (16 rows each) of an interleaved Q4_0 (`q4`) or Q8_0 matrix (`Layout::Q4_0x8`
/// or `Q8_0x8` with width 16, `nb` blocks per row, `rows` rows) against `n` ≥ [`Q0_TOKENS`] Q8_0
/// activation rows, into `dst` (`n × rows`, token-major). `group(g)` is group `g`'s bytes; `qs`
/// the activations' quants (`n` rows of `32 nb`) and `ad` their block scales (`n × nb`).
///
/// A Q4_0 weight is `d_w (q − 8)`, `q` in 0..=15, a Q8_0 weight `d_w q`, `q` an i8, and a Q8_0
/// activation `d_x a`, `a` an i8 (−127..=127 as quantized). Per 32-value block
/// `Σ w x = d_w d_x Σ q' a` with `q' = q − 8` (Q4_0) or `q` (Q8_0), both signed bytes, so
/// `tdpbssd` gives `Σ q' a` exactly in i32 (|Σ| ≤ 32 · 128 · 127); it is converted to f32 and
/// multiplied by `d_w d_x` into an f32 accumulator per (token, row), as the VNNI kernels do
/// (only the order of the f32 operations differs). Q4_0 nibbles are unpacked (and offset by −8)
/// into a per-thread panel once per group, each block's 256 quant bytes giving its 512-byte
/// operand: byte `64 j + 4 r + i` of a block holds values `4 j + i` (low nibble) and
/// `16 + 4 j + i` (high nibble) of row `r`, so the low nibbles are quads 0..4 and the high ones
/// quads 4..8 of the operand. A Q8_0 block's 512 quant bytes are its operand as stored.
///
/// The last partial block of tokens is computed as the 16 tokens ending at `n` (overlapping the
/// previous block; its tokens are computed twice, identically).
///
/// # Safety
/// `dst` is writable for every token's rows `16 g0 .. min(16 g1, rows)` and no one else accesses
/// them during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn q0_chunk<'a>(
    q4: bool,
    group: &dyn Fn(usize) -> &'a [u8],
    nb: usize,
    rows: usize,
    qs: &[i8],
    ad: &[f32],
    n: usize,
    g0: usize,
    g1: usize,
    dst: *mut f32,
) {
    let cols = 32 * nb;
    assert!(available() && n >= Q0_TOKENS && qs.len() >= n * cols && ad.len() >= n * nb);
    let qbytes = if q4 { 256 } else { Q0_OPERAND };
    thread_local! {
        /// The unpacked Q4_0 group of each thread, reused.
        static PANEL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PANEL.with_borrow_mut(|panel| {
        // 64 bytes of slack to align the operands to 64
        if q4 && panel.len() < nb * Q0_OPERAND + 64 {
            panel.resize(nb * Q0_OPERAND + 64, 0);
        }
        let pan = panel.as_mut_ptr();
        let pan = pan.add(pan.align_offset(64));
        asm!("ldtilecfg [{}]", in(reg) CONFIG_Q0.0.as_ptr(), options(nostack, readonly));
        for g in g0..g1 {
            let grp = group(g);
            assert!(grp.len() >= nb * (qbytes + 32));
            let ops = if q4 {
                unpack_q4_0(grp.as_ptr(), nb, pan);
                pan as *const u8
            } else {
                grp.as_ptr()
            };
            let dw = grp.as_ptr().add(nb * qbytes);
            let r0 = 16 * g;
            let nr = 16.min(rows - r0);
            for tb in 0..n.div_ceil(Q0_TOKENS) {
                let t0 = (tb * Q0_TOKENS).min(n - Q0_TOKENS);
                q0_tokens(
                    ops,
                    dw,
                    nb,
                    qs.as_ptr().add(t0 * cols),
                    cols,
                    ad.as_ptr().add(t0 * nb),
                    dst.add(t0 * rows + r0),
                    rows,
                    nr,
                );
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    })
}

/// Unpacks the `nb` blocks of Q4_0 quants of a 16-row group at `grp` into `nb` operands of
/// [`Q0_OPERAND`] bytes at `out` (64-aligned), as `q − 8` (see [`q0_chunk`]).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn unpack_q4_0(grp: *const u8, nb: usize, out: *mut u8) {
    let m4 = _mm512_set1_epi8(15);
    let eight = _mm512_set1_epi8(8);
    for b in 0..nb {
        let src = grp.add(256 * b);
        let dst = out.add(Q0_OPERAND * b);
        for j in 0..4 {
            let v = _mm512_loadu_si512(src.add(64 * j) as *const _);
            let lo = _mm512_sub_epi8(_mm512_and_si512(v, m4), eight);
            let hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16::<4>(v), m4), eight);
            _mm512_store_si512(dst.add(64 * j) as *mut _, lo);
            _mm512_store_si512(dst.add(256 + 64 * j) as *mut _, hi);
        }
    }
}

/// All `nb` blocks of 16 tokens (quants from `a`, rows `lda` bytes apart; block scales from `ad`,
/// rows `nb` apart) × one 16-row group (block operands at `ops`, [`Q0_OPERAND`] bytes apart; f16
/// scales `dw[nb][16]`), written to `dst` (token `t`'s rows at `dst + t ldd`, the first `nr`;
/// the Q4_0/Q8_0 tile configuration loaded).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,f16c")]
unsafe fn q0_tokens(
    ops: *const u8,
    dw: *const u8,
    nb: usize,
    a: *const i8,
    lda: usize,
    ad: *const f32,
    dst: *mut f32,
    ldd: usize,
    nr: usize,
) {
    #[repr(align(64))]
    struct Buf([[i32; 16]; 32]);
    let mut cb = Buf([[0; 16]; 32]);
    let cp = cb.0.as_mut_ptr();
    let mut acc = [_mm512_setzero_ps(); Q0_TOKENS];
    // Blocks go in pairs, the products of pair p in tmm0/1 (p even) or tmm6/7 (p odd): pair p + 1
    // is issued before pair p's tiles are stored and scaled, so the scaling overlaps the tile
    // products instead of waiting for each one's latency.
    macro_rules! issue {
        ($c0:literal, $c1:literal, $b:expr) => {{
            let b = $b;
            asm!(concat!("tilezero tmm", $c0), options(nostack, nomem));
            tload_s!(2, a.add(32 * b), lda);
            tload_s!(4, ops.add(Q0_OPERAND * b), 64usize);
            asm!(
                concat!("tdpbssd tmm", $c0, ", tmm2, tmm4"),
                options(nostack, nomem)
            );
            if b + 1 < nb {
                asm!(concat!("tilezero tmm", $c1), options(nostack, nomem));
                tload_s!(3, a.add(32 * b + 32), lda);
                tload_s!(5, ops.add(Q0_OPERAND * (b + 1)), 64usize);
                asm!(
                    concat!("tdpbssd tmm", $c1, ", tmm3, tmm5"),
                    options(nostack, nomem)
                );
            }
        }};
    }
    let pairs = nb.div_ceil(2);
    issue!(0, 1, 0);
    for p in 0..pairs {
        let b = 2 * p;
        let two = b + 1 < nb;
        if p % 2 == 0 {
            if p + 1 < pairs {
                issue!(6, 7, b + 2);
            }
            tstore!(0, cp);
            if two {
                tstore!(1, cp.add(16));
            }
        } else {
            if p + 1 < pairs {
                issue!(0, 1, b + 2);
            }
            tstore!(6, cp);
            if two {
                tstore!(7, cp.add(16));
            }
        }
        for k in 0..1 + two as usize {
            let bb = b + k;
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(dw.add(32 * bb) as *const __m256i));
            for (t, acc) in acc.iter_mut().enumerate() {
                let c = _mm512_load_si512(cp.add(16 * k + t) as *const _);
                let s = _mm512_mul_ps(d, _mm512_set1_ps(*ad.add(t * nb + bb)));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), s, *acc);
            }
        }
    }
    let mask = ((1u32 << nr) - 1) as u16;
    for (t, acc) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(dst.add(t * ldd), mask, *acc);
    }
}
