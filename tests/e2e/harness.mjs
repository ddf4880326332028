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
  const mf = new Miniflare({
    modules: true,
    // The deployed entry: worker/entry.mjs (copied by scripts/build.sh) around build/index.js.
    scriptPath: path.join(ROOT, "build/entry.mjs"),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
    ],
    compatibilityDate: "2026-04-20",
    d1Databases: { DB: `scim-test-${randomBytes(6).toString("hex")}` },
    bindings,
    host: "127.0.0.1",
    ...(port !== undefined ? { port } : {}),
    ...objects,
    ...options,
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
    return new Worker(mf, db, token, origin);
  } catch (e) {
    // A workerd left running would keep the test process (and CI) alive forever. Miniflare's
    // synchronous D1 proxy can trip over its own message ids on a loaded machine (seen with
    // 2 cores busy compiling): setting up again once is not retrying an assertion.
    await mf.dispose().catch(() => {});
    if (attempt >= 2) throw e;
    return startWorker({ port, tokens, adminToken, options, attempt: attempt + 1, migrate, storage });
  }
}

class Worker {
  constructor(mf, db, token, origin) {
    this.mf = mf;
    this.db = db;
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
