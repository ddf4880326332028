// Entra's "Authorize" button in headless Chromium (Debian's `chromium`, driven by
// playwright-core), end to end against a running worker: the IT admin opens the vendor's setup
// link, sees the setup page, and approves Entra's authorization request on the consent page;
// the browser is redirected to Entra's registered redirect URI with the code (answered locally
// by the test: nothing leaves the machine); Entra's side (the token exchange, SCIM with the
// access token, a refresh, the old refresh token refused) is done from Node as Entra's
// provisioning service would.
//
// One flow, run against two targets: the compiled worker in workerd + local D1 through
// Miniflare (authorize.test.mjs), and the worker `scripts/dev.sh` starts under `wrangler dev`
// (authorize_dev.test.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { ROOT, USER_SCHEMA } from "../e2e/harness.mjs";
import { ENTRA, pkce } from "../e2e/onboarding_helpers.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = path.join(ROOT, "tests/browser/artifacts");
const TENANT = "acme-authorize";

/**
 * Registers the flow's tests. `start()` starts the target and resolves with `{ origin,
 * adminToken, stop }` (a worker on a loopback origin with that admin token and an empty
 * database); `label` names the screenshots.
 */
export function authorizeFlow({ label, start }) {
  let w, context, page, profile, app, linkUrl;
  const problems = [];
  const entraHits = [];

  const adminApi = async (method, p, body) => {
    const res = await fetch(`${w.origin}/admin/api${p}`, {
      method,
      headers: { Authorization: `Bearer ${w.adminToken}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, json: await res.json() };
  };

  const tokenEndpoint = async (form) => {
    const res = await fetch(`${w.origin}/oauth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: app.clientId, client_secret: app.clientSecret, ...form }).toString(),
    });
    return { status: res.status, json: await res.json() };
  };

  const scimUsers = async (token, tenant = TENANT) =>
    (await fetch(`${w.origin}/t/${tenant}/scim/v2/Users`, { headers: { Authorization: `Bearer ${token}` } })).status;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup.sh --browser (installs Debian's chromium)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    w = await start();
    assert.equal((await adminApi("POST", "/tenants", { id: TENANT, name: "Acme (authorize test)" })).status, 201);
    assert.equal((await adminApi("POST", "/tenants", { id: "globex-authorize" })).status, 201);
    const created = await adminApi("POST", "/oauth-apps", { name: "Contoso HR" });
    assert.equal(created.status, 201);
    app = created.json;
    profile = mkdtempSync(path.join(os.tmpdir(), "scim-authorize-profile-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
      viewport: { width: 1100, height: 900 },
    });
    // Entra's redirect URI, answered here: the browser never reaches the network.
    await context.route("https://portal.azure.com/**", (route) => {
      entraHits.push(route.request().url());
      return route.fulfill({ status: 200, contentType: "text/html", body: "<!doctype html><title>Entra</title><p>Authorized</p>" });
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(10_000);
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
  });

  after(async () => {
    await context?.close();
    await w?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${label}-${name}.png`), fullPage: true });

  test("the vendor creates a setup link in the console", async () => {
    await page.goto(`${w.origin}/admin`);
    await page.getByLabel("Admin token").fill(w.adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: TENANT, exact: true }).click();
    await page.getByRole("button", { name: "Create setup link" }).click();
    await page.getByRole("dialog").waitFor();
    linkUrl = await page.getByLabel("Setup link").inputValue();
    assert.match(linkUrl, new RegExp(`^${w.origin}/setup/scim_sl_`));
    await page.getByRole("button", { name: "Done" }).click();
    const links = await adminApi("GET", `/tenants/${TENANT}/setup-links`);
    assert.deepEqual(links.json.setupLinks.map((l) => l.status), ["active"]);
  });

  test("the setup link opens the setup page for its tenant, once", async () => {
    await page.goto(linkUrl);
    await page.getByRole("button", { name: "Continue" }).click();
    await page.waitForURL(`${w.origin}/setup`);
    assert.ok(!page.url().includes("scim_sl_"), "the secret leaves the address bar");
    await page.getByRole("heading", { name: /Set up provisioning for Acme \(authorize test\)/ }).waitFor();
    assert.equal(await page.locator("#scim-url").textContent(), `${w.origin}/t/${TENANT}/scim/v2`);
    const cookies = await context.cookies(w.origin);
    const session = cookies.find((c) => c.name === "__Host-scim-setup");
    assert.ok(session, "the session cookie is kept");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Lax");
    assert.equal(await page.evaluate(() => document.cookie.includes("scim-setup")), false, "not readable by script");
    await shot("01-setup-page");
    // The same link from anywhere else: already used.
    const again = await fetch(linkUrl, { method: "POST", headers: { Origin: w.origin }, redirect: "manual" });
    assert.equal(again.status, 410);
  });

  test("the setup page generates a SCIM token that works for its tenant only", async () => {
    await page.getByRole("button", { name: "Generate a SCIM token" }).click();
    await page.locator("#token-box").waitFor();
    const token = (await page.locator("#token").textContent()).trim();
    assert.match(token, /^scim_/);
    assert.equal(await scimUsers(token), 200);
    assert.equal(await scimUsers(token, "globex-authorize"), 401);
    await page.getByRole("button", { name: "Check again" }).click();
    await page.locator("#connected").filter({ hasText: "Connected" }).waitFor();
  });

  let code, verifier;

  test("authorize → consent → redirect to Entra with the code and the state", async () => {
    const p = pkce();
    verifier = p.verifier;
    const q = new URLSearchParams({
      response_type: "code", client_id: app.clientId, redirect_uri: ENTRA, state: "entra-state-1",
      code_challenge: p.challenge, code_challenge_method: "S256",
    });
    const res = await page.goto(`${w.origin}/oauth/authorize?${q}`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-security-policy"], /frame-ancestors 'none'/);
    await page.getByRole("heading", { name: /Allow Contoso HR to provision into Acme \(authorize test\)/ }).waitFor();
    await shot("02-consent");
    await page.getByRole("button", { name: "Allow" }).click();
    await page.waitForURL(/^https:\/\/portal\.azure\.com\/TokenAuthorize\?/);
    const back = new URL(page.url());
    assert.equal(back.searchParams.get("state"), "entra-state-1");
    code = back.searchParams.get("code");
    assert.match(code, /^scim_ac_/);
    assert.equal(entraHits.length, 1);
  });

  test("Entra's side: token exchange, SCIM with the access token, refresh, the old refresh token refused", async () => {
    const t = await tokenEndpoint({ grant_type: "authorization_code", code, redirect_uri: ENTRA, code_verifier: verifier });
    assert.equal(t.status, 200, JSON.stringify(t.json));
    assert.equal(await scimUsers(t.json.access_token), 200);
    const res = await fetch(`${w.origin}/t/${TENANT}/scim/v2/Users`, {
      method: "POST",
      headers: { Authorization: `Bearer ${t.json.access_token}`, "Content-Type": "application/scim+json" },
      body: JSON.stringify({ schemas: [USER_SCHEMA], userName: "ann@acme.test" }),
    });
    assert.equal(res.status, 201);
    const r = await tokenEndpoint({ grant_type: "refresh_token", refresh_token: t.json.refresh_token });
    assert.equal(r.status, 200);
    assert.equal(await scimUsers(r.json.access_token), 200);
    const old = await tokenEndpoint({ grant_type: "refresh_token", refresh_token: t.json.refresh_token });
    assert.deepEqual([old.status, old.json.error], [400, "invalid_grant"]);
  });

  test("the setup page's provisioning log shows the write with its grant", async () => {
    await page.goto(`${w.origin}/setup`);
    await page.locator("#events tr").first().waitFor();
    const cells = await page.locator("#events tr").last().locator("td").allTextContents();
    assert.equal(cells[1], "create");
    assert.equal(cells[5], "authorization_code");
    await shot("03-log");
    assert.deepEqual(problems, []);
  });
}
