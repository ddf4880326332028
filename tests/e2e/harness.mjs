// Runs the compiled worker (build/worker) in workerd through Miniflare's API, against a
// fresh local D1 database migrated with the files under schema/migrations. No mocks: the
// same wasm and SQL as production.
import { Miniflare } from "miniflare";
import { readFileSync, readdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User";
export const GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group";
export const ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
export const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
export const ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";

/** Whether this run keeps tenants' directories in Durable Objects (`SCIM_E2E_STORAGE`). */
export const OBJECT_STORAGE = process.env.SCIM_E2E_STORAGE === "durable-object";

/**
 * Test options that skip a test in a durable-object run only, with `why`: a capability that
 * backend does not have yet, or a test that reads D1's own tables for what an object holds.
 * `test(name, d1Only("why"), fn)`; in a d1 run the test runs as before.
 */
export const d1Only = (why) => (OBJECT_STORAGE ? { skip: `durable-object: ${why}` } : {});

/**
 * The `Server-Timing` entry (with `SCIM_DEBUG_TIMING=1`) that counts the statement batches of
 * a tenant's directory work: `d1` (round trips), or `do-sql` (the tenant's object's own SQLite
 * transactions) in the durable-object run, where the worker's `d1` entry counts only the
 * control plane's.
 */
export const DIRECTORY_TIMING = OBJECT_STORAGE ? "do-sql" : "d1";

/** What the entry `name` of a `Server-Timing` header counts (NaN if it has none). */
export function roundTrips(timing, name) {
  return Number(new RegExp(`(?:^|,\\s*)${name};desc="(\\d+) (?:round trips?|transactions?|hops?)"`).exec(timing ?? "")?.[1]);
}

/** A PatchOp request body with these operations. */
export const patchOps = (...Operations) => ({ schemas: [PATCH_OP], Operations });

/**
 * Splits the migration files into statements: a statement ends at a line ending in `;`,
 * except inside `CREATE TRIGGER … BEGIN … END;` (no semicolons inside literals in our files).
 */
export function migrationStatements() {
  const dir = path.join(ROOT, "schema/migrations");
  const out = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    let current = [];
    let inTrigger = false;
    for (const line of readFileSync(path.join(dir, f), "utf8").split("\n")) {
      const t = line.trim();
      if (!t || t.startsWith("--")) continue;
      current.push(line);
      if (/^CREATE\s+TRIGGER/i.test(t)) inTrigger = true;
      const ends = inTrigger ? /^END;$/i.test(t) : t.endsWith(";");
      if (ends) {
        out.push(current.join("\n"));
        current = [];
        inTrigger = false;
      }
    }
    if (current.length) out.push(current.join("\n"));
  }
  return out;
}

/**
 * Starts the worker with its own in-memory D1. `port` makes it listen on loopback too
 * (for clients outside this process); otherwise requests go through dispatchFetch.
 * `adminToken` sets the ADMIN_TOKEN secret; `options` are extra Miniflare options (e.g.
 * `ratelimits`, `d1Databases`, `d1Persist`, `queueProducers`; its `bindings` are added to the
 * defaults). `migrate: false` skips the migrations (a restart on a persisted database).
 * `storage` is the SCIM_STORAGE backend: "d1", or "durable-object" (tenants' directories in
 * SQLite-backed Durable Objects, the TENANT_STORE binding); by default the environment's
 * SCIM_E2E_STORAGE, so any e2e file runs against either (`SCIM_E2E_STORAGE=durable-object
 * node --test tests/e2e/foundation.test.mjs`).
 */
