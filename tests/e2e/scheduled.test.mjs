// The daily cron (wrangler.toml `[triggers]`) through workerd + local D1: the entry module
// exports `scheduled`, and a run prunes provisioning-log events older than LOG_RETENTION_DAYS
// while keeping the newer ones. Before the fix the entry module exported only `fetch`, so the
// run failed without touching the log. The cron prunes D1's log, so those tests keep tenants
// in D1 on either run of the suite; a tenant kept in a Durable Object prunes its own log
// (the last test but one).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, ROOT } from "./harness.mjs";

const DAY_MS = 86_400_000;
const CRON = "23 3 * * *";

let w;
before(async () => {
  // `unsafeTriggerHandlers` serves /cdn-cgi/handler/scheduled, the route `wrangler dev` uses.
  w = await startWorker({ storage: "d1", options: { bindings: { LOG_RETENTION_DAYS: "30" }, unsafeTriggerHandlers: true } });
});
after(async () => {
  await w?.stop();
});

/** Inserts one event `ageDays` old for tenant `default`; returns its request id. */
async function insertEvent(ageDays, label) {
  const time = new Date(Date.now() - ageDays * DAY_MS).toISOString();
  const rid = `${label}-${ageDays}`;
  await w.db
    .prepare("INSERT INTO events (tenant, time, op, resource_type, outcome, status, request_id) VALUES ('default', ?, 'create', 'User', 'success', 201, ?)")
    .bind(time, rid)
    .run();
  return rid;
}

async function remaining(label) {
  const { results } = await w.db.prepare("SELECT request_id FROM events WHERE request_id LIKE ? ORDER BY seq").bind(`${label}-%`).all();
  return results.map((r) => r.request_id);
}

test("a scheduled run prunes events older than LOG_RETENTION_DAYS and keeps the newer ones", async () => {
  for (const age of [400, 31, 30.01]) await insertEvent(age, "dispatch");
  const kept = [await insertEvent(29.99, "dispatch"), await insertEvent(1, "dispatch"), await insertEvent(0, "dispatch")];
  // A real write is logged (and kept) too.
  await w.createUser("scheduled.kept@contoso.com");
  const loggedBefore = await w.count("SELECT count(*) FROM events WHERE request_id NOT LIKE 'dispatch-%'");
  assert.equal(loggedBefore, 1);

  const worker = await w.mf.getWorker();
  const result = await worker.scheduled({ cron: CRON, scheduledTime: new Date() });
  assert.equal(result.outcome, "ok", JSON.stringify(result));
  assert.deepEqual(await remaining("dispatch"), kept);
  assert.equal(await w.count("SELECT count(*) FROM events WHERE request_id NOT LIKE 'dispatch-%'"), 1);
  // The fetch handler is unaffected.
  assert.equal((await w.get("/ServiceProviderConfig")).status, 200);
});

test("the wrangler-dev style trigger (/cdn-cgi/handler/scheduled) runs the handler instead of erroring", async () => {
  await insertEvent(91, "trigger");
  const kept = await insertEvent(2, "trigger");
  const res = await w.mf.dispatchFetch(`${w.origin}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent(CRON)}`);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.deepEqual(await remaining("trigger"), [kept]);
});

test("without LOG_RETENTION_DAYS the default of 90 days applies", async () => {
  const d = await startWorker({ storage: "d1" });
  try {
    const ins = (age, rid) =>
      d.db
        .prepare("INSERT INTO events (tenant, time, op, resource_type, outcome, status, request_id) VALUES ('default', ?, 'delete', 'Group', 'failure', 404, ?)")
        .bind(new Date(Date.now() - age * DAY_MS).toISOString(), rid)
        .run();
    await ins(91, "old");
    await ins(89, "young");
    const result = await (await d.mf.getWorker()).scheduled({ cron: CRON });
    assert.equal(result.outcome, "ok", JSON.stringify(result));
    const { results } = await d.db.prepare("SELECT request_id FROM events ORDER BY seq").all();
    assert.deepEqual(results.map((r) => r.request_id), ["young"]);
  } finally {
    await d.stop();
  }
});

test("a tenant's object prunes its own log past LOG_RETENTION_DAYS on its first request after it starts; the cron does not reach it", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "scim-prune-"));
  const options = {
    d1Persist: dir,
    durableObjectsPersist: dir,
    d1Databases: { DB: "prune-restart" },
    bindings: { LOG_RETENTION_DAYS: "30" },
  };
  const ids = async (o) =>
    (await o.objects.prepare("SELECT request_id FROM events WHERE request_id LIKE 'object-%' ORDER BY seq").all()).results.map((r) => r.request_id);
  let second;
  try {
    const first = await startWorker({ storage: "durable-object", options });
    try {
      await first.createUser("object.prune.kept@contoso.com");
      // Written after this instance's first request, when it pruned: both stay until it restarts.
      for (const age of [31, 29]) {
        await first.objects
          .prepare("INSERT INTO events (tenant, time, op, resource_type, outcome, status, request_id) VALUES ('default', ?, 'create', 'User', 'success', 201, ?)")
          .bind(new Date(Date.now() - age * DAY_MS).toISOString(), `object-${age}`)
          .run();
      }
      const result = await (await first.mf.getWorker()).scheduled({ cron: CRON });
      assert.equal(result.outcome, "ok", JSON.stringify(result));
      assert.deepEqual(await ids(first), ["object-31", "object-29"], "the daily cron prunes D1 only");
    } finally {
      await first.stop();
    }
    second = await startWorker({ storage: "durable-object", migrate: false, options });
    assert.deepEqual(await ids(second), ["object-31", "object-29"], "nothing pruned before a request");
    assert.equal((await second.get("/Users?count=1")).status, 200);
    assert.deepEqual(await ids(second), ["object-29"]);
    assert.equal(await second.objects.prepare("SELECT count(*) AS n FROM events WHERE request_id NOT LIKE 'object-%'").first().then((r) => r.n), 1, "the real write's event is kept");
  } finally {
    await second?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

const FAULTS_ENTRY = path.join(ROOT, "build-faults/entry.mjs");

test("a panic in a scheduled run fails the run visibly (logged with a run id), and the worker serves on", { skip: !existsSync(FAULTS_ENTRY) && "build-faults/ not built (scripts/test.sh builds it)" }, async () => {
  let logs = "";
  const capture = (stdout, stderr) => {
    for (const s of [stdout, stderr]) s.on("data", (chunk) => (logs += chunk.toString()));
  };
  const f = await startWorker({ options: { scriptPath: FAULTS_ENTRY, handleRuntimeStdio: capture } });
  try {
    const worker = await f.mf.getWorker();
    // The fault-injection build panics on this cron expression (src/worker/mod.rs).
    const failed = await worker.scheduled({ cron: "0 0 31 2 *" });
    assert.equal(failed.outcome, "exception", JSON.stringify(failed));
    await new Promise((r) => setTimeout(r, 200)); // let the runtime's output drain
    assert.match(logs, /[0-9a-f]{16} scheduled -> failed: RuntimeError in the worker/);
    // A fresh instance serves the next request and the next run.
    assert.equal((await f.get("/ServiceProviderConfig")).status, 200);
    assert.equal((await worker.scheduled({ cron: CRON })).outcome, "ok");
  } finally {
    await f.stop();
  }
});
