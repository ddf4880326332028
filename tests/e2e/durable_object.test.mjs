// The Durable Object storage backend (SCIM_STORAGE = "durable-object") in workerd: the worker
// authenticates against D1 and hands each directory request to the tenant's SQLite-backed
// object (TENANT_STORE), which migrates itself on first use and runs the same handlers.
// Users and Groups CRUD, filters, PATCH and membership work there, two tenants live in two
// objects, and none of it is in D1's tables. What a D1 tenant has besides works on this backend
// too: declared extension schemas (validated in the object), the admin quota, the admin API's
// and the setup page's provisioning log, and RFC 8936 poll streams of the object's changes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { startWorker, assertScimError, patchOps, roundTrips, USER_SCHEMA, GROUP_SCHEMA } from "./harness.mjs";
import { openSetupLink, raw } from "./onboarding_helpers.mjs";

const ADMIN = "admin-token-do-0123456789";
let w;
let acme; // a second tenant's token

before(async () => {
  w = await startWorker({ adminToken: ADMIN, storage: "durable-object" });
  const admin = (method, path, body) =>
    w.request(method, `/admin/api${path}`, { token: ADMIN, body });
  const t = await admin("POST", "/tenants", { id: "acme" });
  assert.equal(t.status, 201, t.text);
  const issued = await admin("POST", "/tenants/acme/tokens", { label: "e2e" });
  assert.equal(issued.status, 201, issued.text);
  acme = issued.json.token;
});
after(async () => {
  await w?.stop();
});

const q = (filter) => `?filter=${encodeURIComponent(filter)}`;
/** A request to tenant acme's SCIM API. */
const asAcme = (method, path, body) =>
  w.request(method, `/t/acme/scim/v2${path}`, { token: acme, body, contentType: "application/scim+json" });

test("users: create, get, filter, patch, replace, delete, all in the tenant's object", async () => {
  const created = await w.post("/Users", {
    schemas: [USER_SCHEMA],
    userName: "ada@example.com",
    externalId: "ext-ada",
    name: { givenName: "Ada", familyName: "Lovelace" },
    emails: [{ value: "ada@work.example", type: "work", primary: true }],
  });
  assert.equal(created.status, 201, created.text);
  const id = created.json.id;
  assert.equal(created.headers.get("location"), `${w.base}/Users/${id}`);
  assert.match(created.headers.get("x-request-id") ?? "", /^[0-9a-f]+$/);

  const got = await w.get(`/Users/${id}`);
  assert.equal(got.status, 200);
  assert.equal(got.json.userName, "ada@example.com");
  assert.equal(got.headers.get("etag"), created.headers.get("etag"));

  for (const f of ['userName eq "ADA@example.com"', 'externalId eq "ext-ada"', 'emails[type eq "work"].value eq "ada@work.example"']) {
    const list = await w.get(`/Users${q(f)}`);
    assert.equal(list.status, 200, list.text);
    assert.equal(list.json.totalResults, 1, f);
    assert.equal(list.json.Resources[0].id, id);
  }
  assert.equal((await w.get(`/Users${q('userName eq "nobody"')}`)).json.totalResults, 0);

  // Entra's deactivation, quirks and all.
  const patched = await w.patch(`/Users/${id}`, patchOps({ op: "Replace", path: "active", value: "False" }));
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.json.active, false);
  assert.equal((await w.get(`/Users${q("active eq false")}`)).json.totalResults, 1);

  // If-Match against a stale version is refused in the object as in D1.
  const stale = await w.put(`/Users/${id}`, { schemas: [USER_SCHEMA], userName: "ada@example.com" }, {
    headers: { "If-Match": created.headers.get("etag") },
  });
  assertScimError(assert, stale, 412, undefined);
  const replaced = await w.put(`/Users/${id}`, { schemas: [USER_SCHEMA], userName: "ada.l@example.com" });
  assert.equal(replaced.status, 200, replaced.text);
  assert.equal(replaced.json.userName, "ada.l@example.com");
  assert.equal(replaced.json.name, undefined);

  // Uniqueness is the object's unique index, mapped to the same SCIM error.
  const dup = await w.post("/Users", { schemas: [USER_SCHEMA], userName: "ADA.L@example.com" });
  assertScimError(assert, dup, 409, "uniqueness");

  assert.equal((await w.delete(`/Users/${id}`)).status, 204);
  assertScimError(assert, await w.get(`/Users/${id}`), 404, undefined);
  assertScimError(assert, await w.delete(`/Users/${id}`), 404, undefined);
});

