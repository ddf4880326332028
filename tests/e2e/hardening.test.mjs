// Findings of the security probe (issue "Hardening") that are resource-level: references with
// scripting schemes, and per-tenant storage quotas. Through workerd + local D1.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, patchOps as ops } from "./harness.mjs";

const ADMIN = "admin-token-hardening-0123456789";

let w;
before(async () => {
  w = await startWorker({ adminToken: ADMIN });
});
after(async () => {
  await w?.stop();
});

test("references with a scheme other than http, https or urn are refused on POST, PUT and PATCH", async () => {
  for (const bad of ["javascript:alert(document.cookie)", "data:text/html,<script>alert(1)</script>", " javascript:alert(1)"]) {
    const r = await w.post("/Users", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: `x${bad.length}@contoso.com`, profileUrl: bad });
    assertScimError(assert, r, 400, "invalidValue");
  }
  const u = await w.createUser("refs@contoso.com", { profileUrl: "https://contoso.com/refs", photos: [{ value: "https://contoso.com/p.jpg", type: "photo" }] });
  const put = await w.put(`/Users/${u.id}`, { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: "refs@contoso.com", profileUrl: "JavaScript:alert(1)" });
  assertScimError(assert, put, 400, "invalidValue");
  const patch = await w.patch(`/Users/${u.id}`, ops({ op: "replace", path: 'photos[type eq "photo"].value', value: "javascript:alert(1)" }));
  assertScimError(assert, patch, 400, "invalidValue");
  const stored = (await w.get(`/Users/${u.id}`)).json;
  assert.equal(stored.profileUrl, "https://contoso.com/refs");
  assert.deepEqual(stored.photos, [{ value: "https://contoso.com/p.jpg", type: "photo" }]);
  const relative = await w.patch(`/Users/${u.id}`, ops({ op: "replace", path: "profileUrl", value: "/people/refs" }));
  assert.equal(relative.status, 200, relative.text);
  assert.equal(relative.json.profileUrl, "/people/refs");
});

/** Sets the default tenant's quota through the admin API (on either backend: D1 holds it). */
async function setQuota(quota) {
  const r = await w.request("PATCH", "/admin/api/tenants/default", { token: ADMIN, body: { quota } });
  assert.equal(r.status, 200, r.text);
}

test("a tenant's resource and byte quotas answer 507 past the limit and store nothing", async () => {
  const used = await w.count("SELECT coalesce(sum(n), 0) FROM resource_counts WHERE tenant = 'default'");
  await setQuota({ resources: used + 1 });
  try {
    const u = await w.createUser("quota.last@contoso.com");
    const r = await w.post("/Users", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: "quota.over@contoso.com" });
    assertScimError(assert, r, 507, undefined);
    assert.match(r.json.detail, /resources stored, the limit is/);
    assert.equal(await w.count("SELECT count(*) FROM resources WHERE user_name = 'quota.over@contoso.com'"), 0);
    await setQuota({ resources: null, bytes: await w.count("SELECT sum(bytes) FROM resource_counts WHERE tenant = 'default'") });
    const grow = await w.patch(`/Users/${u.id}`, ops({ op: "replace", path: "title", value: "a longer title than before" }));
    assertScimError(assert, grow, 507, undefined);
    assert.equal((await w.get(`/Users/${u.id}`)).json.title, undefined);
    const real = await w.count("SELECT sum(length(CAST(data AS BLOB))) FROM resources WHERE tenant = 'default'");
    assert.equal(await w.count("SELECT sum(bytes) FROM resource_counts WHERE tenant = 'default'"), real);
  } finally {
    await setQuota({ resources: 1000000, bytes: 1073741824 });
  }
});