export async function startWorker({ port, tokens, adminToken, options = {}, attempt = 1, migrate = true, storage = process.env.SCIM_E2E_STORAGE || "d1" } = {}) {
  const token = randomBytes(24).toString("base64url");
  const bindings = { SCIM_TOKEN: token, SCIM_STORAGE: storage };
  if (tokens) bindings.SCIM_TOKENS = tokens.join(",");
  if (adminToken) bindings.ADMIN_TOKEN = adminToken;
  const objects = storage === "durable-object"
    ? { durableObjects: { TENANT_STORE: { className: "TenantStore", useSQLite: true } } }
    : {};
  // With tenants in objects, tests read (and set up) what objects store through
  // object_entry.mjs (the deployed entry, its object class given a test door,
  // object_door.mjs), or object_entry_faults.mjs for the fault-injection build: `w.objects`,
  // and `w.db` itself in the suite's durable-object run. Elsewhere the entry is exactly the
  // deployed one.
  const effective = options.bindings?.SCIM_STORAGE ?? storage;
  const readable = effective === "durable-object";
  const deployedEntry = options.scriptPath ?? path.join(ROOT, "build/entry.mjs");
  const faultsBuild = path.resolve(deployedEntry) === path.join(ROOT, "build-faults/entry.mjs");
  const entry = !readable
    ? deployedEntry
    : path.join(ROOT, faultsBuild ? "tests/e2e/object_entry_faults.mjs" : "tests/e2e/object_entry.mjs");
  const mf = new Miniflare({
    modules: true,
    // The deployed entry: worker/entry.mjs (copied by scripts/build.sh) around build/index.js.
    scriptPath: entry,
    ...(readable ? { modulesRoot: ROOT } : {}),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
    ],
    compatibilityDate: "2026-04-20",
    d1Databases: { DB: `scim-test-${randomBytes(6).toString("hex")}` },
    bindings,
    host: "127.0.0.1",
    ...(port !== undefined ? { port } : {}),
    ...objects,
    ...options,
    scriptPath: entry,
    bindings: { ...bindings, ...(options.bindings ?? {}) },
  });
  try {
    const url = await mf.ready;
    const db = await mf.getD1Database("DB");
    if (migrate) {
      for (const sql of migrationStatements()) {
        await db.prepare(sql).run();
      }
    }
    const origin = port !== undefined ? url.origin : "http://scim.test";
    const objectsNs = readable ? await mf.getDurableObjectNamespace("TENANT_STORE") : null;
    // A write to the directory's tables goes to the env token's tenant's object, made (and
    // migrated) first by a request of that tenant.
    const warm = () => mf.dispatchFetch(`${origin}/scim/v2/Users?count=1`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.text());
    const reads = new PreparedOnce(db);
    const objectDb = objectsNs ? new DirectoryReads(reads, objectsNs, warm) : null;
    const w = new Worker(mf, objectDb && OBJECT_STORAGE ? objectDb : reads, token, origin);
    /** The tenants' objects' tables, read and written as `w.db` does in the durable-object run. */
    w.objects = objectDb;
    return w;
  } catch (e) {
    // A workerd left running would keep the test process (and CI) alive forever. Miniflare's
    // synchronous D1 proxy can trip over its own message ids on a loaded machine (seen with
    // 2 cores busy compiling, and twice in a row in the suite's durable-object run right after
    // the wrangler-dev upload test): setting up again is not retrying an assertion.
    await mf.dispose().catch(() => {});
    if (attempt >= 3) throw e;
    return startWorker({ port, tokens, adminToken, options, attempt: attempt + 1, migrate, storage });
  }
}

/**
 * D1 through Miniflare's proxy, each SQL text prepared once. `prepare` and `bind` are
 * synchronous proxy calls (Miniflare's `SynchronousFetcher`: a helper thread answers while the
 * test's thread waits in `Atomics.wait`), and that fetcher can take a late wake-up for its
 * answer on a loaded machine: the helper stores "done" and only then notifies, so a call
 * started between the two can wake up before its own answer is there, and every later call
 * then reads the one before it (the `message?.id === id` assertion, for the rest of the
 * file). A test file that reads the database after every request (bad_input's corpus) made
 * more than a hundred such calls; with statements reused, a repeated read makes none.
 * `first`, `all`, `run` and `batch` are asynchronous calls and never go through that fetcher.
 */
class PreparedOnce {
  constructor(proxy) {
    this.proxy = proxy;
    this.statements = new Map();
  }

  prepare(sql) {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = new Reusable(this.proxy.prepare(sql));
      this.statements.set(sql, statement);
    }
    return statement;
  }

  batch(statements) {
    return this.proxy.batch(statements.map((s) => (s instanceof Reusable ? s.statement : s)));
  }
}

/** A prepared statement whose `bind()` without values is the statement itself (no proxy call). */
class Reusable {
  constructor(statement) {
    this.statement = statement;
  }

  bind(...values) {
    return values.length === 0 ? this : this.statement.bind(...values);
  }

  first() {
    return this.statement.first();
  }

  all() {
    return this.statement.all();
  }

  run() {
    return this.statement.run();
  }
}

/** The tables of a tenant's directory: in its object when tenants are kept in objects. */
const DIRECTORY_TABLES = /\b(resources|members|events|resource_counts|tolerance_counts|unique_values|value_index)\b/i;

/**
 * What a test reads with `w.db` (D1's API: `prepare(sql).bind(...).first()/all()/run()`,
 * `batch([...])`) in the durable-object run: a read of the directory's tables runs in every
 * tenant's object (the tenants D1 lists) and their rows are put together, as D1 holds them all
 * in the d1 run; a `count(*)` is summed. A write to them (seeding rows, backdating events,
 * injecting a fault) runs in the object of the env token's tenant (`default`), the tenant the
 * suite's `w.post(...)` writes as. Anything else (the control plane) is D1's.
 */
class DirectoryReads {
  constructor(d1, objects, warm) {
    this.d1 = d1;
    this.objects = objects;
    this.warm = warm;
    /** Triggers a test made in the object, so that dropping one goes there too. */
    this.triggers = new Set();
  }

  prepare(sql) {
    const dropped = /^\s*DROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?(\w+)/i.exec(sql)?.[1];
    const ours = dropped !== undefined && this.triggers.has(dropped);
    if (!DIRECTORY_TABLES.test(sql) && !ours) return this.d1.prepare(sql);
    const reads = this;
    const statement = (params) => ({
      directory: [sql, params],
      bind: (...more) => statement([...params, ...more]),
      all: async () => ({ results: await reads.rows(sql, params) }),
      first: async () => (await reads.rows(sql, params))[0] ?? null,
      run: async () => {
        await reads.write([[sql, params]]);
        return { success: true };
      },
    });
    return statement([]);
  }

