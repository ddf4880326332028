// Deletion policies end to end (issue 18 item 2): the compiled worker in workerd with a real
// local D1 and real Queues (Miniflare's). Under `hard` a DELETE is final; under `soft` it keeps
// a tombstone that SCIM cannot see (RFC 7644 §3.6), the admin API lists and restores, and the
// daily cron purges; `restoreOnCreate` brings Entra's recreated user back under its old id.
// Every test but the cron's runs on the backend SCIM_E2E_STORAGE names (d1 by default;
// `SCIM_E2E_STORAGE=durable-object` puts the tenant's directory in its Durable Object, where
// the admin API's tombstone routes are handed); the cron's purge is D1's, and an object's
// own purge (on its first request after it starts) has its test on durable-object storage.
// Webhooks are received by a loopback receiver and verified with the `standardwebhooks`
// package. Entra's requests are sent as Entra sends them (docs/ENTRA.md): the existence
// check by filter, the POST, the deactivating PATCH with "Replace" and "False", the DELETE.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Webhook } from "standardwebhooks";
import { startWorker, assertScimError, USER_SCHEMA, ENTERPRISE, patchOps, ROOT } from "./harness.mjs";
import { queueOptions, startReceiver, until } from "./receiver.mjs";

const ADMIN = "deletion-e2e-admin-token";
const TENANT = "/admin/api/tenants/default";
const DAILY = "23 3 * * *";

let w;
let rx;
before(async () => {
  rx = await startReceiver();
  w = await startWorker({ adminToken: ADMIN, options: queueOptions() });
});
after(async () => {
  await w?.stop();
  await rx?.close();
});

const admin = (method, path, body, on = w) => on.request(method, path, { token: ADMIN, body });

async function policy(deletion, on = w) {
  const r = await admin("PATCH", TENANT, { deletion }, on);
  assert.equal(r.status, 200, r.text);
  return r.json.deletion;
}

/** Entra's user create, as its provisioning service sends it. */
function entraUser(userName, externalId) {
  return {
    schemas: [USER_SCHEMA, ENTERPRISE],
    externalId,
    userName,
    active: true,
    emails: [{ primary: true, type: "work", value: userName }],
    meta: { resourceType: "User" },
    name: { formatted: "Ada Lovelace", familyName: "Lovelace", givenName: "Ada" },
    roles: [],
  };
}

const byUserName = (u) => `/Users?filter=${encodeURIComponent(`userName eq "${u}"`)}`;

/** Entra's provisioning of a user: the existence check, then the POST. */
async function entraProvision(userName, externalId, on = w) {
  const check = await on.get(byUserName(userName));
  assert.equal(check.status, 200, check.text);
  assert.equal(check.json.totalResults, 0, `Entra finds no ${userName} and creates it`);
  const r = await on.post("/Users", entraUser(userName, externalId));
  assert.equal(r.status, 201, r.text);
  return r.json;
}

/** Entra's deprovisioning: the deactivating PATCH (as Entra sends it), then the DELETE. */
async function entraDeprovision(id, on = w) {
  const off = await on.patch(`/Users/${id}`, patchOps({ op: "Replace", path: "active", value: "False" }));
  assert.equal(off.status, 200, off.text);
  assert.equal(off.json.active, false);
  const del = await on.delete(`/Users/${id}`);
  assert.equal(del.status, 204, del.text);
}

test("hard (the default): a DELETE is final; Entra's recreate makes a new user", async () => {
  assert.deepEqual((await admin("GET", TENANT)).json.deletion, { policy: "hard", restoreOnCreate: false });
  const u = await entraProvision("hard@contoso.com", "11111111-0000-0000-0000-000000000001");
  await entraDeprovision(u.id);
  assert.deepEqual((await admin("GET", `${TENANT}/tombstones`)).json.tombstones, []);
  const again = await entraProvision("hard@contoso.com", "11111111-0000-0000-0000-000000000001");
  assert.notEqual(again.id, u.id);
  assert.equal((await admin("POST", `${TENANT}/tombstones/${u.id}/restore`)).status, 404);
});

