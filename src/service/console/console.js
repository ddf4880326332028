// scim-edge admin console. Plain JS, no dependencies. The admin token lives in this tab's
// sessionStorage and goes to /admin/api as a bearer token; it never appears in a URL. Every
// value from the server is put into the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "scim-edge.adminToken";
const PAGE = 200; // events per request
const SERIES = [["create", "creates"], ["update", "updates"], ["deactivate", "deactivations"], ["delete", "deletes"], ["failure", "failures"]];
const state = { tenant: null, view: null, tokens: [], open: null, dir: { rt: "Users", start: 1 }, log: { events: [], next: null, query: "" } };

/** Creates an element; `text` sets its text, `on*` adds listeners, other props are attributes. */
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
}

function say(message, kind = "info") {
  const s = $("status");
  s.textContent = message;
  s.className = kind;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the admin API; answers the parsed JSON body, throws ApiError otherwise. */
async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`/admin/api${path}`, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (res.status === 401) {
    signOut("The admin token was not accepted. Sign in again.");
    throw new ApiError(401, "not signed in");
  }
  if (!res.ok) throw new ApiError(res.status, data?.message ?? data?.detail ?? `HTTP ${res.status}`);
  return data;
}

/** Runs an action, reporting failures in the status region. */
async function attempt(action) {
  try {
    return await action();
  } catch (e) {
    if (e.status !== 401) say(`Error: ${e.message}`, "error");
    return undefined;
  }
}

const enc = encodeURIComponent;
const tenantPath = () => `/tenants/${enc(state.tenant.id)}`;
const when = (ts) => (ts ? h("time", { datetime: ts, title: ts, text: new Date(ts).toLocaleString() }) : "—");
function scimUrl(t) {
  return t.id === "default" ? `${location.origin}/scim/v2` : t.scimUrl;
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    say(`${what} copied to the clipboard.`);
  } catch {
    say(`Could not copy automatically: select the ${what} and copy it.`, "error");
  }
}

// ---------------------------------------------------------------- sign-in and navigation

function signOut(message) {
  sessionStorage.removeItem(KEY);
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("admin-token").value = "";
  $("admin-token").focus();
  if (message) say(message, "error");
}

async function start() {
  if (!sessionStorage.getItem(KEY)) return signOut();
  const data = await attempt(() => api("/tenants"));
  if (!data) return;
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  renderTenants(data.tenants);
  await route();
}

function renderTenants(tenants) {
  $("tenant-list").replaceChildren(
    ...tenants.map((t) =>
      h("li", {}, h("a", { href: `#/${t.id}/overview`, "aria-current": state.tenant?.id === t.id ? "true" : null, text: t.id }),
        t.name && t.name !== t.id ? h("span", { class: "hint", text: ` ${t.name}` }) : null)),
  );
}

const VIEWS = ["overview", "tokens", "users", "groups", "log", "webhooks", "deleted", "tolerances", "schemas"];

