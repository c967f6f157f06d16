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
# Debian packages the tests drive for real: openssl (cross-checks), SoftHSM2 and OpenSC
# (PKCS#11), gnome-keyring, dbus and keyutils (the OS keyring).
packages=(openssl softhsm2 opensc p11-kit p11-kit-modules gnome-keyring dbus-daemon keyutils libsecret-tools swtpm swtpm-tools tpm2-tools)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo test --locked "$@"
# The soak (about three minutes; ignored by a plain `cargo test`).
cargo test --locked --test soak -- --ignored
# The SDK matrix: botocore, the AWS CLI v1, aws-config (Rust) and the JS SDK v3 against the
# built agent over every channel and address family (README, "SDK matrix").
scripts/sdk-matrix.sh

# The static binary in an empty root, and the sidecar image run from its own filesystem.
scripts/test-static.sh
scripts/test-sidecar.sh
