#!/usr/bin/env python3
"""Train ferrollm's bundled demo model (models/demo/): a tiny GPT-2 on Jane Austen's six novels.

Pins (checked at start; see tools/demo/requirements.txt):
    torch        == 2.15.0   (CPU; one thread)
    transformers == 5.24.0
    tokenizers   == 0.23.3
    safetensors  == 0.8.0
    numpy        == 2.4.6
Text: Debian's r-cran-janeaustenr 1.0.0-1 (see austen.py for how it is found; without the package
installed the script runs `apt-get download r-cran-janeaustenr=1.0.0-1` into ~/.cache/ferrollm-demo).

Usage:
    python tools/demo/train_demo.py                       # writes models/demo/ (about 20 min of one busy core)
    python tools/demo/train_demo.py --out /tmp/demo-b     # somewhere else, e.g. to compare two runs
    python tools/demo/train_demo.py --steps 20 --out /tmp/quick   # a quick smoke run

Deterministic given --seed: one torch thread, torch.use_deterministic_algorithms, the tokenizer trained
single-threaded, batches drawn from a seeded torch.Generator. Two runs on the same machine write the
same bytes (checked); another CPU may round differently in the last bits.

Steps: read the novels -> reflow into paragraphs -> cut the held-out slice (the end of Persuasion) ->
train a byte-level BPE tokenizer on the rest -> train GPT2LMHeadModel (tied embeddings) -> save with
save_pretrained (safetensors) -> reload the folder and measure the held-out loss and perplexity the way
llama.cpp's perplexity tool does -> print greedy and sampled continuations -> write metrics.json.
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PINS = {
    "torch": "2.15.0",
    "transformers": "5.24.0",
    "tokenizers": "0.23.3",
    "safetensors": "0.8.0",
    "numpy": "2.4.6",
}

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors  # noqa: E402
from tokenizers.models import BPE  # noqa: E402
from tokenizers.trainers import BpeTrainer  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import austen  # noqa: E402

MODEL_NAME = "ferrollm-demo"
EOT = "<|endoftext|>"
HELDOUT_CHARS = 45_000  # the held-out slice: whole paragraphs from the end of Persuasion, at least this long
SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.95}
PROMPTS = [
    "The old man",
    "It is a truth universally acknowledged",
    "She was",
    "Mr. Darcy",
    "The weather",
]


def versions():
    return {
        "torch": torch.__version__.split("+")[0],
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


def check_pins(allow_mismatch):
    got = versions()
    bad = {k: (PINS[k], got[k]) for k in PINS if got[k] != PINS[k]}
    if bad:
        msg = "version mismatch (pinned, installed): " + ", ".join(f"{k} {v}" for k, v in bad.items())
        if not allow_mismatch:
            sys.exit(msg + "\ninstall tools/demo/requirements.txt or pass --allow-version-mismatch")
        print("WARNING:", msg, file=sys.stderr)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------------


def split_text(books):
    """Training texts (one per novel) and the held-out text: the last paragraphs of the last novel."""
    *first, (title, year, paras) = books
    n, size = len(paras), 0
    while size < HELDOUT_CHARS:
        n -= 1
        size += len(paras[n]) + 2
    train = ["\n\n".join(p) + "\n" for _, _, p in first] + ["\n\n".join(paras[:n]) + "\n"]
    heldout = "\n\n".join(paras[n:]) + "\n"
    return train, heldout, {"heldout_first_paragraph": n, "heldout_paragraphs": len(paras) - n}


# --------------------------------------------------------------------------------------------------
# Tokenizer: GPT-2 style byte-level BPE, <|endoftext|> is the last id (as 50256 is in GPT-2)
# --------------------------------------------------------------------------------------------------


def train_tokenizer(texts, vocab_size):
    tok = Tokenizer(BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = BpeTrainer(
        vocab_size=vocab_size - 1,
        min_frequency=2,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Paragraphs with their separator, so merges of "\n\n" are learned too.
    chunks = [p + "\n\n" for t in texts for p in t.split("\n\n")]
    tok.train_from_iterator(chunks, trainer)
    assert tok.get_vocab_size() == vocab_size - 1, tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(EOT, special=True, normalized=False)])
    assert tok.token_to_id(EOT) == vocab_size - 1
    return tok


def tokenizer_files(n_ctx):
    return {
        "tokenizer_config.json": {
            "add_bos_token": False,
            "add_prefix_space": False,
            "bos_token": EOT,
            "clean_up_tokenization_spaces": False,
            "eos_token": EOT,
            "model_max_length": n_ctx,
            "tokenizer_class": "GPT2Tokenizer",
            "unk_token": EOT,
        },
        "special_tokens_map.json": {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT},
    }


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def chunk_losses(model, ids, n_ctx, bos_id=None):
    """Non-overlapping chunks of n_ctx tokens (the tail shorter than a chunk is dropped), each evaluated
    on its own. Returns (mean NLL over every prediction in the chunks, mean NLL over the predictions
    llama.cpp's perplexity tool scores: in each chunk the logits at positions n_ctx/2 .. n_ctx-2 against
    the tokens at n_ctx/2+1 .. n_ctx-1, i.e. n_ctx-1-n_ctx/2 per chunk; its perplexity is exp of this),
    the number of chunks, and the number of scored predictions. With bos_id, each chunk's first token
    is replaced by it, as llama.cpp does when the vocabulary's add_bos_token is true (not this model's)."""
    model.eval()
    n_chunk = len(ids) // n_ctx
    first = n_ctx // 2
    all_sum = all_n = half_sum = half_n = 0.0
    for c in range(n_chunk):
        x = torch.tensor(ids[c * n_ctx:(c + 1) * n_ctx], dtype=torch.long)[None]
        if bos_id is not None:
            x[0, 0] = bos_id
        logits = model(input_ids=x).logits[0].double()
        nll = F.cross_entropy(logits[:-1], x[0, 1:], reduction="none")
        all_sum += nll.sum().item()
        all_n += nll.numel()
        half_sum += nll[first:].sum().item()
        half_n += nll[first:].numel()
    return all_sum / all_n, half_sum / half_n, n_chunk, int(half_n)


@torch.no_grad()
def continuation(model, tok, prompt, mode, seed, n_tokens):
    """prompt + n_tokens generated by transformers: greedy, or sampled with SAMPLING after
    torch.manual_seed(seed). The end-of-text token is masked (min_new_tokens), so exactly n_tokens come."""
    enc = tok(prompt, return_tensors="pt")
    kw = {"do_sample": False} if mode == "greedy" else {"do_sample": True, **SAMPLING}
    torch.manual_seed(seed)
    eot = tok.convert_tokens_to_ids(EOT)
    g = model.generate(**enc, max_new_tokens=n_tokens, min_new_tokens=n_tokens, pad_token_id=eot, **kw)
    return prompt + tok.decode(g[0, enc["input_ids"].shape[1]:].tolist())


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "models" / "demo")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--lr", type=float, default=2.5e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--vocab", type=int, default=3072)
    ap.add_argument("--n-embd", type=int, default=160)
    ap.add_argument("--n-layer", type=int, default=5)
    ap.add_argument("--n-head", type=int, default=5)
    ap.add_argument("--n-ctx", type=int, default=256)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--sample-tokens", type=int, default=40)
    ap.add_argument("--austen-dir", help="folder holding Rdata.rdx/Rdata.rdb of r-cran-janeaustenr")
    ap.add_argument("--austen-deb", help="path of r-cran-janeaustenr_1.0.0-1_all.deb")
    ap.add_argument("--allow-version-mismatch", action="store_true")
    args = ap.parse_args()
    check_pins(args.allow_version_mismatch)
    t_start = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    # ---- text ----
    books, where = austen.load_books(austen_dir=args.austen_dir, austen_deb=args.austen_deb)
    train_texts, heldout, split_info = split_text(books)
    print(f"text: {where}; {len(books)} novels, {sum(map(len, train_texts))} training characters, "
          f"{len(heldout)} held out", flush=True)

    # ---- tokenizer ----
    tok = train_tokenizer(train_texts, args.vocab)
    eot = tok.token_to_id(EOT)
    stream = []
    for t in train_texts:
        stream += tok.encode(t).ids + [eot]
    heldout_ids = tok.encode(heldout).ids
    print(f"tokenizer: {args.vocab} entries; {len(stream)} training tokens "
          f"({sum(map(len, train_texts)) / len(stream):.2f} characters/token), {len(heldout_ids)} held out",
          flush=True)
    data = torch.tensor(stream, dtype=torch.long)

    # ---- model ----
    config = GPT2Config(
        vocab_size=args.vocab,
        n_positions=args.n_ctx,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_inner=4 * args.n_embd,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        bos_token_id=eot,
        eos_token_id=eot,
        tie_word_embeddings=True,
    )
    torch.manual_seed(args.seed)
    model = GPT2LMHeadModel(config)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "embeddings not tied"
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters ({n_params * 4 / 1e6:.2f} MB in float32)", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
    )

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    gen = torch.Generator().manual_seed(args.seed + 1)
    # A fixed sample of training windows, evaluated like the held-out text (for an honest comparison).
    train_eval_starts = torch.randint(0, len(stream) - args.n_ctx, (48,), generator=gen).tolist()
    train_eval_ids = [i for s in train_eval_starts for i in stream[s:s + args.n_ctx]]

    log, recent = [], []
    t_train = time.time()
    for step in range(args.steps):
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        starts = torch.randint(0, len(stream) - args.n_ctx - 1, (args.batch,), generator=gen)
        batch = torch.stack([data[s:s + args.n_ctx + 1] for s in starts.tolist()])
        logits = model(input_ids=batch[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            h_all, h_half, _, _ = chunk_losses(model, heldout_ids, args.n_ctx)
            entry = {
                "step": step + 1,
                "train_loss_last_steps": sum(recent) / len(recent),
                "heldout_loss": h_all,
                "heldout_ppl_llamacpp": math.exp(h_half),
                "lr": lr_at(step),
            }
            log.append(entry)
            recent = []
            print(f"step {step + 1:5d}  train {entry['train_loss_last_steps']:.4f}  held-out {h_all:.4f}  "
                  f"ppl {entry['heldout_ppl_llamacpp']:.2f}  lr {entry['lr']:.2e}  {time.time() - t_train:.0f}s",
                  flush=True)
    train_seconds = time.time() - t_train

    # ---- save ----
    model.config.name_or_path = MODEL_NAME
    model.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())
    saved["_name_or_path"] = MODEL_NAME
    write_json(out / "config.json", dict(sorted(saved.items())))
    tok.save(str(out / "tokenizer.json"), pretty=True)
    for fname, content in tokenizer_files(args.n_ctx).items():
        write_json(out / fname, content)
    (out / "heldout.txt").write_text(heldout, encoding="utf-8")
    del model

    # ---- measure, from the files as written ----
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(out)
    text = (out / "heldout.txt").read_text(encoding="utf-8")
    ids = hf_tok(text, add_special_tokens=False)["input_ids"]
    assert ids == heldout_ids == Tokenizer.from_file(str(out / "tokenizer.json")).encode(text).ids
    h_all, h_half, n_chunk, n_scored = chunk_losses(model, ids, args.n_ctx)
    t_all, t_half, _, _ = chunk_losses(model, train_eval_ids, args.n_ctx)
    print(f"held-out: {len(ids)} tokens, {n_chunk} chunks of {args.n_ctx}; loss (all positions) {h_all:.4f}; "
          f"llama.cpp-style perplexity {math.exp(h_half):.3f} ({n_scored} scored tokens, NLL {h_half:.4f})")
    print(f"training sample (48 windows): loss {t_all:.4f}; llama.cpp-style perplexity {math.exp(t_half):.3f}")

    samples = []
    for prompt in PROMPTS:
        for mode in ("greedy", "sampled"):
            text = continuation(model, hf_tok, prompt, mode, args.seed, args.sample_tokens)
            samples.append({"prompt": prompt, "mode": mode, "text": text})
            print(f"[{mode}] {prompt}|{text[len(prompt):]}\n", flush=True)

    metrics = {
        "model": MODEL_NAME,
        "versions": versions(),
        "text": {
            "source": "Jane Austen's six novels (Project Gutenberg texts), public domain",
            "package": f"Debian {austen.DEB_NAME} {austen.DEB_VERSION} (MIT)",
            "deb_sha256": austen.DEB_SHA256,
            "rdata_sha256": austen.RDATA_SHA256,
            "novels": [[t, y, len(p)] for t, y, p in books],
            "training_characters": sum(map(len, train_texts)),
            "heldout_characters": len(heldout),
            **split_info,
        },
        "tokenizer": {"type": "byte-level BPE", "vocab_size": args.vocab, "eot_id": eot,
                      "training_tokens": len(stream), "heldout_tokens": len(heldout_ids)},
        "model_config": {k: getattr(config, k) for k in ("vocab_size", "n_positions", "n_embd", "n_layer",
                                                          "n_head", "n_inner", "activation_function")},
        "parameters": n_params,
        "training": {
            "seed": args.seed, "steps": args.steps, "batch_sequences": args.batch, "sequence_tokens": args.n_ctx,
            "tokens_seen": args.steps * args.batch * args.n_ctx,
            "epochs": args.steps * args.batch * args.n_ctx / len(stream),
            "optimizer": "AdamW(betas=(0.9, 0.95), eps=1e-8), weight decay on matrices only",
            "lr": args.lr, "warmup_steps": args.warmup, "schedule": "linear warm-up, cosine to 0.1 x lr",
            "weight_decay": args.weight_decay, "grad_clip": 1.0, "dropout": 0.0,
            "torch_threads": torch.get_num_threads(),
        },
        "log": log,
        "final": {
            "train_loss_last_steps": log[-1]["train_loss_last_steps"],
            "train_sample_loss": t_all,
            "heldout_loss": h_all,
            "heldout_perplexity_llamacpp": {
                "n_ctx": args.n_ctx, "chunks": n_chunk, "scored_tokens": n_scored,
                "nll": h_half, "perplexity": math.exp(h_half),
                "method": "non-overlapping chunks of n_ctx tokens of heldout.txt tokenized as a whole with no "
                          "BOS; in each chunk the logits at positions n_ctx/2..n_ctx-2 against the next tokens "
                          "(llama.cpp perplexity, which adds no BOS for this vocabulary); float32 transformers",
            },
        },
        "samples": {"tokens": args.sample_tokens, "sampling": SAMPLING, "seed": args.seed, "texts": samples},
        "files_sha256": {p.name: sha256(p) for p in sorted(out.iterdir())
                         if p.is_file() and p.name not in ("metrics.json", "README.md")},
    }
    write_json(out / "metrics.json", metrics)
    print(f"wrote {out}: training {train_seconds:.0f} s, total {time.time() - t_start:.0f} s "
          "(timings are printed only, so that metrics.json is reproducible)")


if __name__ == "__main__":
    main()
