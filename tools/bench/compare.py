#!/usr/bin/env python3
"""ferrollm against llama.cpp on the same CPU and the very same GGUF files (docs/BENCHMARKS.md).

    python3 tools/bench/compare.py                       # everything, default settings
    LLAMA_CPP_BIN=/opt/llama-cpp-build/bin python3 tools/bench/compare.py --shapes 160m --rounds 5

Steps (each skipped when its output already exists in the scratch folder):
  1. LLaMA-shaped random-weight checkpoints (tools/fixtures/make_bench_checkpoint.py, needs torch:
     --python or $FERROLLM_BENCH_PYTHON) under --scratch (never inside the repository);
  2. `ferrollm convert` to F16 GGUF, then `ferrollm quantize` to Q8_0, Q4_0, Q4_K;
  3. memory bandwidth: tools/bench/stream.c (gcc -O3 -march=native -fopenmp), read/copy/triad per thread count;
  4. speed: for every file and thread count, `ferrollm bench` and `llama-bench` (pp128, tg32)
     alternate for --rounds rounds (the engine that goes first alternates too); medians are
     reported, with their ratio and tg as a fraction of the read-bandwidth ceiling
     (bandwidth / bytes of weights read per token). The read probe runs again before every round
     of every file and the ceiling uses the median of those readings: this VM's bandwidth drifts
     by tens of percent within minutes, so one reading at the start misstates later rows. The
     probe's read of 8 sequences per thread side by side, which this VM serves faster than one,
     gives a second, higher ceiling in the last column;
  5. load to first token: wall time of a fresh process that loads the file, evaluates a one-token
     prompt and prints one token (`ferrollm generate -n 1` vs `llama-completion -n 1
     --no-warmup`), page cache warm, median of --rounds;
  6. with --tools: quantizing the 1.1B F16 file (ferrollm quantize vs llama-quantize), converting
     the 1.1B checkpoint (ferrollm convert vs convert_hf_to_gguf.py), and converting it straight to
     Q4_0 (ferrollm in one pass vs ferrollm's and llama.cpp's two steps), wall time and peak RSS
     from /usr/bin/time -v.

llama.cpp is found through --llama-bin or $LLAMA_CPP_BIN (a folder holding llama-bench,
llama-quantize, llama-completion); without it only ferrollm runs, with a message. Its converter is
found through --llama-src or $LLAMA_CPP_SRC (the llama.cpp source tree). Nothing of llama.cpp is
built here: docs/BENCHMARKS.md describes the manual build.

Results are printed as Markdown tables and, with --json FILE, written as JSON.
Speed depends on the machine being otherwise idle: the script prints `uptime` before and after.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHAPES = ("160m", "1b")
TYPES = ("f16", "q8_0", "q4_0", "q4_k")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Runs a command, failing loudly with its output on error; returns stdout."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def uptime():
    return Path("/proc/loadavg").read_text().split()[:3]


class Setup:
    def __init__(self, args):
        self.args = args
        self.scratch = Path(args.scratch).resolve()
        if REPO in self.scratch.parents or self.scratch == REPO:
            sys.exit("--scratch must be outside the repository")
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.ferrollm = Path(args.ferrollm) if args.ferrollm else REPO / "target/release/ferrollm"
        bin_dir = args.llama_bin or os.environ.get("LLAMA_CPP_BIN")
        self.llama = Path(bin_dir) if bin_dir else None
        if self.llama and not (self.llama / "llama-bench").exists():
            log(f"no llama-bench in {self.llama}: llama.cpp is skipped")
            self.llama = None
        if not self.llama:
            log("llama.cpp binaries not given (--llama-bin / $LLAMA_CPP_BIN): only ferrollm runs")
        src = args.llama_src or os.environ.get("LLAMA_CPP_SRC")
        self.llama_src = Path(src) if src else None

    def llama_tool(self, name):
        p = self.llama / name if self.llama else None
        return p if p and p.exists() else None

    # ------------------------------------------------------------------ files

    def checkpoint(self, shape):
        out = self.scratch / f"hf-{shape}"
        if not (out / "config.json").exists() or not list(out.glob("*.safetensors")):
            if out.exists():
                shutil.rmtree(out)
            log(f"making the {shape} checkpoint in {out}")
            run([self.args.python, REPO / "tools/fixtures/make_bench_checkpoint.py", "--shape", shape, out])
        return out

    def gguf(self, shape, ty):
        path = self.scratch / f"{shape}-{ty}.gguf"
        if path.exists():
            return path
        if ty == "f16":
            log(f"converting {shape} -> {path.name}")
            run([self.ferrollm, "convert", self.checkpoint(shape), path, "--dtype", "f16"])
        else:
            log(f"quantizing {shape} -> {path.name}")
            run([self.ferrollm, "quantize", self.gguf(shape, "f16"), path, "--type", ty])
        return path

    def weight_bytes_per_token(self, path):
        """Bytes of weights one generated token reads: every tensor except the token embedding,
        of which one row is read."""
        info = json.loads(run([self.ferrollm, "info", path, "--json"]))
        total = 0
        for t in info["tensors"]:
            if t["name"] == "token_embd.weight":
                total += t["size"] // t["shape"][1]
            else:
                total += t["size"]
        return total

    # ------------------------------------------------------------------ measurements

    def bandwidth(self, threads):
        exe = self.scratch / "stream"
        src = REPO / "tools/bench/stream.c"
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            run(["gcc", "-O3", "-march=native", "-fopenmp", "-o", exe, src])
        out = run([exe, str(self.args.stream_mib)], env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        vals = dict(line.split() for line in out.splitlines() if line.strip())
        return {k: float(vals[k]) for k in ("read_gbs", "copy_gbs", "triad_gbs", "read_median_gbs",
                                             "read_streams_gbs")}

    def ferrollm_bench(self, path, threads):
        out = run([self.ferrollm, "bench", path, "-t", threads, "-p", self.args.n_prompt,
                   "-n", self.args.n_gen, "-r", 1, "--json"])
        j = json.loads(out.strip().splitlines()[-1])
        return j["pp_tokens_per_s"], j["tg_tokens_per_s"]

    def llama_bench(self, path, threads):
        out = run([self.llama / "llama-bench", "-m", path, "-t", threads, "-p", self.args.n_prompt,
                   "-n", self.args.n_gen, "-r", 1, "-o", "json"])
        pp = tg = None
        for t in json.loads(out):
            if t["n_prompt"] > 0 and t["n_gen"] == 0:
                pp = t["avg_ts"]
            elif t["n_gen"] > 0 and t["n_prompt"] == 0:
                tg = t["avg_ts"]
        return pp, tg

    def first_token_ferrollm(self, path, threads):
        t = time.perf_counter()
        run([self.ferrollm, "generate", path, "-t", threads, "-p", "Hello", "-n", 1,
             "--temperature", 0])
        return time.perf_counter() - t

    def first_token_llama(self, path, threads):
        exe = self.llama_tool("llama-completion")
        if not exe:
            return None
        t = time.perf_counter()
        run([exe, "-m", path, "-t", threads, "-p", "Hello", "-n", 1, "-no-cnv", "--no-warmup",
             "--temp", 0], stdin=subprocess.DEVNULL)
        return time.perf_counter() - t

    def timed(self, cmd, cwd=None):
        """Wall seconds and peak RSS (MiB) of a command, from GNU time."""
        p = subprocess.run(["/usr/bin/time", "-v"] + [str(c) for c in cmd], capture_output=True,
                           text=True, cwd=cwd)
        if p.returncode != 0:
            sys.exit(f"command failed: {' '.join(map(str, cmd))}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", p.stderr).group(1)
        secs = 0.0
        for part in wall.split(":"):
            secs = secs * 60 + float(part)
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
        return secs, rss_kb / 1024


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "—" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def alternate(rounds, ferrollm, llama):
    """Runs the two measurements `rounds` times each, the one that goes first alternating; returns
    both lists of samples (llama: None when llama.cpp is not available)."""
    fr, ll = [], []
    for r in range(rounds):
        for first in ((True, False) if r % 2 == 0 else (False, True)):
            if first:
                fr.append(ferrollm())
            elif llama:
                ll.append(llama())
    return fr, ll


def speed(s, args, results):
    bw = {}
    for t in args.threads:
        bw[t] = s.bandwidth(t)
        log(f"bandwidth, {t} thread(s): {bw[t]}")
    results["bandwidth"] = bw
    rows = []
    for shape in args.shapes:
        for ty in args.types:
            path = s.gguf(shape, ty)
            wbytes = s.weight_bytes_per_token(path)
            for t in args.threads:
                reads, typical, streams = [], [], []

                def ferrollm_round(path=path, t=t, reads=reads, typical=typical, streams=streams):
                    # the read probe next to every round, for this file's ceiling
                    b = s.bandwidth(t)
                    reads.append(b["read_gbs"])
                    typical.append(b["read_median_gbs"])
                    streams.append(b["read_streams_gbs"])
                    return s.ferrollm_bench(path, t)

                fr, ll = alternate(args.rounds, ferrollm_round,
                                   (lambda: s.llama_bench(path, t)) if s.llama else None)
                row = {
                    "shape": shape, "type": ty, "threads": t, "weight_bytes": wbytes,
                    "ferrollm_pp": median([x[0] for x in fr]), "ferrollm_tg": median([x[1] for x in fr]),
                    "llama_pp": median([x[0] for x in ll]), "llama_tg": median([x[1] for x in ll]),
                    "ferrollm_samples": fr, "llama_samples": ll,
                }
                row["read_gbs"] = median(reads)
                row["read_gbs_samples"] = reads
                row["ceiling_tg"] = row["read_gbs"] * 1e9 / wbytes
                # the same with the probe's median repetition instead of its best (a typical
                # second of this VM rather than its fastest)
                row["read_median_gbs"] = median(typical)
                row["read_median_gbs_samples"] = typical
                row["ceiling_tg_median"] = row["read_median_gbs"] * 1e9 / wbytes
                # and with the read of 8 sequences per thread side by side (best of 7), which this
                # VM serves faster than one: the nearer estimate of the memory's rate
                row["read_streams_gbs"] = median(streams)
                row["read_streams_gbs_samples"] = streams
                row["ceiling_tg_streams"] = row["read_streams_gbs"] * 1e9 / wbytes
                log(f"{shape} {ty} t{t}: ferrollm pp {fmt(row['ferrollm_pp'])} tg {fmt(row['ferrollm_tg'])}"
                    f" | llama.cpp pp {fmt(row['llama_pp'])} tg {fmt(row['llama_tg'])}  (load {uptime()})")
                rows.append(row)
    results["speed"] = rows


def first_token(s, args, results):
    rows = []
    for shape in args.shapes:
        for ty in args.types:
            path = s.gguf(shape, ty)
            t = max(args.threads)
            fr, ll = alternate(args.rounds, lambda: s.first_token_ferrollm(path, t),
                               (lambda: s.first_token_llama(path, t)) if s.llama else None)
            rows.append({"shape": shape, "type": ty, "threads": t,
                         "ferrollm_s": median(fr), "llama_s": median(ll)})
            log(f"first token {shape} {ty}: ferrollm {fmt(median(fr), 3)} s, llama.cpp {fmt(median(ll), 3)} s")
    results["first_token"] = rows


def tools(s, args, results):
    rows = []
    src = s.gguf("1b", "f16")
    out = s.scratch / "tools-out"
    out.mkdir(exist_ok=True)
    for ty in ("q4_0", "q8_0", "q4_k"):
        for r in range(args.tool_rounds):
            dst = out / f"ferrollm-{ty}.gguf"
            dst.unlink(missing_ok=True)
            w, m = s.timed([s.ferrollm, "quantize", src, dst, "--type", ty])
            rows.append({"task": f"quantize 1b f16 -> {ty}", "engine": "ferrollm", "wall_s": w, "rss_mib": m})
            dst.unlink(missing_ok=True)
            q = s.llama_tool("llama-quantize")
            if q:
                dst = out / f"llama-{ty}.gguf"
                w, m = s.timed([q, src, dst, ty.upper(), str(max(args.threads))])
                rows.append({"task": f"quantize 1b f16 -> {ty}", "engine": "llama.cpp", "wall_s": w,
                             "rss_mib": m})
                dst.unlink(missing_ok=True)
    ckpt = s.checkpoint("1b")
    for r in range(args.tool_rounds):
        dst = out / "ferrollm-convert.gguf"
        dst.unlink(missing_ok=True)
        w, m = s.timed([s.ferrollm, "convert", ckpt, dst, "--dtype", "f16"])
        rows.append({"task": "convert 1b -> f16", "engine": "ferrollm", "wall_s": w, "rss_mib": m})
        dst.unlink(missing_ok=True)
        if s.llama_src and (s.llama_src / "convert_hf_to_gguf.py").exists():
            dst = out / "llama-convert.gguf"
            w, m = s.timed([args.python, s.llama_src / "convert_hf_to_gguf.py", ckpt, "--outfile", dst,
                            "--outtype", "f16"])
            rows.append({"task": "convert 1b -> f16", "engine": "convert_hf_to_gguf.py", "wall_s": w,
                         "rss_mib": m})
            dst.unlink(missing_ok=True)
        elif r == 0:
            log("llama.cpp source not given (--llama-src / $LLAMA_CPP_SRC): convert_hf_to_gguf.py skipped")
    # Straight to Q4_0 (#9): one pass (`convert --type q4_0`, no F16 file on disk) against the two
    # steps each tool needs otherwise; a two-step row sums the wall times and keeps the larger RSS.
    task = "convert 1b -> q4_0"
    for r in range(args.tool_rounds):
        dst = out / "ferrollm-onepass.gguf"
        dst.unlink(missing_ok=True)
        w, m = s.timed([s.ferrollm, "convert", ckpt, dst, "--type", "q4_0"])
        rows.append({"task": task, "engine": "ferrollm, one pass", "wall_s": w, "rss_mib": m})
        dst.unlink(missing_ok=True)
        mid, dst = out / "ferrollm-mid-f16.gguf", out / "ferrollm-twopass.gguf"
        w1, m1 = s.timed([s.ferrollm, "convert", ckpt, mid, "--dtype", "f16"])
        w2, m2 = s.timed([s.ferrollm, "quantize", mid, dst, "--type", "q4_0"])
        rows.append({"task": task, "engine": "ferrollm, convert then quantize", "wall_s": w1 + w2,
                     "rss_mib": max(m1, m2)})
        for f in (mid, dst, mid.with_suffix(".meta"), dst.with_suffix(".meta")):
            f.unlink(missing_ok=True)
        q = s.llama_tool("llama-quantize")
        if q and s.llama_src and (s.llama_src / "convert_hf_to_gguf.py").exists():
            mid, dst = out / "llama-mid-f16.gguf", out / "llama-twopass.gguf"
            w1, m1 = s.timed([args.python, s.llama_src / "convert_hf_to_gguf.py", ckpt, "--outfile", mid,
                              "--outtype", "f16"])
            w2, m2 = s.timed([q, mid, dst, "Q4_0", str(max(args.threads))])
            rows.append({"task": task, "engine": "llama.cpp, convert_hf_to_gguf.py then llama-quantize",
                         "wall_s": w1 + w2, "rss_mib": max(m1, m2)})
            mid.unlink(missing_ok=True)
            dst.unlink(missing_ok=True)
    results["tools"] = rows


def report(results, args):
    lines = [f"load average before: {' '.join(results['load_before'])}, after: {' '.join(results['load_after'])}",
             ""]
    if "bandwidth" in results:
        lines += ["| threads | read GB/s | read, 8 streams per thread GB/s | copy GB/s | triad GB/s |",
                  "|---:|---:|---:|---:|---:|"]
        for t, b in results["bandwidth"].items():
            lines.append(f"| {t} | {b['read_gbs']:.1f} | {fmt(b.get('read_streams_gbs'))} | {b['copy_gbs']:.1f} "
                         f"| {b['triad_gbs']:.1f} |")
        lines.append("")
    if "speed" in results:
        lines += [f"| model | type | threads | ferrollm pp{args.n_prompt} | llama.cpp pp{args.n_prompt} | ratio "
                  f"| ferrollm tg{args.n_gen} | llama.cpp tg{args.n_gen} | ratio | weights MB/token "
                  f"| read GB/s (same rounds) | tg ceiling | ferrollm % of ceiling | llama.cpp % of ceiling "
                  f"| ferrollm % of median-read ceiling | ferrollm % of 8-stream read ceiling |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results["speed"]:
            pct = lambda x: None if x is None else 100 * x / r["ceiling_tg"]  # noqa: E731
            typ = r.get("ceiling_tg_median")
            pct_typ = None if typ is None or r["ferrollm_tg"] is None else 100 * r["ferrollm_tg"] / typ
            st = r.get("ceiling_tg_streams")
            pct_st = None if st is None or r["ferrollm_tg"] is None else 100 * r["ferrollm_tg"] / st
            lines.append(
                f"| {r['shape']} | {r['type'].upper()} | {r['threads']} | {fmt(r['ferrollm_pp'])} | {fmt(r['llama_pp'])} "
                f"| {fmt(ratio(r['ferrollm_pp'], r['llama_pp']), 2)} | {fmt(r['ferrollm_tg'])} | {fmt(r['llama_tg'])} "
                f"| {fmt(ratio(r['ferrollm_tg'], r['llama_tg']), 2)} | {r['weight_bytes'] / 1e6:.0f} "
                f"| {fmt(r['read_gbs'])} | {fmt(r['ceiling_tg'])} | {fmt(pct(r['ferrollm_tg']), 0)} "
                f"| {fmt(pct(r['llama_tg']), 0)} | {fmt(pct_typ, 0)} | {fmt(pct_st, 0)} |")
        lines.append("")
    if "first_token" in results:
        lines += ["| model | type | threads | ferrollm load→first token (s) | llama.cpp (s) | ratio |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in results["first_token"]:
            lines.append(f"| {r['shape']} | {r['type'].upper()} | {r['threads']} | {fmt(r['ferrollm_s'], 3)} "
                         f"| {fmt(r['llama_s'], 3)} | {fmt(ratio(r['ferrollm_s'], r['llama_s']), 2)} |")
        lines.append("")
    if "tools" in results:
        lines += ["| task | engine | wall s (median) | peak RSS MiB (median) |", "|---|---|---:|---:|"]
        keys = []
        for r in results["tools"]:
            if (r["task"], r["engine"]) not in keys:
                keys.append((r["task"], r["engine"]))
        for task, eng in keys:
            rs = [r for r in results["tools"] if r["task"] == task and r["engine"] == eng]
            lines.append(f"| {task} | {eng} | {median([r['wall_s'] for r in rs]):.1f} "
                         f"| {median([r['rss_mib'] for r in rs]):.0f} |")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scratch", default=os.environ.get("FERROLLM_BENCH_DIR", "/tmp/ferrollm-bench"),
                    help="folder for checkpoints and GGUF files (outside the repository)")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement (median)")
    ap.add_argument("--n-prompt", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--stream-mib", type=int, default=1024, help="MiB per STREAM array")
    ap.add_argument("--ferrollm", help="ferrollm binary (default: target/release/ferrollm, built if missing)")
    ap.add_argument("--llama-bin", help="folder of llama.cpp binaries (default: $LLAMA_CPP_BIN)")
    ap.add_argument("--llama-src", help="llama.cpp source tree, for convert_hf_to_gguf.py (default: $LLAMA_CPP_SRC)")
    ap.add_argument("--python", default=os.environ.get("FERROLLM_BENCH_PYTHON", "python3"),
                    help="Python with torch, safetensors, tokenizers (checkpoints; llama.cpp's converter)")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: speed, first-token")
    ap.add_argument("--tools", action="store_true", help="also time quantize and convert (1.1B)")
    ap.add_argument("--tool-rounds", type=int, default=3)
    ap.add_argument("--json", help="write all results to this JSON file")
    args = ap.parse_args()
    args.shapes = [x for x in args.shapes.split(",") if x]
    args.types = [x for x in args.types.split(",") if x]
    args.threads = [int(x) for x in args.threads.split(",") if x]
    skip = set(args.skip.split(","))

    s = Setup(args)
    if not s.ferrollm.exists():
        log("building ferrollm (cargo build --release)")
        run(["cargo", "build", "--release", "--bin", "ferrollm"], cwd=REPO)
    for shape in args.shapes:
        for ty in args.types:
            s.gguf(shape, ty)
    results = {"load_before": uptime(), "args": {k: v for k, v in vars(args).items()}}
    log(f"load average: {results['load_before']}")
    if "speed" not in skip:
        speed(s, args, results)
    if "first-token" not in skip:
        first_token(s, args, results)
    if args.tools:
        tools(s, args, results)
    results["load_after"] = uptime()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(report(results, args))


if __name__ == "__main__":
    main()
