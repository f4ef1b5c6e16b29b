// Verifies a webhook delivery with the reference Standard Webhooks library (npm `standardwebhooks`),
// independently of Switchboard's own signing code. Reads {"secret", "headers", "body"} as JSON on
// stdin; prints the verified payload and exits 0, or prints why and exits 1.
import { Webhook } from 'standardwebhooks';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const { secret, headers, body } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
try {
  const payload = new Webhook(secret).verify(body, headers);
  process.stdout.write(`${JSON.stringify(payload)}\n`);
} catch (err) {
  process.stdout.write(`invalid: ${err.message}\n`);
  process.exit(1);
}
