#!/usr/bin/env bash
# The sidecar image: builds it with podman (FROM scratch, the static binary), mounts it, and
# inside a private network and mount namespace runs the agent from the image's own
# filesystem (chroot, as the image's user), `emulate` beside it, and a botocore client that
# gets credentials through AWS_CONTAINER_CREDENTIALS_FULL_URI and the token file. Then the
# Kubernetes manifests are validated offline. Prints a closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in podman kubernetes-validate; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        case $tool in
        podman)
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman ca-certificates >/dev/null
            ;;
        kubernetes-validate) python3 -m pip install --quiet kubernetes-validate ;;
        esac
    fi
done

passed=0
failed=0
check() {
    local what=$1
    shift
    if "$@"; then
        echo "sidecar: ok: $what"
        passed=$((passed + 1))
    else
        echo "sidecar: FAILED: $what" >&2
        failed=$((failed + 1))
    fi
}

scripts/build-static.sh > /dev/null
debug_bin=$PWD/target/debug/rolesanywhere-agent
[ -x "$debug_bin" ] || cargo build --locked --quiet
# The image ships the trust roots of the machine that builds it.
cp /etc/ssl/certs/ca-certificates.crt container/ca-certificates.crt

image=localhost/rolesanywhere-agent:test
podman build --quiet -f container/Containerfile -t "$image" . > /dev/null
mnt=$(podman image mount "$image")
work=$(mktemp -d)
cleanup() {
    podman image unmount "$image" > /dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

check "the image holds the binary, a CA bundle, /etc/hosts and a non-root user" sh -c \
    "[ -x '$mnt/rolesanywhere-agent' ] && [ -s '$mnt/etc/ssl/certs/ca-certificates.crt' ] && grep -q localhost '$mnt/etc/hosts' && grep -q ':65532:' '$mnt/etc/passwd'"
check "the image has no shell" sh -c "[ ! -e '$mnt/bin/sh' ] && [ ! -e '$mnt/bin' ]"
check "the image runs as user 65532" sh -c "podman image inspect --format '{{.Config.User}}' '$image' | grep -qx '65532:65532'"

# Identity and token directories for the agent, owned by the image's user.
"$debug_bin" demo --keep-in "$work/pki" > /dev/null
mkdir -p "$work/identity" "$work/token"
cp "$work/pki/cert.pem" "$work/identity/tls.crt"
cp "$work/pki/key.pem" "$work/identity/tls.key"
chown -R 65532:65532 "$work/identity" "$work/token"
chmod 0700 "$work/token"

cat > "$work/inside.sh" <<INSIDE
set -eu
# Everything started here ends with this script.
trap 'kill \$(jobs -p) 2>/dev/null || true' EXIT
ip link set lo up
# The image's filesystem with the pod's volumes mounted where the Deployment mounts them.
mount --bind "$work/identity" "$mnt/etc/rolesanywhere-agent"
mount --bind "$work/token" "$mnt/var/run/rolesanywhere-agent"
"$debug_bin" emulate --trust-anchor-certificate "$work/pki/ca.pem" \
    --trust-anchor-arn arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/sidecar \
    --profile-arn arn:aws:rolesanywhere:us-east-1:111122223333:profile/sidecar \
    --port 8443 --ready-file "$work/emulate.ready" --request-log "$work/requests.jsonl" > /dev/null 2>&1 &
for _ in \$(seq 100); do [ -s "$work/emulate.ready" ] && break; sleep 0.1; done
# The image's default command and user, with the ARNs and the emulated endpoint.
ROLESANYWHERE_TRUST_ANCHOR_ARN=arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/sidecar \
ROLESANYWHERE_PROFILE_ARN=arn:aws:rolesanywhere:us-east-1:111122223333:profile/sidecar \
ROLESANYWHERE_ROLE_ARN=arn:aws:iam::111122223333:role/sidecar \
SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
chroot --userspec=65532:65532 "$mnt" /rolesanywhere-agent serve --bind 127.0.0.1 --port 9911 \
    --certificate /etc/rolesanywhere-agent/tls.crt --private-key /etc/rolesanywhere-agent/tls.key \
    --container-token-file /var/run/rolesanywhere-agent/token --no-socket \
    --endpoint http://localhost:8443 > "$work/agent.out" 2> "$work/agent.err" &
for _ in \$(seq 100); do
    chroot --userspec=65532:65532 "$mnt" /rolesanywhere-agent healthcheck > /dev/null 2>&1 && break
    sleep 0.1
done
chroot --userspec=65532:65532 "$mnt" /rolesanywhere-agent healthcheck
AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/v1/credentials \
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$work/token/token" \
AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
python3 -c '
import botocore.session
c = botocore.session.Session().get_credentials()
f = c.get_frozen_credentials()
assert c.method == "container-role", c.method
assert f.access_key.startswith("ASIA") and f.secret_key and f.token
print("botocore:", c.method, f.access_key)
'
INSIDE
check "botocore gets credentials from the agent running from the image, in its own namespaces" \
    sh -c "env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE timeout 60 unshare --net --mount --fork bash '$work/inside.sh' > '$work/inside.out' 2>&1 || { cat '$work/inside.out' '$work/agent.err' >&2; false; }"
grep botocore: "$work/inside.out" || true
check "one CreateSession for the sidecar" sh -c "[ \$(wc -l < '$work/requests.jsonl') -eq 1 ]"

check "the Kubernetes manifests validate (kubernetes-validate --strict)" \
    kubernetes-validate --strict --quiet container/k8s/deployment.yaml

echo "sidecar: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
