// Concurrency end to end: many requests in flight at once against one worker (workerd
// interleaves them at every D1 await, as a production isolate does) and one local D1. Checks
// that uniqueness holds, that no membership change is lost, and that conditional writes with
// the same If-Match let exactly one through.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, USER_SCHEMA, GROUP_SCHEMA, patchOps as ops } from "./harness.mjs";

const N = 50;
let w;
before(async () => {
  w = await startWorker();
});
after(async () => {
  await w?.stop();
});

const statuses = (rs) => rs.map((r) => r.status).sort((a, b) => a - b);
const times = (n, f) => Promise.all(Array.from({ length: n }, (_, i) => f(i)));

test(`${N} parallel POSTs of one userName: exactly one 201, the rest 409 uniqueness, one stored user`, async () => {
  const rs = await times(N, (i) =>
    // Case variants too: userName is unique case-insensitively.
    w.post("/Users", { schemas: [USER_SCHEMA], userName: i % 2 ? "Race.User@Contoso.com" : "race.user@contoso.com", externalId: `race-${i}` }),
  );
  const created = rs.filter((r) => r.status === 201);
  assert.equal(created.length, 1, `one 201: ${statuses(rs)}`);
  for (const r of rs.filter((r) => r.status !== 201)) assertScimError(assert, r, 409, "uniqueness");
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE user_name = 'race.user@contoso.com' COLLATE NOCASE"), 1);
  const stored = await w.get(`/Users/${created[0].json.id}`);
  assert.deepEqual(stored.json, created[0].json, "the stored user is the one the 201 described");
});

test(`${N} parallel POSTs of one Group displayName: exactly one 201`, async () => {
  const rs = await times(N, () => w.post("/Groups", { schemas: [GROUP_SCHEMA], displayName: "Race Group" }));
  assert.equal(rs.filter((r) => r.status === 201).length, 1, `${statuses(rs)}`);
  for (const r of rs.filter((r) => r.status !== 201)) assertScimError(assert, r, 409, "uniqueness");
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE type = 'Group' AND display_name = 'Race Group'"), 1);
});

test(`${N} parallel PATCHes, each adding a different member to one group: all ${N} members present`, async () => {
  const users = [];
  for (let i = 0; i < N; i++) users.push(await w.createUser(`member.race.${i}@contoso.com`));
  const g = await w.createGroup("Membership Race");
  const before = (await w.get(`/Groups/${g.id}`)).headers.get("etag");
  const rs = await times(N, (i) =>
    w.patch(`/Groups/${g.id}`, ops({ op: "add", path: "members", value: [{ value: users[i].id }] })),
  );
  assert.deepEqual(statuses(rs), Array(N).fill(204), rs.filter((r) => r.status !== 204).map((r) => r.text).join("\n"));
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", g.id), N);
  const stored = await w.get(`/Groups/${g.id}`);
  assert.deepEqual(stored.json.members.map((m) => m.value).sort(), users.map((u) => u.id).sort());
  assert.notEqual(stored.headers.get("etag"), before, "membership changes still change the version");
  // Every response carried the version it produced; all differ (no two writes shared one).
  assert.equal(new Set(rs.map((r) => r.headers.get("etag"))).size, N);

  // And the same number removing them again, concurrently with renames of the group.
  const removes = await times(N, (i) =>
    w.patch(`/Groups/${g.id}`, ops({ op: "remove", path: `members[value eq "${users[i].id}"]` })),
  );
  assert.deepEqual(statuses(removes), Array(N).fill(204), removes.map((r) => r.text).join(""));
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", g.id), 0);
});

test("parallel member adds and a rename of the same group: nothing lost", async () => {
  const users = [];
  for (let i = 0; i < 10; i++) users.push(await w.createUser(`mixed.race.${i}@contoso.com`));
  const g = await w.createGroup("Mixed Race");
  const rs = await Promise.all([
    ...users.map((u) => w.patch(`/Groups/${g.id}`, ops({ op: "add", path: "members", value: [{ value: u.id }] }))),
    w.patch(`/Groups/${g.id}`, ops({ op: "replace", path: "displayName", value: "Mixed Race Renamed" })),
    w.patch(`/Groups/${g.id}`, ops({ op: "replace", path: "externalId", value: "mixed-ext" })),
  ]);
  assert.deepEqual(statuses(rs), Array(rs.length).fill(204), rs.map((r) => r.text).join(""));
  const stored = (await w.get(`/Groups/${g.id}`)).json;
  assert.equal(stored.displayName, "Mixed Race Renamed");
  assert.equal(stored.externalId, "mixed-ext");
  assert.equal(stored.members.length, users.length);
});

