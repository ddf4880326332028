// Filters and sortBy on attributes no schema declares (issue 12), through workerd + local D1:
// Microsoft Entra ID's custom extension attribute as its documentation shows it
// (learn.microsoft.com: "Customize user provisioning attribute-mappings", provisioning a
// custom extension attribute to a SCIM compliant application), a vendor's extension with
// multi-valued and complex attributes, and the list and .search routes that read them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, USER_SCHEMA, ENTERPRISE } from "./harness.mjs";

const CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
const VENDOR = "urn:example:acme:2.0:Profile";
const q = encodeURIComponent;

let w;
const ids = {};
before(async () => {
  w = await startWorker();
  // Entra's documented body for a user with a custom extension attribute.
  const entra = await w.post("/Users", {
    schemas: [USER_SCHEMA, ENTERPRISE, CUSTOM],
    userName: "bjensen",
    id: "48af03ac28ad4fb88478",
    externalId: "bjensen",
    name: { formatted: "Ms. Barbara J Jensen III", familyName: "Jensen", givenName: "Barbara" },
    [ENTERPRISE]: {
      employeeNumber: "701984",
      costCenter: "4130",
      organization: "Universal Studios",
      division: "Theme Park",
      department: "Tour Operations",
      manager: { value: "26118915-6090-4610-87e4-49d8ca9f808d", $ref: "../Users/26118915-6090-4610-87e4-49d8ca9f808d", displayName: "John Smith" },
    },
    [CUSTOM]: { CustomAttribute: "701984" },
    meta: { resourceType: "User", created: "2010-01-23T04:56:22Z", lastModified: "2011-05-13T04:42:34Z", version: 'W\/"3694e05e9dff591"', location: "https://example.com/v2/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee" },
  });
  assert.equal(entra.status, 201, entra.text);
  ids.bjensen = entra.json.id;
  // Others with the same extension, spelled as other clients spell it.
  const more = [
    ["alice", { [CUSTOM]: { CustomAttribute: "a-100" } }],
    ["carol", { [`${CUSTOM.toLowerCase()}:customattribute`]: "C-300", [VENDOR]: { level: 3, devices: [{ type: "laptop", serial: "L-1" }, { type: "phone", serial: "P-2" }], tags: ["Gold", "eu"] } }],
    ["dave", { [CUSTOM]: { CustomAttribute: 42 }, [VENDOR]: { level: 7, devices: [{ type: "Phone", serial: "P-9" }], tags: ["silver"] } }],
    ["erin", {}],
  ];
  for (const [userName, extra] of more) {
    const schemas = [USER_SCHEMA, ...Object.keys(extra).filter((k) => !k.toLowerCase().endsWith(":customattribute"))];
    const r = await w.post("/Users", { schemas, userName, ...extra });
    assert.equal(r.status, 201, `${userName}: ${r.text}`);
    ids[userName] = r.json.id;
  }
});
after(async () => {
  await w?.stop();
});

async function names(filter, extra = "") {
  const r = await w.get(`/Users?filter=${q(filter)}${extra}`);
  assert.equal(r.status, 200, `${filter}: ${r.text}`);
  assert.equal(r.json.totalResults, r.json.Resources.length, filter);
  return r.json.Resources.map((u) => u.userName).sort();
}

