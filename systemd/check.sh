#!/usr/bin/env bash
# Checks every unit in systemd/: `systemd-analyze verify` must pass for each, and each
# service's offline security exposure score is printed and must be 2.0 or lower. A template
# (NAME@.service) is checked as an instance of it, NAME@web.service. Run from the
# repository root after a build.
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
    name=$(basename "$unit")
    # A template cannot be loaded by itself: verify an instance of it.
    name=${name/@./@web.}
    sed "s|/usr/local/bin/rolesanywhere-agent|$binary|" "$unit" > "$work/$name"
    units+=("$work/$name")
done
# verify exits 0 on an unknown key (a typo'd directive is only "ignoring"): any output fails.
out=$(systemd-analyze verify "${units[@]}" 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
    echo "$out" >&2
    echo "systemd-analyze verify: warnings (above)" >&2
    exit 1
fi
echo "systemd-analyze verify: ${#units[@]} units pass"
# The example settings parse as serve's --config (the run then stops at the missing
# certificate, which is not the config file's business).
example_err=$("$binary" serve --config systemd/rolesanywhere-agent.toml.example \
    --certificate "$work/none.pem" --private-key "$work/none.key" --no-socket 2>&1) && exit 1
if ! grep -q "cannot read --certificate file" <<<"$example_err"; then
    echo "$example_err" >&2
    echo "systemd/rolesanywhere-agent.toml.example is not valid serve --config settings" >&2
    exit 1
fi
echo "systemd/rolesanywhere-agent.toml.example: valid serve --config settings"
status=0
for unit in "$work"/*.service; do
    score=$(systemd-analyze security --offline=true "$unit" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "$(basename "$unit"): systemd-analyze security exposure score: $score (target: 2.0 or lower)"
    awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || status=1
done
exit $status
