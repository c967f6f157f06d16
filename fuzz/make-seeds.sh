#!/usr/bin/env bash
# Regenerates seeds/ (the committed starting corpora) from the test vectors in
# tests/data/vectors and a few hand-written requests. Needs openssl and python3. The fuzzer
# grows its working corpus in corpus/ from these; seeds stay small (a few KiB each).
set -euo pipefail
cd "$(dirname "$0")"
pki=../tests/data/vectors/pki
rm -rf seeds && mkdir -p seeds/{identity,pkcs12,http_head,routes,agent_answer,pkcs11_uri,credentials_file,session_response,emulate_verify}

# identity: PEM and DER certificates, PKCS#8 (plain, encrypted), PKCS#1 and SEC1 keys.
s=seeds/identity
cp $pki/p256-leaf.pem $s/cert-p256.pem
cat $pki/rsa-leaf.pem $pki/intermediate-ca.pem > $s/chain.pem
openssl x509 -in $pki/p384-leaf.pem -outform DER -out $s/cert-p384.der
cp $pki/p256-leaf.key $s/key-p256-pkcs8.pem
cp $pki/p384-leaf.key $s/key-p384-pkcs8.pem
cp $pki/rsa-leaf.key $s/key-rsa-pkcs8.pem
openssl pkey -in $pki/p256-leaf.key -outform DER -out $s/key-p256-pkcs8.der
openssl pkey -in $pki/rsa-leaf.key -traditional -out $s/key-rsa-pkcs1.pem
openssl ec -in $pki/p256-leaf.key -out $s/key-p256-sec1.pem 2>/dev/null
# Encrypted with the target's password `fuzz` and few PBKDF2 rounds, so runs stay fast.
openssl pkcs8 -topk8 -in $pki/p256-leaf.key -v2 aes-256-cbc -iter 1 -passout pass:fuzz -out $s/key-p256-encrypted.pem
printf -- '-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END EC PRIVATE KEY-----\n' > $s/key-legacy-encrypted.pem

# pkcs12: the same identities with the empty password and with `fuzz`.
s=seeds/pkcs12
openssl pkcs12 -export -in $pki/p256-leaf.pem -inkey $pki/p256-leaf.key -certfile $pki/intermediate-ca.pem \
    -passout pass: -iter 1 -maciter -macalg sha256 -keypbe AES-128-CBC -certpbe AES-128-CBC -out $s/p256-empty.p12
openssl pkcs12 -export -in $pki/p384-leaf.pem -inkey $pki/p384-leaf.key \
    -passout pass:fuzz -iter 1 -maciter -out $s/p384-fuzz.p12
openssl pkcs12 -export -in $pki/p256-leaf.pem -inkey $pki/p256-leaf.key \
    -passout pass: -iter 1 -nomac -keypbe NONE -certpbe NONE -out $s/p256-plain.p12

# http_head: first byte 0 = TCP endpoints, 1 = unix socket. @TOKEN@ = a valid IMDS token.
s=seeds/http_head
printf '\0PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1:9911\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n' > $s/imds-token
printf '\0GET /latest/meta-data/iam/security-credentials/exam HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: @TOKEN@\r\n\r\nGET /latest/meta-data/iam/security-credentials-extended/ HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: @TOKEN@\r\n\r\n' > $s/imds-pipelined
printf '\0GET /v1/credentials HTTP/1.1\r\nHost: 169.254.170.2\r\nAuthorization: fuzz-container-token\r\nConnection: close\r\n\r\n' > $s/container
printf '\0GET /healthz HTTP/1.0\r\nX-Forwarded-For: 10.0.0.1\r\n\r\nPOST /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' > $s/forwarded-chunked
printf '\1GET /v1/process-credentials HTTP/1.1\r\nHost: agent\r\nX-Identity-Key: 0123456789ABCDEF\r\nConnection: close\r\n\r\n' > $s/unix-process
printf '\1GET /healthz HTTP/1.1\r\nHost: agent\r\nContent-Length: 3\r\n\r\nabc' > $s/unix-health

