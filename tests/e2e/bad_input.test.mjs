// The bad-input corpus, end to end through workerd + local D1: well over 100 distinct bad
// requests (malformed JSON, wrong types for every attribute kind, schemas, unknown attributes,
// oversized and deeply nested bodies, long strings, NUL bytes and invalid UTF-8, injection
// payloads, paging parameters, content types, methods), each answered with a 4xx SCIM Error
// with the right status and scimType, never a 5xx, and none of them changing anything stored.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertScimError, USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE, PATCH_OP, patchOps as ops } from "./harness.mjs";

const SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const MAX_BODY = 1024 * 1024;

let w;
let ctx;
before(async () => {
  w = await startWorker();
  const boss = await w.createUser("bad.input.boss@contoso.com");
  const u = await w.createUser("bad.input.user@contoso.com", {
    displayName: "Bad Input",
    emails: [{ value: "bad.input.user@contoso.com", type: "work", primary: true }],
    [ENTERPRISE]: { department: "QA", manager: { value: boss.id } },
  });
  const g = await w.createGroup("Bad Input Group", [u.id]);
  ctx = { u: u.id, g: g.id, boss: boss.id, etag: u.meta.version };
});
after(async () => {
  await w?.stop();
});

/** Everything a bad request could have changed, read in one D1 query. */
async function snapshot() {
  return await w.db
    .prepare(
      `SELECT
         (SELECT json_group_array(json_array(tenant, id, type, data, created, modified, version))
            FROM (SELECT * FROM resources ORDER BY tenant, id)) AS resources,
         (SELECT json_group_array(json_array(tenant, group_id, member_id))
            FROM (SELECT * FROM members ORDER BY tenant, group_id, member_id)) AS members,
         (SELECT json_group_array(json_array(tenant, name, count))
            FROM (SELECT * FROM tolerance_counts ORDER BY tenant, name)) AS tolerances`,
    )
    .first();
}

const user = (extra = {}) => ({ schemas: [USER_SCHEMA], userName: "new.user@contoso.com", ...extra });
const group = (extra = {}) => ({ schemas: [GROUP_SCHEMA], displayName: "New Group", ...extra });
const search = (extra = {}) => ({ schemas: [SEARCH], ...extra });
const json = (raw) => ({ raw, headers: { "Content-Type": "application/scim+json" } });
const q = (s) => encodeURIComponent(s);
const nestedArrays = (n) => "[".repeat(n) + "]".repeat(n);
const nestedObjects = (n) => '{"a":'.repeat(n) + "1" + "}".repeat(n);

/**
 * The corpus: [name, method, path, options, status, scimType]. Options are those of the
 * harness's `fetch` (body, raw, headers, token). Built after setup, to address real resources.
 */
