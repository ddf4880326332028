// The OAuth token endpoint and issued credentials under attack, through workerd + local D1
// with the Workers rate-limiting bindings (Miniflare's `ratelimits`): failed token requests
// from one source cannot lock a tenant's real client out, and access tokens end with the
// client that obtained them (rotated past its overlap, or revoked with its rotation chain).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { startWorker, assertScimError } from "./harness.mjs";

const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
let w;

before(async () => {
  w = await startWorker({ adminToken: ADMIN });
});
after(async () => {
  await w?.stop();
});

/** Any request by absolute path (see `Worker.request`). */
const call = (method, path, { worker = w, ...opts } = {}) => worker.request(method, path, { ...opts });

const admin = async (method, path, body, worker = w) => {
  const r = await call(method, `/admin/api${path}`, { token: ADMIN, body, worker });
  return r;
};

async function tenantWithClient(id, worker = w) {
  assert.equal((await admin("POST", "/tenants", { id }, worker)).status, 201);
  const r = await admin("POST", `/tenants/${id}/tokens`, { type: "oauth_client" }, worker);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const form = (id, secret) =>
  `grant_type=client_credentials&client_id=${encodeURIComponent(id)}&client_secret=${encodeURIComponent(secret)}`;

/** A token request as Cloudflare's edge delivers it: from `source` in CF-Connecting-IP. */
const tokenRequest = (tenant, id, secret, source, worker = w) =>
  call("POST", `/t/${tenant}/oauth/token`, { form: form(id, secret), headers: { "CF-Connecting-IP": source }, worker });

async function accessToken(tenant, id, secret) {
  const r = await tokenRequest(tenant, id, secret, "198.51.100.7");
  assert.equal(r.status, 200, r.text);
  return r.json.access_token;
}

const users = async (tenant, token) => (await call("GET", `/t/${tenant}/scim/v2/Users`, { token })).status;

test("failed token requests from one source: that source gets 429, the real client still gets its token", async () => {
  const limited = await startWorker({
    adminToken: ADMIN,
    options: {
      ratelimits: {
        RATE_LIMITER: { simple: { limit: 5, period: 60 } },
        AUTH_ATTEMPT_LIMITER: { simple: { limit: 3, period: 60 } },
      },
      bindings: { RATE_LIMIT_PERIOD: "60" },
    },
  });
  try {
    // Miniflare's windows are aligned to the minute: start early in one.
    const into = Date.now() % 60_000;
    if (into > 40_000) await new Promise((res) => setTimeout(res, 60_000 - into + 100));
    const client = await tenantWithClient("victim", limited);
    const attacker = "203.0.113.9";
    const wrong = `scim_cs_${"A".repeat(43)}`;
    // The tenant id is public; the attacker tries the real client id with a wrong secret, a
    // made-up client id, and a client id of the wrong shape, far past every limit.
    for (const [id, what] of [[client.clientId, "wrong secret"], [randomUUID(), "unknown client"], ["nobody", "malformed id"]]) {
      const statuses = [];
      for (let i = 0; i < 12; i++) statuses.push((await tokenRequest("victim", id, wrong, attacker, limited)).status);
      assert.ok(statuses.every((s) => s === 401 || s === 429), `${what}: ${statuses}`);
      assert.equal(statuses.at(-1), 429, `${what}: the attacker's source is throttled: ${statuses}`);
    }
    const refused = await tokenRequest("victim", client.clientId, wrong, attacker, limited);
    assert.equal(refused.status, 429);
    assert.equal(refused.json.error, "temporarily_unavailable");
    assert.equal(refused.headers.get("retry-after"), "60");
    // The real client, from its own address, is not locked out, and its token works.
    const ok = await tokenRequest("victim", client.clientId, client.clientSecret, "198.51.100.7", limited);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.token_type, "Bearer");
    const r = await call("GET", "/t/victim/scim/v2/Users", { token: ok.json.access_token, worker: limited });
    assert.equal(r.status, 200, r.text);
    // Nor from an IPv6 address.
    const v6 = await tokenRequest("victim", client.clientId, client.clientSecret, "2001:db8:7::1", limited);
    assert.equal(v6.status, 200, v6.text);
    assert.equal(
      await limited.count("SELECT count(*) FROM credentials WHERE tenant = 'victim' AND kind = 'access'"),
      2,
      "failed requests store nothing",
    );
  } finally {
    await limited.stop();
  }
});