test("Entra's custom extension attribute is filterable as Entra writes the filter", async () => {
  const filter = `${CUSTOM}:CustomAttribute eq "701984"`;
  const r = await w.get(`/Users?filter=${q(filter)}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.totalResults, 1);
  assert.equal(r.json.Resources[0].id, ids.bjensen);
  assert.deepEqual(r.json.Resources[0][CUSTOM], { CustomAttribute: "701984" });
  // Names and URNs in any case; strings case-insensitively; a value of another JSON type never
  // equals (so `ne` holds for it, as for a user without the attribute).
  const cases = [
    [`${CUSTOM.toUpperCase()}:customATTRIBUTE eq "c-300"`, ["carol"]],
    [`${CUSTOM}:CustomAttribute sw "a-"`, ["alice"]],
    [`${CUSTOM}:CustomAttribute co "0"`, ["alice", "bjensen", "carol"]],
    [`${CUSTOM}:CustomAttribute eq 42`, ["dave"]],
    [`${CUSTOM}:CustomAttribute eq "42"`, []],
    [`${CUSTOM}:CustomAttribute ne "701984"`, ["alice", "carol", "dave", "erin"]],
    [`${CUSTOM}:CustomAttribute pr`, ["alice", "bjensen", "carol", "dave"]],
    [`${CUSTOM}:CustomAttribute eq null`, ["erin"]],
    [`${CUSTOM}:CustomAttribute pr and ${ENTERPRISE}:department eq "Tour Operations"`, ["bjensen"]],
    [`not (${CUSTOM}:CustomAttribute gt "b") and ${CUSTOM}:CustomAttribute pr`, ["alice", "bjensen", "dave"]],
    [`${VENDOR}:level ge 3 and ${VENDOR}:level lt 7`, ["carol"]],
    [`${VENDOR}:tags eq "GOLD"`, ["carol"]],
    [`${VENDOR}:devices.type eq "phone"`, ["carol", "dave"]],
    [`${VENDOR}:devices[type eq "phone" and serial ew "9"]`, ["dave"]],
    [`${VENDOR}:devices[type eq "laptop"].serial eq "L-1"`, ["carol"]],
    [`${VENDOR}:devices[type eq "laptop"].serial eq "P-2"`, []],
    [`${VENDOR}:devices pr`, ["carol", "dave"]],
    // A plain name no schema defines reads the core-level attribute of that name: none here,
    // and a column's name reads no column.
    ['shoeSize eq "42"', []],
    ['tenant eq "default" or tenant pr', []],
  ];
  for (const [filter, want] of cases) assert.deepEqual(await names(filter), want, filter);
});

test("what no literal type allows, and names a defined schema owns, are still 400 invalidFilter", async () => {
  for (const filter of [
    `${CUSTOM}:CustomAttribute gt true`,
    `${VENDOR}:level co 3`,
    `${VENDOR}:devices[type eq "a"][serial pr]`,
    `${ENTERPRISE}:CustomAttribute eq "x"`,
    "members pr",
  ]) {
    const r = await w.get(`/Users?filter=${q(filter)}`);
    assertScimError(assert, r, 400, "invalidFilter");
  }
});

test("sortBy an undeclared attribute orders by value and pages by index and by cursor", async () => {
  const sortBy = `${CUSTOM}:CustomAttribute`;
  // Numbers before strings, strings case-insensitively, users without it last.
  const want = ["dave", "bjensen", "alice", "carol", "erin"];
  const all = await w.get(`/Users?sortBy=${q(sortBy)}&attributes=userName`);
  assert.equal(all.status, 200, all.text);
  assert.deepEqual(all.json.Resources.map((u) => u.userName), want);
  const seen = [];
  for (let start = 1; start <= 5; start += 2) {
    const r = await w.get(`/Users?sortBy=${q(sortBy)}&startIndex=${start}&count=2`);
    assert.equal(r.status, 200, r.text);
    seen.push(...r.json.Resources.map((u) => u.userName));
  }
  assert.deepEqual(seen, want);
  for (const [order, expected] of [["ascending", want], ["descending", ["carol", "alice", "bjensen", "dave", "erin"]]]) {
    let cursor = "";
    const paged = [];
    do {
      const r = await w.get(`/Users?sortBy=${q(sortBy)}&sortOrder=${order}&count=2&cursor=${q(cursor)}`);
      assert.equal(r.status, 200, r.text);
      paged.push(...r.json.Resources.map((u) => u.userName));
      cursor = r.json.nextCursor;
    } while (cursor);
    assert.deepEqual(paged, expected, order);
  }
  const byLevel = await w.get(`/Users?sortBy=${q(`${VENDOR}:level`)}&sortOrder=descending&filter=${q(`${VENDOR}:level pr`)}`);
  assert.deepEqual(byLevel.json.Resources.map((u) => u.userName), ["dave", "carol"]);
});

test("POST /Users/.search takes the same filter and sort", async () => {
  const r = await w.post("/Users/.search", {
    schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
    filter: `${CUSTOM}:CustomAttribute eq "701984"`,
    attributes: ["userName", `${CUSTOM}:CustomAttribute`],
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.totalResults, 1);
  assert.equal(r.json.Resources[0].userName, "bjensen");
  assert.deepEqual(r.json.Resources[0][CUSTOM], { CustomAttribute: "701984" });
  const sorted = await w.post("/.search", {
    schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
    filter: `${CUSTOM}:CustomAttribute pr`,
    sortBy: `${CUSTOM}:CustomAttribute`,
    sortOrder: "descending",
  });
  assert.equal(sorted.status, 200, sorted.text);
  assert.deepEqual(sorted.json.Resources.map((u) => u.userName), ["carol", "alice", "bjensen", "dave"]);
});

test("attributes kept at the core level (no schema defines them) are filterable by their name", async () => {
  // An IT admin's mapping sends names the core schema does not have (the unknownAttribute
  // tolerance keeps them at the top level of the resource).
  const r = await w.post("/Users", { schemas: [USER_SCHEMA], userName: "frank", nickname2: "Babs", shoeSize: 44 });
  assert.equal(r.status, 201, r.text);
  for (const [filter, want] of [
    ['nickname2 eq "babs"', ["frank"]],
    ['NICKNAME2 sw "Ba"', ["frank"]],
    [`${USER_SCHEMA}:nickname2 eq "BABS"`, ["frank"]],
    ["shoeSize ge 44", ["frank"]],
    ['shoeSize eq "44"', []],
    ["shoeSize pr and nickname2 pr", ["frank"]],
  ]) {
    assert.deepEqual(await names(filter), want, filter);
  }
  const sorted = await w.get(`/Users?filter=${q("userName sw \"f\" or userName sw \"e\"")}&sortBy=nickname2&sortOrder=descending`);
  assert.deepEqual(sorted.json.Resources.map((u) => u.userName), ["frank", "erin"]);
});