function corpus({ u, g, boss }) {
  const U = `/Users/${u}`;
  const G = `/Groups/${g}`;
  return [
    // --- malformed and truncated JSON
    ["truncated object", "POST", "/Users", json('{"schemas": ['), 400, "invalidSyntax"],
    ["truncated after a key", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName":`), 400, "invalidSyntax"],
    ["missing closing brace", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "x"`), 400, "invalidSyntax"],
    ["lone opening brace", "POST", "/Users", json("{"), 400, "invalidSyntax"],
    ["trailing comma", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "x",}`), 400, "invalidSyntax"],
    ["single quotes", "POST", "/Users", json("{'userName': 'x'}"), 400, "invalidSyntax"],
    ["unquoted key", "POST", "/Users", json("{userName: \"x\"}"), 400, "invalidSyntax"],
    ["trailing garbage", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "x"} extra`), 400, "invalidSyntax"],
    ["two objects", "POST", "/Users", json('{"a": 1}{"b": 2}'), 400, "invalidSyntax"],
    ["unterminated string", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "abc`), 400, "invalidSyntax"],
    ["invalid escape", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "a\\qb"}`), 400, "invalidSyntax"],
    ["NaN literal", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": NaN}`), 400, "invalidSyntax"],
    ["number out of range", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "x", "active": 1e999}`), 400, "invalidSyntax"],
    ["JSON null body", "POST", "/Users", json("null"), 400, "invalidSyntax"],
    ["JSON string body", "POST", "/Users", json('"userName"'), 400, "invalidSyntax"],
    ["JSON number body", "POST", "/Users", json("42"), 400, "invalidSyntax"],
    ["JSON array body", "POST", "/Users", json(JSON.stringify([user()])), 400, "invalidSyntax"],
    ["whitespace-only body", "POST", "/Users", json("   \n"), 400, "invalidSyntax"],
    ["empty body", "POST", "/Groups", json(""), 400, "invalidSyntax"],
    ["byte-order mark", "POST", "/Users", json("\uFEFF" + JSON.stringify(user())), 400, "invalidSyntax"],
    ["truncated PUT", "PUT", U, json(`{"schemas": ["${USER_SCHEMA}"], "userName": "x`), 400, "invalidSyntax"],
    ["truncated PATCH", "PATCH", U, json(`{"schemas": ["${PATCH_OP}"], "Operations": [{"op": "add"`), 400, "invalidSyntax"],
    ["truncated search", "POST", "/.search", json(`{"schemas": ["${SEARCH}"], "filter": "userName eq`), 400, "invalidSyntax"],

    // --- deeply nested JSON (serde_json's recursion limit, not a stack overflow)
    ["10k nested arrays as the body", "POST", "/Users", json(nestedArrays(10000)), 400, "invalidSyntax"],
    ["10k nested arrays in an attribute", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "x", "emails": ${nestedArrays(10000)}}`), 400, "invalidSyntax"],
    ["10k nested objects", "POST", "/Groups", json(`{"schemas": ["${GROUP_SCHEMA}"], "displayName": ${nestedObjects(10000)}}`), 400, "invalidSyntax"],
    ["10k nested arrays in a PATCH value", "PATCH", U, json(`{"schemas": ["${PATCH_OP}"], "Operations": [{"op": "add", "path": "emails", "value": ${nestedArrays(10000)}}]}`), 400, "invalidSyntax"],
    ["10k nested arrays in a search", "POST", "/Users/.search", json(`{"schemas": ["${SEARCH}"], "attributes": ${nestedArrays(10000)}}`), 400, "invalidSyntax"],
    ["100 nested arrays under the limit", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "x", "emails": ${nestedArrays(100)}}`), 400, "invalidValue"],

    // --- schemas
    ["no schemas", "POST", "/Users", { body: { userName: "no-schemas" } }, 400, "invalidSyntax"],
    ["schemas is a string", "POST", "/Users", { body: { schemas: USER_SCHEMA, userName: "x" } }, 400, "invalidSyntax"],
    ["schemas is empty", "POST", "/Users", { body: { schemas: [], userName: "x" } }, 400, "invalidSyntax"],
    ["schemas holds a number", "POST", "/Users", { body: { schemas: [5], userName: "x" } }, 400, "invalidSyntax"],
    ["unknown schema only", "POST", "/Users", { body: { schemas: ["urn:example:unknown"], userName: "x" } }, 400, "invalidSyntax"],
    // A schema URI that carries no attributes is tolerated (Entra's ADSCIM group URI): see extensions.test.mjs.
    ["undeclared extension that is not an object", "POST", "/Users", { body: { schemas: [USER_SCHEMA, "urn:example:unknown"], userName: "x", "urn:example:unknown": 5 } }, 400, "invalidValue"],
    ["Group schema on a User", "POST", "/Users", { body: { schemas: [GROUP_SCHEMA], userName: "x" } }, 400, "invalidSyntax"],
    ["User schema on a Group", "POST", "/Groups", { body: { schemas: [USER_SCHEMA], displayName: "x" } }, 400, "invalidSyntax"],
    ["undeclared extension attribute with an invalid name", "POST", "/Groups", { body: { schemas: [GROUP_SCHEMA, "urn:example:ext"], displayName: "x", "urn:example:ext": { "bad name": 1 } } }, 400, "invalidSyntax"],
    ["undeclared extension nested too deep", "POST", "/Users", { body: { schemas: [USER_SCHEMA, "urn:example:ext"], userName: "x", "urn:example:ext": { a: { b: { c: 1 } } } } }, 400, "invalidValue"],
    ["enterprise attribute unknown to its schema", "POST", "/Users", { body: user({ [`${ENTERPRISE}:favouriteColour`]: "blue" }) }, 400, "invalidSyntax"],
    ["PUT without schemas", "PUT", U, { body: { userName: "x" } }, 400, "invalidSyntax"],

    // --- unknown attributes (a valid name no schema defines is kept at the core level as the
    // `unknownAttribute` tolerance: see core_unknown.test.mjs; these stay refused)
    ["unknown top-level attribute that is no attribute name", "POST", "/Users", { body: user({ "favourite colour": "blue" }) }, 400, "invalidSyntax"],
    ["Group attribute on a User", "POST", "/Users", { body: user({ members: [] }) }, 400, "invalidSyntax"],
    ["unknown sub-attribute", "POST", "/Users", { body: user({ name: { middle: "x" } }) }, 400, "invalidSyntax"],
    ["unknown sub-attribute of a multi-valued one", "POST", "/Users", { body: user({ emails: [{ value: "a@b.c", label: "x" }] }) }, 400, "invalidSyntax"],
    ["unknown enterprise attribute", "POST", "/Users", { body: user({ [ENTERPRISE]: { shoeSize: "9" } }) }, 400, "invalidSyntax"],
    ["qualified core attribute that is no attribute name", "POST", "/Users", { body: user({ [`${USER_SCHEMA}:shoe.size`]: "9" }) }, 400, "invalidSyntax"],
    ["User attribute on a Group", "POST", "/Groups", { body: group({ userName: "x" }) }, 400, "invalidSyntax"],
    ["unknown attribute nested too deep", "POST", "/Groups", { body: group({ owner: { a: { b: 1 } } }) }, 400, "invalidValue"],
    ["unknown member sub-attribute", "POST", "/Groups", { body: group({ members: [{ value: u, role: "x" }] }) }, 400, "invalidSyntax"],
    ["one attribute twice, in two spellings", "POST", "/Users", { body: user({ displayName: "a", DISPLAYNAME: "b" }) }, 400, "invalidSyntax"],

    // --- required attributes
    ["no userName", "POST", "/Users", { body: { schemas: [USER_SCHEMA] } }, 400, "invalidValue"],
    ["empty userName", "POST", "/Users", { body: user({ userName: "" }) }, 400, "invalidValue"],
    ["blank userName", "POST", "/Users", { body: user({ userName: " \t " }) }, 400, "invalidValue"],
    ["null userName", "POST", "/Users", { body: user({ userName: null }) }, 400, "invalidValue"],
    ["no Group displayName", "POST", "/Groups", { body: { schemas: [GROUP_SCHEMA] } }, 400, "invalidValue"],

    // --- wrong JSON types, every attribute kind
    ["string attribute as a number", "POST", "/Users", { body: user({ userName: 5 }) }, 400, "invalidValue"],
    ["string attribute as a boolean", "POST", "/Users", { body: user({ displayName: true }) }, 400, "invalidValue"],
    ["string attribute as an object", "POST", "/Users", { body: user({ title: { value: "x" } }) }, 400, "invalidValue"],
    ["string attribute as an array", "POST", "/Users", { body: user({ nickName: ["x"] }) }, 400, "invalidValue"],
    ["externalId as a number", "POST", "/Users", { body: user({ externalId: 42 }) }, 400, "invalidValue"],
    // "True"/"False" strings are a tolerated Entra quirk (extensions.test.mjs); other strings are not.
    ["boolean as a string", "POST", "/Users", { body: user({ active: "yes" }) }, 400, "invalidValue"],
    ["boolean as a number", "POST", "/Users", { body: user({ active: 1 }) }, 400, "invalidValue"],
    ["boolean sub-attribute as a string", "POST", "/Users", { body: user({ emails: [{ value: "a@b.c", primary: "on" }] }) }, 400, "invalidValue"],
    ["complex as a string", "POST", "/Users", { body: user({ name: "Barbara Jensen" }) }, 400, "invalidValue"],
    ["complex as an array", "POST", "/Users", { body: user({ name: [{ givenName: "B" }] }) }, 400, "invalidValue"],
    ["complex sub-attribute as a number", "POST", "/Users", { body: user({ name: { givenName: 7 } }) }, 400, "invalidValue"],
    ["multi-valued as a string", "POST", "/Users", { body: user({ emails: "a@b.c" }) }, 400, "invalidValue"],
    ["multi-valued as an object", "POST", "/Users", { body: user({ phoneNumbers: { value: "+1" } }) }, 400, "invalidValue"],
    ["multi-valued complex of strings", "POST", "/Users", { body: user({ emails: ["a@b.c"] }) }, 400, "invalidValue"],
    ["multi-valued value as a number", "POST", "/Users", { body: user({ emails: [{ value: 5 }] }) }, 400, "invalidValue"],
    ["two primary values", "POST", "/Users", { body: user({ emails: [{ value: "a@b.c", primary: true }, { value: "d@e.f", primary: true }] }) }, 400, "invalidValue"],
    ["too many values", "POST", "/Users", { body: user({ emails: Array.from({ length: 1001 }, (_, i) => ({ value: `e${i}@b.c` })) }) }, 400, "invalidValue"],
    ["reference as a number", "POST", "/Users", { body: user({ profileUrl: 5 }) }, 400, "invalidValue"],
    ["reference sub-attribute as an object", "POST", "/Users", { body: user({ photos: [{ value: { url: "x" } }] }) }, 400, "invalidValue"],
    ["binary that is not base64", "POST", "/Users", { body: user({ x509Certificates: [{ value: "not base64!" }] }) }, 400, "invalidValue"],
    ["binary as a number", "POST", "/Users", { body: user({ x509Certificates: [{ value: 12 }] }) }, 400, "invalidValue"],
    ["extension as a string", "POST", "/Users", { body: user({ schemas: [USER_SCHEMA, ENTERPRISE], [ENTERPRISE]: "Eng" }) }, 400, "invalidValue"],
    ["extension as an array", "POST", "/Users", { body: user({ [ENTERPRISE]: [{ department: "Eng" }] }) }, 400, "invalidValue"],
    ["extension attribute as a number", "POST", "/Users", { body: user({ [ENTERPRISE]: { department: 5 } }) }, 400, "invalidValue"],
    ["manager as a bare string", "POST", "/Users", { body: user({ [ENTERPRISE]: { manager: boss } }) }, 400, "invalidValue"],
    ["manager value as a number", "POST", "/Users", { body: user({ [ENTERPRISE]: { manager: { value: 5 } } }) }, 400, "invalidValue"],
    ["qualified extension attribute as a boolean", "POST", "/Users", { body: user({ [`${ENTERPRISE}:costCenter`]: false }) }, 400, "invalidValue"],
    ["Group displayName as a number", "POST", "/Groups", { body: group({ displayName: 5 }) }, 400, "invalidValue"],
    ["members as a string", "POST", "/Groups", { body: group({ members: u }) }, 400, "invalidValue"],
    ["members of strings", "POST", "/Groups", { body: group({ members: [u] }) }, 400, "invalidValue"],
    ["member value as a number", "POST", "/Groups", { body: group({ members: [{ value: 7 }] }) }, 400, "invalidValue"],
    ["member without value", "POST", "/Groups", { body: group({ members: [{ display: "x" }] }) }, 400, "invalidValue"],
    ["member of an unknown type", "POST", "/Groups", { body: group({ members: [{ value: u, type: "Device" }] }) }, 400, "invalidValue"],
    ["member that does not exist", "POST", "/Groups", { body: group({ members: [{ value: u }, { value: "no-such-member" }] }) }, 400, "invalidValue"],
    ["PUT with a wrong type", "PUT", U, { body: user({ active: "no" }) }, 400, "invalidValue"],
    ["PUT making a group its own member", "PUT", G, { body: group({ displayName: "Bad Input Group", members: [{ value: g }] }) }, 400, "invalidValue"],

    // --- sizes
    [`body over ${MAX_BODY} bytes`, "POST", "/Users", json(JSON.stringify(user({ displayName: "x".repeat(MAX_BODY) }))), 413, undefined],
    ["oversized PUT", "PUT", U, json(JSON.stringify(user({ title: "x".repeat(MAX_BODY) }))), 413, undefined],
    ["oversized PATCH", "PATCH", U, json(JSON.stringify(ops({ op: "replace", path: "title", value: "x".repeat(MAX_BODY) }))), 413, undefined],
    ["oversized search", "POST", "/.search", json(JSON.stringify(search({ filter: `userName eq "${"x".repeat(MAX_BODY)}"` }))), 413, undefined],
    ["oversized body that is not even JSON", "POST", "/Groups", { raw: new Uint8Array(MAX_BODY + 1), headers: { "Content-Type": "application/json" } }, 413, undefined],
    ["string over 64 KiB", "POST", "/Users", { body: user({ displayName: "x".repeat(64 * 1024 + 1) }) }, 400, "invalidValue"],
    ["userName over 64 KiB", "POST", "/Users", { body: user({ userName: "u".repeat(100000) }) }, 400, "invalidValue"],
    ["PATCH value over 64 KiB", "PATCH", U, { body: ops({ op: "replace", path: "title", value: "t".repeat(70000) }) }, 400, "invalidValue"],
    ["filter over 4 KiB", "GET", `/Users?filter=${q(`userName eq "${"a".repeat(5000)}"`)}`, {}, 400, "invalidFilter"],
    ["1001 PATCH operations", "PATCH", U, { body: ops(...Array.from({ length: 1001 }, () => ({ op: "replace", path: "title", value: "x" }))) }, 400, "invalidSyntax"],

    // --- NUL bytes and invalid UTF-8
    ["NUL in a string", "POST", "/Users", { body: user({ displayName: "a\u0000b" }) }, 400, "invalidValue"],
    ["NUL in userName", "POST", "/Users", { body: user({ userName: "nul\u0000@contoso.com" }) }, 400, "invalidValue"],
    ["NUL in externalId", "POST", "/Groups", { body: group({ externalId: "\u0000" }) }, 400, "invalidValue"],
    ["NUL in an extension attribute", "POST", "/Users", { body: user({ [ENTERPRISE]: { department: "R\u0000D" } }) }, 400, "invalidValue"],
    ["NUL in a PATCH value", "PATCH", U, { body: ops({ op: "replace", path: "displayName", value: "\u0000" }) }, 400, "invalidValue"],
    ["NUL in a filter literal", "GET", `/Users?filter=${q('userName eq "a\u0000b"')}`, {}, 400, "invalidFilter"],
    ["invalid UTF-8 body", "POST", "/Users", { raw: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), headers: { "Content-Type": "application/scim+json" } }, 400, "invalidSyntax"],
    ["invalid UTF-8 inside a string", "POST", "/Users", { raw: Buffer.concat([Buffer.from(`{"schemas":["${USER_SCHEMA}"],"userName":"a`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), headers: { "Content-Type": "application/scim+json" } }, 400, "invalidSyntax"],
    ["overlong UTF-8 encoding", "PATCH", U, { raw: Buffer.concat([Buffer.from(`{"schemas":["${PATCH_OP}"],"Operations":[{"op":"add","path":"title","value":"`), Buffer.from([0xc0, 0xaf]), Buffer.from('"}]}')]), headers: { "Content-Type": "application/scim+json" } }, 400, "invalidSyntax"],
    ["lone surrogate escape", "POST", "/Users", json(`{"schemas": ["${USER_SCHEMA}"], "userName": "\\ud800"}`), 400, "invalidSyntax"],

    // --- injection payloads: filters
    ["SQL tautology in a filter", "GET", `/Users?filter=${q("userName eq \"x\" or 1=1")}`, {}, 400, "invalidFilter"],
    ["unquoted SQL in a filter", "GET", `/Users?filter=${q("userName eq x' OR '1'='1")}`, {}, 400, "invalidFilter"],
    ["UNION in a filter", "GET", `/Users?filter=${q('userName eq "a" UNION SELECT * FROM tenants')}`, {}, 400, "invalidFilter"],
    ["statement terminator in a filter", "GET", `/Users?filter=${q('userName eq "a"; DROP TABLE resources; --')}`, {}, 400, "invalidFilter"],
    ["SQL function as an attribute", "GET", `/Users?filter=${q("json_extract(data,'$.userName') pr")}`, {}, 400, "invalidFilter"],
    // A plain name no schema defines is an attribute kept at the core level (it matches nothing
    // here; extension_filters.test.mjs), so the column name is tried under another type's core URN.
    ["column name as an attribute", "GET", `/Users?filter=${q('urn:ietf:params:scim:schemas:core:2.0:Group:tenant eq "other"')}`, {}, 400, "invalidFilter"],
    ["comment in a filter", "GET", `/Groups?filter=${q('displayName eq "a" /* x */')}`, {}, 400, "invalidFilter"],
    ["JSON path in a filter", "GET", `/Users?filter=${q('emails[$.value eq "a"]')}`, {}, 400, "invalidFilter"],
    ["unbalanced parenthesis", "GET", `/Users?filter=${q('userName eq "a") or (userName pr')}`, {}, 400, "invalidFilter"],
    ["filter nested 40 deep", "GET", `/Users?filter=${q("(".repeat(40) + "userName pr" + ")".repeat(40))}`, {}, 400, "invalidFilter"],
    ["filter with 201 comparisons", "GET", `/Users?filter=${q(Array.from({ length: 201 }, (_, i) => `title eq "${i}"`).join(" or "))}`, {}, 400, "invalidFilter"],
    ["unknown filter attribute", "GET", `/Users?filter=${q('password eq "x"')}`, {}, 400, "invalidFilter"],
    ["dateTime filter literal that is no date", "GET", `/Users?filter=${q('meta.lastModified gt "yesterday"')}`, {}, 400, "invalidFilter"],
    ["boolean compared with a string", "GET", `/Users?filter=${q('active eq "yes"')}`, {}, 400, "invalidFilter"],
    ["missing comparison value", "GET", `/Groups?filter=${q("displayName eq")}`, {}, 400, "invalidFilter"],
    ["unknown operator", "GET", `/Users?filter=${q('userName like "a%"')}`, {}, 400, "invalidFilter"],
    ["members filter on Users", "GET", `/Users?filter=${q('members.value eq "x"')}`, {}, 400, "invalidFilter"],

    // --- injection payloads: ids (path segments)
    ["quote injection in an id", "GET", `/Users/${q("1' OR '1'='1")}`, {}, 404, undefined],
    ["statement injection in an id", "DELETE", `/Users/${q("x'; DELETE FROM resources; --")}`, {}, 404, undefined],
    ["traversal in an id", "GET", "/Users/..%2F..%2FGroups", {}, 404, undefined],
    ["NUL in an id", "GET", "/Users/%00", {}, 404, undefined],
    ["invalid UTF-8 in an id", "PATCH", "/Users/%ff%fe", { body: ops({ op: "replace", path: "title", value: "x" }) }, 404, undefined],
    ["wildcard id", "PUT", "/Groups/%25", { body: group() }, 404, undefined],
    ["10k-character id", "GET", `/Users/${"a".repeat(10000)}`, {}, 404, undefined],
    ["user id under Groups", "GET", `/Groups/${u}`, {}, 404, undefined],
    ["extra path segment", "GET", `${U}/extra`, {}, 404, undefined],

    // --- injection payloads: sortBy, sortOrder, attributes
    ["SQL in sortBy", "GET", `/Users?sortBy=${q("userName; DROP TABLE resources")}`, {}, 400, "invalidValue"],
    ["subquery in sortBy", "GET", `/Users?sortBy=${q("(SELECT 1)")}`, {}, 400, "invalidValue"],
    // `r.data` is an undeclared attribute `r` (sorted by value, bound as a name: no column is
    // read); under another type's core URN it stays unknown.
    ["column in sortBy", "GET", `/Users?sortBy=${q("urn:ietf:params:scim:schemas:core:2.0:Group:r.data")}`, {}, 400, "invalidValue"],
    ["direction in sortBy", "GET", `/Users?sortBy=${q("userName DESC")}`, {}, 400, "invalidValue"],
    ["unknown sortBy", "GET", "/Groups?sortBy=userName", {}, 400, "invalidValue"],
    ["SQL in sortOrder", "GET", `/Users?sortBy=userName&sortOrder=${q("descending; --")}`, {}, 400, "invalidValue"],
    ["SQL in attributes", "GET", `/Users?attributes=${q("userName,(select 1)")}`, {}, 400, "invalidValue"],
    ["wildcard attributes", "GET", `/Users?attributes=${q("*")}`, {}, 400, "invalidValue"],
    ["SQL in excludedAttributes", "GET", `/Groups?excludedAttributes=${q("members;--")}`, {}, 400, "invalidValue"],
    ["another type's attribute on GET by id", "GET", `${G}?attributes=userName`, {}, 400, "invalidValue"],

    // --- startIndex and count
    ["startIndex not a number", "GET", "/Users?startIndex=abc", {}, 400, "invalidValue"],
    ["count not a number", "GET", "/Users?count=ten", {}, 400, "invalidValue"],
    ["fractional count", "GET", "/Users?count=1.5", {}, 400, "invalidValue"],
    ["exponent count", "GET", "/Groups?count=1e3", {}, 400, "invalidValue"],
    ["hex startIndex", "GET", "/Users?startIndex=0x10", {}, 400, "invalidValue"],
    ["startIndex beyond 64 bits", "GET", "/Users?startIndex=99999999999999999999", {}, 400, "invalidValue"],
    ["SQL in count", "GET", `/Users?count=${q("10; DROP TABLE resources")}`, {}, 400, "invalidValue"],
    ["search startIndex as a string", "POST", "/Users/.search", { body: search({ startIndex: "1" }) }, 400, "invalidValue"],
    ["search count as a fraction", "POST", "/Groups/.search", { body: search({ count: 1.5 }) }, 400, "invalidValue"],
    ["search count as a boolean", "POST", "/.search", { body: search({ count: true }) }, 400, "invalidValue"],

    // --- content types
    ["text/plain", "POST", "/Users", { raw: JSON.stringify(user()), headers: { "Content-Type": "text/plain" } }, 415, undefined],
    ["application/xml", "POST", "/Groups", { raw: "<group/>", headers: { "Content-Type": "application/xml" } }, 415, undefined],
    ["form-encoded", "POST", "/Users", { raw: "userName=x", headers: { "Content-Type": "application/x-www-form-urlencoded" } }, 415, undefined],
    ["multipart", "POST", "/Users", { raw: "--b\r\n\r\n--b--", headers: { "Content-Type": "multipart/form-data; boundary=b" } }, 415, undefined],
    ["JSON Patch media type", "PATCH", U, { raw: JSON.stringify(ops({ op: "replace", path: "title", value: "x" })), headers: { "Content-Type": "application/json-patch+json" } }, 415, undefined],
    ["PUT as text/plain", "PUT", U, { raw: JSON.stringify(user()), headers: { "Content-Type": "text/plain" } }, 415, undefined],
    ["search as text/plain", "POST", "/.search", { raw: JSON.stringify(search()), headers: { "Content-Type": "text/plain" } }, 415, undefined],
    ["garbage media type", "POST", "/Users", { raw: JSON.stringify(user()), headers: { "Content-Type": "definitely not a type" } }, 415, undefined],

    // --- methods not allowed
    ["PUT on a collection", "PUT", "/Users", { body: user() }, 405, undefined],
    ["DELETE on a collection", "DELETE", "/Users", {}, 405, undefined],
    ["PATCH on a collection", "PATCH", "/Groups", { body: ops({ op: "replace", path: "displayName", value: "x" }) }, 405, undefined],
    ["POST to a resource", "POST", U, { body: user() }, 405, undefined],
    ["GET on .search", "GET", "/.search", {}, 405, undefined],
    ["GET on Users/.search", "GET", "/Users/.search", {}, 405, undefined],
    ["DELETE on ServiceProviderConfig", "DELETE", "/ServiceProviderConfig", {}, 405, undefined],
    ["POST to ResourceTypes", "POST", "/ResourceTypes", { body: {} }, 405, undefined],
    ["OPTIONS with a token", "OPTIONS", "/Users", {}, 405, undefined],
    ["custom method", "PROPFIND", G, {}, 405, undefined],

    // --- PATCH bodies
    ["PATCH without schemas", "PATCH", U, { body: { Operations: [{ op: "replace", path: "title", value: "x" }] } }, 400, "invalidSyntax"],
    ["PATCH with the User schema", "PATCH", U, { body: { schemas: [USER_SCHEMA], Operations: [{ op: "replace", path: "title", value: "x" }] } }, 400, "invalidSyntax"],
    ["PATCH without Operations", "PATCH", U, { body: { schemas: [PATCH_OP] } }, 400, "invalidSyntax"],
    ["Operations as an object", "PATCH", G, { body: { schemas: [PATCH_OP], Operations: { op: "add" } } }, 400, "invalidSyntax"],
    ["empty Operations", "PATCH", U, { body: ops() }, 400, "invalidSyntax"],
    ["operation as a string", "PATCH", U, { body: ops("replace") }, 400, "invalidSyntax"],
    ["operation without op", "PATCH", U, { body: ops({ path: "title", value: "x" }) }, 400, "invalidSyntax"],
    ["unknown op", "PATCH", U, { body: ops({ op: "move", path: "title", value: "x" }) }, 400, "invalidSyntax"],
    ["add without value", "PATCH", U, { body: ops({ op: "add", path: "title" }) }, 400, "invalidSyntax"],
    ["path as a number", "PATCH", U, { body: ops({ op: "replace", path: 5, value: "x" }) }, 400, "invalidPath"],
    ["empty path", "PATCH", U, { body: ops({ op: "replace", path: "", value: "x" }) }, 400, "invalidPath"],
    ["another type's attribute as a path", "PATCH", G, { body: ops({ op: "replace", path: "userName", value: "x" }) }, 400, "invalidPath"],
    ["value filter on an unknown attribute", "PATCH", U, { body: ops({ op: "remove", path: 'shoeSize[value eq "9"]' }) }, 400, "invalidPath"],
    ["unterminated value filter", "PATCH", U, { body: ops({ op: "replace", path: 'emails[type eq "work"', value: "x" }) }, 400, "invalidPath"],
    ["unknown sub-attribute in a path", "PATCH", U, { body: ops({ op: "replace", path: 'emails[type eq "work"].nope', value: "x" }) }, 400, "invalidPath"],
    ["filter on a single-valued attribute", "PATCH", U, { body: ops({ op: "replace", path: 'title[value eq "x"]', value: "x" }) }, 400, "invalidPath"],
    ["SQL in a PATCH path", "PATCH", U, { body: ops({ op: "remove", path: "title; DROP TABLE resources" }) }, 400, "invalidPath"],
    ["remove without path", "PATCH", U, { body: ops({ op: "remove" }) }, 400, "noTarget"],
    ["replace meta.created", "PATCH", U, { body: ops({ op: "replace", path: "meta.created", value: "2000-01-01T00:00:00Z" }) }, 400, "mutability"],
    ["replace id", "PATCH", U, { body: ops({ op: "replace", path: "id", value: "mine" }) }, 400, "mutability"],
    ["boolean as an array", "PATCH", U, { body: ops({ op: "replace", path: "active", value: [1] }) }, 400, "invalidValue"],
    ["userName as a number", "PATCH", U, { body: ops({ op: "replace", path: "userName", value: 5 }) }, 400, "invalidValue"],
    ["clearing userName", "PATCH", U, { body: ops({ op: "remove", path: "userName" }) }, 400, "invalidValue"],
    ["path-less value that is no object", "PATCH", U, { body: ops({ op: "replace", value: "x" }) }, 400, "invalidValue"],
    ["extension value that is no object", "PATCH", U, { body: ops({ op: "add", path: ENTERPRISE, value: "x" }) }, 400, "invalidValue"],
    ["later operation fails: nothing applies", "PATCH", U, { body: ops({ op: "replace", path: "title", value: "applied?" }, { op: "replace", path: "nope.a.b", value: 1 }) }, 400, "invalidPath"],
    ["add an unknown member", "PATCH", G, { body: ops({ op: "add", path: "members", value: [{ value: "no-such-member" }] }) }, 400, "invalidValue"],
    ["add the group to itself", "PATCH", G, { body: ops({ op: "add", path: "members", value: [{ value: g }] }) }, 400, "invalidValue"],
    ["member value as a number (PATCH)", "PATCH", G, { body: ops({ op: "add", path: "members", value: [{ value: 1 }] }) }, 400, "invalidValue"],
    ["unterminated members filter", "PATCH", G, { body: ops({ op: "remove", path: 'members[value eq "x"' }) }, 400, "invalidPath"],
    ["stale If-Match", "PATCH", U, { body: ops({ op: "replace", path: "title", value: "x" }), headers: { "If-Match": 'W/"1"' } }, 412, undefined],
    ["garbage If-Match on PUT", "PUT", U, { body: user({ userName: "bad.input.user@contoso.com" }), headers: { "If-Match": "garbage" } }, 412, undefined],
    ["stale If-Match on DELETE", "DELETE", G, { headers: { "If-Match": 'W/"12345"' } }, 412, undefined],

    // --- /.search bodies
    ["search without schemas", "POST", "/.search", { body: { filter: 'userName eq "x"' } }, 400, "invalidSyntax"],
    ["search with the User schema", "POST", "/Users/.search", { body: { schemas: [USER_SCHEMA] } }, 400, "invalidSyntax"],
    ["search body as an array", "POST", "/Groups/.search", { body: [search()] }, 400, "invalidSyntax"],
    ["search filter as a number", "POST", "/.search", { body: search({ filter: 5 }) }, 400, "invalidValue"],
    ["invalid search filter", "POST", "/Users/.search", { body: search({ filter: 'userName eq "a" or' }) }, 400, "invalidFilter"],
    ["search filter with an unknown attribute", "POST", "/.search", { body: search({ filter: `${ENTERPRISE}:shoeSize eq "9"` }) }, 400, "invalidFilter"],
    ["search attributes as a number", "POST", "/.search", { body: search({ attributes: 5 }) }, 400, "invalidValue"],
    ["search attributes holding a number", "POST", "/Users/.search", { body: search({ attributes: ["userName", 5] }) }, 400, "invalidValue"],
    ["search excluding another type's attribute", "POST", "/Groups/.search", { body: search({ excludedAttributes: ["userName"] }) }, 400, "invalidValue"],
    ["search sortBy injection", "POST", "/.search", { body: search({ sortBy: "userName) --" }) }, 400, "invalidValue"],
    ["search sortOrder", "POST", "/Users/.search", { body: search({ sortBy: "userName", sortOrder: "up" }) }, 400, "invalidValue"],

    // --- authentication (nothing is read or written without it)
    ["no token", "POST", "/Users", { body: user(), token: null }, 401, undefined],
    ["wrong token", "DELETE", U, { token: "not-the-token" }, 401, undefined],
  ];
}

