// Entra's "Authorize" button end to end in workerd + local D1: the OAuth 2.0 authorization
// code grant (RFC 6749 §4.1) with PKCE (RFC 7636), approved through a setup link's session
// or the vendor's sign-in hand-off, refresh tokens that rotate, every error of §4.1.2.1 and
// §5.2, and an approval for one tenant never yielding a token for another.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { startWorker, USER_SCHEMA } from "./harness.mjs";
import { ENTRA, admin as adminCall, approve, authorizePath, cookieOf, openSetupLink, pkce, raw, tokenRequest } from "./onboarding_helpers.mjs";

const ADMIN = `admin-${randomBytes(18).toString("base64url")}`;
const APPROVER_SECRET = randomBytes(32).toString("base64url");
let w, app;

const admin = (method, path, body) => adminCall(w, ADMIN, method, path, body);
const users = async (tenant, token) => (await w.request("GET", `/t/${tenant}/scim/v2/Users`, { token })).status;

before(async () => {
  w = await startWorker({
    adminToken: ADMIN,
    options: { bindings: { VENDOR_SIGNIN_URL: "https://app.vendor.test/sso", APPROVER_SECRET } },
  });
  for (const id of ["acme", "globex"]) {
    assert.equal((await admin("POST", "/tenants", { id, name: `${id} Corp` })).status, 201);
  }
  const r = await admin("POST", "/oauth-apps", { name: "Contoso HR" });
  assert.equal(r.status, 201, r.text);
  app = r.json;
});
after(async () => {
  await w?.stop();
});

const exchange = (code, verifier, path = "/oauth/token", extra = {}) =>
  tokenRequest(w, path, {
    grant_type: "authorization_code",
    code,
    redirect_uri: ENTRA,
    code_verifier: verifier,
    client_id: app.clientId,
    client_secret: app.clientSecret,
    ...extra,
  });

const refresh = (refresh_token) =>
  tokenRequest(w, "/oauth/token", {
    grant_type: "refresh_token",
    refresh_token,
    client_id: app.clientId,
    client_secret: app.clientSecret,
  });

test("the app carries what a vendor submits to Microsoft: authorization URL, token URL, client id and secret, Entra's redirect URI", () => {
  assert.equal(app.authorizationUrl, `${w.origin}/oauth/authorize`);
  assert.equal(app.tokenUrl, `${w.origin}/oauth/token`);
  assert.match(app.clientId, /^[0-9a-f-]{36}$/);
  assert.match(app.clientSecret, /^scim_as_/);
  assert.deepEqual(app.redirectUris, [ENTRA]);
});

test("setup link → authorize → consent → code → tokens → SCIM → refresh → the old refresh token refused", async () => {
  const cookie = await openSetupLink(w, ADMIN, "acme");
  const { verifier, challenge } = pkce();
  const back = await approve(w, cookie, app.clientId, { challenge, state: "xyz & more" });
  assert.equal(`${back.origin}${back.pathname}`, ENTRA);
  assert.equal(back.searchParams.get("state"), "xyz & more", "state returned untouched");
  const code = back.searchParams.get("code");
  const t = await exchange(code, verifier);
  assert.equal(t.status, 200, t.text);
  assert.equal(t.headers.get("cache-control"), "no-store");
  assert.equal(t.json.token_type, "Bearer");
  assert.equal(t.json.expires_in, 3600);
  assert.equal(await users("acme", t.json.access_token), 200);
  assert.equal(await users("globex", t.json.access_token), 401);
  const created = await w.request("POST", "/t/acme/scim/v2/Users", {
    token: t.json.access_token,
    body: { schemas: [USER_SCHEMA], userName: "ann@acme.test" },
    contentType: "application/scim+json",
  });
  assert.equal(created.status, 201, created.text);
  const log = await admin("GET", "/tenants/acme/events?op=create");
  assert.equal(log.json.events.at(-1).grant, "authorization_code", "the provisioning log names the grant");

  const r1 = await refresh(t.json.refresh_token);
  assert.equal(r1.status, 200, r1.text);
  assert.notEqual(r1.json.refresh_token, t.json.refresh_token);
  assert.equal(await users("acme", r1.json.access_token), 200);
  const reused = await refresh(t.json.refresh_token);
  assert.equal(reused.status, 400);
  assert.equal(reused.json.error, "invalid_grant");
  // Reuse of a rotated refresh token revokes the chain: the newest tokens are dead too.
  assert.equal(await users("acme", r1.json.access_token), 401);
  assert.equal((await refresh(r1.json.refresh_token)).json.error, "invalid_grant");

  // Secrets are stored only as hashes.
  const stored = JSON.stringify(await w.db.prepare("SELECT * FROM oauth_refresh_tokens").all());
  assert.ok(!stored.includes(t.json.refresh_token) && !stored.includes(r1.json.refresh_token));
  assert.equal(await w.count("SELECT count(*) FROM oauth_codes WHERE hash = ?", code), 0);
});

