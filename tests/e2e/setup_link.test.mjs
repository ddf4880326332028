// The IT admin's setup link end to end in workerd + local D1: created through the admin API,
// single-use to open (a GET does not spend it), expiring and revocable (revoking ends its
// session); the page it opens, served under a strict CSP, shows the tenant's URL, generates
// a SCIM token (CSRF-protected), sees the identity provider connect and shows the tenant's own
// provisioning log, never another tenant's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { startWorker, ROOT, USER_SCHEMA } from "./harness.mjs";
import { admin as adminCall, cookieOf, openSetupLink, raw } from "./onboarding_helpers.mjs";

const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
let w;
const admin = (method, path, body) => adminCall(w, ADMIN, method, path, body);

before(async () => {
  w = await startWorker({ adminToken: ADMIN });
  for (const id of ["acme", "globex"]) {
    assert.equal((await admin("POST", "/tenants", { id, name: `${id} Corp` })).status, 201);
  }
});
after(async () => {
  await w?.stop();
});

async function newLink(tenant = "acme", body = {}) {
  const r = await admin("POST", `/tenants/${tenant}/setup-links`, body);
  assert.equal(r.status, 201, r.text);
  return { ...r.json, path: new URL(r.json.url).pathname };
}

const open = (path, origin = w.origin) => raw(w, "POST", path, { headers: { Origin: origin } });
const api = (cookie, method, path, headers = {}) =>
  raw(w, method, `/setup/api/${path}`, { headers: { Cookie: cookie, Origin: w.origin, ...headers } });

