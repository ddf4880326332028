// Group membership at the sizes identity providers send: 1,000 members in one PATCH, nested
// groups, and User.groups staying consistent, through workerd + local D1.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, patchOps as ops } from "./harness.mjs";

let w;
before(async () => {
  w = await startWorker();
});
after(async () => {
  await w?.stop();
});

/** Seeds `n` users through one D1 batch (as the API would store them) and returns their ids. */
async function seedUsers(n, prefix) {
  const ids = [];
  const stmts = [];
  for (let i = 0; i < n; i++) {
    const id = `${prefix}-${i.toString().padStart(5, "0")}`;
    ids.push(id);
    stmts.push(
      w.db
        .prepare("INSERT INTO resources (tenant, id, type, data, created, modified, version) VALUES ('default', ?, 'User', ?, ?, ?, 1)")
        .bind(id, JSON.stringify({ userName: `${id}@bulk.example` }), "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"),
    );
  }
  for (let i = 0; i < stmts.length; i += 500) await w.db.batch(stmts.slice(i, i + 500));
  return ids;
}

test("a PATCH adding 1,000 members applies in one request, and removing 500 by value too", async () => {
  const ids = await seedUsers(1000, "bulk");
  const g = await w.createGroup("Thousand");
  const add = await w.patch(`/Groups/${g.id}`, ops({ op: "add", path: "members", value: ids.map((value) => ({ value })) }));
  assert.equal(add.status, 204, add.text);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", g.id), 1000);
  const list = await w.get(`/Groups/${g.id}`);
  assert.equal(list.json.members.length, 1000);

  const rm = await w.patch(`/Groups/${g.id}`, ops({ op: "Remove", path: "members", value: ids.slice(0, 500).map((value) => ({ value })) }));
  assert.equal(rm.status, 204, rm.text);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", g.id), 500);
  const u = await w.get(`/Users/${ids[999]}`);
  assert.deepEqual(u.json.groups.map((x) => x.value), [g.id]);
  assert.equal((await w.get(`/Users/${ids[0]}`)).json.groups, undefined);
});

test("nested groups: a group can be a member, never of itself, and shows type Group", async () => {
  const inner = await w.createGroup("Inner");
  const outer = await w.createGroup("Outer");
  const add = await w.patch(`/Groups/${outer.id}?attributes=members`, ops({ op: "add", path: "members", value: [{ value: inner.id, type: "Group" }] }));
  assert.equal(add.status, 200, add.text);
  assert.deepEqual(add.json.members, [{ value: inner.id, type: "Group", $ref: `${w.base}/Groups/${inner.id}` }]);
  const self = await w.patch(`/Groups/${outer.id}`, ops({ op: "add", path: "members", value: [{ value: outer.id }] }));
  assert.equal(self.status, 400);
  assert.equal((await w.delete(`/Groups/${inner.id}`)).status, 204);
  assert.equal(await w.count("SELECT count(*) FROM members WHERE group_id = ?", outer.id), 0, "deleting a member group removes the membership");
});

test("User.groups follows renames and deletions of its groups", async () => {
  const u = await w.createUser("groups.follow@contoso.com");
  const g1 = await w.createGroup("Follow One", [u.id]);
  const g2 = await w.createGroup("Follow Two", [u.id]);
  await w.patch(`/Groups/${g1.id}`, ops({ op: "replace", path: "displayName", value: "Follow Renamed" }));
  let groups = (await w.get(`/Users/${u.id}`)).json.groups;
  assert.deepEqual(groups.map((g) => g.display).sort(), ["Follow Renamed", "Follow Two"]);
  await w.delete(`/Groups/${g2.id}`);
  groups = (await w.get(`/Users/${u.id}`)).json.groups;
  assert.deepEqual(groups.map((g) => g.value), [g1.id]);
  const byMember = await w.get(`/Groups?filter=${encodeURIComponent(`members[value eq "${u.id}"]`)}&excludedAttributes=members`);
  assert.deepEqual(byMember.json.Resources.map((g) => g.id), [g1.id]);
});
