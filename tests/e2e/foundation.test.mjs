// End-to-end behaviour of the foundation through workerd + local D1: discovery, auth,
// Users and Groups CRUD, lists, ETags and every error path, with what is stored afterwards.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE } from "./harness.mjs";

let w;
before(async () => {
  w = await startWorker({ tokens: ["rotated-token-aaaaaaaaaaaa"] });
});
after(async () => {
  await w?.stop();
});

test("Entra Test Connection: filter on a random userName answers 200 with an empty list", async () => {
  const r = await w.get(`/Users?filter=${encodeURIComponent('userName eq "c9a2b3d1-7f4e-4a7c-9f0e-1b2c3d4e5f60"')}`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^application\/scim\+json/);
  assert.deepEqual(r.json, {
    schemas: ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
    totalResults: 0,
    itemsPerPage: 0,
    startIndex: 1,
    Resources: [],
  });
});

test("requests without a valid bearer token get 401 with WWW-Authenticate", async () => {
  for (const token of [null, "wrong", ""]) {
    const r = await w.get("/Users", { token });
    assertScimError(assert, r, 401, undefined);
    assert.match(r.headers.get("www-authenticate"), /^Bearer/);
  }
  const basic = await w.get("/Users", { headers: { Authorization: "Basic dXNlcjpwYXNz" } });
  assertScimError(assert, basic, 401, undefined);
  const rotated = await w.get("/Users", { token: "rotated-token-aaaaaaaaaaaa" });
  assert.equal(rotated.status, 200, "every token in SCIM_TOKENS is accepted (rotation)");
});

test("discovery endpoints", async () => {
  const spc = await w.get("/ServiceProviderConfig");
  assert.equal(spc.status, 200);
  assert.deepEqual(spc.json.schemas, ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]);
  assert.equal(spc.json.bulk.supported, true);
  assert.equal(spc.json.bulk.maxOperations, 1000);
  assert.equal(spc.json.bulk.maxPayloadSize, 1048576);
  assert.equal(spc.json.filter.supported, true);
  assert.equal(spc.json.etag.supported, true);
  assert.equal(spc.json.meta.location, `${w.base}/ServiceProviderConfig`);

  const rts = await w.get("/ResourceTypes");
  assert.equal(rts.json.totalResults, 2);
  const user = rts.json.Resources.find((r) => r.id === "User");
  assert.equal(user.endpoint, "/Users");
  assert.deepEqual(user.schemaExtensions, [{ schema: ENTERPRISE, required: false }]);
  assert.equal((await w.get("/ResourceTypes/Group")).json.schema, GROUP_SCHEMA);
  assertScimError(assert, await w.get("/ResourceTypes/Device"), 404, undefined);

  const schemas = await w.get("/Schemas");
  assert.deepEqual(schemas.json.Resources.map((s) => s.id).sort(), [ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA].sort());
  const us = await w.get(`/Schemas/${USER_SCHEMA}`);
  assert.equal(us.status, 200);
  const userName = us.json.attributes.find((a) => a.name === "userName");
  assert.equal(userName.uniqueness, "server");
  assert.equal(userName.caseExact, false);
  assert.equal(us.json.attributes.find((a) => a.name === "password").returned, "never");
  assertScimError(assert, await w.get("/Schemas/urn:unknown"), 404, undefined);

  for (const [method, p] of [["POST", "/ServiceProviderConfig"], ["DELETE", "/Schemas"], ["PUT", "/ResourceTypes"], ["PATCH", "/Schemas"]]) {
    assertScimError(assert, await w.fetch(method, p, { body: {} }), 405, undefined);
  }
});

