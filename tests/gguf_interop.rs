//! GGUF interoperability with llama.cpp's own Python package `gguf` (the reference):
//! files we write are read by `gguf.GGUFReader`, files `gguf.GGUFWriter` writes are read by us,
//! and our ggml type table matches gguf's. Skips when Python lacks `gguf`/`numpy`, unless
//! FERROLLM_REQUIRE_PYTHON=1.

mod common;

use ferrollm::format::gguf::{GgufWriter, ALIGNMENT_KEY};
use ferrollm::format::{GgmlType, Metadata, ModelFile, TensorSpec, TensorWriter, Value, ValueType};
use ferrollm::ErrorKind;
use serde_json::json;
use std::path::Path;

/// A value as a typed JSON tree, the shape the Python scripts print:
/// `{"t": type, "v": value}`, arrays also with `"elem"`.
fn typed(v: &Value) -> serde_json::Value {
    match v {
        Value::Array(ty, items) => {
            json!({"t": "array", "elem": ty.name(), "v": items.iter().map(typed).collect::<Vec<_>>()})
        }
        Value::F32(x) => json!({"t": "f32", "v": f64::from(*x)}),
        Value::F64(x) => json!({"t": "f64", "v": x}),
        Value::String(s) => json!({"t": "string", "v": s}),
        Value::Bool(b) => json!({"t": "bool", "v": b}),
        int => {
            let n = match int.as_i64() {
                Some(i) => json!(i),
                None => json!(int.as_u64().unwrap()),
            };
            json!({"t": int.value_type().name(), "v": n})
        }
    }
}

