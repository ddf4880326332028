// SCIM security events (RFC 9967) end to end: the compiled worker in workerd with a real local
// D1 and real Cloudflare Queues (Miniflare's). SETs pushed per RFC 8935 to a loopback receiver,
// and polled per RFC 8936 with the tenant's SCIM token; every token is verified with the `jose`
// npm package (signature, `typ`, `iss`, `aud`), not with the project's code.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { jwtVerify, decodeProtectedHeader } from "jose";
import { startWorker, patchOps } from "./harness.mjs";
import { queueOptions, startReceiver, until } from "./receiver.mjs";

const ADMIN = "secevents-e2e-admin-token";
const HOOKS = "/admin/api/tenants/default/webhooks";
const PROV = "urn:ietf:params:scim:event:prov:";
const ISSUER = "http://scim.test/t/default/scim/v2";

/** The HS256 key of a `whsec_…` secret. */
const keyOf = (secret) => new Uint8Array(Buffer.from(secret.slice("whsec_".length), "base64"));

/** Verifies a SET with jose as a receiver would; its header and claims. */
async function verifySet(token, key, audience) {
  const { payload, protectedHeader } = await jwtVerify(token, key, {
    issuer: ISSUER,
    audience,
    typ: "secevent+jwt",
    algorithms: ["HS256"],
  });
  return { header: protectedHeader, claims: payload };
}

let w;
let rx;
before(async () => {
  rx = await startReceiver({ status: 202 });
  w = await startWorker({ adminToken: ADMIN, options: queueOptions() });
});
after(async () => {
  await w?.stop();
  await rx?.close();
});

