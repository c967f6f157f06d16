#!/usr/bin/env bash
# The static binary: builds it, shows with `file` and `ldd` that it is static, and runs
# `demo` inside an empty root (a chroot holding only the binary and /tmp), then
# `credential-process` there against `emulate` outside it, resolving `localhost` through the
# chroot's own /etc/hosts. Prints a closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
check() {
    local what=$1
    shift
    if "$@"; then
        echo "static: ok: $what"
        passed=$((passed + 1))
    else
        echo "static: FAILED: $what" >&2
        failed=$((failed + 1))
    fi
}

bin=$(scripts/build-static.sh | tail -n 1)
debug_bin=target/debug/rolesanywhere-agent
[ -x "$debug_bin" ] || cargo build --locked --quiet

root=$(mktemp -d)
work=$(mktemp -d)
emu_pid=
cleanup() {
    [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null || true
    rm -rf "$root" "$work"
}
trap cleanup EXIT

check "file says statically linked" sh -c "file '$bin' | grep -Eq 'statically linked|static-pie linked'"
check "ldd finds no shared libraries" sh -c "! ldd '$bin' 2>&1 | grep -q '=>'"

# The empty root: the binary and a /tmp, nothing else (no libc, no shell, no certificates).
install -m 0755 "$bin" "$root/rolesanywhere-agent"
mkdir -m 1777 "$root/tmp"
check "demo runs inside an empty root" sh -c "chroot '$root' /rolesanywhere-agent demo > '$work/demo.out' 2>&1 && grep -q 'Signed CreateSession' '$work/demo.out'"

# credential-process in the root against emulate outside it, by name through /etc/hosts.
mkdir -p "$root/etc" "$root/id"
printf '127.0.0.1\tlocalhost\n' > "$root/etc/hosts"
printf 'hosts: files\n' > "$root/etc/nsswitch.conf"
"$debug_bin" demo --keep-in "$work/pki" > /dev/null
cp "$work/pki/cert.pem" "$work/pki/key.pem" "$root/id/"
ta=arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/static
profile=arn:aws:rolesanywhere:us-east-1:111122223333:profile/static
role=arn:aws:iam::111122223333:role/static
"$debug_bin" emulate --trust-anchor-certificate "$work/pki/ca.pem" --trust-anchor-arn "$ta" \
    --profile-arn "$profile" --ready-file "$work/ready" > /dev/null 2>&1 &
emu_pid=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
port=$(sed 's/.*://' "$work/ready")
check "credential-process in the root resolves localhost and gets credentials" sh -c \
    "chroot '$root' /rolesanywhere-agent credential-process --certificate /id/cert.pem --private-key /id/key.pem \
       --trust-anchor-arn '$ta' --profile-arn '$profile' --role-arn '$role' --endpoint http://localhost:$port --no-cache \
     | grep -q '\"AccessKeyId\":\"ASIA'"

# Left out of the build, `keyring` says so (exit 2) rather than "unrecognized subcommand".
check "keyring in the static binary says it was built without it" sh -c \
    "'$bin' keyring import --service s --account a k.pem > /dev/null 2> '$work/keyring.err'; \
     [ \$? -eq 2 ] && grep -q 'built without the keyring feature' '$work/keyring.err'"

size=$(stat -c %s "$bin")
echo "static: binary $bin, $((size / 1024)) KiB"
echo "static: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
