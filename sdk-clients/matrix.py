"""The SDK matrix: real AWS clients resolve credentials from the built agent, which gets them
from `emulate` (the local CreateSession service), over every channel and address family.

Each cell starts one client process with the environment an application would have and checks
that the client holds an access key the agent (or `credential-process`) handed out, with the
Expiration parsed to the second. Refresh cells run against a service issuing 20-second
credentials and check that the client, asked again by the same SDK object, holds a NEW key.
Loopback only; every process is bounded by a timeout and stopped at the end. Run it through
scripts/sdk-matrix.sh, which installs the clients first.
"""

import argparse
import concurrent.futures
import datetime
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TA = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/matrix"
PROFILE = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/matrix"
ROLE = "arn:aws:iam::111122223333:role/matrix"
CHANNELS = ["process", "imds", "container"]
FAMILIES = ["127.0.0.1", "::1"]
CLIENT_TIMEOUT = 90  # seconds, per client process (a refresh cell sleeps ~12 s inside)
REFRESH_LIFETIME = 20  # seconds of each credential set in the refresh cells
# Seconds between the two resolutions of a refresh cell: past the first set's expiry, so that
# every SDK must fetch again whatever its own window (botocore and aws-config refresh ahead of
# expiry, but the JS chain only refreshes in the background during its last 5 minutes and
# returns the old set meanwhile). The agent refreshes at 10 s left, so it never serves an
# expired set.
REFRESH_WAIT = REFRESH_LIFETIME + 1
# botocore's IMDS provider (static stability) rewrites an Expiration less than its advisory
# window (15 min) plus a 2-10 min jitter away to now + that window, and only refreshes 15 min
# before the new time: a 20 s set is held for minutes. The refresh cell checks that rule.
BOTOCORE_IMDS_EXTENSION = (15 * 60 + 120, 15 * 60 + 600)

# Where an SDK refuses an address by its own documented rule, the cell is SKIP with that rule,
# never FAIL. (client, channel, family) -> (pattern of the SDK's error, the rule).
SDK_RULES = {}


def url_host(family, port):
    return f"[{family}]:{port}" if ":" in family else f"{family}:{port}"


def epoch(text):
    """Unix seconds of an Expiration as the agent serves it (YYYY-MM-DDTHH:MM:SSZ)."""
    return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


class Procs:
    """Every child process started, stopped (TERM, then KILL) at the end."""

    def __init__(self):
        self.children = []

    def start(self, args, **kw):
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kw)
        self.children.append(p)
        return p

    def stop_all(self):
        for p in self.children:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.children:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_file(path, proc, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return open(path).read().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with status {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {timeout} s")


def start_emulate(procs, agent, pki, work, family, lifetime=None):
    ready = os.path.join(work, "emulate.ready")
    extra = ["--credential-lifetime", str(lifetime)] if lifetime else []
    p = procs.start([agent, "emulate", "--trust-anchor-certificate", f"{pki}/ca.pem",
                     "--trust-anchor-arn", TA, "--profile-arn", PROFILE, "--role-arn", ROLE,
                     "--bind", family, "--ready-file", ready,
                     "--request-log", os.path.join(work, "emulate.jsonl"), *extra],
                    stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "emulate.err"), "w"))
    return "http://" + wait_file(ready, p, "emulate")


def identity_args(pki, endpoint):
    return ["--certificate", f"{pki}/cert.pem", "--private-key", f"{pki}/key.pem",
            "--trust-anchor-arn", TA, "--profile-arn", PROFILE, "--role-arn", ROLE,
            "--endpoint", endpoint]


def start_agent(procs, agent, pki, work, family, endpoint, refresh_before=None):
    """`serve` on FAMILY, port 0; returns its HOST:PORT as printed on stdout."""
    out = os.path.join(work, "serve.out")
    extra = ["--refresh-before", refresh_before] if refresh_before else []
    p = procs.start([agent, "serve", *identity_args(pki, endpoint), "--bind", family,
                     "--port", "0", "--no-socket",
                     "--container-token-file", os.path.join(work, "token"), *extra],
                    stdout=open(out, "w"), stderr=open(os.path.join(work, "serve.err"), "w"),
                    env=agent_env(work))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"Local server started on (\S+)", open(out).read())
        if m:
            return m.group(1)
        if p.poll() is not None:
            raise RuntimeError(f"serve exited with {p.returncode}: "
                               + open(os.path.join(work, "serve.err")).read()[-500:])
        time.sleep(0.05)
    raise RuntimeError("serve did not start within 30 s")