async function route() {
  if ($("app").hidden) return;
  const m = /^#\/([a-z0-9-]{1,63})(?:\/([a-z]+))?$/.exec(location.hash);
  if (!m) {
    state.tenant = null;
    $("views").hidden = true;
    $("tenant-h").textContent = "Choose a tenant";
    for (const v of document.querySelectorAll(".view")) v.hidden = true;
    return;
  }
  const [, id, viewName] = m;
  const view = VIEWS.includes(viewName) ? viewName : "overview";
  if (state.tenant?.id !== id) {
    const t = await attempt(() => api(`/tenants/${enc(id)}`));
    if (!t) return;
    state.tenant = t;
    state.tokens = [];
    state.dir.start = 1;
    $("dir-filter").value = "";
    for (const a of document.querySelectorAll("#tenant-list a")) a.setAttribute("aria-current", a.textContent === id ? "true" : "false");
  }
  state.view = view;
  $("tenant-h").textContent = `Tenant ${state.tenant.id}${state.tenant.name !== state.tenant.id ? ` (${state.tenant.name})` : ""}`;
  $("views").hidden = false;
  for (const a of document.querySelectorAll("a[data-view]")) {
    a.href = `#/${id}/${a.dataset.view}`;
    if (a.closest("#views")) a.setAttribute("aria-current", a.dataset.view === view ? "page" : "false");
  }
  const panel = view === "users" || view === "groups" ? "directory" : view;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${panel}`;
  await ({ overview: showOverview, tokens: showTokens, users: showDirectory, groups: showDirectory, log: showLog, webhooks: showWebhooks, deleted: showDeleted, tolerances: showTolerances, schemas: showSchemas })[view]();
}

// ---------------------------------------------------------------- tenants and settings

function showOverview() {
  const t = state.tenant;
  $("tenant-url").value = scimUrl(t);
  $("token-endpoint").value = t.tokenEndpoint;
  $("strict-patch").checked = t.strictPatch;
  $("extensions-policy").value = t.extensions ?? "keep";
  const limit = (n) => (n === null || n === undefined ? "" : String(n));
  $("quota-resources").value = limit(t.quota?.resources);
  $("quota-bytes").value = limit(t.quota?.bytes);
  $("deletion-policy").value = t.deletion?.policy ?? "hard";
  $("deletion-days").value = limit(t.deletion?.days);
  $("restore-on-create").checked = Boolean(t.deletion?.restoreOnCreate);
  const of = (used, max) => (max === null || max === undefined ? `${used} (no limit)` : `${used} of ${max}`);
  $("usage").textContent = t.usage
    ? `Stored: ${of(t.usage.resources, t.quota?.resources)} resources, ${of(t.usage.bytes, t.quota?.bytes)} bytes of resource data.`
    : "";
}

/** A limit field as the admin API takes it: a whole number, or null for no limit. */
function limitOf(id) {
  const raw = $(id).value.trim();
  return raw === "" ? null : Number(raw);
}

async function createTenant(e) {
  e.preventDefault();
  const id = $("tenant-id").value.trim();
  const body = { id, strictPatch: $("tenant-strict").checked };
  if ($("tenant-name").value.trim()) body.name = $("tenant-name").value.trim();
  const t = await attempt(() => api("/tenants", { method: "POST", body }));
  if (!t) return;
  e.target.reset();
  say(`Tenant ${t.id} created.`);
  const data = await attempt(() => api("/tenants"));
  if (data) renderTenants(data.tenants);
  location.hash = `#/${t.id}/overview`;
}

async function saveSettings(e) {
  e.preventDefault();
  const quota = { resources: limitOf("quota-resources"), bytes: limitOf("quota-bytes") };
  const deletion = { policy: $("deletion-policy").value, restoreOnCreate: $("restore-on-create").checked };
  if (deletion.policy === "soft" && $("deletion-days").value.trim() !== "") deletion.days = Number($("deletion-days").value);
  const saved = await attempt(() => api(tenantPath(), { method: "PATCH", body: { strictPatch: $("strict-patch").checked, extensions: $("extensions-policy").value, quota, deletion } }));
  if (!saved) return;
  // The PATCH answer has no usage; read the tenant again for it.
  const t = (await attempt(() => api(tenantPath()))) ?? saved;
  state.tenant = t;
  showOverview();
  say(`Settings saved for ${t.id}: strict PATCH ${t.strictPatch ? "on" : "off"}.`);
}

// ---------------------------------------------------------------- tokens

async function showTokens() {
  const data = await attempt(() => api(`${tenantPath()}/tokens`));
  if (!data) return;
  state.tokens = data.tokens;
  $("token-rows").replaceChildren(
    ...(data.tokens.length ? data.tokens.map(tokenRow) : [h("tr", {}, h("td", { colspan: 7, text: "No tokens yet." }))]),
  );
}

function tokenRow(c) {
  const name = c.label || c.id;
  const actions = h("div", { class: "actions" });
  if (c.status === "active" && !c.replacedBy) {
    actions.append(h("button", { type: "button", "aria-label": `Rotate ${name}`, onclick: () => rotateToken(c), text: "Rotate" }));
  }
  if (!c.revoked) {
    actions.append(h("button", { type: "button", class: "danger", "aria-label": `Revoke ${name}`, onclick: () => revokeToken(c), text: "Revoke" }));
  }
  return h("tr", {},
    h("th", { scope: "row" }, c.label || h("span", { class: "hint", text: c.id })),
    h("td", { text: c.type === "oauth_client" ? "OAuth client" : "Bearer" }),
    h("td", {}, when(c.created)), h("td", {}, c.expires ? when(c.expires) : "never"),
    h("td", {}, c.lastUsed ? when(c.lastUsed) : "never"),
    h("td", {}, h("span", { class: `badge ${c.status}`, text: c.replacedBy && c.status === "active" ? "active (rotated)" : c.status })),
    h("td", {}, actions));
}

