#!/usr/bin/env bash
# A throwaway PKI for trying IAM Roles Anywhere: one root CA to register as a trust anchor and
# one workload certificate per key type the service accepts (RSA-2048, P-256, P-384, and
# ML-DSA-65 when the local OpenSSL has it: 3.5 or newer). Made with the openssl command line
# only, so the same steps work with any CA tooling. See certs-example/README.md.
#
# Usage: certs-example/make-certs.sh [OUT_DIR]      (default: ./certs-example-out)
# An OUT_DIR that already holds ca.pem and ca.key keeps that CA (a trust anchor made from it
# stays valid) and gets new workload certificates.
set -euo pipefail

out=${1:-certs-example-out}
days_ca=3650
days_leaf=365
# Private keys are written readable by their owner only.
umask 077

die() {
    echo "make-certs.sh: $*" >&2
    exit 2
}
command -v openssl >/dev/null || die "openssl is not installed (Debian/Ubuntu: apt-get install openssl)"

# Runs an openssl command quietly; on failure shows what it said and stops.
ossl() {
    local err
    if ! err=$(openssl "$@" 2>&1 >/dev/null); then
        echo "make-certs.sh: openssl $1 failed:" >&2
        echo "$err" >&2
        exit 1
    fi
}

mkdir -p "$out"
[ -d "$out" ] || die "$out is not a directory"

# What Roles Anywhere requires of the certificates (its trust model): X.509 v3; the CA with
# basicConstraints CA:TRUE and keyUsage keyCertSign (and cRLSign, for a CRL later); the
# workload certificate with CA:FALSE and keyUsage digitalSignature; signatures with SHA-256
# or stronger (SHA-1 and MD5 are refused).
cat >"$out/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

if [ -s "$out/ca.pem" ] && [ -s "$out/ca.key" ]; then
    echo "keeping the CA in $out/ca.pem"
else
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/ca.key"
    ossl req -x509 -new -config "$out/openssl.cnf" -extensions ca_ext -key "$out/ca.key" \
        -subj "/O=certs-example/CN=certs-example root CA" -days "$days_ca" -sha256 \
        -out "$out/ca.pem"
    chmod 0644 "$out/ca.pem"
    echo "made the CA:         $out/ca.pem (key $out/ca.key)"
fi

# One workload certificate: a key of the given type, then a certificate for its public key,
# issued by the CA. (With a real CA the workload sends a CSR instead; the key never leaves.)
made=()
leaf() {
    local name=$1
    shift
    local cn="certs-example-$name"
    ossl genpkey "$@" -out "$out/$name.key"
    ossl pkey -in "$out/$name.key" -pubout -out "$out/$name.pub"
    # A random positive serial of 16 bytes: unique without a serial file to keep.
    ossl x509 -new -force_pubkey "$out/$name.pub" -subj "/O=certs-example/CN=$cn" \
        -CA "$out/ca.pem" -CAkey "$out/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
        -days "$days_leaf" -sha256 -extfile "$out/openssl.cnf" -extensions leaf_ext \
        -out "$out/$name.pem"
    rm -f "$out/$name.pub"
    chmod 0644 "$out/$name.pem"
    ossl verify -CAfile "$out/ca.pem" "$out/$name.pem"
    made+=("$cn")
    printf 'made %-14s %s (key %s)\n' "$name:" "$out/$name.pem" "$out/$name.key"
}

leaf rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
leaf p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
leaf p384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
# ML-DSA (FIPS 204) arrived in OpenSSL 3.5: ask this one whether it can make such a key.
if openssl genpkey -algorithm ML-DSA-65 -out /dev/null >/dev/null 2>&1; then
    leaf mldsa65 -algorithm ML-DSA-65
else
    echo "skipped mldsa65:     $(openssl version | cut -d' ' -f1-2) cannot make ML-DSA-65 keys (OpenSSL 3.5 or newer can)"
fi

# Inputs for the AWS CLI commands in certs-example/README.md.
# The trust anchor's source: the CA certificate as a JSON string.
{
    printf '{"sourceType":"CERTIFICATE_BUNDLE","sourceData":{"x509CertificateData":"'
    awk '{ printf "%s\\n", $0 }' "$out/ca.pem"
    printf '"}}\n'
} >"$out/trust-anchor-source.json"
# The role's trust policy: Roles Anywhere may assume it, tag the session and set its source
# identity, only for these certificates' subjects and only through the trust anchor
# (TRUST_ANCHOR_ARN is replaced once the trust anchor exists).
cns=$(printf '"%s", ' "${made[@]}")
cns=${cns%, }
cat >"$out/trust-policy.json" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": { "Service": "rolesanywhere.amazonaws.com" },
      "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
      "Condition": {
        "StringEquals": { "aws:PrincipalTag/x509Subject/CN": [$cns] },
        "ArnEquals": { "aws:SourceArn": "TRUST_ANCHOR_ARN" }
      }
    }
  ]
}
JSON
chmod 0644 "$out/openssl.cnf" "$out/trust-anchor-source.json" "$out/trust-policy.json"
echo "wrote $out/trust-anchor-source.json and $out/trust-policy.json for the AWS CLI (certs-example/README.md)"
