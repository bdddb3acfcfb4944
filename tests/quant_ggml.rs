//! Bit-exactness against ggml itself (optional): quantizes and dequantizes the shared test matrices
//! with the `quantize_row_*_ref` / `dequantize_row_*` functions of a ggml shared library, called
//! through Python's ctypes, and compares bytes and values with ours.
//!
//! Set `FERROLLM_LIBGGML=/path/to/libggml-base.so` (the library that exports `quantize_row_q4_0_ref`
//! etc.; see docs/QUANTIZATION.md for building it from llama.cpp). Without it the test skips.

mod common;
mod quant_util;

use std::fmt::Write as _;

use ferrollm::format::GgmlType;
use ferrollm::quant;
use quant_util::*;

/// Runs every job of a manifest ("q|d TYPE N INPUT OUTPUT" lines) through libggml.
const SCRIPT: &str = r#"
import ctypes, sys
import numpy as np
lib = ctypes.CDLL(sys.argv[1])
P, I64 = ctypes.c_void_p, ctypes.c_int64
names = {"q2_k": "q2_K", "q3_k": "q3_K", "q4_k": "q4_K", "q5_k": "q5_K", "q6_k": "q6_K", "q8_k": "q8_K"}
for line in open(sys.argv[2]):
    mode, ty, n, inp, out, out_len = line.split()
    n, out_len = int(n), int(out_len)
    if mode == "q":
        src = np.fromfile(inp, dtype=np.float32)
        dst = np.zeros(out_len, dtype=np.uint8)
        if ty == "f16":
            fn = lib.ggml_fp32_to_fp16_row
        elif ty == "bf16":
            fn = lib.ggml_fp32_to_bf16_row_ref
        else:
            fn = getattr(lib, "quantize_row_%s_ref" % names.get(ty, ty))
    else:
        src = np.fromfile(inp, dtype=np.uint8)
        dst = np.zeros(n, dtype=np.float32)
        if ty == "f16":
            fn = lib.ggml_fp16_to_fp32_row
        elif ty == "bf16":
            fn = lib.ggml_bf16_to_fp32_row
        else:
            fn = getattr(lib, "dequantize_row_%s" % names.get(ty, ty))
    fn.restype = None
    fn.argtypes = [P, P, I64]
    fn(src.ctypes.data, dst.ctypes.data, n)
    dst.tofile(out)
"#;

const QUANT_TYPES: &[GgmlType] = &[
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
];

/// Values ggml handles with float → integer conversions outside their range (block maxima so small
/// that `1/d` overflows, inf, NaN): x86-64 behaviour, reproduced on purpose.
///
/// The inf/NaN case only runs on x86-64: there, like in ggml, a NaN created by an operation (say
/// `0 × inf` for Q8_1's `s`) is x86's negative "default NaN", while aarch64 creates a positive one,
/// so the sign bit of such an f16 scale differs between platforms.
fn edge_cases() -> Vec<Case> {
    let mut rng = Rng::new(7);
    let mut cases = vec![
        Case {
            name: "subnormal 1e-39".into(),
            rows: 1,
            cols: 256,
            data: rng.normals(256, 1e-39),
        },
        Case {
            name: "huge 1e30".into(),
            rows: 1,
            cols: 256,
            data: rng.normals(256, 1e30),
        },
    ];
    if cfg!(target_arch = "x86_64") {
        cases.push(Case {
            name: "inf and NaN".into(),
            rows: 2,
            cols: 256,
            data: {
                let mut v = rng.normals(512, 1.0);
                v[3] = f32::INFINITY;
                v[40] = f32::NAN;
                v[41] = -f32::NAN;
                v[300] = f32::NEG_INFINITY;
                v[301] = f32::INFINITY;
                v
            },
        });
    }
    cases.push(Case {
        name: "long normal 64x256".into(),
        rows: 64,
        cols: 256,
        data: rng.normals(64 * 256, 1.0),
    });
    cases
}

