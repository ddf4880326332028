// Webhooks end to end (issue 13): the compiled worker in workerd with a real local D1 and real
// Cloudflare Queues (Miniflare's), delivering to an HTTP receiver this test runs on loopback.
// Signatures are verified with the `standardwebhooks` npm package, not with the project's code.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Webhook } from "standardwebhooks";
import { startWorker, patchOps, ROOT, OBJECT_STORAGE } from "./harness.mjs";
import { queueOptions, startReceiver, until } from "./receiver.mjs";

const ADMIN = "webhooks-e2e-admin-token";
const HOOKS = "/admin/api/tenants/default/webhooks";

/** Verifies one received POST with the `standardwebhooks` package; returns the payload. */
function verified(secret, entry) {
  const headers = {
    "webhook-id": entry.headers["webhook-id"],
    "webhook-timestamp": entry.headers["webhook-timestamp"],
    "webhook-signature": entry.headers["webhook-signature"],
  };
  return new Webhook(secret).verify(entry.body, headers);
}

/** The first received POST of `type` for `path` (receiver path) after `from` entries. */
function received(rx, type, { pathIs, from = 0 } = {}) {
  return rx.got.slice(from).find((e) => (!pathIs || e.path === pathIs) && JSON.parse(e.body).type === type && e.status < 300);
}

async function createEndpoint(w, url, extra = {}) {
  const r = await w.request("POST", HOOKS, { token: ADMIN, body: { url, ...extra } });
  assert.equal(r.status, 201, r.text);
  assert.match(r.json.secret, /^whsec_/);
  return r.json;
}

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

test("endpoints: https only (loopback http in development), the secret shown once", async () => {
  let r = await w.request("POST", HOOKS, { token: ADMIN, body: { url: "http://example.com/hook" } });
  assert.equal(r.status, 400);
  assert.match(r.json.message, /https/);
  r = await w.request("POST", HOOKS, { token: ADMIN, body: { url: `${rx.url}/x`, events: ["user.exploded"] } });
  assert.equal(r.status, 400);
  const ep = await createEndpoint(w, `${rx.url}/unused`, { events: ["group.deleted"] });
  r = await w.request("GET", `${HOOKS}/${ep.id}`, { token: ADMIN });
  assert.equal(r.status, 200);
  assert.equal(r.json.secret, undefined);
  assert.deepEqual(r.json.events, ["group.deleted"]);
  r = await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
  assert.equal(r.status, 204);
});

