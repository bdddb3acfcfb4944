#!/usr/bin/env python3
"""Several ferrollm binaries (e.g. one per commit) on the same GGUF files: pp/tg from
`ferrollm bench` and load -> first token from `ferrollm generate -n 1`, the binaries alternating
(their order reversed every round), medians printed as a Markdown table (docs/BENCHMARKS.md,
"History").

    python3 tools/bench/history.py --bin old=/path/a/ferrollm --bin new=target/release/ferrollm \\
        --file /tmp/ferrollm-bench/1b-q4_0.gguf --rounds 3 --threads 2

Build a commit's binary with `git worktree add /tmp/c COMMIT && cargo build --release --bin ferrollm`
(in /tmp/c). Run on a quiet machine only.
"""
import argparse, json, statistics, subprocess, sys, time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", required=True, help="LABEL=PATH of a ferrollm binary")
    ap.add_argument("--file", action="append", required=True, help="a GGUF file")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-prompt", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=32)
    a = ap.parse_args()
    bins = [tuple(b.split("=", 1)) for b in a.bin]
    res = {}
    for f in a.file:
        for r in range(a.rounds):
            for label, exe in (bins if r % 2 == 0 else bins[::-1]):
                out = subprocess.run([exe, "bench", f, "-t", str(a.threads), "-p", str(a.n_prompt), "-n", str(a.n_gen),
                                      "-r", "1", "--json"], capture_output=True, text=True, check=True).stdout
                j = json.loads(out.strip().splitlines()[-1])
                res.setdefault((f, label, "pp"), []).append(j["pp_tokens_per_s"])
                res.setdefault((f, label, "tg"), []).append(j["tg_tokens_per_s"])
                t = time.perf_counter()
                subprocess.run([exe, "generate", f, "-t", str(a.threads), "-p", "Hello", "-n", "1", "--temperature", "0"],
                               capture_output=True, check=True)
                res.setdefault((f, label, "ft"), []).append(time.perf_counter() - t)
        print(f"{Path(f).name} done, load average {Path('/proc/loadavg').read_text().split()[:3]}", file=sys.stderr)
    print(f"| file | binary | pp{a.n_prompt} | tg{a.n_gen} | load→first token s |\n|---|---|---:|---:|---:|")
    for f in a.file:
        for label, _ in bins:
            m = lambda k: statistics.median(res[(f, label, k)])  # noqa: E731
            print(f"| {Path(f).stem} | {label} | {m('pp'):.1f} | {m('tg'):.1f} | {m('ft'):.3f} |")


if __name__ == "__main__":
    main()
