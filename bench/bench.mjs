// The benchmark driver (run it through bench/run.sh, which builds what it needs first).
//
// For each data set size it: seeds a local D1 (SQL straight into D1, from templates the API
// itself wrote, then checked by reading seeded resources back through the API) and, for the
// Durable Object backend, the `default` tenant's object (the same SQL run on the object's
// SQLite file while workerd is stopped, from the templates that backend's API wrote, checked
// the same way), counts D1 round trips, object hops and object transactions per operation
// (Server-Timing with SCIM_DEBUG_TIMING=1), then drives load with `wrk` (a second process,
// loopback only, bounded duration) against
//   - the scim-edge worker, once with SCIM_STORAGE=d1 and once with durable-object,
//   - the ceiling workers (constant answer; one D1 point query on the same database; one
//     Durable Object hop running one SQLite point query on a copy of the tenant's object),
// each run by workerd through Miniflare's API and, separately (D1 only), through `wrangler dev`,
// and against the scim2-server peer (Python, in-memory) seeded with the same users.
// Then a many-tenants run (1,000 tenants of 100 users: one tenant's reads vs reads spread
// over all) and a noisy-neighbour run (one tenant's reads alone and while another tenant is
// written to), on both backends. Results go to OUT/results.json and OUT/results.md.
import { Miniflare } from "miniflare";
import { spawn, spawnSync } from "node:child_process";
import { Agent, request as httpRequest } from "node:http";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { migrationStatements, USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE, PATCH_OP } from "../tests/e2e/harness.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, "..");
const DB_ID = "00000000-0000-0000-0000-000000000000"; // wrangler.toml's local id: same file for both runners
const COMPAT = "2026-04-20";

// ---- options ---------------------------------------------------------------------------------
const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k, v ?? "1"];
  }),
);
const OUT = path.resolve(args.out ?? path.join(BENCH, "results", "latest"));
const WORKERS = path.resolve(args.workers ?? path.join(OUT, "workers"));
const SIZES = (args.sizes ?? "1000,100000").split(",").map(Number);
const DURATION = Number(args.duration ?? 5); // seconds per measured operation
const WARMUP = Number(args.warmup ?? 1);
const CONNECTIONS = Number(args.connections ?? 8);
const RUNNERS = (args.runners ?? "miniflare,wrangler").split(",").filter(Boolean);
const PEER = args.peer !== "0";
const POOL = Number(args.pool ?? 30000); // users seeded for add-member and DELETE
const SMALL_GROUPS = 20;
const SMALL_GROUP_SIZE = 50;
const TOKEN = randomBytes(24).toString("base64url");
const OPS = args.ops ? args.ops.split(",") : null;
// Storage backends of the main worker, measured side by side (same workerd, same ceilings).
const BACKENDS = (args.storage ?? "d1,durable-object").split(",").filter(Boolean);
for (const b of BACKENDS) if (b !== "d1" && b !== "durable-object") throw new Error(`--storage: unknown backend ${b}`);
const HAS_DO = BACKENDS.includes("durable-object");
// The many-tenants run: TENANTS tenants of TENANT_USERS users each (0: skipped).
const TENANTS = Number(args.tenants ?? 1000);
const TENANT_USERS = Number(args["tenant-users"] ?? 100);
const NOISY = args.noisy !== "0";
// The Host header that routes a request to the Durable Object backend's worker (same
// workerd, same D1 control plane; the D1 backend's worker takes every other host).
const DO_HOST = "do.bench";
const ADMIN_TOKEN = randomBytes(24).toString("base64url");
// Miniflare runs: each operation is measured ROUNDS times, each time right after the
// single-query ceiling, and the ratio is the median of the per-round ratios, so that load
// from other processes on a shared machine hits both sides of a ratio alike.
const ROUNDS = Number(args.rounds ?? 3);

mkdirSync(OUT, { recursive: true });
const log = (...a) => console.error("[bench]", ...a);