test("soft: the tombstone is invisible to SCIM, its names are free, the admin API restores it", async () => {
  assert.deepEqual(await policy({ policy: "soft", days: 30 }), { policy: "soft", days: 30, restoreOnCreate: false });
  const ada = await entraProvision("ada@contoso.com", "22222222-0000-0000-0000-000000000002");
  const bob = await w.createUser("bob@contoso.com");
  const group = await w.createGroup("Soft Engineering", [ada.id, bob.id]);
  const usersBefore = (await w.get("/Users")).json.totalResults;
  await entraDeprovision(ada.id);

  assertScimError(assert, await w.get(`/Users/${ada.id}`), 404);
  assertScimError(assert, await w.put(`/Users/${ada.id}`, { schemas: [USER_SCHEMA], userName: "ada@contoso.com" }), 404);
  assertScimError(assert, await w.patch(`/Users/${ada.id}`, patchOps({ op: "replace", path: "active", value: true })), 404);
  assertScimError(assert, await w.delete(`/Users/${ada.id}`), 404);
  assert.equal((await w.get("/Users")).json.totalResults, usersBefore - 1);
  assert.equal((await w.get(byUserName("ada@contoso.com"))).json.totalResults, 0);
  const members = (await w.get(`/Groups/${group.id}`)).json.members.map((m) => m.value);
  assert.deepEqual(members, [bob.id]);

  const list = (await admin("GET", `${TENANT}/tombstones?type=User`)).json.tombstones;
  const t = list.find((x) => x.id === ada.id);
  assert.equal(t.userName, "ada@contoso.com");
  assert.equal(t.externalId, "22222222-0000-0000-0000-000000000002");
  assert.equal(t.attributes.active, false, "kept as it was when deleted");

  // The userName is free at once; while it is taken the restore is a 409 that changes nothing.
  const taker = await w.createUser("ADA@contoso.com");
  const clash = await admin("POST", `${TENANT}/tombstones/${ada.id}/restore`);
  assert.equal(clash.status, 409, clash.text);
  assert.equal((await w.get(`/Users/${ada.id}`)).status, 404);
  assert.equal((await w.delete(`/Users/${taker.id}`)).status, 204);

  const restored = await admin("POST", `${TENANT}/tombstones/${ada.id}/restore`);
  assert.equal(restored.status, 200, restored.text);
  assert.equal(restored.json.id, ada.id);
  const back = await w.get(`/Users/${ada.id}`);
  assert.equal(back.status, 200);
  assert.equal(back.json.meta.created, ada.meta.created);
  assert.deepEqual(back.json.groups.map((g) => g.value), [group.id]);
  const after = (await w.get(`/Groups/${group.id}`)).json.members.map((m) => m.value).sort();
  assert.deepEqual(after, [ada.id, bob.id].sort());
});

test("restoreOnCreate: Entra's delete-then-recreate brings the user back under its id", async () => {
  await policy({ policy: "soft", days: 30, restoreOnCreate: true });
  const objectId = "33333333-0000-0000-0000-000000000003";
  const u = await entraProvision("grace@contoso.com", objectId);
  const group = await w.createGroup("Restore Engineering", [u.id]);
  await entraDeprovision(u.id);
  const again = await entraProvision("grace@contoso.com", objectId);
  assert.equal(again.id, u.id, "the app keeps its history");
  assert.equal(again.active, true, "with the POST's attributes");
  assert.equal(again.meta.created, u.meta.created);
  assert.deepEqual((await w.get(`/Groups/${group.id}`)).json.members.map((m) => m.value), [u.id]);
  // A different externalId is a new user.
  const other = await entraProvision("grace2@contoso.com", "33333333-0000-0000-0000-000000000004");
  assert.notEqual(other.id, u.id);
});

