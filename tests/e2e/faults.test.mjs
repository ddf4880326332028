// Faults end to end: D1 errors (injected with a trigger, or a table taken away) and panics
// (a test-only route of the `fault-injection` build in build-faults/) answer a 500 SCIM Error
// that leaks nothing, leave nothing half-done, and the next request is served normally.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { startWorker, assertScimError, ROOT, GROUP_SCHEMA, patchOps as ops } from "./harness.mjs";

const FAULTS_ENTRY = path.join(ROOT, "build-faults/entry.mjs");

let w;
before(async () => {
  w = await startWorker();
});
after(async () => {
  await w?.stop();
});

/** A 500 SCIM Error naming a request id and nothing of the cause. */
function assertOpaque500(r) {
  assertScimError(assert, r, 500, undefined);
  const rid = r.headers.get("x-request-id");
  assert.match(rid ?? "", /^[0-9a-f]{16}$/);
  assert.ok(r.json.detail.includes(rid), r.text);
  for (const leak of ["injected", "SQLITE", "D1_", "no such table", "members_moved", "panic", "unreachable", "RuntimeError"]) {
    assert.ok(!r.text.includes(leak), `'${leak}' leaked: ${r.text}`);
  }
}

async function groupState(id) {
  return {
    row: await w.db.prepare("SELECT data, modified, version FROM resources WHERE id = ?").bind(id).first(),
    members: (await w.db.prepare("SELECT member_id FROM members WHERE group_id = ? ORDER BY member_id").bind(id).all()).results,
  };
}

test("a D1 error in the middle of a write batch: 500, the earlier statements rolled back, next request fine", async () => {
  const a = await w.createUser("fault.a@contoso.com");
  const b = await w.createUser("fault.b@contoso.com");
  const poison = await w.createUser("fault.poison@contoso.com");
  const g = await w.createGroup("Fault Group", [a.id, b.id]);
  await w.db
    .prepare(`CREATE TRIGGER injected_fault BEFORE INSERT ON members WHEN NEW.member_id = '${poison.id}' BEGIN SELECT RAISE(ABORT, 'injected fault'); END`)
    .run();
  const before = await groupState(g.id);
  const groupsBefore = await w.count("SELECT count(*) FROM resources WHERE type = 'Group'");
  try {
    // PATCH: [UPDATE resources (rename), INSERT members (fails), SELECT].
    const r1 = await w.patch(`/Groups/${g.id}`, ops({ op: "replace", path: "displayName", value: "Renamed" }, { op: "add", path: "members", value: [{ value: poison.id }] }));
    assertOpaque500(r1);
    assert.deepEqual(await groupState(g.id), before, "the rename did not apply");
    // PUT: [UPDATE resources, DELETE all members, INSERT members (fails), SELECT].
    const r2 = await w.put(`/Groups/${g.id}`, { schemas: [GROUP_SCHEMA], displayName: "Fault Group", members: [{ value: poison.id }] });
    assertOpaque500(r2);
    assert.deepEqual(await groupState(g.id), before, "no member was removed");
    // POST: [INSERT resources, INSERT members (fails), SELECT].
    const r3 = await w.post("/Groups", { schemas: [GROUP_SCHEMA], displayName: "Half Made", members: [{ value: a.id }, { value: poison.id }] });
    assertOpaque500(r3);
    assert.equal(await w.count("SELECT count(*) FROM resources WHERE type = 'Group'"), groupsBefore, "no group without its members");
    // The next request is served normally, and the same change without the poison applies.
    const ok = await w.patch(`/Groups/${g.id}`, ops({ op: "replace", path: "displayName", value: "Renamed" }));
    assert.equal(ok.status, 204, ok.text);
    assert.equal((await w.get(`/Groups/${g.id}`)).json.displayName, "Renamed");
  } finally {
    await w.db.prepare("DROP TRIGGER injected_fault").run();
  }
});

test("a D1 error on a read: 500 with no detail, then normal service once D1 recovers", async () => {
  const g = await w.createGroup("Read Fault");
  await w.db.prepare("ALTER TABLE members RENAME TO members_moved").run();
  try {
    assertOpaque500(await w.get(`/Groups/${g.id}`));
    assertOpaque500(await w.get("/Groups?filter=displayName%20pr"));
  } finally {
    await w.db.prepare("ALTER TABLE members_moved RENAME TO members").run();
  }
  const r = await w.get(`/Groups/${g.id}`);
  assert.equal(r.status, 200, r.text);
});

