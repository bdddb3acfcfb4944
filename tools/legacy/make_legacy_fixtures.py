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
      /opt/llmrs-venv/bin/python tools/legacy/make_legacy_fixtures.py --references-only tests/fixtures/legacy

The f16 files and their sidecars come out byte-identical on every run; the quantized ones do not,
because llm-rs' quantizer lists the tensors in hash-map order (their expected facts do not depend
on the order). llm-rs writes no GGMF file: the tests derive one from the GPT-2 GGML fixture by the
documented layout.

Beside the files, `<arch>.reference.json` records what *transformers* computes with the model the
files of that architecture were converted from (see `transformers_reference`): a prompt's token ids,
the logits at every prompt position and the 16-token greedy continuation (EOS masked as
`generate(min_new_tokens=16)` does), each for the float32 weights and for the same weights rounded
to float16 as llm-rs' converter loads them (= the values the f16 files hold); for each quantized
file, the same with the file's dequantized weights, with and without ggml's Q8_0 rounding of the
activations; the token ids of a few texts; which tokens llm-rs' embedded vocabulary cannot spell
(see `vocabulary_loss`); and llm-rs' own greedy text on every file of the architecture
(informative). The prompt is chosen per architecture by a fixed rule (`PROMPT_RULE`), since these
random models repeat one token for most prompts. `--references-only` rebuilds the models, checks
that they convert to the committed f16 files byte for byte, and rewrites only the reference files,
leaving the committed quantized files (and their random tensor order) alone; either way the
reference files come out byte-identical on every run (about 600 kB in all).
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import pathlib
import re

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import numpy as np
import torch
from blake3 import blake3

import transformers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

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


# ------------------------------------------------------------------------------------------------
# transformers references for the engine tests (tests/engine_legacy.rs)

# Candidate prompts, tried in this order for each architecture; see `choose_prompt`.
PROMPTS = [
    "hello world",
    "one two three four",
    "the lazy dog",
    "alpha beta gamma",
    "rust python ggml",
    "café naïve über",
    "東京 日本 😀",
    "tensor quantize convert",
    "the quick brown fox",
    "llama bloom falcon",
]
# Further texts whose token ids are recorded (with the prompts) for the tokenizer checks.
EXTRA_TEXTS = ["hello  world", "one\ntwo", " leading space", "quantize πσ"]
N_GREEDY = 16
# Every greedy step's top-1 logit must beat the runner-up by this much (float32 and f16-rounded
# weights alike), so that a correct engine on the f16 file cannot flip a step by rounding.
MIN_MARGIN = 0.02
PROMPT_RULE = (
    f"the candidate with the most distinct greedy tokens among those whose float32 and f16-rounded "
    f"greedy continuations agree with a top-1/top-2 margin >= {MIN_MARGIN} at every step (first "
    f"such candidate on ties)"
)


def f32(x):
    """A float32 as the shortest decimal that reads back as the same float32 (also through a
    float64 parser that is off by a couple of ulps); else the exact float64 value of the float32."""
    v = np.float32(x)
    if not np.isfinite(v):
        raise ValueError(f"non-finite value {v}")
    out = float(str(v))
    near = [out]
    for direction in (np.inf, -np.inf):
        y = np.float64(out)
        for _ in range(2):
            y = np.nextafter(y, direction)
            near.append(float(y))
    if any(np.float32(y) != v for y in near):
        out = float(v)
    assert np.float32(out) == v
    return out


def logit_list(t):
    """Logits rounded to 6 significant digits (relative rounding <= 5e-7: far below every
    tolerance the tests use, and a quarter smaller than float32's shortest round-trip text)."""
    return [float(f"{x:.6g}") for x in t.detach().to(torch.float32).reshape(-1).numpy()]


def dumps(obj, indent=0):
    """JSON with objects indented and every list of scalars on one line."""
    pad, pad1 = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in obj):
            return "[" + ",".join(json.dumps(x, ensure_ascii=False, allow_nan=False) for x in obj) + "]"
        return "[\n" + ",\n".join(pad1 + dumps(x, indent + 1) for x in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def reference_model(hf, f16_weights=False):
    """The saved checkpoint in float32 with eager attention; with `f16_weights`, every parameter
    rounded to float16 as llm-rs' converter loads it (`torch_dtype=torch.float16`), which gives
    exactly the values its f16 files hold. (Loading with `dtype=float16` instead would also round
    buffers such as GPT-J's sin/cos table, which the files do not hold.)"""
    m = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32, attn_implementation="eager")
    if f16_weights:
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(p.half().float())
    return m.eval()


