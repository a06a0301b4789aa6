// Verifies requests that pg_eventbus delivered, with the Standard Webhooks
// reference library (Webhook.verify of the npm package standardwebhooks).
//
//   node verify.mjs < input.json
//
// input.json: {"secret": "whsec_...", "requests": [{"headers": {...},
// "body_base64": "..."}, ...]}, the requests as test/sink/sink.py --raw
// records them.  Prints one line per request, in order: "ok" when the
// library accepts it, "rejected: <the library's reason>" when it refuses.
import { readFileSync } from 'node:fs';
import { Webhook } from 'standardwebhooks';

const input = JSON.parse(readFileSync(0, 'utf8'));
const webhook = new Webhook(input.secret);

for (const request of input.requests) {
  const body = Buffer.from(request.body_base64, 'base64');
  try {
    webhook.verify(body, request.headers);
    console.log('ok');
  } catch (e) {
    console.log(`rejected: ${e.message}`);
  }
}
