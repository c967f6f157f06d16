#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, then runs every test.
# Works on a fresh machine of this project's kind (Rust toolchain, Python 3, apt as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# Wall time of each step, printed at the end (also when a step fails), so a slower suite shows.
start_all=$SECONDS
timings=()
step() {
    local name=$1 started=$SECONDS status=0
    shift
    "$@" || status=$?
    timings+=("$(printf '%5ds  %s%s' $((SECONDS - started)) "$name" "$([ $status -eq 0 ] || echo " (failed: exit $status)")")")
    return $status
}
report_times() {
    echo "test.sh: wall time per step"
    for t in "${timings[@]}"; do echo "  $t"; done
    printf '  %5ds  total\n' $((SECONDS - start_all))
}
trap report_times EXIT

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
timings+=("$(printf '%5ds  %s' $((SECONDS - start_all)) "installing what is missing")")

step "cargo test" cargo test --locked "$@"
# The soak (about three minutes; ignored by a plain `cargo test`): a module of the one
# integration test binary.
step "soak" cargo test --locked --test it soak:: -- --ignored
# The SDK matrix: botocore, the AWS CLI v1, aws-config (Rust) and the JS SDK v3 against the
# built agent over every channel and address family (README, "SDK matrix").
step "sdk matrix" scripts/sdk-matrix.sh
# The README's Getting started, run as written in a fresh HOME (builds the release binary).
step "getting started" scripts/getting-started.sh

# The static binary in an empty root, and the sidecar image run from its own filesystem.
step "static binary" scripts/test-static.sh
step "sidecar" scripts/test-sidecar.sh
