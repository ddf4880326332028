// PATCH as Microsoft Entra ID and Okta send it, through workerd + local D1, checking what is
// stored afterwards and that membership changes are row operations.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, ENTERPRISE, patchOps as ops } from "./harness.mjs";

let w;
before(async () => {
  w = await startWorker();
});
after(async () => {
  await w?.stop();
});

test("Entra user update: capitalised ops, string booleans, filtered paths, dotted and URN keys, manager", async () => {
  const kept = { title: "Kept \"as is\"", locale: "en-US", roles: [{ value: "Reader", primary: true }], x509Certificates: [{ value: "TUlJQw==" }] };
  const u = await w.createUser("entra.patch@contoso.com", { active: true, displayName: "Before", ...kept });
  const boss = await w.createUser("entra.boss@contoso.com");
  const r = await w.patch(`/Users/${u.id}`, ops(
    { op: "Replace", path: "displayName", value: "After" },
    { op: "Replace", path: "active", value: "False" },
    { op: "Add", path: 'emails[type eq "work"].value', value: "entra.patch@contoso.com" },
    { op: "Add", path: 'phoneNumbers[type eq "mobile"].value', value: "+1 555 0142" },
    { op: "Add", path: 'addresses[type eq "work"].streetAddress', value: "1 Microsoft Way" },
    { op: "Replace", value: { "name.givenName": "Entra", "name.familyName": "Patch", [`${ENTERPRISE}:department`]: "Finance", [`${ENTERPRISE}:division`]: "EMEA" } },
    { op: "Add", path: `${ENTERPRISE}:manager`, value: boss.id },
  ));
  assert.equal(r.status, 200, r.text);
  const stored = (await w.get(`/Users/${u.id}`)).json;
  assert.equal(stored.displayName, "After");
  assert.equal(stored.active, false);
  assert.deepEqual(stored.emails, [{ type: "work", value: "entra.patch@contoso.com" }]);
  assert.deepEqual(stored.phoneNumbers, [{ type: "mobile", value: "+1 555 0142" }]);
  assert.deepEqual(stored.addresses, [{ type: "work", streetAddress: "1 Microsoft Way" }]);
  assert.deepEqual(stored.name, { givenName: "Entra", familyName: "Patch" });
  assert.equal(stored[ENTERPRISE].department, "Finance");
  assert.equal(stored[ENTERPRISE].manager.value, boss.id);
  // Attributes no operation addressed stay as they were stored (the PATCH copies their text).
  for (const [k, v] of Object.entries(kept)) assert.deepEqual(stored[k], v, k);
  assert.equal(stored.userName, "entra.patch@contoso.com");
  assert.deepEqual(r.json, stored);
  assert.equal(r.headers.get("etag"), stored.meta.version);

  const clear = await w.patch(`/Users/${u.id}`, ops({ op: "Remove", path: `${ENTERPRISE}:manager` }));
  assert.equal(clear.status, 200);
  assert.equal(clear.json[ENTERPRISE].manager, undefined);
  const counted = await w.db.prepare("SELECT count FROM tolerance_counts WHERE tenant = 'default' AND name = 'booleanString'").first();
  assert.equal(counted.count, 1);
});

test("Entra group membership: add several, remove listed only, rename", async () => {
  const users = [];
  for (let i = 0; i < 5; i++) users.push(await w.createUser(`gm${i}@contoso.com`));
  const g = await w.createGroup("Entra Group");
  const add = await w.patch(`/Groups/${g.id}`, ops({ op: "Add", path: "members", value: users.map((u) => ({ value: u.id })) }));
  assert.equal(add.status, 204, add.text);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", g.id), 5);
  const rm = await w.patch(`/Groups/${g.id}`, ops({ op: "Remove", path: "members", value: [{ value: users[0].id }, { value: users[1].id }] }));
  assert.equal(rm.status, 204);
  const left = (await w.db.prepare("SELECT member_id FROM members WHERE group_id = ? ORDER BY member_id").bind(g.id).all()).results.map((r) => r.member_id);
  assert.deepEqual(left, users.slice(2).map((u) => u.id).sort());
  const rename = await w.patch(`/Groups/${g.id}`, ops({ op: "Replace", path: "displayName", value: "Entra Group 2" }));
  assert.equal(rename.status, 204);
  assert.equal((await w.get(`/Groups/${g.id}`)).json.displayName, "Entra Group 2");
  const withBody = await w.patch(`/Groups/${g.id}?excludedAttributes=members`, ops({ op: "remove", path: `members[value eq "${users[2].id}"]` }));
  assert.equal(withBody.status, 200);
  assert.equal(withBody.json.members, undefined);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", g.id), 2);
});

test("Okta: path-less replace of active, whole-list member replace, PUT of the whole user", async () => {
  const u = await w.createUser("okta.user@example.com", { active: true });
  const off = await w.patch(`/Users/${u.id}`, ops({ op: "replace", value: { active: false } }));
  assert.equal(off.status, 200);
  assert.equal(off.json.active, false);
  const a = await w.createUser("okta.a@example.com");
  const b = await w.createUser("okta.b@example.com");
  const g = await w.createGroup("Okta Group", [a.id]);
  const rep = await w.patch(`/Groups/${g.id}`, ops({ op: "replace", path: "members", value: [{ value: b.id }] }));
  assert.equal(rep.status, 204);
  assert.deepEqual((await w.get(`/Groups/${g.id}`)).json.members.map((m) => m.value), [b.id]);
  const full = (await w.get(`/Users/${u.id}`)).json;
  const put = await w.put(`/Users/${u.id}`, { ...full, active: true, password: "x" });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.active, true);
});

test("PATCH errors are SCIM errors and leave the resource unchanged", async () => {
  const u = await w.createUser("patch.errors@contoso.com");
  const before = await w.db.prepare("SELECT data, version FROM resources WHERE id = ?").bind(u.id).first();
  assertScimError(assert, await w.patch(`/Users/${u.id}`, { Operations: [] }), 400, "invalidSyntax");
  assertScimError(assert, await w.patch(`/Users/${u.id}`, ops({ op: "replace", path: "meta.created", value: "x" })), 400, "mutability");
  assertScimError(assert, await w.patch(`/Users/${u.id}`, ops({ op: "replace", path: 'unknownAttr[value eq "x"]', value: "x" })), 400, "invalidPath");
  assertScimError(assert, await w.patch(`/Users/${u.id}`, ops({ op: "remove" })), 400, "noTarget");
  assertScimError(assert, await w.patch(`/Users/${u.id}`, ops({ op: "replace", path: "active", value: [1] })), 400, "invalidValue");
  assertScimError(assert, await w.patch(`/Users/${u.id}`, ops({ op: "replace", path: 'emails[type eq "work"', value: "x" })), 400, "invalidPath");
  assertScimError(assert, await w.patch(`/Users/${u.id}`, ops({ op: "replace", path: "title", value: "x" }), { headers: { "If-Match": 'W/"1"' } }), 412, undefined);
  assertScimError(assert, await w.patch("/Users/nope", ops({ op: "replace", path: "title", value: "x" })), 404, undefined);
  const after = await w.db.prepare("SELECT data, version FROM resources WHERE id = ?").bind(u.id).first();
  assert.deepEqual(after, before);
  assert.equal((await w.get("/ServiceProviderConfig")).json.patch.supported, true);
});
