// Hardening items 4 and 5 of issue 14, through the compiled worker in workerd + local D1:
// startIndex/count at the edge of what D1 can bind (a JavaScript number is exact to 2^53, and
// 2^63 is no SQLite integer at all), and cursors that are opaque, sealed with a per-deployment
// key and bound to tenant, resource type, filter and sort.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startWorker, assertScimError, USER_SCHEMA } from "./harness.mjs";

const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
const SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
let w;
const tokens = {};

before(async () => {
  w = await startWorker({ adminToken: ADMIN });
  for (const t of ["alpha", "beta"]) {
    let r = await admin("POST", "/tenants", { id: t });
    assert.equal(r.status, 201, r.text);
    r = await admin("POST", `/tenants/${t}/tokens`, {});
    assert.equal(r.status, 201, r.text);
    tokens[t] = r.json.token;
  }
  for (let i = 0; i < 5; i++) {
    await createUser("alpha", `a${i}@alpha.test`);
    await createUser("beta", `b${i}@beta.test`);
  }
});
after(async () => {
  await w?.stop();
});

/** Any request by absolute path (see `Worker.request`). */
const call = (method, path, { worker = w, ...opts } = {}) => worker.request(method, path, { ...opts, contentType: "application/scim+json" });

const admin = (method, path, body) => call(method, `/admin/api${path}`, { token: ADMIN, body });
const scim = (tenant, method, path, body) =>
  call(method, `/t/${tenant}/scim/v2${path}`, { token: tokens[tenant], body });

async function createUser(tenant, userName) {
  const r = await scim(tenant, "POST", "/Users", { schemas: [USER_SCHEMA], userName });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const search = (extra) => ({ schemas: [SEARCH], ...extra });

// --- item 4: startIndex / count

const HUGE = ["9223372036854775807", "9223372036854775806", "4611686018427387905", "9007199254740993", "9007199254740992"];

test("startIndex up to 2^63-1 answers an empty page, never a 500 (GET, .search, root .search, admin directory)", async () => {
  for (const s of HUGE) {
    const views = [
      ["GET /Users", await scim("alpha", "GET", `/Users?startIndex=${s}&count=1`)],
      ["GET /Users sorted", await scim("alpha", "GET", `/Users?startIndex=${s}&count=1&sortBy=userName`)],
      ["GET /Users filtered", await scim("alpha", "GET", `/Users?startIndex=${s}&count=1&filter=userName+sw+%22a%22`)],
      ["POST /Users/.search", await rawSearch("/t/alpha/scim/v2/Users/.search", s)],
      ["POST /.search", await rawSearch("/t/alpha/scim/v2/.search", s)],
      ["admin directory", await admin("GET", `/tenants/alpha/Users?startIndex=${s}&count=1`)],
    ];
    for (const [what, r] of views) {
      assert.equal(r.status, 200, `${what} startIndex=${s}: ${r.text}`);
      assert.deepEqual(r.json.Resources, [], `${what} startIndex=${s}`);
      assert.equal(r.json.itemsPerPage, 0, `${what} startIndex=${s}`);
      assert.equal(r.json.totalResults, 5, `${what} startIndex=${s}`);
      // The index asked for is the one answered, digit for digit.
      assert.match(r.text, new RegExp(`"startIndex":${s}[,}]`), `${what} startIndex=${s}`);
    }
  }
});

/** POST a SearchRequest whose startIndex is the literal `s`, written by hand: JSON.stringify
 * would round it to a double first. */
async function rawSearch(path, s) {
  const res = await w.mf.dispatchFetch(`${w.origin}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${tokens.alpha}`, "Content-Type": "application/scim+json" },
    body: `{"schemas":["${SEARCH}"],"startIndex":${s},"count":1}`,
  });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) };
}

test("count at the edge is clamped, and a startIndex just past the data is an empty page", async () => {
  for (const c of ["9223372036854775807", "9007199254740993", "-9223372036854775808"]) {
    const r = await scim("alpha", "GET", `/Users?count=${c}`);
    assert.equal(r.status, 200, `count=${c}: ${r.text}`);
    assert.equal(r.json.Resources.length, c.startsWith("-") ? 0 : 5, `count=${c}`);
  }
  const r = await scim("alpha", "GET", "/Users?startIndex=-9223372036854775808&count=2");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.startIndex, 1);
  assert.equal(r.json.Resources.length, 2);
  const past = await scim("alpha", "GET", "/Users?startIndex=6");
  assert.equal(past.status, 200);
  assert.deepEqual(past.json.Resources, []);
  // Not an integer of 64 bits: still a clear 400, as before.
  const big = await scim("alpha", "GET", "/Users?startIndex=99999999999999999999");
  assertScimError(assert, big, 400, "invalidValue");
  assert.match(big.json.detail, /startIndex/);
});

