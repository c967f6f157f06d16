#!/usr/bin/env bash
# Checks every unit in systemd/: `systemd-analyze verify` must pass for each, and each
# service's offline security exposure score is printed and must be 2.0 or lower. Run from
# the repository root after a build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
binary="$PWD/target/debug/rolesanywhere-agent"
[ -x "$binary" ] || cargo build --locked --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify checks that ExecStart exists: point it at the freshly built binary. The units are
# verified from one directory so that references between them (Unit=) resolve.
units=()
for unit in systemd/*.service systemd/*.path; do
    sed "s|/usr/local/bin/rolesanywhere-agent|$binary|" "$unit" > "$work/$(basename "$unit")"
    units+=("$work/$(basename "$unit")")
done
systemd-analyze verify "${units[@]}"
echo "systemd-analyze verify: ${#units[@]} units pass"
status=0
for unit in "$work"/*.service; do
    score=$(systemd-analyze security --offline=true "$unit" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "$(basename "$unit"): systemd-analyze security exposure score: $score (target: 2.0 or lower)"
    awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || status=1
done
exit $status