test("a code is single-use: a second redemption is invalid_grant and revokes what the first got", async () => {
  const cookie = await openSetupLink(w, ADMIN, "acme");
  const { verifier, challenge } = pkce();
  const code = (await approve(w, cookie, app.clientId, { challenge })).searchParams.get("code");
  const first = await exchange(code, verifier);
  assert.equal(first.status, 200);
  const second = await exchange(code, verifier);
  assert.deepEqual([second.status, second.json.error], [400, "invalid_grant"]);
  assert.equal(await users("acme", first.json.access_token), 401);
});

test("an approval for tenant A never yields a token for tenant B", async () => {
  const cookie = await openSetupLink(w, ADMIN, "acme");
  const { verifier, challenge } = pkce();
  // A tenant parameter from the client changes nothing: the session decides.
  const code = (await approve(w, cookie, app.clientId, { challenge, extra: "&tenant=globex" })).searchParams.get("code");
  const atB = await exchange(code, verifier, "/t/globex/oauth/token");
  assert.deepEqual([atB.status, atB.json.error], [400, "invalid_grant"]);
  const atA = await exchange(code, verifier, "/t/acme/oauth/token");
  assert.equal(atA.status, 200, atA.text);
  assert.equal(await users("globex", atA.json.access_token), 401);
  assert.equal(await users("acme", atA.json.access_token), 200);
  const row = await w.db.prepare("SELECT tenant FROM credentials WHERE kind = 'access' ORDER BY created DESC LIMIT 1").first();
  assert.equal(row.tenant, "acme");
});

