//! Malicious and broken PyTorch checkpoints, built here byte by byte: every one is refused with a
//! FORMAT or UNSUPPORTED error naming what is wrong, nothing is executed, nothing panics, and no
//! allocation follows a declared size.

use ferrollm::convert::torch::{zip, TorchFile};
use ferrollm::{Error, ErrorKind};
use std::path::Path;
use std::time::Instant;

// ---- pickle builders (protocol 2, as torch.save writes it) ----

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}
fn s(x: &str) -> Vec<u8> {
    cat(&[b"X", &(x.len() as u32).to_le_bytes(), x.as_bytes()])
}
/// An int as LONG1 with 8 bytes (any i64).
fn int(v: i64) -> Vec<u8> {
    cat(&[&[0x8a, 8], &v.to_le_bytes()])
}
fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
    cat(&[b"(", &items.concat(), b"t"])
}
fn ordered_dict() -> Vec<u8> {
    cat(&[&global("collections", "OrderedDict"), b")R"])
}
fn storage(ty: &str, key: &str, numel: i64) -> Vec<u8> {
    cat(&[
        &tuple(&[
            s("storage"),
            global("torch", ty),
            s(key),
            s("cpu"),
            int(numel),
        ]),
        b"Q",
    ])
}
fn tensor_with(storage_pid: Vec<u8>, offset: i64, shape: &[i64], stride: &[i64]) -> Vec<u8> {
    let ints = |v: &[i64]| tuple(&v.iter().map(|&x| int(x)).collect::<Vec<_>>());
    cat(&[
        &global("torch._utils", "_rebuild_tensor_v2"),
        &tuple(&[
            storage_pid,
            int(offset),
            ints(shape),
            ints(stride),
            vec![0x89],
            ordered_dict(),
        ]),
        b"R",
    ])
}
fn tensor(ty: &str, key: &str, numel: i64, offset: i64, shape: &[i64], stride: &[i64]) -> Vec<u8> {
    tensor_with(storage(ty, key, numel), offset, shape, stride)
}
/// `OrderedDict` of `entries` (name → pickled value), then STOP.
fn state(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in entries {
        body.extend(s(name));
        body.extend_from_slice(value);
    }
    cat(&[&[0x80, 2], &ordered_dict(), b"(", &body, b"u."])
}

// ---- archives ----

fn archive(pkl: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let names: Vec<String> = storages
        .iter()
        .map(|(k, _)| format!("archive/data/{k}"))
        .collect();
    let mut entries: Vec<(&str, &[u8])> =
        vec![("archive/data.pkl", pkl), ("archive/byteorder", b"little")];
    for (n, (_, b)) in names.iter().zip(storages) {
        entries.push((n.as_str(), b.as_slice()));
    }
    zip::write_stored(&entries)
}

/// An entry for [`raw_zip`]: the method and declared uncompressed size are whatever we say.
struct Raw<'a> {
    name: &'a str,
    data: &'a [u8],
    method: u16,
    declared: u64,
}
fn stored<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        data,
        method: 0,
        declared: data.len() as u64,
    }
}

