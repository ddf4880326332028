// CPU profile of one SCIM operation on the Durable Object backend, taken with V8's sampling
// profiler through workerd's inspector (Chrome DevTools protocol). The worker and its objects
// run in one isolate of one workerd, so one profile holds both sides of the hop; wasm
// functions are named when the build keeps the name section (see `--build` below).
//
//   bash bench/profile.sh --ops=get,post,patch              # builds with names, then profiles
//   node bench/profile.mjs --worker=bench/.build/profile --ops=post --seconds=8 --top=40
//
// Options: --worker=DIR (worker-build output: index.js, index_bg.wasm; entry.mjs if present)
//   --ops=get,userName,post,patch,list100,delete  --users=300 (seeded through the API)
//   --groups=0 (groups of every seeded user)  --seconds=8
//   --connections=4  --interval=100 (sampling interval, µs)  --top=35  --out=DIR (the
//   .cpuprofile files, loadable in Chrome DevTools)  --storage=durable-object|d1
// Not a benchmark: the profiler's own cost inflates every figure; read the shares.
import { Miniflare } from "miniflare";
import WebSocket from "ws";
import { request as httpRequest, Agent } from "node:http";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { migrationStatements, USER_SCHEMA, ENTERPRISE, PATCH_OP } from "../tests/e2e/harness.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k, v ?? "1"];
  }),
);
const WORKER = path.resolve(args.worker ?? path.join(BENCH, ".build/profile"));
const OPS = (args.ops ?? "get,userName,post,patch").split(",");
const USERS = Number(args.users ?? 300);
const SECONDS = Number(args.seconds ?? 8);
const CONNECTIONS = Number(args.connections ?? 4);
const INTERVAL = Number(args.interval ?? 100);
const TOP = Number(args.top ?? 35);
const OUT = args.out ? path.resolve(args.out) : null;
const STORAGE = args.storage ?? "durable-object";
const TOKEN = randomBytes(24).toString("base64url");
const log = (...a) => console.error("[profile]", ...a);

// The benchmark's user and Entra PATCH (bench.mjs runs on import, so they are repeated here).
function userBody(i) {
  return {
    schemas: [USER_SCHEMA, ENTERPRISE],
    externalId: `00000000-0000-4000-8000-000000${i}`,
    userName: `user${i}@contoso.com`,
    active: true,
    displayName: `User ${i}`,
    name: { givenName: `Given${i}`, familyName: `Family${i}`, formatted: `Given${i} Family${i}` },
    emails: [{ value: `user${i}@contoso.com`, type: "work", primary: true }],
    phoneNumbers: [{ value: "+1 555 0100", type: "work" }],
    addresses: [{ type: "work", streetAddress: "1 Main St", locality: "Seattle", region: "WA", postalCode: "98101", country: "US", primary: true }],
    title: "Engineer",
    preferredLanguage: "en-US",
    [ENTERPRISE]: { employeeNumber: `${i}`, department: "Engineering", costCenter: "CC-100", organization: "Contoso", division: "Cloud" },
  };
}
const entraPatch = (n) => ({
  schemas: [PATCH_OP],
  Operations: [
    { op: "Replace", path: "displayName", value: `Patched ${n}` },
    { op: "Replace", path: "name.givenName", value: `G${n}` },
    { op: "Replace", path: `${ENTERPRISE}:department`, value: `Dept ${n}` },
    { op: "Add", path: 'phoneNumbers[type eq "mobile"].value', value: `+1 555 ${n}` },
    { op: "Replace", path: "active", value: "True" },
  ],
});
const fmt = (i) => String(i).padStart(6, "0");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS * 2 });
/** One request; resolves to status and text. */
function http(origin, method, p, body) {
  const headers = { Authorization: `Bearer ${TOKEN}` };
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  if (payload) {
    headers["Content-Type"] = "application/scim+json";
    headers["Content-Length"] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${origin}${p}`, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** The Chrome DevTools protocol over one websocket: `send(method, params)` resolves to the result. */
async function devtools(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let next = 1;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString());
    const p = msg.id && pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(`${JSON.stringify(msg.error)}`));
    else p.resolve(msg.result);
  });
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** Drives `op` for `seconds` with CONNECTIONS concurrent request loops; the count and non-2xx. */
async function drive(origin, op, users, seconds, counter) {
  const end = Date.now() + seconds * 1000;
  let done = 0;
  let bad = 0;
  const one = async () => {
    const n = counter.next++;
    const u = users[n % users.length];
    let r;
    if (op === "get") r = await http(origin, "GET", `/scim/v2/Users/${u.id}`);
    else if (op === "userName") r = await http(origin, "GET", `/scim/v2/Users?filter=${encodeURIComponent(`userName eq "${u.userName}"`)}`);
    else if (op === "post") r = await http(origin, "POST", "/scim/v2/Users", userBody(fmt(200000 + n)));
    else if (op === "patch") r = await http(origin, "PATCH", `/scim/v2/Users/${u.id}`, entraPatch(n));
    else if (op === "list100") r = await http(origin, "GET", "/scim/v2/Users?startIndex=1&count=100");
    // Each user once (seed enough of them: --users ≥ requests); later requests answer 404.
    else if (op === "delete") r = await http(origin, "DELETE", `/scim/v2/Users/${users[n]?.id ?? "gone"}`);
    else throw new Error(`unknown op ${op}`);
    done++;
    if (r.status >= 300) {
      if (bad++ === 0) log(`${op}: ${r.status} ${r.text.slice(0, 200)}`);
    }
  };
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  return { done, bad };
}

/** Self time per function (name + script), and inclusive time of every function on a sample's stack. */
function summarise(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n) => {
    const f = n.callFrame;
    // Rust symbols carry a hash (`::h0123…`) and crate disambiguators (`[e24a…]`): dropped.
    const name = (f.functionName || "(anonymous)").replace(/::h[0-9a-f]{16}/g, "").replace(/\[[0-9a-f]{16}\]/g, "");
    if (name.startsWith("(")) return name;
    const script = f.url ? path.basename(f.url.split("?")[0]) : "";
    return script && !script.endsWith(".wasm") && !/wasm/.test(f.url) ? `${name} [${script}]` : name;
  };
  const self = new Map();
  const incl = new Map();
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = deltas[i + 1] ?? deltas[i] ?? INTERVAL;
    const n = byId.get(id);
    if (!n) return;
    total += dt;
    const k = key(n);
    self.set(k, (self.get(k) ?? 0) + dt);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = key(byId.get(cur));
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + dt);
    }
  });
  return { self, incl, total };
}

/** A markdown table of the `top` largest entries: share of the sampled time, µs per request. */
function printTop(title, map, total, requests, top, filter = () => true) {
  const rows = [...map.entries()].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, top);
  console.log(`\n${title}\n`);
  console.log("| % of samples | µs/req | function |\n|---:|---:|---|");
  for (const [k, v] of rows) console.log(`| ${((100 * v) / total).toFixed(1)} | ${(v / requests).toFixed(0)} | \`${k.length > 150 ? `${k.slice(0, 147)}...` : k}\` |`);
}

