#!/usr/bin/env bash
# Runs the README's "Getting started" as a newcomer would: every ```sh block between the
# getting-started markers, in order, in one shell with `set -euo pipefail`, in a fresh HOME
# and a clean environment, from the repository root. Fails when a command fails, when the
# proof step does not print an access key, or when a process is left running. Loopback only:
# cargo is kept offline, and every command in the section talks to 127.0.0.1.
#
# Needs what the section says it needs: a Rust toolchain (crates already fetched, as CI has
# them) and botocore. Bounded by GETTING_STARTED_TIMEOUT seconds (default 2400: the first
# release build is most of it).
set -euo pipefail
cd "$(dirname "$0")/.."

steps=$(awk '
    /<!-- getting-started:begin/ { on = 1; next }
    /<!-- getting-started:end/ { on = 0 }
    on && /^```sh$/ { code = 1; next }
    on && code && /^```$/ { code = 0; print ""; next }
    on && code { print }
' README.md)
if [ -z "$steps" ]; then
    echo "getting-started.sh: no sh blocks between the getting-started markers of README.md" >&2
    exit 2
fi
if ! python3 -c 'import botocore' 2>/dev/null; then
    echo "getting-started.sh: the proof step needs botocore (python3 -m pip install botocore; scripts/test.sh installs it)" >&2
    exit 2
fi

work=$(mktemp -d)
pgid=
cleanup() {
    # Whatever the steps started, in their own session (process group), goes with them.
    if [ -n "$pgid" ]; then kill -TERM -- "-$pgid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/home" "$work/run"
chmod 0700 "$work/run"
printf '%s\n' "$steps" >"$work/steps.sh"

# A fresh user: nothing of the caller's HOME, AWS settings, proxies or running agent. The
# toolchain and the crates already fetched stay reachable (CARGO_HOME, RUSTUP_HOME, and
# pyenv's root when python3 comes from there), and cargo may not use the network.
keep=(
    "HOME=$work/home"
    "PATH=$PATH"
    "XDG_RUNTIME_DIR=$work/run"
    "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}"
    "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}"
    "CARGO_NET_OFFLINE=true"
    "LANG=C.UTF-8"
)
if [ -d "${PYENV_ROOT:-$HOME/.pyenv}" ]; then keep+=("PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}"); fi

echo "getting-started.sh: running $(grep -c . "$work/steps.sh") lines from README.md in HOME=$work/home" >&2
status=0
env -i "${keep[@]}" setsid timeout -k 10 "${GETTING_STARTED_TIMEOUT:-2400}" \
    bash -euo pipefail "$work/steps.sh" >"$work/out" 2>&1 &
pgid=$!
wait "$pgid" || status=$?
cat "$work/out"

if [ "$status" -ne 0 ]; then
    echo "getting-started.sh: FAIL: a step exited $status (output above)" >&2
    exit 1
fi
if ! grep -q '^rolesanywhere-demo resolved ASIA' "$work/out"; then
    echo "getting-started.sh: FAIL: the proof step did not print 'rolesanywhere-demo resolved ASIA...'" >&2
    exit 1
fi
# What still runs in the steps' process group, zombies aside (a process the last step killed
# may not be reaped yet), after a grace of 5 s for it to finish exiting.
running() {
    local p
    for p in $(pgrep -g "$pgid" || true); do
        case $(ps -o stat= -p "$p" 2>/dev/null) in
        Z* | "") ;;
        *) ps -o pid=,args= -p "$p" ;;
        esac
    done
}
for _ in $(seq 50); do
    left=$(running)
    [ -z "$left" ] && break
    sleep 0.1
done
if [ -n "$left" ]; then
    echo "getting-started.sh: FAIL: the steps left processes running:" >&2
    echo "$left" >&2
    exit 1
fi
pgid=
echo "getting-started.sh: PASS" >&2