test("every event type arrives through the queue with a valid Standard Webhooks signature", async () => {
  const ep = await createEndpoint(w, `${rx.url}/all`);
  const at = rx.got.length;
  const onPath = { pathIs: "/all", from: at };
  const user = await w.createUser("ada@contoso.com", { active: true, password: "Secret-123!" });
  const created = await until(() => received(rx, "user.created", onPath), "user.created");
  const payload = verified(ep.secret, created);
  assert.equal(payload.type, "user.created");
  assert.equal(payload.data.id, user.id);
  assert.equal(payload.data.userName, "ada@contoso.com");
  assert.equal(payload.tenant, "default");
  assert.equal(payload.id, created.headers["webhook-id"]);
  assert.ok(!created.body.includes("Secret-123!"), "no password in a webhook body");
  assert.ok(!Number.isNaN(Date.parse(payload.occurred_at)));

  // Entra's deactivation: a PATCH with "False".
  let r = await w.patch(`/Users/${user.id}`, patchOps({ op: "Replace", path: "active", value: "False" }));
  assert.equal(r.status, 200, r.text);
  const deact = await until(() => received(rx, "user.deactivated", onPath), "user.deactivated");
  assert.deepEqual(verified(ep.secret, deact).changed, ["active"]);
  assert.equal(JSON.parse(deact.body).data.active, false);
  r = await w.patch(`/Users/${user.id}`, patchOps({ op: "replace", path: "active", value: true }));
  await until(() => received(rx, "user.reactivated", onPath), "user.reactivated");
  r = await w.patch(`/Users/${user.id}`, patchOps({ op: "replace", path: "displayName", value: "Ada" }));
  await until(() => received(rx, "user.updated", onPath), "user.updated");

  const other = await w.createUser("grace@contoso.com");
  const group = await w.createGroup("Engineering", [user.id]);
  await until(() => received(rx, "group.created", onPath), "group.created");
  r = await w.patch(`/Groups/${group.id}`, patchOps({ op: "add", path: "members", value: [{ value: other.id }] }));
  assert.ok([200, 204].includes(r.status), r.text);
  const added = await until(() => received(rx, "group.member_added", onPath), "group.member_added");
  assert.deepEqual(verified(ep.secret, added).data, { id: group.id, members: [other.id] });
  r = await w.patch(`/Groups/${group.id}`, patchOps({ op: "remove", path: `members[value eq "${user.id}"]` }));
  const removed = await until(() => received(rx, "group.member_removed", onPath), "group.member_removed");
  assert.deepEqual(verified(ep.secret, removed).data, { id: group.id, members: [user.id] });
  r = await w.patch(`/Groups/${group.id}`, patchOps({ op: "replace", path: "displayName", value: "Eng" }));
  await until(() => received(rx, "group.updated", onPath), "group.updated");
  assert.equal((await w.delete(`/Groups/${group.id}`)).status, 204);
  assert.equal((await w.delete(`/Users/${user.id}`)).status, 204);
  const deleted = await until(() => received(rx, "user.deleted", onPath), "user.deleted");
  assert.deepEqual(verified(ep.secret, deleted).data, { id: user.id });
  await until(() => received(rx, "group.deleted", onPath), "group.deleted");

  const mine = rx.got.slice(at).filter((e) => e.path === "/all");
  for (const e of mine) verified(ep.secret, e); // throws if any signature is wrong
  const types = new Set(mine.map((e) => JSON.parse(e.body).type));
  assert.equal(types.size, 10, [...types].join(", "));
  // The delivery log shows each as delivered, with its latency (recorded once the receiver
  // has answered, so the last one may still be on its way).
  const log = await until(async () => {
    const res = await w.request("GET", `${HOOKS}/${ep.id}/deliveries`, { token: ADMIN });
    return res.json.deliveries.every((d) => d.status === "delivered") ? res.json.deliveries : null;
  }, "every delivery logged as delivered");
  assert.equal(log.length, mine.length);
  assert.ok(log.every((d) => d.attempts === 1 && typeof d.latencyMs === "number"), JSON.stringify(log));
  await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
});

test("a burst of concurrent writes: every event arrives, without waiting for the cron", async () => {
  const ep = await createEndpoint(w, `${rx.url}/burst`, { events: ["user.created"] });
  try {
    const names = Array.from({ length: 40 }, (_, i) => `burst${i}@contoso.com`);
    await Promise.all(names.map((n) => w.createUser(n)));
    const got = () => rx.got.filter((e) => e.path === "/burst");
    await until(() => new Set(got().map((e) => JSON.parse(e.body).data.userName)).size === names.length, "all 40 events", 15_000);
    for (const e of got()) verified(ep.secret, e);
    // At least once; here, with nothing failing, once per webhook-id.
    assert.equal(new Set(got().map((e) => e.headers["webhook-id"])).size, names.length);
  } finally {
    await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
  }
});