test("D1: the daily cron purges tombstones older than the tenant's days, with events the receiver gets", async () => {
  // The cron's purge is D1's: its own worker on D1 whatever SCIM_E2E_STORAGE says.
  const d = await startWorker({ adminToken: ADMIN, storage: "d1", options: queueOptions() });
  try {
    await policy({ policy: "soft", days: 30, restoreOnCreate: false }, d);
    const ep = await admin("POST", `${TENANT}/webhooks`, { url: `${rx.url}/hooks` }, d);
    assert.equal(ep.status, 201, ep.text);
    const wh = new Webhook(ep.json.secret);
    const u = await entraProvision("purged@contoso.com", "44444444-0000-0000-0000-000000000004", d);
    await entraDeprovision(u.id, d);
    assert.equal((await admin("POST", `${TENANT}/tombstones/${u.id}/restore`, undefined, d)).status, 200);
    assert.equal((await d.delete(`/Users/${u.id}`)).status, 204);
    const young = await d.createUser("young@contoso.com");
    assert.equal((await d.delete(`/Users/${young.id}`)).status, 204);
    // The first tombstone is 31 days old; the other one is new.
    const old = new Date(Date.now() - 31 * 86_400_000).toISOString();
    await d.db.prepare("UPDATE tombstones SET deleted = ? WHERE id = ?").bind(old, u.id).run();

    const worker = await d.mf.getWorker();
    const result = await worker.scheduled({ cron: DAILY, scheduledTime: new Date() });
    assert.equal(result.outcome, "ok", JSON.stringify(result));
    const left = (await admin("GET", `${TENANT}/tombstones`, undefined, d)).json.tombstones.map((t) => t.id);
    assert.ok(!left.includes(u.id), "purged");
    assert.ok(left.includes(young.id), "kept");
    assert.equal((await admin("POST", `${TENANT}/tombstones/${u.id}/restore`, undefined, d)).status, 404);

    const mine = (type) => rx.got.map((e) => wh.verify(e.body, e.headers)).filter((e) => e.type === type && e.data.id === u.id);
    await until(() => mine("user.purged").length === 1, "user.purged");
    const types = rx.got.map((e) => wh.verify(e.body, e.headers)).filter((e) => e.data.id === u.id).map((e) => e.type);
    assert.deepEqual(types, ["user.created", "user.deactivated", "user.deleted", "user.restored", "user.deleted", "user.purged"]);
    assert.deepEqual(mine("user.deleted")[0].data, { id: u.id, restorable: true });
    const feed = (await admin("GET", `${TENANT}/events?resource=${u.id}`, undefined, d)).json.events.map((e) => [e.op, e.lifecycle]);
    assert.deepEqual(feed, [["create", null], ["patch", null], ["delete", "soft"], ["create", "restore"], ["delete", "soft"], ["delete", "purge"]]);
  } finally {
    await d.stop();
  }
});

