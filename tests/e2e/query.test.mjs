// The filter language through workerd + local D1: every operator, logical combinations,
// value paths, dateTime and case rules, sorting, paging, projection and .search.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, USER_SCHEMA, ENTERPRISE } from "./harness.mjs";

let w;
const ids = {};
before(async () => {
  w = await startWorker();
  const people = [
    { userName: "alice@q.example", displayName: "Alice", title: "Engineer", active: true, emails: [{ value: "alice@work.example", type: "work", primary: true }, { value: "a@home.example", type: "home" }], [ENTERPRISE]: { department: "R&D" } },
    { userName: "bob@q.example", displayName: "Bob", title: "Manager", active: false, emails: [{ value: "bob@work.example", type: "work" }], [ENTERPRISE]: { department: "Sales" } },
    { userName: "Carol@q.example", displayName: "carol", active: true, phoneNumbers: [{ value: "+1 555 0100", type: "mobile" }] },
    { userName: "dave_100%@q.example", displayName: "Dave", externalId: "ext-dave" },
  ];
  for (const p of people) {
    const u = await w.createUser(p.userName, p);
    ids[p.userName.split("@")[0]] = u.id;
  }
});
after(async () => {
  await w?.stop();
});

async function names(filter, extra = "") {
  const r = await w.get(`/Users?filter=${encodeURIComponent(filter)}&sortBy=userName${extra}`);
  assert.equal(r.status, 200, `${filter}: ${r.text}`);
  return r.json.Resources.map((u) => u.userName.split("@")[0]);
}

test("every comparison operator", async () => {
  const cases = [
    ['userName eq "ALICE@q.example"', ["alice"]],
    ['displayName ne "Alice"', ["bob", "Carol", "dave_100%"]],
    ['userName co "OB"', ["bob"]],
    ['userName sw "c"', ["Carol"]],
    ['userName ew "@Q.EXAMPLE"', ["alice", "bob", "Carol", "dave_100%"]],
    ['userName co "100%"', ["dave_100%"]],
    ['userName co "_"', ["dave_100%"]],
    ['displayName gt "bob"', ["Carol", "dave_100%"]],
    ['displayName ge "bob"', ["bob", "Carol", "dave_100%"]],
    ['displayName lt "bob"', ["alice"]],
    ['displayName le "Bob"', ["alice", "bob"]],
    ["title pr", ["alice", "bob"]],
    ["active eq false", ["bob"]],
    ['externalId eq "ext-dave"', ["dave_100%"]],
    ['externalId eq "EXT-DAVE"', []],
  ];
  for (const [filter, want] of cases) assert.deepEqual(await names(filter), want, filter);
});

test("and, or, not, grouping and value paths", async () => {
  const cases = [
    ['active eq true and title pr', ["alice"]],
    ['title eq "Manager" or displayName eq "carol"', ["bob", "Carol"]],
    ['not (title pr)', ["Carol", "dave_100%"]],
    ['(active eq true or active eq false) and not (userName sw "a")', ["bob", "Carol"]],
    ['emails[type eq "work" and value co "@work"]', ["alice", "bob"]],
    ['emails[type eq "work"].value eq "BOB@work.example"', ["bob"]],
    ['emails.type eq "home"', ["alice"]],
    ['emails pr', ["alice", "bob"]],
    ['phoneNumbers[type eq "mobile"].value eq "+1 555 0100"', ["Carol"]],
    [`${ENTERPRISE}:department eq "sales"`, ["bob"]],
    [`meta.created ge "2000-01-01T00:00:00Z"`, ["alice", "bob", "Carol", "dave_100%"]],
    [`meta.lastModified lt "2000-01-01T00:00:00+01:00"`, []],
    [`id eq "${ids.bob}"`, ["bob"]],
    ['USERNAME EQ "bob@q.example" OR displayname EQ "Dave"', ["bob", "dave_100%"]],
  ];
  for (const [filter, want] of cases) assert.deepEqual(await names(filter), want, filter);
});

test("invalid filters are 400 invalidFilter with the position", async () => {
  for (const filter of ['userName eq', 'userName xx "a"', '(userName eq "a"', 'members eq "a"', 'active gt true', 'emails[type eq "work"', 'meta.created gt "yesterday"', 'userName eq "a" and']) {
    const r = await w.get(`/Users?filter=${encodeURIComponent(filter)}`);
    assertScimError(assert, r, 400, "invalidFilter");
  }
  const r = await w.get(`/Users?filter=${encodeURIComponent('userName eq "a" zz')}`);
  assert.match(r.json.detail, /position \d+/);
});

test("sorting, paging and projection", async () => {
  const desc = await w.get("/Users?sortBy=displayName&sortOrder=descending&count=2&attributes=displayName");
  assert.deepEqual(desc.json.Resources.map((u) => u.displayName), ["Dave", "carol"]);
  assert.deepEqual(Object.keys(desc.json.Resources[0]).sort(), ["displayName", "id", "schemas"]);
  assert.equal(desc.json.totalResults, 4);
  const page2 = await w.get("/Users?sortBy=userName&startIndex=3&count=2&excludedAttributes=emails,meta");
  assert.deepEqual(page2.json.Resources.map((u) => u.userName.split("@")[0]), ["Carol", "dave_100%"]);
  assert.equal(page2.json.Resources[0].meta, undefined);
  let cursor = "";
  const seen = [];
  do {
    const r = await w.get(`/Users?cursor=${encodeURIComponent(cursor)}&count=3&sortBy=userName`);
    seen.push(...r.json.Resources.map((u) => u.userName.split("@")[0]));
    cursor = r.json.nextCursor;
  } while (cursor);
  assert.deepEqual(seen, ["alice", "bob", "Carol", "dave_100%"]);
  // A key most users lack (externalId), in both directions: the continuation merges the index
  // walk over the values with the one over the missing values (NULLS LAST, UNION ALL in D1).
  for (const order of ["ascending", "descending"]) {
    let next = "";
    const byExt = [];
    do {
      const r = await w.get(`/Users?cursor=${encodeURIComponent(next)}&count=1&sortBy=externalId&sortOrder=${order}`);
      assert.equal(r.status, 200, r.text);
      byExt.push(...r.json.Resources.map((u) => u.userName.split("@")[0]));
      next = r.json.nextCursor;
    } while (next);
    assert.equal(byExt[0], "dave_100%", order);
    assert.deepEqual([...byExt].sort(), ["Carol", "alice", "bob", "dave_100%"], order);
  }
  assertScimError(assert, await w.get("/Users?cursor=bogus"), 400, "invalidCursor");
  assertScimError(assert, await w.get("/Users?sortBy=emails.nope"), 400, "invalidValue");
});

test("POST /.search on a collection and at the root", async () => {
  const body = { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], filter: 'displayName sw "a"', attributes: ["userName"], sortBy: "userName" };
  const r = await w.post("/Users/.search", body);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.Resources.map((u) => u.userName), ["alice@q.example"]);
  await w.createGroup("Search Group");
  const root = await w.post("/.search", { schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], filter: 'displayName sw "S" or userName eq "bob@q.example"' });
  assert.equal(root.status, 200, root.text);
  assert.deepEqual(root.json.Resources.map((x) => x.meta.resourceType).sort(), ["Group", "User"]);
  assertScimError(assert, await w.post("/Users/.search", { filter: "userName pr" }), 400, "invalidSyntax");
});
