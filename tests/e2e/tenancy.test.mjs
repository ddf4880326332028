// Many tenants in one deployment, through workerd + local D1: the admin API, issued tokens
// (stored hashed, shown once), the isolation matrix, revocation, expiry, rotation overlap,
// the OAuth 2.0 client credentials grant and per-tenant rate limiting with the Workers
// rate-limiting binding (Miniflare's `ratelimits`).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { startWorker, assertScimError, USER_SCHEMA, GROUP_SCHEMA, PATCH_OP, OBJECT_STORAGE, roundTrips } from "./harness.mjs";

const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
const SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
let w;

before(async () => {
  w = await startWorker({ adminToken: ADMIN });
});
after(async () => {
  await w?.stop();
});

/** Any request by absolute path (see `Worker.request`). */
const call = (method, path, { worker = w, ...opts } = {}) => worker.request(method, path, { ...opts });

const admin = (method, path, body, worker = w) => call(method, `/admin/api${path}`, { token: ADMIN, body, worker });

async function createTenant(id) {
  const r = await admin("POST", "/tenants", { id, name: `Tenant ${id}` });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function issue(tenant, body = {}) {
  const r = await admin("POST", `/tenants/${tenant}/tokens`, body);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function createUser(token, userName, prefix = "/scim/v2") {
  const r = await call("POST", `${prefix}/Users`, { token, body: { schemas: [USER_SCHEMA], userName } });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function rowsOf(tenant) {
  const q = async (sql) => (await w.db.prepare(sql).bind(tenant).all()).results;
  return {
    resources: await q("SELECT id, type, data, modified, version FROM resources WHERE tenant = ? ORDER BY id"),
    members: await q("SELECT group_id, member_id FROM members WHERE tenant = ? ORDER BY 1, 2"),
    tolerances: await q("SELECT name, count FROM tolerance_counts WHERE tenant = ? ORDER BY name"),
  };
}

test("admin API: tenants and tokens; the secret is shown once and only its SHA-256 is stored", async () => {
  const t = await createTenant("hash-check");
  assert.equal(t.scimUrl, `${w.origin}/t/hash-check/scim/v2`);
  const issued = await issue("hash-check", { label: "Entra production" });
  assert.match(issued.token, /^scim_[A-Za-z0-9_-]{43}$/);
  assert.equal(issued.label, "Entra production");
  assert.equal(issued.status, "active");
  assert.equal(issued.lastUsed, null);
  const row = await w.db.prepare("SELECT * FROM credentials WHERE id = ?").bind(issued.id).first();
  assert.equal(row.hash, createHash("sha256").update(issued.token).digest("hex"));
  assert.ok(!JSON.stringify(row).includes(issued.token.slice(5)), "no plaintext secret stored");

  const u = await createUser(issued.token, "hash@check.test");
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE tenant = 'hash-check' AND id = ?", u.id), 1);
  const byUrl = await call("GET", `/t/hash-check/scim/v2/Users/${u.id}`, { token: issued.token });
  assert.equal(byUrl.status, 200);
  assert.equal(byUrl.json.meta.location, `${w.origin}/t/hash-check/scim/v2/Users/${u.id}`);

  const list = await admin("GET", "/tenants/hash-check/tokens");
  assert.equal(list.status, 200);
  assert.equal(list.json.tokens.length, 1);
  const listed = list.json.tokens[0];
  assert.equal(listed.id, issued.id);
  assert.equal(listed.token, undefined);
  assert.ok(!list.text.includes(issued.token.slice(5)), "list never shows the secret");
  assert.match(listed.lastUsed, /^\d{4}-\d\d-\d\dT/, "last use is recorded");
  assert.equal((await admin("GET", `/tenants/hash-check/tokens/${issued.id}`)).json.label, "Entra production");

  const tenants = await admin("GET", "/tenants");
  assert.ok(tenants.json.tenants.some((x) => x.id === "hash-check"));
  assert.ok(tenants.json.tenants.some((x) => x.id === "default"));
  const dup = await admin("POST", "/tenants", { id: "hash-check" });
  assert.equal(dup.status, 409);
  assert.equal(dup.json.error, "conflict");
  assert.match(dup.headers.get("content-type"), /^application\/json/);
  const bad = await admin("POST", "/tenants", { id: "Not Valid" });
  assert.equal(bad.status, 400);
  assert.match(bad.json.message, /lower-case/);
  assert.equal((await admin("GET", "/tenants/missing/tokens")).status, 404);
});

test("isolation matrix: tenant A's token against tenant B's resources gets 401 or 404 and changes nothing", async () => {
  await createTenant("iso-a");
  await createTenant("iso-b");
  const a = (await issue("iso-a")).token;
  const b = (await issue("iso-b")).token;
  const bUser = await createUser(b, "bob@iso-b.test");
  const bUser2 = await createUser(b, "carol@iso-b.test");
  const bGroup = (await call("POST", "/scim/v2/Groups", { token: b, body: { schemas: [GROUP_SCHEMA], displayName: "B Team", members: [{ value: bUser.id }] } })).json;
  const aUser = await createUser(a, "alice@iso-a.test");
  const before = await rowsOf("iso-b");
  assert.equal(before.resources.length, 3);

  const userBody = { schemas: [USER_SCHEMA], userName: "bob@iso-b.test", displayName: "Pwned" };
  const groupBody = { schemas: [GROUP_SCHEMA], displayName: "B Team", members: [{ value: aUser.id }] };
  const patchUser = { schemas: [PATCH_OP], Operations: [{ op: "replace", path: "displayName", value: "Pwned" }] };
  const patchGroup = { schemas: [PATCH_OP], Operations: [{ op: "add", path: "members", value: [{ value: bUser2.id }] }] };
  const search = (filter) => ({ schemas: [SEARCH], filter });
  const searchUsers = search('userName sw "bob" or userName sw "carol"');
  const searchGroups = search('displayName eq "B Team"');
  const secretsOfB = [bUser.id, bUser2.id, bGroup.id, "bob@iso-b.test", "carol@iso-b.test", "B Team"];

  // Every endpoint and method. Under A's own URLs B's ids do not exist (404) and lists are
  // A's; naming B in the URL with A's token is refused before anything is read (401).
  const cases = [];
  for (const prefix of ["/scim/v2", "/t/iso-a/scim/v2", "/t/iso-b/scim/v2"]) {
    const refused = prefix === "/t/iso-b/scim/v2";
    const item = refused ? [401] : [404];
    const collection = refused ? [401] : [200, 201];
    for (const [rt, id, full, patch, query] of [["Users", bUser.id, userBody, patchUser, searchUsers], ["Groups", bGroup.id, groupBody, patchGroup, searchGroups]]) {
      cases.push(["GET", `${prefix}/${rt}/${id}`, undefined, item]);
      cases.push(["GET", `${prefix}/${rt}/${id}?attributes=id`, undefined, item]);
      cases.push(["PUT", `${prefix}/${rt}/${id}`, full, item]);
      cases.push(["PATCH", `${prefix}/${rt}/${id}`, patch, item]);
      cases.push(["DELETE", `${prefix}/${rt}/${id}`, undefined, item]);
      cases.push(["DELETE", `${prefix}/${rt}/${id}`, undefined, item, { "If-Match": 'W/"1"' }]);
      cases.push(["GET", `${prefix}/${rt}`, undefined, collection]);
      cases.push(["GET", `${prefix}/${rt}?filter=${encodeURIComponent(`id eq "${id}"`)}`, undefined, collection]);
      cases.push(["POST", `${prefix}/${rt}/.search`, query, collection]);
    }
    // A POST of B's userName creates A's own user (uniqueness is per tenant), never B's.
    cases.push(["POST", `${prefix}/Users`, { ...userBody, userName: `bob+${cases.length}@iso-b.test` }, collection]);
    cases.push(["POST", `${prefix}/Groups`, { schemas: [GROUP_SCHEMA], displayName: `B Team ${cases.length}`, members: [{ value: bUser.id }] }, refused ? [401] : [400]]);
    cases.push(["POST", `${prefix}/.search`, search('displayName eq "B Team"'), collection]);
    for (const p of ["/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User", "/Schemas"]) {
      cases.push(["GET", `${prefix}${p}`, undefined, refused ? [401] : [200]]);
    }
  }
  for (const [method, path, body, allowed, headers] of cases) {
    const r = await call(method, path, { token: a, body, headers });
    assert.ok(allowed.includes(r.status), `${method} ${path}: expected ${allowed}, got ${r.status} ${r.text}`);
    for (const s of secretsOfB) {
      // A's POSTs echo A's own new userName, which merely resembles B's; errors may quote
      // what the request itself sent (an id in the path, a member id in the body).
      if (method === "POST" && r.status === 201) continue;
      if (path.includes(s) || JSON.stringify(body ?? "").includes(s)) continue;
      assert.ok(!r.text.includes(s), `${method} ${path} leaked ${s}: ${r.text}`);
    }
    if (r.status >= 400) assertScimError(assert, r, r.status, r.json?.scimType);
  }
  assert.deepEqual(await rowsOf("iso-b"), before, "nothing of tenant B changed");
  // And B still sees exactly its own data.
  const mine = await call("GET", "/scim/v2/Users", { token: b });
  assert.deepEqual(mine.json.Resources.map((u) => u.userName).sort(), ["bob@iso-b.test", "carol@iso-b.test"]);
  // Tokens of B cannot be managed through A's admin path either.
  const bTokens = (await admin("GET", "/tenants/iso-b/tokens")).json.tokens;
  const viaA = await admin("DELETE", `/tenants/iso-a/tokens/${bTokens[0].id}`);
  assert.equal(viaA.status, 404);
  assert.equal((await call("GET", "/scim/v2/Users", { token: b })).status, 200);
});

test("the env-secret token is tenant 'default' and cannot reach other tenants", async () => {
  await createTenant("env-iso");
  const t = (await issue("env-iso")).token;
  const u = await createUser(t, "env@iso.test");
  assert.equal((await call("GET", `/scim/v2/Users/${u.id}`, { token: w.token })).status, 404);
  assertScimError(assert, await call("GET", "/t/env-iso/scim/v2/Users", { token: w.token }), 401, undefined);
  assert.equal((await call("GET", "/t/default/scim/v2/Users", { token: w.token })).status, 200);
  assertScimError(assert, await call("GET", "/t/default/scim/v2/Users", { token: t }), 401, undefined);
});

test("revoked and expired tokens get 401", async () => {
  await createTenant("lifecycle");
  const revoked = await issue("lifecycle", { label: "leaked" });
  const short = await issue("lifecycle", { expiresIn: 1 });
  assert.equal((await call("GET", "/scim/v2/Users", { token: revoked.token })).status, 200);
  assert.equal((await call("GET", "/scim/v2/Users", { token: short.token })).status, 200);

  const r = await admin("DELETE", `/tenants/lifecycle/tokens/${revoked.id}`);
  assert.equal(r.status, 200);
  assert.equal(r.json.status, "revoked");
  const denied = await call("GET", "/scim/v2/Users", { token: revoked.token });
  assertScimError(assert, denied, 401, undefined);
  assert.match(denied.headers.get("www-authenticate"), /^Bearer/);
  const row = await w.db.prepare("SELECT revoked FROM credentials WHERE id = ?").bind(revoked.id).first();
  assert.ok(row.revoked, "the revocation is stored");

  await new Promise((res) => setTimeout(res, 1100));
  assertScimError(assert, await call("GET", "/scim/v2/Users", { token: short.token }), 401, undefined);
  const list = (await admin("GET", "/tenants/lifecycle/tokens")).json.tokens;
  assert.deepEqual(list.map((t) => [t.id, t.status]), [[revoked.id, "revoked"], [short.id, "expired"]]);
  // A near-miss of a real token, and tokens that merely look issued, are 401 too.
  const nearMiss = revoked.token.slice(0, -1) + (revoked.token.endsWith("A") ? "B" : "A");
  assertScimError(assert, await call("GET", "/scim/v2/Users", { token: nearMiss }), 401, undefined);
});

test("rotation: old and new tokens both work during the overlap, then only the new one", async () => {
  await createTenant("rotation");
  const old = await issue("rotation", { label: "Okta" });
  const r = await admin("POST", `/tenants/rotation/tokens/${old.id}/rotate`, { overlapSeconds: 2 });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.label, "Okta");
  assert.equal(r.json.previous.id, old.id);
  assert.equal(r.json.previous.replacedBy, r.json.id);
  const fresh = r.json.token;
  assert.notEqual(fresh, old.token);
  for (const token of [old.token, fresh]) {
    assert.equal((await call("GET", "/scim/v2/Users", { token })).status, 200, "overlap");
  }
  assert.equal((await admin("POST", `/tenants/rotation/tokens/${old.id}/rotate`, {})).status, 409);
  await new Promise((res) => setTimeout(res, 2100));
  assertScimError(assert, await call("GET", "/scim/v2/Users", { token: old.token }), 401, undefined);
  assert.equal((await call("GET", "/scim/v2/Users", { token: fresh })).status, 200);
});

test("the admin API refuses SCIM tokens, and the SCIM API refuses the admin token", async () => {
  await createTenant("separation");
  const scim = (await issue("separation")).token;
  for (const token of [scim, w.token, undefined]) {
    const r = await call("GET", "/admin/api/tenants", { token });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error, "unauthorized");
    assert.ok(r.json.message.length > 0);
    const create = await call("POST", "/admin/api/tenants/separation/tokens", { token, body: {} });
    assert.equal(create.status, 401);
  }
  assert.equal(await w.count("SELECT count(*) FROM credentials WHERE tenant = 'separation'"), 1);
  for (const path of ["/scim/v2/Users", "/t/separation/scim/v2/Users", "/t/default/scim/v2/ServiceProviderConfig"]) {
    assertScimError(assert, await call("GET", path, { token: ADMIN }), 401, undefined);
  }
});

test("OAuth 2.0 client credentials grant (RFC 6749 §4.4) with §5.2 errors", async () => {
  await createTenant("oauth");
  await createTenant("oauth-other");
  const client = await issue("oauth", { type: "oauth_client", label: "Entra OAuth" });
  assert.equal(client.type, "oauth_client");
  assert.equal(client.tokenEndpoint, `${w.origin}/t/oauth/oauth/token`);
  assert.match(client.clientSecret, /^scim_cs_/);
  const form = (id, secret) => `grant_type=client_credentials&client_id=${encodeURIComponent(id)}&client_secret=${encodeURIComponent(secret)}`;

  const r = await call("POST", "/t/oauth/oauth/token", { form: form(client.clientId, client.clientSecret) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get("cache-control"), "no-store");
  assert.match(r.headers.get("content-type"), /^application\/json/);
  assert.equal(r.json.token_type, "Bearer");
  assert.equal(r.json.expires_in, 3600);
  const access = r.json.access_token;
  const u = await createUser(access, "oauth@example.test", "/t/oauth/scim/v2");
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE tenant = 'oauth' AND id = ?", u.id), 1);
  assertScimError(assert, await call("GET", "/t/oauth-other/scim/v2/Users", { token: access }), 401, undefined);
  // The client secret itself is not a SCIM token; access tokens are not admin tokens.
  assertScimError(assert, await call("GET", "/scim/v2/Users", { token: client.clientSecret }), 401, undefined);
  assert.equal((await call("GET", "/admin/api/tenants", { token: access })).status, 401);

  const basic = Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64");
  const viaBasic = await call("POST", "/t/oauth/oauth/token", { form: "grant_type=client_credentials", headers: { Authorization: `Basic ${basic}` } });
  assert.equal(viaBasic.status, 200, viaBasic.text);

  const errors = [
    ["/t/oauth/oauth/token", form(client.clientId, client.clientSecret.slice(0, -2) + "xx"), 401, "invalid_client"],
    ["/t/oauth-other/oauth/token", form(client.clientId, client.clientSecret), 401, "invalid_client"],
    ["/t/oauth/oauth/token", "grant_type=client_credentials", 401, "invalid_client"],
    ["/t/oauth/oauth/token", `grant_type=password&username=a&password=b`, 400, "unsupported_grant_type"],
    ["/t/oauth/oauth/token", `client_id=${client.clientId}&client_secret=${client.clientSecret}`, 400, "invalid_request"],
  ];
  for (const [path, body, status, error] of errors) {
    const e = await call("POST", path, { form: body });
    assert.equal(e.status, status, `${path} ${body}: ${e.text}`);
    assert.equal(e.json.error, error);
    assert.equal(typeof e.json.error_description, "string");
    if (status === 401) assert.match(e.headers.get("www-authenticate"), /^Basic/);
  }
  const json = await call("POST", "/t/oauth/oauth/token", { body: { grant_type: "client_credentials" } });
  assert.equal(json.json.error, "invalid_request");

  // Revoking the client ends its access tokens and its grants.
  assert.equal((await admin("DELETE", `/tenants/oauth/tokens/${client.id}`)).status, 200);
  assertScimError(assert, await call("GET", "/t/oauth/scim/v2/Users", { token: access }), 401, undefined);
  const after = await call("POST", "/t/oauth/oauth/token", { form: form(client.clientId, client.clientSecret) });
  assert.equal(after.status, 401);
  assert.equal(after.json.error, "invalid_client");
});

test("per-tenant rate limit: 429 with Retry-After and a SCIM error body, other tenants unaffected", async () => {
  const limited = await startWorker({
    adminToken: ADMIN,
    options: {
      ratelimits: { RATE_LIMITER: { simple: { limit: 5, period: 60 } } },
      bindings: { RATE_LIMIT_PERIOD: "60" },
    },
  });
  try {
    // Miniflare's windows are aligned to the minute: start early in one so the test cannot
    // straddle a window boundary.
    const into = Date.now() % 60_000;
    if (into > 40_000) await new Promise((res) => setTimeout(res, 60_000 - into + 100));
    assert.equal((await admin("POST", "/tenants", { id: "busy" }, limited)).status, 201);
    const t = (await admin("POST", "/tenants/busy/tokens", {}, limited)).json.token;
    for (let i = 0; i < 5; i++) {
      const r = await call("GET", "/scim/v2/Users", { token: t, worker: limited });
      assert.equal(r.status, 200, `request ${i + 1}: ${r.text}`);
    }
    const r = await call("POST", "/scim/v2/Users", { token: t, worker: limited, body: { schemas: [USER_SCHEMA], userName: "too.many@busy.test" } });
    assertScimError(assert, r, 429, undefined);
    assert.equal(r.headers.get("retry-after"), "60");
    assert.equal(await limited.count("SELECT count(*) FROM resources WHERE tenant = 'busy'"), 0, "a refused write changes nothing");
    // The env-token tenant ('default') has its own budget; the admin API is not limited.
    assert.equal((await call("GET", "/scim/v2/Users", { token: limited.token, worker: limited })).status, 200);
    assert.equal((await admin("GET", "/tenants/busy/tokens", undefined, limited)).status, 200);
  } finally {
    await limited.stop();
  }
});

test("an issued token costs one D1 round trip to verify, then none until the cache TTL", async () => {
  const timed = await startWorker({ adminToken: ADMIN, options: { bindings: { SCIM_DEBUG_TIMING: "1" } } });
  // D1's round trips of a read: the directory's own read is one, unless the tenant's
  // directory is in its object (then D1 serves only the token and the tenant's settings).
  const read = OBJECT_STORAGE ? 0 : 1;
  try {
    assert.equal((await admin("POST", "/tenants", { id: "timed" }, timed)).status, 201);
    const t = (await admin("POST", "/tenants/timed/tokens", {}, timed)).json.token;
    // Tokens whose tenant's object has already mirrored the tenant's settings.
    const mirrored = new Set();
    const trips = async (token = t) => {
      const r = await call("GET", "/scim/v2/Users?count=1", { token, worker: timed });
      assert.equal(r.status, 200, r.text);
      const timing = r.headers.get("server-timing");
      // In the object: the read, after mirroring the settings the worker sent if the object's
      // instance has not written them yet (service::relay::adopt; unchanged settings are not
      // written again, so a tenant's later reads are one transaction).
      if (OBJECT_STORAGE) {
        const tx = roundTrips(timing, "do-sql");
        if (mirrored.has(token)) assert.equal(tx, 1, `the read alone, in the object: ${timing}`);
        else assert.ok(tx === 1 || tx === 2, `the read, in the object: ${timing}`);
      }
      mirrored.add(token);
      return roundTrips(timing, "d1");
    };
    assert.equal(await trips(), 1 + read, "verification, then the read");
    for (let i = 0; i < 3; i++) assert.equal(await trips(), read, "cached: the read alone");
    // Worker-secret tokens need no lookup; their tenant's profile (settings, declared schemas)
    // is read once per isolate and TTL, then cached like a verified token's.
    assert.equal(await trips(timed.token), 1 + read, "the default tenant's profile, then the read");
    assert.equal(await trips(timed.token), read, "env tokens need no lookup");
  } finally {
    await timed.stop();
  }
});