/// A zip64 archive (as torch writes them: sizes and offsets in the zip64 extra field, a zip64 end
/// record and locator) of `entries`.
fn raw_zip64(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u64;
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([45, 0, 8, 0]); // version, flags (bit 3: data descriptor)
        out.extend(e.method.to_le_bytes());
        out.extend([0u8; 16]); // time, date, crc, sizes (in the descriptor)
        out.extend((e.name.len() as u16).to_le_bytes());
        out.extend(8u16.to_le_bytes());
        out.extend(e.name.as_bytes());
        out.extend(b"FB\x04\x00\0\0\0\0"); // torch's alignment padding field
        out.extend_from_slice(e.data);
        out.extend([0u8; 24]); // a zip64 data descriptor's worth of bytes
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([45, 0, 45, 0, 8, 0]);
        central.extend(e.method.to_le_bytes());
        central.extend([0u8; 8]); // time, date, crc
        central.extend([0xFF; 8]); // sizes: see zip64 extra
        central.extend((e.name.len() as u16).to_le_bytes());
        central.extend(28u16.to_le_bytes());
        central.extend([0u8; 10]); // comment length, disk, internal and external attributes
        central.extend([0xFF; 4]); // offset: see zip64 extra
        central.extend(e.name.as_bytes());
        central.extend(1u16.to_le_bytes());
        central.extend(24u16.to_le_bytes());
        central.extend(e.declared.to_le_bytes());
        central.extend((e.data.len() as u64).to_le_bytes());
        central.extend(offset.to_le_bytes());
    }
    let cd_offset = out.len() as u64;
    out.extend(&central);
    let rec = out.len() as u64;
    out.extend(0x0606_4b50u32.to_le_bytes());
    out.extend(44u64.to_le_bytes());
    out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend((entries.len() as u64).to_le_bytes());
    out.extend((entries.len() as u64).to_le_bytes());
    out.extend((central.len() as u64).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0x0706_4b50u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(rec.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend([0xFF; 12]); // counts, size and offset: see the zip64 record
    out.extend(0u16.to_le_bytes());
    out
}

fn open(bytes: Vec<u8>) -> Result<TorchFile, Error> {
    TorchFile::from_bytes(Path::new("evil.bin"), bytes)
}

/// The error of opening `bytes`, which must be of `kind` and mention every one of `needles`.
#[track_caller]
fn refused(bytes: Vec<u8>, kind: ErrorKind, needles: &[&str]) -> Error {
    let e = match open(bytes) {
        Ok(f) => panic!(
            "accepted; tensors {:?}",
            f.tensors().iter().map(|t| t.name()).collect::<Vec<_>>()
        ),
        Err(e) => e,
    };
    assert_eq!(e.kind(), kind, "{e}");
    for n in needles {
        assert!(e.message().contains(n), "`{n}` not in: {e}");
    }
    assert!(e.message().starts_with("evil.bin"), "names the file: {e}");
    eprintln!("refused ({kind:?}): {e}");
    e
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn good_pickle() -> Vec<u8> {
    state(&[("w", tensor("FloatStorage", "0", 6, 0, &[2, 3], &[3, 1]))])
}

#[test]
fn hand_built_archives_read_back() {
    let values = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let f = open(archive(&good_pickle(), &[("0", values.clone())])).unwrap();
    assert_eq!(f.tensors()[0].shape(), vec![2, 3]);
    assert_eq!(f.data(&f.tensors()[0]).unwrap().as_ref(), values.as_slice());
    // The same in a zip64 archive laid out like torch's (padding field, data descriptors).
    let pkl = good_pickle();
    let f = open(raw_zip64(&[
        stored("a/data.pkl", &pkl),
        stored("a/data/0", &values),
    ]))
    .unwrap();
    assert_eq!(f.data(&f.tensors()[0]).unwrap().as_ref(), values.as_slice());
}

const MARKER: &str = "/tmp/ferrollm-torch-malicious-test-ran";

#[test]
fn every_global_outside_the_allow_list_is_refused_by_name() {
    let _ = std::fs::remove_file(MARKER);
    let evil = [
        ("os", "system"),
        ("posix", "system"),
        ("nt", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("__builtin__", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("torch", "FloatTensor"),
        ("torch._utils", "_rebuild_qtensor"),
        ("torch._utils", "_rebuild_device_tensor_from_numpy"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("collections", "Counter"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("torch.nn.modules.linear", "Linear"),
    ];
    for (m, n) in evil {
        let call = cat(&[
            &global(m, n),
            &tuple(&[s(&format!("touch {MARKER}"))]),
            b"R",
        ]);
        // As a state dict value, and as the whole pickle.
        let full = format!("`{m}.{n}`");
        refused(
            archive(&state(&[("w", call.clone())]), &[]),
            ErrorKind::Unsupported,
            &[&full, "refused"],
        );
        refused(
            archive(&cat(&[&[0x80, 2], &call, b"."]), &[]),
            ErrorKind::Unsupported,
            &[&full],
        );
        // Through protocol 4's STACK_GLOBAL.
        let stack = cat(&[&[0x80, 4], &s(m), &s(n), &[0x93], b")R."]);
        refused(archive(&stack, &[]), ErrorKind::Unsupported, &[&full]);
    }
    assert!(!Path::new(MARKER).exists(), "a payload ran");
}

#[test]
fn a_storage_type_is_not_callable_and_ids_must_be_storages() {
    let call = cat(&[&global("torch", "FloatStorage"), b")R"]);
    refused(
        archive(&state(&[("w", call)]), &[]),
        ErrorKind::Unsupported,
        &["torch.FloatStorage", "not be called"],
    );
    let module_pid = cat(&[&tuple(&[s("module"), s("x")]), b"Q"]);
    refused(
        archive(
            &state(&[("w", tensor_with(module_pid, 0, &[1], &[1]))]),
            &[],
        ),
        ErrorKind::Unsupported,
        &["`module`"],
    );
    let int_pid = cat(&[&int(3), b"Q"]);
    refused(
        archive(&state(&[("w", int_pid)]), &[]),
        ErrorKind::Format,
        &["persistent id is an int"],
    );
}

#[test]
fn unknown_and_disallowed_opcodes_are_refused() {
    for op in [0xffu8, 0x99, 0x00, b'z'] {
        let pkl = cat(&[&[0x80, 2], &[op], b"."]);
        refused(
            archive(&pkl, &[]),
            ErrorKind::Format,
            &[&format!("unknown pickle opcode 0x{op:02x}"), "offset 2"],
        );
    }
    let disallowed: [(u8, &str); 12] = [
        (b'i', "INST"),
        (b'o', "OBJ"),
        (0x81, "NEWOBJ"),
        (0x92, "NEWOBJ_EX"),
        (0x82, "EXT1"),
        (b'g', "GET"),
        (b'p', "PUT"),
        (b'P', "PERSID"),
        (b'I', "INT"),
        (b'S', "STRING"),
        (0x97, "NEXT_BUFFER"),
        (0x91, "FROZENSET"),
    ];
    for (op, name) in disallowed {
        let pkl = cat(&[&[0x80, 2], b"N", &[op], b"."]);
        refused(
            archive(&pkl, &[]),
            ErrorKind::Unsupported,
            &[&format!("opcode {name} "), "not allowed"],
        );
    }
}

#[test]
fn storage_reference_past_its_entry_is_refused() {
    // Offset 4 + (2-1)*2 + (2-1)*1 = element 7 of a 6-element storage.
    let pkl = state(&[("w", tensor("FloatStorage", "0", 6, 4, &[2, 2], &[2, 1]))]);
    refused(
        archive(&pkl, &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Format,
        &["tensor `w`", "element 7", "6 elements"],
    );
    // A storage that declares more elements than its entry holds.
    let pkl = state(&[("w", tensor("FloatStorage", "0", 100, 0, &[2], &[1]))]);
    refused(
        archive(&pkl, &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Format,
        &["storage `0` (of tensor `w`)", "400 bytes", "holds 24 bytes"],
    );
    // An empty tensor whose offset is past the storage.
    let pkl = state(&[("w", tensor("FloatStorage", "0", 6, 7, &[0], &[1]))]);
    refused(
        archive(&pkl, &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Format,
        &["storage offset 7"],
    );
}

#[test]
fn size_overflows_are_refused() {
    let six = || vec![("0", f32_bytes(&[0.0; 6]))];
    // numel overflows u64.
    let pkl = state(&[(
        "w",
        tensor("FloatStorage", "0", 6, 0, &[1 << 62, 1 << 62], &[0, 0]),
    )]);
    refused(archive(&pkl, &six()), ErrorKind::Format, &["tensor `w`"]);
    // numel fits, numel × 4 does not.
    let pkl = state(&[("w", tensor("FloatStorage", "0", 6, 0, &[1 << 62], &[0]))]);
    refused(
        archive(&pkl, &six()),
        ErrorKind::Format,
        &["tensor `w`", "too large"],
    );
    // (size − 1) × stride overflows.
    let pkl = state(&[(
        "w",
        tensor("FloatStorage", "0", 6, 0, &[3, 3], &[i64::MAX, i64::MAX]),
    )]);
    refused(
        archive(&pkl, &six()),
        ErrorKind::Format,
        &["tensor `w`", "overflows"],
    );
    // The storage's numel × itemsize overflows.
    let pkl = state(&[("w", tensor("FloatStorage", "0", i64::MAX, 0, &[1], &[1]))]);
    refused(
        archive(&pkl, &six()),
        ErrorKind::Format,
        &["storage `0`", "overflowing"],
    );
    // Negative sizes and offsets.
    let pkl = state(&[("w", tensor("FloatStorage", "0", 6, -1, &[1], &[1]))]);
    refused(archive(&pkl, &six()), ErrorKind::Format, &["negative"]);
    let pkl = state(&[("w", tensor("FloatStorage", "0", 6, 0, &[-2], &[1]))]);
    refused(archive(&pkl, &six()), ErrorKind::Format, &["negative"]);
    // Too many dimensions.
    let dims = vec![1i64; 65];
    let pkl = state(&[("w", tensor("FloatStorage", "0", 6, 0, &dims, &dims))]);
    refused(
        archive(&pkl, &six()),
        ErrorKind::Unsupported,
        &["65 dimensions"],
    );
    // A LONG1 beyond 64 bits.
    let long = cat(&[&[0x8a, 9], &[0u8; 8], &[1]]);
    let pkl = cat(&[&[0x80, 2], &long, b"."]);
    refused(archive(&pkl, &[]), ErrorKind::Format, &["64 bits"]);
}

#[test]
fn a_missing_storage_file_is_refused() {
    let pkl = state(&[
        ("a", tensor("FloatStorage", "0", 6, 0, &[6], &[1])),
        ("b", tensor("HalfStorage", "3", 2, 0, &[2], &[1])),
    ]);
    refused(
        archive(&pkl, &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Format,
        &["storage `3` (of tensor `b`)", "archive/data/3", "missing"],
    );
}

#[test]
fn truncated_archives_are_refused() {
    let full = archive(&good_pickle(), &[("0", f32_bytes(&[0.0; 6]))]);
    for n in 0..full.len() {
        let e = open(full[..n].to_vec()).err().unwrap();
        assert!(
            matches!(e.kind(), ErrorKind::Format | ErrorKind::Unsupported),
            "{n}: {e}"
        );
    }
    let pkl = good_pickle();
    let values = f32_bytes(&[0.0; 6]);
    let full = raw_zip64(&[stored("a/data.pkl", &pkl), stored("a/data/0", &values)]);
    for n in 0..full.len() {
        assert!(open(full[..n].to_vec()).is_err(), "{n}");
    }
    refused(
        full[..full.len() - 30].to_vec(),
        ErrorKind::Format,
        &["end-of-central-directory"],
    );
}

#[test]
fn compressed_entries_are_refused_without_decompressing() {
    // A "zip bomb": a deflated storage that declares 1 TiB.
    let pkl = good_pickle();
    let junk = [0x4bu8; 64];
    let bomb = Raw {
        name: "a/data/0",
        data: &junk,
        method: 8,
        declared: 1 << 40,
    };
    let start = Instant::now();
    refused(
        raw_zip64(&[stored("a/data.pkl", &pkl), bomb]),
        ErrorKind::Unsupported,
        &["`a/data/0` is compressed", "method 8", "1099511627776"],
    );
    // The pickle itself compressed.
    let bomb = Raw {
        name: "a/data.pkl",
        data: &junk,
        method: 8,
        declared: u64::MAX,
    };
    refused(
        raw_zip64(&[bomb]),
        ErrorKind::Unsupported,
        &["`a/data.pkl` is compressed"],
    );
    // A stored entry whose sizes disagree.
    let liar = Raw {
        name: "a/data/0",
        data: &junk,
        method: 0,
        declared: 1 << 40,
    };
    refused(
        raw_zip64(&[stored("a/data.pkl", &pkl), liar]),
        ErrorKind::Format,
        &["sizes differ"],
    );
    assert!(start.elapsed().as_secs() < 2);
}

#[test]
fn deep_nesting_and_recursion_stay_bounded() {
    let start = Instant::now();
    // A million nested 1-tuples: no recursion when building, checking or dropping it.
    let mut pkl = vec![0x80, 2, b'N'];
    pkl.extend(vec![0x85u8; 1_000_000]);
    pkl.push(b'.');
    refused(
        archive(&pkl, &[]),
        ErrorKind::Unsupported,
        &["holds a tuple, not a state dict"],
    );
    // Half a million open MARKs, then STOP: an empty frame.
    let mut pkl = vec![0x80, 2, b'N'];
    pkl.extend(vec![b'('; 500_000]);
    pkl.push(b'.');
    refused(archive(&pkl, &[]), ErrorKind::Format, &["stack underflow"]);
    // A list that contains itself, as a state dict value.
    let selfref = b"]q\x00h\x00a".to_vec();
    refused(
        archive(&state(&[("w", selfref)]), &[]),
        ErrorKind::Unsupported,
        &["entry `w` is a list, not a tensor"],
    );
    // "Billion laughs": each list holds the previous one twice; 2^2000 leaves, O(n) memory.
    let mut laughs = b"]q\x00".to_vec();
    for _ in 0..2000 {
        laughs.extend_from_slice(b"(h\x00h\x00lq\x00");
    }
    refused(
        archive(&state(&[("w", laughs)]), &[]),
        ErrorKind::Unsupported,
        &["not a tensor"],
    );
    // Memo abuse: a far index is a map key, not a vector size; an undefined one is an error.
    let pkl = cat(&[
        &[0x80, 2, b'N', b'r'],
        &u32::MAX.to_le_bytes(),
        b"0",
        &ordered_dict(),
        b".",
    ]);
    assert!(open(archive(&pkl, &[])).unwrap().tensors().is_empty());
    let pkl = cat(&[&[0x80, 2, b'j'], &12345u32.to_le_bytes(), b"."]);
    refused(
        archive(&pkl, &[]),
        ErrorKind::Format,
        &["memo key 12345 is not defined"],
    );
    // Stack underflow inside a MARK frame.
    let pkl = cat(&[&[0x80, 2, b'N', b'(', b'0'], b"."]);
    refused(archive(&pkl, &[]), ErrorKind::Format, &["stack underflow"]);
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
}

#[test]
fn strings_and_lengths_are_bounded_by_the_input() {
    // BINUNICODE declaring 4 GiB.
    let pkl = cat(&[&[0x80, 2, b'X'], &u32::MAX.to_le_bytes(), b"abc"]);
    refused(archive(&pkl, &[]), ErrorKind::Format, &["truncated"]);
    // BINUNICODE8 declaring 2^63.
    let pkl = cat(&[&[0x80, 4, 0x8d], &(1u64 << 63).to_le_bytes()]);
    refused(archive(&pkl, &[]), ErrorKind::Format, &["truncated"]);
    // Invalid UTF-8.
    let pkl = cat(&[&[0x80, 2, b'X'], &2u32.to_le_bytes(), &[0xff, 0xfe], b"."]);
    refused(archive(&pkl, &[]), ErrorKind::Format, &["UTF-8"]);
    // No STOP.
    refused(
        archive(&[0x80, 2, b'N'], &[]),
        ErrorKind::Format,
        &["without STOP"],
    );
}

#[test]
fn not_state_dicts_are_refused() {
    let list = cat(&[&[0x80, 2], b"].".as_slice()]);
    refused(
        archive(&list, &[]),
        ErrorKind::Unsupported,
        &["holds a list, not a state dict"],
    );
    let nested = state(&[("model", ordered_dict())]);
    refused(
        archive(&nested, &[]),
        ErrorKind::Unsupported,
        &["entry `model` is an OrderedDict, not a tensor"],
    );
    let dup = state(&[
        ("w", tensor("FloatStorage", "0", 6, 0, &[6], &[1])),
        ("w", tensor("FloatStorage", "0", 6, 0, &[6], &[1])),
    ]);
    refused(
        archive(&dup, &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Format,
        &["two entries named `w`"],
    );
    // BUILD may set an OrderedDict's attributes, nothing else's.
    let t = tensor("FloatStorage", "0", 6, 0, &[6], &[1]);
    let built = cat(&[&t, b"}b"]);
    refused(
        archive(&state(&[("w", built)]), &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Unsupported,
        &["BUILD on a tensor"],
    );
    // A storage referenced with two dtypes.
    let two = state(&[
        ("a", tensor("FloatStorage", "0", 6, 0, &[6], &[1])),
        ("b", tensor("HalfStorage", "0", 12, 0, &[12], &[1])),
    ]);
    refused(
        archive(&two, &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Format,
        &["storage `0` is referenced as"],
    );
    // Conjugate-view metadata.
    let meta = cat(&[b"}", &s("conj"), &[0x88], b"s"]);
    let pid = storage("FloatStorage", "0", 6);
    let conj = cat(&[
        &global("torch._utils", "_rebuild_tensor_v2"),
        &tuple(&[
            pid,
            int(0),
            tuple(&[int(6)]),
            tuple(&[int(1)]),
            vec![0x89],
            ordered_dict(),
            meta,
        ]),
        b"R",
    ]);
    refused(
        archive(&state(&[("w", conj)]), &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Unsupported,
        &["`conj`"],
    );
    // A metadata dict is bounded: one huge dict of False reused by every tensor would otherwise
    // cost its size per tensor.
    let mut big = b"}(".to_vec();
    for i in 0..100_000 {
        big.extend(int(i));
        big.push(0x89);
    }
    big.extend_from_slice(b"u");
    let pid = storage("FloatStorage", "0", 6);
    let t = cat(&[
        &global("torch._utils", "_rebuild_tensor_v2"),
        &tuple(&[
            pid,
            int(0),
            tuple(&[int(6)]),
            tuple(&[int(1)]),
            vec![0x89],
            ordered_dict(),
            big,
        ]),
        b"R",
    ]);
    refused(
        archive(&state(&[("w", t)]), &[("0", f32_bytes(&[0.0; 6]))]),
        ErrorKind::Unsupported,
        &["metadata has 100000 entries"],
    );
    // REDUCE with a long argument tuple is refused before anything is copied.
    let mut long = global("collections", "OrderedDict");
    long.push(b'(');
    long.extend(vec![b'N'; 100_000]);
    long.extend_from_slice(b"tR.");
    refused(
        archive(&cat(&[&[0x80, 2], &long]), &[]),
        ErrorKind::Format,
        &["called with 100000 arguments"],
    );
}

#[test]
fn broken_containers_are_refused() {
    refused(
        b"not a zip at all, just text".to_vec(),
        ErrorKind::Format,
        &["not a PyTorch checkpoint"],
    );
    let pkl = good_pickle();
    let values = f32_bytes(&[0.0; 6]);
    // No data.pkl; two data.pkl.
    refused(
        zip::write_stored(&[("a/data/0", &values)]),
        ErrorKind::Format,
        &["data.pkl"],
    );
    refused(
        zip::write_stored(&[("a/data.pkl", &pkl), ("b/data.pkl", &pkl)]),
        ErrorKind::Format,
        &["exactly one"],
    );
    // Two entries with one name.
    refused(
        zip::write_stored(&[("a/data.pkl", &pkl), ("a/data.pkl", &pkl)]),
        ErrorKind::Format,
        &["two entries named `a/data.pkl`"],
    );
    // A bogus byte-order record.
    refused(
        zip::write_stored(&[("a/data.pkl", &pkl), ("a/byteorder", b"middle")]),
        ErrorKind::Format,
        &["a/byteorder", "middle"],
    );
    // A central directory claiming more entries than it has room for.
    let mut z = zip::write_stored(&[("a/data.pkl", &pkl), ("a/data/0", &values)]);
    let n = z.len();
    z[n - 12..n - 10].copy_from_slice(&60000u16.to_le_bytes());
    refused(z, ErrorKind::Format, &["60000 entries"]);
    // A local header offset pointing elsewhere.
    let mut z = zip::write_stored(&[("a/data.pkl", &pkl), ("a/data/0", &values)]);
    let n = z.len();
    let cd = u32::from_le_bytes(z[n - 6..n - 2].try_into().unwrap()) as usize;
    z[cd + 42..cd + 46].copy_from_slice(&7u32.to_le_bytes());
    refused(z, ErrorKind::Format, &["no local header at offset 7"]);
}

#[test]
fn unsupported_dtypes_are_listed_but_their_values_refused() {
    let pkl = state(&[("ids", tensor("LongStorage", "0", 3, 0, &[3], &[1]))]);
    let f = open(archive(&pkl, &[("0", vec![0u8; 24])])).unwrap();
    let t = &f.tensors()[0];
    assert_eq!(t.dtype().name(), "I64");
    let e = f.data(t).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.message().contains("`ids`") && e.message().contains("I64"),
        "{e}"
    );
}

#[test]
fn strided_views_of_three_dimensions_are_gathered() {
    // Storage 0..40; views given as (offset, shape, strides), expected values by direct indexing.
    let values: Vec<f32> = (0..40).map(|i| i as f32).collect();
    let cases: [(i64, &[i64], &[i64]); 5] = [
        (0, &[4, 3, 2], &[1, 4, 12]), // a full permutation of a contiguous [2, 3, 4]
        (3, &[2, 3, 4], &[12, 4, 1]), // contiguous with an offset
        (1, &[2, 2, 3], &[20, 1, 5]), // inner stride 5
        (2, &[3, 1, 4], &[10, 7, 2]), // a size-1 dimension with an odd stride
        (5, &[2, 3, 2], &[13, 1, 0]), // a repeated inner value (stride 0), fewer bytes than the storage
    ];
    for (offset, shape, stride) in cases {
        let pkl = state(&[("w", tensor("FloatStorage", "0", 40, offset, shape, stride))]);
        let f = open(archive(&pkl, &[("0", f32_bytes(&values))])).unwrap();
        let t = &f.tensors()[0];
        let got = f.data(t).unwrap();
        let mut want = Vec::new();
        for i in 0..shape[0] {
            for j in 0..shape[1] {
                for k in 0..shape[2] {
                    want.push(
                        values[(offset + i * stride[0] + j * stride[1] + k * stride[2]) as usize],
                    );
                }
            }
        }
        assert_eq!(
            got.as_ref(),
            f32_bytes(&want).as_slice(),
            "{shape:?} {stride:?}"
        );
    }
}