test(`${N} parallel PUTs with the same If-Match: exactly one 200, the rest 412`, async () => {
  const u = await w.createUser("conditional.put@contoso.com", { title: "v0" });
  const rs = await times(N, (i) =>
    w.put(`/Users/${u.id}`, { schemas: [USER_SCHEMA], userName: "conditional.put@contoso.com", title: `v${i + 1}` }, { headers: { "If-Match": u.meta.version } }),
  );
  const ok = rs.filter((r) => r.status === 200);
  assert.equal(ok.length, 1, `${statuses(rs)}`);
  for (const r of rs.filter((r) => r.status !== 200)) assertScimError(assert, r, 412, undefined);
  const stored = (await w.get(`/Users/${u.id}`)).json;
  assert.equal(stored.title, ok[0].json.title, "the winner's write is what is stored");
  assert.equal(stored.meta.version, ok[0].json.meta.version);
});

test(`${N} parallel PATCHes with the same If-Match: exactly one applies`, async () => {
  const g = await w.createGroup("Conditional Patch");
  const etag = (await w.get(`/Groups/${g.id}`)).headers.get("etag");
  const rs = await times(N, (i) =>
    w.patch(`/Groups/${g.id}`, ops({ op: "replace", path: "externalId", value: `ext-${i}` }), { headers: { "If-Match": etag } }),
  );
  assert.equal(rs.filter((r) => r.status === 204).length, 1, `${statuses(rs)}`);
  for (const r of rs.filter((r) => r.status !== 204)) assertScimError(assert, r, 412, undefined);
});

test(`${N} parallel DELETEs with the same If-Match: exactly one 204`, async () => {
  const u = await w.createUser("conditional.delete@contoso.com");
  const rs = await times(N, () => w.delete(`/Users/${u.id}`, { headers: { "If-Match": u.meta.version } }));
  assert.equal(rs.filter((r) => r.status === 204).length, 1, `${statuses(rs)}`);
  // The losers find the user gone.
  for (const r of rs.filter((r) => r.status !== 204)) assertScimError(assert, r, 404, undefined);
  assert.equal(await w.count("SELECT count(*) FROM resources WHERE id = ?", u.id), 0);
});

test(`${N} parallel PUTs without If-Match: all 200 (blind writes never conflict), the last one stored`, async () => {
  const u = await w.createUser("blind.put@contoso.com");
  const rs = await times(N, (i) => w.put(`/Users/${u.id}`, { schemas: [USER_SCHEMA], userName: "blind.put@contoso.com", title: `t${i}` }));
  assert.deepEqual(statuses(rs), Array(N).fill(200), rs.filter((r) => r.status !== 200).map((r) => r.text).join(""));
  const stored = (await w.get(`/Users/${u.id}`)).json;
  const winner = rs.find((r) => r.json.meta.version === stored.meta.version);
  assert.ok(winner, "the stored version is one a PUT answered with");
  assert.equal(stored.title, winner.json.title);
});

test("20 parallel unconditional PATCHes of one user's attributes: every acknowledged one applies", async () => {
  const u = await w.createUser("unconditional.patch@contoso.com");
  // Each request adds a distinct email; a lost update would drop some of them.
  const rs = await times(20, (i) =>
    w.patch(`/Users/${u.id}`, ops({ op: "add", path: "emails", value: [{ value: `e${i}@contoso.com`, type: `t${i}` }] })),
  );
  const ok = rs.filter((r) => r.status === 200);
  for (const r of rs.filter((r) => r.status !== 200)) assertScimError(assert, r, 409, undefined);
  const stored = (await w.get(`/Users/${u.id}`)).json;
  assert.equal(stored.emails.length, ok.length, "every acknowledged add is stored, nothing else");
  assert.ok(ok.length >= 1);
});
