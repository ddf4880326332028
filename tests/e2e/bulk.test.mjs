// POST /Bulk (RFC 7644 §3.7) end to end in workerd + local D1: the RFC's examples, bulkId
// references in any order and inside PATCH, circular references, failOnErrors, the limits
// advertised and enforced, the provisioning log, and the D1 round trips of 1,000 operations.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, USER_SCHEMA, GROUP_SCHEMA, PATCH_OP, OBJECT_STORAGE, DIRECTORY_TIMING, roundTrips } from "./harness.mjs";

const BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

let w;
before(async () => {
  w = await startWorker({ options: { bindings: { SCIM_DEBUG_TIMING: "1" } } });
});
after(async () => {
  await w?.stop();
});

async function bulk(Operations, extra = {}) {
  const r = await w.post("/Bulk", { schemas: [BULK_REQUEST], Operations, ...extra });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.schemas, [BULK_RESPONSE]);
  return r;
}
const statuses = (r) => r.json.Operations.map((o) => o.status);
const idOf = (location) => location.split("/").pop();

test("ServiceProviderConfig advertises bulk with its real limits", async () => {
  const spc = (await w.get("/ServiceProviderConfig")).json;
  assert.deepEqual(spc.bulk, { supported: true, maxOperations: 1000, maxPayloadSize: 1048576 });
});

