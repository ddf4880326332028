// Measures moving a large tenant between two deployments (docs/PERFORMANCE.md, "Moving a
// tenant"): a worker in workerd with its own local D1 seeded with N users (default 100,000),
// each with an Entra-sized body written through the API as a template, a 1,000-member group
// and 99 groups of 50, and a provisioning-log event per resource; then the CLI's own code
// (scripts/tenant_move.mjs) exports it page by page over HTTP and imports it into a second
// worker with its own D1, chunk by chunk. Reports time, requests, bytes, the largest page and
// chunk, and the peak memory (VmHWM) of each workerd process; checks the counts and that a
// sample of GETs is byte-identical.
//
// With --via=durable-object the tenant makes two moves: from the seeded D1 deployment into a
// deployment whose tenants live in Durable Objects (SCIM_STORAGE=durable-object: the import
// writes the directory into the tenant's object), then from there (the export reads it from
// the object) into a third deployment on D1; the two files must hold the same records, and
// the counts and GETs of the last are the first's.
//
//   bash scripts/build.sh && node bench/tenant_move.mjs [--users=100000] [--limit=1000] [--via=durable-object]
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import { startWorker, USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE } from "../tests/e2e/harness.mjs";
import { exportTenant, importTenant, CHUNK_BYTES } from "../scripts/tenant_move.mjs";

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, "").split("=")));
const USERS = Number(args.users ?? 100000);
const LIMIT = Number(args.limit ?? 1000);
const VIA = args.via ?? null;
const ADMIN = `admin-${randomBytes(12).toString("hex")}`;
const log = (s) => console.error(`[tenant-move] ${s}`);

const UUID_SQL =
  "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || " +
  "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))";

const userBody = (i) => ({
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
  [ENTERPRISE]: { employeeNumber: `${i}`, department: "Engineering", costCenter: "CC-100" },
});

/** Resets the peak resident memory of the workerd processes (Linux: clear_refs 5). */
function resetPeaks() {
  for (const p of workerdPeaks()) {
    try {
      writeFileSync(`/proc/${p.pid}/clear_refs`, "5");
    } catch {}
  }
}

/** workerd processes started by this process, with their peak resident memory (MB). */
function workerdPeaks() {
  const out = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const ppid = Number(/PPid:\s+(\d+)/.exec(status)?.[1]);
      const name = /Name:\s+(\S+)/.exec(status)?.[1];
      const kb = (k) => Math.round(Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1]) / 1024);
      if (name === "workerd" && ppid === process.pid) out.push({ pid, hwmMB: kb("VmHWM"), rssMB: kb("VmRSS") });
    } catch {}
  }
  return out;
}

async function seed(w, token) {
  const t0 = Date.now();
  const scim = (method, p, body) => w.request(method, `/t/acme/scim/v2${p}`, { token, body, contentType: "application/scim+json" });
  const r = await scim("POST", "/Users", userBody("__I__"));
  if (r.status !== 201) throw new Error(`template: ${r.status} ${r.text}`);
  const tpl = (await w.db.prepare("SELECT data FROM resources WHERE id = ?").bind(r.json.id).first()).data;
  await scim("DELETE", `/Users/${r.json.id}`);
  for (let s = 0; s < USERS; s += 10000) {
    const end = Math.min(USERS, s + 10000);
    await w.db
      .prepare(
        `WITH RECURSIVE seq(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2) ` +
          `INSERT INTO resources (tenant, id, type, data, created, modified, version) ` +
          `SELECT 'acme', ${UUID_SQL}, 'User', replace(?3, '__I__', printf('%06d', i)), ` +
          `strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), (random() & 9007199254740991) | 1 FROM seq`,
      )
      .bind(s, end, tpl)
      .run();
  }
  for (let g = 0; g < 100; g++) {
    const gr = await scim("POST", "/Groups", { schemas: [GROUP_SCHEMA], displayName: `Group ${g}` });
    const size = g === 0 ? 1000 : 50;
    await w.db
      .prepare("INSERT INTO members (tenant, group_id, member_id) SELECT 'acme', ?, id FROM resources WHERE tenant = 'acme' AND type = 'User' ORDER BY rowid LIMIT ? OFFSET ?")
      .bind(gr.json.id, size, (g * 50) % Math.max(1, USERS - size))
      .run();
  }
  await w.db
    .prepare(
      "INSERT INTO events (tenant, time, op, resource_type, resource_id, attributes, outcome, status, request_id) " +
        "SELECT 'acme', created, 'create', type, id, '[\"userName\"]', 'success', 201, lower(hex(randomblob(8))) FROM resources WHERE tenant = 'acme' AND type = 'User'",
    )
    .run();
  log(`seeded ${USERS} users, 100 groups, ${USERS + 100} events in ${Date.now() - t0} ms`);
}

