// Findings of the security probe (issue "Hardening") that are resource-level: references with
// scripting schemes, and per-tenant storage quotas. Through workerd + local D1.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, patchOps as ops } from "./harness.mjs";

let w;
before(async () => {
  w = await startWorker();
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
