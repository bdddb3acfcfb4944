//! Optional comparison with llama.cpp's own converter. Runs when FERROLLM_LLAMA_CPP_CONVERT names
//! `convert_hf_to_gguf.py` and FERROLLM_TORCH_PYTHON a Python with torch, transformers,
//! sentencepiece and gguf; skips otherwise.
//!
//! For every HF fixture llama.cpp supports (all but GPT-J, which llama.cpp cannot convert), both
//! converters write F32 GGUF files, which must have the same tensors (names, shapes, types, values
//! bit for bit) and the same key metadata. llama.cpp's converter cannot convert the fixtures as they
//! are; the runner applies the smallest patches, which it prints:
//! - transformers 5 configs: GPT-2's `n_ctx` and GPT-NeoX's `rotary_pct` are gone from
//!   `AutoConfig.to_dict()` (they are `n_positions` and `rope_parameters.partial_rotary_factor`);
//! - llama.cpp registers `MPTForCausalLM` only, not transformers' `MptForCausalLM`;
//! - the tiny trained tokenizers match none of llama.cpp's pre-tokenizer hashes: the name is then
//!   taken from the tokenizer.json pre-tokenizer (ByteLevel → "gpt-2", BLOOM's Split → "bloom").
//!
//! Known, intended differences (not compared): `general.name`/`size_label` (llama.cpp title-cases the
//! folder name), keys only we write (`tokenizer.huggingface.json`, `general.file_type` and
//! `rope.freq_base` for GPT-NeoX, `tokenizer.ggml.add_space_prefix`), llama.cpp's
//! `add_sep_token`, GPT-2's `feed_forward_length` when `n_inner` is set (llama.cpp writes
//! 4·n_embd, which does not match the tensors: its file fails to load), and the SentencePiece-style
//! vocabulary's scores and unknown-token type (llama.cpp's `LlamaHfVocab` writes -1000 for every
//! score and marks `<unk>` control; we rank merges and mark it unknown).

mod common;
mod convert_common;

use ferrollm::convert::{ConvertParams, Converter};
use ferrollm::format::{Container, GgmlType};
use std::process::Command;

const RUNNER: &str = r#"
import json, os, runpy, sys
conv = sys.argv[1]
root = os.path.dirname(os.path.abspath(conv))
sys.path.insert(0, root)
sys.path.insert(1, os.path.join(root, "gguf-py"))
import conversion
from conversion import base
patches = []
_orig_load = base.ModelBase.load_hparams
def load_hparams(dir_model, is_mistral_format):
    h = _orig_load(dir_model, is_mistral_format)
    rp = h.get("rope_parameters") or {}
    if h.get("model_type") == "gpt2" and "n_ctx" not in h:
        h["n_ctx"] = h["n_positions"]; patches.append("n_ctx = n_positions")
    if h.get("model_type") == "gpt_neox" and "rotary_pct" not in h:
        h["rotary_pct"] = rp.get("partial_rotary_factor", 0.25); patches.append("rotary_pct = rope_parameters.partial_rotary_factor")
    return h
base.ModelBase.load_hparams = staticmethod(load_hparams)
conversion.TEXT_MODEL_MAP["MptForCausalLM"] = "mpt"
import conversion.mpt
base.ModelBase._model_classes[base.ModelType.TEXT]["MptForCausalLM"] = conversion.mpt.MPTModel
_orig_pre = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return _orig_pre(self, tokenizer)
    except NotImplementedError:
        tok = json.load(open(os.path.join(self.dir_model, "tokenizer.json"), encoding="utf-8"))
        pre = tok.get("pre_tokenizer") or {}
        name = "bloom" if pre.get("type") == "Sequence" else "gpt-2" if pre.get("type") == "ByteLevel" else "default"
        patches.append(f"unknown pre-tokenizer hash -> {name}")
        return name
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = [conv] + sys.argv[2:]
try:
    runpy.run_path(conv, run_name="__main__")
finally:
    print("PATCHES " + json.dumps(sorted(set(patches))), file=sys.stderr)
"#;

const COMPARE: &str = r#"
import json, sys
import numpy as np
import gguf
ours, theirs, arch = sys.argv[1], sys.argv[2], sys.argv[3]
a, b = gguf.GGUFReader(ours), gguf.GGUFReader(theirs)
report = {"tensors": 0, "problems": [], "only_ours": [], "only_theirs": [], "differ": []}
ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
if sorted(ta) != sorted(tb):
    report["problems"].append(f"tensor names differ: ours only {sorted(set(ta) - set(tb))}, llama.cpp only {sorted(set(tb) - set(ta))}")