def greedy_loop(model, input_ids, eos_ids):
    """Greedy decoding by full forward passes (no cache), EOS ids masked to -inf; returns the ids,
    the smallest top-1/top-2 margin and the steps at which the unmasked argmax was an EOS id."""
    seq = list(input_ids)
    margins, eos_steps = [], []
    with torch.no_grad():
        for step in range(N_GREEDY):
            logits = model(torch.tensor([seq])).logits[0, -1].clone()
            if int(torch.argmax(logits)) in eos_ids:
                eos_steps.append(step)
            for e in eos_ids:
                logits[e] = -float("inf")
            top = torch.topk(logits, 2).values
            margins.append(float(top[0] - top[1]))
            seq.append(int(torch.argmax(logits)))
    return seq[len(input_ids):], min(margins), eos_steps


def greedy_generate(model, input_ids, eos_ids):
    """generate(do_sample=False, min_new_tokens=N, max_new_tokens=N), checked against greedy_loop."""
    ids = torch.tensor([input_ids])
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
            max_new_tokens=N_GREEDY, min_new_tokens=N_GREEDY, eos_token_id=eos_ids,
            pad_token_id=eos_ids[0],
        )
    gen = out[0, len(input_ids):].tolist()
    loop, margin, eos_steps = greedy_loop(model, input_ids, eos_ids)
    assert gen == loop, f"generate() {gen} and the no-cache loop {loop} disagree"
    return gen, margin, eos_steps


def choose_prompt(tok, m32, m16, eos_ids):
    tried, best = [], None
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        g32, mg32, _ = greedy_loop(m32, ids, eos_ids)
        g16, mg16, _ = greedy_loop(m16, ids, eos_ids)
        ok = g32 == g16 and min(mg32, mg16) >= MIN_MARGIN
        tried.append({"prompt": prompt, "distinct": len(set(g32)), "margin_f32": f32(mg32),
                      "margin_f16_weights": f32(mg16), "f32_equals_f16_weights": g32 == g16})
        if ok and (best is None or len(set(g32)) > best[1]):
            best = (prompt, len(set(g32)))
    if best is None:
        sys.exit(f"no candidate prompt qualifies: {tried}")
    return best[0], tried


def true_token_bytes(arch, tok, i):
    """The bytes transformers' tokenizer spells token `i` with (None: a control token, which
    `decode` writes as its name)."""
    if arch == "llama":
        sp = tok.sp_model
        if sp.is_control(i):
            return None
        if sp.is_unknown(i):
            return " \u2047 ".encode()
        if sp.is_byte(i):
            return bytes([int(sp.id_to_piece(i)[3:-1], 16)])
        return sp.id_to_piece(i).replace("\u2581", " ").encode()
    token = tok.convert_ids_to_tokens(i)
    if i in tok.all_special_ids:
        return token.encode()
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(decoder[c] for c in token)


def vocabulary_loss(arch, tok, llm_rs_tokens, ids):
    """Splits `ids` into maximal runs of tokens that llm-rs' embedded vocabulary spells with the
    same bytes as the tokenizer, each with transformers' decoded text, and lists the others."""
    runs, lossy, cur = [], [], []
    for i in ids:
        true = true_token_bytes(arch, tok, i)
        if true == llm_rs_tokens[i]:
            cur.append(i)
            continue
        if cur:
            runs.append(cur)
        cur = []
        lossy.append({
            "id": i,
            "tokenizer_bytes_hex": None if true is None else true.hex(),
            "tokenizer_text": tok.decode([i], skip_special_tokens=False),
            "llm_rs_bytes_hex": llm_rs_tokens[i].hex(),
        })
    if cur:
        runs.append(cur)
    return {
        "lossless_runs": [{"ids": r, "text": tok.decode(r, skip_special_tokens=False)} for r in runs],
        "lossy_tokens": lossy,
        "text_from_llm_rs_vocabulary": b"".join(llm_rs_tokens[i] for i in ids).decode("utf-8", "replace"),
    }