async function issueToken(e) {
  e.preventDefault();
  const body = { type: $("token-type").value, label: $("token-label").value.trim() };
  const days = Number($("token-days").value);
  if (days > 0) body.expiresIn = Math.round(days * 86400);
  const issued = await attempt(() => api(`${tenantPath()}/tokens`, { method: "POST", body }));
  if (!issued) return;
  e.target.reset();
  showSecret(issued);
  await showTokens();
}

/** A setup link for the customer's IT admin (src/service/setup.rs), shown once. */
async function createSetupLink() {
  const link = await attempt(() => api(`${tenantPath()}/setup-links`, { method: "POST", body: {} }));
  if (link) showSecret(link);
}

async function rotateToken(c) {
  if (!confirm(`Rotate "${c.label || c.id}"? A new secret is issued; the current one keeps working for 24 hours.`)) return;
  const issued = await attempt(() => api(`${tenantPath()}/tokens/${enc(c.id)}/rotate`, { method: "POST", body: { label: c.label } }));
  if (!issued) return;
  showSecret(issued);
  await showTokens();
}

async function revokeToken(c) {
  if (!confirm(`Revoke "${c.label || c.id}"? Requests with it are refused from now on.`)) return;
  const r = await attempt(() => api(`${tenantPath()}/tokens/${enc(c.id)}`, { method: "DELETE" }));
  if (!r) return;
  say(`Token "${c.label || c.id}" revoked.`);
  await showTokens();
}

/** The one place a secret is ever shown: a modal dialog, cleared when it closes. */
function showSecret(issued) {
  const webhook = typeof issued.secret === "string";
  const link = !webhook && typeof issued.url === "string"; // a setup link (a webhook has a url too)
  const fields = link
    ? [["Setup link", issued.url]]
    : webhook
      ? [["Signing secret", issued.secret]]
      : issued.type === "oauth_client"
        ? [["Client id", issued.clientId], ["Client secret", issued.clientSecret], ["Token endpoint", issued.tokenEndpoint]]
        : [["Secret token", issued.token]];
  if (!webhook && !link) fields.push(["Tenant URL", scimUrl({ id: issued.tenant, scimUrl: issued.scimUrl })]);
  $("secret-note").textContent = link
    ? "It is shown only this once and opens once. Send it to the customer's IT admin, then close this dialog."
    : webhook
      ? "It is shown only this once. Give it to the receiving app, which verifies each event's signature with it (Standard Webhooks), then close this dialog."
      : "It is shown only this once: only its hash is stored. Paste it into the identity provider, then close this dialog.";
  $("secret-fields").replaceChildren(...fields.map(([label, value], i) => {
    const input = h("input", { id: `secret-${i}`, readonly: true, value, spellcheck: "false" });
    return h("div", {}, h("label", { for: input.id, text: label }),
      h("div", { class: "copy-row" }, input, h("button", { type: "button", onclick: () => copy(value, label), text: `Copy ${label[0].toLowerCase()}${label.slice(1)}` })));
  }));
  $("secret-dialog").showModal();
  $("secret-0").select();
  say(link ? "Setup link created. Copy it now: it is shown only once, and opens once."
    : webhook ? "Signing secret generated. Copy it now: it is shown only once." : "Token generated. Copy the secret now: it is shown only once.");
}

function closeSecret() {
  $("secret-fields").replaceChildren();
}

// ---------------------------------------------------------------- webhooks

const hookPath = (id, tail = "") => `${tenantPath()}/webhooks/${enc(id)}${tail}`;

async function showWebhooks() {
  const data = await attempt(() => api(`${tenantPath()}/webhooks`));
  if (!data) return;
  $("webhook-rows").replaceChildren(
    ...(data.webhooks.length ? data.webhooks.map(webhookRow) : [h("tr", {}, h("td", { colspan: 5, text: "No endpoints yet." }))]),
  );
}

