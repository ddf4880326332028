// Extension schemas a tenant declares through the admin API, through workerd + local D1:
// served per tenant by /Schemas and /ResourceTypes (how Okta discovers custom attributes),
// validated with their types on every write, filtered with them, unique where declared so,
// and invisible to other tenants. Request bodies follow Entra's documented custom-extension
// shape (learn.microsoft.com: "Tutorial: Develop and plan provisioning for a SCIM endpoint")
// and Okta's SCIM 2.0 flow (discovery, POST, PUT for profile updates, PATCH for active).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startWorker, assertScimError, USER_SCHEMA, patchOps } from "./harness.mjs";

const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
const CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

let w;
before(async () => {
  w = await startWorker({ adminToken: ADMIN });
});
after(async () => {
  await w?.stop();
});

const admin = (method, path, body) => w.request(method, `/admin/api${path}`, { token: ADMIN, body });
const scim = (token, method, path, body) =>
  w.request(method, `/scim/v2${path}`, { token, body, contentType: "application/scim+json" });

async function tenantWithToken(id) {
  assert.equal((await admin("POST", "/tenants", { id })).status, 201);
  const r = await admin("POST", `/tenants/${id}/tokens`, {});
  assert.equal(r.status, 201, r.text);
  return r.json.token;
}

const declaration = {
  resourceType: "User",
  schema: {
    id: CUSTOM,
    name: "CustomExtension",
    description: "Attributes the IT admin added to the Entra mapping",
    attributes: [
      { name: "CustomAttribute", type: "string" },
      { name: "costCode", type: "integer" },
      { name: "badgeId", type: "string", caseExact: true, uniqueness: "server" },
      { name: "startDate", type: "dateTime" },
    ],
  },
};

test("a declared extension is discovered, validated, filtered, unique and per tenant", async () => {
  const a = await tenantWithToken("decl-a");
  const b = await tenantWithToken("decl-b");
  const put = await admin("PUT", `/tenants/decl-a/schemas/${CUSTOM}`, declaration);
  assert.equal(put.status, 201, put.text);
  assert.equal(put.json.schema.attributes[2].uniqueness, "server");
  assert.deepEqual(put.json.stored, { checked: 0, conflicting: 0, conflicts: [], complete: true, duplicateValues: 0 });

  // Discovery, as Okta does it: the resource type names the extension, /Schemas describes it.
  const rt = await scim(a, "GET", "/ResourceTypes/User");
  assert.ok(rt.json.schemaExtensions.some((e) => e.schema === CUSTOM && e.required === false), rt.text);
  const schema = await scim(a, "GET", `/Schemas/${CUSTOM}`);
  assert.equal(schema.status, 200, schema.text);
  assert.equal(schema.json.meta.location, `${w.origin}/scim/v2/Schemas/${CUSTOM}`);
  assert.deepEqual(
    schema.json.attributes.map((x) => [x.name, x.type, x.mutability, x.returned]),
    [
      ["CustomAttribute", "string", "readWrite", "default"],
      ["costCode", "integer", "readWrite", "default"],
      ["badgeId", "string", "readWrite", "default"],
      ["startDate", "dateTime", "readWrite", "default"],
    ],
  );
  // Tenant b sees none of it.
  const bTypes = await scim(b, "GET", "/ResourceTypes/User");
  assert.ok(!bTypes.text.includes(CUSTOM));
  assert.equal((await scim(b, "GET", `/Schemas/${CUSTOM}`)).status, 404);
  assert.ok(!(await scim(b, "GET", "/Schemas")).text.includes(CUSTOM));

  // Entra's user with the custom extension.
  const user = (userName, ext) => ({
    schemas: [USER_SCHEMA, CUSTOM],
    externalId: userName,
    userName,
    active: true,
    [CUSTOM]: ext,
  });
  const created = await scim(a, "POST", "/Users", user("ada@contoso.com", { CustomAttribute: "x", costCode: 42, badgeId: "B-1", startDate: "2026-01-05T09:00:00Z" }));
  assert.equal(created.status, 201, created.text);
  assert.equal(created.json[CUSTOM].costCode, 42);
  assertScimError(assert, await scim(a, "POST", "/Users", user("bad@contoso.com", { costCode: "forty-two" })), 400, "invalidValue");
  assertScimError(assert, await scim(a, "POST", "/Users", user("bad@contoso.com", { startDate: "last monday" })), 400, "invalidValue");
  assertScimError(assert, await scim(a, "POST", "/Users", user("bad@contoso.com", { nickName: "no such attribute" })), 400, "invalidSyntax");
  // Tenant b keeps the same body verbatim: undeclared there.
  const kept = await scim(b, "POST", "/Users", user("ada@contoso.com", { costCode: "forty-two" }));
  assert.equal(kept.status, 201, kept.text);
  assert.equal(kept.json[CUSTOM].costCode, "forty-two");

  // Uniqueness: badgeId is caseExact, so "b-1" is another value; "B-1" is taken.
  assertScimError(assert, await scim(a, "POST", "/Users", user("bob@contoso.com", { badgeId: "B-1" })), 409, "uniqueness");
  const bob = await scim(a, "POST", "/Users", user("bob@contoso.com", { badgeId: "b-1", costCode: 7, startDate: "2025-06-01T00:00:00Z" }));
  assert.equal(bob.status, 201, bob.text);

  // Filters use the declared types: integers compare as numbers, dateTimes as instants.
  const q = async (filter) => (await scim(a, "GET", `/Users?filter=${encodeURIComponent(filter)}`)).json;
  assert.equal((await q(`${CUSTOM}:costCode gt 10`)).totalResults, 1);
  assert.equal((await q(`${CUSTOM}:startDate gt "2025-12-31T23:00:00-02:00"`)).totalResults, 1);
  assert.equal((await q(`${CUSTOM}:badgeId eq "B-1"`)).Resources[0].userName, "ada@contoso.com");
  const badType = await scim(a, "GET", `/Users?filter=${encodeURIComponent(`${CUSTOM}:costCode gt "ten"`)}`);
  assertScimError(assert, badType, 400, "invalidFilter");

  // Okta updates profiles with PUT; Entra PATCHes the attribute by its URN path.
  const id = created.json.id;
  const replaced = await scim(a, "PUT", `/Users/${id}`, user("ada@contoso.com", { CustomAttribute: "y", costCode: 43, badgeId: "B-1" }));
  assert.equal(replaced.status, 200, replaced.text);
  assert.equal(replaced.json[CUSTOM].costCode, 43);
  assert.equal(replaced.json[CUSTOM].startDate, undefined, "PUT replaces");
  const patched = await scim(a, "PATCH", `/Users/${id}`, patchOps({ op: "Replace", path: `${CUSTOM}:CustomAttribute`, value: "z" }));
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.json[CUSTOM].CustomAttribute, "z");
  const badPatch = await scim(a, "PATCH", `/Users/${id}`, patchOps({ op: "replace", path: `${CUSTOM}:costCode`, value: "many" }));
  assertScimError(assert, badPatch, 400, "invalidValue");
  assert.equal((await scim(a, "GET", `/Users/${id}`)).json[CUSTOM].costCode, 43, "nothing stored half-way");
});

