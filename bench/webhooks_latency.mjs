// Webhook delivery latency, commit to receiver (issue 13 target: p50 under 1 s locally).
// Runs the release worker in workerd through Miniflare with the queue settings of
// wrangler.toml (max_batch_timeout = 1), a loopback receiver, and N sequential user creates;
// the latency of one event is from the SCIM response (the commit) to the receiver's arrival.
// Also reports what the endpoint costs the write itself: the same creates' response times
// with and without a slow (2 s) receiver configured.
//   node bench/webhooks_latency.mjs [N]
import http from "node:http";
import { startWorker } from "../tests/e2e/harness.mjs";

const N = Number(process.argv[2] ?? 50);
const ADMIN = "bench-admin";
const arrivals = new Map();
let delayMs = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const at = performance.now();
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    arrivals.set(body.data.userName, at);
    setTimeout(() => res.writeHead(204).end(), delayMs);
  });
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${server.address().port}/hook`;

const w = await startWorker({
  adminToken: ADMIN,
  options: {
    bindings: { WEBHOOK_ALLOW_LOOPBACK_HTTP: "1" },
    queueProducers: { WEBHOOKS: { queueName: "scim-webhooks" } },
    queueConsumers: { "scim-webhooks": { maxBatchSize: 10, maxBatchTimeout: 1, maxRetries: 20 } },
  },
});
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const fmt = (xs) => `p50 ${pct(xs, 50).toFixed(0)} ms, p90 ${pct(xs, 90).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`;

async function creates(prefix) {
  const done = new Map();
  const took = [];
  for (let i = 0; i < N; i++) {
    const name = `${prefix}${i}@bench.test`;
    const t0 = performance.now();
    const r = await w.post("/Users", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: name });
    const t1 = performance.now();
    if (r.status !== 201) throw new Error(r.text);
    done.set(name, t1);
    took.push(t1 - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { done, took };
}

try {
  const base = await creates("plain");
  const r = await w.request("POST", "/admin/api/tenants/default/webhooks", { token: ADMIN, body: { url } });
  if (r.status !== 201) throw new Error(r.text);
  const hooked = await creates("hooked");
  const end = Date.now() + 30_000;
  while (arrivals.size < N && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const lat = [...hooked.done].filter(([n]) => arrivals.has(n)).map(([n, t]) => arrivals.get(n) - t);
  console.log(`${lat.length}/${N} delivered; commit → receiver: ${fmt(lat)}`);
  console.log(`SCIM create without an endpoint: ${fmt(base.took)}`);
  console.log(`SCIM create with an endpoint:    ${fmt(hooked.took)}`);
  delayMs = 2000;
  const slow = await creates("slow");
  console.log(`SCIM create with a receiver answering after 2 s: ${fmt(slow.took)}`);
} finally {
  await w.stop();
  server.close();
}
