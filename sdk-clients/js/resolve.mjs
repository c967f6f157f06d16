// Resolves credentials with the AWS SDK for JavaScript v3's fromNodeProviderChain and prints,
// per resolution, one JSON line {"access_key_id", "expiry" (Unix seconds or null)}: the SDK
// matrix (scripts/sdk-matrix.sh) compares them with what the agent served. The secret and the
// token are never printed.
//
// Usage: node resolve.mjs [TIMES [INTERVAL_SECONDS]]. The same (memoizing) provider is asked
// each time, so a later line shows the SDK's own refresh rule at work.
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";

const times = Number(process.argv[2] ?? 1);
const interval = Number(process.argv[3] ?? 0);
const provider = fromNodeProviderChain();

try {
  for (let i = 0; i < times; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, interval * 1000));
    const c = await provider();
    console.log(JSON.stringify({
      access_key_id: c.accessKeyId,
      secret: Boolean(c.secretAccessKey),
      token: Boolean(c.sessionToken),
      expiry: c.expiration ? Math.floor(c.expiration.getTime() / 1000) : null,
      source: c.$source ?? null,
    }));
  }
} catch (e) {
  // The message and its cause: the chain's summary alone often hides which provider refused.
  console.error(`resolve.mjs: ${e.name}: ${e.message}${e.cause ? ` (cause: ${e.cause})` : ""}`);
  process.exit(1);
}