// --- item 5: cursors

/** Every page of `path` (which must already hold `cursor=`) as [ids, cursors]. */
async function walk(tenant, path, count = 2) {
  const ids = [];
  const cursors = [];
  let cursor = "";
  do {
    const sep = path.includes("?") ? "&" : "?";
    const r = await scim(tenant, "GET", `${path}${sep}count=${count}&cursor=${encodeURIComponent(cursor)}`);
    assert.equal(r.status, 200, r.text);
    ids.push(...r.json.Resources.map((x) => x.id));
    cursor = r.json.nextCursor;
    if (cursor) cursors.push(cursor);
  } while (cursor);
  return [ids, cursors];
}

const b64 = (c) => Buffer.from(c, "base64url");

test("cursor paging still returns every resource exactly once, in every order", async () => {
  const all = (await scim("alpha", "GET", "/Users?count=100")).json.Resources.map((r) => r.id).sort();
  assert.equal(all.length, 5);
  for (const q of ["/Users", "/Users?sortBy=userName", "/Users?sortBy=userName&sortOrder=descending", "/Users?sortBy=meta.lastModified"]) {
    const [ids, cursors] = await walk("alpha", q);
    assert.deepEqual([...ids].sort(), all, q);
    assert.equal(new Set(ids).size, ids.length, `${q}: no resource twice`);
    assert.equal(cursors.length, 2, q);
  }
});

test("a cursor reveals no rowid or other number that grows with another tenant's writes", async () => {
  const first = (await scim("alpha", "GET", "/Users?cursor=&count=1")).json;
  const lastId = first.Resources[0].id;
  const rowid = (await w.db.prepare("SELECT rowid AS r FROM resources WHERE id = ?").bind(lastId).first()).r;
  const before = first.nextCursor;
  for (let i = 0; i < 25; i++) await createUser("beta", `more${i}@beta.test`);
  const later = (await scim("alpha", "GET", "/Users?cursor=&count=1")).json.nextCursor;
  for (const c of [before, later]) {
    const bytes = b64(c);
    assert.throws(() => JSON.parse(bytes.toString("utf8")), undefined, `cursor decodes to JSON: ${bytes}`);
    assert.ok(!bytes.toString("latin1").includes(`"i":`), "no rowid field");
    assert.ok(!bytes.toString("latin1").includes(lastId), "no resource id in clear");
    assert.ok(!bytes.toString("latin1").includes("a0@alpha"), "no sort value in clear");
    const be = Buffer.alloc(8);
    be.writeBigInt64BE(BigInt(rowid));
    const le = Buffer.alloc(8);
    le.writeBigInt64LE(BigInt(rowid));
    assert.ok(!bytes.includes(be) && !bytes.includes(le), "no rowid as a binary integer");
  }
  // Same position, same length: nothing about the volume leaks through the size either.
  assert.equal(later.length, before.length);
  assert.notEqual(later, before, "sealed with a fresh nonce each time");
  // Both still work and continue at the same place.
  const a = await scim("alpha", "GET", `/Users?cursor=${encodeURIComponent(before)}&count=1`);
  const b = await scim("alpha", "GET", `/Users?cursor=${encodeURIComponent(later)}&count=1`);
  assert.equal(a.status, 200, a.text);
  assert.deepEqual(a.json.Resources.map((r) => r.id), b.json.Resources.map((r) => r.id));
});

test("a cursor from another tenant is refused with 400 invalidCursor", async () => {
  const fromBeta = (await scim("beta", "GET", "/Users?cursor=&count=1")).json.nextCursor;
  assert.ok(fromBeta);
  const r = await scim("alpha", "GET", `/Users?cursor=${encodeURIComponent(fromBeta)}&count=1`);
  assertScimError(assert, r, 400, "invalidCursor");
  // The admin directory view is bound the same way.
  const dir = await admin("GET", "/tenants/beta/Users?cursor=&count=1");
  assert.equal(dir.status, 200, dir.text);
  const replay = await admin("GET", `/tenants/alpha/Users?cursor=${encodeURIComponent(dir.json.nextCursor)}&count=1`);
  // Admin errors are `{error, message}`, not SCIM bodies.
  assert.equal(replay.status, 400, replay.text);
  assert.equal(replay.json.error, "invalid_request");
  assert.match(replay.json.message, /cursor/);
  const own = await admin("GET", `/tenants/beta/Users?cursor=${encodeURIComponent(dir.json.nextCursor)}&count=1`);
  assert.equal(own.status, 200, own.text);
});

