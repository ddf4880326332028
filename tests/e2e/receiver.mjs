// What the webhook tests share: the queue as wrangler.toml declares it (retries a second
// apart, loopback http allowed), a loopback receiver that records what it got, and a poll.
import assert from "node:assert/strict";
import http from "node:http";

/** Worker options with the webhook queue, its dead-letter queue and the trigger handlers. */
export function queueOptions(extraBindings = {}) {
  return {
    bindings: { WEBHOOK_ALLOW_LOOPBACK_HTTP: "1", WEBHOOK_RETRY_BASE_SECONDS: "1", ...extraBindings },
    queueProducers: { WEBHOOKS: { queueName: "scim-webhooks" } },
    queueConsumers: {
      "scim-webhooks": { maxBatchSize: 10, maxBatchTimeout: 0, maxRetries: 20, deadLetterQueue: "scim-webhooks-dlq" },
      "scim-webhooks-dlq": { maxBatchTimeout: 0 },
    },
    unsafeTriggerHandlers: true,
  };
}

/**
 * A loopback receiver: records every POST in `got` ({at, headers, body, path, status}); a test
 * sets `answer(entry)` to pick the status (`status` by default) and `delay(entry)` to hold the
 * answer back (ms). A 400 carries an RFC 8935 error body, as a SET receiver's would.
 */
export async function startReceiver({ status = 204 } = {}) {
  const rx = { got: [], answer: () => status, delay: () => 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const entry = { at: Date.now(), headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), path: req.url };
      entry.status = rx.answer(entry);
      rx.got.push(entry);
      setTimeout(() => {
        if (entry.status === 400) {
          res.writeHead(400, { "content-type": "application/json" });
          res.end(JSON.stringify({ err: "invalid_key", description: "not yet" }));
        } else res.writeHead(entry.status).end();
      }, rx.delay(entry));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  rx.url = `http://127.0.0.1:${server.address().port}`;
  rx.close = () => new Promise((r) => server.close(r));
  return rx;
}

/** Waits until `pred()` holds (polling), or fails with `what`. */
export async function until(pred, what, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await pred();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}
