// Moving a tenant between two deployments, each a worker in workerd with its own local D1:
// the CLI exports from the first (`tenant export`, pages followed over HTTP) and imports into
// the second (`tenant import`, in chunks), and every resource, list, filter and ETag the
// second serves is the first's. The identity provider's token moves with the tenant.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, ROOT, USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE, patchOps } from "./harness.mjs";
import { queueOptions, startReceiver, until } from "./receiver.mjs";

const run = promisify(execFile);
const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
let from;
let to;

before(async () => {
  from = await startWorker({ port: 0, adminToken: ADMIN });
  to = await startWorker({ port: 0, adminToken: ADMIN });
});
after(async () => {
  await from?.stop();
  await to?.stop();
});

const admin = (w, method, p, body) => w.request(method, `/admin/api${p}`, { token: ADMIN, body });

/** `scripts/admin.mjs` against worker `w`: its stdout, stderr. */
async function cli(w, ...args) {
  const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, "scripts/admin.mjs"), "--url", w.origin, "--token", ADMIN, ...args], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return { stdout, stderr };
}

async function populate(token, w = from) {
  const scim = (method, p, body) => w.request(method, `/t/acme/scim/v2${p}`, { token, body, contentType: "application/scim+json" });
  const ids = [];
  for (let i = 0; i < 30; i++) {
    const r = await scim("POST", "/Users", {
      schemas: [USER_SCHEMA, ENTERPRISE],
      userName: `user${i}@example.com`,
      externalId: `ext-${i}`,
      name: { givenName: `G${i}`, familyName: "Émile \"F\"" },
      emails: [{ value: `user${i}@example.com`, type: "work", primary: true }],
      [ENTERPRISE]: { employeeNumber: String(i) },
    });
    assert.equal(r.status, 201, r.text);
    ids.push(r.json.id);
  }
  let r = await scim("PATCH", `/Users/${ids[2]}`, patchOps({ op: "Replace", path: "active", value: "False" }));
  assert.equal(r.status, 200, r.text);
  r = await scim("POST", "/Groups", { schemas: [GROUP_SCHEMA], displayName: "Sales", members: ids.slice(0, 10).map((value) => ({ value })) });
  assert.equal(r.status, 201, r.text);
  const sales = r.json.id;
  r = await scim("POST", "/Groups", { schemas: [GROUP_SCHEMA], displayName: "Everyone", members: [{ value: sales }, { value: ids[20] }] });
  assert.equal(r.status, 201, r.text);
  r = await scim("DELETE", `/Users/${ids[29]}`);
  assert.equal(r.status, 204);
  return ids.slice(0, 29);
}

/** Every view the IdP or the app reads, as the tenant's token sees it on worker `w`. */
async function views(w, token, ids) {
  const get = (p) => w.request("GET", `/t/acme/scim/v2${p}`, { token });
  const paths = [
    "/Users?count=1000",
    "/Groups?count=1000",
    "/Users?startIndex=5&count=7",
    "/Users?filter=userName%20eq%20%22USER7%40example.com%22",
    '/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22user9%40example.com%22',
    "/Users?filter=active%20eq%20false",
    "/Users?sortBy=userName&sortOrder=descending&count=10",
    "/Groups?filter=displayName%20eq%20%22sales%22&excludedAttributes=members",
  ];
  const groups = (await get("/Groups")).json.Resources.map((g) => `/Groups/${g.id}`);
  const out = [];
  for (const p of [...paths, ...ids.map((id) => `/Users/${id}`), ...groups]) {
    const r = await get(p);
    assert.equal(r.status, 200, `${p}: ${r.text}`);
    // The two deployments listen on different ports: meta.location and $ref name their own.
    out.push({ p, text: r.text.replaceAll(w.origin, "ORIGIN"), etag: r.headers.get("etag") });
  }
  return out;
}

