#!/usr/bin/env python3
"""Builds the legacy-container test fixtures of ferrollm with the real llm-rs 0.2.15.

For each architecture llm-rs 0.2.15 converts (GPT-2, GPT-J, GPT-NeoX, LLaMA, MPT, BLOOM) this script
makes a tiny random transformers model and a tokenizer *locally* (no hub access), converts it with
llm-rs' own Python converter (`llm_rs.convert.models.*Converter`), quantizes two of them with llm-rs'
Rust quantizer (`llm_rs.<Model>.quantize`), and writes beside each file an `*.expected.json` holding
reference facts taken from *transformers* (hyperparameters from the config, every tensor's name,
shape, storage type and the blake3 of its bytes computed from the transformers weights under
llm-rs' documented conversion rules, plus the token bytes from the tokenizer). The tests compare
ferrollm's reader with these facts, never with ferrollm's own output.

Environment (pinned; llm-rs' converters need transformers 4.x: `LlamaTokenizer.sp_model` is gone
in 5.x):
    python3.11 -m venv /opt/llmrs-venv
    echo /opt/fvenv/lib/python3.11/site-packages \
        > /opt/llmrs-venv/lib/python3.11/site-packages/zz_fvenv.pth   # torch 2.15, llm-rs 0.2.15, blake3
    /opt/llmrs-venv/bin/pip install transformers==4.57.6 sentencepiece==0.2.1
    # (this brings tokenizers 0.22.2 and huggingface-hub 0.36.2 into the venv, shadowing fvenv's)
    # /opt/fvenv has: llm-rs==0.2.15 torch==2.15.0 numpy==2.4.6 blake3==1.0.11

Run:  /opt/llmrs-venv/bin/python tools/legacy/make_legacy_fixtures.py tests/fixtures/legacy

The f16 files and their sidecars come out byte-identical on every run; the quantized ones do not,
because llm-rs' quantizer lists the tensors in hash-map order (their expected facts do not depend
on the order). llm-rs writes no GGMF file: the tests derive one from the GPT-2 GGML fixture by the
documented layout.
"""

import json
import os
import struct
import sys
import tempfile
import pathlib

import numpy as np
import torch
from blake3 import blake3

import transformers
from transformers import PreTrainedTokenizerFast

assert transformers.__version__.startswith("4."), transformers.__version__

import llm_rs
from llm_rs import AutoQuantizer, QuantizationType, ContainerType
from llm_rs.convert.models import (
    Gpt2Converter,
    GptJConverter,
    GptNeoXConverter,
    LlamaConverter,
    MPTConverter,
    BloomConverter,
)

SEED = 1234
VOCAB = 300

WORDS = (
    "the quick brown fox jumps over the lazy dog while a tiny model learns to count one two three "
    "four five six seven eight nine ten hello world rust python ggml tensor quantize convert llama "
    "bloom falcon neox mpt gpt attention layer norm embedding vocabulary token score alpha beta "
    "gamma delta über café naïve 東京 日本 😀 ∑ π"
).split()


def corpus():
    rng = np.random.default_rng(SEED)
    lines = []
    for _ in range(400):
        n = int(rng.integers(3, 12))
        lines.append(" ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), n)))
    return lines


def bpe_tokenizer(specials, eos, bos=None, unk=None):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        min_frequency=1,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    kw = {"eos_token": eos}
    if bos:
        kw["bos_token"] = bos
    if unk:
        kw["unk_token"] = unk
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kw)


def llama_tokenizer(workdir):
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    prefix = os.path.join(workdir, "sp")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_prefix=prefix,
        vocab_size=VOCAB,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return LlamaTokenizer(vocab_file=prefix + ".model", legacy=True)


def build(arch, workdir, hidden):
    """A tiny random transformers model and its tokenizer, saved in `workdir/hf`."""
    torch.manual_seed(SEED)
    hf = os.path.join(workdir, "hf")
    if arch == "llama":
        tok = llama_tokenizer(workdir)
    elif arch == "bloom":
        tok = bpe_tokenizer(["<unk>", "<s>", "</s>", "<pad>"], "</s>", "<s>", "<unk>")
    else:
        tok = bpe_tokenizer(["<|endoftext|>"], "<|endoftext|>")
    n_vocab = len(tok)
    heads = hidden // 16
    if arch == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=n_vocab, n_positions=128, n_embd=hidden, n_layer=2, n_head=heads
        )
        model = transformers.GPT2LMHeadModel(cfg)
    elif arch == "gptj":
        cfg = transformers.GPTJConfig(
            vocab_size=n_vocab, n_positions=128, n_embd=hidden, n_layer=2, n_head=heads, rotary_dim=8
        )
        model = transformers.GPTJForCausalLM(cfg)
    elif arch == "gptneox":
        cfg = transformers.GPTNeoXConfig(
            vocab_size=n_vocab,
            max_position_embeddings=128,
            hidden_size=hidden,
            num_hidden_layers=2,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
            rotary_pct=0.25,
            use_parallel_residual=True,
        )
        model = transformers.GPTNeoXForCausalLM(cfg)
    elif arch == "llama":
        # llm-rs writes n_mult = 256, from which llm derives n_ff = 256 for these widths.
        cfg = transformers.LlamaConfig(
            vocab_size=n_vocab,
            hidden_size=hidden,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=128,
            rms_norm_eps=1e-6,
        )
        model = transformers.LlamaForCausalLM(cfg)
    elif arch == "mpt":
        cfg = transformers.MptConfig(
            vocab_size=n_vocab, d_model=hidden, n_heads=heads, n_layers=2, max_seq_len=128,
            expansion_ratio=4,
        )
        model = transformers.MptForCausalLM(cfg)
    elif arch == "bloom":
        cfg = transformers.BloomConfig(vocab_size=n_vocab, hidden_size=hidden, n_layer=2, n_head=heads)
        model = transformers.BloomForCausalLM(cfg)
    else:
        raise ValueError(arch)
    # Random weights with some spread (the default init puts many norms at exactly 1 and biases at 0).
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    model.save_pretrained(hf)
    tok.save_pretrained(hf)
    return hf