test("a receiver that fails for a while is retried with backoff, logged, and gets each event once", async () => {
  const ep = await createEndpoint(w, `${rx.url}/flaky`, { events: ["user.created"] });
  let failures = 0;
  rx.answer = (e) => (e.path === "/flaky" && failures++ < 2 ? 500 : 204);
  try {
    const user = await w.createUser("flaky@contoso.com");
    const ok = await until(() => rx.got.find((e) => e.path === "/flaky" && e.status === 204), "the third attempt");
    const attempts = rx.got.filter((e) => e.path === "/flaky");
    assert.equal(attempts.length, 3);
    assert.deepEqual(attempts.map((e) => e.status), [500, 500, 204]);
    // Backoff: 1 s, then 2 s (WEBHOOK_RETRY_BASE_SECONDS=1).
    assert.ok(attempts[1].at - attempts[0].at >= 900, `${attempts[1].at - attempts[0].at} ms`);
    assert.ok(attempts[2].at - attempts[1].at >= 1900, `${attempts[2].at - attempts[1].at} ms`);
    assert.equal(new Set(attempts.map((e) => e.headers["webhook-id"])).size, 1);
    assert.equal(verified(ep.secret, ok).data.id, user.id);
    const log = await until(async () => {
      const r = await w.request("GET", `${HOOKS}/${ep.id}/deliveries`, { token: ADMIN });
      return r.json.deliveries[0]?.status === "delivered" ? r.json.deliveries[0] : null;
    }, "the delivery log");
    assert.equal(log.attempts, 3);
    assert.equal(log.lastStatus, 204);
    // A redelivery sends the same event (same webhook-id) again.
    const r = await w.request("POST", `${HOOKS}/${ep.id}/redeliver`, { token: ADMIN, body: { seq: log.seq } });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.queued, 1);
    await until(() => rx.got.filter((e) => e.path === "/flaky").length === 4, "the redelivery");
    assert.equal(rx.got.filter((e) => e.path === "/flaky").at(-1).headers["webhook-id"], ok.headers["webhook-id"]);
  } finally {
    rx.answer = () => 204;
    await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
  }
});

test("a slow receiver does not hold up another endpoint's delivery in the same queue batch", async () => {
  // The slow endpoint is created first, so its message comes first in the batch.
  const slow = await createEndpoint(w, `${rx.url}/slow`, { events: ["user.created"] });
  const fast = await createEndpoint(w, `${rx.url}/fast`, { events: ["user.created"] });
  rx.delay = (e) => (e.path === "/slow" ? 4000 : 0);
  try {
    await w.createUser("patient@contoso.com");
    const committed = Date.now();
    const f = await until(() => rx.got.find((e) => e.path === "/fast"), "the fast delivery");
    assert.ok(f.at - committed < 2500, `the fast endpoint waited ${f.at - committed} ms`);
    await until(() => rx.got.find((e) => e.path === "/slow"), "the slow delivery");
  } finally {
    rx.delay = () => 0;
    for (const ep of [slow, fast]) await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
  }
});

test("out of retries, a message goes to the dead-letter queue and its delivery is logged dead", async () => {
  // Its own worker: the queue gives up after one retry here (20 in wrangler.toml).
  const options = queueOptions();
  options.queueConsumers["scim-webhooks"].maxRetries = 1;
  const dw = await startWorker({ adminToken: ADMIN, options });
  rx.answer = (e) => (e.path === "/gone" ? 503 : 204);
  try {
    const r = await dw.request("POST", HOOKS, { token: ADMIN, body: { url: `${rx.url}/gone` } });
    assert.equal(r.status, 201, r.text);
    await dw.createUser("doomed@contoso.com");
    const log = await until(async () => {
      const res = await dw.request("GET", `${HOOKS}/${r.json.id}/deliveries`, { token: ADMIN });
      return res.json.deliveries[0]?.status === "dead" ? res.json.deliveries[0] : null;
    }, "the delivery logged dead");
    assert.equal(log.attempts, 2);
    assert.equal(log.lastStatus, 503);
    assert.match(log.lastError, /dead-letter queue/);
    assert.equal(rx.got.filter((e) => e.path === "/gone").length, 2);
  } finally {
    rx.answer = () => 204;
    await dw.stop();
  }
});

test("during a rotation's overlap both signatures are sent, and each secret verifies", async () => {
  const ep = await createEndpoint(w, `${rx.url}/rotate`, { events: ["user.created"] });
  const r = await w.request("POST", `${HOOKS}/${ep.id}/rotate`, { token: ADMIN, body: { overlapSeconds: 600 } });
  assert.equal(r.status, 200, r.text);
  assert.notEqual(r.json.secret, ep.secret);
  await w.createUser("rotated@contoso.com");
  const got = await until(() => rx.got.find((e) => e.path === "/rotate"), "the rotated delivery");
  assert.equal(got.headers["webhook-signature"].split(" ").length, 2);
  assert.equal(verified(r.json.secret, got).type, "user.created");
  assert.equal(verified(ep.secret, got).type, "user.created");
  await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
});

