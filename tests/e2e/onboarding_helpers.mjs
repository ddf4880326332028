// Shared steps of the onboarding e2e tests (setup links, the authorization code grant): what
// a browser does, done with fetch against the worker in workerd, redirects not followed and
// cookies carried by hand.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";

export const ENTRA = "https://portal.azure.com/TokenAuthorize";

/** A PKCE verifier and its S256 challenge (RFC 7636 §4.1-4.2). */
export function pkce() {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  return { verifier, challenge };
}

/** A request as a browser sends it: no redirect followed. */
export async function raw(w, method, path, { headers = {}, body } = {}) {
  const res = await w.mf.dispatchFetch(`${w.origin}${path}`, { method, headers, body, redirect: "manual" });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** `name=value` of a Set-Cookie header of `r` whose name starts with `prefix`. */
export function cookieOf(r, prefix) {
  const all = r.headers.getSetCookie ? r.headers.getSetCookie() : [r.headers.get("set-cookie")];
  const c = all.find((v) => v && v.startsWith(prefix));
  return c ? c.split(";")[0] : null;
}

export const admin = (w, token, method, path, body) => w.request(method, `/admin/api${path}`, { token, body });

/** Creates and opens a setup link of `tenant`: the session cookie. */
export async function openSetupLink(w, token, tenant) {
  const link = await admin(w, token, "POST", `/tenants/${tenant}/setup-links`, { label: "IT admin" });
  assert.equal(link.status, 201, link.text);
  const path = new URL(link.json.url).pathname;
  assert.equal((await raw(w, "GET", path)).status, 200);
  const opened = await raw(w, "POST", path, { headers: { Origin: w.origin } });
  assert.equal(opened.status, 303, opened.text);
  assert.equal(opened.headers.get("location"), "/setup");
  const cookie = cookieOf(opened, "__Host-scim-setup=");
  assert.ok(cookie, "a session cookie");
  return cookie;
}

export function authorizePath(clientId, { state = "st-1", challenge, redirectUri = ENTRA, extra = "" } = {}) {
  const q = new URLSearchParams({ response_type: "code", client_id: clientId, redirect_uri: redirectUri, state });
  if (challenge) {
    q.set("code_challenge", challenge);
    q.set("code_challenge_method", "S256");
  }
  return `/oauth/authorize?${q}${extra}`;
}

/** Approves on the consent page as the session's admin: the redirect's query. */
export async function approve(w, cookie, clientId, opts = {}) {
  const path = authorizePath(clientId, opts);
  const page = await raw(w, "GET", path, { headers: { Cookie: cookie } });
  assert.equal(page.status, 200, page.text);
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1];
  assert.ok(csrf, "the consent form carries a CSRF token");
  const form = new URLSearchParams(path.split("?")[1]);
  form.set("csrf", csrf);
  form.set("decision", opts.decision ?? "approve");
  const r = await raw(w, "POST", "/oauth/authorize", {
    headers: { Cookie: cookie, Origin: w.origin, "Content-Type": "application/x-www-form-urlencoded" },
    body: form.toString(),
  });
  assert.equal(r.status, 303, r.text);
  return new URL(r.headers.get("location"));
}

export const tokenRequest = (w, path, form) =>
  w.request("POST", path, { form: new URLSearchParams(form).toString() });