test("rotating an OAuth client with overlap 0 ends its access tokens at once", async () => {
  const client = await tenantWithClient("rotate-zero");
  const access = await accessToken("rotate-zero", client.clientId, client.clientSecret);
  assert.equal(await users("rotate-zero", access), 200, "verified and cached by this isolate");
  const r = await admin("POST", `/tenants/rotate-zero/tokens/${client.id}/rotate`, { overlapSeconds: 0 });
  assert.equal(r.status, 201, r.text);
  assertScimError(assert, await call("GET", "/t/rotate-zero/scim/v2/Users", { token: access }), 401, undefined);
  const fresh = await accessToken("rotate-zero", r.json.clientId, r.json.clientSecret);
  assert.equal(await users("rotate-zero", fresh), 200);
  assert.equal((await tokenRequest("rotate-zero", client.clientId, client.clientSecret, "198.51.100.7")).status, 401);
});

test("revoking the newest of a rotated chain ends its predecessor; chain=true ends the successors", async () => {
  const c1 = await tenantWithClient("chain");
  const rotated = await admin("POST", `/tenants/chain/tokens/${c1.id}/rotate`, {});
  assert.equal(rotated.status, 201, rotated.text);
  const c2 = rotated.json;
  const a1 = await accessToken("chain", c1.clientId, c1.clientSecret);
  const a2 = await accessToken("chain", c2.clientId, c2.clientSecret);
  assert.equal(await users("chain", a1), 200, "the predecessor works during its overlap");
  assert.equal(await users("chain", a2), 200);
  const listed = (await admin("GET", "/tenants/chain/tokens")).json.tokens;
  assert.deepEqual(listed.map((t) => [t.id, t.status, t.replacedBy]), [[c1.id, "active", c2.id], [c2.id, "active", null]]);

  const r = await admin("DELETE", `/tenants/chain/tokens/${c2.id}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, "revoked");
  assert.deepEqual(r.json.alsoRevoked, [c1.id]);
  assert.equal(await users("chain", a1), 401, "the predecessor's access token");
  assert.equal(await users("chain", a2), 401);
  assert.equal((await tokenRequest("chain", c1.clientId, c1.clientSecret, "198.51.100.7")).status, 401);
  const after = (await admin("GET", "/tenants/chain/tokens")).json.tokens;
  assert.deepEqual(after.map((t) => t.status), ["revoked", "revoked"]);
  assert.equal(await w.count("SELECT count(*) FROM credentials WHERE tenant = 'chain' AND revoked IS NULL"), 0);

  // Bearer tokens b1 -> b2: revoking the old one keeps the new one, unless chain=true.
  const b1 = (await admin("POST", "/tenants/chain/tokens", { label: "bearer" })).json;
  const b2 = (await admin("POST", `/tenants/chain/tokens/${b1.id}/rotate`, { overlapSeconds: 600 })).json;
  const early = await admin("DELETE", `/tenants/chain/tokens/${b1.id}`);
  assert.deepEqual(early.json.alsoRevoked, []);
  assert.equal(await users("chain", b1.token), 401);
  assert.equal(await users("chain", b2.token), 200, "the successor survives a plain revocation");
  const b3 = (await admin("POST", `/tenants/chain/tokens/${b2.id}/rotate`, { overlapSeconds: 600 })).json;
  const all = await admin("DELETE", `/tenants/chain/tokens/${b2.id}?chain=true`);
  assert.equal(all.status, 200, all.text);
  assert.deepEqual(all.json.alsoRevoked, [b1.id, b3.id]);
  assert.equal(await users("chain", b2.token), 401);
  assert.equal(await users("chain", b3.token), 401);
  const bad = await admin("DELETE", `/tenants/chain/tokens/${b2.id}?chain=yes`);
  assert.equal(bad.status, 400, bad.text);
});