test("groups and membership: add, list members and groups, remove, delete cascades", async () => {
  const u1 = await w.createUser("m1@example.com");
  const u2 = await w.createUser("m2@example.com");
  const g = await w.createGroup("Engineering", [u1.id]);
  assert.deepEqual(g.members.map((m) => m.value), [u1.id]);

  const add = await w.patch(`/Groups/${g.id}`, patchOps({ op: "add", path: "members", value: [{ value: u2.id }] }));
  assert.ok([200, 204].includes(add.status), add.text);
  const withMembers = await w.get(`/Groups/${g.id}`);
  assert.deepEqual(withMembers.json.members.map((m) => m.value).sort(), [u1.id, u2.id].sort());
  assert.deepEqual((await w.get(`/Users/${u2.id}`)).json.groups.map((x) => x.value), [g.id]);
  const byMember = await w.get(`/Groups${q(`members.value eq "${u2.id}"`)}`);
  assert.equal(byMember.json.totalResults, 1);

  // A member that does not exist: the object enforces the foreign key as D1 does, and the
  // whole batch rolls back (its version bump and event statements ran before the failing one).
  const before = await w.get(`/Groups/${g.id}`);
  const ghost = await w.patch(`/Groups/${g.id}`, patchOps({ op: "add", path: "members", value: [{ value: "no-such-user" }] }));
  assertScimError(assert, ghost, 400, "invalidValue");
  const unchanged = await w.get(`/Groups/${g.id}`);
  assert.equal(unchanged.headers.get("etag"), before.headers.get("etag"), "nothing of the failed batch stays");
  assert.equal(unchanged.json.meta.lastModified, before.json.meta.lastModified);

  const remove = await w.patch(`/Groups/${g.id}`, patchOps({ op: "remove", path: `members[value eq "${u1.id}"]` }));
  assert.ok([200, 204].includes(remove.status), remove.text);
  assert.deepEqual((await w.get(`/Groups/${g.id}`)).json.members.map((m) => m.value), [u2.id]);

  assert.equal((await w.delete(`/Users/${u2.id}`)).status, 204);
  const after = await w.get(`/Groups/${g.id}`);
  assert.deepEqual(after.json.members ?? [], [], "deleting a user removes its memberships");
  const search = await w.post("/Groups/.search", { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], filter: 'displayName eq "engineering"' });
  assert.equal(search.status, 200, search.text);
  assert.equal(search.json.totalResults, 1);
});

test("two tenants live in two objects: same names, no crossing", async () => {
  const mine = await w.createUser("shared@example.com");
  const theirs = await asAcme("POST", "/Users", { schemas: [USER_SCHEMA], userName: "shared@example.com" });
  assert.equal(theirs.status, 201, theirs.text);
  assert.notEqual(theirs.json.id, mine.id);
  assertScimError(assert, await asAcme("GET", `/Users/${mine.id}`), 404, undefined);
  assertScimError(assert, await w.get(`/Users/${theirs.json.id}`), 404, undefined);
  const acmeList = await asAcme("GET", "/Users");
  assert.deepEqual(acmeList.json.Resources.map((u) => u.id), [theirs.json.id]);
  assert.equal(acmeList.json.Resources[0].meta.location, `${w.origin}/t/acme/scim/v2/Users/${theirs.json.id}`);
  // The other tenant's token does not open this tenant's URL (checked before any hop).
  const cross = await w.request("GET", "/t/acme/scim/v2/Users", { token: w.token });
  assertScimError(assert, cross, 401, undefined);
});

test("a client cannot pick the tenant through the worker's handoff headers", async () => {
  const r = await w.post("/Users", { schemas: [USER_SCHEMA], userName: "forger@example.com" }, {
    headers: { "x-scim-edge-tenant": "acme", "x-scim-edge-settings": "strict=1; extensions=reject" },
  });
  assert.equal(r.status, 201, r.text);
  assert.equal((await w.get(`/Users/${r.json.id}`)).status, 200, "stored in the token's tenant");
  assertScimError(assert, await asAcme("GET", `/Users/${r.json.id}`), 404, undefined);
});

