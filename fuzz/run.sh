#!/usr/bin/env bash
# Runs every fuzz target in fuzz/fuzz_targets for a bounded time each:
#
#     fuzz/run.sh [SECONDS]        (default 60 seconds per target)
#
# Needs `cargo install cargo-fuzz --locked` and a nightly toolchain. Targets are built with debug
# assertions (so arithmetic overflow panics). The sanitizer defaults to none, which roughly doubles
# the executions per second: the code under test is safe Rust, so AddressSanitizer has little to
# find there; set FUZZ_SANITIZER=address to use it anyway. New inputs go to fuzz/corpus/<target>
# (not committed); the committed seeds in fuzz/seeds/<target> are read too. A crash is saved under
# fuzz/artifacts/<target>/ and stops the script with a non-zero status.
set -euo pipefail

secs="${1:-60}"
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."

for src in "$fuzz_dir"/fuzz_targets/*.rs; do
    target="$(basename "$src" .rs)"
    corpus=("$fuzz_dir/corpus/$target")
    mkdir -p "${corpus[0]}"
    if [ -d "$fuzz_dir/seeds/$target" ]; then
        corpus+=("$fuzz_dir/seeds/$target")
    fi
    echo "== fuzzing $target for ${secs}s"
    cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" --debug-assertions \
        --sanitizer "${FUZZ_SANITIZER:-none}" "$target" "${corpus[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1
done
