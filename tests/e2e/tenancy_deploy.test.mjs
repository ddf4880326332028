// Deployment shapes: per-customer wrangler environments (wrangler.toml [env.*]) run fully
// separate, and the admin CLI (scripts/admin.mjs) drives a worker listening on loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from "wrangler";
import { startWorker, assertScimError, ROOT, USER_SCHEMA } from "./harness.mjs";

const run = promisify(execFile);
const CUSTOMERS = ["acme", "globex"];

test("wrangler environments: each customer has its own Worker, D1 database, secrets and limiter", async () => {
  const configPath = path.join(ROOT, "wrangler.toml");
  const configs = CUSTOMERS.map((env) => unstable_readConfig({ config: configPath, env }));
  const options = CUSTOMERS.map((env) => unstable_getMiniflareWorkerOptions(configPath, env).workerOptions);
  assert.deepEqual(configs.map((c) => c.name), ["scim-edge-acme", "scim-edge-globex"]);
  const dbs = configs.map((c) => c.d1_databases.find((d) => d.binding === "DB"));
  assert.notEqual(dbs[0].database_id, dbs[1].database_id);
  assert.notEqual(dbs[0].database_name, dbs[1].database_name);
  for (const db of dbs) assert.equal(db.migrations_dir, "schema/migrations");
  for (const o of options) {
    assert.ok(o.ratelimits?.RATE_LIMITER, "every environment has its rate limiter");
    // Bindings are not inherited by environments: without this one, failed token requests
    // would be counted on the tenant's own budget again.
    assert.ok(o.ratelimits?.AUTH_ATTEMPT_LIMITER, "every environment throttles failed token requests");
    // Nor Durable Object bindings: without it, SCIM_STORAGE = "durable-object" would fail
    // every request of that customer.
    assert.equal(o.durableObjects?.TENANT_STORE?.className, "TenantStore", "every environment can hold tenants in objects");
  }
  // Each says where its directory lives (vars are not inherited: unset would mean d1 anyway).
  assert.deepEqual(configs.map((c) => c.vars.SCIM_STORAGE), ["d1", "d1"]);
  const namespaces = configs.flatMap((c) => c.ratelimits.map((r) => r.namespace_id));
  assert.equal(new Set(namespaces).size, namespaces.length, "no two limiters share a namespace");

  // Both run against ONE local storage directory: if their configs shared a database they
  // would share rows here. Each gets its own SCIM_TOKEN secret.
  const persist = mkdtempSync(path.join(tmpdir(), "scim-envs-"));
  const workers = [];
  try {
    // Vars from wrangler.toml only: the options' bindings would also carry a local .dev.vars.
    for (const [i, o] of options.entries()) {
      workers.push(await startWorker({
        options: { d1Databases: o.d1Databases, ratelimits: o.ratelimits, bindings: configs[i].vars, d1Persist: persist },
      }));
    }
    const [acme, globex] = workers;
    assert.notEqual(acme.token, globex.token);
    const u = await acme.createUser("only.acme@acme.test");
    assert.equal((await acme.get(`/Users/${u.id}`)).status, 200);
    assert.equal((await globex.get(`/Users/${u.id}`)).status, 404);
    assert.equal((await globex.get("/Users")).json.totalResults, 0);
    assert.equal(await globex.count("SELECT count(*) FROM resources"), 0);
    assert.equal(await acme.count("SELECT count(*) FROM resources"), 1);
    // One customer's secret is worthless at the other's Worker.
    assertScimError(assert, await globex.get("/Users", { token: acme.token }), 401, undefined);
    assertScimError(assert, await acme.get("/Users", { token: globex.token }), 401, undefined);
    const g = await globex.post("/Users", { schemas: [USER_SCHEMA], userName: "only.acme@acme.test" });
    assert.equal(g.status, 201, "the same userName is free in the other customer's database");
  } finally {
    for (const w of workers) await w.stop();
    rmSync(persist, { recursive: true, force: true });
  }
});