def model_outputs(m, tok, ids, eos_ids):
    with torch.no_grad():
        logits = m(torch.tensor([ids])).logits[0]
    greedy, margin, eos_steps = greedy_generate(m, ids, eos_ids)
    return {
        "greedy": {
            "ids": greedy,
            "text": tok.decode(greedy, skip_special_tokens=False),
            "min_top1_top2_logit_margin": f32(margin),
            "steps_where_unmasked_argmax_was_eos": eos_steps,
            "distinct_tokens": len(set(greedy)),
        },
        "logits_shape": list(logits.shape),
        "logits": [logit_list(row) for row in logits],
    }


def transformers_reference(arch, hf, conv, llm_rs_tokens):
    """What transformers computes with the checkpoint the fixtures of `arch` came from."""
    torch.set_num_threads(1)
    tok = conv.tokenizer  # the tokenizer llm-rs' converter used (LlamaTokenizer for LLaMA)
    m32 = reference_model(hf)
    m16 = reference_model(hf, f16_weights=True)
    eos_ids = [tok.eos_token_id]
    prompt, tried = choose_prompt(tok, m32, m16, eos_ids)
    ids = tok(prompt)["input_ids"]
    out = {
        "architecture": arch,
        "generated_by": "tools/legacy/make_legacy_fixtures.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
                     "llm_rs": "0.2.15"},
        "compute": "AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32, "
                   "attn_implementation='eager').eval(), torch.no_grad(), 1 thread: 'float32' with the "
                   "checkpoint's weights; 'f16_weights' with every parameter rounded to float16 (what "
                   "llm-rs' converter reads and the f16 files hold); quantized.<file>.dequantized "
                   "with every weight replaced by the file's dequantized value (llm-rs' renames and "
                   "Q/K permutation undone); quantized.<file>.dequantized_q8_activations the same "
                   "with the input of every linear layer rounded through Q8_0 as ggml does for "
                   "Q4_0/Q8_0 weights (ggml's arithmetic up to summation order)",
        "logits_rounding": "6 significant digits",
        "tokenizer": type(tok).__name__,
        "prompt": prompt,
        "prompt_rule": PROMPT_RULE,
        "prompts_tried": tried,
        "input_ids": ids,
        "eos_masked_ids": eos_ids,
        "greedy_method": f"model.generate(input_ids, do_sample=False, max_new_tokens={N_GREEDY}, "
                         f"min_new_tokens={N_GREEDY}, eos_token_id={eos_ids}) (min_new_tokens masks "
                         f"the EOS ids to -inf at every step), checked against a no-cache loop",
    }
    out["tokenization"] = []
    for text in PROMPTS + EXTRA_TEXTS:
        sample_ids = tok(text)["input_ids"]
        loss = vocabulary_loss(arch, tok, llm_rs_tokens, sample_ids)
        out["tokenization"].append({"text": text, "ids": sample_ids, "decoded": loss})
    out["float32"] = model_outputs(m32, tok, ids, eos_ids)
    out["f16_weights"] = model_outputs(m16, tok, ids, eos_ids)
    out["vocabulary"] = vocabulary_loss(arch, tok, llm_rs_tokens, out["float32"]["greedy"]["ids"])
    out["vocabulary"]["rule"] = (
        "llm-rs writes token i as tokenizer.decode([dot, i]) minus the dot (LLaMA: the SentencePiece "
        "piece, raw bytes for byte tokens, nothing for control tokens); a token is lossy when that "
        "differs from the bytes the tokenizer spells it with")
    return out


# Hyperparameter bytes before the vocabulary (including GPT-2/GPT-J's repeated n_vocab) and the
# index of n_vocab among them, per llm-rs' layouts (src/format/legacy.rs).
LEGACY_HPARAMS = {"gpt2": (7, 0), "gptj": (8, 0), "gptneox": (8, 0), "llama": (7, 0), "mpt": (8, 4),
                  "bloom": (6, 0)}


