// The provisioning log and change feed through workerd + local D1: writes (and failures) by an
// issued credential appear once each, in order, with the credential id and no secrets.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, PATCH_OP, USER_SCHEMA } from "./harness.mjs";

const ADMIN = "e2e-admin-token-for-the-log";
let w;
before(async () => {
  w = await startWorker({ adminToken: ADMIN });
});
after(async () => {
  await w?.stop();
});

async function admin(method, path, body) {
  const res = await w.mf.dispatchFetch(`${w.origin}/admin/api${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: await res.json() };
}

test("writes by an issued token are logged with its credential id; the feed pages them once", async () => {
  const created = await admin("POST", "/tenants", { id: "logco", name: "Log Co" });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const issued = await admin("POST", "/tenants/logco/tokens", { label: "entra" });
  assert.equal(issued.status, 201, JSON.stringify(issued.json));
  const { token, id: credentialId } = issued.json;
  const scim = (method, p, body) =>
    w.mf.dispatchFetch(`${w.origin}/t/logco/scim/v2${p}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" },
      body: body ? JSON.stringify(body) : undefined,
    });

  const c = await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "logged@logco.example", active: true, password: "Secr3t!" });
  assert.equal(c.status, 201);
  const user = await c.json();
  const p = await scim("PATCH", `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: "Replace", path: "active", value: "False" }] });
  assert.equal(p.status, 200);
  const dup = await scim("POST", "/Users", { schemas: [USER_SCHEMA], userName: "LOGGED@logco.example" });
  assert.equal(dup.status, 409);
  const d = await scim("DELETE", `/Users/${user.id}`);
  assert.equal(d.status, 204);

  const first = await admin("GET", "/tenants/logco/events?limit=2");
  assert.equal(first.status, 200);
  const second = await admin("GET", `/tenants/logco/events?limit=2&since=${first.json.nextSince}`);
  const events = [...first.json.events, ...second.json.events];
  assert.deepEqual(events.map((e) => [e.op, e.outcome, e.status]), [
    ["create", "success", 201],
    ["patch", "success", 200],
    ["create", "failure", 409],
    ["delete", "success", 204],
  ]);
  assert.ok(events.every((e) => e.credential === credentialId));
  assert.equal(events[1].deactivated, true);
  assert.deepEqual(events[1].attributes, ["active"]);
  assert.ok(!JSON.stringify(events).includes("Secr3t"));
  assert.ok(!JSON.stringify(events).includes(token));
  const rest = await admin("GET", `/tenants/logco/events?since=${second.json.nextSince}`);
  assert.deepEqual(rest.json.events, []);

  const summary = await admin("GET", "/tenants/logco/events/summary?days=1");
  assert.equal(summary.status, 200);
  assert.deepEqual(
    summary.json.days.map(({ create, update, deactivate, delete: del, failure }) => ({ create, update, deactivate, del, failure })),
    [{ create: 1, update: 0, deactivate: 1, del: 1, failure: 1 }],
  );
  const other = await admin("GET", "/tenants/default/events");
  assert.deepEqual(other.json.events, [], "events stay with their tenant");
});