fn typed_metadata(m: &Metadata) -> serde_json::Value {
    serde_json::Value::Array(m.iter().map(|(k, v)| json!([k, typed(v)])).collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a GGUF file with gguf.GGUFReader and prints its metadata as typed trees (nested arrays
/// are rebuilt from the reader's own parsed parts, since `contents()` flattens them) and its
/// tensors with their raw bytes.
const READ_WITH_GGUF_PY: &str = r#"
import sys, json
import gguf

NAMES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"]

def walk(parts, i, t):
    if t == 8:
        return {"t": "string", "v": bytes(parts[i + 1]).decode("utf-8")}, i + 2
    if t == 9:
        et, n = int(parts[i][0]), int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            v, i = walk(parts, i, et)
            items.append(v)
        return {"t": "array", "elem": NAMES[et], "v": items}, i
    return {"t": NAMES[t], "v": parts[i][0].item()}, i + 1

r = gguf.GGUFReader(sys.argv[1])
fields = []
for name, f in r.fields.items():
    if name.startswith("GGUF."):
        continue
    v, end = walk(f.parts, 3, int(f.types[0]))
    assert end == len(f.parts), name
    # Where the reader's own decoding applies (scalars, strings, flat non-empty arrays), it agrees.
    if v["t"] != "array":
        assert f.contents() == v["v"], (name, f.contents(), v)
    elif v["elem"] != "array" and v["v"]:
        assert f.contents() == [x["v"] for x in v["v"]], (name, f.contents(), v)
    fields.append([name, v])
tensors = [{
    "name": t.name,
    "type": int(t.tensor_type),
    "shape": [int(d) for d in t.shape],
    "n_bytes": int(t.n_bytes),
    "offset": int(t.data_offset),
    "hex": t.data.tobytes().hex(),
} for t in r.tensors]
print(json.dumps({"alignment": int(r.alignment), "data_offset": int(r.data_offset),
                  "fields": fields, "tensors": tensors}))
"#;

fn every_kind_of_value() -> Metadata {
    let mut m = Metadata::new();
    m.set("general.architecture", Value::String("llama".into()));
    m.set(
        "general.name",
        Value::String("ünïcode ✓\n\"quoted\"\t".into()),
    );
    m.set("s.u8", Value::U8(255));
    m.set("s.i8", Value::I8(i8::MIN));
    m.set("s.u16", Value::U16(u16::MAX));
    m.set("s.i16", Value::I16(i16::MIN));
    m.set("s.u32", Value::U32(u32::MAX));
    m.set("s.i32", Value::I32(i32::MIN));
    m.set("s.f32", Value::F32(0.1));
    m.set("s.bool_true", Value::Bool(true));
    m.set("s.bool_false", Value::Bool(false));
    m.set("s.empty_string", Value::String(String::new()));
    m.set("s.u64", Value::U64(u64::MAX));
    m.set("s.i64", Value::I64(i64::MIN));
    m.set("s.f64", Value::F64(-1.0e-300));
    let arr = |ty, items: Vec<Value>| Value::Array(ty, items);
    m.set(
        "a.u8",
        arr(ValueType::U8, vec![Value::U8(0), Value::U8(255)]),
    );
    m.set(
        "a.i8",
        arr(ValueType::I8, vec![Value::I8(-1), Value::I8(127)]),
    );
    m.set("a.u16", arr(ValueType::U16, vec![Value::U16(7)]));
    m.set(
        "a.i16",
        arr(ValueType::I16, vec![Value::I16(-7), Value::I16(7)]),
    );
    m.set(
        "a.u32",
        arr(ValueType::U32, vec![Value::U32(1), Value::U32(2)]),
    );
    m.set("a.i32", arr(ValueType::I32, vec![Value::I32(-3)]));
    m.set(
        "a.f32",
        arr(ValueType::F32, vec![Value::F32(1.5), Value::F32(-1e-7)]),
    );
    m.set(
        "a.bool",
        arr(ValueType::Bool, vec![Value::Bool(true), Value::Bool(false)]),
    );
    m.set(
        "tokenizer.ggml.tokens",
        arr(
            ValueType::String,
            ["<s>", "</s>", "", "▁hello", "é"]
                .iter()
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
    );
    m.set("a.u64", arr(ValueType::U64, vec![Value::U64(u64::MAX)]));
    m.set("a.i64", arr(ValueType::I64, vec![Value::I64(i64::MIN)]));
    m.set(
        "a.f64",
        arr(ValueType::F64, vec![Value::F64(2.5), Value::F64(1e300)]),
    );
    m.set("a.empty_u32", arr(ValueType::U32, vec![]));
    m.set("a.empty_string", arr(ValueType::String, vec![]));
    m.set("a.empty_array", arr(ValueType::Array, vec![]));
    m.set(
        "a.nested",
        arr(
            ValueType::Array,
            vec![
                arr(ValueType::I32, vec![Value::I32(1), Value::I32(2)]),
                arr(ValueType::I32, vec![]),
                arr(ValueType::I32, vec![Value::I32(3)]),
            ],
        ),
    );
    m.set(
        "a.nested_strings",
        arr(
            ValueType::Array,
            vec![arr(
                ValueType::String,
                vec![Value::String("x".into()), Value::String("y".into())],
            )],
        ),
    );
    m.set(
        "a.deep",
        arr(
            ValueType::Array,
            vec![arr(
                ValueType::Array,
                vec![arr(ValueType::F64, vec![Value::F64(0.5)])],
            )],
        ),
    );
    m
}

fn spec(name: &str, ty: GgmlType, shape: &[u64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        ty,
        shape: shape.to_vec(),
    }
}

#[test]
fn our_files_read_the_same_in_gguf_py() {
    if !common::python_has(&["gguf", "numpy"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        spec("token_embd.weight", GgmlType::F32, &[5, 3]),
        spec("output_norm.weight", GgmlType::F16, &[16]),
        spec("blk.0.attn_q.weight", GgmlType::Q4_0, &[64, 2]),
        spec("blk.0.attn_k.weight", GgmlType::Q8_0, &[32, 3]),
        spec("blk.0.ffn_up.weight", GgmlType::Q4_K, &[256, 2]),
        spec("blk.0.ffn_down.weight", GgmlType::Q6_K, &[256, 1, 1, 1]),
    ];
    for (alignment, record_it) in [(32, false), (64, true)] {
        let mut metadata = every_kind_of_value();
        if record_it {
            metadata.set(ALIGNMENT_KEY, Value::U32(alignment as u32));
        }
        let path = dir.path().join(format!("ours-{alignment}.gguf"));
        let mut w = GgufWriter::create(&path, &metadata, &specs, alignment).unwrap();
        let mut datas = vec![];
        for (i, s) in specs.iter().enumerate() {
            let size = s.ty.tensor_size(&s.shape).unwrap() as usize;
            let data: Vec<u8> = (0..size)
                .map(|k| ((k * 13 + i * 101) % 256) as u8)
                .collect();
            w.write_tensor(&data).unwrap();
            datas.push(data);
        }
        Box::new(w).finish().unwrap();

        let out = common::run_python(READ_WITH_GGUF_PY, &[path.to_str().unwrap()]);
        let py: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(py["alignment"], json!(alignment));
        assert_eq!(py["fields"], typed_metadata(&metadata));
        let tensors = py["tensors"].as_array().unwrap();
        assert_eq!(tensors.len(), specs.len());
        for ((t, s), data) in tensors.iter().zip(&specs).zip(&datas) {
            assert_eq!(t["name"], json!(s.name));
            assert_eq!(t["type"], json!(s.ty as u32), "{}", s.name);
            assert_eq!(t["shape"], json!(s.shape), "{}", s.name);
            assert_eq!(t["n_bytes"], json!(data.len()), "{}", s.name);
            assert_eq!(t["offset"].as_u64().unwrap() % alignment, 0, "{}", s.name);
            assert_eq!(t["hex"], json!(hex(data)), "{}", s.name);
        }
        // And our reader agrees with gguf-py on where everything is.
        let f = ModelFile::open(&path, None).unwrap();
        for (ours, theirs) in f.tensors.iter().zip(tensors) {
            assert_eq!(json!(ours.offset), theirs["offset"]);
        }
    }
}

/// Writes a GGUF file with gguf.GGUFWriter (every value type, nested arrays, alignment 128,
/// several tensor types) and prints, from its own definitions, what the file holds.
const WRITE_WITH_GGUF_PY: &str = r#"
import sys, json, struct
import numpy as np
import gguf
from gguf import GGUFValueType as T, GGMLQuantizationType as Q

NAMES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"]

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]

def typed(vtype, v, sub=None):
    # The element typing GGUFWriter applies: sub_type if given, else from the first item.
    if vtype == T.ARRAY:
        et = sub if sub is not None else T.get_type(v[0])
        return {"t": "array", "elem": NAMES[et], "v": [typed(et, x) for x in v]}
    return {"t": NAMES[vtype], "v": f32(v) if vtype == T.FLOAT32 else v}

w = gguf.GGUFWriter(sys.argv[1], "llama")
w.add_custom_alignment(128)
expected = [["general.architecture", typed(T.STRING, "llama")],
            ["general.alignment", typed(T.UINT32, 128)]]

scalars = [("uint8", T.UINT8, 255), ("int8", T.INT8, -128), ("uint16", T.UINT16, 65535),
           ("int16", T.INT16, -32768), ("uint32", T.UINT32, 2**32 - 1), ("int32", T.INT32, -2**31),
           ("float32", T.FLOAT32, 0.1), ("bool", T.BOOL, True), ("string", T.STRING, "ünï ✓\n"),
           ("uint64", T.UINT64, 2**64 - 1), ("int64", T.INT64, -2**63),
           ("float64", T.FLOAT64, 3.141592653589793)]
for method, vtype, v in scalars:
    key = "s." + method
    getattr(w, "add_" + method)(key, v)
    expected.append([key, typed(vtype, v)])
w.add_bool("s.false", False)
expected.append(["s.false", typed(T.BOOL, False)])

auto_arrays = [("a.i32", [1, -2, 3]), ("a.f32", [0.5, -1.25, 0.1]), ("a.str", ["a", "", "ü"]),
               ("a.bool", [True, False]), ("a.nested", [[1, 2], [3]]),
               ("a.nested_str", [["x", "y"], ["z"]]), ("a.deep", [[[1.5]], [[2.5, 3.5]]])]
for key, v in auto_arrays:
    w.add_array(key, v)
    expected.append([key, typed(T.ARRAY, v)])
typed_arrays = [("a.u8", T.UINT8, [0, 255]), ("a.i8", T.INT8, [-1, 1]), ("a.u16", T.UINT16, [9]),
                ("a.i16", T.INT16, [-9]), ("a.u32", T.UINT32, [2**32 - 1]),
                ("a.u64", T.UINT64, [2**64 - 1, 0]), ("a.i64", T.INT64, [-2**63, 2**63 - 1]),
                ("a.f64", T.FLOAT64, [1e-300, 2.5])]
for key, sub, v in typed_arrays:
    w.add_key_value(key, v, T.ARRAY, sub_type=sub)
    expected.append([key, typed(T.ARRAY, v, sub)])

def raw(rows, row_bytes, seed):
    return ((np.arange(rows * row_bytes) * 7 + seed) % 251).astype(np.uint8).reshape(rows, row_bytes)

tensors = [
    ("token_embd.weight", (np.arange(15, dtype=np.float32).reshape(3, 5) - 7) * 0.5, None),
    ("output_norm.weight", np.arange(16, dtype=np.float16) - 8, None),
    ("pos.ids", np.arange(6, dtype=np.int32).reshape(2, 3) - 3, None),
    ("blk.0.attn_k.weight", raw(2, 68, 1), Q.Q8_0),
    ("blk.0.attn_q.weight", raw(3, 36, 2), Q.Q4_0),
    ("blk.0.ffn_up.weight", raw(2, 144, 3), Q.Q4_K),
    ("blk.0.ffn_gate.weight", raw(4, 16, 4), Q.BF16),
    ("blk.0.ffn_down.weight", raw(1, 210, 5), Q.Q6_K),
]
out = []
for name, arr, qtype in tensors:
    w.add_tensor(name, arr, raw_dtype=qtype)
    if qtype is None:
        shape = arr.shape
        qtype = {np.dtype(np.float32): Q.F32, np.dtype(np.float16): Q.F16,
                 np.dtype(np.int32): Q.I32}[arr.dtype]
    else:
        shape = gguf.quant_shape_from_byte_shape(arr.shape, qtype)
    out.append({"name": name, "type": int(qtype), "shape": [int(d) for d in reversed(shape)],
                "hex": arr.tobytes().hex()})
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(json.dumps({"fields": expected, "tensors": out}))
"#;

#[test]
fn gguf_py_files_read_the_same_in_ours() {
    if !common::python_has(&["gguf", "numpy"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("theirs.gguf");
    let out = common::run_python(WRITE_WITH_GGUF_PY, &[path.to_str().unwrap()]);
    let py: serde_json::Value = serde_json::from_str(&out).unwrap();

    let f = ModelFile::open(&path, None).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(typed_metadata(&f.metadata), py["fields"]);
    let tensors = py["tensors"].as_array().unwrap();
    assert_eq!(f.tensors.len(), tensors.len());
    for (ours, theirs) in f.tensors.iter().zip(tensors) {
        assert_eq!(json!(ours.name), theirs["name"]);
        assert_eq!(json!(ours.ty as u32), theirs["type"], "{}", ours.name);
        assert_eq!(json!(ours.shape), theirs["shape"], "{}", ours.name);
        assert_eq!(ours.offset % 128, 0, "{}", ours.name);
        assert_eq!(
            json!(hex(f.tensor_data(ours))),
            theirs["hex"],
            "{}",
            ours.name
        );
    }
}

#[test]
fn big_endian_files_from_gguf_py_are_refused_clearly() {
    if !common::python_has(&["gguf", "numpy"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.gguf");
    common::run_python(
        r#"
import sys, numpy as np, gguf
w = gguf.GGUFWriter(sys.argv[1], "llama", endianess=gguf.GGUFEndian.BIG)
w.add_uint32("x", 1)
w.add_tensor("t", np.ones(4, dtype=np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
"#,
        &[path.to_str().unwrap()],
    );
    let err = ModelFile::open(&path, None).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Format);
    assert!(err.message().contains(&path.display().to_string()), "{err}");
    assert!(err.message().contains("big-endian"), "{err}");
}

#[test]
fn ggml_type_table_matches_gguf_py() {
    if !common::python_has(&["gguf", "numpy"]) {
        return;
    }
    let out = common::run_python(
        r#"
import json
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
print(json.dumps([[int(t), t.name.lower(), *GGML_QUANT_SIZES[t]] for t in GGMLQuantizationType]))
"#,
        &[],
    );
    let table: Vec<(u32, String, usize, usize)> = serde_json::from_str(&out).unwrap();
    assert!(table.len() >= 30);
    let mut mismatches = vec![];
    for (id, name, block, size) in &table {
        let Some(t) = GgmlType::from_id(*id) else {
            mismatches.push(format!("gguf-py has type {id} ({name}), we do not"));
            continue;
        };
        if t == GgmlType::Q8_1 {
            // gguf-py lists the old layout with f32 d and s (4 + 4 + 32 bytes); ggml's block_q8_1
            // is {ggml_half d; ggml_half s; int8_t qs[32]} = 36 bytes (see src/format/types.rs).
            assert_eq!(
                (block, size),
                (&32, &40),
                "gguf-py fixed Q8_1: drop this exception"
            );
            assert_eq!((t.block_size(), t.type_size()), (32, 36));
            continue;
        }
        if (t.name(), t.block_size(), t.type_size()) != (name.as_str(), *block, *size) {
            mismatches.push(format!(
                "id {id}: gguf-py {name} block {block} size {size}, ours {} block {} size {}",
                t.name(),
                t.block_size(),
                t.type_size()
            ));
        }
    }
    for t in GgmlType::ALL {
        if !table.iter().any(|(id, ..)| *id == *t as u32) {
            mismatches.push(format!(
                "we have type {} ({t}), gguf-py does not",
                *t as u32
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn hand_built_corpus_files_read_the_same_in_gguf_py() {
    // The corpus' valid files are a third, independent writer (tests/corpus/gguf/make_corpus.py):
    // gguf-py must see the metadata we see.
    if !common::python_has(&["gguf", "numpy"]) {
        return;
    }
    for name in ["valid-v3.gguf", "valid-v2-default-alignment.gguf"] {
        let path = common::repo_root().join("tests/corpus/gguf").join(name);
        let out = common::run_python(READ_WITH_GGUF_PY, &[path.to_str().unwrap()]);
        let py: serde_json::Value = serde_json::from_str(&out).unwrap();
        let f = ModelFile::open(Path::new(&path), None).unwrap();
        assert_eq!(typed_metadata(&f.metadata), py["fields"], "{name}");
        for (ours, theirs) in f.tensors.iter().zip(py["tensors"].as_array().unwrap()) {
            assert_eq!(json!(ours.offset), theirs["offset"], "{name}");
            assert_eq!(json!(hex(f.tensor_data(ours))), theirs["hex"], "{name}");
        }
    }
}
