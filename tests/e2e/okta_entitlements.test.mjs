// Okta Entitlement Management through workerd + local D1, following Okta's guide "Build a
// SCIM 2.0 server with entitlements": the vendor defines a tenant's roles and entitlements
// (admin API and CLI); Okta discovers the resource types through /ResourceTypes, reads every
// value from their endpoints page by page (its Runscope entitlement test asks
// `?count=1&startIndex=1`), then assigns values to users through `roles` and `entitlements`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import { startWorker, assertScimError, patchOps, ROOT, USER_SCHEMA } from "./harness.mjs";

const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
const ROLE_SCHEMA = "urn:okta:scim:schemas:core:1.0:Role";
const ENTITLEMENT_SCHEMA = "urn:okta:scim:schemas:core:1.0:Entitlement";
const LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
// What Okta's provisioning client sends on every SCIM call.
const OKTA_HEADERS = { Accept: "application/scim+json", "Accept-Charset": "utf-8", "User-Agent": "OKTA SCIM Integration" };
let w;

before(async () => {
  w = await startWorker({ adminToken: ADMIN });
});
after(async () => {
  await w?.stop();
});

const admin = (method, p, body) => w.request(method, `/admin/api${p}`, { token: ADMIN, body });

/** A tenant and a bearer token for it; SCIM calls go to its `/t/{tenant}/scim/v2` URL. */
async function tenant(id) {
  assert.equal((await admin("POST", "/tenants", { id })).status, 201);
  const r = await admin("POST", `/tenants/${id}/tokens`, { label: "Okta" });
  assert.equal(r.status, 201, r.text);
  const token = r.json.token;
  const scim = (method, p, body) =>
    w.request(method, `/t/${id}/scim/v2${p}`, { token, body, headers: OKTA_HEADERS, contentType: "application/scim+json" });
  return { token, scim };
}

