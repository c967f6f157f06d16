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
check "the image runs serve with its settings file (ROLESANYWHERE_CONFIG)" sh -c \
    "podman image inspect --format '{{json .Config.Cmd}} {{json .Config.Env}}' '$image' | grep -q '^\\[\"serve\"\\] .*ROLESANYWHERE_CONFIG=/etc/rolesanywhere-agent.toml' && [ -s '$mnt/etc/rolesanywhere-agent.toml' ]"

# The pod's volumes as kubelet makes them from container/k8s/deployment.yaml, so the test
# runs the manifest as written: the agent's user and group, the pod's fsGroup and the
# Secret volume's defaultMode are read from it.
read -r run_uid run_gid fs_group default_mode < <(python3 - container/k8s/deployment.yaml <<'PY'
import sys, yaml
deployment = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "Deployment")
pod = deployment["spec"]["template"]["spec"]
agent = next(c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == "rolesanywhere-agent")
pod_sc, agent_sc = pod.get("securityContext") or {}, agent.get("securityContext") or {}
mounted = {m["name"] for m in agent["volumeMounts"]}
secret = next(v["secret"] for v in pod["volumes"] if "secret" in v and v["name"] in mounted)
# The image's USER is 65532:65532 when the manifest sets neither.
uid = agent_sc.get("runAsUser", pod_sc.get("runAsUser", 65532))
gid = agent_sc.get("runAsGroup", pod_sc.get("runAsGroup", 65532))
fs_group = pod_sc.get("fsGroup")
print(uid, gid, "none" if fs_group is None else fs_group, format(secret.get("defaultMode", 0o644), "04o"))
PY
)
echo "sidecar: manifest: runs as $run_uid:$run_gid, fsGroup $fs_group, Secret defaultMode $default_mode"
# The agent's settings: the ConfigMap's agent.toml, mounted over the image's file; its ARNs
# are the ones emulate accepts.
read -r trust_anchor_arn profile_arn role_arn < <(python3 - container/k8s/deployment.yaml "$work/agent.toml" <<'PY'
import sys, tomllib, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
deployment = next(d for d in docs if d.get("kind") == "Deployment")
pod = deployment["spec"]["template"]["spec"]
agent = next(c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == "rolesanywhere-agent")
mount = next(m for m in agent["volumeMounts"] if m["mountPath"] == "/etc/rolesanywhere-agent.toml")
volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
config_map = next(d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"])
text = config_map["data"][mount["subPath"]]
open(sys.argv[2], "w").write(text)
settings = tomllib.loads(text)
print(settings["trust-anchor-arn"], settings["profile-arn"], settings["role-arn"])
PY
)
# Kubelet writes a Secret volume's files as root with defaultMode; with an fsGroup it gives
# them that group and adds group read (and the containers get the group as a supplementary
# one). The files sit behind the `..data` symlink of its atomic writer.
if [ "$fs_group" = none ]; then
    file_group=0 file_mode=$default_mode groups=$run_gid
else
    file_group=$fs_group file_mode=$(printf '%04o' $((0$default_mode | 0440))) groups=$run_gid,$fs_group
fi
"$debug_bin" demo --keep-in "$work/pki" > /dev/null
data=..2026_01_01_00_00_00.000000001
mkdir -p "$work/identity/$data" "$work/token"
cp "$work/pki/cert.pem" "$work/identity/$data/tls.crt"
cp "$work/pki/key.pem" "$work/identity/$data/tls.key"
ln -s "$data" "$work/identity/..data"
ln -s ..data/tls.crt "$work/identity/tls.crt"
ln -s ..data/tls.key "$work/identity/tls.key"
chown "0:$file_group" "$work/identity" "$work/identity/$data" "$work/identity/$data/tls.crt" "$work/identity/$data/tls.key"
chmod 0755 "$work/identity" "$work/identity/$data"
chmod "$file_mode" "$work/identity/$data/tls.crt" "$work/identity/$data/tls.key"
# The token volume, an emptyDir: root-owned and writable by all (with an fsGroup, its group
# and the set-group-id bit).
chmod 0777 "$work/token"
if [ "$fs_group" != none ]; then
    chown "0:$fs_group" "$work/token" "$work/identity" "$work/identity/$data"
    chmod g+s "$work/token" "$work/identity" "$work/identity/$data"
fi
# Only traversable, so the agent's user can reach the volumes (as it can in a pod).
chmod 0711 "$work"
check "the agent's user can read the Secret's files as kubelet mounts them (root-owned, group $file_group, mode $file_mode)" \
    sh -c "setpriv --reuid '$run_uid' --regid '$run_gid' --groups '$groups' cat '$work/identity/tls.crt' '$work/identity/tls.key' > /dev/null"

cat > "$work/inside.sh" <<INSIDE
set -eu
# Everything started here ends with this script.
trap 'kill \$(jobs -p) 2>/dev/null || true' EXIT
ip link set lo up
# The image's filesystem with the pod's volumes mounted where the Deployment mounts them.
mount --bind "$work/identity" "$mnt/etc/rolesanywhere-agent"
mount --bind "$work/token" "$mnt/var/run/rolesanywhere-agent"
mount --bind "$work/agent.toml" "$mnt/etc/rolesanywhere-agent.toml"
"$debug_bin" emulate --trust-anchor-certificate "$work/pki/ca.pem" \
    --trust-anchor-arn "$trust_anchor_arn" --profile-arn "$profile_arn" --role-arn "$role_arn" \
    --port 8443 --ready-file "$work/emulate.ready" --request-log "$work/requests.jsonl" > /dev/null 2>&1 &
for _ in \$(seq 100); do [ -s "$work/emulate.ready" ] && break; sleep 0.1; done
# The image's default command, environment and user, with the manifest's settings, plus the
# emulated endpoint.
ROLESANYWHERE_CONFIG=/etc/rolesanywhere-agent.toml \
SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
chroot --userspec=$run_uid:$run_gid --groups=$groups "$mnt" /rolesanywhere-agent serve \
    --endpoint http://localhost:8443 > "$work/agent.out" 2> "$work/agent.err" &
for _ in \$(seq 100); do
    chroot --userspec=$run_uid:$run_gid --groups=$groups "$mnt" /rolesanywhere-agent healthcheck > /dev/null 2>&1 && break
    sleep 0.1
done
chroot --userspec=$run_uid:$run_gid --groups=$groups "$mnt" /rolesanywhere-agent healthcheck
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