async function main() {
  const state = mkdtempSync(path.join(os.tmpdir(), "scim-profile-"));
  const inspectorPort = await freePort();
  const entry = existsSync(path.join(WORKER, "entry.mjs")) ? path.join(WORKER, "entry.mjs") : path.join(WORKER, "index.js");
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: await freePort(),
    inspectorPort,
    d1Persist: path.join(state, "d1"),
    durableObjectsPersist: path.join(state, "do"),
    workers: [
      {
        name: "main",
        modules: true,
        scriptPath: entry,
        modulesRoot: WORKER,
        modulesRules: [
          { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
          { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
        ],
        compatibilityDate: "2026-04-20",
        d1Databases: { DB: "00000000-0000-0000-0000-000000000000" },
        bindings: { SCIM_TOKEN: TOKEN, SCIM_STORAGE: STORAGE },
        ...(STORAGE === "durable-object" ? { durableObjects: { TENANT_STORE: { className: "TenantStore", useSQLite: true } } } : {}),
      },
    ],
  });
  try {
    const url = await mf.ready;
    const origin = url.origin;
    const db = await mf.getD1Database("DB");
    for (const sql of migrationStatements()) await db.prepare(sql).run();
    const t0 = Date.now();
    const users = [];
    for (let i = 0; i < USERS; i++) {
      const r = await http(origin, "POST", "/scim/v2/Users", userBody(fmt(i)));
      if (r.status !== 201) throw new Error(`seed POST: ${r.status} ${r.text}`);
      const j = JSON.parse(r.text);
      users.push({ id: j.id, userName: j.userName });
    }
    // --groups=N: N groups of every seeded user, as the benchmark's users are in groups
    // (its list page renders each user's `groups`).
    for (let g = 0; g < Number(args.groups ?? 0); g++) {
      const r = await http(origin, "POST", "/scim/v2/Groups", {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        displayName: `Group ${g}`,
        members: users.map((u) => ({ value: u.id })),
      });
      if (r.status !== 201) throw new Error(`seed group: ${r.status} ${r.text}`);
    }
    log(`seeded ${USERS} users through the API in ${Date.now() - t0} ms (${STORAGE})`);
    const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
    log(`inspector targets: ${targets.map((t) => t.id ?? t.title).join(", ")}`);
    const target = targets.find((t) => /main/.test(t.id ?? t.title ?? "")) ?? targets[0];
    const dt = await devtools(target.webSocketDebuggerUrl);
    await dt.send("Profiler.enable");
    await dt.send("Profiler.setSamplingInterval", { interval: INTERVAL });
    const counter = { next: 0 };
    for (const op of OPS) {
      await drive(origin, op, users, 1, counter); // warm-up, unprofiled
      await dt.send("Profiler.start");
      const { done, bad } = await drive(origin, op, users, SECONDS, counter);
      const { profile } = await dt.send("Profiler.stop");
      if (OUT) {
        mkdirSync(OUT, { recursive: true });
        writeFileSync(path.join(OUT, `${op}.cpuprofile`), JSON.stringify(profile));
      }
      const { self, incl, total } = summarise(profile);
      const idle = (self.get("(idle)") ?? 0) + (self.get("(program)") ?? 0);
      console.log(`\n## ${op} (${STORAGE}): ${done} requests${bad ? ` (${bad} not 2xx)` : ""} in ${SECONDS} s, ${(total / 1000).toFixed(0)} ms sampled, ` +
        `${((total - idle) / done).toFixed(0)} µs of JS+wasm per request outside (idle)/(program)`);
      printTop(`Top self time (${op})`, self, total, done, TOP);
      // Inclusive: the crate's own functions (and the worker crate's), the hop's two sides.
      printTop(`Top inclusive time, scim_edge and worker (${op})`, incl, total, done, TOP, (k) => /scim_edge|^<?worker::/.test(k));
    }
    dt.close();
  } finally {
    await mf.dispose();
    agent.destroy();
    rmSync(state, { recursive: true, force: true });
  }
}

await main();