test("user lifecycle: create, read, replace, delete, with what is stored", async () => {
  const body = {
    schemas: [USER_SCHEMA, ENTERPRISE],
    externalId: "e2e-ext-1",
    userName: "Lifecycle@Contoso.com",
    active: true,
    displayName: "Life Cycle",
    locale: "en-US",
    title: "Engineer",
    name: { formatted: "Life Cycle", familyName: "Cycle", givenName: "Life" },
    emails: [{ primary: true, type: "work", value: "lifecycle@contoso.com" }],
    phoneNumbers: [{ type: "mobile", value: "+1 555 0101" }],
    addresses: [{ type: "work", streetAddress: "1 Main St", locality: "Town", country: "US" }],
    roles: [{ value: "Reader", primary: true }],
    [ENTERPRISE]: { department: "Eng", division: "Cloud", costCenter: "42", manager: { value: "m-1" } },
    password: "P@ssw0rd!",
  };
  const c = await w.post("/Users", body);
  assert.equal(c.status, 201, c.text);
  const id = c.json.id;
  assert.equal(c.headers.get("location"), c.json.meta.location);
  assert.equal(c.json.meta.location, `${w.base}/Users/${id}`);
  assert.equal(c.headers.get("etag"), c.json.meta.version);
  assert.match(c.json.meta.version, /^W\/".+"$/);
  assert.match(c.json.meta.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(c.json.meta.created, c.json.meta.lastModified);
  assert.equal(c.json.password, undefined, "password is never returned");
  // The response carries the stored text spliced in: `schemas` lists the extension it holds.
  assert.deepEqual(c.json.schemas, [USER_SCHEMA, ENTERPRISE]);
  for (const k of ["externalId", "userName", "active", "displayName", "locale", "title", "name", "emails", "phoneNumbers", "addresses", "roles", ENTERPRISE]) {
    assert.deepEqual(c.json[k], body[k], `${k} round-trips`);
  }
  const stored = await w.db.prepare("SELECT tenant, type, user_name, external_id, data FROM resources WHERE id = ?").bind(id).first();
  assert.equal(stored.tenant, "default");
  assert.equal(stored.type, "User");
  assert.equal(stored.user_name, "Lifecycle@Contoso.com");
  assert.equal(stored.external_id, "e2e-ext-1");
  assert.ok(!stored.data.includes("P@ssw0rd"), "password is not stored");

  const g = await w.get(`/Users/${id}`);
  assert.equal(g.status, 200);
  assert.deepEqual(g.json, c.json);
  assert.equal(g.headers.get("etag"), c.json.meta.version);
  const notModified = await w.get(`/Users/${id}`, { headers: { "If-None-Match": c.json.meta.version } });
  assert.equal(notModified.status, 304);

  const p = await w.put(`/Users/${id}`, { schemas: [USER_SCHEMA], id: "ignored", userName: "lifecycle2@contoso.com", active: false, meta: { created: "2000-01-01T00:00:00Z" } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.id, id);
  assert.equal(p.json.active, false);
  assert.equal(p.json.title, undefined, "PUT clears what it does not send");
  assert.equal(p.json[ENTERPRISE], undefined);
  assert.deepEqual(p.json.schemas, [USER_SCHEMA], "no extension stored, none listed");
  assert.equal(p.json.meta.created, c.json.meta.created);
  assert.notEqual(p.json.meta.version, c.json.meta.version);
  assertScimError(assert, await w.put(`/Users/${id}`, { schemas: [USER_SCHEMA], userName: "x" }, { headers: { "If-Match": c.json.meta.version } }), 412, undefined);

  const d = await w.delete(`/Users/${id}`);
  assert.equal(d.status, 204);
  assert.equal(d.text, "");
  assertScimError(assert, await w.get(`/Users/${id}`), 404, undefined);
  assertScimError(assert, await w.delete(`/Users/${id}`), 404, undefined);
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE id = ?", id), 0);
});

test("userName uniqueness is case-insensitive and answered 409 uniqueness", async () => {
  await w.createUser("unique.person@contoso.com");
  const r = await w.post("/Users", { schemas: [USER_SCHEMA], userName: "UNIQUE.person@contoso.com" });
  assertScimError(assert, r, 409, "uniqueness");
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE user_name = ? COLLATE NOCASE", "unique.person@contoso.com"), 1);
  const u2 = await w.createUser("other.person@contoso.com");
  const clash = await w.put(`/Users/${u2.id}`, { schemas: [USER_SCHEMA], userName: "Unique.Person@contoso.com" });
  assertScimError(assert, clash, 409, "uniqueness");
});

test("groups: members as rows, User.groups derived, uniqueness, unknown members, cascade", async () => {
  const a = await w.createUser("member.a@contoso.com", { displayName: "Member A" });
  const b = await w.createUser("member.b@contoso.com");
  const g = await w.createGroup("E2E Engineers", [a.id, b.id], { externalId: "grp-ext" });
  assert.equal(g.members.length, 2);
  const ma = g.members.find((m) => m.value === a.id);
  assert.deepEqual(ma, { value: a.id, type: "User", $ref: `${w.base}/Users/${a.id}` });
  const withDisplay = await w.get(`/Groups/${g.id}?attributes=members.display`);
  assert.deepEqual(withDisplay.json.members.map((m) => m.display).sort(), ["Member A", "member.b@contoso.com"]);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", g.id), 2);
  assert.ok(!(await w.db.prepare("SELECT data FROM resources WHERE id = ?").bind(g.id).first()).data.includes("members"));

  const ua = await w.get(`/Users/${a.id}`);
  assert.deepEqual(ua.json.groups, [{ value: g.id, display: "E2E Engineers", type: "direct", $ref: `${w.base}/Groups/${g.id}` }]);

  assertScimError(assert, await w.post("/Groups", { schemas: [GROUP_SCHEMA], displayName: "e2e engineers" }), 409, "uniqueness");
  const ghost = await w.post("/Groups", { schemas: [GROUP_SCHEMA], displayName: "Ghosts", members: [{ value: "no-such-id" }] });
  assertScimError(assert, ghost, 400, "invalidValue");
  assert.match(ghost.json.detail, /no-such-id/);
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE display_name = 'Ghosts'"), 0, "nothing half-written");

  const byName = await w.get(`/Groups?filter=${encodeURIComponent('displayName eq "E2E ENGINEERS"')}&excludedAttributes=members`);
  assert.equal(byName.json.totalResults, 1);
  assert.equal(byName.json.Resources[0].members, undefined);
  assert.equal(byName.json.Resources[0].externalId, "grp-ext");

  assert.equal((await w.delete(`/Users/${b.id}`)).status, 204);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE member_id = ?", b.id), 0);
  assert.deepEqual((await w.get(`/Groups/${g.id}`)).json.members.map((m) => m.value), [a.id]);

  assert.equal((await w.delete(`/Groups/${g.id}`)).status, 204);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", g.id), 0);
  assert.equal((await w.get(`/Users/${a.id}`)).json.groups, undefined);
});

test("lists page with startIndex and count and look up by externalId", async () => {
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push((await w.createUser(`pager${i}@contoso.com`, { externalId: `pager-ext-${i}` })).id);
  const f = encodeURIComponent('externalId eq "pager-ext-2"');
  const one = await w.get(`/Users?filter=${f}`);
  assert.equal(one.json.totalResults, 1);
  assert.equal(one.json.Resources[0].id, ids[2]);
  const all = await w.get("/Users?count=1000");
  const total = all.json.totalResults;
  const page = await w.get(`/Users?startIndex=2&count=2`);
  assert.equal(page.json.totalResults, total);
  assert.equal(page.json.itemsPerPage, 2);
  assert.equal(page.json.startIndex, 2);
  assert.deepEqual(page.json.Resources.map((r) => r.id), all.json.Resources.slice(1, 3).map((r) => r.id));
  const none = await w.get("/Users?count=0");
  assert.equal(none.json.totalResults, total);
  assert.deepEqual(none.json.Resources, []);
  assertScimError(assert, await w.get("/Users?startIndex=x"), 400, "invalidValue");
});

test("malformed input is a SCIM error, never a 5xx, and stores nothing", async () => {
  const before = await w.count("SELECT count(*) FROM resources");
  const cases = [
    [{ raw: "{\"schemas\": [", headers: { "Content-Type": "application/scim+json" } }, 400, "invalidSyntax"],
    [{ raw: "[]", headers: { "Content-Type": "application/json" } }, 400, "invalidSyntax"],
    [{ raw: "", headers: { "Content-Type": "application/json" } }, 400, "invalidSyntax"],
    [{ raw: "userName=x", headers: { "Content-Type": "application/x-www-form-urlencoded" } }, 415, undefined],
    [{ body: { userName: "no-schemas" } }, 400, "invalidSyntax"],
    [{ body: { schemas: [USER_SCHEMA], userName: "bad-attr", "favourite colour": "blue" } }, 400, "invalidSyntax"],
    [{ body: { schemas: [USER_SCHEMA], userName: "bad-attr", members: [] } }, 400, "invalidSyntax"],
    [{ body: { schemas: [USER_SCHEMA] } }, 400, "invalidValue"],
    [{ body: { schemas: [USER_SCHEMA], userName: "t", active: "maybe" } }, 400, "invalidValue"],
    [{ body: { schemas: [USER_SCHEMA], userName: "t", emails: "a@b.c" } }, 400, "invalidValue"],
    [{ body: { schemas: [USER_SCHEMA], userName: "t", name: { givenName: 7 } } }, 400, "invalidValue"],
    [{ raw: JSON.stringify({ schemas: [USER_SCHEMA], userName: "x".repeat(1100000) }), headers: { "Content-Type": "application/json" } }, 413, undefined],
  ];
  for (const [opts, status, scimType] of cases) {
    const r = await w.fetch("POST", "/Users", opts);
    assertScimError(assert, r, status, scimType);
  }
  assertScimError(assert, await w.get("/Nope"), 404, undefined);
  assertScimError(assert, await w.fetch("POST", "/Users/some-id", { body: {} }), 405, undefined);
  assertScimError(assert, await w.get("/Users?sortOrder=up"), 400, "invalidValue");
  assertScimError(assert, await w.get("/Me"), 501, undefined);
  const emptyBulk = await w.post("/Bulk", { schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], Operations: [] });
  assert.equal(emptyBulk.status, 200, emptyBulk.text);
  assert.deepEqual(emptyBulk.json.Operations, []);
  const outside = await w.mf.dispatchFetch(`${w.origin}/`, {});
  assert.equal(outside.status, 404);
  assert.equal(await w.count("SELECT count(*) FROM resources"), before);
});

test("an attribute no schema defines is kept and counted, not refused (an IdP mapping mistake)", async () => {
  const count = () => w.count("SELECT coalesce(sum(count), 0) FROM tolerance_counts WHERE name = 'unknownAttribute'");
  const counted = await count();
  const r = await w.post("/Users", { schemas: [USER_SCHEMA], userName: "kept-attr", favouriteColour: "blue" });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.favouriteColour, "blue");
  assert.equal((await w.get(`/Users/${r.json.id}`)).json.favouriteColour, "blue");
  assert.equal(await count(), counted + 1);
});