# routes: listener byte, then method, path and header lines.
s=seeds/routes
printf '\0PUT\n/latest/api/token\nx-aws-ec2-metadata-token-ttl-seconds: 1' > $s/token
printf '\0GET\n/latest/meta-data/iam/security-credentials-extended/exam\nx-aws-ec2-metadata-token: @TOKEN@' > $s/creds-extended
printf '\0GET\n/latest/meta-data/placement/availability-zone\nx-aws-ec2-metadata-token: @TOKEN@\nhost: [fd00:ec2::254]' > $s/az
printf '\0GET\n/v1/credentials\nauthorization: fuzz-container-token' > $s/container
printf '\1GET\n/v1/process-credentials\nx-identity-key:  0123456789abcdef ' > $s/unix-process

# agent_answer: what a process on the agent socket answers.
s=seeds/agent_answer
printf 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 56\r\n\r\n{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S"}\n' > $s/ok
printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"Ve\r\n2;x=y\r\nrs\r\n0\r\n\r\n' > $s/chunked
printf 'HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}' > $s/declined

# pkcs11_uri: URIs and certificate selectors.
s=seeds/pkcs11_uri
printf 'pkcs11:token=SoftHSM%%20token;object=leaf;type=private;id=%%01%%02?pin-value=1234&module-path=/usr/lib/softhsm/libsofthsm2.so' > $s/full
printf 'pkcs11:manufacturer=m;serial=0123;model=x;library-version=2.40;slot-id=7;library-manufacturer=a;library-description=b;slot-description=c;slot-manufacturer=d?pin-source=file:///tmp/pin&module-name=opensc&x-unknown=1' > $s/attributes
printf 'x509Subject=CN=leaf,O=Org,x509Issuer=CN=CA,x509Serial=00C1D2' > $s/selector-pairs
printf '[{"Key":"x509Subject","Value":"CN=leaf"},{"Key":"x509Serial","Value":"1234"}]' > $s/selector-json

# credentials_file: the profile name, a newline, then the file.
s=seeds/credentials_file
printf 'default\n' > $s/empty
printf 'work\n\xef\xbb\xbf# comment\r\n[default]\r\naws_access_key_id = OLD\r\nregion=us-east-1\r\n\r\n[profile work] ; note\r\n  aws_secret_access_key=old\r\n    continued\r\noutput = json\r\n[work]\nAWS_SESSION_TOKEN   =\n[work]\nother = 1\n' > $s/mixed
printf 'prod\n[ prod ]\ns3 =\n  max_concurrent_requests = 10\naws_access_key_id=x' > $s/nested
# Shapes the fuzzer found bugs with (see the tests in src/credentials_file.rs).
printf 'p\n[p]\na = 1\n# note\r' > $s/regress-trailing-cr
printf 'p\n[p]\n  stray\n\n\tmore\n[q]\n' > $s/regress-indented-under-header
printf 'p\n[p]\naws_secret_access_key = s\n\n  aws_secret_access_key=old\n d\nx = 1\n' > $s/regress-dropped-duplicate

# session_response: two status bytes, then the body.
s=seeds/session_response
printf '\0\310{"credentialSet":[{"assumedRoleUser":{"arn":"a","assumedRoleId":"b"},"credentials":{"accessKeyId":"ASIA","expiration":"2026-11-24T13:33:52Z","secretAccessKey":"s","sessionToken":"t"},"packedPolicySize":0,"roleArn":"arn:aws:iam::111122223333:role/exam","sourceIdentity":"CN=leaf"}],"subjectArn":"arn:aws:rolesanywhere:us-east-1:111122223333:subject/x"}' > $s/ok
printf '\1\223{"message":"Untrusted signing certificate","__type":"AccessDeniedException"}' > $s/denied
printf '\1\364<html>Bad gateway</html>' > $s/html

# emulate_verify: the test vectors' recorded CreateSession requests.
python3 - <<'PY'
import json, glob, os
for path in sorted(glob.glob('../tests/data/vectors/cases/*.json')):
    case = json.load(open(path))
    r = case['request']
    target = r['path'] + ('?' + r['query'] if r['query'] else '')
    head = [f"{r['method']} {target}"] + [f"{n}: {v}" for n, v in r['headers']]
    body = r.get('body', '')
    if isinstance(body, dict):
        body = json.dumps(body)
    name = os.path.basename(path)[:-5]
    with open(f'seeds/emulate_verify/{name}', 'w') as f:
        f.write('\n'.join(head) + '\n\n' + body)
PY
du -sh seeds; find seeds -type f -size +8k