/** Exports the tenant from `src` to a file and imports that into `dst`: the figures. */
async function move(src, dst, label) {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "tenant-move-")), "acme.ndjson");
  const out = createWriteStream(file);
  let largestPage = 0;
  const t0 = Date.now();
  const exp = await exportTenant({
    base: src.origin,
    token: ADMIN,
    tenant: "acme",
    limit: LIMIT,
    write: (text) => {
      largestPage = Math.max(largestPage, Buffer.byteLength(text));
      return new Promise((ok) => (out.write(text) ? ok() : out.once("drain", ok)));
    },
  });
  await new Promise((ok) => out.end(ok));
  const exportMs = Date.now() - t0;
  const bytes = statSync(file).size;
  log(`${label} export: ${exp.lines} lines, ${(bytes / 1048576).toFixed(1)} MiB in ${exp.pages} pages, ${exportMs} ms (${Math.round(exportMs / exp.pages)} ms/page; largest page ${(largestPage / 1048576).toFixed(2)} MiB)`);
  const t1 = Date.now();
  const imp = await importTenant({ base: dst.origin, token: ADMIN, tenant: "acme", file });
  const importMs = Date.now() - t1;
  if (imp.result?.done !== true) throw new Error(`${label} import did not finish: ${JSON.stringify(imp.result)}`);
  log(`${label} import: ${imp.requests} chunks of at most ${CHUNK_BYTES / 1024} KiB, ${importMs} ms (${Math.round(importMs / imp.requests)} ms/chunk), done: ${imp.result?.done}`);
  return { label, file, exportMs, pages: exp.pages, lines: exp.lines, bytes, largestPage, importMs, chunks: imp.requests, seen: imp.result.counts };
}

/** SHA-256 of an export's records: every line but the header (its time) and the trailer. */
async function recordsDigest(file) {
  const h = createHash("sha256");
  let prev = null;
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(file) })) {
    if (n++ > 1) h.update(prev + "\n");
    prev = line;
  }
  return h.digest("hex");
}

const from = await startWorker({ port: 0, adminToken: ADMIN, storage: "d1" });
const mid = VIA ? await startWorker({ port: 0, adminToken: ADMIN, storage: VIA }) : null;
const to = await startWorker({ port: 0, adminToken: ADMIN, storage: "d1" });
try {
  const admin = (w, method, p, body) => w.request(method, `/admin/api${p}`, { token: ADMIN, body });
  await admin(from, "POST", "/tenants", { id: "acme" });
  const token = (await admin(from, "POST", "/tenants/acme/tokens", {})).json.token;
  await seed(from, token);
  const idle = workerdPeaks();
  resetPeaks();
  log(`workerd resident memory before the move: ${idle.map((p) => `${p.rssMB} MB`).join(", ")} (peaks reset)`);
  const legs = mid ? [await move(from, mid, `d1 -> ${VIA}`), await move(mid, to, `${VIA} -> d1`)] : [await move(from, to, "d1 -> d1")];
  const peaks = workerdPeaks();
  log(`workerd peak resident memory during the move (VmHWM): ${peaks.map((p) => `${p.hwmMB} MB`).join(", ")}; it holds each worker's local D1 (and objects) too`);
  if (legs.length === 2) {
    const [a, b] = [await recordsDigest(legs[0].file), await recordsDigest(legs[1].file)];
    if (a !== b) throw new Error(`the ${VIA} export's records differ from D1's`);
    log(`both exports hold the same records (sha256 ${a.slice(0, 16)}…, ${legs[0].lines - 1} lines)`);
  }
  for (const sql of ["SELECT count(*) AS n FROM resources WHERE tenant = 'acme'", "SELECT count(*) AS n FROM members WHERE tenant = 'acme'", "SELECT count(*) AS n FROM events WHERE tenant = 'acme' AND outcome = 'success'"]) {
    const [a, b] = [await from.count(sql), await to.count(sql)];
    if (a !== b) throw new Error(`${sql}: ${a} vs ${b}`);
    log(`${sql.replace(/SELECT count\(\*\) AS n FROM (\w+).*/, "$1")}: ${a} = ${b}`);
  }
  const sample = ["/Users?count=100", "/Users?startIndex=50000&count=10", "/Users?filter=userName%20eq%20%22user099999%40contoso.com%22", "/Groups?count=5"];
  for (const p of sample) {
    const got = [];
    for (const w of [from, mid, to].filter(Boolean)) {
      // Each deployment names its own origin (port) in meta.location and $ref.
      got.push((await w.request("GET", `/t/acme/scim/v2${p}`, { token })).text.replaceAll(w.origin, "O"));
    }
    if (got.some((t) => t !== got[0])) throw new Error(`${p} differs after the move`);
  }
  log(`sample GETs byte-identical: ${sample.length} on ${mid ? 3 : 2} deployments`);
  console.log(JSON.stringify({ users: USERS, limit: LIMIT, via: VIA, legs: legs.map(({ file, ...l }) => l), peaks }));
} finally {
  await from.stop();
  await mid?.stop();
  await to.stop();
}
