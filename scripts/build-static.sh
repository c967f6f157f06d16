#!/usr/bin/env bash
# Builds a fully static x86_64 Linux binary (glibc, crt-static) at
#   target/x86_64-unknown-linux-gnu/release/rolesanywhere-agent
# It needs nothing from the host at run time but a CA bundle for real AWS endpoints
# (system roots are read from SSL_CERT_FILE / SSL_CERT_DIR or /etc/ssl/certs; AWS_CA_BUNDLE
# adds more). PKCS#11 and the OS keyring are left out: both load host components (a PKCS#11
# module, a D-Bus session) that a static, single-file deployment does not have.
# AWS-LC's build settings come from .cargo/config.toml, as for every other build.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
# The shipped binary carries no symbol table (panics still name the file and line).
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-symbols}"
cargo build --release --locked --target x86_64-unknown-linux-gnu --no-default-features --features tpm "$@"
out=target/x86_64-unknown-linux-gnu/release/rolesanywhere-agent
if ldd "$out" 2>&1 | grep -q "=>"; then
    echo "build-static.sh: $out is dynamically linked:" >&2
    ldd "$out" >&2
    exit 1
fi
echo "$out"
