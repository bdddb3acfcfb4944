#!/usr/bin/env python3
"""Re-measure the committed demo model (models/demo/) with transformers, without retraining.

    python tools/demo/eval_demo.py [--model models/demo] [--ctx 256]

Prints the held-out loss and the llama.cpp-style perplexity of heldout.txt (float32; non-overlapping
chunks of --ctx tokens, the second half of each chunk scored, no BOS), greedy and seeded sampled
continuations, and checks them against metrics.json when --ctx is the one recorded there. Same pins as
train_demo.py (tools/demo/requirements.txt); needs no network and no Debian package.
"""

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_demo as td  # noqa: E402  (sets the single-thread environment before torch loads)
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=td.REPO / "models" / "demo")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--allow-version-mismatch", action="store_true")
    args = ap.parse_args()
    td.check_pins(args.allow_version_mismatch)

    metrics = json.loads((args.model / "metrics.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    text = (args.model / "heldout.txt").read_text(encoding="utf-8")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    full, half, n_chunk, n_scored = td.chunk_losses(model, ids, args.ctx)
    print(f"{args.model}: {len(ids)} held-out tokens, {n_chunk} chunks of {args.ctx}")
    print(f"  loss over all positions      {full:.4f}")
    print(f"  llama.cpp-style perplexity   {math.exp(half):.4f}  ({n_scored} scored tokens, NLL {half:.6f})")

    _, half_bos, _, _ = td.chunk_losses(model, ids, args.ctx, bos_id=tok.convert_tokens_to_ids(td.EOT))
    print(f"  the same with each chunk's first token replaced by {td.EOT} (what llama.cpp does only when "
          f"add_bos_token is true; it is false here): {math.exp(half_bos):.4f}")

    ok = True
    rec = metrics["final"]["heldout_perplexity_llamacpp"]
    if rec["n_ctx"] == args.ctx:
        same = abs(rec["nll"] - half) < 1e-5
        ok &= same
        print(f"  metrics.json: NLL {rec['nll']:.6f} -> {'agrees' if same else 'DIFFERS'}")

    rec = metrics["samples"]
    for s in rec["texts"]:
        got = td.continuation(model, tok, s["prompt"], s["mode"], rec["seed"], rec["tokens"])
        same = got == s["text"]
        ok &= same
        print(f"[{s['mode']}{'' if same else ', DIFFERS from metrics.json'}] {got}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