test("durable-object: the tenant's object keeps, lists, restores and, on its first request after it starts, purges its tombstones", async () => {
  // Persisted, so that a second workerd finds the same D1 and the same object (a new
  // instance of it, as after an eviction or a deploy).
  const dir = mkdtempSync(path.join(tmpdir(), "scim-deletion-"));
  const persisted = { d1Persist: dir, durableObjectsPersist: dir, d1Databases: { DB: "deletion-restart" }, ...queueOptions() };
  const start = (migrate) => startWorker({ adminToken: ADMIN, storage: "durable-object", migrate, options: persisted });
  let d = await start(true);
  try {
    // `days: 0`: every tombstone is due at the object's next purge.
    await policy({ policy: "soft", days: 0, restoreOnCreate: true }, d);
    const ep = await admin("POST", `${TENANT}/webhooks`, { url: `${rx.url}/hooks/object` }, d);
    assert.equal(ep.status, 201, ep.text);
    const wh = new Webhook(ep.json.secret);
    const body = entraUser("object@contoso.com", "55555555-0000-0000-0000-000000000005");
    const u = await d.post("/Users", body);
    assert.equal(u.status, 201, u.text);
    const id = u.json.id;
    // The object's events reach the receiver from its outbox (its alarm), a restore's and a
    // purge's too, without a SCIM write after them.
    const sent = (type) =>
      rx.got.filter((e) => e.body.includes(id)).map((e) => wh.verify(e.body, e.headers)).filter((e) => e.type === type && e.data.id === id);
    const group = await d.createGroup("Object Engineering", [id]);
    await entraDeprovision(id, d);
    assert.equal((await d.get(`/Users/${id}`)).status, 404);
    // restoreOnCreate, in the object.
    const again = await d.post("/Users", body);
    assert.equal(again.status, 201, again.text);
    assert.equal(again.json.id, id);
    assert.equal((await d.delete(`/Users/${id}`)).status, 204);

    // The admin API's list and restore are the object's.
    const listed = (await admin("GET", `${TENANT}/tombstones?type=User`, undefined, d)).json.tombstones;
    assert.deepEqual(listed.map((t) => [t.id, t.userName, t.externalId]), [[id, "object@contoso.com", "55555555-0000-0000-0000-000000000005"]]);
    assert.equal(await d.count("SELECT count(*) FROM tombstones"), 0, "nothing of it in D1");
    const restored = await admin("POST", `${TENANT}/tombstones/${id}/restore`, undefined, d);
    assert.equal(restored.status, 200, restored.text);
    assert.equal(restored.json.id, id);
    await until(() => sent("user.restored").length >= 2, "the admin restore's user.restored (after restoreOnCreate's)");
    assert.deepEqual((await d.get(`/Groups/${group.id}`)).json.members.map((m) => m.value), [id]);
    assert.equal((await d.delete(`/Users/${id}`)).status, 204);
    // Due since it was made, but the object purged at its first request and purges daily.
    const kept = (await admin("GET", `${TENANT}/tombstones`, undefined, d)).json.tombstones.map((t) => t.id);
    assert.deepEqual(kept, [id]);
    await d.stop();
    d = null;

    d = await start(false);
    // The first request the new instance gets is answered after its purge.
    assert.deepEqual((await admin("GET", `${TENANT}/tombstones`, undefined, d)).json.tombstones, []);
    await until(() => sent("user.purged").length >= 1, "the object's purge's user.purged");
    assert.equal((await admin("POST", `${TENANT}/tombstones/${id}/restore`, undefined, d)).status, 404);
    assert.deepEqual((await d.get(`/Groups/${group.id}`)).json.members ?? [], []);
    const feed = (await admin("GET", `${TENANT}/events?resource=${id}`, undefined, d)).json.events.map((e) => [e.op, e.lifecycle]);
    assert.deepEqual(feed, [
      ["create", null], ["patch", null], ["delete", "soft"], ["create", "restore"], ["delete", "soft"],
      ["create", "restore"], ["delete", "soft"], ["delete", "purge"],
    ]);
    // The POST now makes a new user: its tombstone is gone.
    const fresh = await d.post("/Users", body);
    assert.equal(fresh.status, 201, fresh.text);
    assert.notEqual(fresh.json.id, id);
  } finally {
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("admin CLI: the policy, the tombstones, a restore", async () => {
  const run = promisify(execFile);
  const c = await startWorker({ port: 0, adminToken: ADMIN });
  const cli = async (...args) => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, "scripts/admin.mjs"), "--url", c.origin, ...args], {
      env: { ...process.env, ADMIN_TOKEN: ADMIN },
    });
    return JSON.parse(stdout);
  };
  try {
    const t = await cli("tenant", "set", "default", "--deletion", "soft", "--deletion-days", "14", "--restore-on-create");
    assert.deepEqual(t.deletion, { policy: "soft", days: 14, restoreOnCreate: true });
    const u = await c.createUser("cli@contoso.com");
    assert.equal((await c.delete(`/Users/${u.id}`)).status, 204);
    const list = await cli("tombstones", "default", "--type", "User");
    assert.deepEqual(list.tombstones.map((x) => x.id), [u.id]);
    const back = await cli("tombstone", "restore", "default", u.id);
    assert.equal(back.id, u.id);
    assert.equal((await c.get(`/Users/${u.id}`)).status, 200);
    const hard = await cli("tenant", "set", "default", "--deletion", "hard", "--no-restore-on-create");
    assert.deepEqual(hard.deletion, { policy: "hard", restoreOnCreate: false });
    await assert.rejects(cli("tenant", "set", "default", "--deletion-days", "x"), (e) => e.code === 2);
  } finally {
    await c.stop();
  }
});