function webhookRow(w) {
  const name = w.url ?? `poll stream ${w.id}`;
  const act = (text, label, onclick, cls) => h("button", { type: "button", class: cls, "aria-label": `${label} ${name}`, onclick, text });
  const status = w.enabled ? (w.failingSince ? "failing" : "active") : "disabled";
  return h("tr", {},
    h("th", { scope: "row", text: w.url ?? w.pollUrl }),
    h("td", { text: w.events.join(", ") }),
    h("td", {}, h("span", { class: `badge ${status}`, text: status }),
      w.disabledReason ? h("span", { class: "hint", text: ` ${w.disabledReason}` }) : null),
    h("td", {}, when(w.created)),
    h("td", {}, h("div", { class: "actions" },
      act("Deliveries", "Deliveries of", () => showDeliveries(w)),
      act(w.enabled ? "Disable" : "Enable", w.enabled ? "Disable" : "Enable", () => setWebhook(w, { enabled: !w.enabled })),
      act("Rotate secret", "Rotate the secret of", () => rotateWebhook(w)),
      act("Delete", "Delete", () => deleteWebhook(w), "danger"))));
}

async function addWebhook(e) {
  e.preventDefault();
  const events = $("webhook-events").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { url: $("webhook-url").value.trim(), events: events.length ? events : ["*"] };
  const made = await attempt(() => api(`${tenantPath()}/webhooks`, { method: "POST", body }));
  if (!made) return;
  e.target.reset();
  showSecret(made);
  await showWebhooks();
}

async function setWebhook(w, body) {
  const r = await attempt(() => api(hookPath(w.id), { method: "PATCH", body }));
  if (!r) return;
  say(`Endpoint ${w.url ?? w.pollUrl} ${r.enabled ? "enabled" : "disabled"}.`);
  await showWebhooks();
}

async function rotateWebhook(w) {
  if (!confirm(`Rotate the signing secret of ${w.url ?? w.pollUrl}? Events are signed with both secrets for 24 hours.`)) return;
  const r = await attempt(() => api(hookPath(w.id, "/rotate"), { method: "POST", body: {} }));
  if (r) showSecret(r);
}

async function deleteWebhook(w) {
  if (!confirm(`Delete the endpoint ${w.url ?? w.pollUrl} and its delivery log?`)) return;
  if (!(await attempt(() => api(hookPath(w.id), { method: "DELETE" })))) return;
  say(`Endpoint ${w.url ?? w.pollUrl} deleted.`);
  $("deliveries").hidden = true;
  await showWebhooks();
}

async function showDeliveries(w) {
  const data = await attempt(() => api(hookPath(w.id, "/deliveries")));
  if (!data) return;
  const redeliver = async (d) => {
    if (await attempt(() => api(hookPath(w.id, "/redeliver"), { method: "POST", body: { seq: d.seq } }))) {
      say(`Event ${d.eventId} queued for redelivery.`);
    }
  };
  $("delivery-rows").replaceChildren(...(data.deliveries.length
    ? data.deliveries.map((d) => h("tr", {},
      h("th", { scope: "row", text: d.eventId }),
      h("td", {}, h("span", { class: `badge ${d.status}`, text: d.status })),
      h("td", { text: String(d.attempts) }),
      h("td", { text: d.lastStatus ?? "—" }),
      h("td", { text: d.latencyMs === null || d.latencyMs === undefined ? "—" : `${d.latencyMs} ms` }),
      h("td", { text: d.lastError ?? "" }),
      h("td", {}, when(d.lastAttempt)),
      h("td", {}, h("button", { type: "button", "aria-label": `Redeliver ${d.eventId}`, onclick: () => redeliver(d), text: "Redeliver" }))))
    : [h("tr", {}, h("td", { colspan: 8, text: "Nothing delivered yet." }))]));
  $("deliveries-h").textContent = `Deliveries to ${w.url ?? w.pollUrl}`;
  $("deliveries").hidden = false;
  $("deliveries-h").focus();
}

// ---------------------------------------------------------------- users and groups

