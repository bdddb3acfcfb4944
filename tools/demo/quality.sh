#!/usr/bin/env bash
# Perplexity of the bundled demo model on its held-out text for every type ferrollm writes:
#   tools/demo/quality.sh [FERROLLM_BINARY]
# Each type is converted in one pass from models/demo (the same bytes as F16-then-quantize) and
# scored by `ferrollm perplexity` (chunks of 256 tokens, the second half of each scored, as
# llama.cpp's perplexity tool does). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/ferrollm}
[ -x "$bin" ] || cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| type | bits/weight | file size | perplexity |"
echo "|---|---:|---:|---:|"
for ty in f32 f16 q8_0 q6_k q5_1 q5_0 q5_k q4_1 q4_0 q4_k q3_k q2_k; do
  path=$("$bin" convert models/demo "$out/demo-$ty.gguf" --type "$ty" 2>/dev/null | tail -n 1)
  ppl=$("$bin" perplexity "$path" -f models/demo/heldout.txt --ctx 256 --kv-type f32 --json \
        | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["perplexity"])')
  bits=$("$bin" types | awk -v t="$ty" '$2 == t { print $7 }')
  size=$(du -k "$path" | cut -f1)
  echo "| $ty | $bits | ${size} KB | $ppl |"
done