CONVERTERS = {
    "gpt2": Gpt2Converter,
    "gptj": GptJConverter,
    "gptneox": GptNeoXConverter,
    "llama": LlamaConverter,
    "mpt": MPTConverter,
    "bloom": BloomConverter,
}
MODELS = {
    "gpt2": llm_rs.Gpt2,
    "gptj": llm_rs.GptJ,
    "gptneox": llm_rs.GptNeoX,
    "llama": llm_rs.Llama,
    "mpt": llm_rs.Mpt,
    "bloom": llm_rs.Bloom,
}


def reference_tensors(conv):
    """Every tensor llm-rs' converter writes, from the transformers weights, under llm-rs' rules
    (the converter's own filter/rename/transform/f16 decisions applied to transformers' state dict)."""
    out = []
    for name, weight in conv.model.state_dict().items():
        if conv._filter_weights(name, weight):
            continue
        name = conv._rename_weights(name)
        weight = conv._transform_weights(name, weight)
        if conv._filter_weights_after_rename(name, weight):
            continue
        data = weight.squeeze().numpy()
        f16 = conv._filter_f16_weights(name, data)
        data = data.astype(np.float16 if f16 else np.float32)
        vals = data.astype(np.float64).ravel()
        out.append(
            {
                "name": name,
                "type": "f16" if f16 else "f32",
                "shape": list(data.shape[::-1]),  # ggml order: innermost first
                "blake3": blake3(np.ascontiguousarray(data).tobytes()).hexdigest(),
                "sum": float(vals.sum()),
                "first": [float(v) for v in vals[:4]],
                # for checking dequantized values of quantized files: the first 32 values
                "head": [float(v) for v in vals[:32]],
            }
        )
    return out