async function showDirectory() {
  const rt = state.view === "groups" ? "Groups" : "Users";
  if (state.dir.rt !== rt) {
    state.dir = { rt, start: 1 };
    $("dir-filter").value = "";
  }
  $("dir-filter").placeholder = rt === "Users" ? 'userName sw "a"' : 'displayName sw "a"';
  $("detail").hidden = true;
  await loadDirectory();
  const open = state.open; // a resource picked in the provisioning log
  state.open = null;
  if (open) await openDetail(...open);
}

async function loadDirectory() {
  const { rt, start } = state.dir;
  const count = Number($("dir-count").value);
  const q = new URLSearchParams({ startIndex: start, count, excludedAttributes: rt === "Users" ? "groups" : "members" });
  const filter = $("dir-filter").value.trim();
  if (filter) q.set("filter", filter);
  const data = await attempt(() => api(`${tenantPath()}/${rt}?${q}`));
  if (!data) return;
  const items = data.Resources ?? [];
  const cols = rt === "Users" ? ["userName", "Name", "Active", "External id", "Modified"] : ["Display name", "External id", "Modified"];
  $("dir-head").replaceChildren(...cols.map((c) => h("th", { scope: "col", text: c })));
  $("dir-rows").replaceChildren(...(items.length ? items.map((r) => dirRow(rt, r)) : [h("tr", {}, h("td", { colspan: cols.length, text: filter ? "Nothing matches this filter." : `No ${rt.toLowerCase()} yet.` }))]));
  const last = start + items.length - 1;
  $("dir-caption").textContent = items.length ? `${rt} ${start}–${last} of ${data.totalResults}` : `${rt}: ${data.totalResults} in all`;
  $("dir-prev").disabled = start <= 1;
  $("dir-next").disabled = last >= data.totalResults;
  say(`${data.totalResults} ${data.totalResults === 1 ? rt.toLowerCase().slice(0, -1) : rt.toLowerCase()} found.`);
}

function dirRow(rt, r) {
  const title = rt === "Users" ? r.userName : r.displayName;
  const open = h("button", { type: "button", class: "link", onclick: () => openDetail(rt, r.id), text: title ?? r.id });
  const modified = h("td", {}, when(r.meta?.lastModified));
  if (rt === "Groups") return h("tr", {}, h("th", { scope: "row" }, open), h("td", { text: r.externalId ?? "" }), modified);
  const name = r.name?.formatted ?? ([r.name?.givenName, r.name?.familyName].filter(Boolean).join(" ") || r.displayName || "");
  return h("tr", {}, h("th", { scope: "row" }, open), h("td", { text: name }),
    h("td", { text: r.active === false ? "no" : "yes" }), h("td", { text: r.externalId ?? "" }), modified);
}

async function openDetail(rt, id) {
  const r = await attempt(() => api(`${tenantPath()}/${rt}/${enc(id)}`));
  if (!r) return;
  const user = rt === "Users";
  $("detail-h").textContent = `${user ? "User" : "Group"} ${user ? r.userName : r.displayName}`;
  $("detail-members-h").textContent = user ? "Member of" : "Members";
  const links = (user ? r.groups : r.members) ?? [];
  $("detail-members").replaceChildren(...(links.length
    ? links.map((m) => {
      const target = user || m.type === "Group" ? "Groups" : "Users";
      return h("li", {}, h("button", { type: "button", class: "link", onclick: () => openDetail(target, m.value), text: m.display ?? m.value }),
        h("span", { class: "hint", text: ` ${target === "Groups" ? "group" : "user"} ${m.value}` }));
    })
    : [h("li", { text: user ? "No groups." : "No members." })]));
  $("detail-json").textContent = JSON.stringify(r, null, 2);
  $("detail").hidden = false;
  $("detail-h").focus();
}

function page(delta) {
  const count = Number($("dir-count").value);
  state.dir.start = Math.max(1, state.dir.start + delta * count);
  loadDirectory();
}

// ---------------------------------------------------------------- provisioning log

function logQuery() {
  const q = new URLSearchParams();
  for (const [key, id] of [["op", "log-op"], ["outcome", "log-outcome"], ["type", "log-type"], ["resource", "log-resource"]]) {
    const v = $(id).value.trim();
    if (v) q.set(key, v);
  }
  for (const [key, id] of [["from", "log-from"], ["to", "log-to"]]) {
    const v = $(id).value;
    if (v) q.set(key, new Date(v).toISOString());
  }
  return q;
}

