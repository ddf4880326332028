// Oversized bodies sent chunked (no Content-Length), over real loopback connections: every
// path that takes a body answers 413 with a SCIM Error, the connection stays usable, and
// another tenant writing at the same time is not disturbed.
//
// Before the fix the worker stopped reading one byte past the limit and cancelled the rest of
// the stream. workerd then dropped the connection the body came on: in Miniflare the client's
// next request on that keep-alive connection failed with ECONNRESET, and unknown paths
// answered 404. Under `wrangler dev`, whose proxy worker shares its connections to the user
// worker between clients, other clients' writes failed with `503 Your worker restarted
// mid-request`. Miniflare alone does not show that second effect, so the last test starts
// `wrangler dev` itself (loopback port, temporary config and state, bounded, stopped after).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, ROOT, USER_SCHEMA, ERROR_SCHEMA, PATCH_OP } from "./harness.mjs";

const MAX_BODY = 1024 * 1024;
const BIG = 3 * 1024 * 1024;
const ADMIN = "e2e-admin-token-for-body-limits";

/**
 * Sends `size` bytes chunked (no Content-Length) through `agent`; resolves with the answer,
 * or `{status: "error: …"}` when the connection fails.
 */
function sendChunked(base, method, p, { agent, headers = {}, size = BIG }) {
  return new Promise((resolve) => {
    const u = new URL(p, base);
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent, headers: { ...headers, "Transfer-Encoding": "chunked" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text }));
      },
    );
    req.on("error", (e) => resolve({ status: `error: ${e.code ?? e.message}` }));
    const chunk = Buffer.alloc(64 * 1024, "x");
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}

/** A 413 SCIM Error naming its request id. */
function assert413(r, what) {
  assert.equal(r.status, 413, `${what}: ${r.status} ${r.text ?? ""}`);
  const json = JSON.parse(r.text);
  assert.deepEqual(json.schemas, [ERROR_SCHEMA], what);
  assert.equal(json.status, "413", what);
  assert.match(r.headers["content-type"] ?? "", /^application\/scim\+json/, what);
  assert.ok(json.detail.includes(r.headers["x-request-id"]), `${what}: ${r.text}`);
}