def hyperparameters(arch, cfg):
    """GGUF-keyed hyperparameters that the file must yield, from the transformers config."""
    d = cfg.to_dict()
    if arch == "gpt2":
        return {
            "gpt2.vocab_size": d["vocab_size"],
            "gpt2.context_length": d["n_positions"],
            "gpt2.embedding_length": d["n_embd"],
            "gpt2.attention.head_count": d["n_head"],
            "gpt2.block_count": d["n_layer"],
        }
    if arch == "gptj":
        return {
            "gptj.vocab_size": d["vocab_size"],
            "gptj.context_length": d["n_positions"],
            "gptj.embedding_length": d["n_embd"],
            "gptj.attention.head_count": d["n_head"],
            "gptj.block_count": d["n_layer"],
            "gptj.rope.dimension_count": d["rotary_dim"],
        }
    if arch == "gptneox":
        return {
            "gptneox.vocab_size": d["vocab_size"],
            "gptneox.context_length": d["max_position_embeddings"],
            "gptneox.embedding_length": d["hidden_size"],
            "gptneox.attention.head_count": d["num_attention_heads"],
            "gptneox.block_count": d["num_hidden_layers"],
            "gptneox.rope.dimension_count": int(
                d["rotary_pct"] * (d["hidden_size"] // d["num_attention_heads"])
            ),
            "gptneox.use_parallel_residual": d["use_parallel_residual"],
            "gptneox.feed_forward_length": d["intermediate_size"],
        }
    if arch == "llama":
        return {
            "llama.vocab_size": d["vocab_size"],
            "llama.embedding_length": d["hidden_size"],
            "legacy.n_mult": 256,
            "llama.attention.head_count": d["num_attention_heads"],
            "llama.attention.head_count_kv": d["num_key_value_heads"],
            "llama.block_count": d["num_hidden_layers"],
            "llama.rope.dimension_count": d["hidden_size"] // d["num_attention_heads"],
            "llama.feed_forward_length": d["intermediate_size"],
        }
    if arch == "mpt":
        return {
            "mpt.embedding_length": d["d_model"],
            "mpt.context_length": d["max_seq_len"],
            "mpt.attention.head_count": d["n_heads"],
            "mpt.block_count": d["n_layers"],
            "mpt.vocab_size": d["vocab_size"],
            "mpt.attention.max_alibi_bias": float(d["attn_config"]["alibi_bias_max"]),
            "mpt.feed_forward_length": d["expansion_ratio"] * d["d_model"],
        }
    if arch == "bloom":
        return {
            "bloom.vocab_size": d["vocab_size"],
            "bloom.embedding_length": d["hidden_size"],
            "legacy.n_mult": 1,
            "bloom.attention.head_count": d["n_head"],
            "bloom.block_count": d["n_layer"],
            "bloom.feed_forward_length": 4 * d["hidden_size"],
        }
    raise ValueError(arch)


def reference_tokens(arch, conv):
    """Token bytes (and scores) as llm-rs' converter defines them, from the tokenizer."""
    n = conv.config.vocab_size
    toks, scores = [], None
    if arch == "llama":
        sp = conv.tokenizer.sp_model
        scores = []
        for i in range(sp.vocab_size()):
            if sp.is_unknown(i):
                t = " \u2047 ".encode()
            elif sp.is_control(i):
                t = b""
            elif sp.is_byte(i):
                t = bytes([int(sp.id_to_piece(i)[3:-1], 16)])
            else:
                t = sp.id_to_piece(i).replace("\u2581", " ").encode()
            toks.append(t)
            scores.append(float(sp.get_score(i)))
    else:
        dot = conv.tokenizer.encode(".")[0]
        for i in range(n):
            toks.append(conv.tokenizer.decode([dot, i]).encode()[1:])
    return toks, scores


def write_expected(path, arch, container, version, ftype, cfg, tensors, toks, scores, quantized):
    exp = {
        "architecture": arch,
        "container": container,
        "version": version,
        "file_type": ftype % 1000,
        "quantization_version": ftype // 1000,
        "hyperparameters": hyperparameters(arch, cfg),
        "n_vocab": len(toks),
        "tokens_hex": {str(i): toks[i].hex() for i in sorted(set([0, 1, 2, 3, 100, 200, len(toks) - 1]))},
        "tokens_blake3": blake3(b"".join(struct.pack("<I", len(t)) + t for t in toks)).hexdigest(),
        "scores": None if scores is None else {str(i): scores[i] for i in (0, 1, 5, 280, len(toks) - 1)},
        "has_scores": scores is not None or container == "ggjt",
        "quantized": quantized,
        "tensors": tensors,
        "transformers": transformers.__version__,
        "llm_rs": "0.2.15",
    }
    pathlib.Path(path).write_text(json.dumps(exp, indent=1) + "\n")


def main(out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = [
        # arch, hidden size, quantize to (with llm-rs, GGJT v3)
        ("gpt2", 32, None),
        ("gptj", 32, QuantizationType.Q8_0),
        ("gptneox", 32, None),
        ("llama", 64, QuantizationType.Q4_0),  # Q4_0 in llm-rs needs rows that are multiples of 64
        ("mpt", 32, None),
        ("bloom", 32, None),
    ]
    for arch, hidden, quant in plan:
        with tempfile.TemporaryDirectory() as tmp:
            hf = build(arch, tmp, hidden)
            cls = CONVERTERS[arch]
            # The tokenizer path is passed explicitly: MPT's converter would otherwise download one.
            conv = cls(hf, hf)
            f16 = out / f"{arch}-f16.bin"
            conv.convert(str(f16))
            meta = json.loads(f16.with_suffix(".meta").read_text())
            meta["base_model"] = f"tiny-random-{arch}"  # not the temporary folder's name
            f16.with_suffix(".meta").write_text(json.dumps(meta, indent=4))
            cfg = conv.config
            ref = reference_tensors(conv)
            toks, scores = reference_tokens(arch, conv)
            container = "ggjt" if conv.file_magic == 0x67676A74 else "ggml"
            version = conv.version if container == "ggjt" else 0
            write_expected(
                out / f"{arch}-f16.expected.json", arch, container, version, 1, cfg, ref, toks,
                scores, None,
            )
            if quant is not None:
                qname = "q4_0" if quant == QuantizationType.Q4_0 else "q8_0"
                # AutoQuantizer (llm_rs.<Model>.quantize underneath) also writes the `.meta`. Its
                # target must be a folder: a file path that does not exist yet becomes a folder.
                q = pathlib.Path(
                    AutoQuantizer.quantize(str(f16), str(out), quant, ContainerType.GGJT)
                )
                assert q == out / f"{arch}-{qname}-ggjt.bin", q
                ftype = {"q4_0": 2, "q8_0": 7}[qname] + 2 * 1000
                write_expected(
                    out / f"{arch}-{qname}-ggjt.expected.json", arch, "ggjt", 3, ftype, cfg, ref,
                    toks, scores if scores is not None else [0.0] * len(toks), qname,
                )
            print(arch, "done", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/legacy")
