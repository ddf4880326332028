// The daily cron (wrangler.toml `[triggers]`) through workerd + local D1: the entry module
// exports `scheduled`, and a run prunes provisioning-log events older than LOG_RETENTION_DAYS
// while keeping the newer ones. Before the fix the entry module exported only `fetch`, so the
// run failed without touching the log.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { startWorker, ROOT, d1Only } from "./harness.mjs";

const DAY_MS = 86_400_000;
const CRON = "23 3 * * *";

let w;
before(async () => {
  // `unsafeTriggerHandlers` serves /cdn-cgi/handler/scheduled, the route `wrangler dev` uses.
  w = await startWorker({ options: { bindings: { LOG_RETENTION_DAYS: "30" }, unsafeTriggerHandlers: true } });
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

test("a scheduled run prunes events older than LOG_RETENTION_DAYS and keeps the newer ones", d1Only("the daily retention prune reaches D1's provisioning log only, not objects' logs, yet"), async () => {
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

test("the wrangler-dev style trigger (/cdn-cgi/handler/scheduled) runs the handler instead of erroring", d1Only("the daily retention prune reaches D1's provisioning log only, not objects' logs, yet"), async () => {
  await insertEvent(91, "trigger");
  const kept = await insertEvent(2, "trigger");
  const res = await w.mf.dispatchFetch(`${w.origin}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent(CRON)}`);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.deepEqual(await remaining("trigger"), [kept]);
});

test("without LOG_RETENTION_DAYS the default of 90 days applies", d1Only("the daily retention prune reaches D1's provisioning log only, not objects' logs, yet"), async () => {
  const d = await startWorker();
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