test("an event committed but never queued (the worker went away) is sent by the next sweep after a restart", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "scim-webhooks-"));
  // With durable-object storage the tenant's object (its events, its alarm) persists too.
  const objects = OBJECT_STORAGE ? { durableObjectsPersist: dir } : {};
  const d1 = { d1Persist: dir, d1Databases: { DB: "webhooks-restart" }, ...objects };
  // First run: no queue binding, as if the isolate died right after the commit.
  const first = await startWorker({ adminToken: ADMIN, options: { ...d1, bindings: { WEBHOOK_ALLOW_LOOPBACK_HTTP: "1" } } });
  let ep;
  let user;
  try {
    ep = await createEndpoint(first, `${rx.url}/restart`);
    user = await first.createUser("survivor@contoso.com");
    assert.equal(await first.count("SELECT count(*) FROM webhook_deliveries"), 0);
  } finally {
    await first.stop();
  }
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(rx.got.filter((e) => e.path === "/restart").length, 0);
  const second = await startWorker({ adminToken: ADMIN, migrate: false, options: { ...queueOptions(), ...d1 } });
  try {
    // D1's events: the cron's sweep. An object's: its alarm, armed again by the tenant's next
    // write (the first run's alarm found no queue to send to).
    const res = await second.mf.dispatchFetch(`${second.origin}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent("* * * * *")}`);
    assert.equal(res.status, 200, await res.text());
    if (OBJECT_STORAGE) await second.createUser("next@contoso.com");
    const got = await until(() => rx.got.find((e) => e.path === "/restart" && JSON.parse(e.body).data.id === user.id), "the swept event");
    const payload = verified(ep.secret, got);
    assert.equal(payload.type, "user.created");
    assert.equal(payload.data.userName, "survivor@contoso.com");
  } finally {
    await second.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("admin CLI: create, list, change, rotate, read the log of and delete a webhook endpoint", async () => {
  const cw = await startWorker({ port: 0, adminToken: ADMIN, options: { bindings: { WEBHOOK_ALLOW_LOOPBACK_HTTP: "1" } } });
  const run = promisify(execFile);
  const cli = async (...args) => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, "scripts/admin.mjs"), "--url", cw.origin, ...args], {
      env: { ...process.env, ADMIN_TOKEN: ADMIN },
    });
    return JSON.parse(stdout);
  };
  try {
    const ep = await cli("webhook", "create", "default", `${rx.url}/cli`, "--events", "user.created,user.deleted");
    assert.match(ep.secret, /^whsec_/);
    assert.deepEqual(ep.events, ["user.created", "user.deleted"]);
    const list = await cli("webhooks", "default");
    assert.deepEqual(list.webhooks.map((x) => x.id), [ep.id]);
    assert.ok(!JSON.stringify(list).includes("whsec_"));
    const off = await cli("webhook", "set", "default", ep.id, "--disable");
    assert.equal(off.enabled, false);
    const on = await cli("webhook", "set", "default", ep.id, "--enable", "--events", "*");
    assert.deepEqual([on.enabled, on.events], [true, ["*"]]);
    const rotated = await cli("webhook", "rotate", "default", ep.id, "--overlap", "60");
    assert.match(rotated.secret, /^whsec_/);
    assert.notEqual(rotated.secret, ep.secret);
    assert.deepEqual(await cli("webhook", "deliveries", "default", ep.id, "--status", "dead"), { deliveries: [] });
    await assert.rejects(cli("webhook", "create", "default", "http://example.com/x"), (e) => e.code === 1 && /https/.test(e.stderr));
    assert.deepEqual(await cli("webhook", "delete", "default", ep.id), { ok: true });
    await assert.rejects(cli("webhook", "show", "default", ep.id), (e) => e.code === 1 && /404/.test(e.stderr));
  } finally {
    await cw.stop();
  }
});