async function fetchEvents(q) {
  q.set("limit", PAGE);
  try {
    return await api(`${tenantPath()}/events?${q}`);
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

async function showLog() {
  if (!state.tokens.length) await attempt(async () => { state.tokens = (await api(`${tenantPath()}/tokens`)).tokens; });
  const loaded = await attempt(async () => {
    const q = logQuery();
    const events = [];
    let next = null;
    for (let i = 0; i < 5; i++) { // up to 1000 events; newer ones with "Check for new events"
      if (next !== null) q.set("since", next);
      const data = await fetchEvents(q);
      if (!data) return null;
      events.push(...data.events);
      next = data.nextSince ?? next;
      if (data.events.length < PAGE) break;
    }
    state.log = { events, next, query: logQuery().toString() };
    return true;
  });
  if (loaded === undefined) return;
  $("log-missing").hidden = loaded !== null;
  $("log-body").hidden = loaded === null;
  if (loaded === null) return say("No provisioning log available.");
  renderEvents();
  say(`${state.log.events.length} events loaded.`);
  const summary = await attempt(async () => {
    try { return await api(`${tenantPath()}/events/summary?days=30`); } catch (e) { if (e.status === 404) return { days: [] }; throw e; }
  });
  if (summary) renderChart(summary.days, 30);
}

async function pollEvents() {
  const q = new URLSearchParams(state.log.query);
  if (state.log.next !== null) q.set("since", state.log.next);
  const data = await attempt(() => fetchEvents(q));
  if (!data) return;
  state.log.events.push(...data.events);
  state.log.next = data.nextSince ?? state.log.next;
  renderEvents();
  say(data.events.length ? `${data.events.length} new events.` : "No new events.");
}

function credentialName(id) {
  const c = state.tokens.find((t) => t.id === id);
  return c ? c.label || c.id : id ?? "—";
}

function renderEvents() {
  const rows = [...state.log.events].reverse().map((ev) => {
    const rt = ev.resourceType === "Group" ? "Groups" : "Users";
    const resource = ev.resourceId
      ? h("button", { type: "button", class: "link", onclick: () => { state.open = [rt, ev.resourceId]; location.hash = `#/${state.tenant.id}/${rt.toLowerCase()}`; }, text: `${ev.resourceType} ${ev.resourceId}` })
      : ev.resourceType ?? "—";
    return h("tr", { class: ev.outcome === "failure" ? "failed" : null },
      h("td", {}, when(ev.time)),
      h("td", {}, ev.op, ev.deactivated ? h("span", { class: "badge revoked", text: "deactivated" }) : null,
        ev.lifecycle ? h("span", { class: "badge", text: { soft: "tombstone kept", restore: "restored", purge: "purged" }[ev.lifecycle] ?? ev.lifecycle }) : null),
      h("td", {}, resource),
      h("td", { text: (ev.attributes ?? []).join(", ") }),
      h("td", {}, h("span", { class: `badge ${ev.outcome === "failure" ? "revoked" : "active"}`, text: `${ev.outcome} ${ev.status ?? ""}` }),
        ev.detail ? h("div", { class: "hint", text: ev.detail }) : null),
      h("td", { text: credentialName(ev.credential) }),
      h("td", {}, h("code", { text: ev.requestId ?? "" })));
  });
  $("log-rows").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 7, text: "No events match." }))]));
  $("log-caption").textContent = `Events, newest first (${rows.length})`;
}

