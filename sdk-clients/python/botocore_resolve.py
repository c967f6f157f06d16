"""Resolves credentials with botocore's default chain and prints, per resolution, one JSON line
{"method", "access_key_id", "expiry" (Unix seconds or null)}: the SDK matrix
(scripts/sdk-matrix.sh) compares them with what the agent served. The secret and the token are
never printed.

Usage: botocore_resolve.py [TIMES [INTERVAL_SECONDS]]. The same Credentials object is asked
each time, so a later line shows botocore's own refresh, not a new session's first fetch.
"""

import json
import sys
import time

import botocore.session


def main():
    times = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    creds = botocore.session.Session().get_credentials()
    if creds is None:
        print("botocore found no credentials", file=sys.stderr)
        return 1
    for i in range(times):
        if i:
            time.sleep(interval)
        frozen = creds.get_frozen_credentials()
        # RefreshableCredentials keeps the parsed Expiration here; static ones have none.
        expiry = getattr(creds, "_expiry_time", None)
        print(json.dumps({
            "method": creds.method,
            "access_key_id": frozen.access_key,
            "secret": bool(frozen.secret_key),
            "token": bool(frozen.token),
            "expiry": int(expiry.timestamp()) if expiry else None,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