test("bad-input corpus: every case is a 4xx SCIM Error with the right scimType and stores nothing", async () => {
  const cases = corpus(ctx);
  const names = new Set(cases.map((c) => c[0]));
  assert.equal(names.size, cases.length, "case names are distinct");
  assert.ok(cases.length >= 100, `at least 100 cases (${cases.length})`);
  const failures = [];
  let before = await snapshot();
  for (const [name, method, p, opts, status, scimType] of cases) {
    const r = await w.fetch(method, p, opts);
    const after = await snapshot();
    const base = before;
    before = after;
    try {
      assert.ok(r.status >= 400 && r.status < 500, `4xx, never 5xx: got ${r.status}`);
      assertScimError(assert, r, status, scimType);
      assert.match(r.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/, "request id");
      assert.ok(r.json.detail.includes(r.headers.get("x-request-id")), "the detail quotes the request id");
      assert.deepEqual(after, base, "nothing stored or changed");
    } catch (e) {
      failures.push(`${name} (${method} ${p.slice(0, 80)}): ${e.message.split("\n")[0]}`);
    }
  }
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases failed:\n${failures.join("\n")}`);
  // The server still answers normally afterwards.
  const after = await w.get(`/Users/${ctx.u}`);
  assert.equal(after.status, 200);
  assert.equal(after.headers.get("etag"), ctx.etag);
});

/** A stream of `total` bytes of spaces in 256 KiB chunks; `pulled()` says how many were taken. */
function spaces(total) {
  const chunk = new Uint8Array(256 * 1024).fill(0x20);
  let sent = 0;
  const stream = new ReadableStream({
    pull(c) {
      if (sent >= total) return c.close();
      sent += chunk.length;
      c.enqueue(chunk);
    },
  });
  return { stream, pulled: () => sent };
}

/** POSTs `stream` to /Users chunked (no Content-Length): the response, or the fetch's error. */
async function postChunked(stream) {
  try {
    const res = await w.mf.dispatchFetch(`${w.base}/Users`, {
      method: "POST",
      headers: { Authorization: `Bearer ${w.token}`, "Content-Type": "application/scim+json" },
      body: stream,
      duplex: "half",
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, headers: res.headers, text, json };
  } catch (error) {
    return { error };
  }
}

test("a body larger than the limit is refused, streamed or not, and the limit is advertised", async () => {
  const spc = await w.get("/ServiceProviderConfig");
  assert.equal(spc.json.bulk.maxPayloadSize, MAX_BODY);
  const before = await snapshot();

  // Streamed without a Content-Length (chunked), over the limit but under the 16 MiB the
  // worker drains: it is read to its end, keeping at most the limit, and always answered 413.
  const small = spaces(4 * MAX_BODY);
  const r = await postChunked(small.stream);
  assert.ok(!r.error, `a 4 MiB chunked body must get an answer: ${r.error?.cause?.code ?? r.error}`);
  assertScimError(assert, r, 413, undefined);
  assert.equal(small.pulled(), 4 * MAX_BODY, "read to its end (so the connection stays clean)");

  // 64 MiB: past 16 MiB the worker stops reading and cancels the stream, so no upload keeps the
  // isolate busy (docs/RELIABILITY.md, "Oversized chunked bodies"). workerd answers 413 and
  // closes the connection with the rest of the upload unread, which resets it while the client
  // is still writing (RFC 9112 §9.6: the reset "might erase the client's unacknowledged input
  // buffers" before the response is read). Node's fetch then fails ("fetch failed", cause
  // `write ECONNRESET`) when it sees the reset before it parsed the 413: a race, seen in 4 of 16
  // runs of this file before the 4 MiB body above was added, and in 1 of 30 uploads in a loop. What a client can rely on is the 413 or a connection closed by the server,
  // never another answer, and that nothing was stored and the worker stays up.
  const TOTAL = 64 * MAX_BODY;
  const big = spaces(TOTAL);
  const res = await postChunked(big.stream);
  if (res.error) {
    const code = res.error.cause?.code;
    assert.ok(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET"].includes(code), `the connection was closed, not another failure: ${res.error} (cause ${code}: ${res.error.cause})`);
  } else {
    assertScimError(assert, res, 413, undefined);
  }
  assert.ok(big.pulled() < TOTAL / 2, `the body was not read to the end (${big.pulled()} of ${TOTAL} bytes pulled)`);
  assert.deepEqual(await snapshot(), before);
  assert.equal((await w.get("/ServiceProviderConfig")).status, 200);
});

test("SQL-looking values in valid filters are data, not SQL: 200 with no match, tables intact", async () => {
  const before = await snapshot();
  for (const f of [
    `userName eq "x' OR '1'='1"`,
    `userName eq "a\\"; DROP TABLE resources; --"`,
    `displayName co "%" and displayName sw "_"`,
    `externalId eq "') UNION SELECT id, type, data, created, modified, version FROM resources --"`,
  ]) {
    const r = await w.get(`/Users?filter=${q(f)}`);
    assert.equal(r.status, 200, `${f}: ${r.text}`);
    assert.equal(r.json.totalResults, 0, f);
  }
  assert.deepEqual(await snapshot(), before);
});