async function define(t, list, body) {
  const r = await admin("POST", `/tenants/${t}/${list}`, body);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

/** Okta's discovery: the resource types carrying its role or entitlement URN, each endpoint read whole. */
async function oktaDiscovery(scim) {
  const rts = await scim("GET", "/ResourceTypes");
  assert.equal(rts.status, 200, rts.text);
  const governed = rts.json.Resources.filter((rt) => [ROLE_SCHEMA, ENTITLEMENT_SCHEMA].includes(rt.schema));
  const values = {};
  for (const rt of governed) {
    // Okta's entitlement endpoint test, assertion by assertion.
    const first = await scim("GET", `${rt.endpoint}?count=1&startIndex=1`);
    assert.equal(first.status, 200, first.text);
    assert.ok(first.json.Resources.length > 0);
    assert.ok(first.json.schemas.includes(LIST));
    assert.equal(typeof first.json.startIndex, "number");
    assert.equal(first.json.itemsPerPage, 1);
    assert.equal(typeof first.json.totalResults, "number");
    values[rt.name] = [];
    for (let start = 1; start <= first.json.totalResults; start += 2) {
      const page = await scim("GET", `${rt.endpoint}?startIndex=${start}&count=2`);
      assert.equal(page.status, 200, page.text);
      assert.equal(page.json.startIndex, start);
      values[rt.name].push(...page.json.Resources);
    }
    assert.equal(values[rt.name].length, first.json.totalResults);
  }
  return { resourceTypes: rts.json.Resources, values };
}

test("Okta's flow: discover, page through roles and entitlements, assign them to a user, read the user", async () => {
  const { scim } = await tenant("okta-gov");
  // Before the vendor defines any value, discovery is the plain User/Group one.
  let d = await oktaDiscovery(scim);
  assert.deepEqual(d.resourceTypes.map((rt) => rt.id), ["User", "Group"]);

  for (const [id, displayName] of [["role-1", "First Role"], ["role-2", "Second Role"], ["role-3", "Third Role"]]) {
    await define("okta-gov", "roles", { id, displayName });
  }
  await define("okta-gov", "entitlements", { id: "entitlement123", displayName: "First Entitlement", type: "License" });
  await define("okta-gov", "entitlements", { id: "profile123", displayName: "First Profile", type: "Profile", description: "Profile access" });

  d = await oktaDiscovery(scim);
  const byId = Object.fromEntries(d.resourceTypes.map((rt) => [rt.id, rt]));
  assert.deepEqual(Object.keys(byId), ["User", "Group", "Entitlement", "Role"]);
  assert.deepEqual(
    { id: byId.Role.id, name: byId.Role.name, endpoint: byId.Role.endpoint, schema: byId.Role.schema },
    { id: "Role", name: "Role", endpoint: "/Roles", schema: ROLE_SCHEMA },
  );
  assert.equal(byId.Entitlement.endpoint, "/Entitlements");
  assert.equal(byId.Entitlement.schema, ENTITLEMENT_SCHEMA);
  assert.equal(byId.Role.meta.location, `${w.origin}/t/okta-gov/scim/v2/ResourceTypes/Role`);
  assert.deepEqual(d.values.Role.map((r) => [r.id, r.displayName]), [["role-1", "First Role"], ["role-2", "Second Role"], ["role-3", "Third Role"]]);
  assert.deepEqual(d.values.Role[0].schemas, [ROLE_SCHEMA]);
  assert.deepEqual(
    d.values.Entitlement.map(({ schemas, id, displayName, type, description }) => ({ schemas, id, displayName, type, description })),
    [
      { schemas: [ENTITLEMENT_SCHEMA], id: "entitlement123", displayName: "First Entitlement", type: "License", description: undefined },
      { schemas: [ENTITLEMENT_SCHEMA], id: "profile123", displayName: "First Profile", type: "Profile", description: "Profile access" },
    ],
  );
  // Okta knows its own schemas: /Schemas is left to the extensions it does not know.
  const schemas = await scim("GET", "/Schemas");
  assert.ok(![ROLE_SCHEMA, ENTITLEMENT_SCHEMA].some((urn) => schemas.json.Resources.some((s) => s.id === urn)));
  const one = await scim("GET", "/Roles/role-2");
  assert.equal(one.status, 200);
  assert.equal(one.json.meta.location, `${w.origin}/t/okta-gov/scim/v2/Roles/role-2`);

  // Okta provisions the user, then its governance engine grants a role and entitlements.
  const created = await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "bjensen@example.com", active: true });
  assert.equal(created.status, 201, created.text);
  const id = created.json.id;
  const granted = await scim(
    "PATCH",
    `/Users/${id}`,
    patchOps(
      { op: "add", path: "roles", value: [{ value: "role-1", display: "First Role" }] },
      {
        op: "add",
        path: "entitlements",
        value: [
          { value: "entitlement123", display: "First Entitlement", type: "License" },
          { value: "profile123", display: "First Profile", type: "Profile" },
        ],
      },
    ),
  );
  assert.equal(granted.status, 200, granted.text);
  const revoked = await scim("PATCH", `/Users/${id}`, patchOps({ op: "remove", path: 'entitlements[value eq "profile123"]' }));
  assert.equal(revoked.status, 200, revoked.text);
  let user = await scim("GET", `/Users/${id}`);
  assert.deepEqual(user.json.roles, [{ value: "role-1", display: "First Role" }]);
  assert.deepEqual(user.json.entitlements, [{ value: "entitlement123", display: "First Entitlement", type: "License" }]);

  // Okta's profile push: a PUT of the whole user with the roles it now grants.
  const put = await scim("PUT", `/Users/${id}`, {
    schemas: [USER_SCHEMA],
    userName: "bjensen@example.com",
    active: true,
    roles: [{ value: "role-2", display: "Second Role" }, { value: "role-3", display: "Third Role" }],
    entitlements: [{ value: "entitlement123", display: "First Entitlement", type: "License" }],
  });
  assert.equal(put.status, 200, put.text);
  user = await scim("GET", `/Users/${id}`);
  assert.deepEqual(user.json.roles.map((r) => r.value), ["role-2", "role-3"]);
  // Every assigned value is one Okta discovered.
  const known = new Set(d.values.Role.map((r) => r.id).concat(d.values.Entitlement.map((e) => e.id)));
  assert.ok([...user.json.roles, ...user.json.entitlements].every((a) => known.has(a.value)));
  const filtered = await scim("GET", `/Users?filter=${encodeURIComponent('roles.value eq "role-3"')}`);
  assert.deepEqual(filtered.json.Resources.map((u) => u.id), [id]);
});