test("a tampered or forged cursor is refused with 400 invalidCursor", async () => {
  const c = (await scim("alpha", "GET", "/Users?cursor=&count=1&sortBy=userName")).json.nextCursor;
  const bytes = b64(c);
  for (let i = 0; i < bytes.length; i += 7) {
    const t = Buffer.from(bytes);
    t[i] ^= 0x01;
    const r = await scim("alpha", "GET", `/Users?cursor=${t.toString("base64url")}&count=1&sortBy=userName`);
    assertScimError(assert, r, 400, "invalidCursor");
  }
  const forged = [
    // The old, unsigned format, pointing anywhere.
    Buffer.from(JSON.stringify({ f: "0000000000000000", n: false, v: "a", i: 1 })).toString("base64url"),
    randomBytes(bytes.length).toString("base64url"),
    c.slice(0, -4),
    `${c}AAAA`,
    "",
  ];
  for (const f of forged.filter(Boolean)) {
    const r = await scim("alpha", "GET", `/Users?cursor=${encodeURIComponent(f)}&count=1&sortBy=userName`);
    assertScimError(assert, r, 400, "invalidCursor");
  }
});

test("a cursor is bound to its resource type, filter and sort", async () => {
  const c = (await scim("alpha", "GET", "/Users?cursor=&count=1&sortBy=userName&filter=userName+sw+%22a%22")).json
    .nextCursor;
  const q = (rest) => `?cursor=${encodeURIComponent(c)}&count=1${rest}`;
  const ok = await scim("alpha", "GET", `/Users${q("&sortBy=userName&filter=userName+sw+%22a%22")}`);
  assert.equal(ok.status, 200, ok.text);
  for (const [path, body] of [
    [`/Users${q("&sortBy=userName&filter=userName+sw+%22a0%22")}`],
    [`/Users${q("&sortBy=userName")}`],
    [`/Users${q("&sortBy=displayName&filter=userName+sw+%22a%22")}`],
    [`/Users${q("&sortBy=userName&sortOrder=descending&filter=userName+sw+%22a%22")}`],
    ["/.search", search({ cursor: c, count: 1, sortBy: "userName", filter: 'userName sw "a"' })],
  ]) {
    const r = await scim("alpha", body ? "POST" : "GET", path, body);
    assertScimError(assert, r, 400, "invalidCursor");
  }
  // Another resource type: a plain /Users cursor replayed on /Groups and on the root search.
  const plain = (await scim("alpha", "GET", "/Users?cursor=&count=1")).json.nextCursor;
  for (const [method, path, body] of [
    ["GET", `/Groups?cursor=${encodeURIComponent(plain)}&count=1`],
    ["POST", "/.search", search({ cursor: plain, count: 1 })],
  ]) {
    assertScimError(assert, await scim("alpha", method, path, body), 400, "invalidCursor");
  }
  // The same query through POST /Users/.search is the same query.
  const s = await scim("alpha", "POST", "/Users/.search", search({ cursor: c, count: 1, sortBy: "userName", filter: 'userName sw "a"' }));
  assert.equal(s.status, 200, s.text);
});

test("CURSOR_SECRET, when set, keys the cursors: another deployment's cursors are refused", async () => {
  const other = await startWorker({ options: { bindings: { CURSOR_SECRET: randomBytes(32).toString("base64url") } } });
  try {
    for (let i = 0; i < 3; i++) await other.createUser(`o${i}@other.test`);
    const first = await other.get("/Users?cursor=&count=1");
    assert.equal(first.status, 200, first.text);
    const next = await other.get(`/Users?cursor=${encodeURIComponent(first.json.nextCursor)}&count=1`);
    assert.equal(next.status, 200, next.text);
    assert.equal(next.json.Resources.length, 1);
    // With the secret set, no key is generated in D1.
    const rows = await other.db.prepare("SELECT count(*) AS n FROM deployment_secrets").first();
    assert.equal(rows.n, 0);
    // A cursor of this deployment (D1-generated key), same tenant and query, is refused there.
    const mine = (await w.get("/Users?cursor=&count=1")).json;
    await w.createUser("d0@default.test");
    await w.createUser("d1@default.test");
    const c = (await w.get("/Users?cursor=&count=1")).json.nextCursor;
    assert.ok(c, JSON.stringify(mine));
    assertScimError(assert, await other.get(`/Users?cursor=${encodeURIComponent(c)}&count=1`), 400, "invalidCursor");
  } finally {
    await other.stop();
  }
});
