#!/usr/bin/env bash
# Mutation testing (README "Mutation testing"): cargo-mutants changes the code of the modules
# whose mistakes cost the most, one small change at a time (`<` for `<=`, a dropped `!`, a
# function that returns a default), and checks that a unit test fails for each.
#
#   scripts/mutants.sh [SET...]     SET: cache disk signing preflight credentials_file routes
#
# With no SET it runs them all: every mutant of the first four, and one shard in
# MUTANTS_SHARDS (default 8, every 8th mutant) of the two large ones (credentials_file, routes); set
# MUTANTS_SHARDS=1 for all of theirs. Only the library's unit tests run (`--lib`), so a
# mutant costs one incremental build of the test binary and about five seconds of tests.
#
# The mutants are applied in place (reusing ./target instead of rebuilding every dependency
# in a copy) and each file is restored afterwards: the script refuses to start on a tree
# with uncommitted changes under src/, and nothing should be edited or built here while it
# runs. Reports go to target/mutants/SET/mutants.out (missed.txt lists the survivors).
# Exits 1 if any mutant was missed or timed out, 2 on a usage error. Not in CI: too slow.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
    echo "mutants.sh: cargo-mutants is not installed: cargo install --locked cargo-mutants" >&2
    exit 2
fi
if ! git diff --quiet HEAD -- src; then
    echo "mutants.sh: src/ has uncommitted changes; commit or stash them first (mutants are applied in place)" >&2
    exit 2
fi

shards=${MUTANTS_SHARDS:-8}
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || { echo "mutants.sh: MUTANTS_SHARDS must be a whole number, 1 or more, not '$shards'" >&2; exit 2; }

all=(cache disk signing preflight credentials_file routes)
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=("${all[@]}")

args_for() {
    case "$1" in
        cache) echo "-f src/agent/cache.rs" ;;
        disk) echo "-f src/disk_cache.rs" ;;
        signing) echo "-f src/signing.rs" ;;
        # The checks on a certificate and its key before anything is signed.
        preflight) echo "-f src/identity/mod.rs --re Identity::check" ;;
        credentials_file) echo "-f src/credentials_file.rs --shard 0/$shards --sharding round-robin" ;;
        # Most of the routes' behaviour is pinned by the integration tests
        # (tests/server_endpoints.rs), which this unit-test run leaves out.
        routes) echo "-f src/server/routes.rs --shard 0/$shards --sharding round-robin" ;;
        *) return 1 ;;
    esac
}
for s in "${sets[@]}"; do
    args_for "$s" >/dev/null || { echo "mutants.sh: no set '$s' (have: ${all[*]})" >&2; exit 2; }
done

status=0
start=$SECONDS
for s in "${sets[@]}"; do
    echo "== $s" >&2
    mkdir -p "target/mutants/$s"
    # shellcheck disable=SC2046 # the set's arguments are words without spaces
    nice -n 15 cargo mutants --in-place --timeout 40 --cargo-arg=--lib \
        -o "target/mutants/$s" $(args_for "$s") || status=1
done
echo "mutants.sh: $((SECONDS - start)) s; reports in target/mutants/*/mutants.out" >&2
exit "$status"
