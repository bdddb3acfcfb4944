//! Our GGUF files read by llama.cpp's own Python reader (`gguf.GGUFReader`): metadata value types
//! as llama.cpp's loader expects them, and every tensor equal to the checkpoint transformed the way
//! llama.cpp's converter does it — names from gguf-py's `TensorNameMap`, transforms in numpy, the
//! safetensors parsed with numpy. Needs numpy and gguf (`tests/requirements.txt`); skips without
//! them unless FERROLLM_REQUIRE_PYTHON=1.

mod common;
mod convert_common;

use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};

const SCRIPT: &str = r#"
import json, os, sys
import numpy as np
import gguf

out_dir, fx_root = sys.argv[1], sys.argv[2]
ARCH = {
    "GPT2LMHeadModel": gguf.MODEL_ARCH.GPT2, "GPTJForCausalLM": gguf.MODEL_ARCH.GPTJ,
    "GPTNeoXForCausalLM": gguf.MODEL_ARCH.GPTNEOX, "LlamaForCausalLM": gguf.MODEL_ARCH.LLAMA,
    "MistralForCausalLM": gguf.MODEL_ARCH.LLAMA, "MptForCausalLM": gguf.MODEL_ARCH.MPT,
    "BloomForCausalLM": gguf.MODEL_ARCH.BLOOM,
}
SKIP = (".attn.bias", ".attn.masked_bias", ".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq")
V = gguf.GGUFValueType