test("a tenant moved with the CLI to another deployment serves the same directory to the same token", async () => {
  let r = await admin(from, "POST", "/tenants", { id: "acme", name: "Acme" });
  assert.equal(r.status, 201, r.text);
  r = await admin(from, "POST", "/tenants/acme/tokens", { label: "Entra" });
  const token = r.json.token;
  const ids = await populate(token);
  const before = await views(from, token, ids);

  // Export in small pages (the CLI follows x-export-next) to a file.
  const dir = mkdtempSync(path.join(tmpdir(), "tenant-move-"));
  const file = path.join(dir, "acme.ndjson");
  const exp = await cli(from, "tenant", "export", "acme", "--limit", "10");
  writeFileSync(file, exp.stdout);
  const lines = exp.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines[0].record, "header");
  assert.equal(lines[0].format, "scim-edge-tenant/1");
  assert.equal(lines[0].counts.resource, 31);
  assert.equal(lines.at(-1).record, "trailer");
  assert.deepEqual(lines.at(-1).counts, lines[0].counts);
  assert.match(exp.stderr, /pages/);
  assert.ok(!exp.stdout.includes(token), "no token in clear");

  // The source is frozen for writes, not for reads.
  const write = await from.request("POST", "/t/acme/scim/v2/Users", { token, body: { schemas: [USER_SCHEMA], userName: "late" } });
  assert.equal(write.status, 503, write.text);
  assert.equal(write.headers.get("retry-after"), "60");
  assert.equal((await from.request("GET", "/t/acme/scim/v2/Users?count=1", { token })).status, 200);

  // Import into the second deployment's D1 (the tenant is created by the import).
  const imp = await cli(to, "tenant", "import", "acme", file);
  const result = JSON.parse(imp.stdout);
  assert.equal(result.done, true, imp.stdout);
  assert.equal(result.lines, lines.length - 1);

  const moved = await views(to, token, ids);
  assert.equal(moved.length, before.length);
  for (let i = 0; i < before.length; i++) {
    assert.equal(moved[i].text, before[i].text, before[i].p);
    assert.equal(moved[i].etag, before[i].etag, before[i].p);
  }
  // The provisioning log moved in order (sequence numbers are the target's own).
  const log = async (w) => (await admin(w, "GET", "/tenants/acme/events?limit=1000&outcome=success")).json.events.map(({ seq, ...e }) => e);
  assert.deepEqual(await log(to), await log(from));
  assert.equal((await log(to)).length, 34);
  // Writable on the target at once; the source until its export is ended stays frozen.
  const created = await to.request("POST", "/t/acme/scim/v2/Users", { token, body: { schemas: [USER_SCHEMA], userName: "after-move" } });
  assert.equal(created.status, 201, created.text);
  await cli(from, "tenant", "export-end", "acme");
  const thawed = await from.request("POST", "/t/acme/scim/v2/Users", { token, body: { schemas: [USER_SCHEMA], userName: "late" } });
  assert.equal(thawed.status, 201, thawed.text);
});

test("a damaged export is refused by the CLI's import with nothing stored, and the good file imports after it", async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "tenant-move-")), "bad.ndjson");
  let r = await admin(from, "POST", "/tenants", { id: "beta" });
  assert.equal(r.status, 201, r.text);
  r = await admin(from, "POST", "/tenants/beta/tokens", {});
  const token = r.json.token;
  for (let i = 0; i < 5; i++) {
    const u = await from.request("POST", "/t/beta/scim/v2/Users", { token, body: { schemas: [USER_SCHEMA], userName: `b${i}` } });
    assert.equal(u.status, 201);
  }
  const { stdout } = await cli(from, "tenant", "export", "beta", "--no-credentials");
  writeFileSync(file, stdout.replace('\\"b3\\"', '\\"b9\\"'));
  assert.notEqual(readFileSync(file, "utf8"), stdout, "the file was altered");
  await assert.rejects(cli(to, "tenant", "import", "beta", file), /checksum/);
  // The file fits one chunk, which held the trailer: refused whole, nothing stored.
  const status = JSON.parse((await cli(to, "tenant", "import-status", "beta")).stdout);
  assert.equal(status, null);
  assert.equal(await to.count("SELECT count(*) AS n FROM resources WHERE tenant = 'beta'"), 0);
  // The good file goes in afterwards.
  writeFileSync(file, stdout);
  const ok = JSON.parse((await cli(to, "tenant", "import", "beta", file)).stdout);
  assert.equal(ok.done, true);
  assert.equal(await to.count("SELECT count(*) AS n FROM resources WHERE tenant = 'beta'"), 5);
});

