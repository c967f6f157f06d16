#!/usr/bin/env bash
# The SDK matrix: botocore, the AWS CLI v1, the AWS SDK for Rust (aws-config) and the AWS SDK
# for JavaScript v3 resolve credentials from the built agent over credential_process, IMDS and
# the container endpoint, on 127.0.0.1 and ::1, against `emulate`. Prints the table; exits 1
# on any FAIL. Installs the clients first (pinned: pip requirements, `npm ci` from the lock,
# the Rust client with its own Cargo.lock); after that, loopback traffic only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)

# The agent as `cargo test` built it (a no-op build when it is there).
cargo build --locked --quiet --bin rolesanywhere-agent
agent=$root/target/debug/rolesanywhere-agent

venv=sdk-clients/python/.venv
if ! "$venv/bin/python" -c 'import awscli, botocore' 2>/dev/null \
    || ! cmp -s sdk-clients/python/requirements.txt "$venv/.installed"; then
    echo "sdk-matrix: installing botocore and the AWS CLI v1 into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r sdk-clients/python/requirements.txt
    cp sdk-clients/python/requirements.txt "$venv/.installed"
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "sdk-matrix: node 20 or later is required (the AWS SDK for JavaScript v3 needs it)" >&2
    exit 1
fi
if ! cmp -s sdk-clients/js/package-lock.json sdk-clients/js/node_modules/.installed-lock 2>/dev/null; then
    echo "sdk-matrix: npm ci in sdk-clients/js" >&2
    (cd sdk-clients/js && npm ci --no-audit --no-fund --loglevel=error \
        && cp package-lock.json node_modules/.installed-lock)
fi

# Its own workspace and target dir: the agent's builds never compile it.
cargo build --locked --release --quiet --manifest-path sdk-clients/rust/Cargo.toml

# Every client call inside is under its own timeout; this bounds the whole run as well.
status=0
timeout 900 python3 sdk-clients/matrix.py --root "$root" --agent "$agent" \
    --python "$venv/bin/python" --aws "$venv/bin/aws" --node "$(command -v node)" \
    --rust-client sdk-clients/rust/target/release/sdk-client-rust "$@" || status=$?
echo "sdk-matrix: $(( $(date +%s) - started )) s"
exit "$status"