def load_st(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = data[a:b]
        if info["dtype"] == "F32":
            x = np.frombuffer(buf, dtype="<f4")
        elif info["dtype"] == "F16":
            x = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            x = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: {name}: dtype {info['dtype']}")
        out[name] = x.reshape(info["shape"])
    return out

def load_checkpoint(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        out = {}
        for f in sorted(set(json.load(open(idx))["weight_map"].values())):
            out.update(load_st(os.path.join(d, f)))
        return out
    return load_st(os.path.join(d, "model.safetensors"))

def permute(w, n_head, n_head_kv):  # llama.cpp's LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

def qkv(w, n_head, n_embd):  # llama.cpp's GPTNeoXModel / BloomModel re-format
    if w.ndim == 2:
        q = w.reshape(n_head, 3, n_embd // n_head, n_embd)
        return np.concatenate([q[:, 0].reshape(-1, n_embd), q[:, 1].reshape(-1, n_embd), q[:, 2].reshape(-1, n_embd)])
    q = w.reshape(n_head, 3, n_embd // n_head)
    return np.concatenate([q[:, 0].reshape(n_embd), q[:, 1].reshape(n_embd), q[:, 2].reshape(n_embd)])

def field_type(r, key):
    f = r.fields[key]
    return [V(t) for t in f.types]

checked = 0
for fx in sorted(os.listdir(fx_root)):
    d = os.path.join(fx_root, fx)
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = ARCH[cfg["architectures"][0]]
    a = gguf.MODEL_ARCH_NAMES[arch]
    n_layer = cfg.get("n_layer") or cfg.get("num_hidden_layers") or cfg.get("n_layers")
    n_head = cfg.get("n_head") or cfg.get("num_attention_heads") or cfg.get("n_heads")
    n_kv = cfg.get("num_key_value_heads", n_head)
    n_embd = cfg.get("n_embd") or cfg.get("hidden_size") or cfg.get("d_model")
    tied = cfg.get("tie_word_embeddings", a in ("gpt2", "mpt", "bloom"))
    names = gguf.get_tensor_name_map(arch, n_layer)
    ck = load_checkpoint(d)
    expected = {}
    for name, w in ck.items():
        if name.endswith(SKIP):
            continue
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None and name.startswith("transformer."):
            new = names.get_name(name[len("transformer."):], try_suffixes=(".weight", ".bias"))
        assert new is not None, f"{fx}: gguf-py cannot map {name}"
        if new == "output.weight" and tied:
            continue
        if a == "gpt2" and name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            w = w.T
        if a in ("gptneox", "bloom") and "query_key_value" in name:
            w = qkv(w, n_head, n_embd)
        if a == "llama" and name.endswith("q_proj.weight"):
            w = permute(w, n_head, n_head)
        if a == "llama" and name.endswith("k_proj.weight"):
            w = permute(w, n_head, n_kv)
        expected[new] = w
    if a == "gptneox" and tied:
        expected["output.weight"] = ck["gpt_neox.embed_in.weight"]

    for suffix, qtype, np_type in (("f32", gguf.GGMLQuantizationType.F32, np.float32), ("f16", gguf.GGMLQuantizationType.F16, np.float16)):
        path = os.path.join(out_dir, f"{fx}-{suffix}.gguf")
        r = gguf.GGUFReader(path)
        got = {t.name: t for t in r.tensors}
        assert sorted(got) == sorted(expected), f"{path}: tensors {sorted(set(got) ^ set(expected))}"
        for name, w in expected.items():
            t = got[name]
            keep_f32 = w.ndim == 1 or name == "position_embd.weight"
            want_type = gguf.GGMLQuantizationType.F32 if keep_f32 else qtype
            assert t.tensor_type == want_type, f"{path}: {name} is {t.tensor_type.name}"
            want = np.ascontiguousarray(w.astype(np.float32 if keep_f32 else np_type))
            data = np.ascontiguousarray(np.asarray(t.data).reshape(want.shape))
            assert data.dtype == want.dtype and np.array_equal(data.view(np.uint8), want.view(np.uint8)), f"{path}: {name} values"

        # Metadata value types, as llama.cpp's loader reads them.
        types = {
            "general.architecture": [V.STRING], "general.type": [V.STRING], "general.name": [V.STRING],
            "general.file_type": [V.UINT32], "general.quantization_version": [V.UINT32],
            f"{a}.context_length": [V.UINT32], f"{a}.embedding_length": [V.UINT32],
            f"{a}.block_count": [V.UINT32], f"{a}.feed_forward_length": [V.UINT32],
            f"{a}.attention.head_count": [V.UINT32], f"{a}.attention.head_count_kv": [V.UINT32],
            f"{a}.rope.dimension_count": [V.UINT32], f"{a}.rope.freq_base": [V.FLOAT32],
            f"{a}.attention.layer_norm_epsilon": [V.FLOAT32], f"{a}.attention.layer_norm_rms_epsilon": [V.FLOAT32],
            f"{a}.attention.key_length": [V.UINT32], f"{a}.attention.value_length": [V.UINT32],
            f"{a}.vocab_size": [V.UINT32], f"{a}.use_parallel_residual": [V.BOOL],
            f"{a}.attention.clamp_kqv": [V.FLOAT32], f"{a}.attention.max_alibi_bias": [V.FLOAT32],
            "tokenizer.ggml.model": [V.STRING], "tokenizer.ggml.pre": [V.STRING],
            "tokenizer.ggml.tokens": [V.ARRAY, V.STRING], "tokenizer.ggml.token_type": [V.ARRAY, V.INT32],
            "tokenizer.ggml.scores": [V.ARRAY, V.FLOAT32], "tokenizer.ggml.merges": [V.ARRAY, V.STRING],
            "tokenizer.ggml.bos_token_id": [V.UINT32], "tokenizer.ggml.eos_token_id": [V.UINT32],
            "tokenizer.ggml.unknown_token_id": [V.UINT32], "tokenizer.ggml.padding_token_id": [V.UINT32],
            "tokenizer.ggml.add_bos_token": [V.BOOL], "tokenizer.ggml.add_eos_token": [V.BOOL],
            "tokenizer.ggml.add_space_prefix": [V.BOOL], "tokenizer.huggingface.json": [V.STRING],
        }
        required = ["general.architecture", f"{a}.context_length", f"{a}.embedding_length", f"{a}.block_count",
                    f"{a}.feed_forward_length", f"{a}.attention.head_count", "tokenizer.ggml.model",
                    "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.huggingface.json"]
        for key in required:
            assert key in r.fields, f"{path}: no {key}"
        for key in r.fields:
            if key.startswith("GGUF."):
                continue
            assert key in types, f"{path}: unexpected key {key}"
            assert field_type(r, key) == types[key], f"{path}: {key} is {field_type(r, key)}"
        assert r.fields["general.architecture"].contents() == a
        # The token list is the tokenizer's vocabulary, by id.
        tj = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
        tokens = r.fields["tokenizer.ggml.tokens"].contents()
        for text, i in tj["model"]["vocab"].items():
            assert tokens[i] == text, f"{path}: token {i} is {tokens[i]!r}, not {text!r}"
        checked += 1
print("checked", checked)
"#;

#[test]
fn gguf_py_reads_our_files_as_llama_cpp_writes_them() {
    if !common::python_has(&["gguf", "numpy"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = convert_common::fixtures();
    for dir in &fixtures {
        let name = dir.file_name().unwrap().to_str().unwrap();
        let conv = Converter::open(dir).unwrap();
        for dtype in [GgmlType::F32, GgmlType::F16] {
            let out = tmp.path().join(format!("{name}-{}.gguf", dtype.name()));
            let params = ConvertParams {
                container: Container::Gguf,
                dtype,
            };
            conv.convert(&out, &params, &mut |_| true).unwrap();
        }
    }
    let root = common::fixture("hf");
    let stdout = common::run_python(
        SCRIPT,
        &[tmp.path().to_str().unwrap(), root.to_str().unwrap()],
    );
    assert_eq!(stdout.trim(), format!("checked {}", 2 * fixtures.len()));
}