/** Creates tenant `id` with an issued token through the admin API at `origin`; returns it. */
async function tenantToken(origin, id) {
  const call = async (p, body) => {
    const res = await fetch(`${origin}/admin/api${p}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = await res.json();
    assert.equal(res.status, 201, JSON.stringify(json));
    return json;
  };
  await call("/tenants", { id, name: `Tenant ${id}` });
  return (await call(`/tenants/${id}/tokens`, { label: "writer" })).token;
}

/** Creates users in `tenant` one after another until `stop()` says so; returns the statuses. */
async function writeUntil(origin, tenant, token, stop, label) {
  const statuses = [];
  for (let i = 0; !stop(); i++) {
    const r = await fetch(`${origin}/t/${tenant}/scim/v2/Users`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" },
      body: JSON.stringify({ schemas: [USER_SCHEMA], userName: `${label}.${i}@other.example` }),
    })
      .then(async (res) => `${res.status}${res.status === 201 ? "" : ` ${(await res.text()).slice(0, 120)}`}`)
      .catch((e) => `error: ${e.cause?.code ?? e.message}`);
    statuses.push(r);
  }
  return statuses;
}

let w;
let otherToken;
before(async () => {
  w = await startWorker({ port: 0, adminToken: ADMIN });
  otherToken = await tenantToken(w.origin, "other");
});
after(async () => {
  await w?.stop();
});

test("a 3 MB chunked body gets 413 on every path that takes one, over one reused connection, while another tenant writes", async () => {
  const u = await w.createUser("body.limits@contoso.com");
  const auth = { Authorization: `Bearer ${w.token}`, "Content-Type": "application/scim+json" };
  const cases = [
    ["POST", "/scim/v2/Users", auth],
    ["PUT", `/scim/v2/Users/${u.id}`, auth],
    ["PATCH", `/scim/v2/Users/${u.id}`, auth],
    ["POST", "/scim/v2/.search", auth],
    ["POST", "/scim/v2/Groups", {}],
    ["POST", "/t/other/scim/v2/Users", { Authorization: `Bearer ${otherToken}` }],
    ["POST", "/admin/api/tenants", { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" }],
    ["POST", "/t/other/oauth/token", { "Content-Type": "application/x-www-form-urlencoded" }],
    ["POST", "/nowhere", {}],
  ];
  const before = await w.count("SELECT count(*) FROM resources");
  // One socket for every big body: a connection left broken shows up on the next request.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let done = false;
  const writes = writeUntil(w.origin, "other", otherToken, () => done, "mf");
  try {
    for (let round = 0; round < 2; round++) {
      for (const [method, p, headers] of cases) {
        const r = await sendChunked(w.origin, method, p, { agent, headers });
        assert413(r, `${method} ${p} (round ${round})`);
      }
    }
  } finally {
    done = true;
    agent.destroy();
  }
  const statuses = await writes;
  assert.ok(statuses.length > 0);
  assert.deepEqual(statuses.filter((s) => s !== "201"), [], "every concurrent write of the other tenant succeeded");
  assert.equal(await w.count("SELECT count(*) FROM resources"), before + statuses.length, "only the small writes were stored");
  // A body just under the limit, streamed in several chunks, is still read whole and applied.
  const patch = JSON.stringify({ schemas: [PATCH_OP], Operations: [{ op: "replace", path: "title", value: "Streamed" }] });
  const bytes = new TextEncoder().encode(patch + " ".repeat(MAX_BODY - patch.length));
  let at = 0;
  const res = await fetch(`${w.base}/Users/${u.id}`, {
    method: "PATCH",
    headers: auth,
    body: new ReadableStream({
      pull(c) {
        if (at >= bytes.length) return c.close();
        c.enqueue(bytes.slice(at, at + 100_000));
        at += 100_000;
      },
    }),
    duplex: "half",
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.equal(JSON.parse(text).title, "Streamed");
});

test("a chunked body on a method that takes none is read and dropped; the answer is the method's", async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await sendChunked(w.origin, "GET", "/scim/v2/ServiceProviderConfig", { agent, headers: { Authorization: `Bearer ${w.token}` } });
      assert.equal(r.status, 200, `GET ${i}: ${r.status} ${r.text ?? ""}`);
      assert.equal(JSON.parse(r.text).bulk.maxPayloadSize, MAX_BODY);
    }
  } finally {
    agent.destroy();
  }
});

/** A free loopback port. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** Runs a wrangler command to completion (bounded); rejects on failure. */
function wrangler(args, env, timeoutMs) {
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(ROOT, "node_modules/.bin/wrangler"), args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (c) => (out += c));
    p.stderr.on("data", (c) => (out += c));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("exit", (code) => {
      clearTimeout(timer);
      code === 0 ? resolve(out) : reject(new Error(`wrangler ${args[0]} failed (${code}):\n${out}`));
    });
  });
}

test("under wrangler dev, 3 s of 3 MB chunked bodies disturb no other tenant's write", { timeout: 120_000, skip: !existsSync(path.join(ROOT, "build/entry.mjs")) && "build/ not built" }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "scim-body-limits-"));
  const config = path.join(dir, "wrangler.toml");
  // The project's worker and migrations, without the [build] step (build/ is already built).
  writeFileSync(
    config,
    [
      `name = "scim-edge-body-limits"`,
      `main = ${JSON.stringify(path.join(ROOT, "build/entry.mjs"))}`,
      `compatibility_date = "2026-04-20"`,
      `[[d1_databases]]`,
      `binding = "DB"`,
      `database_name = "scim"`,
      `database_id = "00000000-0000-0000-0000-000000000000"`,
      `migrations_dir = ${JSON.stringify(path.join(ROOT, "schema/migrations"))}`,
    ].join("\n"),
  );
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" };
  const state = path.join(dir, "state");
  await wrangler(["d1", "migrations", "apply", "DB", "--local", "-c", config, "--persist-to", state], env, 60_000);
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const token = "body-limits-default-token";
  const dev = spawn(
    path.join(ROOT, "node_modules/.bin/wrangler"),
    ["dev", "-c", config, "--persist-to", state, "--ip", "127.0.0.1", "--port", String(port), "--var", `SCIM_TOKEN:${token}`, "--var", `ADMIN_TOKEN:${ADMIN}`, "--show-interactive-dev-session=false"],
    { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let log = "";
  dev.stdout.on("data", (c) => (log += c));
  dev.stderr.on("data", (c) => (log += c));
  const stopDev = () => {
    try {
      process.kill(-dev.pid, "SIGKILL"); // the process group this test started, and nothing else
    } catch {}
  };
  const guard = setTimeout(stopDev, 110_000); // stops by itself even if the test hangs
  try {
    for (let i = 0; ; i++) {
      const ok = await fetch(`${origin}/scim/v2/ServiceProviderConfig`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (i > 120 || dev.exitCode !== null) throw new Error(`wrangler dev did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const other = await tenantToken(origin, "other");
    let done = false;
    const writers = [1, 2, 3, 4].map((n) => writeUntil(origin, "other", other, () => done, `wd${n}`));
    const bigs = [];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const t0 = Date.now();
    try {
      while (Date.now() - t0 < 3000) {
        const p = bigs.length % 2 ? "/nowhere" : "/scim/v2/Users";
        const r = await sendChunked(origin, "POST", p, { agent, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" } });
        bigs.push(r.status === 413 ? 413 : `${p}: ${r.status} ${(r.text ?? "").slice(0, 80)}`);
      }
    } finally {
      done = true;
      agent.destroy();
    }
    const writes = (await Promise.all(writers)).flat();
    assert.ok(writes.length > 0 && bigs.length > 1, `${writes.length} writes, ${bigs.length} big bodies`);
    assert.deepEqual(writes.filter((s) => s !== "201"), [], `all ${writes.length} writes of the other tenant succeeded`);
    assert.deepEqual(bigs.filter((s) => s !== 413), [], `all ${bigs.length} big bodies answered 413`);
  } finally {
    clearTimeout(guard);
    stopDev();
    rmSync(dir, { recursive: true, force: true });
  }
});
