#!/usr/bin/env python3
"""Writes the GGUF bad-input corpus used by tests/gguf_corpus.rs (and the fuzzer's seeds).

    python3 tests/corpus/gguf/make_corpus.py

Standard library only, deterministic. It builds small valid GGUF files byte by byte from the
layout in ggml's docs/gguf.md (independently of ferrollm's writer), then one mutation per kind of
damage. For every file it records in expected.tsv the fragments the reader's error message must
contain (tab-separated; "OK" for files that must parse), and for the valid files a JSON
description of their content (valid-*.json) that the test compares with what ferrollm reads.

Files found by fuzzing (fuzz-*.gguf) are not made here: add them by hand to expected.tsv.
"""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# gguf.md value type ids
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
TYPE_NAME = {U8: "u8", I8: "i8", U16: "u16", I16: "i16", U32: "u32", I32: "i32", F32: "f32",
             BOOL: "bool", STRING: "string", ARRAY: "array", U64: "u64", I64: "i64", F64: "f64"}
# ggml type id -> (name, block size, bytes per block)
GGML = {0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 8: ("q8_0", 32, 34)}


def gstr(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<Q", len(b)) + b


def value(ty, v):
    """Encoding of a value (without its type id); arrays are (elem_type, [items])."""
    if ty == STRING:
        return gstr(v)
    if ty == ARRAY:
        elem, items = v
        return struct.pack("<IQ", elem, len(items)) + b"".join(value(elem, x) for x in items)
    return struct.pack(SCALAR_FMT[ty], v)


def kv(key, ty, v):
    return gstr(key) + struct.pack("<I", ty) + value(ty, v)


def tensor_info(name, dims, type_id, offset):
    return (gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", type_id, offset))


def nbytes(type_id, dims):
    _, block, size = GGML[type_id]
    n = 1
    for d in dims:
        n *= d
    return n // block * size


def pad(n, a):
    return (n + a - 1) // a * a


def tensor_bytes(i, n):
    return bytes((k * 37 + i * 11 + 5) % 256 for k in range(n))


def build(kvs, tensors, alignment, version=3, n_tensors=None, n_kv=None):
    """kvs: list of encoded key/value pairs; tensors: list of (name, dims, type id); tensor data
    packed in order, each padded to `alignment` (the layout gguf.cpp writes).
    Returns (bytes, [(name, type id, dims, absolute offset, size)])."""
    offsets, off = [], 0
    for name, dims, t in tensors:
        offsets.append(off)
        off += pad(nbytes(t, dims), alignment)
    head = b"GGUF" + struct.pack("<IQQ", version,
                                 len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs)
    head += b"".join(tensor_info(n, d, t, o) for (n, d, t), o in zip(tensors, offsets))
    data_start = pad(len(head), alignment)
    out = bytearray(head + bytes(data_start - len(head)))
    table = []
    for i, ((name, dims, t), o) in enumerate(zip(tensors, offsets)):
        size = nbytes(t, dims)
        out += tensor_bytes(i, size) + bytes(pad(size, alignment) - size)
        table.append((name, t, dims, data_start + o, size))
    return bytes(out), table


# --- the valid file ---------------------------------------------------------------------------

META = [
    ("general.architecture", STRING, "llama"),
    ("general.alignment", U32, 64),
    ("general.name", STRING, "tiny ✓"),
    ("t.u8", U8, 250), ("t.i8", I8, -7), ("t.u16", U16, 65000), ("t.i16", I16, -32000),
    ("t.u32", U32, 4000000000), ("t.i32", I32, -2000000000), ("t.f32", F32, 0.25),
    ("t.bool", BOOL, 1), ("t.u64", U64, 2**64 - 1), ("t.i64", I64, -2**63), ("t.f64", F64, 1e300),
    ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<s>", "</s>", "a", "é"])),
    ("tokenizer.ggml.scores", ARRAY, (F32, [0.0, -1.0, -2.5, 3.0])),
    ("t.nested", ARRAY, (ARRAY, [(I32, [1, 2]), (I32, [3])])),
    ("t.empty", ARRAY, (U32, [])),
]
TENSORS = [
    ("token_embd.weight", [8, 4], 0),
    ("blk.0.attn_q.weight", [32, 2], 2),
    ("blk.0.ffn_up.weight", [64], 8),
    ("output_norm.weight", [8], 1),
]
ALIGN = 64


def meta_kvs(meta=META):
    return [kv(k, t, v) for k, t, v in meta]


def json_value(ty, v):
    if ty == ARRAY:
        elem, items = v
        return [json_value(elem, x) for x in items]
    if ty == BOOL:
        return bool(v)
    return v


def valid():
    return build(meta_kvs(), TENSORS, ALIGN)


def offset_of(data, needle, nth=0):
    """Offset of the nth occurrence of `needle` in `data`."""
    at = -1
    for _ in range(nth + 1):
        at = data.index(needle, at + 1)
    return at


def patch(data, at, new):
    return data[:at] + new + data[at + len(new):]


def main():
    cases = []  # (file name, bytes, [fragments])
    good, table = valid()
    cases.append(("valid-v3.gguf", good, ["OK"]))
    # Version 2 has the same layout; default alignment (no general.alignment key), no tensors data
    # gaps beyond padding.
    v2, table_v2 = build(meta_kvs([m for m in META if m[0] != "general.alignment"]), TENSORS, 32,
                         version=2)
    cases.append(("valid-v2-default-alignment.gguf", v2, ["OK"]))
    for name, t in [("valid-v3.json", table), ("valid-v2-default-alignment.json", table_v2)]:
        meta = META if "v3" in name else [m for m in META if m[0] != "general.alignment"]
        desc = {
            "version": 3 if "v3" in name else 2,
            "metadata": [[k, TYPE_NAME[ty], json_value(ty, v)] for k, ty, v in meta],
            "tensors": [{"name": n, "type": GGML[ty][0], "shape": d, "offset": o, "size": s}
                        for n, ty, d, o, s in t],
            "data_seed": "byte k of tensor i is (k*37 + i*11 + 5) % 256",
        }
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(desc, f, indent=1, ensure_ascii=False)
            f.write("\n")

    header_end = len(b"GGUF") + 4 + 8 + 8
    q4_ti = offset_of(good, gstr("blk.0.attn_q.weight"))
    last_name, _, _, last_off, last_size = table[-1]

    # Truncations at several points.
    cases.append(("truncated-in-header.gguf", good[:10],
                  ["file is truncated", "the tensor count needs 8 bytes at offset 8"]))
    cases.append(("truncated-after-header.gguf", good[:header_end + 100],
                  [f"claims {len(META)} metadata keys, but the 100 bytes after the header can hold "
                   "at most 7"]))
    last_token = offset_of(good, gstr("é"))
    cases.append(("truncated-in-string-value.gguf", good[:last_token + 8 + 1],
                  ['metadata key "tokenizer.ggml.tokens"[3] at offset',
                   "has length 2, more than the 1 bytes left"]))
    cases.append(("truncated-in-tensor-info.gguf", good[:q4_ti + 8 + 19 + 4 + 8 + 3],
                  ["file is truncated", 'dimension 1 of tensor "blk.0.attn_q.weight" needs 8 bytes']))
    infos_end = offset_of(good, gstr(last_name)) + len(tensor_info(last_name, [8], 1, 0))
    cases.append(("truncated-before-data.gguf", good[:infos_end + 1],
                  ['tensor "token_embd.weight"', "past the end of the file"]))
    cases.append(("truncated-in-last-tensor.gguf", good[:last_off + last_size - 1],
                  [f'tensor "{last_name}"', f"past the end of the file ({last_off + last_size - 1} bytes)"]))
    cases.append(("too-short.gguf", b"GGU", ["3 bytes long, too short"]))

    # Header.
    cases.append(("wrong-magic.gguf", b"GGUX" + good[4:], ["not a GGUF or GGML-family model file"]))
    cases.append(("version-1.gguf", patch(good, 4, struct.pack("<I", 1)),
                  ["GGUF version 1 is not supported"]))
    cases.append(("version-99.gguf", patch(good, 4, struct.pack("<I", 99)),
                  ["GGUF version 99 is not supported"]))
    cases.append(("version-0.gguf", patch(good, 4, struct.pack("<I", 0)), ["invalid GGUF version 0"]))
    cases.append(("big-endian.gguf", patch(good, 4, struct.pack(">I", 3)),
                  ["big-endian", "version 3 with its bytes swapped"]))
    cases.append(("key-count-2pow60.gguf", patch(good, 16, struct.pack("<Q", 2**60)),
                  [f"claims {2**60} metadata keys"]))
    cases.append(("tensor-count-2pow40.gguf", patch(good, 8, struct.pack("<Q", 2**40)),
                  [f"claims {2**40} tensors"]))

    # Strings and values.
    cases.append(("string-length-2pow62.gguf", patch(good, header_end, struct.pack("<Q", 2**62)),
                  [f"the key of metadata entry 0 at offset {header_end} has length {2**62}"]))
    tokens_at = offset_of(good, gstr("tokenizer.ggml.tokens"))
    tokens_len_at = tokens_at + 8 + len("tokenizer.ggml.tokens") + 4 + 4
    cases.append(("array-length-huge.gguf", patch(good, tokens_len_at, struct.pack("<Q", 2**40)),
                  ['metadata key "tokenizer.ggml.tokens"', f"array of {2**40} string values"]))
    scores_at = offset_of(good, gstr("tokenizer.ggml.scores"))
    scores_len_at = scores_at + 8 + len("tokenizer.ggml.scores") + 4 + 4
    cases.append(("array-length-past-end.gguf", patch(good, scores_len_at, struct.pack("<Q", 2**20)),
                  ['metadata key "tokenizer.ggml.scores"', f"array of {2**20} f32 values"]))
    bad_key = gstr(b"general.archi\xfecture")
    cases.append(("invalid-utf8-key.gguf", patch(good, header_end, bad_key),
                  ["the key of metadata entry 0", "is not valid UTF-8"]))
    name_at = offset_of(good, gstr("tiny ✓"))
    cases.append(("invalid-utf8-string-value.gguf", patch(good, name_at + 8, b"\xc3\x28"),
                  ['metadata key "general.name"', "is not valid UTF-8"]))
    cases.append(("invalid-utf8-tensor-name.gguf",
                  patch(good, q4_ti + 8, b"blk.0.attn_q.\xc0\xafight"),
                  ["the name of tensor 1", "is not valid UTF-8"]))
    cases.append(("empty-key.gguf", build([kv("", U8, 1)], [], 32)[0], ["has an empty key"]))
    cases.append(("duplicate-keys.gguf",
                  build(meta_kvs() + [kv("t.u8", U8, 1)], TENSORS, ALIGN)[0],
                  ['duplicate metadata key "t.u8"']))
    cases.append(("unknown-value-type-13.gguf",
                  build([gstr("k") + struct.pack("<IB", 13, 0)], [], 32)[0],
                  ['metadata key "k" has unknown value type id 13']))
    cases.append(("unknown-array-element-type.gguf",
                  build([gstr("k") + struct.pack("<IIQ", ARRAY, 99, 0)], [], 32)[0],
                  ['metadata key "k"', "array of unknown value type id 99"]))
    cases.append(("bool-value-2.gguf", build([gstr("flag") + struct.pack("<IB", BOOL, 2)], [], 32)[0],
                  ['metadata key "flag"', "bool of value 2"]))
    deep = gstr("deep") + struct.pack("<I", ARRAY) + struct.pack("<IQ", ARRAY, 1) * 100 \
        + struct.pack("<IQ", U8, 0)
    cases.append(("nested-arrays-too-deep.gguf", build([deep], [], 32)[0],
                  ['metadata key "deep"', "nested more than 32 deep"]))
    cases.append(("alignment-48.gguf",
                  build([kv("general.alignment", U32, 48)], TENSORS, 32)[0],
                  ["general.alignment is 48", "power of two"]))
    cases.append(("alignment-0.gguf", build([kv("general.alignment", U32, 0)], TENSORS, 32)[0],
                  ["general.alignment is 0"]))
    cases.append(("alignment-u64.gguf", build([kv("general.alignment", U64, 32)], TENSORS, 32)[0],
                  ["general.alignment has type u64", "must be a u32"]))

    # Tensor infos.
    def with_tensors(tensor_infos):
        """The valid metadata with hand-made tensor infos (and no data beyond one aligned block)."""
        head = b"GGUF" + struct.pack("<IQQ", 3, len(tensor_infos), len(META))
        head += b"".join(meta_kvs()) + b"".join(tensor_infos)
        return head + bytes(pad(len(head), ALIGN) - len(head)) + bytes(256)

    cases.append(("n-dims-5.gguf", with_tensors([tensor_info("t5", [1, 1, 1, 1, 1], 0, 0)]),
                  ['tensor "t5" has 5 dimensions', "at most 4"]))
    cases.append(("dims-product-overflows-u64.gguf",
                  with_tensors([tensor_info("huge", [2**40, 2**40], 0, 0)]),
                  ['tensor "huge" with shape [1099511627776, 1099511627776]', "overflows"]))
    cases.append(("dims-product-over-i64.gguf",
                  with_tensors([tensor_info("huge", [2**31, 2**32], 0, 0)]),
                  ['tensor "huge"', f"more than {2**63 - 1} elements"]))
    cases.append(("byte-size-overflows.gguf",
                  with_tensors([tensor_info("wide", [2**61, 2], 0, 0)]),
                  ['tensor "wide" of type f32', "size in bytes overflows"]))
    cases.append(("dim-zero.gguf", with_tensors([tensor_info("empty", [4, 0], 0, 0)]),
                  ['tensor "empty" has dimension 1 = 0']))
    cases.append(("dim-negative.gguf", with_tensors([tensor_info("neg", [2**64 - 1], 0, 0)]),
                  [f'tensor "neg" has dimension 0 = {2**64 - 1}']))
    cases.append(("type-id-4.gguf", with_tensors([tensor_info("old", [32], 4, 0)]),
                  ['tensor "old" has ggml type id 4 (q4_2), which ggml has removed']))
    cases.append(("type-id-9999.gguf", with_tensors([tensor_info("new", [32], 9999, 0)]),
                  ['tensor "new" has unknown ggml type id 9999']))
    cases.append(("row-not-block-multiple.gguf", with_tensors([tensor_info("q", [48, 2], 2, 0)]),
                  ['tensor "q" of type q4_0 has rows of 48 values', "block size 32"]))
    cases.append(("offset-misaligned.gguf", with_tensors([tensor_info("a", [4], 0, 8)]),
                  ['tensor "a" has data offset 8', "not a multiple of the alignment 64"]))
    cases.append(("offset-past-end.gguf", with_tensors([tensor_info("a", [4], 0, 2**20)]),
                  ['tensor "a" (f32, shape [4], 16 bytes)', "past the end of the file"]))
    cases.append(("offset-overflows.gguf", with_tensors([tensor_info("a", [4], 0, 2**64 - 64)]),
                  ['tensor "a" has data offset', "overflows"]))
    cases.append(("overlapping-tensors.gguf",
                  with_tensors([tensor_info("a", [16], 0, 0), tensor_info("b", [4], 0, 0)]),
                  ['tensors "a"', '"b"', "overlap"]))
    cases.append(("duplicate-tensor-names.gguf",
                  with_tensors([tensor_info("w", [4], 0, 0), tensor_info("w", [4], 0, 64)]),
                  ['duplicate tensor name "w" (tensor 1']))
    cases.append(("tensor-name-length-huge.gguf",
                  patch(good, q4_ti, struct.pack("<Q", 2**63)),
                  ["the name of tensor 1", f"has length {2**63}"]))

    names = [c[0] for c in cases]
    assert len(names) == len(set(names))
    for f in os.listdir(HERE):
        if f.endswith(".gguf") and not f.startswith("fuzz-") and f not in names:
            os.remove(os.path.join(HERE, f))
    for name, data, _ in cases:
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
    # Keep the hand-added fuzz-* entries.
    keep = []
    tsv = os.path.join(HERE, "expected.tsv")
    if os.path.exists(tsv):
        with open(tsv, encoding="utf-8") as f:
            keep = [line for line in f if line.startswith("fuzz-")]
    with open(tsv, "w", encoding="utf-8") as f:
        f.write("# file<TAB>fragments its error message must contain (OK: must parse). "
                "Written by make_corpus.py; fuzz-* lines are kept.\n")
        for name, _, frags in cases:
            f.write("\t".join([name] + frags) + "\n")
        f.writelines(keep)


if __name__ == "__main__":
    main()