/** A stacked bar per day as inline SVG, for the `days` days ending today (UTC). */
function renderChart(list, days) {
  const byDay = new Map(list.map((d) => [d.day, d]));
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  const all = [];
  for (let i = days - 1; i >= 0; i--) {
    const day = new Date(today - i * 86400000).toISOString().slice(0, 10);
    all.push(byDay.get(day) ?? { day });
  }
  const total = (d) => SERIES.reduce((n, [k]) => n + (d[k] ?? 0), 0);
  const max = Math.max(1, ...all.map(total));
  const NS = "http://www.w3.org/2000/svg";
  const s = (tag, attrs, text) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  };
  const bw = 16, gap = 6, H = 120, top = 8, left = 34;
  const width = left + all.length * (bw + gap);
  const sums = SERIES.map(([k, label]) => `${all.reduce((n, d) => n + (d[k] ?? 0), 0)} ${label}`).join(", ");
  const svg = s("svg", { viewBox: `0 0 ${width} ${H + top + 22}`, role: "img", "aria-labelledby": "chart-title", class: "chart" });
  svg.append(s("title", { id: "chart-title" }, `Last ${days} days: ${sums}`));
  svg.append(s("line", { x1: left - 2, y1: top + H, x2: width, y2: top + H, class: "axis-line" }));
  svg.append(s("text", { x: left - 6, y: top + 8, "text-anchor": "end", class: "axis" }, String(max)));
  svg.append(s("text", { x: left - 6, y: top + H, "text-anchor": "end", class: "axis" }, "0"));
  all.forEach((d, i) => {
    const x = left + i * (bw + gap);
    const g = s("g", {});
    g.append(s("title", {}, `${d.day}: ${SERIES.map(([k, label]) => `${d[k] ?? 0} ${label}`).join(", ")}`));
    let y = top + H;
    for (const [k] of SERIES) {
      const hgt = ((d[k] ?? 0) / max) * H;
      if (!hgt) continue;
      y -= hgt;
      g.append(s("rect", { x, y: y.toFixed(1), width: bw, height: hgt.toFixed(1), class: `bar-${k}` }));
    }
    svg.append(g);
    if ((all.length - 1 - i) % 7 === 0) svg.append(s("text", { x: x + bw / 2, y: top + H + 16, "text-anchor": "middle", class: "axis" }, d.day.slice(5)));
  });
  $("chart").replaceChildren(svg);
  $("chart-rows").replaceChildren(...all.filter((d) => total(d) > 0).map((d) =>
    h("tr", {}, h("th", { scope: "row", text: d.day }), ...SERIES.map(([k]) => h("td", { text: String(d[k] ?? 0) })))));
}

// ---------------------------------------------------------------- tombstones (soft deletion)

async function showDeleted() {
  const data = await attempt(() => api(`${tenantPath()}/tombstones`));
  if (!data) return;
  $("deleted-rows").replaceChildren(...(data.tombstones.length
    ? data.tombstones.map((t) => h("tr", {},
        h("td", { text: t.resourceType }),
        h("th", { scope: "row", text: t.userName ?? t.displayName ?? t.id }),
        h("td", { text: t.externalId ?? "" }),
        h("td", {}, when(t.deleted)),
        h("td", {}, h("button", { type: "button", text: "Restore", onclick: () => restoreTombstone(t) }))))
    : [h("tr", {}, h("td", { colspan: 5, text: "Nothing deleted is kept for this tenant." }))]));
}

async function restoreTombstone(t) {
  const back = await attempt(() => api(`${tenantPath()}/tombstones/${enc(t.id)}/restore`, { method: "POST" }));
  if (!back) return;
  say(`${t.resourceType} ${t.userName ?? t.displayName ?? t.id} restored under its id ${t.id}.`);
  await showDeleted();
}

// ---------------------------------------------------------------- tolerances

async function showTolerances() {
  const data = await attempt(() => api(`${tenantPath()}/tolerances`));
  if (!data) return;
  $("tolerance-rows").replaceChildren(...(data.tolerances.length
    ? data.tolerances.map((t) => h("tr", {}, h("th", { scope: "row" }, h("code", { text: t.name })), h("td", { text: String(t.count) }), h("td", {}, when(t.lastSeen))))
    : [h("tr", {}, h("td", { colspan: 3, text: "No tolerances have fired for this tenant." }))]));
}

// ---------------------------------------------------------------- declared extension schemas

async function showSchemas() {
  const data = await attempt(() => api(`${tenantPath()}/schemas`));
  if (!data) return;
  $("schema-rows").replaceChildren(...(data.schemas.length
    ? data.schemas.map((d) => h("tr", {},
      h("th", { scope: "row" }, h("code", { text: d.schema.id })),
      h("td", { text: d.resourceType + (d.required ? " (required)" : "") }),
      h("td", { text: d.schema.attributes.map((a) => `${a.name}: ${a.type}${a.multiValued ? "[]" : ""}`).join(", ") }),
      h("td", {}, when(d.modified)),
      h("td", {}, h("button", { type: "button", text: "Edit", "aria-label": `Edit ${d.schema.id}`, onclick: () => editSchema(d) }),
        " ", h("button", { type: "button", text: "Remove", "aria-label": `Remove ${d.schema.id}`, onclick: () => removeSchema(d.schema.id) }))))
    : [h("tr", {}, h("td", { colspan: 5, text: "No extension schemas declared: attributes under extension URNs are kept as sent." }))]));
}