test("a panic answers a 500 SCIM Error, in-flight requests too, and the next request gets a fresh instance", { skip: !existsSync(FAULTS_ENTRY) && "build-faults/ not built (scripts/test.sh builds it)" }, async () => {
  const f = await startWorker({ options: { scriptPath: FAULTS_ENTRY } });
  try {
    const u = await f.createUser("panic.survivor@contoso.com");
    const panic = await f.mf.dispatchFetch(`${f.origin}/__fault/panic`, { headers: { Authorization: `Bearer ${f.token}` } });
    const text = await panic.text();
    assertOpaque500({ status: panic.status, headers: panic.headers, text, json: JSON.parse(text) });
    // The next request is served by a re-initialised instance, with the data intact.
    const next = await f.get(`/Users/${u.id}`);
    assert.equal(next.status, 200, next.text);
    assert.equal(next.json.userName, "panic.survivor@contoso.com");
    // A panic while other requests are in flight: each of them is answered, normally or with
    // a SCIM 500, never left hanging or answered with a bare runtime error.
    const rs = await Promise.all([
      ...Array.from({ length: 10 }, () => f.get(`/Users/${u.id}`)),
      f.mf.dispatchFetch(`${f.origin}/__fault/panic`).then(async (r) => ({ status: r.status, headers: r.headers, text: await r.text() })),
      ...Array.from({ length: 10 }, (_, i) => f.post("/Users", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: `inflight.${i}@contoso.com` })),
    ]);
    for (const r of rs) {
      if (r.status === 500) assertOpaque500({ ...r, json: JSON.parse(r.text) });
      else assert.ok([200, 201].includes(r.status), `${r.status} ${r.text}`);
    }
    assert.equal((await f.get(`/Users/${u.id}`)).status, 200);
    // A write whose request died is either fully there or not at all.
    for (let i = 0; i < 10; i++) {
      const n = await f.count("SELECT count(*) FROM resources WHERE user_name = ?", `inflight.${i}@contoso.com`);
      assert.ok(n === 0 || n === 1);
    }
  } finally {
    await f.stop();
  }
});

test("the deployed build has no fault-injection route", async () => {
  const r = await w.mf.dispatchFetch(`${w.origin}/__fault/panic`, { headers: { Authorization: `Bearer ${w.token}` } });
  assert.equal(r.status, 404);
  assert.equal((await w.get("/ServiceProviderConfig")).status, 200);
});

test("logs name request ids, methods and paths, never tokens, bodies, filters or personal data", async () => {
  let logs = "";
  const capture = (stdout, stderr) => {
    for (const s of [stdout, stderr]) s.on("data", (chunk) => (logs += chunk.toString()));
  };
  const entry = existsSync(FAULTS_ENTRY) ? FAULTS_ENTRY : path.join(ROOT, "build/entry.mjs");
  const f = await startWorker({ options: { scriptPath: entry, handleRuntimeStdio: capture } });
  const secret = "Personal.Person@contoso.example";
  try {
    const u = await f.createUser(secret, { displayName: "Very Personal", emails: [{ value: secret }] });
    // Tolerated quirks are logged (as notes), a D1 failure is logged (as its cause), a panic is.
    await f.patch(`/Users/${u.id}`, ops({ op: "Replace", path: "active", value: "False" }));
    await f.get(`/Users?filter=${encodeURIComponent(`userName eq "${secret}"`)}`);
    await f.get("/Users", { token: "wrong-token-that-must-not-be-logged" });
    await f.db.prepare("ALTER TABLE members RENAME TO members_moved").run();
    const failed = await f.get(`/Users/${u.id}`);
    await f.db.prepare("ALTER TABLE members_moved RENAME TO members").run();
    assert.equal(failed.status, 500);
    if (entry === FAULTS_ENTRY) await f.mf.dispatchFetch(`${f.origin}/__fault/panic`);
    await f.get("/ServiceProviderConfig");
    await new Promise((r) => setTimeout(r, 200)); // let the runtime's output drain
    assert.match(logs, new RegExp(`${failed.headers.get("x-request-id")} GET /scim/v2/Users/${u.id} -> 500`), "a 500 is logged with its request id");
    assert.match(logs, /tolerated booleanString/);
    if (process.env.SHOW_LOGS) console.log(logs);
    for (const leak of [f.token, "wrong-token-that-must-not-be-logged", secret, secret.toLowerCase(), "Very Personal", "filter=", "userName eq"]) {
      assert.ok(!logs.includes(leak), `the log contains '${leak}':\n${logs}`);
    }
  } finally {
    await f.stop();
  }
});