#[test]
fn bytes_and_values_equal_libggml() {
    let Ok(lib) = std::env::var("FERROLLM_LIBGGML") else {
        eprintln!(
            "SKIPPED: set FERROLLM_LIBGGML=/path/to/libggml-base.so to compare with ggml itself"
        );
        return;
    };
    assert!(
        common::python_has(&["numpy"]),
        "FERROLLM_LIBGGML is set but python3 cannot import numpy"
    );
    let dir = tempdir();
    let mut cases = cases();
    cases.extend(edge_cases());
    let mut rng = Rng::new(99);

    // Quantize every case with both; dequantize our bytes and random bytes with both.
    let mut manifest = String::new();
    let mut jobs = Vec::new(); // (type, case name, ours, output path, kind)
    for &ty in QUANT_TYPES {
        for (ci, case) in cases.iter().enumerate() {
            let n = case.data.len();
            let input = dir.path().join(format!("{ty}-{ci}.f32"));
            write_f32(&input, &case.data);
            let mut ours = vec![0u8; row_bytes(ty, n)];
            quant::quantize(ty, &case.data, &mut ours).unwrap();
            let qout = dir.path().join(format!("{ty}-{ci}.ggml.q"));
            writeln!(
                manifest,
                "q {ty} {n} {} {} {}",
                input.display(),
                qout.display(),
                ours.len()
            )
            .unwrap();
            let qin = dir.path().join(format!("{ty}-{ci}.ours.q"));
            std::fs::write(&qin, &ours).unwrap();
            jobs.push((ty, case.name.clone(), Job::Quantize(ours.clone()), qout));
            if ty != GgmlType::Q8_1 {
                let dout = dir.path().join(format!("{ty}-{ci}.ggml.f32"));
                writeln!(
                    manifest,
                    "d {ty} {n} {} {} 0",
                    qin.display(),
                    dout.display()
                )
                .unwrap();
                let mut deq = vec![0f32; n];
                quant::dequantize(ty, &ours, &mut deq).unwrap();
                jobs.push((ty, case.name.clone(), Job::Dequantize(deq), dout));
            }
        }
        if ty != GgmlType::Q8_1 {
            let blocks = 37;
            let bytes = random_blocks(ty, blocks, &mut rng);
            let n = blocks * ty.block_size();
            let rin = dir.path().join(format!("{ty}-random.q"));
            std::fs::write(&rin, &bytes).unwrap();
            let dout = dir.path().join(format!("{ty}-random.ggml.f32"));
            writeln!(
                manifest,
                "d {ty} {n} {} {} 0",
                rin.display(),
                dout.display()
            )
            .unwrap();
            let mut deq = vec![0f32; n];
            quant::dequantize(ty, &bytes, &mut deq).unwrap();
            jobs.push((ty, "random bytes".into(), Job::Dequantize(deq), dout));
        }
    }
    let manifest_path = dir.path().join("jobs.txt");
    std::fs::write(&manifest_path, manifest).unwrap();
    common::run_python(SCRIPT, &[&lib, manifest_path.to_str().unwrap()]);

    let mut report: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut failures = Vec::new();
    for (ty, case, job, path) in &jobs {
        let (key, ok, detail) = match job {
            Job::Quantize(ours) => {
                let theirs = std::fs::read(path).unwrap();
                let m = first_byte_mismatch(ours, &theirs);
                let detail = m.map(|i| {
                    let bs = ty.type_size();
                    format!(
                        "byte {i} (block {}, offset {}): ours {} ggml {}",
                        i / bs,
                        i % bs,
                        ours[i],
                        theirs[i]
                    )
                });
                (format!("{ty:>5} quantize"), m.is_none(), detail)
            }
            Job::Dequantize(ours) => {
                let theirs = read_f32(path);
                let m = first_float_mismatch(ours, &theirs);
                (
                    format!("{ty:>5} dequantize"),
                    m.is_none(),
                    m.map(|(i, a, b)| format!("value {i}: ours {a:e} ggml {b:e}")),
                )
            }
        };
        let e = report.entry(key.clone()).or_default();
        e.0 += ok as usize;
        e.1 += 1;
        if let Some(d) = detail {
            failures.push(format!("{key} [{case}]: {d}"));
        }
    }
    eprintln!("per-type results against {lib}:");
    for (k, (ok, total)) in &report {
        eprintln!("  {k}: {ok}/{total} cases identical");
    }
    assert!(
        failures.is_empty(),
        "differences from ggml:\n{}",
        failures.join("\n")
    );
}

enum Job {
    Quantize(Vec<u8>),
    Dequantize(Vec<f32>),
}