test("no CORS: no Access-Control-* header on any response, and preflights are not approved", async () => {
  const origin = { Origin: "https://evil.example" };
  const responses = [
    await w.get("/Users", { headers: origin }),
    await w.get(`/Users/${ctx.u}`, { headers: origin }),
    await w.get("/ServiceProviderConfig", { headers: origin }),
    await w.get("/Nope", { headers: origin }),
    await w.post("/Users", {}, { headers: origin }),
    await w.get("/Users", { headers: origin, token: null }),
  ];
  for (const method of ["POST", "DELETE", "PATCH"]) {
    // A browser preflight carries no credentials.
    responses.push(
      await w.fetch("OPTIONS", "/Users", {
        token: null,
        headers: { ...origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization, content-type" },
      }),
    );
  }
  for (const r of responses) {
    for (const [k] of r.headers) assert.ok(!k.toLowerCase().startsWith("access-control-"), `${k} must not be sent`);
    assert.match(r.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/);
  }
  const preflights = responses.slice(-3);
  for (const p of preflights) assertScimError(assert, p, 401, undefined);
});

test("request ids are random per response", async () => {
  const ids = new Set();
  for (let i = 0; i < 20; i++) ids.add((await w.get("/ServiceProviderConfig")).headers.get("x-request-id"));
  assert.equal(ids.size, 20);
});