for name in sorted(set(ta) & set(tb)):
    x, y = ta[name], tb[name]
    if list(x.shape) != list(y.shape) or x.tensor_type != y.tensor_type:
        report["problems"].append(f"{name}: ours {x.tensor_type.name}{list(x.shape)}, llama.cpp {y.tensor_type.name}{list(y.shape)}")
    elif not np.array_equal(np.asarray(x.data), np.asarray(y.data)):
        report["problems"].append(f"{name}: values differ")
    else:
        report["tensors"] += 1
def value(r, k):
    f = r.fields[k]
    v = f.contents()
    return [int(t) for t in f.types], v
KEY = ["general.architecture", "context_length", "embedding_length", "block_count", "feed_forward_length",
       "attention.head_count", "attention.head_count_kv", "rope.dimension_count", "rope.freq_base",
       "attention.layer_norm_epsilon", "attention.layer_norm_rms_epsilon", "use_parallel_residual",
       "attention.clamp_kqv", "attention.max_alibi_bias", "vocab_size", "attention.key_length",
       "attention.value_length", "general.quantization_version",
       "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
       "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
       "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"]
if arch != "llama":
    KEY.append("tokenizer.ggml.token_type")
KEY = [k if k.startswith(("general.", "tokenizer.")) else f"{arch}.{k}" for k in KEY]
cfg = json.load(open(sys.argv[4]))
if arch == "gpt2" and cfg.get("n_inner"):
    KEY.remove("gpt2.feed_forward_length")
for k in sorted(set(a.fields) | set(b.fields)):
    if k.startswith("GGUF."):
        continue
    if k not in b.fields:
        report["only_ours"].append(k)
    elif k not in a.fields:
        report["only_theirs"].append(k)
    elif value(a, k) != value(b, k):
        report["differ"].append(k)
for k in KEY:
    in_a, in_b = k in a.fields, k in b.fields
    if in_b and not in_a:
        report["problems"].append(f"{k}: llama.cpp writes it, we do not")
    elif in_a and in_b and value(a, k) != value(b, k):
        report["problems"].append(f"{k}: ours {value(a, k)}, llama.cpp {value(b, k)}"[:300])
print(json.dumps(report))
"#;

#[test]
fn same_tensors_and_key_metadata_as_llama_cpp() {
    let (Ok(script), Ok(python)) = (
        std::env::var("FERROLLM_LLAMA_CPP_CONVERT"),
        std::env::var("FERROLLM_TORCH_PYTHON"),
    ) else {
        eprintln!("SKIPPED: set FERROLLM_LLAMA_CPP_CONVERT and FERROLLM_TORCH_PYTHON to compare with llama.cpp");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for dir in convert_common::fixtures() {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let conv = Converter::open(&dir).unwrap();
        let arch = conv.architecture().gguf_name();
        if arch == "gptj" {
            eprintln!("{name}: llama.cpp has no GPT-J converter");
            continue;
        }
        let ours = tmp.path().join(format!("{name}-ours.gguf"));
        let params = ConvertParams {
            container: Container::Gguf,
            dtype: GgmlType::F32,
        };
        conv.convert(&ours, &params, &mut |_| true).unwrap();
        let theirs = tmp.path().join(format!("{name}-llama-cpp.gguf"));
        let o = Command::new(&python)
            .args(["-c", RUNNER, &script, "--outtype", "f32"])
            .arg(&dir)
            .arg("--outfile")
            .arg(&theirs)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "{name}: llama.cpp's converter failed:\n{stderr}"
        );
        let patches = stderr
            .lines()
            .find(|l| l.starts_with("PATCHES "))
            .unwrap_or("PATCHES ?");
        let o = Command::new(&python)
            .args(["-c", COMPARE])
            .arg(&ours)
            .arg(&theirs)
            .arg(arch)
            .arg(dir.join("config.json"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        eprintln!(
            "{name}: {} tensors identical; {patches}; keys only ours {}, only llama.cpp {}, different {}",
            report["tensors"], report["only_ours"], report["only_theirs"], report["differ"]
        );
        for p in report["problems"].as_array().unwrap() {
            problems.push(format!("{name}: {}", p.as_str().unwrap()));
        }
    }
    assert!(
        problems.is_empty(),
        "differences from llama.cpp:\n{}",
        problems.join("\n")
    );
}