/** An export's records, without its header and trailer (the time it was made, and the
 * checksum that chains it) and without when each token was last used. */
function records(file) {
  const lines = file.trimEnd().split("\n").map((l) => JSON.parse(l));
  return lines.slice(1, -1).map(({ last_used, ...r }) => r);
}

test("a tenant moves from a d1 deployment to a durable-object one and back, serving the same bytes", async () => {
  // Three deployments: the tenant starts on D1, moves into its own Durable Object on the
  // second (SCIM_STORAGE=durable-object), then to a third on D1 again.
  const a = await startWorker({ port: 0, adminToken: ADMIN, storage: "d1" });
  const b = await startWorker({ port: 0, adminToken: ADMIN, storage: "durable-object" });
  const c = await startWorker({ port: 0, adminToken: ADMIN, storage: "d1" });
  try {
    let r = await admin(a, "POST", "/tenants", { id: "acme", name: "Acme" });
    assert.equal(r.status, 201, r.text);
    r = await admin(a, "PATCH", "/tenants/acme", { deletion: { policy: "soft", days: 30 } });
    assert.equal(r.status, 200, r.text);
    r = await admin(a, "POST", "/tenants/acme/roles", { id: "admin", displayName: "Admin" });
    assert.equal(r.status, 201, r.text);
    r = await admin(a, "POST", "/tenants/acme/tokens", { label: "Entra" });
    const token = r.json.token;
    const ids = await populate(token, a);
    const before = await views(a, token, ids);
    const log = async (w) => (await admin(w, "GET", "/tenants/acme/events?limit=1000&outcome=success")).json.events.map(({ seq, ...e }) => e);
    const tombstones = async (w) => (await admin(w, "GET", "/tenants/acme/tombstones")).json.tombstones;
    const beforeLog = await log(a);
    const beforeTombs = await tombstones(a);
    assert.equal(beforeTombs.length, 1);

    const dir = mkdtempSync(path.join(tmpdir(), "tenant-move-do-"));
    const fileA = path.join(dir, "a.ndjson");
    const expA = (await cli(a, "tenant", "export", "acme", "--limit", "7")).stdout;
    writeFileSync(fileA, expA);
    const header = JSON.parse(expA.split("\n")[0]);
    assert.equal(header.counts.resource, 31);
    assert.equal(header.counts.tombstone, 1);
    assert.equal(header.counts.entitlement, 1);
    assert.equal(header.counts.credential, 1);

    // D1 -> durable-object: the import verifies the trailer's counts and checksum.
    const impB = JSON.parse((await cli(b, "tenant", "import", "acme", fileA)).stdout);
    assert.equal(impB.done, true, JSON.stringify(impB));
    assert.equal(impB.lines, expA.trimEnd().split("\n").length - 1);
    // What arrived, per kind (kinds with no record are left out), is what the header said.
    for (const [kind, n] of Object.entries(header.counts)) assert.equal(impB.counts[kind] ?? 0, n, kind);
    // The directory is in the object; B's D1 holds the tenant's control plane only.
    // D1 itself (b.db reads objects' tables in the suite's durable-object run).
    for (const table of ["resources", "events"]) {
      assert.equal((await b.d1.prepare(`SELECT count(*) AS n FROM ${table}`).first()).n, 0, table);
    }
    assert.equal(await b.count("SELECT count(*) FROM credentials WHERE tenant = 'acme'"), 1);
    assert.equal((await admin(b, "GET", "/tenants/acme")).json.storage, "durable-object");
    const onB = await views(b, token, ids);
    for (let i = 0; i < before.length; i++) {
      assert.equal(onB[i].text, before[i].text, before[i].p);
      assert.equal(onB[i].etag, before[i].etag, before[i].p);
    }
    assert.deepEqual(await log(b), beforeLog);
    assert.deepEqual(await tombstones(b), beforeTombs);

    // durable-object -> D1: the object's export is D1's, record for record.
    const fileB = path.join(dir, "b.ndjson");
    const expB = (await cli(b, "tenant", "export", "acme", "--limit", "5")).stdout;
    writeFileSync(fileB, expB);
    assert.deepEqual(records(expB), records(expA));
    // Frozen in the object: reads served, writes refused until the export ends.
    const late = { schemas: [USER_SCHEMA], userName: "late" };
    let w = await b.request("POST", "/t/acme/scim/v2/Users", { token, body: late });
    assert.equal(w.status, 503, w.text);
    assert.equal(w.headers.get("retry-after"), "60");
    assert.equal((await b.request("GET", `/t/acme/scim/v2/Users/${ids[0]}`, { token })).status, 200);
    const impC = JSON.parse((await cli(c, "tenant", "import", "acme", fileB)).stdout);
    assert.equal(impC.done, true, JSON.stringify(impC));
    assert.equal(await c.count("SELECT count(*) FROM resources WHERE tenant = 'acme'"), 31);
    const onC = await views(c, token, ids);
    for (let i = 0; i < before.length; i++) {
      assert.equal(onC[i].text, before[i].text, before[i].p);
      assert.equal(onC[i].etag, before[i].etag, before[i].p);
    }
    assert.deepEqual(await log(c), beforeLog);
    assert.deepEqual(await tombstones(c), beforeTombs);
    // The object tenant thaws when its export is ended.
    await cli(b, "tenant", "export-end", "acme");
    w = await b.request("POST", "/t/acme/scim/v2/Users", { token, body: late });
    assert.equal(w.status, 201, w.text);
  } finally {
    await a.stop();
    await b.stop();
    await c.stop();
  }
});