test("a bulk request runs in the tenant's object, whole, in one hop, with bulkId references", async () => {
  // Its own worker, to read the worker's D1 round trips (Server-Timing).
  const bw = await startWorker({ storage: "durable-object", options: { bindings: { SCIM_DEBUG_TIMING: "1" } } });
  try {
    const bulk = (Operations) =>
      bw.post("/Bulk", { schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], Operations });
    assert.equal((await bw.get("/Users")).status, 200); // the tenant's settings now cached in the isolate
    const users = Array.from({ length: 20 }, (_, i) => ({
      method: "POST", path: "/Users", bulkId: `u${i}`, data: { schemas: [USER_SCHEMA], userName: `bulk${i}@example.com` },
    }));
    // The group comes first and names users created after it (RFC 7644 §3.7.2), then a
    // PATCH by bulkId path.
    const r = await bulk([
      { method: "POST", path: "/Groups", bulkId: "g", data: { schemas: [GROUP_SCHEMA], displayName: "Bulk",
        members: users.map((u) => ({ value: `bulkId:${u.bulkId}` })) } },
      ...users,
      { method: "PATCH", path: "/Users/bulkId:u0", data: patchOps({ op: "replace", path: "displayName", value: "First" }) },
    ]);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.Operations.map((o) => o.status), ["201", ...users.map(() => "201"), "200"]);
    // 22 operations, and the worker went to D1 for none of them: its one hop took them all
    // to the object.
    const timing = r.headers.get("server-timing");
    assert.equal(roundTrips(timing, "d1"), 0, timing);
    // In the object: adopting the worker's settings (on its first request), then the
    // operations' merged batches.
    assert.ok(roundTrips(timing, "do-sql") <= 5, timing);
    const gid = r.json.Operations[0].location.split("/").pop();
    const group = await bw.get(`/Groups/${gid}`);
    const ids = r.json.Operations.slice(1, 21).map((o) => o.location.split("/").pop());
    assert.deepEqual(group.json.members.map((m) => m.value).sort(), [...ids].sort());
    assert.equal((await bw.get(`/Users/${ids[0]}`)).json.displayName, "First");
    for (const table of ["resources", "members", "events"]) {
      assert.equal((await bw.d1.prepare(`SELECT count(*) AS n FROM ${table}`).first()).n, 0, table);
    }
  } finally {
    await bw.stop();
  }
});

test("nothing of the directories is in D1; the admin API says where data lives", async () => {
  for (const table of ["resources", "members", "events", "resource_counts"]) {
    assert.equal((await w.d1.prepare(`SELECT count(*) AS n FROM ${table}`).first()).n, 0, table);
  }
  const t = await w.request("GET", "/admin/api/tenants/acme", { token: ADMIN });
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.storage, "durable-object");
});

test("a d1 deployment keeps its data in D1 and says so", async () => {
  const d1 = await startWorker({ adminToken: ADMIN, storage: "d1" });
  try {
    assert.equal((await d1.post("/Users", { schemas: [USER_SCHEMA], userName: "x@example.com" })).status, 201);
    assert.equal(await d1.count("SELECT count(*) FROM resources"), 1);
    const t = await d1.request("GET", "/admin/api/tenants/default", { token: ADMIN });
    assert.equal(t.json.storage, "d1");
  } finally {
    await d1.stop();
  }
});

test("with SCIM_DEBUG_TIMING, Server-Timing counts the hop, the object's transactions and no D1 trip", async () => {
  const timed = await startWorker({ storage: "durable-object", options: { bindings: { SCIM_DEBUG_TIMING: "1" } } });
  try {
    const created = await timed.post("/Users", { schemas: [USER_SCHEMA], userName: "timed@example.com" });
    assert.equal(created.status, 201, created.text);
    // Env tokens need no lookup; the default tenant's profile is read once, then cached.
    await timed.get("/Users?count=1");
    const r = await timed.get(`/Users/${created.json.id}`);
    assert.equal(r.status, 200, r.text);
    const st = r.headers.get("server-timing");
    assert.match(st, /(^|, )d1;desc="0 round trips"/, st);
    assert.match(st, /(^|, )do;desc="1 hop"/, st);
    // The object mirrored the tenant's settings on the first request; as they have not
    // changed, a read is its one transaction, in its process (relay::adopt).
    assert.match(st, /(^|, )do-sql;desc="1 transaction"/, st);
    const p = await timed.patch(`/Users/${created.json.id}`, patchOps({ op: "replace", path: "displayName", value: "T" }));
    assert.equal(p.status, 200, p.text);
    assert.match(p.headers.get("server-timing"), /(^|, )do;desc="1 hop"/);
    // The read of the user, then the write.
    assert.match(p.headers.get("server-timing"), /do-sql;desc="2 transactions"/);
  } finally {
    await timed.stop();
  }
  // Without the flag there is no Server-Timing at all.
  const plain = await w.get("/Users?count=1");
  assert.equal(plain.headers.get("server-timing"), null);
});

