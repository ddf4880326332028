// The admin console (/admin) in headless Chromium (Debian's `chromium` package, driven by
// playwright-core; no browser is downloaded) against the compiled worker in workerd + local
// D1 on a loopback port: sign in, create a tenant, generate a token, provision a user with it
// over real SCIM, find the user (and the event in the provisioning log), revoke the token and
// see SCIM refuse it. Screenshots go to tests/browser/artifacts/ (git-ignored).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { startWorker, ROOT, USER_SCHEMA, PATCH_OP } from "../e2e/harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = path.join(ROOT, "tests/browser/artifacts");
const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
const TENANT = "acme-browser";
const USER = "alice.browser@acme.test";

let w, context, page, profile, receiver;
const hooks = []; // bodies the webhook receiver got
let secret, userId, bobId;
const problems = []; // CSP violations, page errors, failed console messages

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup.sh --browser (installs Debian's chromium)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => { hooks.push(JSON.parse(Buffer.concat(chunks).toString("utf8"))); res.writeHead(204).end(); });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  w = await startWorker({
    port: 0,
    adminToken: ADMIN,
    options: {
      bindings: { WEBHOOK_ALLOW_LOOPBACK_HTTP: "1" },
      queueProducers: { WEBHOOKS: { queueName: "scim-webhooks" } },
      queueConsumers: { "scim-webhooks": { maxBatchTimeout: 0 } },
    },
  });
  profile = mkdtempSync(path.join(os.tmpdir(), "scim-console-profile-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // HTTP errors are expected (a wrong token, a bad filter, no log API); CSP violations
    // ("Refused to ...") and script errors are not.
    if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
});

