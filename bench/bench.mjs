// The benchmark driver (run it through bench/run.sh, which builds what it needs first).
//
// For each data set size it: seeds a local D1 (SQL straight into D1, from templates the API
// itself wrote, then checked by reading seeded resources back through the API), counts D1
// round trips per operation (Server-Timing with SCIM_DEBUG_TIMING=1), then drives load with
// `wrk` (a second process, loopback only, bounded duration) against
//   - the scim-edge worker,
//   - the ceiling workers (constant answer; one D1 point query on the same database),
// each run by workerd through Miniflare's API and, separately, through `wrangler dev`,
// and against the scim2-server peer (Python, in-memory) seeded with the same users.
// Results go to OUT/results.json and OUT/results.md.
import { Miniflare } from "miniflare";
import { spawn, spawnSync } from "node:child_process";
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

async function http(base, method, p, body) {
  const headers = { Authorization: `Bearer ${TOKEN}` };
  if (body !== undefined) headers["Content-Type"] = "application/scim+json";
  const res = await fetch(`${base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

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
 * All three workers in one workerd through Miniflare's API, routed by path: `/scim/*` to
 * scim-edge, `/ceiling-d1*` and `/ceiling-const*` to the ceilings. They share the D1 database,
 * so a ceiling and an operation can be measured seconds apart without restarting anything.
 */
async function startMiniflareAll(state) {
  const port = await freePort();
  const worker = (kind, routes) => ({
    name: kind,
    modules: true,
    scriptPath: entryOf(kind),
    modulesRoot: path.join(WORKERS, kind),
    modulesRules: MODULE_RULES,
    compatibilityDate: COMPAT,
    d1Databases: { DB: DB_ID },
    bindings: { SCIM_TOKEN: TOKEN },
    routes,
  });
  const mf = new Miniflare({
    host: "127.0.0.1",
    port,
    d1Persist: path.join(state, "v3", "d1"),
    workers: [
      worker("main", ["*/scim/*"]),
      worker("ceiling-d1", ["*/ceiling-d1*"]),
      worker("ceiling-const", ["*/ceiling-const*"]),
    ],
  });
  const url = await mf.ready;
  return { origin: url.origin, db: await mf.getD1Database("DB", "main"), pid: (SERVER_PID = descendant(process.pid, "workerd")), stop: () => mf.dispose() };
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

/** Runs wrk once: `{ rps, p50_ms, p99_ms, requests, errors }`. Asynchronously: Miniflare
 * forwards workerd's log output through this process, so blocking here would stall workerd. */
async function wrk(origin, { method = "GET", lines, body = "-", mode = "cycle", seconds = DURATION, prefix = "", pid = null }) {
  pid ??= SERVER_PID;
  const cpu0 = cpuMicros(pid);
  const child = spawn(
    "timeout",
    [String(seconds + 30), "wrk", "-t1", `-c${CONNECTIONS}`, `-d${seconds}s`, "--timeout", "10s", "-s",
      path.join(BENCH, "load.lua"), origin, "--", TOKEN, mode, method, lines, body, prefix],
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
  if (WARMUP > 0 && spec.mode !== "once" && !spec.noWarmup) await wrk(origin, { ...spec, seconds: WARMUP, prefix: `w${fileSeq}-` });
  const r = await wrk(origin, { ...spec, prefix: `m${fileSeq}-${Date.now() % 100000}-` });
  log(`${label}: ${r.rps} req/s, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, CPU/req ${r.cpu_us} µs, ${r.requests} requests, ${r.errors} errors`);
  return r;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * ROUNDS × (ceiling-d1, then the operation); `specFor(round)` gives the operation's spec
 * (write operations get a fresh slice of their pool each round). Reports the operation's
 * median round, the ceiling's median and the median per-round ratio.
 */
async function paired(label, origin, ceilingSpec, specFor) {
  const ops = [];
  const ceilings = [];
  const ratios = [];
  const cpuCeil = [];
  const cpuOps = [];
  for (let round = 0; round < ROUNDS; round++) {
    const c = await wrk(origin, { ...ceilingSpec, prefix: "" });
    const spec = specFor(round);
    if (WARMUP > 0 && round === 0 && spec.mode !== "once") await wrk(origin, { ...spec, seconds: WARMUP, prefix: `w${fileSeq}-` });
    const o = await wrk(origin, { ...spec, prefix: `m${fileSeq}-${round}-${Date.now() % 100000}-` });
    ceilings.push(c.rps);
    ops.push(o);
    if (c.cpu_us && o.cpu_us) {
      cpuCeil.push(c.cpu_us);
      cpuOps.push(o.cpu_us);
    }
    ratios.push(c.rps > 0 ? o.rps / c.rps : 0);
  }
  const mid = [...ops].sort((a, b) => a.rps - b.rps)[Math.floor(ops.length / 2)];
  const r = {
    ...mid,
    errors: ops.reduce((n, o) => n + o.errors, 0),
    rounds: ops.map((o) => o.rps),
    ceilingD1: median(ceilings),
    ceilingD1Rounds: ceilings,
    ratioD1: +median(ratios).toFixed(3),
    ceilingD1Cpu: median(cpuCeil),
    // The D1 ceiling's server CPU per request over this operation's: a throughput ratio for
    // a server with a core to itself, which load from other processes does not move.
    cpuRatioD1: cpuOps.length ? +(median(cpuCeil) / median(cpuOps)).toFixed(3) : null,
  };
  log(`${label}: ${r.rps} req/s (rounds ${r.rounds.join(", ")}), p50 ${r.p50_ms} ms, ceiling-d1 ${ceilings.join(", ")} → ${r.ratioD1}x; CPU/req ${median(cpuOps)} µs vs ceiling ${median(cpuCeil)} µs → ${r.cpuRatioD1}x; ${r.errors} errors`);
  return r;
}

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

/** Seeded rows must be what the API writes: compares a twin written through the API. */
async function validate(w, s) {
  const twin = fmt(s.size + 7);
  const created = await http(w.origin, "POST", "/scim/v2/Users", userBody(twin));
  if (created.status !== 201) throw new Error(`twin POST: ${created.status} ${created.text}`);
  const cols = "data, typeof(id) AS t_id, length(id) AS l_id, typeof(created) AS t_c, length(created) AS l_c, typeof(modified) AS t_m, typeof(version) AS t_v, version > 0 AS v_pos, user_name, external_id, display_name";
  const apiRow = await w.db.prepare(`SELECT ${cols} FROM resources WHERE id = ?`).bind(created.json.id).first();
  if (apiRow.data !== s.userTpl.replaceAll("__I__", twin)) throw new Error(`seed template differs from API write:\n${apiRow.data}\n${s.userTpl}`);
  const norm = (j, i) => {
    const o = JSON.parse(JSON.stringify(j).replaceAll(i, "__I__"));
    delete o.id;
    delete o.meta;
    return o;
  };
  const twinGet = norm((await http(w.origin, "GET", `/scim/v2/Users/${created.json.id}`)).json, twin);
  const sample = shuffle([...s.users]).slice(0, 25);
  for (const u of sample) {
    const i = u.user_name.match(/^user(\d{6})@/)[1];
    const row = await w.db.prepare(`SELECT ${cols} FROM resources WHERE id = ?`).bind(u.id).first();
    for (const k of Object.keys(row)) {
      if (k === "data" || k === "user_name" || k === "external_id" || k === "display_name") continue;
      if (row[k] !== apiRow[k]) throw new Error(`seeded column ${k} differs: ${row[k]} vs ${apiRow[k]}`);
    }
    const byId = await http(w.origin, "GET", `/scim/v2/Users/${u.id}`);
    if (byId.status !== 200) throw new Error(`GET seeded user: ${byId.status} ${byId.text}`);
    const got = norm(byId.json, i);
    delete got.groups; // seeded users are group members, the twin is not
    const want = { ...twinGet };
    delete want.groups;
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`seeded user reads back differently:\n${JSON.stringify(got)}\n${JSON.stringify(want)}`);
    const f = await http(w.origin, "GET", `/scim/v2/Users?filter=${enc(`userName eq "${u.user_name}"`)}`);
    if (f.json?.totalResults !== 1 || f.json.Resources[0].id !== u.id) throw new Error(`filter on seeded userName: ${f.text}`);
    const x = await http(w.origin, "GET", `/scim/v2/Users?filter=${enc(`externalId eq "${u.external_id}"`)}`);
    if (x.json?.totalResults !== 1 || x.json.Resources[0].id !== u.id) throw new Error(`filter on seeded externalId: ${x.text}`);
  }
  const g = await http(w.origin, "GET", `/scim/v2/Groups/${s.big}?attributes=displayName`);
  if (g.status !== 200 || !/^Group \d{6}$/.test(g.json.displayName)) throw new Error(`GET seeded group: ${g.text}`);
  const u0 = await http(w.origin, "GET", `/scim/v2/Users/${s.users[0].id}?attributes=groups`);
  if (!u0.json.groups?.some((x) => x.value === s.big)) throw new Error(`seeded membership not visible: ${u0.text}`);
  const gt = await http(w.origin, "POST", "/scim/v2/Groups", { ...groupBody(twin), members: [{ value: s.users[0].id }] });
  const gRow = await w.db.prepare("SELECT data FROM resources WHERE id = ?").bind(gt.json.id).first();
  if (gRow.data !== s.groupTpl.replaceAll("__I__", twin)) throw new Error("group template differs from API write");
  await http(w.origin, "DELETE", `/scim/v2/Groups/${gt.json.id}`);
  await http(w.origin, "DELETE", `/scim/v2/Users/${created.json.id}`);
  log(`validated: API-written twin byte-identical to the seed template; ${sample.length} seeded users read back by id, userName and externalId`);
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
function specs(base, users, bigGroup, patchBody) {
  const sample = shuffle([...users]).slice(0, 20000);
  return {
    get: { lines: writeLines(sample.map((u) => `${base}/Users/${u.id}`)) },
    userName: { lines: writeLines(sample.map((u) => `${base}/Users?filter=${enc(`userName eq "${u.userName}"`)}`)) },
    externalId: { lines: writeLines(sample.map((u) => `${base}/Users?filter=${enc(`externalId eq "${u.externalId}"`)}`)) },
    list100: { lines: writeLines([`${base}/Users?startIndex=1&count=100`]) },
    post: { method: "POST", lines: writeLines([`${base}/Users`]), body: writeBody(userBody("__N__")) },
    patch: { method: "PATCH", lines: writeLines(sample.map((u) => `${base}/Users/${u.id}`)), body: writeBody(patchBody) },
    addMember: (pool) => ({ method: "PATCH", lines: writeLines(pool.map((id) => `${base}/Groups/${bigGroup}\t${id}`)), body: writeBody(ADD_MEMBER) }),
    delete: (pool) => ({ method: "DELETE", mode: "once", lines: writeLines(pool.map((id) => `${base}/Users/${id}`)) }),
  };
}
const seededUsers = (s) => s.users.map((u) => ({ id: u.id, userName: u.user_name, externalId: u.external_id }));

/** One request per operation with SCIM_DEBUG_TIMING=1; reads the D1 round trips it made. */
async function roundTrips(w, s) {
  const pool = await seedPool(w.db, s.userTpl, 900000, 2);
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
  for (const op of OP_NAMES) {
    const [method, p, body] = reqs[op];
    const r = await http(w.origin, method, `/scim/v2${p}`, body);
    const st = r.headers.get("server-timing") ?? "";
    const m = st.match(/d1;desc="(\d+) round trips?";dur=([\d.]+)/);
    out[op] = { status: r.status, roundTrips: m ? Number(m[1]) : null, d1_ms: m ? Number(m[2]) : null };
    if (r.status >= 400) throw new Error(`round-trip probe ${op}: ${r.status} ${r.text}`);
  }
  // Clean up the probe's writes so the measured data set is the seeded one.
  await w.db.prepare("DELETE FROM resources WHERE type = 'User' AND user_name LIKE 'userrt-probe%'").run();
  await w.db.prepare("DELETE FROM resources WHERE id = ?").bind(pool[0]).run();
  log(`round trips: ${OP_NAMES.map((op) => `${op}=${out[op].roundTrips}`).join(" ")}`);
  return out;
}

/** Ceilings and scim-edge in one Miniflare, each operation paired with the D1 ceiling. */
async function runMiniflare(state, s, poolStart) {
  const res = {};
  const users = seededUsers(s);
  const sample = shuffle([...users]).slice(0, 20000);
  const w = await startMiniflareAll(state);
  const probe = await fetch(`${w.origin}/ceiling-d1?id=${sample[0].id}`);
  if (probe.status !== 200) throw new Error(`ceiling-d1 does not see the seeded data: ${probe.status}`);
  const check = await http(w.origin, "GET", `/scim/v2/Users/${sample[0].id}`);
  if (check.status !== 200) throw new Error(`scim-edge does not see the seeded data: ${check.status} ${check.text}`);
  const constSpec = { lines: writeLines(["/ceiling-const"]) };
  const d1Spec = { lines: writeLines(sample.map((u) => `/ceiling-d1?id=${u.id}`)) };
  await wrk(w.origin, { ...d1Spec, seconds: WARMUP || 1 });
  const const1 = await measure(`miniflare ${s.size} ceiling-const`, w.origin, constSpec);
  const sp = specs("/scim/v2", users, s.big, ENTRA_PATCH);
  for (const op of ["get", "userName", "externalId", "list100", "post", "patch"]) {
    if (wanted(op)) res[op] = await paired(`miniflare ${s.size} ${op}`, w.origin, d1Spec, () => sp[op]);
  }
  if (wanted("addMember") || wanted("delete")) {
    const pool = await seedPool(w.db, s.userTpl, poolStart, POOL);
    const slice = (round) => pool.filter((_, i) => i % ROUNDS === round);
    if (wanted("addMember")) res.addMember = await paired(`miniflare ${s.size} addMember`, w.origin, d1Spec, (r) => sp.addMember(slice(r)));
    if (wanted("delete")) res.delete = await paired(`miniflare ${s.size} delete`, w.origin, d1Spec, (r) => sp.delete(slice(r)));
  }
  const const2 = await measure(`miniflare ${s.size} ceiling-const`, w.origin, constSpec);
  res.ceilingConst = const1.rps >= const2.rps ? const1 : const2;
  res.ceilingConst.rounds = [const1.rps, const2.rps];
  res.ceilingD1 = { rps: median(Object.values(res).filter((x) => x.ceilingD1).map((x) => x.ceilingD1)) };
  await w.stop();
  return res;
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
      if (a[op] && b[op]) {
        const cpu = a[op].cpu_us && b[op].cpu_us ? `${(b[op].cpu_us / a[op].cpu_us).toFixed(2)}x` : "?";
        lines.push(`| ${OP_LABELS[op]} | ${rtOf(op)} | ${a[op].cpu_us} | ${b[op].cpu_us} | ${cpu} | ${a[op].ratioD1}x | ${b[op].ratioD1}x | ${ratio(a[op].ratioD1, b[op].ratioD1)} |`);
      }
    }
  }
  return lines.join("\n");
}

function markdown(results) {
  return `# scim-edge benchmark\n\n${results.date} · ${results.machine} · Node ${results.node}\n\nMethod: ${results.method}.\n${table(results)}\n`;
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
    method: `wrk -t1 -c${CONNECTIONS} -d${DURATION}s (+${WARMUP}s warm-up) on 127.0.0.1; Miniflare: ${ROUNDS} rounds per operation, each paired with the D1 ceiling`,
    sizes: {},
  };
  for (const size of SIZES) {
    const state = path.join(OUT, `d1-${size}`);
    rmSync(state, { recursive: true, force: true });
    mkdirSync(state, { recursive: true });
    const r = {};
    let w = await startMiniflare("main", state, { debug: true });
    const s = await seed(w, size);
    await validate(w, s);
    r.roundTrips = await roundTrips(w, s);
    await w.stop();
    if (RUNNERS.includes("wrangler")) {
      const copy = path.join(OUT, `d1-${size}-wrangler`);
      rmSync(copy, { recursive: true, force: true });
      cpSync(state, copy, { recursive: true });
    }
    for (const runner of RUNNERS) {
      const st = runner === "miniflare" ? state : path.join(OUT, `d1-${size}-wrangler`);
      r[runner] = runner === "miniflare" ? await runMiniflare(st, s, 500000) : await runRunner(runner, st, s, 700000);
      results.sizes[size] = r;
      writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
    }
    if (PEER) r.peer = await runPeer(size);
    results.sizes[size] = r;
    writeFileSync(path.join(OUT, "results.json"), JSON.stringify(results, null, 2));
  }
  const md = markdown(results);
  writeFileSync(path.join(OUT, "results.md"), md);
  rmSync(path.join(OUT, "tmp"), { recursive: true, force: true });
  console.log(md);
}

await main();