// ---- the data ------------------------------------------------------------------------------
// One Entra-provisioned user; `i` is a 6-digit index string (or a placeholder).
export function userBody(i) {
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
const groupBody = (i) => ({ schemas: [GROUP_SCHEMA], displayName: `Group ${i}`, externalId: `group-${i}` });
const fmt = (i) => String(i).padStart(6, "0");

// The Entra-style PATCH of a user (capitalised ops, filtered and URN paths, a string boolean).
const ENTRA_PATCH = {
  schemas: [PATCH_OP],
  Operations: [
    { op: "Replace", path: "displayName", value: "Patched __N__" },
    { op: "Replace", path: "name.givenName", value: "G__N__" },
    { op: "Replace", path: `${ENTERPRISE}:department`, value: "Dept __N__" },
    { op: "Add", path: 'phoneNumbers[type eq "mobile"].value', value: "+1 555 __N__" },
    { op: "Replace", path: "active", value: "True" },
  ],
};
// The same change in RFC 7644 spelling, for servers that refuse Entra's quirks.
const RFC_PATCH = {
  schemas: [PATCH_OP],
  Operations: [
    { op: "replace", path: "displayName", value: "Patched __N__" },
    { op: "replace", path: "name.givenName", value: "G__N__" },
    { op: "replace", path: `${ENTERPRISE}:department`, value: "Dept __N__" },
    { op: "add", path: "phoneNumbers", value: [{ type: "mobile", value: "+1 555 __N__" }] },
    { op: "replace", path: "active", value: true },
  ],
};
const ADD_MEMBER = { schemas: [PATCH_OP], Operations: [{ op: "Add", path: "members", value: [{ value: "__V__" }] }] };

// ---- helpers -------------------------------------------------------------------------------
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shuffle = (a) => {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
};
const enc = encodeURIComponent;

/**
 * The harness's own requests (seeding, probes, validation; never the measured load, which is
 * wrk's) open a connection each. Node's default agent keeps idle sockets for reuse, and one
 * that workerd has closed meanwhile (say after seconds of seeding through D1) fails as
 * "socket hang up" on its next request. A 1,000-tenant run stopped on that error once, right
 * after such a pause; this is the likely cause.
 */
const HARNESS_AGENT = new Agent({ keepAlive: false });

/** One request; `host` sets the Host header (fetch cannot), `token` another bearer token. */
function http(base, method, p, body, { host, token = TOKEN } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  if (payload) {
    headers["Content-Type"] = "application/scim+json";
    headers["Content-Length"] = String(payload.length);
  }
  if (host) headers.Host = host;
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${p}`, { method, headers, agent: HARNESS_AGENT }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {}
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) h.set(k, Array.isArray(v) ? v.join(", ") : v);
        resolve({ status: res.statusCode, headers: h, text, json });
      });
    });
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}
/** `http` against the Durable Object backend's worker. */
const httpDo = (base, method, p, body, opts = {}) => http(base, method, p, body, { ...opts, host: DO_HOST });

/** A built worker's entry module: worker/entry.mjs around worker-build's index.js, if the
 * crate has one (what wrangler.toml deploys), else index.js itself. */
function entryOf(kind) {
  const wrapped = path.join(WORKERS, kind, "entry.mjs");
  return existsSync(wrapped) ? wrapped : path.join(WORKERS, kind, "index.js");
}
const MODULE_RULES = [
  { type: "ESModule", include: ["**/*.js"] },
  { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
];

/** CPU time (user + system, all threads) a process has used so far, in microseconds. */
function cpuMicros(pid) {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch {
    return null;
  }
}
const CLK_TCK = 100;
/** The server process being measured (one at a time). */
let SERVER_PID = null;
/** The first descendant of `pid` whose command name is `name` (workerd under Node/wrangler). */
function descendant(pid, name) {
  const kids = spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
  for (const k of kids) {
    try {
      if (readFileSync(`/proc/${k}/comm`, "utf8").trim() === name) return k;
    } catch {}
  }
  for (const k of kids) {
    const d = descendant(k, name);
    if (d) return d;
  }
  return null;
}

// ---- servers ---------------------------------------------------------------------------------
/** A worker (main, ceiling-const, ceiling-d1) in workerd through Miniflare's API. */
async function startMiniflare(kind, state, { debug = false } = {}) {
  const port = await freePort();
  const bindings = { SCIM_TOKEN: TOKEN };
  if (debug) bindings.SCIM_DEBUG_TIMING = "1";
  const mf = new Miniflare({
    modules: true,
    scriptPath: entryOf(kind),
    modulesRoot: path.join(WORKERS, kind),
    modulesRules: MODULE_RULES,
    compatibilityDate: COMPAT,
    d1Databases: { DB: DB_ID },
    d1Persist: path.join(state, "v3", "d1"),
    bindings,
    host: "127.0.0.1",
    port,
  });
  const url = await mf.ready;
  return {
    origin: url.origin,
    db: await mf.getD1Database("DB"),
    pid: (SERVER_PID = descendant(process.pid, "workerd")),
    stop: () => mf.dispose(),
  };
}

/**
 * Every worker in one workerd through Miniflare's API: scim-edge twice, with
 * `SCIM_STORAGE=d1` (`/scim/*`, `/admin/*`) and with `durable-object` (the Host `do.bench`),
 * and the ceilings by path (`/ceiling-d1*`, `/ceiling-do*`, `/ceiling-const*`). They share
 * the D1 database (the control plane of both backends, the directory of the D1 one), so a
 * ceiling and an operation can be measured seconds apart without restarting anything.
 * Objects persist under `<state>/do/<worker>-<class>/<object id>.sqlite`.
 */
async function startMiniflareAll(state, { debug = false, ceilings = true } = {}) {
  const port = await freePort();
  const worker = (kind, name, routes, extra = {}) => ({
    name,
    modules: true,
    scriptPath: entryOf(kind),
    modulesRoot: path.join(WORKERS, kind),
    modulesRules: MODULE_RULES,
    compatibilityDate: COMPAT,
    d1Databases: { DB: DB_ID },
    routes,
    ...extra,
  });
  const mainBindings = (storage) => ({
    SCIM_TOKEN: TOKEN,
    ADMIN_TOKEN,
    SCIM_STORAGE: storage,
    ...(debug ? { SCIM_DEBUG_TIMING: "1" } : {}),
  });
  const workers = [worker("main", "main", ["*/scim/*", "*/admin/*", "*/t/*"], { bindings: mainBindings("d1") })];
  if (HAS_DO) {
    workers.push(worker("main", "main-do", [`${DO_HOST}/*`], {
      bindings: mainBindings("durable-object"),
      durableObjects: { TENANT_STORE: { className: "TenantStore", useSQLite: true } },
    }));
  }
  if (ceilings) {
    workers.push(worker("ceiling-d1", "ceiling-d1", ["*/ceiling-d1*"]));
    workers.push(worker("ceiling-const", "ceiling-const", ["*/ceiling-const*"]));
    if (HAS_DO) {
      workers.push(worker("ceiling-do", "ceiling-do", ["*/ceiling-do*"], {
        durableObjects: { CEILING_STORE: { className: "CeilingStore", useSQLite: true } },
      }));
    }
  }
  const mf = new Miniflare({
    host: "127.0.0.1",
    port,
    d1Persist: path.join(state, "v3", "d1"),
    durableObjectsPersist: path.join(state, "do"),
    workers,
  });
  const url = await mf.ready;
  const objectFile = async (workerName, binding, className, name) => {
    const ns = await mf.getDurableObjectNamespace(binding, workerName);
    return path.join(state, "do", `${workerName}-${className}`, `${ns.idFromName(name).toString()}.sqlite`);
  };
  return {
    origin: url.origin,
    db: await mf.getD1Database("DB", "main"),
    pid: (SERVER_PID = descendant(process.pid, "workerd")),
    /** The SQLite file of a tenant's object (the Durable Object backend). */
    tenantFile: (tenant) => objectFile("main-do", "TENANT_STORE", "TenantStore", tenant),
    ceilingFile: () => objectFile("ceiling-do", "CEILING_STORE", "CeilingStore", "default"),
    stop: () => mf.dispose(),
  };
}

/** The same worker through `wrangler dev` (adds wrangler's Node proxy in front of workerd). */
async function startWrangler(kind, state) {
  const port = await freePort();
  const dir = path.join(OUT, "wrangler", kind);
  mkdirSync(dir, { recursive: true });
  const config = path.join(dir, "wrangler.toml");
  writeFileSync(
    config,
    [
      `name = "bench-${kind}"`,
      `main = ${JSON.stringify(entryOf(kind))}`,
      `compatibility_date = "${COMPAT}"`,
      `[[d1_databases]]`,
      `binding = "DB"`,
      `database_name = "scim"`,
      `database_id = "${DB_ID}"`,
      "",
    ].join("\n"),
  );
  const child = spawn(
    path.join(ROOT, "node_modules/.bin/wrangler"),
    ["dev", "--config", config, "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state,
      "--var", `SCIM_TOKEN:${TOKEN}`, "--show-interactive-dev-session=false", "--log-level", "warn"],
    { cwd: dir, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited: ${out}`);
    try {
      await fetch(`${origin}/`);
      break;
    } catch {}
    if (Date.now() > deadline) {
      child.kill("SIGTERM");
      throw new Error(`wrangler dev did not start: ${out}`);
    }
    await sleep(250);
  }
  return {
    origin,
    pid: (SERVER_PID = descendant(child.pid, "workerd")),
    stop: async () => {
      child.kill("SIGTERM");
      for (let i = 0; i < 40 && child.exitCode === null; i++) await sleep(100);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

/** scim2-server (PyPI), seeded in-process with the same bodies; see peer/serve.py. */
async function startPeer(seedFile) {
  const port = await freePort();
  const idsFile = path.join(OUT, "peer-ids.json");
  const py = path.join(BENCH, ".venv/bin/python");
  const child = spawn(py, [path.join(BENCH, "peer/serve.py"), String(port), TOKEN, seedFile, idsFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stderr.on("data", (d) => (out += d));
  const origin = await new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`peer did not start: ${out}`)), 600_000);
    child.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/READY (http:\/\/\S+)\/v2/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`peer exited ${code}: ${out}`)));
  });
  return {
    origin,
    pid: (SERVER_PID = child.pid),
    ids: JSON.parse(readFileSync(idsFile, "utf8")),
    stop: async () => {
      child.kill("SIGTERM");
      for (let i = 0; i < 40 && child.exitCode === null; i++) await sleep(100);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

// ---- load ----------------------------------------------------------------------------------
let fileSeq = 0;
/** Requests per second: whole numbers, but 3 significant digits below 10. */
const rate = (n, us) => {
  const r = (n / us) * 1e6;
  return r >= 10 ? Math.round(r) : +r.toPrecision(3);
};
const ratio = (a, b, digits = 2) => (b > 0 ? `${(a / b).toFixed(digits)}x` : "∞");
function writeLines(lines) {
  const f = path.join(OUT, "tmp", `lines-${fileSeq++}.txt`);
  mkdirSync(path.dirname(f), { recursive: true });
  writeFileSync(f, lines.join("\n") + "\n");
  return f;
}
function writeBody(obj) {
  const f = path.join(OUT, "tmp", `body-${fileSeq++}.json`);
  mkdirSync(path.dirname(f), { recursive: true });
  writeFileSync(f, JSON.stringify(obj));
  return f;
}

/** wrk runs so far: each run's default prefix for `__N__` is its own. */
let wrkRuns = 0;

/** Runs wrk once: `{ rps, p50_ms, p99_ms, requests, errors }`. Asynchronously: Miniflare
 * forwards workerd's log output through this process, so blocking here would stall workerd. */
async function wrk(origin, { method = "GET", lines, body = "-", mode = "cycle", seconds = DURATION, prefix = null, pid = null, host = "-", connections = CONNECTIONS, pace = "-" }) {
  pid ??= SERVER_PID;
  // `__N__` in a body becomes prefix + wrk's counter, which starts at 1 in every run: without
  // a prefix of its own, a run would repeat the userNames an earlier run stored.
  prefix ??= `r${wrkRuns++}-${Date.now() % 100000}-`;
  const cpu0 = cpuMicros(pid);
  const child = spawn(
    "timeout",
    [String(seconds + 30), "wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "-s",
      path.join(BENCH, "load.lua"), origin, "--", TOKEN, mode, method, lines, body, prefix, host, String(pace)],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const status = await new Promise((resolve) => child.on("close", resolve));
  const m = stdout.match(/WRKJSON (\{.*\})/);
  if (!m) throw new Error(`wrk failed (${status}): ${stdout} ${stderr}`);
  const s = JSON.parse(m[1]);
  const errors = s.status_errors + s.connect_errors + s.read_errors + s.write_errors + s.timeouts;
  const cpu1 = cpuMicros(pid);
  return {
    // Server CPU per request (all its threads): robust to other load on a shared machine.
    cpu_us: cpu0 !== null && cpu1 !== null && s.requests > 0 ? Math.round((cpu1 - cpu0) / s.requests) : null,
    rps: rate(s.requests, s.duration_us),
    p50_ms: +(s.p50_us / 1000).toFixed(2),
    p99_ms: +(s.p99_us / 1000).toFixed(2),
    requests: s.requests,
    errors,
  };
}

async function measure(label, origin, spec) {
  if (WARMUP > 0 && spec.mode !== "once" && !spec.noWarmup) await wrk(origin, { ...spec, seconds: WARMUP });
  const r = await wrk(origin, spec);
  log(`${label}: ${r.rps} req/s, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, CPU/req ${r.cpu_us} µs, ${r.requests} requests, ${r.errors} errors`);
  return r;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---- seeding -------------------------------------------------------------------------------
const UUID_SQL =
  "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || " +
  "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))";

/** Inserts `count` resources from `template` (`__I__` → 6-digit index from `start`), in chunks. */
async function insertFromTemplate(db, type, template, start, count) {
  const CHUNK = 10000;
  for (let s = start; s < start + count; s += CHUNK) {
    const end = Math.min(start + count, s + CHUNK);
    await db
      .prepare(
        `WITH RECURSIVE seq(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2) ` +
          `INSERT INTO resources (tenant, id, type, data, created, modified, version) ` +
          `SELECT 'default', ${UUID_SQL}, ?3, replace(?4, '__I__', printf('%06d', i)), ` +
          `strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ` +
          `(random() & 9007199254740991) | 1 FROM seq`,
      )
      .bind(s, end, type, template)
      .run();
  }
}

// ---- seeding a Durable Object ------------------------------------------------------------------
// An object's database is a SQLite file of workerd's (`<state>/do/<worker>-<class>/<id>.sqlite`).
// With workerd stopped, the D1 seed's statements run on it through the sqlite3 shell: the same
// rows as D1 gets (and as the API writes: validated through the API afterwards), in the schema
// the object made itself on its first request. The shipped worker has no seeding path.
const lit = (v) => (typeof v === "number" ? String(v) : `'${String(v).replaceAll("'", "''")}'`);

/** Runs `sql` on a SQLite file with the sqlite3 shell; the last statement's rows as JSON. */
function sqliteRun(file, sql, { readonly = false } = {}) {
  const r = spawnSync("sqlite3", [...(readonly ? ["-readonly"] : []), "-json", "-bail", file], { input: sql, encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`sqlite3 ${file}: ${r.stderr}`);
  // One JSON array per statement that returned rows: the last one is wanted.
  const parts = r.stdout.trim().split(/\]\s*\n\[/);
  const last = parts[parts.length - 1];
  if (!last) return [];
  return JSON.parse(`${last.startsWith("[") ? "" : "["}${last}${last.endsWith("]") ? "" : "]"}`);
}

/** `insertFromTemplate`'s statement with literals, for the sqlite3 shell. */
function insertTemplateSql(tenant, type, template, start, count) {
  return (
    `WITH RECURSIVE seq(i) AS (SELECT ${start} UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ${start + count}) ` +
    `INSERT INTO resources (tenant, id, type, data, created, modified, version) ` +
    `SELECT ${lit(tenant)}, ${UUID_SQL}, ${lit(type)}, replace(${lit(template)}, '__I__', printf('%06d', i)), ` +
    `strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ` +
    `(random() & 9007199254740991) | 1 FROM seq;\n`
  );
}

/** Folds the object's write-ahead log into its file (workerd stopped), so it can be copied. */
const checkpoint = (file) => sqliteRun(file, "PRAGMA wal_checkpoint(TRUNCATE);");

/**
 * The `default` tenant's object gets what `seed` gave D1: `size` users and the groups (one
 * with every user, 20 of 50), from the templates the object's API wrote. workerd is stopped.
 */
function seedObjectFile(file, size, userTpl, groupTpl) {
  const t0 = Date.now();
  let sql = "BEGIN;\n";
  for (let s = 0; s < size; s += 10000) sql += insertTemplateSql("default", "User", userTpl, s, Math.min(10000, size - s));
  sql += insertTemplateSql("default", "Group", groupTpl, 0, 1 + SMALL_GROUPS);
  sql += "CREATE TEMP TABLE g AS SELECT id, row_number() OVER (ORDER BY rowid) - 1 AS n FROM resources WHERE type = 'Group';\n";
  sql += "INSERT INTO members (tenant, group_id, member_id) SELECT 'default', (SELECT id FROM g WHERE n = 0), id FROM resources WHERE tenant = 'default' AND type = 'User' ORDER BY rowid LIMIT 100000;\n";
  for (let g = 1; g <= SMALL_GROUPS; g++) {
    const off = ((g - 1) * SMALL_GROUP_SIZE) % Math.max(1, size - SMALL_GROUP_SIZE);
    sql += `INSERT INTO members (tenant, group_id, member_id) SELECT 'default', (SELECT id FROM g WHERE n = ${g}), id FROM resources WHERE tenant = 'default' AND type = 'User' ORDER BY rowid LIMIT ${SMALL_GROUP_SIZE} OFFSET ${off};\n`;
  }
  sql += "COMMIT;\nANALYZE;\n";
  sql += "SELECT (SELECT count(*) FROM resources WHERE type = 'User') AS users, (SELECT count(*) FROM members WHERE group_id = (SELECT id FROM g WHERE n = 0)) AS big;\n";
  const [n] = sqliteRun(file, sql);
  const users = sqliteRun(file, "SELECT id, user_name, external_id FROM resources WHERE type = 'User' ORDER BY rowid;");
  const groups = sqliteRun(file, "SELECT id FROM resources WHERE type = 'Group' ORDER BY rowid;").map((r) => r.id);
  log(`seeded the tenant object: ${n.users} users, ${groups.length} groups (large group: ${n.big} members) in ${Date.now() - t0} ms`);
  return { size, users, groups, big: groups[0], userTpl, groupTpl };
}

/** `seedPool` for an object (workerd stopped): `count` more users; their ids. */
function seedObjectPool(file, userTpl, start, count) {
  const before = sqliteRun(file, "SELECT coalesce(max(rowid), 0) AS m FROM resources;")[0].m;
  let sql = "BEGIN;\n";
  for (let s = start; s < start + count; s += 10000) sql += insertTemplateSql("default", "User", userTpl, s, Math.min(10000, start + count - s));
  sql += `COMMIT;\nSELECT id FROM resources WHERE rowid > ${before} ORDER BY rowid;\n`;
  return sqliteRun(file, sql).map((r) => r.id);
}

/** What the API stores for `body`: POSTs it, reads the row, deletes it again. */
async function storedTemplate(w, endpoint, body) {
  const r = await http(w.origin, "POST", `/scim/v2/${endpoint}`, body);
  if (r.status !== 201) throw new Error(`template POST ${endpoint}: ${r.status} ${r.text}`);
  const row = await w.db.prepare("SELECT data FROM resources WHERE id = ?").bind(r.json.id).first();
  const del = await http(w.origin, "DELETE", `/scim/v2/${endpoint}/${r.json.id}`);
  if (del.status !== 204) throw new Error(`template DELETE: ${del.status}`);
  return row.data;
}

async function seed(w, size) {
  const t0 = Date.now();
  for (const sql of migrationStatements()) await w.db.prepare(sql).run();
  const userTpl = await storedTemplate(w, "Users", userBody("__I__"));
  const groupTpl = await storedTemplate(w, "Groups", groupBody("__I__"));
  await insertFromTemplate(w.db, "User", userTpl, 0, size);
  // One large group with every user (up to 100,000 members) and small ones of 50.
  await insertFromTemplate(w.db, "Group", groupTpl, 0, 1 + SMALL_GROUPS);
  const groups = (await w.db.prepare("SELECT id FROM resources WHERE type = 'Group' ORDER BY rowid").all()).results.map((r) => r.id);
  const big = groups[0];
  await w.db
    .prepare("INSERT INTO members (tenant, group_id, member_id) SELECT 'default', ?, id FROM resources WHERE tenant = 'default' AND type = 'User' ORDER BY rowid LIMIT 100000")
    .bind(big)
    .run();
  for (let g = 1; g < groups.length; g++) {
    await w.db
      .prepare("INSERT INTO members (tenant, group_id, member_id) SELECT 'default', ?, id FROM resources WHERE tenant = 'default' AND type = 'User' ORDER BY rowid LIMIT ? OFFSET ?")
      .bind(groups[g], SMALL_GROUP_SIZE, ((g - 1) * SMALL_GROUP_SIZE) % Math.max(1, size - SMALL_GROUP_SIZE))
      .run();
  }
  const users = (await w.db.prepare("SELECT id, user_name, external_id FROM resources WHERE type = 'User' ORDER BY rowid").all()).results;
  await w.db.prepare("ANALYZE").run().catch(() => {});
  const memberRows = await w.db.prepare("SELECT count(*) AS n FROM members WHERE group_id = ?").bind(big).first();
  log(`seeded ${users.length} users, ${groups.length} groups (large group: ${memberRows.n} members) in ${Date.now() - t0} ms`);
  return { size, users, groups, big, userTpl, groupTpl };
}

/** Seeds `count` more users for add-member and DELETE; returns their ids. */
async function seedPool(db, userTpl, start, count) {
  const before = (await db.prepare("SELECT coalesce(max(rowid), 0) AS m FROM resources").first()).m;
  await insertFromTemplate(db, "User", userTpl, start, count);
  return (await db.prepare("SELECT id FROM resources WHERE rowid > ? ORDER BY rowid").bind(before).all()).results.map((r) => r.id);
}

/** The D1 backend as `validate` sees it: its API, and a row read straight from D1. */
const d1View = (w) => ({
  name: "d1",
  call: (method, p, body) => http(w.origin, method, p, body),
  first: (sql, ...params) => w.db.prepare(sql).bind(...params).first(),
});
/** The Durable Object backend: its API, and a row read from the object's file (read-only, live). */
const objectView = (w, file) => ({
  name: "durable-object",
  call: (method, p, body) => httpDo(w.origin, method, p, body),
  first: async (sql, ...params) => {
    let i = 0;
    const text = sql.replace(/\?/g, () => lit(params[i++]));
    return sqliteRun(file, `${text};`, { readonly: true })[0] ?? null;
  },
});

/** Seeded rows must be what the API writes: compares a twin written through the API. */
async function validate(w, s, backend = d1View(w)) {
  const { call, first } = backend;
  const twin = fmt(s.size + 7);
  const created = await call("POST", "/scim/v2/Users", userBody(twin));
  if (created.status !== 201) throw new Error(`twin POST: ${created.status} ${created.text}`);
  const cols = "data, typeof(id) AS t_id, length(id) AS l_id, typeof(created) AS t_c, length(created) AS l_c, typeof(modified) AS t_m, typeof(version) AS t_v, version > 0 AS v_pos, user_name, external_id, display_name";
  const apiRow = await first(`SELECT ${cols} FROM resources WHERE id = ?`, created.json.id);
  if (apiRow.data !== s.userTpl.replaceAll("__I__", twin)) throw new Error(`seed template differs from API write:\n${apiRow.data}\n${s.userTpl}`);
  const norm = (j, i) => {
    const o = JSON.parse(JSON.stringify(j).replaceAll(i, "__I__"));
    delete o.id;
    delete o.meta;
    return o;
  };
  const twinGet = norm((await call("GET", `/scim/v2/Users/${created.json.id}`)).json, twin);
  // Not user 000000: `norm` replaces its index, "000000", inside its externalId's zeros too.
  const sample = shuffle(s.users.filter((u) => !u.user_name.startsWith("user000000@"))).slice(0, 25);
  for (const u of sample) {
    const i = u.user_name.match(/^user(\d{6})@/)[1];
    const row = await first(`SELECT ${cols} FROM resources WHERE id = ?`, u.id);
    for (const k of Object.keys(row)) {
      if (k === "data" || k === "user_name" || k === "external_id" || k === "display_name") continue;
      if (row[k] !== apiRow[k]) throw new Error(`seeded column ${k} differs: ${row[k]} vs ${apiRow[k]}`);
    }
    const byId = await call("GET", `/scim/v2/Users/${u.id}`);
    if (byId.status !== 200) throw new Error(`GET seeded user: ${byId.status} ${byId.text}`);
    const got = norm(byId.json, i);
    delete got.groups; // seeded users are group members, the twin is not
    const want = { ...twinGet };
    delete want.groups;
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`seeded user reads back differently:\n${JSON.stringify(got)}\n${JSON.stringify(want)}`);
    const f = await call("GET", `/scim/v2/Users?filter=${enc(`userName eq "${u.user_name}"`)}`);
    if (f.json?.totalResults !== 1 || f.json.Resources[0].id !== u.id) throw new Error(`filter on seeded userName: ${f.text}`);
    const x = await call("GET", `/scim/v2/Users?filter=${enc(`externalId eq "${u.external_id}"`)}`);
    if (x.json?.totalResults !== 1 || x.json.Resources[0].id !== u.id) throw new Error(`filter on seeded externalId: ${x.text}`);
  }
  const g = await call("GET", `/scim/v2/Groups/${s.big}?attributes=displayName`);
  if (g.status !== 200 || !/^Group \d{6}$/.test(g.json.displayName)) throw new Error(`GET seeded group: ${g.text}`);
  const u0 = await call("GET", `/scim/v2/Users/${s.users[0].id}?attributes=groups`);
  if (!u0.json.groups?.some((x) => x.value === s.big)) throw new Error(`seeded membership not visible: ${u0.text}`);
  const gt = await call("POST", "/scim/v2/Groups", { ...groupBody(twin), members: [{ value: s.users[0].id }] });
  const gRow = await first("SELECT data FROM resources WHERE id = ?", gt.json.id);
  if (gRow.data !== s.groupTpl.replaceAll("__I__", twin)) throw new Error("group template differs from API write");
  await call("DELETE", `/scim/v2/Groups/${gt.json.id}`);
  await call("DELETE", `/scim/v2/Users/${created.json.id}`);
  log(`validated (${backend.name}): API-written twin byte-identical to the seed template; ${sample.length} seeded users read back by id, userName and externalId`);
}

// ---- operations ------------------------------------------------------------------------------
const OP_NAMES = ["get", "userName", "externalId", "list100", "post", "patch", "addMember", "delete"];
const OP_LABELS = {
  get: "GET /Users/{id}",
  userName: 'GET /Users?filter=userName eq "…"',
  externalId: 'GET /Users?filter=externalId eq "…"',
  list100: "GET /Users?startIndex=1&count=100",
  post: "POST /Users",
  patch: "PATCH /Users/{id} (Entra)",
  addMember: "PATCH /Groups/{large} add 1 member",
  delete: "DELETE /Users/{id}",
};
const wanted = (op) => !OPS || OPS.includes(op);

/** Request specs per operation for a server whose SCIM base path is `base`. */
function specs(base, users, bigGroup, patchBody, host = "-") {
  const sample = shuffle([...users]).slice(0, 20000);
  return {
    get: { host, lines: writeLines(sample.map((u) => `${base}/Users/${u.id}`)) },
    userName: { host, lines: writeLines(sample.map((u) => `${base}/Users?filter=${enc(`userName eq "${u.userName}"`)}`)) },
    externalId: { host, lines: writeLines(sample.map((u) => `${base}/Users?filter=${enc(`externalId eq "${u.externalId}"`)}`)) },
    list100: { host, lines: writeLines([`${base}/Users?startIndex=1&count=100`]) },
    post: { host, method: "POST", lines: writeLines([`${base}/Users`]), body: writeBody(userBody("__N__")) },
    patch: { host, method: "PATCH", lines: writeLines(sample.map((u) => `${base}/Users/${u.id}`)), body: writeBody(patchBody) },
    addMember: (pool) => ({ host, method: "PATCH", lines: writeLines(pool.map((id) => `${base}/Groups/${bigGroup}\t${id}`)), body: writeBody(ADD_MEMBER) }),
    delete: (pool) => ({ host, method: "DELETE", mode: "once", lines: writeLines(pool.map((id) => `${base}/Users/${id}`)) }),
  };
}
const seededUsers = (s) => s.users.map((u) => ({ id: u.id, userName: u.user_name, externalId: u.external_id }));

/** The costs one response's Server-Timing names (SCIM_DEBUG_TIMING=1). */
function costs(headers) {
  const st = headers.get("server-timing") ?? "";
  const num = (re) => {
    const m = st.match(re);
    return m ? Number(m[1]) : null;
  };
  return {
    // D1 round trips the worker made (with durable-object: the control plane's, if any).
    roundTrips: num(/(?:^|,\s*)d1;desc="(\d+) round trips?"/),
    d1_ms: num(/(?:^|,\s*)d1;desc="[^"]*";dur=([\d.]+)/),
    // Requests the worker handed to tenants' objects, and the SQLite transactions run there.
    hops: num(/(?:^|,\s*)do;desc="(\d+) hops?"/),
    objectTx: num(/do-sql;desc="(\d+) transactions?"/),
  };
}

/**
 * One request per operation with SCIM_DEBUG_TIMING=1; reads the D1 round trips, object hops
 * and object transactions it made. `pool` holds two users who may be added and deleted.
 */
async function roundTrips(call, s, pool) {
  const u = s.users[Math.floor(s.users.length / 2)];
  const reqs = {
    get: ["GET", `/Users/${u.id}`],
    userName: ["GET", `/Users?filter=${enc(`userName eq "${u.user_name}"`)}`],
    externalId: ["GET", `/Users?filter=${enc(`externalId eq "${u.external_id}"`)}`],
    list100: ["GET", "/Users?startIndex=1&count=100"],
    post: ["POST", "/Users", JSON.parse(JSON.stringify(userBody("__N__")).replaceAll("__N__", "rt-probe"))],
    patch: ["PATCH", `/Users/${u.id}`, JSON.parse(JSON.stringify(ENTRA_PATCH).replaceAll("__N__", "rt"))],
    addMember: ["PATCH", `/Groups/${s.big}`, JSON.parse(JSON.stringify(ADD_MEMBER).replaceAll("__V__", pool[0]))],
    delete: ["DELETE", `/Users/${pool[1]}`],
  };
  const out = {};
  // Tokens and tenant settings are cached per isolate for seconds: a first request after a
  // cache expiry would count their D1 reads, which steady load does not pay.
  await call("GET", "/scim/v2/Users?count=0");
  for (const op of OP_NAMES) {
    const [method, p, body] = reqs[op];
    const r = await call(method, `/scim/v2${p}`, body);
    out[op] = { status: r.status, ...costs(r.headers) };
    if (r.status >= 400) throw new Error(`round-trip probe ${op}: ${r.status} ${r.text}`);
    if (op === "post") out.probeUser = r.json.id;
  }
  log(`round trips: ${OP_NAMES.map((op) => `${op}=${out[op].roundTrips}${out[op].hops != null ? `/${out[op].hops} hop/${out[op].objectTx} tx` : ""}`).join(" ")}`);
  return out;
}

/** The D1 backend's probe; its writes are undone in SQL, so the data set stays the seeded one. */
async function roundTripsD1(w, s) {
  const pool = await seedPool(w.db, s.userTpl, 900000, 2);
  const out = await roundTrips((m, p, b) => http(w.origin, m, p, b), s, pool);
  await w.db.prepare("DELETE FROM resources WHERE type = 'User' AND user_name LIKE 'userrt-probe%'").run();
  await w.db.prepare("DELETE FROM resources WHERE id = ?").bind(pool[0]).run();
  delete out.probeUser;
  return out;
}

/** The Durable Object backend's probe: its two pool users and its clean-up go through the API. */
async function roundTripsObject(w, s) {
  const call = (m, p, b) => httpDo(w.origin, m, p, b);
  const pool = [];
  for (const i of ["rt-pool-a", "rt-pool-b"]) pool.push((await call("POST", "/scim/v2/Users", userBody(i))).json.id);
  const out = await roundTrips(call, s, pool);
  for (const id of [out.probeUser, pool[0]]) {
    const d = await call("DELETE", `/scim/v2/Users/${id}`);
    if (d.status !== 204) throw new Error(`probe clean-up: ${d.status} ${d.text}`);
  }
  delete out.probeUser;
  return out;
}

/**
 * The templates the Durable Object backend's API writes (they must equal D1's: one code path),
 * read from the object's file while it runs; the template resources are deleted again.
 */
async function objectTemplates(w, d1) {
  const file = await w.tenantFile("default");
  const out = { file };
  for (const [key, endpoint, body] of [["userTpl", "Users", userBody("__I__")], ["groupTpl", "Groups", groupBody("__I__")]]) {
    const r = await httpDo(w.origin, "POST", `/scim/v2/${endpoint}`, body);
    if (r.status !== 201) throw new Error(`object template POST ${endpoint}: ${r.status} ${r.text}`);
    out[key] = sqliteRun(file, `SELECT data FROM resources WHERE id = ${lit(r.json.id)};`, { readonly: true })[0]?.data;
    const del = await httpDo(w.origin, "DELETE", `/scim/v2/${endpoint}/${r.json.id}`);
    if (del.status !== 204) throw new Error(`object template DELETE: ${del.status}`);
    if (d1 && out[key] !== d1[key]) throw new Error(`the object stores ${endpoint} differently from D1:\n${out[key]}\n${d1[key]}`);
  }
  // The ceiling's object exists once it has been asked (its file then gets the tenant's copy).
  await fetch(`${w.origin}/ceiling-do?id=none`).then((r) => r.text());
  out.ceilingFile = await w.ceilingFile();
  return out;
}

/**
 * ROUNDS × (ceiling-d1, ceiling-do, then the operation on each backend); `specFor(backend,
 * round)` gives a backend's spec (write operations get a fresh slice of their pool each
 * round). Per backend: the median round, and the median per-round ratio to each ceiling
 * (and of CPU per request), so load from other processes hits both sides of a ratio alike.
 */
async function pairedAll(label, origin, ceilingSpecs, specFor) {
  const ceil = { d1: [], do: [], doWrite: [], d1Page: [] };
  const ops = Object.fromEntries(BACKENDS.map((b) => [b, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [k, spec] of Object.entries(ceilingSpecs)) {
      // A ceiling that answers errors (say a write ceiling's INSERT failing on the unique
      // index) measures the failure instead.
      const c = await wrk(origin, spec);
      if (c.errors > 0) throw new Error(`${label}: ceiling ${k} answered ${c.errors} errors of ${c.requests} requests`);
      ceil[k].push(c);
    }
    for (const b of BACKENDS) {
      const spec = specFor(b, round);
      if (WARMUP > 0 && round === 0 && spec.mode !== "once") await wrk(origin, { ...spec, seconds: WARMUP });
      ops[b].push(await wrk(origin, spec));
    }
  }
  const out = { ceilingD1: median(ceil.d1.map((c) => c.rps)), ceilingDO: ceil.do.length ? median(ceil.do.map((c) => c.rps)) : null };
  if (ceil.doWrite.length) {
    out.ceilingDOWrite = median(ceil.doWrite.map((c) => c.rps));
    out.ceilingDOWriteCpu = median(ceil.doWrite.map((c) => c.cpu_us).filter(Boolean));
  }
  if (ceil.d1Page.length) {
    out.ceilingD1Page = median(ceil.d1Page.map((c) => c.rps));
    out.ceilingD1PageCpu = median(ceil.d1Page.map((c) => c.cpu_us).filter(Boolean));
    out.ceilingD1PageToPoint = +median(ceil.d1Page.map((c, i) => (c.cpu_us && ceil.d1[i]?.cpu_us ? ceil.d1[i].cpu_us / c.cpu_us : 0))).toFixed(3);
  }
  for (const b of BACKENDS) {
    const o = ops[b];
    const mid = [...o].sort((x, y) => x.rps - y.rps)[Math.floor(o.length / 2)];
    const ratioTo = (cs) => (cs.length ? +median(o.map((x, i) => (cs[i].rps > 0 ? x.rps / cs[i].rps : 0))).toFixed(3) : null);
    const cpuTo = (cs) => {
      const pairs = o.map((x, i) => [cs[i]?.cpu_us, x.cpu_us]).filter(([c, x]) => c && x);
      return pairs.length ? +median(pairs.map(([c, x]) => c / x)).toFixed(3) : null;
    };
    out[b] = {
      ...mid,
      errors: o.reduce((n, x) => n + x.errors, 0),
      rounds: o.map((x) => x.rps),
      ratioD1: ratioTo(ceil.d1),
      ratioDO: ratioTo(ceil.do),
      // A ceiling's server CPU per request over the operation's: a throughput ratio for a
      // server with a core to itself, which load from other processes does not move.
      cpuRatioD1: cpuTo(ceil.d1),
      cpuRatioDO: cpuTo(ceil.do),
      // POST and PATCH: against the write ceiling (one INSERT of a row in the object).
      ...(ceil.doWrite.length ? { ratioDOWrite: ratioTo(ceil.doWrite), cpuRatioDOWrite: cpuTo(ceil.doWrite) } : {}),
      // The list page only: against the page floor (ceiling-d1 running the page's statement).
      ...(ceil.d1Page.length ? { ratioD1Page: ratioTo(ceil.d1Page), cpuRatioD1Page: cpuTo(ceil.d1Page) } : {}),
    };
    log(`${label} [${b}]: ${mid.rps} req/s (rounds ${out[b].rounds.join(", ")}), p50 ${mid.p50_ms} ms, ÷ ceiling-d1 ${out[b].ratioD1}x (CPU ${out[b].cpuRatioD1}x), ÷ ceiling-do ${out[b].ratioDO}x (CPU ${out[b].cpuRatioDO}x)${out[b].cpuRatioDOWrite ? `, ÷ ceiling-do write ${out[b].ratioDOWrite}x (CPU ${out[b].cpuRatioDOWrite}x)` : ""}${out[b].cpuRatioD1Page ? `, ÷ page floor ${out[b].ratioD1Page}x (CPU ${out[b].cpuRatioD1Page}x)` : ""}; ${out[b].errors} errors`);
  }
  log(`${label}: ceilings d1 ${ceil.d1.map((c) => c.rps).join(", ")}${ceil.do.length ? `; do ${ceil.do.map((c) => c.rps).join(", ")}` : ""}${ceil.doWrite.length ? `; do write ${ceil.doWrite.map((c) => `${c.rps} req/s ${c.cpu_us} µs`).join(", ")}` : ""}${ceil.d1Page.length ? `; d1 page floor ${ceil.d1Page.map((c) => `${c.rps} req/s ${c.cpu_us} µs`).join(", ")}` : ""}`);
  return out;
}

/**
 * Ceilings and scim-edge (both backends) in one Miniflare, each operation paired with the
 * ceilings. `so` is the object's seed (durable-object), whose pool is seeded with workerd
 * stopped, so the workers restart before add-member and DELETE.
 */
async function runMiniflare(state, s, so, poolStart) {
  const res = {};
  const users = { d1: seededUsers(s), "durable-object": so ? seededUsers(so) : [] };
  const sample = shuffle([...users.d1]).slice(0, 20000);
  let w = await startMiniflareAll(state);
  const probe = await fetch(`${w.origin}/ceiling-d1?id=${sample[0].id}`);
  if (probe.status !== 200) throw new Error(`ceiling-d1 does not see the seeded data: ${probe.status}`);
  const check = await http(w.origin, "GET", `/scim/v2/Users/${sample[0].id}`);
  if (check.status !== 200) throw new Error(`scim-edge does not see the seeded data: ${check.status} ${check.text}`);
  const ceilingSpecs = { d1: { lines: writeLines(sample.map((u) => `/ceiling-d1?id=${u.id}`)) } };
  if (so) {
    const doSample = shuffle([...users["durable-object"]]).slice(0, 20000);
    const p1 = await fetch(`${w.origin}/ceiling-do?id=${doSample[0].id}`);
    if (p1.status !== 200) throw new Error(`ceiling-do does not see the seeded data: ${p1.status}`);
    const c2 = await httpDo(w.origin, "GET", `/scim/v2/Users/${doSample[0].id}`);
    if (c2.status !== 200) throw new Error(`scim-edge (durable-object) does not see the seeded data: ${c2.status} ${c2.text}`);
    ceilingSpecs.do = { lines: writeLines(doSample.map((u) => `/ceiling-do?id=${u.id}`)) };
  }
  const constSpec = { lines: writeLines(["/ceiling-const"]) };
  for (const spec of Object.values(ceilingSpecs)) await wrk(w.origin, { ...spec, seconds: WARMUP || 1 });
  const const1 = await measure(`miniflare ${s.size} ceiling-const`, w.origin, constSpec);
  const sp = { d1: specs("/scim/v2", users.d1, s.big, ENTRA_PATCH) };
  if (so) sp["durable-object"] = specs("/scim/v2", users["durable-object"], so.big, ENTRA_PATCH, DO_HOST);
  // The write ceiling (one INSERT of a user row in the ceiling's object), with POST and PATCH.
  const writeCeiling = so ? { doWrite: { method: "POST", lines: writeLines(["/ceiling-do/write"]), body: writeBody(userBody("__N__")) } } : {};
  // The page floor (ceiling-d1 running a first page's statement of 100 users), with list100.
  const pageFloor = { d1Page: { lines: writeLines(["/ceiling-d1/page"]) } };
  const extra = { post: writeCeiling, patch: writeCeiling, list100: pageFloor };
  for (const op of ["get", "userName", "externalId", "list100", "post", "patch"]) {
    const cs = { ...ceilingSpecs, ...(extra[op] ?? {}) };
    if (wanted(op)) res[op] = await pairedAll(`miniflare ${s.size} ${op}`, w.origin, cs, (b) => sp[b][op]);
  }
  if (wanted("addMember") || wanted("delete")) {
    const pools = { d1: await seedPool(w.db, s.userTpl, poolStart, POOL) };
    if (so) {
      await w.stop();
      pools["durable-object"] = seedObjectPool(so.file, so.userTpl, poolStart, POOL);
      w = await startMiniflareAll(state);
      for (const spec of Object.values(ceilingSpecs)) await wrk(w.origin, { ...spec, seconds: WARMUP || 1 });
    }
    const slice = (b, round) => pools[b].filter((_, i) => i % ROUNDS === round);
    if (wanted("addMember")) res.addMember = await pairedAll(`miniflare ${s.size} addMember`, w.origin, ceilingSpecs, (b, r) => sp[b].addMember(slice(b, r)));
    if (wanted("delete")) res.delete = await pairedAll(`miniflare ${s.size} delete`, w.origin, ceilingSpecs, (b, r) => sp[b].delete(slice(b, r)));
  }
  const const2 = await measure(`miniflare ${s.size} ceiling-const`, w.origin, constSpec);
  res.ceilingConst = const1.rps >= const2.rps ? const1 : const2;
  res.ceilingConst.rounds = [const1.rps, const2.rps];
  const measured = Object.values(res).filter((x) => x.ceilingD1);
  res.ceilingD1 = { rps: median(measured.map((x) => x.ceilingD1)) };
  if (so) res.ceilingDO = { rps: median(measured.map((x) => x.ceilingDO)) };
  await w.stop();
  return res;
}

// ---- many tenants, noisy neighbour ---------------------------------------------------------------
/** Runs `task` over `items`, `n` at a time. */
async function inParallel(n, items, task) {
  let next = 0;
  const out = new Array(items.length);
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await task(items[i], i);
    }
  }));
  return out;
}

/** An admin API call (the control plane, D1, shared by both backends' workers). */
async function admin(origin, method, p, body) {
  const r = await http(origin, method, `/admin/api${p}`, body, { token: ADMIN_TOKEN });
  if (r.status >= 300) throw new Error(`admin ${method} ${p}: ${r.status} ${r.text}`);
  return r.json;
}

/**
 * TENANTS tenants of TENANT_USERS users each, on both backends: tenants and their tokens
 * through the admin API; D1's users by SQL from the API's template (as `seed`); each tenant's
 * object made by its first request, then its users by SQL on its file with workerd stopped.
 * Returns per backend the users of each tenant, `[{ tenant, token, users: [id…] }]`.
 */
async function seedTenants(state, tpl) {
  const t0 = Date.now();
  let w = await startMiniflareAll(state, { ceilings: false });
  for (const sql of migrationStatements()) await w.db.prepare(sql).run();
  const names = Array.from({ length: TENANTS }, (_, i) => `bench${String(i).padStart(4, "0")}`);
  const tenants = await inParallel(8, names, async (id) => {
    await admin(w.origin, "POST", "/tenants", { id });
    const t = await admin(w.origin, "POST", `/tenants/${id}/tokens`, { type: "bearer", label: "bench" });
    return { tenant: id, token: t.token };
  });
  log(`tenants: ${TENANTS} created with a token each in ${Date.now() - t0} ms`);
  const out = {};
  if (BACKENDS.includes("d1")) {
    for (let i = 0; i < TENANTS; i += 50) {
      const batch = names.slice(i, i + 50);
      await w.db
        .prepare(
          `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?1), ` +
            `t(id) AS (SELECT value FROM json_each(?2)) ` +
            `INSERT INTO resources (tenant, id, type, data, created, modified, version) ` +
            `SELECT t.id, ${UUID_SQL}, 'User', replace(?3, '__I__', printf('%06d', i)), ` +
            `strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ` +
            `(random() & 9007199254740991) | 1 FROM t, seq`,
        )
        .bind(TENANT_USERS, JSON.stringify(batch), tpl)
        .run();
    }
    await w.db.prepare("ANALYZE").run().catch(() => {});
    const rows = (await w.db.prepare("SELECT tenant, id FROM resources WHERE type = 'User' AND tenant LIKE 'bench%'").all()).results;
    const by = new Map(names.map((n) => [n, []]));
    for (const r of rows) by.get(r.tenant)?.push(r.id);
    out.d1 = tenants.map((t) => ({ ...t, users: by.get(t.tenant) }));
    const probe = await http(w.origin, "GET", `/scim/v2/Users/${out.d1[1].users[0]}`, undefined, { token: out.d1[1].token });
    if (probe.status !== 200) throw new Error(`tenant read (d1): ${probe.status} ${probe.text}`);
    log(`tenants (d1): ${rows.length} users seeded`);
  }
  if (HAS_DO) {
    // First requests make the objects (schema, the tenant's row).
    await inParallel(8, tenants, async (t) => {
      const r = await httpDo(w.origin, "GET", "/scim/v2/Users?count=0", undefined, { token: t.token });
      if (r.status !== 200) throw new Error(`tenant object ${t.tenant}: ${r.status} ${r.text}`);
    });
    const files = [];
    for (const t of tenants) files.push(await w.tenantFile(t.tenant));
    await w.stop();
    out["durable-object"] = tenants.map((t, i) => {
      const users = sqliteRun(files[i], `BEGIN;\n${insertTemplateSql(t.tenant, "User", tpl, 0, TENANT_USERS)}COMMIT;\nANALYZE;\nSELECT id FROM resources WHERE type = 'User';\n`).map((r) => r.id);
      return { ...t, users };
    });
    w = await startMiniflareAll(state, { ceilings: false });
    const t1 = out["durable-object"][1];
    const probe = await httpDo(w.origin, "GET", `/scim/v2/Users/${t1.users[0]}`, undefined, { token: t1.token });
    if (probe.status !== 200 || probe.json.userName !== "user000000@contoso.com") throw new Error(`tenant read (durable-object): ${probe.status} ${probe.text}`);
    log(`tenants (durable-object): ${TENANTS} objects, ${TENANTS * TENANT_USERS} users seeded`);
  }
  log(`tenants seeded in ${Date.now() - t0} ms`);
  return { w, seeded: out };
}

/**
 * Per-tenant latency with many tenants: GET by id over one tenant's users vs over every
 * tenant's (each request with its tenant's token), alternating, ROUNDS times per backend; and
 * the noisy neighbour: one tenant's GETs alone vs while another tenant takes POSTs (two wrk
 * processes, CONNECTIONS/2 connections each, so the reader sees the same load either way).
 */
async function runTenants(templates) {
  const state = path.join(OUT, "tenants");
  rmSync(state, { recursive: true, force: true });
  mkdirSync(state, { recursive: true });
  if (!templates?.userTpl) throw new Error("the many-tenants run needs the user template of a size run");
  const { w, seeded } = await seedTenants(state, templates.userTpl);
  const res = { tenants: TENANTS, usersPerTenant: TENANT_USERS };
  const half = Math.max(1, Math.floor(CONNECTIONS / 2));
  for (const b of BACKENDS) {
    const host = b === "durable-object" ? DO_HOST : "-";
    const ts = seeded[b];
    // Tokens are verified once per isolate and cached (`credentials::CACHE_TTL_MS`): every
    // tenant is asked once before the rounds, as a running deployment would have been.
    await inParallel(8, ts, (t) => http(w.origin, "GET", `/scim/v2/Users/${t.users[0]}`, undefined, { token: t.token, host: b === "durable-object" ? DO_HOST : undefined }));
    const one = { host, lines: writeLines(shuffle([...ts[0].users]).map((id) => `/scim/v2/Users/${id}\t\t${ts[0].token}`)) };
    const all = [];
    for (const t of ts) for (const id of t.users) all.push(`/scim/v2/Users/${id}\t\t${t.token}`);
    const spread = { host, lines: writeLines(shuffle(all).slice(0, 50000)) };
    const rounds = [];
    await wrk(w.origin, { ...one, seconds: WARMUP || 1 });
    await wrk(w.origin, { ...spread, seconds: WARMUP || 1 });
    for (let r = 0; r < ROUNDS; r++) {
      const a = await wrk(w.origin, one);
      const z = await wrk(w.origin, spread);
      rounds.push({ one: a, spread: z, p50: z.p50_ms / a.p50_ms, rps: z.rps / a.rps });
    }
    const mid = (k) => median(rounds.map((x) => x[k]));
    res[b] = {
      one: { rps: median(rounds.map((x) => x.one.rps)), p50_ms: median(rounds.map((x) => x.one.p50_ms)), cpu_us: median(rounds.map((x) => x.one.cpu_us)) },
      spread: { rps: median(rounds.map((x) => x.spread.rps)), p50_ms: median(rounds.map((x) => x.spread.p50_ms)), cpu_us: median(rounds.map((x) => x.spread.cpu_us)) },
      p50Ratio: +mid("p50").toFixed(3),
      rpsRatio: +mid("rps").toFixed(3),
      errors: rounds.reduce((n, x) => n + x.one.errors + x.spread.errors, 0),
    };
    log(`tenants [${b}]: one tenant ${res[b].one.rps} req/s p50 ${res[b].one.p50_ms} ms; ${TENANTS} tenants ${res[b].spread.rps} req/s p50 ${res[b].spread.p50_ms} ms → p50 ${res[b].p50Ratio}x; ${res[b].errors} errors`);
    if (NOISY) {
      res[b].noisyPaced = await noisyNeighbour(w, b, ts, host, half, true);
      res[b].noisy = await noisyNeighbour(w, b, ts, host, half);
    }
  }
  await w.stop();
  return res;
}

/**
 * Offered load of the paced noisy-neighbour run, per connection: a pause of this many ms after
 * each response. Two reader connections at 10 ms offer up to ~200 GET/s, two writer
 * connections at 20 ms up to ~100 POST/s (an IdP's full sync runs at a few per second): the
 * two together leave a core idle, so the reader's p50 shows what the writer's tenant does to
 * it (shared storage, serialised writes), not two processes taking turns on saturated cores.
 */
const PACE = { reader: 10, writer: 20, connections: 2 };

/**
 * Tenant 1's GETs alone, then while tenant 2 takes POSTs; ROUNDS pairs, medians. `paced`: both
 * sides at the bounded rates of `PACE`; otherwise both saturate (`connections` each).
 */
async function noisyNeighbour(w, backend, ts, host, connections, paced = false) {
  const load = paced ? { connections: PACE.connections } : { connections };
  const reader = { host, ...load, pace: paced ? PACE.reader : "-", lines: writeLines(shuffle([...ts[1].users]).map((id) => `/scim/v2/Users/${id}\t\t${ts[1].token}`)) };
  const writer = { host, ...load, pace: paced ? PACE.writer : "-", method: "POST", lines: writeLines([`/scim/v2/Users\t\t${ts[2].token}`]), body: writeBody(userBody("__N__")) };
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const alone = await wrk(w.origin, reader);
    // The writer starts first and ends after the reader, so the whole read runs under load.
    const writing = wrk(w.origin, { ...writer, seconds: DURATION + 2 });
    await sleep(1000);
    const loaded = await wrk(w.origin, reader);
    const wres = await writing;
    rounds.push({ alone, loaded, writer: wres, p50: loaded.p50_ms / alone.p50_ms });
  }
  const out = {
    paced,
    aloneP50: median(rounds.map((x) => x.alone.p50_ms)),
    loadedP50: median(rounds.map((x) => x.loaded.p50_ms)),
    aloneRps: median(rounds.map((x) => x.alone.rps)),
    loadedRps: median(rounds.map((x) => x.loaded.rps)),
    writerRps: median(rounds.map((x) => x.writer.rps)),
    p50Ratio: +median(rounds.map((x) => x.p50)).toFixed(3),
    errors: rounds.reduce((n, x) => n + x.alone.errors + x.loaded.errors + x.writer.errors, 0),
  };
  log(`noisy neighbour [${backend}, ${paced ? "paced" : "saturating"}]: reader alone p50 ${out.aloneP50} ms (${out.aloneRps} req/s), with a writer p50 ${out.loadedP50} ms (${out.loadedRps} req/s; writer ${out.writerRps} req/s) → ${out.p50Ratio}x; ${out.errors} errors`);
  return out;
}

/** Ceilings and scim-edge under `wrangler dev`, one worker at a time, on the data set in `state`. */
async function runRunner(runner, state, s, poolStart) {
  const start = runner === "miniflare" ? (k) => startMiniflare(k, state) : (k) => startWrangler(k, state);
  const res = {};
  const users = seededUsers(s);
  const sample = shuffle([...users]).slice(0, 20000);

  let w = await start("ceiling-const");
  res.ceilingConst = await measure(`${runner} ${s.size} ceiling-const`, w.origin, { lines: writeLines(["/"]) });
  await w.stop();
  w = await start("ceiling-d1");
  const probe = await fetch(`${w.origin}/?id=${sample[0].id}`);
  if (probe.status !== 200) throw new Error(`ceiling-d1 does not see the seeded data: ${probe.status}`);
  res.ceilingD1 = await measure(`${runner} ${s.size} ceiling-d1`, w.origin, { lines: writeLines(sample.map((u) => `/?id=${u.id}`)) });
  await w.stop();

  w = await start("main");
  const sp = specs("/scim/v2", users, s.big, ENTRA_PATCH);
  const check = await http(w.origin, "GET", `/scim/v2/Users/${sample[0].id}`);
  if (check.status !== 200) throw new Error(`${runner}: scim-edge does not see the seeded data: ${check.status} ${check.text}`);
  for (const op of ["get", "userName", "externalId", "list100", "post", "patch"]) {
    if (wanted(op)) res[op] = await measure(`${runner} ${s.size} ${op}`, w.origin, sp[op]);
  }
  if (wanted("addMember") || wanted("delete")) {
    let pool;
    if (runner === "miniflare") {
      pool = await seedPool(w.db, s.userTpl, poolStart, POOL);
    } else {
      await w.stop();
      const m = await startMiniflare("main", state);
      pool = await seedPool(m.db, s.userTpl, poolStart, POOL);
      await m.stop();
      w = await start("main");
    }
    if (wanted("addMember")) res.addMember = await measure(`${runner} ${s.size} addMember`, w.origin, sp.addMember(pool));
    if (wanted("delete")) res.delete = await measure(`${runner} ${s.size} delete`, w.origin, sp.delete(pool));
  }
  await w.stop();
  return res;
}

/** The scim2-server peer on the same operations and the same users. */
async function runPeer(size) {
  const seedFile = path.join(OUT, "tmp", `peer-seed-${size}.json`);
  mkdirSync(path.dirname(seedFile), { recursive: true });
  const users = [];
  for (let i = 0; i < size; i++) users.push(userBody(fmt(i)));
  const groups = [{ body: groupBody(fmt(0)), memberIndexes: [...Array(Math.min(size, 100000)).keys()] }];
  for (let g = 1; g <= SMALL_GROUPS; g++) {
    const off = ((g - 1) * SMALL_GROUP_SIZE) % Math.max(1, size - SMALL_GROUP_SIZE);
    groups.push({ body: groupBody(fmt(g)), memberIndexes: [...Array(SMALL_GROUP_SIZE).keys()].map((k) => off + k) });
  }
  writeFileSync(seedFile, JSON.stringify({ users, groups }));
  const t0 = Date.now();
  const p = await startPeer(seedFile);
  log(`peer seeded ${size} users in ${Date.now() - t0} ms`);
  const base = "/v2";
  const peerUsers = p.ids.users.map((id, i) => ({ id, userName: `user${fmt(i)}@contoso.com`, externalId: `00000000-0000-4000-8000-000000${fmt(i)}` }));
  // Which PATCH spelling the peer accepts.
  const u = peerUsers[0];
  let patchBody = ENTRA_PATCH;
  let patchNote = "Entra spelling";
  const tryPatch = await http(p.origin, "PATCH", `${base}/Users/${u.id}`, JSON.parse(JSON.stringify(ENTRA_PATCH).replaceAll("__N__", "x")));
  if (tryPatch.status >= 400) {
    patchBody = RFC_PATCH;
    patchNote = `RFC spelling (Entra's answered ${tryPatch.status})`;
    const t2 = await http(p.origin, "PATCH", `${base}/Users/${u.id}`, JSON.parse(JSON.stringify(RFC_PATCH).replaceAll("__N__", "x")));
    if (t2.status >= 400) patchNote += `; RFC spelling answered ${t2.status}: ${t2.text.slice(0, 200)}`;
  }
  log(`peer PATCH: ${patchNote}`);
  const sp = specs(base, peerUsers, p.ids.groups[0], patchBody);
  const res = { patchNote };
  for (const op of ["get", "userName", "externalId", "list100", "post", "patch"]) {
    if (wanted(op)) res[op] = await measure(`peer ${size} ${op}`, p.origin, sp[op]);
  }
  if (wanted("addMember") || wanted("delete")) {
    // Pool users through the peer's own POST (what it would store), before the measured ops.
    const pool = [];
    const n = Math.min(POOL, 5000);
    for (let i = 0; i < n; i++) {
      const r = await http(p.origin, "POST", `${base}/Users`, userBody(`pool${i}`));
      if (r.status !== 201) throw new Error(`peer pool POST: ${r.status} ${r.text}`);
      pool.push(r.json.id);
    }
    if (wanted("addMember")) res.addMember = await measure(`peer ${size} addMember`, p.origin, sp.addMember(pool));
    if (wanted("delete")) res.delete = await measure(`peer ${size} delete`, p.origin, sp.delete(pool));
  }
  await p.stop();
  return res;
}

// ---- report --------------------------------------------------------------------------------
function table(results) {
  const lines = [];
  for (const size of SIZES) {
    const r = results.sizes[size];
    if (!r) continue;
    for (const runner of RUNNERS) {
      const m = r[runner];
      if (!m) continue;
      if (runner === "miniflare" && m.ceilingConst && results.backends) {
        lines.push(...backendsTable(size, r, results));
        continue;
      }
      lines.push(`\n### ${size.toLocaleString("en-US")} users — ${runner === "miniflare" ? "workerd via Miniflare's API" : "workerd via `wrangler dev` (Node proxy in front)"}\n`);
      lines.push(
        runner === "miniflare"
          ? `Ceilings: constant worker ${m.ceilingConst.rps} req/s; single D1 point query ${m.ceilingD1.rps} req/s (median over the rounds; each operation's ratio is the median of ${ROUNDS} rounds, each measured right after the D1 ceiling).\n`
          : `Ceilings: constant worker ${m.ceilingConst.rps} req/s; single D1 point query ${m.ceilingD1.rps} req/s (p50 ${m.ceilingD1.p50_ms} ms); one round each, one worker at a time.\n`,
      );
      const peerCol = runner === "miniflare" && r.peer;
      const cpuCol = runner === "miniflare";
      lines.push(`| operation | D1 round trips | req/s | p50 ms | p99 ms | ÷ ceiling-d1 |${cpuCol ? " CPU µs/req | CPU ratio to ceiling-d1 |" : ""} ÷ ceiling-const |${peerCol ? " peer req/s | ÷ peer | peer CPU µs/req | peer CPU ÷ ours |" : ""}`);
      lines.push(`|---|---:|---:|---:|---:|---:|${cpuCol ? "---:|---:|" : ""}---:|${peerCol ? "---:|---:|---:|---:|" : ""}`);
      for (const op of OP_NAMES) {
        const x = m[op];
        if (!x) continue;
        const rt = r.roundTrips?.[op]?.roundTrips ?? "?";
        const err = x.errors ? ` (${x.errors} errors)` : "";
        let row = `| ${OP_LABELS[op]} | ${rt} | ${x.rps}${err} | ${x.p50_ms} | ${x.p99_ms} | ${x.ratioD1 !== undefined ? `${x.ratioD1.toFixed(2)}x` : ratio(x.rps, m.ceilingD1.rps)} |${cpuCol ? ` ${x.cpu_us ?? "?"} | ${x.cpuRatioD1 != null ? `${x.cpuRatioD1.toFixed(2)}x` : "?"} |` : ""} ${ratio(x.rps, m.ceilingConst.rps)} |`;
        if (peerCol) {
          const q = r.peer[op];
          if (!q) row += " – | – | – | – |";
          else if (q.requests === 0) {
            // Not one request finished within the run (each took longer than it): an upper bound.
            const bound = +(1 / results.durationSeconds).toPrecision(2);
            row += ` < ${bound} (none finished in ${results.durationSeconds} s) | > ${(x.rps / bound).toFixed(0)}x | – | – |`;
          } else {
            const cpu = q.cpu_us && x.cpu_us ? `${(q.cpu_us / x.cpu_us).toFixed(1)}x` : "–";
            row += ` ${q.rps}${q.errors ? ` (${q.errors} errors)` : ""} | ${ratio(x.rps, q.rps, 1)} | ${q.cpu_us ?? "–"} | ${cpu} |`;
          }
        }
        lines.push(row);
      }
    }
  }
  const a = results.sizes[SIZES[0]]?.miniflare;
  const b = results.sizes[SIZES[SIZES.length - 1]]?.miniflare;
  if (a && b && SIZES.length > 1) {
    lines.push(`\n### Issue 3: ${SIZES[SIZES.length - 1].toLocaleString("en-US")} vs ${SIZES[0].toLocaleString("en-US")} users (Miniflare)\n`);
    lines.push("Slowdown = large ÷ small of the server CPU per request (the load-independent measure), and of the throughput relative to the D1 ceiling measured alongside (raw req/s moves with other load on a shared machine).\n");
    lines.push("| operation | D1 round trips | CPU µs/req small | CPU µs/req large | CPU slowdown (≤ 1.2x wanted) | ÷ ceiling-d1 small | ÷ ceiling-d1 large | relative slowdown |");
    lines.push("|---|---:|---:|---:|---:|---:|---:|---:|");
    const rtOf = (op) => results.sizes[SIZES[SIZES.length - 1]]?.roundTrips?.[op]?.roundTrips ?? "?";
    for (const op of ["userName", "externalId", "get"]) {
      // Both backends' runs keep the D1 backend's figures under `d1`.
      const small = a[op]?.d1 ?? a[op];
      const large = b[op]?.d1 ?? b[op];
      if (small && large) {
        const cpu = small.cpu_us && large.cpu_us ? `${(large.cpu_us / small.cpu_us).toFixed(2)}x` : "?";
        lines.push(`| ${OP_LABELS[op]} | ${rtOf(op)} | ${small.cpu_us} | ${large.cpu_us} | ${cpu} | ${small.ratioD1}x | ${large.ratioD1}x | ${ratio(small.ratioD1, large.ratioD1)} |`);
      }
    }
  }
  return lines.join("\n");
}

const x2 = (v) => (v == null ? "–" : `${v.toFixed(2)}x`);

/** One size under Miniflare: each operation on each backend, against both ceilings (and the peer). */
function backendsTable(size, r, results) {
  const m = r.miniflare;
  const lines = [];
  lines.push(`\n### ${size.toLocaleString("en-US")} users — workerd via Miniflare's API, both backends\n`);
  lines.push(
    `Ceilings: constant worker ${m.ceilingConst.rps} req/s; one D1 point query ${m.ceilingD1.rps} req/s` +
      (m.ceilingDO ? `; one Durable Object hop with one SQLite point query ${m.ceilingDO.rps} req/s` : "") +
      ` (medians; each operation's ratio is the median of ${ROUNDS} rounds, each measured right after the ceilings).` +
      " Round trips: D1 round trips the worker made / requests it handed to a tenant's object / SQLite transactions in the object.\n",
  );
  const peer = r.peer;
  lines.push(`| operation | storage | D1 round trips / object hops / object transactions | req/s | p50 ms | p99 ms | ÷ ceiling-do | ÷ ceiling-d1 | CPU µs/req | CPU ÷ ceiling-do | CPU ÷ ceiling-d1 |${peer ? " ÷ peer |" : ""}`);
  lines.push(`|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|${peer ? "---:|" : ""}`);
  for (const op of OP_NAMES) {
    if (!m[op]) continue;
    for (const b of results.backends) {
      const x = m[op][b];
      if (!x) continue;
      const rt = b === "d1" ? r.roundTrips?.[op] : r.roundTripsDO?.[op];
      const trips = rt ? (b === "d1" ? `${rt.roundTrips} / – / –` : `${rt.roundTrips} / ${rt.hops} / ${rt.objectTx}`) : "?";
      let row = `| ${OP_LABELS[op]} | ${b} | ${trips} | ${x.rps}${x.errors ? ` (${x.errors} errors)` : ""} | ${x.p50_ms} | ${x.p99_ms} | ${x2(x.ratioDO)} | ${x2(x.ratioD1)} | ${x.cpu_us ?? "?"} | ${x2(x.cpuRatioDO)} | ${x2(x.cpuRatioD1)} |`;
      if (peer) {
        const q = peer[op];
        if (!q) row += " – |";
        else if (q.requests === 0) row += ` > ${(x.rps / +(1 / results.durationSeconds).toPrecision(2)).toFixed(0)}x (peer: none finished in ${results.durationSeconds} s) |`;
        else row += ` ${ratio(x.rps, q.rps, 2)} (peer ${q.rps}) |`;
      }
      lines.push(row);
    }
  }
  for (const [op, name] of [["post", "POST /Users"], ["patch", "PATCH /Users/{id}"]]) {
    const x = m[op]?.["durable-object"];
    if (x?.cpuRatioDOWrite == null) continue;
    lines.push(
      `\nWrite ceiling (ceiling-do's POST: one hop, one INSERT of the user row into the same table, indexes and triggers), measured with ${name}: ` +
        `${m[op].ceilingDOWrite} req/s, ${m[op].ceilingDOWriteCpu} µs CPU/req; ${name} (durable-object) ÷ it: ${x2(x.ratioDOWrite)}, CPU ${x2(x.cpuRatioDOWrite)}.`,
    );
  }
  const page = m.list100?.d1;
  if (page?.cpuRatioD1Page != null) {
    lines.push(
      `\nPage floor (ceiling-d1's \`/page\`: the first page's one statement of 100 users, groups included, rows read as scim-edge reads them, the stored texts sent as an array): ` +
        `${m.list100.ceilingD1Page} req/s, ${m.list100.ceilingD1PageCpu} µs CPU/req, ${x2(m.list100.ceilingD1PageToPoint)} of ceiling-d1's point query's CPU; list page of 100 (d1) ÷ it: ${x2(page.ratioD1Page)}, CPU ${x2(page.cpuRatioD1Page)}.`,
    );
  }
  return lines;
}

/** The many-tenants and noisy-neighbour runs. */
function tenantsTable(t) {
  const lines = [];
  lines.push(`\n### ${t.tenants.toLocaleString("en-US")} tenants of ${t.usersPerTenant} users — GET /Users/{id}\n`);
  lines.push(`One tenant's users vs every tenant's (each request with its tenant's token), alternating, ${ROUNDS} rounds each, ${CONNECTIONS} connections; ratio = median of the per-round ratios (1.2x or less wanted).\n`);
  lines.push("| storage | one tenant req/s | p50 ms | CPU µs/req | all tenants req/s | p50 ms | CPU µs/req | p50 all ÷ one | req/s all ÷ one |");
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const b of Object.keys(t).filter((k) => t[k]?.one)) {
    const x = t[b];
    lines.push(`| ${b} | ${x.one.rps} | ${x.one.p50_ms} | ${x.one.cpu_us} | ${x.spread.rps} | ${x.spread.p50_ms} | ${x.spread.cpu_us} | ${x.p50Ratio.toFixed(2)}x | ${x.rpsRatio.toFixed(2)}x |`);
  }
  const noisy = Object.keys(t).filter((k) => t[k]?.noisy);
  if (noisy.length) {
    lines.push(`\n### Noisy neighbour — one tenant's GET /Users/{id} alone vs while another tenant takes POST /Users\n`);
    lines.push(`Paced: ${PACE.connections} connections each side, a pause of ${PACE.reader} ms (reader) and ${PACE.writer} ms (writer) after each response. Saturating: ${Math.max(1, Math.floor(CONNECTIONS / 2))} connections each side, no pause. ${ROUNDS} rounds; ratio = median of the per-round p50 ratios (1.2x or less wanted).\n`);
    lines.push("| storage | load | reader alone p50 ms | req/s | reader with writer p50 ms | req/s | writer req/s | p50 loaded ÷ alone |");
    lines.push("|---|---|---:|---:|---:|---:|---:|---:|");
    for (const b of noisy) {
      for (const x of [t[b].noisyPaced, t[b].noisy].filter(Boolean)) {
        lines.push(`| ${b} | ${x.paced ? "paced" : "saturating"} | ${x.aloneP50} | ${x.aloneRps} | ${x.loadedP50} | ${x.loadedRps} | ${x.writerRps} | ${x.p50Ratio.toFixed(2)}x |`);
      }
    }
  }
  return lines.join("\n");
}