function editSchema(d) {
  $("schema-type").value = d.resourceType;
  $("schema-required").checked = d.required;
  $("schema-json").value = JSON.stringify(d.schema, null, 2);
  $("schema-json").focus();
}

async function loadSchemaFile() {
  const file = $("schema-file").files[0];
  if (file) $("schema-json").value = await file.text();
}

async function declareSchema(e) {
  e.preventDefault();
  let schema;
  try {
    schema = JSON.parse($("schema-json").value);
  } catch (err) {
    say(`Error: the schema is not valid JSON (${err.message}).`, "error");
    return;
  }
  if (typeof schema?.id !== "string") {
    say("Error: the schema needs an \"id\": its URN.", "error");
    return;
  }
  const body = { resourceType: $("schema-type").value, required: $("schema-required").checked, schema };
  const d = await attempt(() => api(`${tenantPath()}/schemas/${enc(schema.id)}`, { method: "PUT", body }));
  if (!d) return;
  const s = d.stored;
  $("schema-report").textContent = `Checked ${s.checked} stored resource${s.checked === 1 ? "" : "s"}${s.complete ? "" : " (the first ones)"}: ${s.conflicting} do not fit, ${s.duplicateValues} duplicate a unique value.`
    + (s.conflicts.length ? ` First: ${s.conflicts.slice(0, 5).map((c) => `${c.id}: ${c.detail}`).join("; ")}` : "");
  say(`Schema ${d.schema.id} declared for ${d.resourceType}.`);
  await showSchemas();
}

async function removeSchema(urn) {
  if (!confirm(`Remove ${urn}? Data stored under it is kept and served as sent.`)) return;
  const ok = await attempt(() => api(`${tenantPath()}/schemas/${enc(urn)}`, { method: "DELETE" }));
  if (ok === undefined) return;
  say(`Schema ${urn} removed; its data is kept.`);
  await showSchemas();
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("admin-token").value.trim());
    $("admin-token").value = "";
    say("Signing in…");
    start().then(() => { if (!$("app").hidden) say("Signed in."); });
  });
  $("sign-out").addEventListener("click", () => { signOut(); say("Signed out."); });
  $("tenant-form").addEventListener("submit", createTenant);
  $("settings-form").addEventListener("submit", saveSettings);
  $("token-form").addEventListener("submit", issueToken);
  $("setup-link").addEventListener("click", createSetupLink);
  $("schema-form").addEventListener("submit", declareSchema);
  $("schema-file").addEventListener("change", () => attempt(loadSchemaFile));
  $("webhook-form").addEventListener("submit", addWebhook);
  $("deliveries-close").addEventListener("click", () => { $("deliveries").hidden = true; $("webhook-url").focus(); });
  $("dir-form").addEventListener("submit", (e) => { e.preventDefault(); state.dir.start = 1; loadDirectory(); });
  $("dir-prev").addEventListener("click", () => page(-1));
  $("dir-next").addEventListener("click", () => page(1));
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; $("dir-filter").focus(); });
  $("log-form").addEventListener("submit", (e) => { e.preventDefault(); showLog(); });
  $("log-poll").addEventListener("click", pollEvents);
  // Cleared before closing: a dialog's "close" event is queued as a task, so the secret would
  // otherwise stay in the DOM for a moment after the dialog is gone. Escape goes through "cancel",
  // which fires synchronously; "close" catches any other way out.
  $("secret-done").addEventListener("click", () => { closeSecret(); $("secret-dialog").close(); });
  $("secret-dialog").addEventListener("cancel", closeSecret);
  $("secret-dialog").addEventListener("close", closeSecret);
  for (const b of document.querySelectorAll("[data-copy]")) {
    b.addEventListener("click", () => copy($(b.dataset.copy).value, b.textContent.replace(/^Copy /, "")));
  }
  window.addEventListener("hashchange", route);
  start();
});
