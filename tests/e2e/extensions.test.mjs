// Extension schemas and the schema URIs identity providers list, through workerd + local D1,
// with Microsoft Entra ID's documented request bodies
// (learn.microsoft.com: "Tutorial: Develop and plan provisioning for a SCIM endpoint").
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE } from "./harness.mjs";

const ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

let w;
before(async () => {
  w = await startWorker();
});
after(async () => {
  await w?.stop();
});

async function tolerance(name) {
  const row = await w.db.prepare("SELECT count FROM tolerance_counts WHERE tenant = 'default' AND name = ?").bind(name).first();
  return row?.count ?? 0;
}

test("Entra's group create with the ADSCIM schema URI is stored and counted as a tolerance", async () => {
  const body = {
    externalId: "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
    displayName: "Group1DisplayName",
    members: [],
    schemas: [GROUP_SCHEMA, ADSCIM_GROUP],
  };
  const r = await w.post("/Groups", body);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.displayName, "Group1DisplayName");
  assert.equal(r.json.externalId, body.externalId);
  assert.deepEqual(r.json.schemas, [GROUP_SCHEMA]);
  const got = await w.get(`/Groups/${r.json.id}`);
  assert.equal(got.status, 200);
  assert.equal(got.json.displayName, "Group1DisplayName");
  // Entra then looks the group up by displayName and finds it.
  const found = await w.get(`/Groups?excludedAttributes=members&filter=${encodeURIComponent('displayName eq "Group1DisplayName"')}`);
  assert.equal(found.json.totalResults, 1);
  assert.equal(await tolerance("schemaWithoutAttributes"), 1);
});

test("booleans sent as strings in POST and PUT are stored as booleans and counted", async () => {
  const r = await w.post("/Users", {
    schemas: [USER_SCHEMA, ENTERPRISE],
    externalId: "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    userName: "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
    active: "True",
    emails: [{ primary: "true", type: "work", value: "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com" }],
    meta: { resourceType: "User" },
    name: { formatted: "givenName familyName", familyName: "familyName", givenName: "givenName" },
    roles: [],
  });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.active, true);
  assert.equal(r.json.emails[0].primary, true);
  const put = await w.put(`/Users/${r.json.id}`, {
    schemas: [USER_SCHEMA],
    userName: "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
    active: "False",
  });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.active, false);
  const row = await w.db.prepare("SELECT data FROM resources WHERE id = ?").bind(r.json.id).first();
  assert.equal(JSON.parse(row.data).active, false);
  // Deactivation by the string is still a deactivation for filters.
  const inactive = await w.get(`/Users?filter=${encodeURIComponent(`active eq false and userName eq "${put.json.userName}"`)}`);
  assert.equal(inactive.json.totalResults, 1);
  assert.equal(await tolerance("booleanString"), 2);
});

test("a strict tenant refuses both quirks and stores nothing", async () => {
  // Its own worker, made strict before its first request: a tenant's settings are cached per
  // isolate (the admin API clears the cache of the isolate it runs in; see tenancy tests).
  const strict = await startWorker();
  try {
    await strict.db.prepare("UPDATE tenants SET strict_patch = 1 WHERE id = 'default'").run();
    const g = await strict.post("/Groups", { schemas: [GROUP_SCHEMA, ADSCIM_GROUP], displayName: "Strict Group" });
    assertScimError(assert, g, 400, "invalidSyntax");
    assert.match(g.json.detail, /ADSCIM/);
    const u = await strict.post("/Users", { schemas: [USER_SCHEMA], userName: "strict@contoso.com", active: "True" });
    assertScimError(assert, u, 400, "invalidValue");
    assert.equal(await strict.count("SELECT count(*) FROM resources"), 0);
  } finally {
    await strict.stop();
  }
});

const CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

test("a user with an undeclared custom extension round-trips through POST, GET, list and PUT", async () => {
  // Entra with a custom attribute mapped into its own extension schema.
  const body = {
    schemas: [USER_SCHEMA, ENTERPRISE, CUSTOM],
    externalId: "c0ffee",
    userName: "custom.ext@contoso.com",
    active: true,
    [ENTERPRISE]: { department: "Finance" },
    [CUSTOM]: { CustomAttribute: "Value1", Level: 3, Remote: false, Tags: ["a", "b"] },
  };
  const r = await w.post("/Users", body);
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.json[CUSTOM], body[CUSTOM]);
  assert.deepEqual([...r.json.schemas].sort(), [USER_SCHEMA, ENTERPRISE, CUSTOM].sort());
  const got = await w.get(`/Users/${r.json.id}`);
  assert.deepEqual(got.json[CUSTOM], body[CUSTOM]);
  assert.ok(got.json.schemas.includes(CUSTOM));
  const page = await w.get(`/Users?filter=${encodeURIComponent('userName eq "custom.ext@contoso.com"')}`);
  assert.deepEqual(page.json.Resources[0][CUSTOM], body[CUSTOM]);
  // The qualified-key spelling, as some clients send it, lands in the same place.
  const put = await w.put(`/Users/${r.json.id}`, {
    schemas: [USER_SCHEMA, CUSTOM],
    userName: "custom.ext@contoso.com",
    [`${CUSTOM}:CustomAttribute`]: "Value2",
  });
  assert.equal(put.status, 200, put.text);
  assert.deepEqual(put.json[CUSTOM], { CustomAttribute: "Value2" });
  assert.equal(put.json[ENTERPRISE], undefined, "PUT replaced the enterprise extension");
  // Unaddressed by a PATCH, the extension survives it verbatim.
  const p = await w.patch(`/Users/${r.json.id}`, { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations: [{ op: "replace", path: "displayName", value: "Custom" }] });
  assert.equal(p.status, 200, p.text);
  assert.deepEqual(p.json[CUSTOM], { CustomAttribute: "Value2" });
});