def dequantize(ty, raw, n):
    """ggml's block formats of the GGJT v3 era, decoded by their definition (ggml-quants.c)."""
    if ty == 0:
        return np.frombuffer(raw, "<f4", n).astype(np.float32)
    if ty == 1:
        return np.frombuffer(raw, "<f2", n).astype(np.float32)
    if ty == 2:  # q4_0: f16 scale, 16 bytes of nibbles (low nibbles = values 0..15, high = 16..31)
        b = np.frombuffer(raw, np.uint8, n // 32 * 18).reshape(-1, 18)
        d = b[:, :2].copy().view("<f2").astype(np.float32)
        q = np.concatenate([b[:, 2:] & 0xF, b[:, 2:] >> 4], axis=1).astype(np.float32) - 8
        return (q * d).reshape(-1)
    if ty == 8:  # q8_0: f16 scale, 32 int8
        b = np.frombuffer(raw, np.uint8, n // 32 * 34).reshape(-1, 34)
        d = b[:, :2].copy().view("<f2").astype(np.float32)
        return (b[:, 2:].copy().view(np.int8).astype(np.float32) * d).reshape(-1)
    raise ValueError(f"ggml type {ty} not handled here")


def read_legacy_tensors(path, arch):
    """{name: float32 array in torch's (rows, cols) order} of an llm-rs file (GGML or GGJT)."""
    b = pathlib.Path(path).read_bytes()
    magic = struct.unpack_from("<I", b, 0)[0]
    ggjt = magic == 0x67676A74
    off = 8 if magic in (0x67676A74, 0x67676D66) else 4
    n_fields, vocab_at = LEGACY_HPARAMS[arch]
    n_vocab = struct.unpack_from("<i", b, off + 4 * vocab_at)[0]
    off += 4 * n_fields
    for _ in range(n_vocab):
        off += 4 + struct.unpack_from("<I", b, off)[0] + (4 if magic != 0x67676D6C else 0)
    out = {}
    while off < len(b):
        n_dims, name_len, ty = struct.unpack_from("<iiI", b, off)
        off += 12
        dims = struct.unpack_from(f"<{n_dims}i", b, off)
        off += 4 * n_dims
        name = b[off:off + name_len].decode()
        off += name_len
        if ggjt:
            off = (off + 31) & ~31
        n = int(np.prod(dims))
        size = {0: 4 * n, 1: 2 * n, 2: n // 32 * 18, 8: n // 32 * 34}[ty]
        out[name] = dequantize(ty, b[off:off + size], n).reshape(dims[::-1])
        off += size
    return out


def q8_0_round_trip(x):
    """`x` (last dimension a multiple of 32) quantized to ggml's Q8_0 and back, as ggml (and
    ferrollm) quantize the activations of a product with Q4_0/Q8_0 weights: per block of 32,
    d = max|x| / 127, q = roundf(x / d) (half away from zero), value = q × f16(d)."""
    b = x.reshape(*x.shape[:-1], -1, 32)
    d = b.abs().amax(dim=-1, keepdim=True) / 127
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    v = b * inv
    q = torch.sign(v) * torch.floor(v.abs() + 0.5)
    return (q * d.half().float()).reshape(x.shape)


def dequantized_model(arch, hf, conv, path, q8_activations=False):
    """The float32 transformers model with every weight replaced by the file's (dequantized)
    value, undoing llm-rs' renames and transforms; with `q8_activations`, the input of every
    linear layer (all of whose weights the llm-rs quantizer quantizes) goes through Q8_0 first."""
    m = reference_model(hf)
    if q8_activations:
        for mod in m.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.register_forward_pre_hook(lambda _m, args: (q8_0_round_trip(args[0]),) + args[1:])
    tensors = read_legacy_tensors(path, arch)
    used = set()
    sd = {}
    for name, w in m.state_dict().items():
        if conv._filter_weights(name, w):
            continue
        legacy = conv._rename_weights(name)
        if legacy not in tensors:
            continue
        t = tensors[legacy]
        if arch == "llama" and re.fullmatch(r"layers\.\d+\.attention\.w[qk]\.weight", legacy):
            h = conv.config.num_attention_heads  # undo the rotary row permutation
            t = t.reshape(h, t.shape[0] // h // 2, 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)
        elif arch not in ("gptj", "llama"):
            raise NotImplementedError(f"undoing llm-rs' {arch} transforms")
        sd[name] = torch.from_numpy(np.ascontiguousarray(t)).reshape(w.shape)
        used.add(legacy)
    assert used == set(tensors), f"file tensors not mapped back: {set(tensors) - used}"
    missing = [k for k, p in m.named_parameters() if k not in sd]
    assert not missing, f"parameters the file does not hold: {missing}"
    m.load_state_dict(sd, strict=False)
    return m.eval()


LLM_RS_RUN = r"""
import json, sys
import llm_rs
from llm_rs import GenerationConfig, Precision, SessionConfig
arch, path, prompt, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cls = {"gpt2": llm_rs.Gpt2, "gptj": llm_rs.GptJ, "gptneox": llm_rs.GptNeoX, "llama": llm_rs.Llama,
       "mpt": llm_rs.Mpt, "bloom": llm_rs.Bloom}[arch]
m = cls(path, SessionConfig(threads=1, context_length=128, keys_memory_type=Precision.FP32,
                            values_memory_type=Precision.FP32))
r = m.generate(prompt, GenerationConfig(top_k=1, top_p=1.0, temperature=1.0, repetition_penalty=1.0,
                                        max_new_tokens=n, seed=42))
print(json.dumps({"prompt_ids_from_tokenize": m.tokenize(prompt), "text": r.text,
                  "stop_reason": str(r.stop_reason)}))
"""


def llm_rs_greedy(arch, path, prompt):
    """llm-rs' own greedy generation on a file (one process per file: ggml's context pool runs out
    when one process loads many models)."""
    p = subprocess.run([sys.executable, "-c", LLM_RS_RUN, arch, str(path), prompt, str(N_GREEDY)],
                       capture_output=True, text=True, env={**os.environ, "RUST_BACKTRACE": "0"})
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    return json.loads(p.stdout)


def write_reference(out, arch, hf, conv):
    toks, _ = reference_tokens(arch, conv)
    ref = transformers_reference(arch, hf, conv, toks)
    ids, eos_ids = ref["input_ids"], ref["eos_masked_ids"]
    ref["quantized"] = {
        f.name: {
            key: model_outputs(dequantized_model(arch, hf, conv, f, q8), conv.tokenizer, ids, eos_ids)
            for key, q8 in (("dequantized", False), ("dequantized_q8_activations", True))
        }
        for f in sorted(out.glob(f"{arch}-*-ggjt.bin"))
    }
    ref["llm_rs_generate"] = {
        "method": f"llm_rs.<Model>(file, SessionConfig(threads=1, context_length=128, FP32 keys and "
                  f"values)).generate(prompt, GenerationConfig(top_k=1, top_p=1.0, temperature=1.0, "
                  f"repetition_penalty=1.0, max_new_tokens={N_GREEDY})): llm-rs tokenizes the prompt "
                  f"with the embedded vocabulary and stops at its end token; informative only",
    }
    for f in sorted(out.glob(f"{arch}-*.bin")):
        ref["llm_rs_generate"][f.name] = llm_rs_greedy(arch, f, ref["prompt"])
    (out / f"{arch}.reference.json").write_text(dumps(ref) + "\n", encoding="utf-8")
    g = ref["float32"]["greedy"]
    print(f"{arch}: prompt {ref['prompt']!r} ({len(ref['input_ids'])} ids), greedy distinct "
          f"{g['distinct_tokens']}, margin {g['min_top1_top2_logit_margin']:.4f}, lossy "
          f"{len(ref['vocabulary']['lossy_tokens'])}", file=sys.stderr)


def main(out_dir, references_only):
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
            if references_only:
                # The references must come from the model the committed files were converted from.
                again = pathlib.Path(tmp) / f"{arch}-f16.bin"
                conv.convert(str(again))
                committed = out / f"{arch}-f16.bin"
                if again.read_bytes() != committed.read_bytes():
                    sys.exit(f"{committed} is not what this script converts; regenerate everything")
                write_reference(out, arch, hf, conv)
                continue
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
            write_reference(out, arch, hf, conv)
            print(arch, "done", file=sys.stderr)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?", default="tests/fixtures/legacy")
    ap.add_argument("--references-only", action="store_true",
                    help="only rewrite <arch>.reference.json, after checking the committed f16 files")
    args = ap.parse_args()
    main(args.out_dir, args.references_only)
