// The IT admin's setup page: reads the session's data from /setup/api (same origin, the
// session cookie), renders every server value as text (never as HTML), and sends the CSRF
// token with the one state-changing request.
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = "";

async function api(method, path) {
  const headers = { accept: "application/json" };
  if (method !== "GET") headers["x-csrf-token"] = csrf;
  const r = await fetch(`/setup/api/${path}`, { method, headers, credentials: "same-origin" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(body.message || `HTTP ${r.status}`), { status: r.status });
  return body;
}

function say(text) {
  $("status").textContent = text;
}

async function status() {
  const s = await api("GET", "status");
  $("connected").textContent = s.connected
    ? `Connected: your identity provider last authenticated at ${s.lastSeen}.`
    : "Not yet: no request with a token of this organisation has arrived.";
}

async function events() {
  const page = await api("GET", "events?limit=100");
  const body = $("events");
  body.replaceChildren();
  for (const e of page.events) {
    const tr = document.createElement("tr");
    for (const v of [e.time, e.op, e.resourceType, e.outcome, e.status, e.grant ?? ""]) {
      const td = document.createElement("td");
      td.textContent = String(v ?? "");
      tr.append(td);
    }
    body.append(tr);
  }
  $("no-events").hidden = page.events.length > 0;
}

async function generate() {
  $("generate").disabled = true;
  try {
    const t = await api("POST", "token");
    $("token").textContent = t.token;
    $("token-box").hidden = false;
    say("A new SCIM token was generated. It is shown only now.");
  } catch (e) {
    say(`Could not generate a token: ${e.message}`);
  } finally {
    $("generate").disabled = false;
  }
}

async function main() {
  let s;
  try {
    s = await api("GET", "session");
  } catch (e) {
    $("signed-out").hidden = false;
    say(e.status === 401 ? "No setup session in this browser." : `Error: ${e.message}`);
    return;
  }
  csrf = s.csrf;
  $("tenant-name").textContent = s.name || s.tenant;
  $("scim-url").textContent = s.scimUrl;
  for (const el of document.querySelectorAll(".scim-url")) el.textContent = s.scimUrl;
  $("signed-in").hidden = false;
  $("generate").addEventListener("click", generate);
  $("check").addEventListener("click", () => Promise.all([status(), events()]).catch((e) => say(e.message)));
  await Promise.all([status(), events()]).catch((e) => say(e.message));
}

main();