test("a push endpoint moved from a d1 deployment into a durable-object one gets only what is written after the move", async () => {
  // The endpoint is older than the tenant's log (it keeps its `created` when it moves): the
  // target's object must still start it after every moved event, which the source delivered.
  const rx = await startReceiver();
  // One CURSOR_SECRET: the endpoint's sealed signing key opens on the target.
  const options = queueOptions({ CURSOR_SECRET: randomBytes(32).toString("base64url") });
  const a = await startWorker({ port: 0, adminToken: ADMIN, storage: "d1", options });
  const b = await startWorker({ port: 0, adminToken: ADMIN, storage: "durable-object", options });
  try {
    let r = await admin(a, "POST", "/tenants", { id: "acme", name: "Acme" });
    assert.equal(r.status, 201, r.text);
    r = await admin(a, "POST", "/tenants/acme/webhooks", { url: `${rx.url}/hook` });
    assert.equal(r.status, 201, r.text);
    r = await admin(a, "POST", "/tenants/acme/tokens", { label: "Entra" });
    const token = r.json.token;
    const user = (w, userName) => w.request("POST", "/t/acme/scim/v2/Users", { token, body: { schemas: [USER_SCHEMA], userName } });
    for (const n of ["before-1", "before-2", "before-3"]) assert.equal((await user(a, n)).status, 201);
    const names = () => rx.got.map((e) => JSON.parse(e.body).data?.userName);
    await until(() => rx.got.length >= 3, "the source's deliveries");
    assert.deepEqual(names().sort(), ["before-1", "before-2", "before-3"]);

    const dir = mkdtempSync(path.join(tmpdir(), "tenant-move-hooks-"));
    const file = path.join(dir, "a.ndjson");
    writeFileSync(file, (await cli(a, "tenant", "export", "acme", "--limit", "2")).stdout);
    const imp = JSON.parse((await cli(b, "tenant", "import", "acme", file)).stdout);
    assert.equal(imp.done, true, JSON.stringify(imp));
    assert.equal(imp.counts.webhook, 1, JSON.stringify(imp));

    // Two writes on the target, one after the other's delivery: a moved event would have
    // gone out first (the object's sweep sends in sequence order).
    assert.equal((await user(b, "after-1")).status, 201);
    await until(() => names().includes("after-1"), "the target's first delivery");
    assert.equal((await user(b, "after-2")).status, 201);
    await until(() => names().includes("after-2"), "the target's second delivery");
    assert.equal(rx.got.length, 5, JSON.stringify(names()));
    assert.deepEqual(names().slice(3), ["after-1", "after-2"]);
  } finally {
    await a.stop();
    await b.stop();
    await rx.close();
  }
});