test("declaring over kept data reports what does not fit and loses nothing", async () => {
  const t = await tenantWithToken("decl-late");
  const body = { schemas: [USER_SCHEMA, CUSTOM], userName: "late@contoso.com", [CUSTOM]: { costCode: "n/a", CustomAttribute: "kept" } };
  const u = await scim(t, "POST", "/Users", body);
  assert.equal(u.status, 201, u.text);
  const put = await admin("PUT", `/tenants/decl-late/schemas/${CUSTOM}`, declaration);
  assert.equal(put.status, 201, put.text);
  assert.equal(put.json.stored.checked, 1);
  assert.equal(put.json.stored.conflicting, 1);
  assert.equal(put.json.stored.conflicts[0].id, u.json.id);
  assert.match(put.json.stored.conflicts[0].detail, /costCode/);
  const got = await scim(t, "GET", `/Users/${u.json.id}`);
  assert.equal(got.json[CUSTOM].costCode, "n/a", "served as stored");
  // Other attributes still PATCH while the conflicting one waits for its fix.
  const p = await scim(t, "PATCH", `/Users/${u.json.id}`, patchOps({ op: "replace", path: `${CUSTOM}:costCode`, value: 5 }));
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json[CUSTOM].costCode, 5);
  const list = await admin("GET", "/tenants/decl-late/schemas");
  assert.deepEqual(list.json.schemas.map((s) => s.schema.id), [CUSTOM]);
  assert.equal((await admin("DELETE", `/tenants/decl-late/schemas/${CUSTOM}`)).status, 204);
  assert.equal((await scim(t, "GET", `/Schemas/${CUSTOM}`)).status, 404);
  assert.equal((await scim(t, "GET", `/Users/${u.json.id}`)).json[CUSTOM].CustomAttribute, "kept");
});

test("a tenant that refuses undeclared extensions names the URN in its 400", async () => {
  const t = await tenantWithToken("decl-strict");
  const r = await admin("PATCH", "/tenants/decl-strict", { extensions: "reject" });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.extensions, "reject");
  const body = { schemas: [USER_SCHEMA, CUSTOM], userName: "r@contoso.com", [CUSTOM]: { CustomAttribute: "x" } };
  const refused = await scim(t, "POST", "/Users", body);
  assertScimError(assert, refused, 400, "invalidSyntax");
  assert.ok(refused.json.detail.includes(CUSTOM), refused.text);
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE tenant = 'decl-strict'"), 0);
  assert.equal((await admin("PUT", `/tenants/decl-strict/schemas/${CUSTOM}`, declaration)).status, 201);
  assert.equal((await scim(t, "POST", "/Users", body)).status, 201);
});