async function create(body) {
  const r = await w.request("POST", HOOKS, { token: ADMIN, body });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

test("each change is pushed as one SET (RFC 8935) that jose verifies, with RFC 9967 events", async () => {
  const url = `${rx.url}/set`;
  const ep = await create({ url, format: "set" });
  assert.equal(ep.format, "set");
  assert.equal(ep.delivery, "push");
  const from = rx.got.length;
  const made = await w.post("/Users", { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: "ada@contoso.com", externalId: "ext-ada", password: "Secret-123!" });
  assert.equal(made.status, 201);
  const user = made.json;
  const off = await w.patch(`/Users/${user.id}`, patchOps({ op: "Replace", path: "active", value: "False" }));
  assert.equal(off.status, 200);
  const group = await w.createGroup("Ops");
  assert.equal((await w.patch(`/Groups/${group.id}`, patchOps({ op: "add", path: "members", value: [{ value: user.id }] }))).status, 204);
  const got = await until(() => rx.got.length - from >= 4 && rx.got.slice(from), "four SETs");
  assert.equal((await w.delete(`/Users/${user.id}`)).status, 204);
  await until(() => rx.got.length - from >= 5, "the delete's SET");

  const sets = [];
  for (const e of rx.got.slice(from)) {
    assert.equal(e.path, "/set");
    assert.equal(e.headers["content-type"], "application/secevent+jwt");
    assert.equal(e.headers["webhook-signature"], undefined);
    assert.doesNotMatch(e.body, /Secret-123/);
    const { header, claims } = await verifySet(e.body, keyOf(ep.secret), url);
    assert.equal(header.kid, ep.keyId);
    assert.equal(claims.sub, undefined);
    assert.match(claims.jti, /^set_\d+$/);
    sets.push(claims);
  }
  assert.equal(sets.length, 5, "one SET per change, not per type");
  const byUri = (u) => sets.find((c) => Object.keys(c.events).includes(PROV + u));
  const created = byUri("create:notice");
  assert.deepEqual(created.sub_id, { format: "scim", uri: `/Users/${user.id}`, id: user.id, externalId: "ext-ada" });
  assert.equal(created.txn, made.headers.get("x-request-id"));
  assert.ok(created.events[PROV + "create:notice"].attributes.includes("userName"));
  assert.ok(typeof created.toe === "number" && created.toe <= created.iat);
  const deactivated = byUri("deactivate");
  assert.deepEqual(Object.keys(deactivated.events).sort(), [PROV + "deactivate", PROV + "patch:notice"]);
  assert.equal(deactivated.txn, off.headers.get("x-request-id"));
  const members = sets.find((c) => c.sub_id.uri === `/Groups/${group.id}` && c.events[PROV + "patch:notice"]);
  assert.deepEqual(members.events, { [PROV + "patch:notice"]: { attributes: ["members"] } });
  assert.deepEqual(byUri("delete").events, { [PROV + "delete"]: {} });
  // Gone by then: the externalId the delete recorded.
  assert.deepEqual(byUri("delete").sub_id, { format: "scim", uri: `/Users/${user.id}`, id: user.id, externalId: "ext-ada" });

  // jti is the change feed's sequence number: the app can resume from the feed.
  const feed = await w.request("GET", "/admin/api/tenants/default/events?limit=100", { token: ADMIN });
  const seqs = new Set(feed.json.events.map((e) => `set_${e.seq}`));
  for (const c of sets) assert.ok(seqs.has(c.jti), c.jti);

  // ServiceProviderConfig advertises what is issued (RFC 9967 §4).
  const spc = await w.get("/ServiceProviderConfig");
  assert.equal(spc.json.securityEvents.asyncRequest, "none");
  for (const c of sets) for (const u of Object.keys(c.events)) assert.ok(spc.json.securityEvents.eventUris.includes(u), u);
  assert.ok(!spc.json.securityEvents.eventUris.some((u) => u.includes(":feed:")));

  // The delivery log names them by jti.
  const log = await w.request("GET", `${HOOKS}/${ep.id}/deliveries`, { token: ADMIN });
  assert.equal(log.json.deliveries.filter((d) => d.status === "delivered").length, 5);
  await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
});

test("a receiver answering RFC 8935 errors is retried; the same jti arrives again", async () => {
  const ep = await create({ url: `${rx.url}/flaky`, format: "set", events: ["user.created"] });
  let failures = 2;
  rx.answer = (e) => (e.path === "/flaky" && failures-- > 0 ? 400 : 202);
  const from = rx.got.length;
  await w.createUser("flaky@contoso.com");
  await until(() => rx.got.slice(from).some((e) => e.path === "/flaky" && e.status === 202), "the SET accepted", 30_000);
  rx.answer = () => 202;
  const tries = rx.got.slice(from).filter((e) => e.path === "/flaky");
  assert.equal(tries.length, 3);
  const jtis = new Set();
  for (const t of tries) jtis.add((await verifySet(t.body, keyOf(ep.secret), `${rx.url}/flaky`)).claims.jti);
  assert.equal(jtis.size, 1);
  const log = await w.request("GET", `${HOOKS}/${ep.id}/deliveries`, { token: ADMIN });
  assert.equal(log.json.deliveries[0].status, "delivered");
  assert.equal(log.json.deliveries[0].attempts, 3);
  await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
});

test("during a rotation the previous key signs, named by kid; then the new one", async () => {
  const url = `${rx.url}/rot`;
  const ep = await create({ url, format: "set" });
  const r = await w.request("POST", `${HOOKS}/${ep.id}/rotate`, { token: ADMIN, body: { overlapSeconds: 3600 } });
  assert.equal(r.status, 200);
  const keys = { [ep.keyId]: keyOf(ep.secret), [r.json.keyId]: keyOf(r.json.secret) };
  const from = rx.got.length;
  await w.createUser("rot@contoso.com");
  const e = await until(() => rx.got.slice(from).find((x) => x.path === "/rot"), "a SET");
  assert.equal(decodeProtectedHeader(e.body).kid, ep.keyId);
  // A receiver holding both secrets picks the key by kid.
  const { payload } = await jwtVerify(e.body, async (h) => keys[h.kid], { issuer: ISSUER, audience: url, typ: "secevent+jwt" });
  assert.match(payload.jti, /^set_\d+$/);
  await assert.rejects(jwtVerify(e.body, keyOf(r.json.secret), { issuer: ISSUER, audience: url }));
  // Overlap ended (rotate again with none): the newest key signs.
  const r2 = await w.request("POST", `${HOOKS}/${ep.id}/rotate`, { token: ADMIN, body: { overlapSeconds: 0 } });
  const from2 = rx.got.length;
  await w.createUser("rot2@contoso.com");
  const e2 = await until(() => rx.got.slice(from2).find((x) => x.path === "/rot"), "a SET");
  assert.equal(decodeProtectedHeader(e2.body).kid, r2.json.keyId);
  await verifySet(e2.body, keyOf(r2.json.secret), url);
  await w.request("DELETE", `${HOOKS}/${ep.id}`, { token: ADMIN });
});

test("a poll stream (RFC 8936) serves the same SETs to the tenant's token until acknowledged", async () => {
  const stream = await create({ format: "set", delivery: "poll" });
  assert.equal(stream.delivery, "poll");
  assert.equal(stream.url, null);
  const pollPath = stream.pollUrl.replace("http://scim.test", "");
  assert.equal(pollPath, `/t/default/scim/v2/Events/${stream.id}`);
  const poll = (body, token = w.token) => w.request("POST", pollPath, { token, body });

  assert.equal((await poll({})).status, 200);
  assert.equal((await poll({}, null)).status, 401);
  assert.equal((await poll({}, ADMIN)).status, 401);

  const a = await w.createUser("poll-a@contoso.com");
  const b = await w.createUser("poll-b@contoso.com");
  const c = await w.createUser("poll-c@contoso.com");
  let r = await poll({ returnImmediately: true, maxEvents: 2 });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^application\/json/);
  assert.equal(r.json.moreAvailable, true);
  const first = Object.entries(r.json.sets);
  assert.equal(first.length, 2);
  const subjects = [];
  for (const [jti, token] of first) {
    const { header, claims } = await verifySet(token, keyOf(stream.secret), stream.pollUrl);
    assert.equal(header.kid, stream.keyId);
    assert.equal(claims.jti, jti);
    assert.deepEqual(Object.keys(claims.events), [PROV + "create:notice"]);
    subjects.push(claims.sub_id.id);
  }
  // `sets` is a JSON object: no order; the two oldest.
  assert.deepEqual(subjects.sort(), [a.id, b.id].sort());
  // Not acknowledged: served again. Acknowledged: never again.
  r = await poll({ maxEvents: 2 });
  assert.deepEqual(Object.keys(r.json.sets).sort(), first.map(([j]) => j).sort());
  r = await poll({ ack: first.map(([j]) => j), returnImmediately: true });
  const rest = Object.entries(r.json.sets);
  assert.equal(rest.length, 1);
  assert.equal((await verifySet(rest[0][1], keyOf(stream.secret), stream.pollUrl)).claims.sub_id.id, c.id);
  assert.equal(r.json.moreAvailable, false);
  r = await poll({ ack: [rest[0][0]] });
  assert.deepEqual(r.json, { sets: {}, moreAvailable: false });
  // Acknowledgements are the stream's delivery log.
  const log = await w.request("GET", `${HOOKS}/${stream.id}/deliveries`, { token: ADMIN });
  assert.equal(log.json.deliveries.filter((d) => d.status === "delivered").length, 3);
  // A poll stream is never pushed anywhere.
  assert.equal(await w.count("SELECT count(*) FROM webhook_deliveries WHERE endpoint = ? AND sent = 0", stream.id), 0);
});
