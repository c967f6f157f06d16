#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that takes outside input (fuzz/, README "Fuzzing").
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Builds the targets with libFuzzer on the stable toolchain (coverage instrumentation, no
# sanitizer: Rust's own checks, debug assertions and overflow checks are the oracle), then
# runs each target for SECONDS_PER_TARGET (default 60) on one core, one after another.
# Exits non-zero if any target crashed, hung (-timeout) or ran out of memory, and prints
# where the input that did it is and how to replay it.
#
# Working corpora grow in fuzz/corpus/TARGET (kept between runs, not committed); the
# committed starting points are fuzz/seeds/TARGET. Extra libFuzzer flags: FUZZ_ARGS.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
shift || true
all=(identity pkcs12 http_head routes agent_answer pkcs11_uri credentials_file session_response emulate_verify)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [ -f "fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target '$t' (have: ${all[*]})" >&2; exit 2; }
done
# 0 would mean "no limit" to libFuzzer.
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS_PER_TARGET must be a whole number of seconds, 1 or more, not '$seconds'" >&2; exit 2; }

# libFuzzer is C++, built by the libfuzzer-sys crate with the system compiler.
if ! command -v c++ >/dev/null 2>&1; then
    echo "fuzz.sh: installing g++ (libFuzzer is built from C++)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi

# What `cargo fuzz` passes, minus the sanitizer (nightly only). The explicit --target keeps
# these flags off build scripts and proc macros, which must not be instrumented.
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
echo "fuzz.sh: building the targets (first build: a few minutes)" >&2
cargo build --locked --release --target "$host" --bins
bin=${CARGO_TARGET_DIR:-target}/$host/release

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    echo "== fuzz $t for ${seconds}s"
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb also bounds single
    # allocations, so a length field that asks for gigabytes is reported.
    # shellcheck disable=SC2086
    if "$bin/$t" "corpus/$t" "seeds/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units)' "$log" | sed "s/^/   /" || true
    else
        failed+=("$t")
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "fuzz.sh: $t FAILED; the end of its log ($PWD/$log):" >&2
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/   /' >&2
        if [ -n "$crash" ]; then
            echo "   input: $PWD/$crash" >&2
            echo "   replay: (cd $PWD && RUST_BACKTRACE=1 $bin/$t $crash)" >&2
        fi
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} target(s) ran ${seconds}s each without a crash"