test("RFC 7644 §3.7.2: a group referencing a user created later in the same request", async () => {
  const r = await bulk([
    { method: "POST", path: "/Groups", bulkId: "ytrewq",
      data: { schemas: [GROUP_SCHEMA], displayName: "Tour Guides", members: [{ type: "User", value: "bulkId:qwerty" }] } },
    { method: "POST", path: "/Users", bulkId: "qwerty", data: { schemas: [USER_SCHEMA], userName: "Alice" } },
  ]);
  assert.deepEqual(statuses(r), ["201", "201"]);
  const [g, u] = r.json.Operations;
  assert.equal(g.bulkId, "ytrewq");
  assert.equal(g.method, "POST");
  assert.match(u.location, new RegExp(`^${w.base}/Users/`));
  assert.match(u.version, /^W\/"/);
  const group = await w.get(`/Groups/${idOf(g.location)}`);
  assert.deepEqual(group.json.members.map((m) => m.value), [idOf(u.location)]);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", idOf(g.location)), 1);
});

test("RFC 7644 §3.7.3: create, replace, patch and delete by bulkId path, versions as If-Match", async () => {
  const r = await bulk([
    { method: "POST", path: "/Users", bulkId: "qwerty", data: { schemas: [USER_SCHEMA], userName: "Bob" } },
    { method: "PUT", path: "/Users/bulkId:qwerty", data: { schemas: [USER_SCHEMA], userName: "Bob", displayName: "B" } },
    { method: "PATCH", path: "/Users/bulkId:qwerty",
      data: { schemas: [PATCH_OP], Operations: [{ op: "replace", path: "active", value: false }] } },
  ]);
  assert.deepEqual(statuses(r), ["201", "200", "200"]);
  const id = idOf(r.json.Operations[0].location);
  const user = await w.get(`/Users/${id}`);
  assert.equal(user.json.displayName, "B");
  assert.equal(user.json.active, false);
  const del = await bulk([
    { method: "DELETE", path: `/Users/${id}`, version: 'W/"1"' },
    { method: "DELETE", path: `/Users/${id}`, version: r.json.Operations[2].version },
  ]);
  assert.deepEqual(statuses(del), ["412", "204"]);
  assert.equal(del.json.Operations[0].response.status, "412");
  assert.equal(del.json.Operations[1].location, `${w.base}/Users/${id}`);
  assert.equal((await w.get(`/Users/${id}`)).status, 404);
});

test("bulkId in PATCH values and filter paths; circular group members resolved (RFC 7644 §3.7.1)", async () => {
  const g = await w.createGroup("Patched");
  const r = await bulk([
    { method: "PATCH", path: `/Groups/${g.id}`,
      data: { schemas: [PATCH_OP], Operations: [{ op: "add", path: "members", value: [{ value: "bulkId:p1" }, { value: "bulkId:p2" }] }] } },
    { method: "POST", path: "/Users", bulkId: "p1", data: { schemas: [USER_SCHEMA], userName: "p1" } },
    { method: "POST", path: "/Users", bulkId: "p2", data: { schemas: [USER_SCHEMA], userName: "p2" } },
    { method: "PATCH", path: `/Groups/${g.id}`,
      data: { schemas: [PATCH_OP], Operations: [{ op: "remove", path: 'members[value eq "bulkId:p1"]' }] } },
    { method: "POST", path: "/Groups", bulkId: "a", data: { schemas: [GROUP_SCHEMA], displayName: "A", members: [{ value: "bulkId:b" }] } },
    { method: "POST", path: "/Groups", bulkId: "b", data: { schemas: [GROUP_SCHEMA], displayName: "B", members: [{ value: "bulkId:a" }] } },
    { method: "POST", path: "/Groups", bulkId: "self", data: { schemas: [GROUP_SCHEMA], displayName: "Self", members: [{ value: "bulkId:self" }] } },
  ]);
  assert.deepEqual(statuses(r), ["204", "201", "201", "204", "201", "201", "409"]);
  const members = (await w.get(`/Groups/${g.id}`)).json.members.map((m) => m.value);
  assert.deepEqual(members, [idOf(r.json.Operations[2].location)]);
  const [a, b] = [r.json.Operations[4], r.json.Operations[5]].map((o) => idOf(o.location));
  const groupA = await w.get(`/Groups/${a}`);
  assert.deepEqual(groupA.json.members.map((m) => m.value), [b]);
  assert.equal(groupA.headers.get("etag"), r.json.Operations[4].version, "the version after the members were added");
  assert.deepEqual((await w.get(`/Groups/${b}`)).json.members.map((m) => m.value), [a]);
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE display_name = 'Self'"), 0);
});

test("failOnErrors stops processing; without it every operation runs and errors are per operation", async () => {
  await w.createUser("dup");
  const ops = [
    { method: "POST", path: "/Users", bulkId: "x", data: { schemas: [USER_SCHEMA], userName: "dup" } },
    { method: "POST", path: "/Users", bulkId: "y", data: { schemas: [USER_SCHEMA], userName: "after-the-error" } },
  ];
  const stopped = await bulk(ops, { failOnErrors: 1 });
  assert.deepEqual(statuses(stopped), ["409"]);
  assert.equal(stopped.json.Operations[0].response.scimType, "uniqueness");
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE user_name = 'after-the-error'"), 0);
  const all = await bulk(ops);
  assert.deepEqual(statuses(all), ["409", "201"]);
  for (const r of [stopped, all]) {
    const rid = r.headers.get("x-request-id");
    const failures = await w.count("SELECT count(*) FROM events WHERE request_id = ? AND outcome = 'failure' AND op = 'create' AND status = 409", rid);
    assert.equal(failures, 1, "each failed operation is in the provisioning log");
  }
});

test("limits: more than maxOperations or maxPayloadSize is 413, a malformed request 400, nothing written", async () => {
  const before = await w.count("SELECT count(*) FROM events");
  const ops = Array.from({ length: 1001 }, (_, i) => ({ method: "DELETE", path: `/Users/x${i}` }));
  assertScimError(assert, await w.post("/Bulk", { schemas: [BULK_REQUEST], Operations: ops }), 413, undefined);
  const big = JSON.stringify({ schemas: [BULK_REQUEST], Operations: [], pad: "x".repeat(1048576) });
  const r = await w.fetch("POST", "/Bulk", { raw: big, headers: { "Content-Type": "application/scim+json" } });
  assertScimError(assert, r, 413, undefined);
  assertScimError(assert, await w.post("/Bulk", { Operations: [] }), 400, "invalidSyntax");
  assertScimError(assert, await w.get("/Bulk"), 405, undefined);
  assert.equal((await w.post("/Bulk", { schemas: [BULK_REQUEST], Operations: [] }, { token: null })).status, 401);
  assert.equal(await w.count("SELECT count(*) FROM events"), before);
});

test("1,000 operations (999 users and a group of them all) in a few round trips", async () => {
  const ops = Array.from({ length: 999 }, (_, i) => ({
    method: "POST", path: "/Users", bulkId: `u${i}`,
    data: { schemas: [USER_SCHEMA], userName: `bulk${i}@example.com`, emails: [{ value: `bulk${i}@example.com`, primary: true }] },
  }));
  ops.unshift({ method: "POST", path: "/Groups", bulkId: "all",
    data: { schemas: [GROUP_SCHEMA], displayName: "Everyone", members: ops.map((o) => ({ value: `bulkId:${o.bulkId}` })) } });
  const started = Date.now();
  const r = await bulk(ops);
  const ms = Date.now() - started;
  assert.ok(statuses(r).every((s) => s === "201"), r.text.slice(0, 500));
  const timing = r.headers.get("server-timing");
  const trips = roundTrips(timing, DIRECTORY_TIMING);
  console.log(`1,000-operation bulk request: ${trips} ${DIRECTORY_TIMING} round trips, ${ms} ms (${timing})`);
  assert.ok(trips <= 7, timing);
  // In an object, D1 does the control plane's part only (the tenant's settings, if not cached).
  if (OBJECT_STORAGE) assert.ok(roundTrips(timing, "d1") <= 1, timing);
  const gid = idOf(r.json.Operations[0].location);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", gid), 999);
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE user_name LIKE 'bulk%'"), 999);
  const rid = r.headers.get("x-request-id");
  assert.equal(await w.count("SELECT count(*) FROM events WHERE request_id = ? AND outcome = 'success'", rid), 1000);
});

test("failOnErrors: 1 over many POSTs: all-or-nothing batches, the request ends at the clash", async () => {
  const ops = Array.from({ length: 300 }, (_, i) => ({
    method: "POST", path: "/Users", bulkId: `f${i}`, data: { schemas: [USER_SCHEMA], userName: `fail-fast-${i}` },
  }));
  // An object mirrors the settings the worker sends in a batch of its own only when they are
  // not what it last wrote, or its cached profile is older than 30 s (service::relay::adopt):
  // a request just before leaves the bulk request its one merged batch on both backends.
  await w.get("/Users?count=1");
  const ok = await bulk(ops, { failOnErrors: 1 });
  assert.ok(statuses(ok).every((s) => s === "201"));
  assert.equal(roundTrips(ok.headers.get("server-timing"), DIRECTORY_TIMING), 1, `one merged batch: ${ok.headers.get("server-timing")}`);
  const clash = ops.map((o, i) => ({ ...o, data: { ...o.data, userName: i === 150 ? "fail-fast-0" : `fail-fast-b${i}` } }));
  const r = await bulk(clash, { failOnErrors: 1 });
  const got = statuses(r);
  assert.equal(got.length, 151);
  assert.equal(got[150], "409");
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE user_name LIKE 'fail-fast-b%'"), 150);
  const rid = r.headers.get("x-request-id");
  assert.equal(await w.count("SELECT count(*) FROM events WHERE request_id = ? AND outcome = 'failure'", rid), 1);
});
