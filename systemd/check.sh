#!/usr/bin/env bash
# Checks the unit file: `systemd-analyze verify` must pass, and the offline security
# exposure score is printed (aim: 2.0 or lower). Run from the repository root after a build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
binary="$PWD/target/debug/rolesanywhere-agent"
[ -x "$binary" ] || cargo build --locked --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify checks that ExecStart exists: point it at the freshly built binary.
sed "s|/usr/local/bin/rolesanywhere-agent|$binary|" systemd/rolesanywhere-agent.service > "$work/rolesanywhere-agent.service"
systemd-analyze verify "$work/rolesanywhere-agent.service"
score=$(systemd-analyze security --offline=true "$work/rolesanywhere-agent.service" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security exposure score: $score (target: 2.0 or lower)"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