after(async () => {
  await context?.close();
  await w?.stop();
  receiver?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
const status = () => page.locator("#status");
/** One of the tenant's views, from its navigation. */
const openView = (name) => page.getByRole("navigation", { name: "Tenant views" }).getByRole("link", { name }).click();

/** A SCIM request from Node (not the browser) to the tenant's URL with `token`. */
async function scim(method, p, token, body) {
  const res = await fetch(`${w.origin}/t/${TENANT}/scim/v2${p}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/scim+json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

test("the console is served with a strict content security policy and asks for the admin token", async () => {
  const res = await page.goto(`${w.origin}/admin`);
  assert.equal(res.status(), 200);
  const h = res.headers();
  assert.match(h["content-type"], /^text\/html/);
  assert.match(h["content-security-policy"], /script-src 'self';/);
  assert.equal(h["x-frame-options"], "DENY");
  await page.getByLabel("Admin token").waitFor();
  assert.equal(await page.locator("#app").isHidden(), true);
  // Keyboard only: the field has focus; type the token and press Enter.
  assert.equal(await page.evaluate(() => document.activeElement?.id), "admin-token");
  await page.keyboard.type("not-the-admin-token");
  await page.keyboard.press("Enter");
  await assert.doesNotReject(status().filter({ hasText: "not accepted" }).waitFor());
  // Focus is visible when moving by keyboard.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Sign in");
  assert.equal(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), "solid");
  await shot("01-sign-in-refused");
});

test("sign in, create a tenant and see its Tenant URL", async () => {
  await page.getByLabel("Admin token").fill(ADMIN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "default", exact: true }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("scim-edge.adminToken")), ADMIN);
  assert.ok(!page.url().includes(ADMIN), "no secret in the URL");

  await page.getByLabel("Tenant id").fill(TENANT);
  await page.getByLabel("Display name (optional)").fill("Acme (browser test)");
  await page.getByRole("button", { name: "Create tenant" }).click();
  await page.getByRole("heading", { name: `Tenant ${TENANT}` }).waitFor();
  await status().filter({ hasText: `Tenant ${TENANT} created` }).waitFor();
  assert.equal(await page.getByLabel("Tenant URL").inputValue(), `${w.origin}/t/${TENANT}/scim/v2`);
  assert.equal(await page.getByRole("navigation", { name: "Tenant views" }).getByRole("link", { name: "Overview" }).getAttribute("aria-current"), "page");
  await shot("02-tenant-overview");
});

test("quotas: the overview shows usage and limits, and saving changes them", async () => {
  assert.match(await page.locator("#usage").textContent(), /^Stored: 0 of 1000000 resources, 0 of 1073741824 bytes/);
  await page.getByLabel("Most resources").fill("5000");
  await page.getByLabel("Most bytes of resource data").fill("");
  await page.getByRole("button", { name: "Save settings" }).click();
  await status().filter({ hasText: `Settings saved for ${TENANT}` }).waitFor();
  const t = await (await fetch(`${w.origin}/admin/api/tenants/${TENANT}`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
  assert.deepEqual(t.quota, { resources: 5000, bytes: null });
  assert.match(await page.locator("#usage").textContent(), /0 of 5000 resources, 0 \(no limit\) bytes/);
});

test("generate a token: the secret is shown once in a dialog", async () => {
  await openView("Tokens");
  await page.getByLabel("Label").fill("Entra production");
  await page.getByLabel("Expires after (days, optional)").fill("30");
  await page.getByRole("button", { name: "Generate token" }).click();
  const dialog = page.getByRole("dialog", { name: "Copy the secret now" });
  await dialog.waitFor();
  secret = await dialog.getByLabel("Secret token").inputValue();
  assert.match(secret, /^scim_[A-Za-z0-9_-]{43}$/);
  assert.equal(await dialog.getByLabel("Tenant URL").inputValue(), `${w.origin}/t/${TENANT}/scim/v2`);
  await dialog.getByRole("button", { name: "Copy secret token" }).waitFor();
  await shot("03-token-dialog");
  await dialog.getByRole("button", { name: "Done" }).click();
  await dialog.waitFor({ state: "hidden" });
  assert.ok(!(await page.content()).includes(secret), "the secret is gone from the page once the dialog closes");

  const row = page.getByRole("row", { name: /Entra production/ });
  await row.waitFor();
  assert.match(await row.innerText(), /Bearer[\s\S]*never[\s\S]*active/);
});

test("the token works for SCIM; the user shows up in the directory with the filter box", async () => {
  const created = await scim("POST", "/Users", secret, {
    schemas: [USER_SCHEMA],
    userName: USER,
    name: { givenName: "Alice", familyName: "Browser" },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  userId = created.json.id;
  const other = await scim("POST", "/Users", secret, { schemas: [USER_SCHEMA], userName: "bob.browser@acme.test" });
  assert.equal(other.status, 201);
  bobId = other.json.id;
  // Deactivate bob the way some IdPs do: a capitalised op and a "False" string (two tolerances).
  const off = await scim("PATCH", `/Users/${bobId}`, secret, {
    schemas: [PATCH_OP],
    Operations: [{ op: "Replace", path: "active", value: "False" }],
  });
  assert.equal(off.status, 200, JSON.stringify(off.json));

  await openView("Users");
  await page.getByRole("button", { name: "bob.browser@acme.test" }).waitFor();
  await page.getByLabel("SCIM filter").fill('userName sw "alice"');
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.locator("#dir-caption").filter({ hasText: "Users 1–1 of 1" }).waitFor();
  assert.equal(await page.getByRole("button", { name: "bob.browser@acme.test" }).count(), 0);
  await page.getByRole("button", { name: USER }).click();
  await page.getByRole("heading", { name: `User ${USER}` }).waitFor();
  const json = JSON.parse(await page.locator("#detail-json").innerText());
  assert.equal(json.id, userId);
  assert.equal(json.name.givenName, "Alice");
  await page.getByText("No groups.").waitFor();
  await shot("04-directory-user");

  const bad = page.getByLabel("SCIM filter");
  await bad.fill("userName zz");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await status().filter({ hasText: "Error:" }).waitFor();
});

test("the provisioning log shows the create", async () => {
  const probe = await fetch(`${w.origin}/admin/api/tenants/${TENANT}/events?limit=1`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  await openView("Provisioning log");
  assert.equal(probe.status, 200);
  const row = page.getByRole("row").filter({ hasText: userId });
  await row.first().waitFor();
  assert.match(await row.first().innerText(), /create[\s\S]*success/);
  await page.locator("#chart svg rect").first().waitFor();
  await shot("05-log");
});

test("the log screen renders the events API contract: rows, filters, polling, per-day chart", async () => {
  // The API is mocked in the browser only (page.route), so the screen is checked against the
  // documented contract whether or not this build serves it.
  const day = new Date().toISOString().slice(0, 10);
  const at = (s) => `${day}T00:00:0${s}.000Z`;
  const events = [
    { seq: 1, time: at(1), op: "create", resourceType: "User", resourceId: userId, credential: null, attributes: ["userName"], deactivated: false, outcome: "success", status: 201, requestId: "req-1", detail: null },
    { seq: 2, time: at(2), op: "patch", resourceType: "User", resourceId: bobId, credential: null, attributes: ["active"], deactivated: true, outcome: "success", status: 200, requestId: "req-2", detail: null },
    { seq: 3, time: at(3), op: "create", resourceType: "Group", resourceId: "g-1", credential: null, attributes: [], deactivated: false, outcome: "failure", status: 409, requestId: "req-3", detail: "displayName is not unique" },
  ];
  const seen = [];
  await page.route(`**/admin/api/tenants/${TENANT}/events**`, (route) => {
    const url = new URL(route.request().url());
    seen.push(url);
    assert.equal(route.request().headers().authorization, `Bearer ${ADMIN}`);
    if (url.pathname.endsWith("/summary")) {
      return route.fulfill({ json: { days: [{ day, create: 2, update: 1, deactivate: 1, delete: 0, failure: 1 }] } });
    }
    const since = Number(url.searchParams.get("since") ?? 0);
    const outcome = url.searchParams.get("outcome");
    const out = events.filter((e) => e.seq > since && (!outcome || e.outcome === outcome));
    return route.fulfill({ json: { events: out, nextSince: out.length ? out.at(-1).seq : since } });
  });
  try {
    await openView("Users");
    await openView("Provisioning log");
    const rows = page.locator("#log-rows tr");
    await rows.nth(2).waitFor();
    assert.equal(await rows.count(), 3);
    assert.match(await rows.nth(0).innerText(), /create[\s\S]*Group g-1[\s\S]*failure 409[\s\S]*not unique/, "newest first");
    assert.match(await rows.nth(1).innerText(), /patch[\s\S]*deactivated[\s\S]*active/);
    assert.equal(await page.locator("#chart svg g").count(), 30, "one bar per day for 30 days");
    assert.equal(await page.locator("#chart svg rect").count(), 4, "today: create, update, deactivate, failure");
    assert.match(await page.locator("#chart svg > title").textContent(), /2 creates, 1 updates, 1 deactivations, 0 deletes, 1 failures/);
    await shot("05b-log-contract");

    await page.getByLabel("Outcome").selectOption("failure");
    await page.getByLabel("Operation").selectOption("create");
    await page.getByLabel("From").fill(`${day}T00:00`);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.locator("#log-caption").filter({ hasText: "(1)" }).waitFor();
    const q = seen.filter((u) => !u.pathname.endsWith("/summary")).at(-1).searchParams;
    assert.equal(q.get("outcome"), "failure");
    assert.equal(q.get("op"), "create");
    assert.match(q.get("from"), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(q.get("limit"));

    events.push({ ...events[2], seq: 4, time: at(4), requestId: "req-4" });
    await page.getByRole("button", { name: "Check for new events" }).click();
    await page.locator("#log-caption").filter({ hasText: "(2)" }).waitFor();
    assert.equal(seen.at(-1).searchParams.get("since"), "3");
    assert.equal(seen.at(-1).searchParams.get("outcome"), "failure");

    // A resource in the log opens its detail in the directory.
    await page.getByRole("button", { name: "Group g-1" }).first().waitFor();
    await page.getByLabel("Outcome").selectOption("");
    await page.getByLabel("Operation").selectOption("");
    await page.getByLabel("From").fill("");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.getByRole("button", { name: `User ${userId}` }).click();
    await page.getByRole("heading", { name: `User ${USER}` }).waitFor();
  } finally {
    await page.unroute(`**/admin/api/tenants/${TENANT}/events**`);
  }
});

test("rotate a token: a new secret once, the old one marked as rotated", async () => {
  await openView("Tokens");
  await page.getByLabel("Label").fill("Okta staging");
  await page.getByRole("button", { name: "Generate token" }).click();
  const dialog = page.getByRole("dialog", { name: "Copy the secret now" });
  const first = await dialog.getByLabel("Secret token").inputValue();
  await page.keyboard.press("Escape"); // closes the dialog like Done
  await dialog.waitFor({ state: "hidden" });
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Rotate Okta staging" }).click();
  await dialog.waitFor();
  const second = await dialog.getByLabel("Secret token").inputValue();
  assert.notEqual(second, first);
  await dialog.getByRole("button", { name: "Done" }).click();
  await page.getByRole("row", { name: /Okta staging/ }).filter({ hasText: "active (rotated)" }).waitFor();
  assert.equal(await page.getByRole("row", { name: /Okta staging/ }).count(), 2);
  // During the overlap both secrets work.
  for (const t of [first, second]) assert.equal((await scim("GET", "/Users?count=1", t)).status, 200);
});

test("webhooks: add an endpoint (secret shown once), see its delivery in the log, disable it", async () => {
  const url = `http://127.0.0.1:${receiver.address().port}/hook`;
  await openView("Webhooks");
  await page.getByLabel("Endpoint URL").fill("http://example.com/hook");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await status().filter({ hasText: "https" }).waitFor();
  await page.getByLabel("Endpoint URL").fill(url);
  await page.getByLabel("Event types").fill("user.created, user.deactivated");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  const dialog = page.getByRole("dialog", { name: "Copy the secret now" });
  await dialog.waitFor();
  const signing = await dialog.getByLabel("Signing secret").inputValue();
  assert.match(signing, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.match(await dialog.locator("#secret-note").innerText(), /receiving app/);
  await dialog.getByRole("button", { name: "Done" }).click();
  await dialog.waitFor({ state: "hidden" });
  assert.ok(!(await page.content()).includes(signing), "the secret is gone once the dialog closes");
  const row = page.getByRole("row", { name: new RegExp(url) });
  assert.match(await row.innerText(), /user\.created, user\.deactivated[\s\S]*active/);

  const created = await scim("POST", "/Users", secret, { schemas: [USER_SCHEMA], userName: "carol.browser@acme.test" });
  assert.equal(created.status, 201);
  const deadline = Date.now() + 15_000;
  while (!hooks.some((b) => b.data?.id === created.json.id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.ok(hooks.some((b) => b.type === "user.created" && b.data.id === created.json.id), JSON.stringify(hooks));
  await page.getByRole("button", { name: `Deliveries of ${url}` }).click();
  await page.getByRole("heading", { name: `Deliveries to ${url}` }).waitFor();
  const delivered = page.locator("#delivery-rows tr").filter({ hasText: "user.created" });
  await delivered.waitFor();
  assert.match(await delivered.innerText(), /delivered\s+1\s+204/);
  await shot("06-webhooks");

  await page.getByRole("button", { name: `Disable ${url}` }).click();
  await status().filter({ hasText: "disabled" }).waitFor();
  await row.filter({ hasText: "disabled by an administrator" }).waitFor();
});

test("revoke the token; the next SCIM request is refused with 401", async () => {
  await openView("Tokens");
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Revoke Entra production" }).click();
  await status().filter({ hasText: "revoked" }).waitFor();
  await page.getByRole("row", { name: /Entra production/ }).filter({ hasText: "revoked" }).waitFor();
  await shot("06-token-revoked");
  const refused = await scim("GET", `/Users/${userId}`, secret);
  assert.equal(refused.status, 401, JSON.stringify(refused.json));
});

test("extension schemas: declare one from a file, see the report, edit, remove; refuse undeclared ones", async () => {
  const urn = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
  const adminApi = async (p) => (await fetch(`${w.origin}/admin/api${p}`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
  await openView("Extension schemas");
  await page.getByText("No extension schemas declared").waitFor();
  await page.getByLabel("Import a JSON file (optional)").setInputFiles({
    name: "custom.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify({ id: urn, name: "Custom", attributes: [{ name: "costCode", type: "integer" }] })),
  });
  await page.waitForFunction(() => document.getElementById("schema-json").value.includes("costCode"));
  await page.getByRole("button", { name: "Declare schema" }).click();
  await status().filter({ hasText: `Schema ${urn} declared for User` }).waitFor();
  assert.match(await page.locator("#schema-report").textContent(), /^Checked \d+ stored resources?: 0 do not fit, 0 duplicate/);
  await page.getByRole("cell", { name: "costCode: integer" }).waitFor();
  assert.deepEqual((await adminApi(`/tenants/${TENANT}/schemas`)).schemas.map((d) => d.schema.id), [urn]);
  await shot("08-extension-schemas");
  // Edit fills the form; a bad document is refused with the server's message.
  await page.getByRole("button", { name: `Edit ${urn}` }).click();
  await page.getByLabel("Schema representation (JSON)").fill(JSON.stringify({ id: urn, attributes: [{ name: "x", type: "text" }] }));
  await page.getByRole("button", { name: "Declare schema" }).click();
  await status().filter({ hasText: "unknown variant" }).waitFor();
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: `Remove ${urn}` }).click();
  await status().filter({ hasText: `Schema ${urn} removed` }).waitFor();
  assert.deepEqual((await adminApi(`/tenants/${TENANT}/schemas`)).schemas, []);
  // The overview's setting for undeclared extensions.
  await openView("Overview");
  await page.getByLabel("Attributes under undeclared extension schemas").selectOption("reject");
  await page.getByRole("button", { name: "Save settings" }).click();
  await status().filter({ hasText: `Settings saved for ${TENANT}` }).waitFor();
  assert.equal((await adminApi(`/tenants/${TENANT}`)).extensions, "reject");
});

test("tolerances view, sign out, and no CSP violations or script errors on the way", async () => {
  await openView("Tolerances");
  const rows = page.locator("#tolerance-rows tr");
  await rows.nth(1).waitFor();
  assert.match(await rows.nth(0).innerText(), /booleanString\s+1\b/);
  assert.match(await rows.nth(1).innerText(), /capitalizedOp\s+1\b/);
  await shot("07-tolerances");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Admin token").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("scim-edge.adminToken")), null);
  assert.deepEqual(problems, []);
});