test("authorization errors: a page for an unknown client or unregistered redirect URI, a redirect with error and state otherwise", async () => {
  const cookie = await openSetupLink(w, ADMIN, "acme");
  const get = (path) => raw(w, "GET", path, { headers: { Cookie: cookie } });
  // One registered redirect URI (the default) may be left out (RFC 6749 §3.1.2.3); with two it may not.
  assert.equal((await get(`/oauth/authorize?response_type=code&client_id=${app.clientId}`)).status, 200);
  const two = (await admin("POST", "/oauth-apps", { name: "Two URIs", redirectUris: [ENTRA, "https://app.example/cb"] })).json;
  for (const path of [
    authorizePath("0b6f1c52-9d0e-4c43-8f4f-8d1c1e2a7b10"),
    authorizePath(app.clientId, { redirectUri: "https://evil.test/TokenAuthorize" }),
    authorizePath(app.clientId, { redirectUri: `${ENTRA}/` }),
    `/oauth/authorize?response_type=code&client_id=${two.clientId}`,
  ]) {
    const r = await get(path);
    assert.equal(r.status, 400, path);
    assert.equal(r.headers.get("location"), null, `never redirected: ${path}`);
    assert.match(r.headers.get("content-type"), /^text\/html/);
  }
  const cases = [
    [authorizePath(app.clientId).replace("response_type=code", "response_type=token"), "unsupported_response_type"],
    [authorizePath(app.clientId).replace("response_type=code&", ""), "invalid_request"],
    [authorizePath(app.clientId, { extra: "&state=again" }), "invalid_request"],
    [authorizePath(app.clientId, { extra: "&code_challenge=tooshort&code_challenge_method=S256" }), "invalid_request"],
    [authorizePath(app.clientId, { extra: `&code_challenge=${"a".repeat(43)}&code_challenge_method=S384` }), "invalid_request"],
  ];
  for (const [path, error] of cases) {
    const r = await get(path);
    assert.equal(r.status, 302, path);
    const to = new URL(r.headers.get("location"));
    assert.equal(`${to.origin}${to.pathname}`, ENTRA);
    assert.equal(to.searchParams.get("error"), error, path);
    assert.ok(to.searchParams.get("state"), "state comes back");
  }
  // Denying: access_denied with the state.
  const denied = await approve(w, cookie, app.clientId, { decision: "deny", state: "s-9" });
  assert.equal(denied.searchParams.get("error"), "access_denied");
  assert.equal(denied.searchParams.get("state"), "s-9");
  // The consent POST without its CSRF token, or from another site, is refused.
  const form = new URLSearchParams({ response_type: "code", client_id: app.clientId, redirect_uri: ENTRA, decision: "approve" });
  const headers = { Cookie: cookie, Origin: w.origin, "Content-Type": "application/x-www-form-urlencoded" };
  assert.equal((await raw(w, "POST", "/oauth/authorize", { headers, body: form.toString() })).status, 403);
  const page = await get(authorizePath(app.clientId));
  form.set("csrf", /name="csrf" value="([^"]+)"/.exec(page.text)[1]);
  const cross = await raw(w, "POST", "/oauth/authorize", { headers: { ...headers, Origin: "https://evil.test" }, body: form.toString() });
  assert.equal(cross.status, 403);
  assert.equal(cross.headers.get("location"), null);
  // The consent page is framed by nothing and posts only here and to the redirect URI.
  const csp = page.headers.get("content-security-policy");
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, new RegExp(`form-action 'self' ${ENTRA.replace(/[./]/g, "\\$&")};`));
});

test("token endpoint errors (RFC 6749 §5.2)", async () => {
  const cookie = await openSetupLink(w, ADMIN, "acme");
  const { verifier, challenge } = pkce();
  const code = (await approve(w, cookie, app.clientId, { challenge })).searchParams.get("code");
  const other = (await admin("POST", "/oauth-apps", { name: "Other" })).json;
  const cases = [
    [{ client_secret: `scim_as_${"x".repeat(43)}` }, 401, "invalid_client"],
    [{ client_id: other.clientId, client_secret: other.clientSecret }, 400, "invalid_grant"],
    [{ code_verifier: pkce().verifier }, 400, "invalid_grant"],
    [{ redirect_uri: "https://aad.portal.azure.com/TokenAuthorize" }, 400, "invalid_grant"],
    [{ code: `scim_ac_${"y".repeat(43)}` }, 400, "invalid_grant"],
    [{ code: "" }, 400, "invalid_request"],
    [{ grant_type: "password" }, 400, "unsupported_grant_type"],
    [{ grant_type: "client_credentials" }, 400, "unsupported_grant_type"],
  ];
  for (const [extra, status, error] of cases) {
    const r = await exchange(code, verifier, "/oauth/token", extra);
    assert.deepEqual([r.status, r.json?.error], [status, error], JSON.stringify(extra));
    assert.equal(r.headers.get("cache-control"), "no-store");
  }
  assert.equal((await exchange(code, verifier)).status, 200, "none of the failures spent the code");
  const wrongClient = await raw(w, "POST", "/oauth/token", {
    headers: { "Content-Type": "application/x-www-form-urlencoded", Authorization: "Basic bm9ib2R5Om5vdGhpbmc=" },
    body: "grant_type=refresh_token&refresh_token=x",
  });
  assert.equal(wrongClient.status, 401);
  assert.match(wrongClient.headers.get("www-authenticate"), /^Basic/);
  // Revoking the app ends its grants' tokens and its token requests.
  const gone = (await admin("POST", "/oauth-apps", { name: "Short-lived" })).json;
  assert.equal((await admin("DELETE", `/oauth-apps/${gone.clientId}`)).json.status, "revoked");
  const r = await raw(w, "GET", authorizePath(gone.clientId), { headers: { Cookie: cookie } });
  assert.equal(r.status, 400);
});

