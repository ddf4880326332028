// Attributes at the core level that no schema defines (an IT admin's mapping mistake in Entra
// or Okta: `nickname2` instead of `nickName`), through workerd + local D1. They are kept
// verbatim as the `unknownAttribute` tolerance, returned, projected and PATCHable, counted
// per tenant (admin API), and refused with the RFC's 400 for a strict tenant.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, patchOps, USER_SCHEMA, GROUP_SCHEMA } from "./harness.mjs";

const ADMIN = "e2e-admin-token-for-core-unknown";
let w;
before(async () => {
  w = await startWorker({ adminToken: ADMIN });
});
after(async () => {
  await w?.stop();
});

function admin(method, path, body) {
  return w.request(method, `/admin/api${path}`, { token: ADMIN, body });
}

async function unknownAttributeCount() {
  const r = await admin("GET", "/tenants/default/tolerances");
  assert.equal(r.status, 200, r.text);
  return r.json.tolerances.find((t) => t.name === "unknownAttribute")?.count ?? 0;
}

let userId;

test("POST keeps an attribute no schema defines; GET and projections return it", async () => {
  const r = await w.post("/Users", {
    schemas: [USER_SCHEMA],
    userName: "mapping.mistake@contoso.com",
    active: true,
    nickname2: "Babs",
    badge: { id: "7", since: "2020" },
    tags: ["a"],
  });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.nickname2, "Babs");
  assert.deepEqual(r.json.schemas, [USER_SCHEMA], "no schema is claimed for it");
  userId = r.json.id;
  const got = await w.get(`/Users/${userId}`);
  assert.equal(got.status, 200);
  assert.equal(got.json.nickname2, "Babs");
  assert.deepEqual(got.json.badge, { id: "7", since: "2020" });
  assert.deepEqual(got.json.tags, ["a"]);
  const row = await w.db.prepare("SELECT data FROM resources WHERE id = ?").bind(userId).first();
  assert.equal(JSON.parse(row.data).nickname2, "Babs", "stored verbatim at the core level");

  const only = await w.get(`/Users/${userId}?attributes=NICKNAME2,badge.id`);
  assert.equal(only.status, 200, only.text);
  assert.deepEqual(
    { nickname2: only.json.nickname2, badge: only.json.badge, userName: only.json.userName },
    { nickname2: "Babs", badge: { id: "7" }, userName: undefined },
  );
  const without = await w.get(`/Users/${userId}?excludedAttributes=nickname2,tags`);
  assert.equal(without.status, 200, without.text);
  assert.equal(without.json.nickname2, undefined);
  assert.equal(without.json.tags, undefined);
  assert.equal(without.json.userName, "mapping.mistake@contoso.com");
  assert.equal(await unknownAttributeCount(), 1);
});

test("PATCH by path, sub-attribute path and path-less key; the first spelling stays", async () => {
  const r = await w.patch(
    `/Users/${userId}`,
    patchOps(
      { op: "Replace", path: "NickName2", value: "Bee" },
      { op: "replace", path: "badge.id", value: "8" },
      { op: "add", path: "tags", value: ["b"] },
      { op: "Add", value: { costCentre: "42", "urn:ietf:params:scim:schemas:core:2.0:User:shoeSize": 44 } },
    ),
  );
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.nickname2, "Bee");
  assert.equal(r.json.NickName2, undefined);
  assert.deepEqual(r.json.badge, { id: "8", since: "2020" });
  assert.deepEqual(r.json.tags, ["a", "b"]);
  assert.equal(r.json.costCentre, "42");
  assert.equal(r.json.shoeSize, 44);
  const removed = await w.patch(`/Users/${userId}`, patchOps({ op: "remove", path: "costCentre" }));
  assert.equal(removed.status, 200, removed.text);
  assert.equal(removed.json.costCentre, undefined);
  const got = await w.get(`/Users/${userId}`);
  assert.equal(got.json.nickname2, "Bee");
  assert.equal(got.json.costCentre, undefined);
  // Counted once per request that showed it (the capitalised op is a tolerance of its own).
  assert.equal(await unknownAttributeCount(), 3);
  // Value filters need a schema to type them: a clear 400, as on undeclared extensions.
  const filtered = await w.patch(`/Users/${userId}`, patchOps({ op: "remove", path: 'tags[value eq "a"]' }));
  assertScimError(assert, filtered, 400, "invalidPath");
});

test("what no resource may hold stays refused: another type's attribute, bad names, nesting", async () => {
  const group = await w.post("/Groups", { schemas: [GROUP_SCHEMA], displayName: "Mapped", owner: "it-admin" });
  assert.equal(group.status, 201, group.text);
  assert.equal(group.json.owner, "it-admin", "groups keep theirs too");
  const before = await w.count("SELECT count(*) FROM resources");
  for (const [body, scimType] of [
    [{ schemas: [USER_SCHEMA], userName: "m1@contoso.com", members: [{ value: group.json.id }] }, "invalidSyntax"],
    [{ schemas: [USER_SCHEMA], userName: "m2@contoso.com", "has space": 1 }, "invalidSyntax"],
    [{ schemas: [USER_SCHEMA], userName: "m3@contoso.com", deep: { deeper: { x: 1 } } }, "invalidValue"],
  ]) {
    assertScimError(assert, await w.post("/Users", body), 400, scimType);
  }
  assertScimError(assert, await w.post("/Groups", { schemas: [GROUP_SCHEMA], displayName: "G2", userName: "x" }), 400, "invalidSyntax");
  assertScimError(assert, await w.patch(`/Groups/${group.json.id}`, patchOps({ op: "add", path: "userName", value: "x" })), 400, "invalidPath");
  assertScimError(assert, await w.get(`/Users/${userId}?attributes=members`), 400, "invalidValue");
  assert.equal(await w.count("SELECT count(*) FROM resources"), before);
});

test("a strict tenant gets the 400 of before on POST, PUT and PATCH, and nothing is stored", async () => {
  const set = await admin("PATCH", "/tenants/default", { strictPatch: true });
  assert.equal(set.status, 200, set.text);
  try {
    const countBefore = await unknownAttributeCount();
    const stored = await w.db.prepare("SELECT data, version FROM resources WHERE id = ?").bind(userId).first();
    const post = await w.post("/Users", { schemas: [USER_SCHEMA], userName: "strict@contoso.com", nickname2: "x" });
    assertScimError(assert, post, 400, "invalidSyntax");
    assert.match(post.json.detail, /unknown attribute 'nickname2'/);
    const put = await w.put(`/Users/${userId}`, { schemas: [USER_SCHEMA], userName: "mapping.mistake@contoso.com", nickname2: "x" });
    assertScimError(assert, put, 400, "invalidSyntax");
    for (const op of [{ op: "replace", path: "nickname2", value: "x" }, { op: "add", value: { shoeSize: 45 } }]) {
      assertScimError(assert, await w.patch(`/Users/${userId}`, patchOps(op)), 400, "invalidPath");
    }
    assert.equal(await w.count("SELECT count(*) FROM resources WHERE data LIKE '%strict@contoso.com%'"), 0);
    assert.deepEqual(await w.db.prepare("SELECT data, version FROM resources WHERE id = ?").bind(userId).first(), stored);
    assert.equal(await unknownAttributeCount(), countBefore);
  } finally {
    await admin("PATCH", "/tenants/default", { strictPatch: false });
  }
});