test("the endpoints are read-only, filter by eq, and belong to one tenant", async () => {
  const a = await tenant("ent-a");
  const b = await tenant("ent-b");
  await define("ent-a", "roles", { id: "admin", displayName: "A admin" });
  await define("ent-a", "entitlements", { id: "e5", displayName: "E5", type: "License" });
  await define("ent-b", "roles", { id: "admin", displayName: "B admin" });

  for (const [method, p] of [["POST", "/Roles"], ["PUT", "/Roles/admin"], ["PATCH", "/Entitlements/e5"], ["DELETE", "/Roles/admin"]]) {
    assertScimError(assert, await a.scim(method, p, { schemas: [ROLE_SCHEMA], displayName: "x" }), 405, undefined);
  }
  assert.equal(await w.count("SELECT count(*) FROM entitlement_values WHERE tenant = 'ent-a'"), 2);

  const q = (f) => `/Entitlements?filter=${encodeURIComponent(f)}`;
  assert.deepEqual((await a.scim("GET", q('type eq "license"'))).json.Resources.map((e) => e.id), ["e5"]);
  assert.equal((await a.scim("GET", q('displayName eq "E3"'))).json.totalResults, 0);
  assertScimError(assert, await a.scim("GET", q('displayName sw "E"')), 400, "invalidFilter");

  // B sees its own admin role only, whichever URL form it uses; A's entitlement is not there.
  const viaPlain = await w.request("GET", "/scim/v2/Roles", { token: b.token });
  assert.deepEqual(viaPlain.json.Resources.map((r) => r.displayName), ["B admin"]);
  assert.deepEqual((await b.scim("GET", "/Roles")).json.Resources.map((r) => r.displayName), ["B admin"]);
  assertScimError(assert, await b.scim("GET", "/Entitlements/e5"), 404, undefined);
  const bTypes = (await b.scim("GET", "/ResourceTypes")).json.Resources.map((rt) => rt.id);
  assert.deepEqual(bTypes, ["User", "Group", "Role"]);
  assertScimError(assert, await w.request("GET", "/t/ent-b/scim/v2/Roles", { token: a.token }), 401, undefined);
});

test("admin CLI: add, list, change and remove roles and entitlements", async () => {
  const run = promisify(execFile);
  const cliWorker = await startWorker({ port: 0, adminToken: ADMIN });
  const cli = async (...args) => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, "scripts/admin.mjs"), "--url", cliWorker.origin, ...args], {
      env: { ...process.env, ADMIN_TOKEN: ADMIN },
    });
    return JSON.parse(stdout);
  };
  try {
    await cli("tenant", "create", "cli-ent");
    const role = await cli("role", "add", "cli-ent", "--id", "admin", "--name", "Administrator", "--description", "All access");
    assert.deepEqual([role.id, role.displayName, role.description], ["admin", "Administrator", "All access"]);
    const ent = await cli("entitlement", "add", "cli-ent", "--name", "Office E3", "--type", "License");
    assert.match(ent.id, /^[0-9a-f-]{36}$/);
    const changed = await cli("role", "set", "cli-ent", "admin", "--name", "Admin", "--description", "");
    assert.deepEqual([changed.displayName, changed.description], ["Admin", undefined]);
    assert.equal(changed.meta.location, `${cliWorker.origin}/t/cli-ent/scim/v2/Roles/admin`);
    assert.deepEqual((await cli("roles", "cli-ent")).Resources.map((r) => r.id), ["admin"]);
    assert.equal((await cli("entitlement", "show", "cli-ent", ent.id)).type, "License");
    await cli("entitlement", "remove", "cli-ent", ent.id);
    assert.equal((await cli("entitlements", "cli-ent")).totalResults, 0);
    await assert.rejects(cli("role", "add", "cli-ent", "--id", "admin", "--name", "Again"), (e) => e.code === 1 && /409 conflict/.test(e.stderr));
    await assert.rejects(cli("role", "add", "cli-ent"), (e) => e.code === 2 && /--name/.test(e.stderr));
  } finally {
    await cliWorker.stop();
  }
});