test("Entra PATCHes a custom extension attribute by its URN path and as a path-less key", async () => {
  const u = await w.post("/Users", {
    schemas: [USER_SCHEMA, CUSTOM],
    userName: "custom.patch@contoso.com",
    [CUSTOM]: { CustomAttribute: "Before", Kept: "yes" },
  });
  assert.equal(u.status, 201, u.text);
  const id = u.json.id;
  const patch = (...Operations) => w.patch(`/Users/${id}`, { schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], Operations });
  // Entra's form: capitalised op, the attribute's full URN path.
  let r = await patch({ op: "Replace", path: `${CUSTOM}:CustomAttribute`, value: "After" });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json[CUSTOM], { CustomAttribute: "After", Kept: "yes" });
  // Path-less, with the URN-qualified key, beside a core attribute.
  r = await patch({ op: "Replace", value: { displayName: "Custom Patch", [`${CUSTOM}:Level`]: 4 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.displayName, "Custom Patch");
  assert.deepEqual(r.json[CUSTOM], { CustomAttribute: "After", Kept: "yes", Level: 4 });
  // A new extension added by its URN, and an attribute removed.
  const OTHER = "urn:ietf:params:scim:schemas:extension:Other:2.0:User";
  r = await patch({ op: "add", path: OTHER, value: { costCenter: "42" } }, { op: "remove", path: `${CUSTOM}:Kept` });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json[OTHER], { costCenter: "42" });
  assert.deepEqual(r.json[CUSTOM], { CustomAttribute: "After", Level: 4 });
  assert.ok(r.json.schemas.includes(OTHER) && r.json.schemas.includes(CUSTOM));
  const got = (await w.get(`/Users/${id}`)).json;
  assert.deepEqual(got[CUSTOM], r.json[CUSTOM]);
  assert.deepEqual(got[OTHER], r.json[OTHER]);
  // Removing the last attribute drops the extension and its URN from `schemas`.
  r = await patch({ op: "remove", path: OTHER });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json[OTHER], undefined);
  assert.ok(!r.json.schemas.includes(OTHER));
  // The provisioning log names the attributes that changed.
  const ev = await w.db.prepare("SELECT attributes FROM events WHERE resource_id = ? AND op = 'patch' ORDER BY seq").bind(id).all();
  assert.ok(ev.results.some((e) => e.attributes.includes(`${CUSTOM}:CustomAttribute`)), JSON.stringify(ev.results));
  // A value filter on an undeclared attribute has no schema to type it: a clear 400.
  r = await patch({ op: "replace", path: `${CUSTOM}:Tags[value eq "a"]`, value: "b" });
  assertScimError(assert, r, 400, "invalidPath");
});

test("attributes= and excludedAttributes= name undeclared extension attributes", async () => {
  const u = await w.post("/Users", {
    schemas: [USER_SCHEMA, CUSTOM],
    userName: "custom.projection@contoso.com",
    [CUSTOM]: { CustomAttribute: "x", Level: 3 },
  });
  assert.equal(u.status, 201, u.text);
  const only = await w.get(`/Users/${u.json.id}?attributes=${encodeURIComponent(`${CUSTOM}:CustomAttribute`)}`);
  assert.equal(only.status, 200, only.text);
  assert.deepEqual(only.json[CUSTOM], { CustomAttribute: "x" });
  assert.equal(only.json.userName, undefined);
  const without = await w.get(`/Users/${u.json.id}?excludedAttributes=${encodeURIComponent(CUSTOM)}`);
  assert.equal(without.json[CUSTOM], undefined);
  assert.equal(without.json.userName, "custom.projection@contoso.com");
  const core = await w.get(`/Users?filter=${encodeURIComponent('userName eq "custom.projection@contoso.com"')}&attributes=userName`);
  assert.equal(core.json.Resources[0][CUSTOM], undefined, "not asked for, not returned");
});