test("an unknown SCIM_STORAGE is refused, not served from D1", async () => {
  const bad = await startWorker({ storage: "durable_object" });
  try {
    const r = await bad.get("/Users");
    assertScimError(assert, r, 500, undefined);
  } finally {
    await bad.stop();
  }
});

test("discovery answers on this backend too (from the worker)", async () => {
  const rts = await w.get("/ResourceTypes");
  assert.equal(rts.status, 200);
  assert.equal(rts.json.totalResults, 2);
  assert.equal((await w.get("/ServiceProviderConfig")).status, 200);
});

/** A new tenant and a SCIM client of it. */
async function tenant(id) {
  const admin = (method, path, body) => w.request(method, `/admin/api${path}`, { token: ADMIN, body });
  assert.equal((await admin("POST", "/tenants", { id })).status, 201);
  const issued = await admin("POST", `/tenants/${id}/tokens`, {});
  assert.equal(issued.status, 201, issued.text);
  const token = issued.json.token;
  const scim = (method, path, body) =>
    w.request(method, `/t/${id}/scim/v2${path}`, { token, body, contentType: "application/scim+json" });
  return { admin, scim };
}

const CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
const customUser = (userName, ext) => ({ schemas: [USER_SCHEMA, CUSTOM], userName, [CUSTOM]: ext });

test("declared extension schemas are enforced in the object, and declaring checks the object's data", async () => {
  const { admin, scim } = await tenant("decl");
  // Kept verbatim before anything is declared: a badge that is not an integer, a shared code.
  assert.equal((await scim("POST", "/Users", customUser("early1", { badge: "seven", code: "DUP" }))).status, 201);
  assert.equal((await scim("POST", "/Users", customUser("early2", { badge: 2, code: "DUP" }))).status, 201);
  const declaration = {
    resourceType: "User",
    schema: {
      id: CUSTOM,
      name: "Custom",
      attributes: [
        { name: "badge", type: "integer" },
        { name: "code", type: "string", uniqueness: "server" },
      ],
    },
  };
  const put = await admin("PUT", `/tenants/decl/schemas/${CUSTOM}`, declaration);
  assert.equal(put.status, 201, put.text);
  assert.equal(put.json.stored.checked, 2, put.text);
  assert.equal(put.json.stored.conflicting, 1, put.text);
  assert.equal(put.json.stored.duplicateValues, 1, put.text);

  assertScimError(assert, await scim("POST", "/Users", customUser("bad", { badge: "x" })), 400, "invalidValue");
  const ok = await scim("POST", "/Users", customUser("c1", { badge: 10, code: "E1" }));
  assert.equal(ok.status, 201, ok.text);
  assertScimError(assert, await scim("POST", "/Users", customUser("c2", { code: "e1" })), 409, "uniqueness");
  const found = await scim("GET", `/Users?filter=${encodeURIComponent(`${CUSTOM}:badge eq 10`)}`);
  assert.equal(found.status, 200, found.text);
  assert.deepEqual(found.json.Resources.map((u) => u.id), [ok.json.id]);
  // Removed: kept verbatim again.
  assert.equal((await admin("DELETE", `/tenants/decl/schemas/${CUSTOM}`)).status, 204);
  assert.equal((await scim("POST", "/Users", customUser("free", { badge: "x", code: "E1" }))).status, 201);
});