test("a poll stream moved d1 -> durable-object -> d1 serves what its receiver had not acknowledged, then what follows", async () => {
  // One CURSOR_SECRET: the stream's sealed key opens on every deployment.
  const options = { bindings: { CURSOR_SECRET: randomBytes(32).toString("base64url") } };
  const a = await startWorker({ port: 0, adminToken: ADMIN, storage: "d1", options });
  const b = await startWorker({ port: 0, adminToken: ADMIN, storage: "durable-object", options });
  const c = await startWorker({ port: 0, adminToken: ADMIN, storage: "d1", options });
  try {
    let r = await admin(a, "POST", "/tenants", { id: "acme", name: "Acme" });
    assert.equal(r.status, 201, r.text);
    r = await admin(a, "POST", "/tenants/acme/tokens", { label: "app" });
    const token = r.json.token;
    r = await admin(a, "POST", "/tenants/acme/webhooks", { format: "set", delivery: "poll" });
    assert.equal(r.status, 201, r.text);
    const stream = r.json.id;
    const user = async (w, userName) => {
      const res = await w.request("POST", "/t/acme/scim/v2/Users", { token, body: { schemas: [USER_SCHEMA], userName } });
      assert.equal(res.status, 201, res.text);
      return res.json.id;
    };
    // A poll: the resource ids its SETs name, oldest first, and their jtis.
    const poll = async (w, body) => {
      const res = await w.request("POST", `/t/acme/scim/v2/Events/${stream}`, { token, body });
      assert.equal(res.status, 200, res.text);
      return Object.entries(res.json.sets)
        .map(([jti, set]) => {
          const claims = Buffer.from(set.split(".")[1], "base64url").toString();
          return { jti, seq: Number(jti.slice(4)), id: claims.split("/Users/")[1].split('"')[0] };
        })
        .sort((x, y) => x.seq - y.seq);
    };
    const move = async (src, dst) => {
      const dir = mkdtempSync(path.join(tmpdir(), "tenant-move-poll-"));
      const file = path.join(dir, "t.ndjson");
      writeFileSync(file, (await cli(src, "tenant", "export", "acme", "--limit", "2")).stdout);
      const imp = JSON.parse((await cli(dst, "tenant", "import", "acme", file)).stdout);
      assert.equal(imp.done, true, JSON.stringify(imp));
      assert.equal(imp.counts.stream, 1, JSON.stringify(imp));
    };

    const ids = [];
    for (const n of ["u1", "u2", "u3", "u4"]) ids.push(await user(a, n));
    const served = await poll(a, { maxEvents: 10 });
    assert.deepEqual(served.map((s) => s.id), ids);
    // The first and third acknowledged (one above the stream's floor), the others not.
    const rest = await poll(a, { ack: [served[0].jti, served[2].jti] });
    assert.deepEqual(rest.map((s) => s.id), [ids[1], ids[3]]);

    await move(a, b);
    // The receiver repeats its acknowledgements of the source's SETs: they name nothing here.
    let got = await poll(b, { ack: served.map((s) => s.jti) });
    assert.deepEqual(got.map((s) => s.id), [ids[1], ids[3]]);
    assert.ok(got.every((s) => s.seq > served.at(-1).seq), JSON.stringify(got));
    assert.deepEqual(await poll(b, { ack: got.map((s) => s.jti) }), []);
    const onB = await user(b, "u5");
    got = await poll(b, {});
    assert.deepEqual(got.map((s) => s.id), [onB]);

    // Back into d1, u5 not acknowledged: served there, then what follows.
    await move(b, c);
    got = await poll(c, {});
    assert.deepEqual(got.map((s) => s.id), [onB]);
    assert.deepEqual(await poll(c, { ack: got.map((s) => s.jti) }), []);
    const onC = await user(c, "u6");
    assert.deepEqual((await poll(c, {})).map((s) => s.id), [onC]);
  } finally {
    await a.stop();
    await b.stop();
    await c.stop();
  }
});
