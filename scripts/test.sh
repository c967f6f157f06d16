#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, then runs every test.
# Works on a fresh machine of this project's kind (Rust toolchain, Python 3, apt as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# botocore is the real SDK client the integration tests drive.
if ! python3 -c 'import botocore' 2>/dev/null; then
    echo "test.sh: installing botocore" >&2
    python3 -m pip install --quiet botocore
fi
# openssl cross-checks the generated PKCS#12 and encrypted keys.
if ! command -v openssl >/dev/null 2>&1; then
    echo "test.sh: installing openssl" >&2
    apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

cargo test --locked "$@"