test("a link opens once; a GET (a mail scanner) does not spend it", async () => {
  const link = await newLink("acme", { label: "Alice (IT)" });
  assert.match(link.url, new RegExp(`^${w.origin}/setup/scim_sl_`));
  assert.equal(link.status, "active");
  const page = await raw(w, "GET", link.path);
  assert.equal(page.status, 200);
  assert.equal(cookieOf(page, "__Host-scim-setup="), null);
  assert.match(page.text, /<form method="post">/);
  const first = await open(link.path);
  assert.equal(first.status, 303);
  const setCookie = first.headers.getSetCookie().find((c) => c.startsWith("__Host-scim-setup="));
  for (const attr of ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"]) assert.ok(setCookie.includes(attr), setCookie);
  assert.equal((await open(link.path)).status, 410, "the second opening");
  const list = await admin("GET", "/tenants/acme/setup-links");
  const row = list.json.setupLinks.find((l) => l.id === link.id);
  assert.equal(row.status, "opened");
  assert.ok(!list.text.includes("scim_sl_"), "the list never shows a secret");
  assert.equal(await w.count("SELECT count(*) FROM setup_links WHERE hash = ?", link.path.split("/").pop()), 0);
});

test("a link cannot be opened after it expires, when revoked, or from another site", async () => {
  const expired = await newLink("acme", { expiresIn: 60 });
  await w.db.prepare("UPDATE setup_links SET expires = '2000-01-01T00:00:00.000Z' WHERE id = ?").bind(expired.id).run();
  assert.equal((await open(expired.path)).status, 410);
  const revoked = await newLink();
  assert.equal((await admin("DELETE", `/tenants/acme/setup-links/${revoked.id}`)).json.status, "revoked");
  assert.equal((await open(revoked.path)).status, 410);
  const cross = await newLink();
  assert.equal((await open(cross.path, "https://evil.test")).status, 403);
  assert.equal((await open(cross.path)).status, 303, "the refused cross-site POST did not spend it");
  assert.equal((await admin("POST", "/tenants/acme/setup-links", { expiresIn: 5 })).status, 400);
  assert.equal((await admin("POST", "/tenants/nobody/setup-links", {})).status, 404);
});

test("revoking an opened link ends its session", async () => {
  const link = await newLink();
  const cookie = cookieOf(await open(link.path), "__Host-scim-setup=");
  assert.equal((await api(cookie, "GET", "session")).status, 200);
  await admin("DELETE", `/tenants/acme/setup-links/${link.id}`);
  assert.equal((await api(cookie, "GET", "session")).status, 401);
});

test("the setup page: tenant URL, a token shown once (CSRF-protected), the connection check and the tenant's own log", async () => {
  const cookie = await openSetupLink(w, ADMIN, "acme");
  const s = await api(cookie, "GET", "session");
  assert.equal(s.json.tenant, "acme");
  assert.equal(s.json.name, "acme Corp");
  assert.equal(s.json.scimUrl, `${w.origin}/t/acme/scim/v2`);
  assert.equal((await api(cookie, "GET", "status")).json.connected, false);
  // globex has activity; acme's page sees none of it.
  const globex = (await admin("POST", "/tenants/globex/tokens", {})).json.token;
  await w.request("POST", "/t/globex/scim/v2/Users", { token: globex, body: { schemas: [USER_SCHEMA], userName: "g@globex.test" } });
  assert.deepEqual((await api(cookie, "GET", "events")).json.events, []);

  assert.equal((await api(cookie, "POST", "token")).status, 403, "no CSRF token");
  assert.equal((await api(cookie, "POST", "token", { "x-csrf-token": s.json.csrf, Origin: "https://evil.test" })).status, 403);
  const t = await api(cookie, "POST", "token", { "x-csrf-token": s.json.csrf });
  assert.equal(t.status, 201, t.text);
  assert.match(t.json.token, /^scim_/);
  const created = await w.request("POST", "/t/acme/scim/v2/Users", { token: t.json.token, body: { schemas: [USER_SCHEMA], userName: "a@acme.test" } });
  assert.equal(created.status, 201);
  assert.equal((await w.request("GET", "/t/globex/scim/v2/Users", { token: t.json.token })).status, 401);
  const st = await api(cookie, "GET", "status");
  assert.equal(st.json.connected, true);
  assert.ok(st.json.lastSeen);
  const log = (await api(cookie, "GET", "events")).json.events;
  assert.deepEqual(log.map((e) => [e.op, e.resourceType, e.outcome]), [["create", "User", "success"]]);
  // No session, or a made-up one: 401.
  assert.equal((await raw(w, "GET", "/setup/api/session")).status, 401);
  assert.equal((await api(`__Host-scim-setup=scim_ss_${"A".repeat(43)}`, "GET", "session")).status, 401);
});

test("the page is static, strict-CSP, with no inline code", async () => {
  const page = await raw(w, "GET", "/setup");
  assert.equal(page.status, 200);
  const csp = page.headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  for (const tag of page.text.split("<script").slice(1)) assert.match(tag.trimStart(), /^src=/);
  assert.doesNotMatch(page.text, / style=| on[a-z]+=/);
  const js = await raw(w, "GET", "/setup/setup.js");
  assert.equal(js.status, 200);
  assert.doesNotMatch(js.text, /innerHTML/);
});

test("admin CLI: setup links and OAuth apps", async () => {
  const run = promisify(execFile);
  const cliWorker = await startWorker({ port: 0, adminToken: ADMIN });
  const cli = async (...args) => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, "scripts/admin.mjs"), "--url", cliWorker.origin, ...args], {
      env: { ...process.env, ADMIN_TOKEN: ADMIN },
    });
    return JSON.parse(stdout);
  };
  try {
    await cli("tenant", "create", "cli-setup");
    const link = await cli("setup-link", "create", "cli-setup", "--label", "Alice", "--expires-in", "3600");
    assert.match(link.url, new RegExp(`^${cliWorker.origin}/setup/scim_sl_`));
    assert.equal(link.label, "Alice");
    assert.deepEqual((await cli("setup-links", "cli-setup")).setupLinks.map((l) => l.status), ["active"]);
    assert.equal((await cli("setup-link", "revoke", "cli-setup", link.id)).status, "revoked");
    const app = await cli("oauth-app", "add", "--name", "Contoso HR");
    assert.match(app.clientSecret, /^scim_as_/);
    assert.equal(app.tokenUrl, `${cliWorker.origin}/oauth/token`);
    const set = await cli("oauth-app", "set", app.clientId, "--redirect-uris", "https://portal.azure.com/TokenAuthorize");
    assert.deepEqual(set.redirectUris, ["https://portal.azure.com/TokenAuthorize"]);
    assert.equal((await cli("oauth-apps")).oauthApps.length, 1);
    assert.equal((await cli("oauth-app", "revoke", app.clientId)).status, "revoked");
    await assert.rejects(cli("oauth-app", "add"), (e) => e.code === 2 && /--name/.test(e.stderr));
  } finally {
    await cliWorker.stop();
  }
});