test("admin CLI: create a tenant, issue, list, rotate and revoke tokens against a worker on loopback", async () => {
  const admin = `admin-${randomBytes(18).toString("base64url")}`;
  const w = await startWorker({ port: 0, adminToken: admin });
  const cli = async (...args) => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, "scripts/admin.mjs"), "--url", w.origin, ...args], {
      env: { ...process.env, ADMIN_TOKEN: admin },
    });
    return JSON.parse(stdout);
  };
  const scim = (token, p = "/t/cli-co/scim/v2/Users") => fetch(`${w.origin}${p}`, { headers: { Authorization: `Bearer ${token}` } });
  try {
    const t = await cli("tenant", "create", "cli-co", "--name", "CLI Co");
    assert.equal(t.id, "cli-co");
    assert.equal(t.name, "CLI Co");
    assert.equal(t.scimUrl, `${w.origin}/t/cli-co/scim/v2`);
    const issued = await cli("token", "issue", "cli-co", "--label", "Entra", "--expires-in", "3600");
    assert.match(issued.token, /^scim_/);
    assert.ok(issued.expires);
    assert.equal((await scim(issued.token)).status, 200);
    const oauth = await cli("token", "issue", "cli-co", "--oauth", "--label=IdP");
    assert.equal(oauth.type, "oauth_client");
    assert.match(oauth.clientSecret, /^scim_cs_/);

    const list = await cli("tokens", "cli-co");
    assert.deepEqual(list.tokens.map((x) => [x.label, x.type, x.status]), [["Entra", "bearer", "active"], ["IdP", "oauth_client", "active"]]);
    assert.ok(!JSON.stringify(list).includes(issued.token.slice(5)), "no secrets in the list");

    const rotated = await cli("token", "rotate", "cli-co", issued.id, "--overlap", "0");
    assert.equal(rotated.previous.id, issued.id);
    assert.equal((await scim(issued.token)).status, 401);
    assert.equal((await scim(rotated.token)).status, 200);
    const revoked = await cli("token", "revoke", "cli-co", rotated.id);
    assert.equal(revoked.status, "revoked");
    assert.equal((await scim(rotated.token)).status, 401);
    assert.ok((await cli("tenants")).tenants.some((x) => x.id === "cli-co"));

    // Declared extension schemas: imported from another server's /Schemas answer.
    const urn = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    const file = path.join(mkdtempSync(path.join(tmpdir(), "scim-cli-")), "schemas.json");
    writeFileSync(file, JSON.stringify({ Resources: [{ id: urn, name: "Custom", attributes: [{ name: "costCode", type: "integer" }] }] }));
    const imported = await cli("schema", "import", "cli-co", file, "--resource-type", "User");
    assert.equal(imported.schema.id, urn);
    assert.equal(imported.stored.checked, 0);
    assert.deepEqual((await cli("schemas", "cli-co")).schemas.map((d) => d.schema.id), [urn]);
    assert.equal((await cli("schema", "show", "cli-co", urn)).resourceType, "User");
    assert.equal((await cli("tenant", "set", "cli-co", "--extensions", "reject")).extensions, "reject");
    assert.deepEqual(await cli("schema", "delete", "cli-co", urn), { ok: true });
    await assert.rejects(cli("schema", "import", "cli-co", file), (e) => e.code === 2 && /resource-type/.test(e.stderr));

    // Failures exit non-zero with the API's message on stderr.
    await assert.rejects(cli("token", "revoke", "cli-co", "no-such-id"), (e) => e.code === 1 && /404 not_found/.test(e.stderr));
    await assert.rejects(
      run(process.execPath, [path.join(ROOT, "scripts/admin.mjs"), "--url", w.origin, "--token", "wrong", "tenants"]),
      (e) => e.code === 1 && /401 unauthorized/.test(e.stderr),
    );
    await assert.rejects(cli("frobnicate"), (e) => e.code === 2 && /usage/.test(e.stderr));
  } finally {
    await w.stop();
  }
});