  /** D1's `batch`: statements of the directory in one transaction of the default object. */
  async batch(statements) {
    const directory = statements.filter((s) => s.directory);
    if (directory.length === 0) return this.d1.batch(statements);
    if (directory.length !== statements.length) throw new Error("a batch mixes D1's tables and an object's");
    await this.write(directory.map((s) => s.directory));
    return statements.map(() => ({ success: true }));
  }

  async write(statements) {
    // Once: the first request of the tenant makes its object's schema.
    this.warmed ??= this.warm();
    await this.warmed;
    await this.objects.get(this.objects.idFromName("default")).exec(statements);
    for (const [sql] of statements) {
      const made = /^\s*CREATE\s+TRIGGER\s+(\w+)/i.exec(sql)?.[1];
      if (made) this.triggers.add(made);
    }
  }

  async rows(sql, params) {
    const tenants = (await this.d1.prepare("SELECT id FROM tenants ORDER BY id").all()).results;
    const each = await Promise.all(tenants.map((t) => this.objects.get(this.objects.idFromName(t.id)).rows(sql, params)));
    const rows = each.flat();
    // One count per object (none from an object never used): the deployment's is their sum.
    if (/^\s*SELECT\s+count\(\*\)(\s+AS\s+\w+)?\s+FROM\b/i.test(sql) && each.every((r) => r.length <= 1)) {
      const key = Object.keys(rows[0] ?? {})[0] ?? "count(*)";
      return [{ [key]: rows.reduce((n, r) => n + Number(Object.values(r)[0]), 0) }];
    }
    return rows;
  }
}

class Worker {
  constructor(mf, db, token, origin) {
    this.mf = mf;
    this.db = db;
    /** D1 itself, even where `db` reads tenants' objects for the directory's tables. */
    this.d1 = db.d1 ?? db;
    this.token = token;
    this.origin = origin;
    this.base = `${origin}/scim/v2`;
  }

  /**
   * Any request by absolute path, without a token unless one is given: `body` objects are
   * JSON (as `contentType`), `form` strings form-encoded, `raw` sent as it is.
   */
  async request(method, path, { token, body, form, raw, headers = {}, contentType = "application/json" } = {}) {
    const h = { ...headers };
    if (token && !("Authorization" in h)) h.Authorization = `Bearer ${token}`;
    let payload;
    if (raw !== undefined) payload = raw;
    else if (form !== undefined) {
      payload = form;
      h["Content-Type"] ??= "application/x-www-form-urlencoded";
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      h["Content-Type"] ??= contentType;
    }
    const res = await this.mf.dispatchFetch(`${this.origin}${path}`, { method, headers: h, body: payload });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  /** A SCIM request below `/scim/v2` with this worker's token (`token: null` sends none). */
  fetch(method, pathAndQuery, { body, headers = {}, token = this.token, raw } = {}) {
    return this.request(method, `/scim/v2${pathAndQuery}`, {
      body,
      headers,
      raw,
      token: token ?? undefined,
      contentType: "application/scim+json",
    });
  }

  get(p, o) { return this.fetch("GET", p, o); }
  post(p, body, o = {}) { return this.fetch("POST", p, { ...o, body }); }
  put(p, body, o = {}) { return this.fetch("PUT", p, { ...o, body }); }
  patch(p, body, o = {}) { return this.fetch("PATCH", p, { ...o, body }); }
  delete(p, o) { return this.fetch("DELETE", p, o); }

  async createUser(userName, extra = {}) {
    const r = await this.post("/Users", { schemas: [USER_SCHEMA], userName, ...extra });
    if (r.status !== 201) throw new Error(`create user ${userName}: ${r.status} ${r.text}`);
    return r.json;
  }

  async createGroup(displayName, members = [], extra = {}) {
    const r = await this.post("/Groups", {
      schemas: [GROUP_SCHEMA],
      displayName,
      members: members.map((value) => ({ value })),
      ...extra,
    });
    if (r.status !== 201) throw new Error(`create group ${displayName}: ${r.status} ${r.text}`);
    return r.json;
  }

  async count(sql, ...params) {
    const row = await this.db.prepare(sql).bind(...params).first();
    return Object.values(row)[0];
  }

  async stop() {
    await this.mf.dispose();
  }
}

/** Asserts a SCIM error response. */
export function assertScimError(assert, r, status, scimType) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.ok(r.json, `error body must be JSON: ${r.text}`);
  assert.deepEqual(r.json.schemas, [ERROR_SCHEMA]);
  assert.equal(r.json.status, String(status));
  assert.equal(r.json.scimType, scimType, `scimType of ${r.text}`);
  assert.ok(typeof r.json.detail === "string" && r.json.detail.length > 0);
  assert.match(r.headers.get("content-type") ?? "", /^application\/scim\+json/);
}