function markdown(results) {
  return `# scim-edge benchmark\n\n${results.date} · ${results.machine} · Node ${results.node}\n\nMethod: ${results.method}.\n${table(results)}\n${results.tenants ? tenantsTable(results.tenants) : ""}\n`;
}

async function main() {
  if (args.report) {
    // Regenerates results.md from a results.json (e.g. after a change to this report).
    const results = JSON.parse(readFileSync(args.report, "utf8"));
    results.durationSeconds ??= DURATION;
    const md = markdown(results);
    writeFileSync(path.join(path.dirname(args.report), "results.md"), md);
    console.log(md);
    return;
  }
  const results = {
    durationSeconds: DURATION,
    date: new Date().toISOString(),
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model?.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}`,
    node: process.version,
    method: `wrk -t1 -c${CONNECTIONS} -d${DURATION}s (+${WARMUP}s warm-up) on 127.0.0.1; Miniflare: ${ROUNDS} rounds per operation, each paired with the ceilings; backends ${BACKENDS.join(", ")}`,
    backends: BACKENDS,
    sizes: {},
  };
  for (const size of SIZES) {
    const state = path.join(OUT, `d1-${size}`);
    rmSync(state, { recursive: true, force: true });
    mkdirSync(state, { recursive: true });
    const r = {};
    let w = await startMiniflareAll(state, { debug: true });
    const s = await seed(w, size);
    r.templates = { userTpl: s.userTpl, groupTpl: s.groupTpl };
    await validate(w, s);
    let so = null;
    if (HAS_DO) {
      // The object's seed: templates from its API, SQL on its file with workerd stopped, the
      // ceiling's object a copy of it; then the same validation through its API.
      const t = await objectTemplates(w, s);
      await w.stop();
      so = { ...seedObjectFile(t.file, size, t.userTpl, t.groupTpl), file: t.file };
      checkpoint(t.file);
      for (const ext of ["", "-wal", "-shm"]) rmSync(`${t.ceilingFile}${ext}`, { force: true });
      cpSync(t.file, t.ceilingFile);
      w = await startMiniflareAll(state, { debug: true });
      await validate(w, so, objectView(w, t.file));
      r.roundTripsDO = await roundTripsObject(w, so);
    }
    r.roundTrips = await roundTripsD1(w, s);
    await w.stop();
    if (RUNNERS.includes("wrangler")) {
      const copy = path.join(OUT, `d1-${size}-wrangler`);
      rmSync(copy, { recursive: true, force: true });
      cpSync(state, copy, { recursive: true });
    }
    for (const runner of RUNNERS) {
      const st = runner === "miniflare" ? state : path.join(OUT, `d1-${size}-wrangler`);
      r[runner] = runner === "miniflare" ? await runMiniflare(st, s, so, 500000) : await runRunner(runner, st, s, 700000);
      results.sizes[size] = r;
      writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
    }
    if (PEER) r.peer = await runPeer(size);
    results.sizes[size] = r;
    writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
  }
  if (TENANTS > 0 && SIZES.length) {
    results.tenants = await runTenants(results.sizes[SIZES[0]]?.templates);
    writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
  }
  const md = markdown(results);
  writeFileSync(path.join(OUT, "results.md"), md);
  rmSync(path.join(OUT, "tmp"), { recursive: true, force: true });
  console.log(md);
}

await main();