def agent_env(work):
    """The agent's own environment: its own cache and runtime dirs, no proxy, no password."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "XDG_CACHE_HOME": os.path.join(work, "cache"),
           "XDG_RUNTIME_DIR": os.path.join(work, "run")}
    for d in ("cache", "run"):
        os.makedirs(os.path.join(work, d), mode=0o700, exist_ok=True)
    return env


class Witness(threading.Thread):
    """Polls the agent over IMDSv2 and records every (access key, Expiration) it serves: the
    reference a client's answer must match."""

    def __init__(self, host):
        super().__init__(daemon=True)
        self.base = f"http://{host}"
        self.seen = {}
        self.error = None
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def poll_once(self):
        req = urllib.request.Request(self.base + "/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        token = urllib.request.urlopen(req, timeout=5).read().decode()
        h = {"X-aws-ec2-metadata-token": token}
        path = "/latest/meta-data/iam/security-credentials/"
        role = urllib.request.urlopen(urllib.request.Request(self.base + path, headers=h),
                                      timeout=5).read().decode().strip()
        body = json.load(urllib.request.urlopen(
            urllib.request.Request(self.base + path + role, headers=h), timeout=5))
        with self.lock:
            self.seen[body["AccessKeyId"]] = epoch(body["Expiration"])

    def run(self):
        while not self.stop.is_set():
            try:
                self.poll_once()
            except Exception as e:  # noqa: BLE001 (reported in the cells that need it)
                self.error = f"witness: {e}"
            self.stop.wait(0.25)

    def served(self):
        with self.lock:
            return dict(self.seen)


class StsStub(threading.Thread):
    """A loopback STS GetCallerIdentity for the AWS CLI v1, which has no command that prints the
    credentials it resolved: it answers UserId = the access key of the request's signature, so
    the CLI itself prints the key it signed with."""

    def __init__(self, family):
        super().__init__(daemon=True)
        server_class = type("S", (http.server.ThreadingHTTPServer,),
                            {"address_family": __import__("socket").AF_INET6
                             if ":" in family else __import__("socket").AF_INET})

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                m = re.search(r"Credential=([A-Z0-9]+)/", self.headers.get("Authorization", ""))
                key = m.group(1) if m else "UNSIGNED"
                if not self.headers.get("X-Amz-Security-Token"):
                    key = "NO-SESSION-TOKEN"
                body = ("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/"
                        "2011-06-15/\"><GetCallerIdentityResult>"
                        f"<Arn>{ROLE}</Arn><UserId>{key}</UserId>"
                        "<Account>111122223333</Account></GetCallerIdentityResult>"
                        "<ResponseMetadata><RequestId>matrix</RequestId></ResponseMetadata>"
                        "</GetCallerIdentityResponse>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = server_class((family, 0), Handler)
        self.url = "http://" + url_host(family, self.server.server_address[1])

    def run(self):
        self.server.serve_forever(poll_interval=0.2)


def process_wrapper(work, agent, pki, endpoint, name):
    """The credential_process command: the agent's `credential-process`, with its output also
    appended to a log (the reference for the client's answer)."""
    log = os.path.join(work, f"{name}.process.jsonl")
    script = os.path.join(work, f"{name}.process.sh")
    cmd = " ".join(f"'{a}'" for a in [agent, "credential-process", *identity_args(pki, endpoint)])
    with open(script, "w") as f:
        f.write("#!/bin/sh\nset -e\n"
                f"export XDG_CACHE_HOME='{work}/cache' XDG_RUNTIME_DIR='{work}/run'\n"
                f"out=$({cmd})\n"
                f"printf '%s\\n' \"$out\" >> '{log}'\n"
                "printf '%s' \"$out\"\n")
    os.chmod(script, 0o700)
    return script, log


def process_served(log):
    seen = {}
    if os.path.exists(log):
        for line in open(log):
            if line.strip():
                c = json.loads(line)
                seen[c["AccessKeyId"]] = epoch(c["Expiration"])
    return seen


class Clients:
    def __init__(self, a):
        self.a = a

    def command(self, client, times, interval, stub_url):
        a = self.a
        if client == "botocore":
            return [a.python, os.path.join(a.root, "sdk-clients/python/botocore_resolve.py"),
                    str(times), str(interval)]
        if client == "rust":
            return [a.rust_client, "chain", str(times), str(interval)]
        if client == "js":
            return [a.node, os.path.join(a.root, "sdk-clients/js/resolve.mjs"),
                    str(times), str(interval)]
        # The CLI: one `aws` process per resolution (each a fresh credential chain).
        aws = " ".join([a.aws, "sts", "get-caller-identity", "--endpoint-url", stub_url,
                        "--output", "json", "--cli-connect-timeout", "5",
                        "--cli-read-timeout", "5"])
        loop = f"for i in $(seq {times}); do [ $i = 1 ] || sleep {interval}; {aws} || exit 1; done"
        return ["sh", "-c", loop]


def parse_answers(client, stdout):
    """(access key, expiry seconds or None) per resolution the client printed."""
    answers = []
    if client == "cli":
        for doc in re.findall(r"\{[^{}]*\}", stdout):
            answers.append((json.loads(doc)["UserId"], None))
        return answers
    for line in stdout.splitlines():
        if line.strip().startswith("{"):
            d = json.loads(line)
            if d.get("secret") is False or d.get("token") is False:
                raise ValueError(f"secret or session token missing: {line}")
            answers.append((d["access_key_id"], d["expiry"]))
    return answers


def run_cell(a, clients, client, channel, family, env_base, ref, stub_url, refresh):
    cell = {"client": client, "channel": channel, "family": family,
            "kind": "refresh" if refresh else "resolve"}
    times, interval = (2, REFRESH_WAIT) if refresh else (1, 0)
    home = tempfile.mkdtemp(prefix=f"{client}-{channel}-", dir=env_base["_work"])
    env = {k: v for k, v in env_base.items() if not k.startswith("_")}
    env["HOME"] = home
    if channel == "process":
        config = os.path.join(home, "config")
        with open(config, "w") as f:
            f.write(f"[default]\ncredential_process = {env_base['_process']}\n"
                    "region = us-east-1\n")
        env["AWS_CONFIG_FILE"] = config
    start = time.monotonic()
    try:
        out = subprocess.run(clients.command(client, times, interval, stub_url), env=env,
                             capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {**cell, "result": "FAIL", "reason": f"no answer within {CLIENT_TIMEOUT} s"}
    took = time.monotonic() - start
    if out.returncode != 0:
        err = " ".join(out.stderr.split())[-300:]
        rule = SDK_RULES.get((client, channel, family))
        if rule and re.search(rule[0], out.stderr):
            return {**cell, "result": "SKIP", "reason": rule[1]}
        return {**cell, "result": "FAIL", "reason": f"exit {out.returncode}: {err}"}
    try:
        answers = parse_answers(client, out.stdout)
    except (ValueError, KeyError) as e:
        return {**cell, "result": "FAIL", "reason": f"unreadable output: {e}"}
    if len(answers) != times:
        return {**cell, "result": "FAIL",
                "reason": f"{len(answers)} resolutions printed, {times} expected"}
    served = ref()
    if refresh and (client, channel) == ("botocore", "imds"):
        return botocore_imds_extension(cell, answers, served, start)
    for key, expiry in answers:
        if key not in served:
            return {**cell, "result": "FAIL",
                    "reason": f"holds {key}, which the agent never served"}
        if expiry is not None and expiry != served[key]:
            return {**cell, "result": "FAIL",
                    "reason": f"expiry {expiry} != served {served[key]} for {key}"}
    if refresh and answers[0][0] == answers[-1][0]:
        return {**cell, "result": "FAIL",
                "reason": f"still holds {answers[0][0]} after {REFRESH_WAIT} s: no refresh"}
    what = "key" if answers[0][1] is None else "key and expiry"
    reason = f"{what} as served ({answers[-1][0][:8]}…), {took:.1f} s"
    if refresh:
        reason = f"new {what} after refresh, {took:.1f} s"
    if client == "cli":
        reason += "; CLI v1 prints no expiry"
    return {**cell, "result": "PASS", "reason": reason}


def botocore_imds_extension(cell, answers, served, start_monotonic):
    """The botocore IMDS refresh cell: the first set held past its real expiry, with the
    Expiration botocore documents (fetch time + 17..25 min), or a new served set."""
    now = time.time()
    lo, hi = BOTOCORE_IMDS_EXTENSION
    first_fetch = now - (time.monotonic() - start_monotonic)
    (k1, e1), (k2, e2) = answers
    if k1 not in served:
        return {**cell, "result": "FAIL", "reason": f"holds {k1}, which the agent never served"}
    if k2 != k1:
        if k2 not in served:
            return {**cell, "result": "FAIL", "reason": f"holds {k2}, never served"}
        return {**cell, "result": "PASS", "reason": "new key after botocore's extension ended"}
    if e1 is not None and e1 == e2 and first_fetch + lo - 5 <= e1 <= now + hi + 5:
        return {**cell, "result": "SKIP",
                "reason": f"botocore extended the {REFRESH_LIFETIME} s set to "
                          f"+{(e1 - first_fetch) / 60:.0f} min (IMDS static stability), "
                          "so no refresh within the cell, as documented"}
    return {**cell, "result": "FAIL",
            "reason": f"kept {k1} with expiry {e1}, outside botocore's extension rule"}


def family_setup(a, procs, family, lifetime, tag):
    """emulate + serve + the credential-process wrapper for one family; returns the env base
    and the two references (agent witness, process log)."""
    work = tempfile.mkdtemp(prefix=f"{tag}-", dir=a.work)
    emu = start_emulate(procs, a.agent, a.pki, work, family, lifetime)
    host = start_agent(procs, a.agent, a.pki, work, family, emu,
                       "10s" if lifetime else None)
    witness = Witness(host)
    witness.poll_once()
    witness.start()
    script, log = process_wrapper(work, a.agent, a.pki, emu, tag)
    stub = StsStub(family)
    stub.start()
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.path.join(work, "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(work, "no-credentials"),
            "_work": work, "_process": script}
    envs = {
        "process": {**base, "AWS_EC2_METADATA_DISABLED": "true"},
        "imds": {**base, "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://{host}/"},
        "container": {**base, "AWS_EC2_METADATA_DISABLED": "true",
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://{host}/v1/credentials",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": os.path.join(work, "token")},
    }
    refs = {"process": lambda: process_served(log),
            "imds": witness.served, "container": witness.served}
    return envs, refs, stub, witness


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", required=True)
    p.add_argument("--python", required=True)
    p.add_argument("--aws", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--rust-client", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--clients", default="botocore,cli,rust,js")
    p.add_argument("--jobs", type=int, default=8)
    a = p.parse_args()
    # `timeout` (scripts/sdk-matrix.sh) stops us with SIGTERM: unwind, so that the finally
    # below stops emulate and the agents instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    a.work = tempfile.mkdtemp(prefix="sdk-matrix-")
    a.pki = os.path.join(a.work, "pki")
    subprocess.run([a.agent, "demo", "--keep-in", a.pki], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, env=agent_env(a.work))
    clients = Clients(a)
    names = a.clients.split(",")
    procs = Procs()
    results = []
    try:
        jobs = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
            for family in FAMILIES:
                for refresh in (False, True):
                    tag = ("v6" if ":" in family else "v4") + ("-refresh" if refresh else "")
                    envs, refs, stub, _ = family_setup(
                        a, procs, family, REFRESH_LIFETIME if refresh else None, tag)
                    for client in names:
                        for channel in CHANNELS:
                            jobs.append(pool.submit(run_cell, a, clients, client, channel,
                                                    family, envs[channel], refs[channel],
                                                    stub.url, refresh))
            for j in jobs:
                results.append(j.result())
    finally:
        procs.stop_all()
        shutil.rmtree(a.work, ignore_errors=True)
    order = {n: i for i, n in enumerate(names)}
    results.sort(key=lambda r: (order[r["client"]], CHANNELS.index(r["channel"]),
                                r["kind"] == "refresh", FAMILIES.index(r["family"])))
    widths = [8, 9, 9, 7, 6]
    head = ["client", "channel", "address", "cell", "result"]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)) + " | reason")
    print("-|-".join("-" * w for w in widths) + "-|-------")
    for r in results:
        row = [r["client"], r["channel"], r["family"], r["kind"], r["result"]]
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)) + " | " + r["reason"])
    counts = {k: sum(r["result"] == k for r in results) for k in ("PASS", "FAIL", "SKIP")}
    print(f"sdk-matrix: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