test("the admin API and the setup page read the log, feed, tolerances and usage from the object", async () => {
  const { admin, scim } = await tenant("logs");
  const created = await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "ada", active: "True" });
  assert.equal(created.status, 201, created.text);
  const events = await admin("GET", "/tenants/logs/events");
  assert.equal(events.status, 200, events.text);
  assert.deepEqual(events.json.events.map((e) => [e.op, e.resourceId]), [["create", created.json.id]]);
  assert.equal(events.json.events[0].requestId, created.headers.get("x-request-id"));
  const summary = await admin("GET", "/tenants/logs/events/summary?days=1");
  assert.equal(summary.json.days[0].create, 1, summary.text);
  const tolerances = await admin("GET", "/tenants/logs/tolerances");
  assert.equal(tolerances.status, 200, tolerances.text);
  assert.ok(tolerances.json.tolerances.some((t) => t.count === 1), tolerances.text);
  const users = await admin("GET", "/tenants/logs/Users");
  assert.deepEqual(users.json.Resources.map((u) => u.id), [created.json.id]);
  const view = await admin("GET", "/tenants/logs");
  assert.equal(view.json.usage.resources, 1, view.text);
  assert.ok(view.json.usage.bytes > 0);
  assert.equal((await admin("GET", "/tenants/nobody/events")).status, 404);
  // D1 itself (w.db reads objects' tables in the suite's durable-object run).
  assert.equal((await w.d1.prepare("SELECT count(*) AS n FROM events WHERE tenant = 'logs'").first()).n, 0);

  const cookie = await openSetupLink(w, ADMIN, "logs");
  const log = await raw(w, "GET", "/setup/api/events?since=0", { headers: { Cookie: cookie, Origin: w.origin } });
  assert.equal(log.status, 200, log.text);
  assert.deepEqual(log.json.events.map((e) => e.resourceId), [created.json.id]);
});

test("the quota set through the admin API is enforced by the object", async () => {
  const { admin, scim } = await tenant("small");
  const set = await admin("PATCH", "/tenants/small", { quota: { resources: 1 } });
  assert.equal(set.status, 200, set.text);
  assert.equal((await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "one" })).status, 201);
  const over = await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "two" });
  assert.equal(over.status, 507, over.text);
});

test("an RFC 8936 poll stream serves the object's changes, signed with the stream's key", async () => {
  const { admin, scim } = await tenant("poll");
  const stream = await admin("POST", "/tenants/poll/webhooks", { format: "set", delivery: "poll" });
  assert.equal(stream.status, 201, stream.text);
  const key = Buffer.from(stream.json.secret.replace(/^whsec_/, ""), "base64");
  const ids = [];
  for (const n of ["p1", "p2"]) ids.push((await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: n })).json.id);
  const path = `/Events/${stream.json.id}`;
  const polled = await scim("POST", path, { returnImmediately: true });
  assert.equal(polled.status, 200, polled.text);
  const sets = Object.entries(polled.json.sets);
  assert.equal(sets.length, 2, polled.text);
  const subjects = [];
  for (const [jti, token] of sets) {
    const [h, p, sig] = token.split(".");
    assert.equal(createHmac("sha256", key).update(`${h}.${p}`).digest("base64url"), sig);
    const claims = JSON.parse(Buffer.from(p, "base64url").toString());
    assert.equal(claims.jti, jti);
    subjects.push(JSON.stringify(claims));
  }
  for (const id of ids) assert.ok(subjects.some((c) => c.includes(id)), id);
  const acked = await scim("POST", path, { ack: sets.map(([jti]) => jti) });
  assert.deepEqual(acked.json, { sets: {}, moreAvailable: false });
});

test("an answer from the tenant's object carries one request id, the one its error quotes", async () => {
  // The object sets the worker's request id on its answer, which the worker then sends on
  // as it is: the id must be there exactly once, on successes and on the object's errors.
  const missing = await w.get("/Users/00000000-0000-0000-0000-000000000000");
  assertScimError(assert, missing, 404);
  const rid = missing.headers.get("x-request-id") ?? "";
  assert.match(rid, /^[0-9a-f]{16}$/, `one request id, got ${JSON.stringify(rid)}`);
  assert.ok(missing.json.detail.includes(rid), `the detail quotes ${rid}: ${missing.json.detail}`);
  const list = await w.get(`/Users${q('userName eq "nobody@example.com"')}`);
  assert.equal(list.status, 200, list.text);
  assert.match(list.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/);
  assert.notEqual(list.headers.get("x-request-id"), rid, "each request has its own id");
  // The admin API reads a tenant's directory from its object and answers with the worker's id.
  const dir = await w.request("GET", "/admin/api/tenants/acme/Users?count=1", { token: ADMIN });
  assert.equal(dir.status, 200, dir.text);
  assert.match(dir.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/, "the admin answer has one request id");
});