test("without a setup link or vendor configuration, the endpoint explains instead of guessing", async () => {
  const plain = await startWorker({ adminToken: ADMIN });
  try {
    const a = (await adminCall(plain, ADMIN, "POST", "/oauth-apps", { name: "X" })).json;
    const r = await raw(plain, "GET", authorizePath(a.clientId));
    assert.equal(r.status, 403);
    assert.match(r.text, /setup link/);
    assert.doesNotMatch(r.text, /<form/);
  } finally {
    await plain.stop();
  }
});

/** An assertion as the vendor's sign-in signs it. */
function assertion(claims) {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const sig = createHmac("sha256", APPROVER_SECRET).update(payload).digest("base64url");
  return `${payload}.${sig}`;
}

test("the vendor's sign-in hand-off: a signed, short-lived assertion for this audience and browser approves for its tenant", async () => {
  const { verifier, challenge } = pkce();
  const start = await raw(w, "GET", authorizePath(app.clientId, { challenge, state: "v1" }));
  assert.equal(start.status, 302);
  const to = new URL(start.headers.get("location"));
  assert.equal(`${to.origin}${to.pathname}`, "https://app.vendor.test/sso");
  const returnTo = to.searchParams.get("return_to");
  assert.equal(returnTo, `${w.origin}/oauth/vendor-return`);
  const nonce = to.searchParams.get("nonce");
  const handoff = cookieOf(start, "__Host-scim-handoff=");
  const exp = Math.floor(Date.now() / 1000) + 120;
  const good = { tenant: "globex", sub: "it@globex.test", aud: returnTo, exp, nonce };
  const back = (a, cookie = handoff) =>
    raw(w, "GET", `/oauth/vendor-return?assertion=${encodeURIComponent(a)}`, { headers: cookie ? { Cookie: cookie } : {} });
  for (const [bad, why] of [
    [assertion({ ...good, aud: "https://elsewhere.test/oauth/vendor-return" }), "audience"],
    [assertion({ ...good, exp: exp - 600 }), "expired"],
    [assertion({ ...good, nonce: "other" }), "nonce"],
    [`${assertion(good).split(".")[0]}.${"A".repeat(43)}`, "signature"],
  ]) {
    assert.equal((await back(bad)).status, 403, why);
  }
  assert.equal((await back(assertion(good), null)).status, 403, "another browser (no nonce cookie)");
  const ok = await back(assertion(good));
  assert.equal(ok.status, 303, ok.text);
  const resume = ok.headers.get("location");
  assert.ok(resume.startsWith("/oauth/authorize?"));
  const session = cookieOf(ok, "__Host-scim-setup=");
  const consent = await raw(w, "GET", resume, { headers: { Cookie: session } });
  assert.equal(consent.status, 200);
  assert.match(consent.text, /globex Corp/);
  const code = (await approve(w, session, app.clientId, { challenge, state: "v1" })).searchParams.get("code");
  const t = await exchange(code, verifier);
  assert.equal(t.status, 200, t.text);
  assert.equal(await users("globex", t.json.access_token), 200);
  assert.equal(await users("acme", t.json.access_token), 401);
});
