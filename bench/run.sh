#!/usr/bin/env bash
# Runs the agent benchmark (benches/agent.rs) with the bench profile, which inherits the
# release profile (thin LTO, codegen-units 4): the binary measured is the release build.
# It first builds the static binary (scripts/build-static.sh) and measures it beside the
# dynamic one; `--no-static` skips that. Other arguments go to the benchmark, e.g.
# `bench/run.sh --seconds 10 --runs 100`. Every figure comes from one run on this machine;
# see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
with_static=1
for a in "$@"; do
    case "$a" in
        --no-static) with_static=0 ;;
        --static) with_static=0; args+=("$a") ;;
        *) args+=("$a") ;;
    esac
done

if [ "$with_static" = 1 ]; then
    echo "bench/run.sh: building the static binary (scripts/build-static.sh) ..." >&2
    static_bin="$PWD/$(bash scripts/build-static.sh | tail -n 1)"
    args+=(--static "$static_bin")
fi

exec cargo bench --locked --bench agent -- "${args[@]}"
