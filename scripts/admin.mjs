#!/usr/bin/env node
// Command-line wrapper of the admin API (/admin/api) for a local or deployed worker.
// No dependencies: Node.js >= 20 only. Prints the API's JSON answer on stdout; errors go to
// stderr with exit code 1 (2 for usage errors).
//
//   npm run admin -- tenants
//   npm run admin -- tenant create acme --name "Acme Corp"
//   npm run admin -- token issue acme --label "Entra production" [--expires-in 7776000]
//   npm run admin -- token issue acme --oauth --label "Entra (OAuth)"
//   npm run admin -- tokens acme
//   npm run admin -- token rotate acme <token-id> --overlap 86400
//   npm run admin -- token revoke acme <token-id> [--chain]
//   npm run admin -- schema import acme custom-user.json --resource-type User
//   npm run admin -- role add acme --id admin --name "Administrator"
//   npm run admin -- entitlement add acme --id e3 --name "Office E3" --type License
//   npm run admin -- roles acme
//   npm run admin -- setup-link create acme --label "Alice (IT)" [--expires-in 604800]
//   npm run admin -- oauth-app add --name "Contoso HR" [--redirect-uris URI,URI]
//   npm run admin -- webhook create acme https://app.example.com/scim-events --events user.deactivated,user.deleted
//   npm run admin -- webhook deliveries acme <webhook-id> --status retrying
//   npm run admin -- tenant export acme > acme.ndjson    (then, against the new deployment:)
//   npm run admin -- --url https://new.example.com tenant import acme acme.ndjson
//
// Target: --url (or SCIM_ADMIN_URL), default http://127.0.0.1:8787 (scripts/dev.sh).
// Admin token: --token (or ADMIN_TOKEN); for a loopback URL it is read from .dev.vars (or the
// file DEV_VARS names, as `DEV_VARS=… scripts/dev.sh` uses).
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const USAGE = `usage: scripts/admin.mjs [--url URL] [--token ADMIN_TOKEN] <command>

commands:
  tenants                                   list tenants
  tenant create <id> [--name NAME] [--strict-patch]
  tenant show <id>
  tenant set <id> [--name NAME] [--strict-patch | --lenient-patch] [--extensions keep|reject]
             [--deletion hard|soft] [--deletion-days N] [--restore-on-create | --no-restore-on-create]
                                            soft: a DELETE keeps a tombstone N days (default
                                            30); restore-on-create: a POST whose externalId
                                            matches one brings it back under its id
  tombstones <tenant> [--type User|Group]   the soft policy's deleted resources, newest first
  tombstone restore <tenant> <id>           back under its id (409 if its name is taken now)
  tenant export <id> [--no-credentials] [--limit N] > FILE
                                            the tenant as NDJSON (its SCIM writes are refused
                                            from the first page until 'tenant export-end')
  tenant export-end <id>                    accept SCIM writes again (an aborted move)
  tenant import <id> FILE [--resume]        into an empty (or new) tenant, chunk by chunk;
                                            --resume continues an interrupted import
  tenant import-status <id>                 where an import under way stands
  tenant import-abort <id>                  undo an import that cannot finish
  tokens <tenant>                           list tokens and OAuth clients (never secrets)
  token issue <tenant> [--label L] [--oauth] [--expires-in SECONDS | --expires-at RFC3339]
  token show <tenant> <id>
  token revoke <tenant> <id> [--chain]      revoke it, the tokens it replaced by rotation, and
                                            an OAuth client's access tokens; --chain also the
                                            tokens that replaced it (the whole rotation chain)
  token rotate <tenant> <id> [--overlap SECONDS] [--label L] [--expires-in SECONDS | --expires-at RFC3339]
  schemas <tenant>                          list the tenant's declared extension schemas
  schema show <tenant> <urn>
  schema import <tenant> <file.json> [--resource-type User|Group] [--required]
                                            declare the schema(s) in the file: one RFC 7643 §7
                                            schema, an array of them, or a /Schemas ListResponse
                                            (objects {resourceType, required, schema} too); each
                                            answer reports how stored data fits it
  schema delete <tenant> <urn>              undeclare it (data stored under it is kept)

  Okta Entitlement Management: the values Okta reads from /Roles and /Entitlements
  (KIND is role or entitlement; ids are generated when --id is left out):
  roles <tenant> | entitlements <tenant>    list them
  KIND add <tenant> --name NAME [--id ID] [--type TYPE] [--description TEXT]
  KIND show <tenant> <id>
  KIND set <tenant> <id> [--name NAME] [--type TYPE] [--description TEXT]
                                            an empty --type or --description clears it
  KIND remove <tenant> <id>                 users keep the assignments they hold
  webhooks <tenant>                         list webhook endpoints (never secrets)
  webhook create <tenant> <url> [--events TYPE,TYPE | --events '*'] [--format json|set]
  webhook create <tenant> --poll [--events ...]   an RFC 8936 poll stream of security events
  webhook show <tenant> <id>
  webhook set <tenant> <id> [--url URL] [--events TYPE,...] [--enable | --disable]
  webhook delete <tenant> <id>
  webhook rotate <tenant> <id> [--overlap SECONDS]
                                            new signing secret; the old one signs too until
                                            the overlap ends (default a day)
  webhook deliveries <tenant> <id> [--status queued|retrying|delivered|dead] [--limit N]
  webhook redeliver <tenant> <id> (--seq N | --from RFC3339 --to RFC3339)

  The customer's IT admin and Entra's Authorize button (docs/ENTRA.md):
  setup-links <tenant>                      list the tenant's setup links (never the secret)
  setup-link create <tenant> [--label L] [--expires-in SECONDS]
                                            a link for the IT admin (shown once; opens once)
  setup-link revoke <tenant> <id>           revoke it and end the session it started
  oauth-apps                                list the deployment's OAuth apps
  oauth-app add --name NAME [--redirect-uris URI,URI]
                                            the values to submit to Microsoft (secret once);
                                            Entra's TokenAuthorize URI by default
  oauth-app show <id>
  oauth-app set <id> --redirect-uris URI,URI  replace the exact-match allow-list
  oauth-app revoke <id>                     revoke it with every approval and token it holds

The secret of an issued or rotated token or webhook is printed once and is not stored anywhere.
--url defaults to $SCIM_ADMIN_URL or http://127.0.0.1:8787; --token to $ADMIN_TOKEN, or for a
loopback URL to ADMIN_TOKEN in .dev.vars (or in $DEV_VARS).`;

function usage(message) {
  if (message) console.error(`error: ${message}\n`);
  console.error(USAGE);
  process.exit(2);
}

/** Splits argv into positionals and --options (flags with or without a value). */
function parse(argv) {
  const flags = new Set(["no-credentials", "resume", "oauth", "strict-patch", "lenient-patch", "help", "chain", "required", "enable", "disable", "poll", "restore-on-create", "no-restore-on-create"]);
  const pos = [];
  const opt = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) {
      pos.push(a);
      continue;
    }
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (flags.has(name)) opt[name] = true;
    else if (inline !== undefined) opt[name] = inline;
    else if (i + 1 < argv.length) opt[name] = argv[++i];
    else usage(`--${name} needs a value`);
  }
  return { pos, opt };
}

function devVarsToken() {
  try {
    const line = readFileSync(path.resolve(ROOT, process.env.DEV_VARS ?? ".dev.vars"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("ADMIN_TOKEN="));
    return line?.slice("ADMIN_TOKEN=".length).trim().replace(/^"(.*)"$/, "$1");
  } catch {
    return undefined;
  }
}

function seconds(v, name) {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) usage(`--${name} must be a whole number of seconds`);
  return Number(v);
}

function expiry(opt) {
  const body = {};
  if (opt["expires-in"] !== undefined) body.expiresIn = seconds(opt["expires-in"], "expires-in");
  if (opt["expires-at"] !== undefined) body.expiresAt = opt["expires-at"];
  return body;
}

const { pos, opt } = parse(process.argv.slice(2));
if (opt.help || pos.length === 0 || pos[0] === "help") usage();
const base = (opt.url ?? process.env.SCIM_ADMIN_URL ?? "http://127.0.0.1:8787").replace(/\/+$/, "");
const loopback = /^https?:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(base);
const token = opt.token ?? process.env.ADMIN_TOKEN ?? (loopback ? devVarsToken() : undefined);
if (!token) usage("no admin token: pass --token or set ADMIN_TOKEN");

const enc = encodeURIComponent;
const [cmd, sub, a, b] = pos;
if (cmd === "tenant" && ["export", "import", "export-end", "import-status", "import-abort"].includes(sub)) {
  await move();
  process.exit(0);
}

/** `tenant export|import|…`: the export streamed to stdout, the import sent in chunks. */
async function move() {
  const mv = await import("./tenant_move.mjs");
  if (!a) usage(`tenant ${sub} <tenant>`);
  const progress = (s) => process.stderr.write(`\r${s}`);
  try {
    if (sub === "export") {
      const write = (text) => new Promise((ok) => (process.stdout.write(text) ? ok() : process.stdout.once("drain", ok)));
      const limit = opt.limit === undefined ? undefined : Number(opt.limit);
      const r = await mv.exportTenant({
        base, token, tenant: a, write, limit, credentials: !opt["no-credentials"],
        onPage: ({ pages, lines }) => progress(`exported ${lines} lines in ${pages} pages`),
      });
      console.error(`\nexported tenant '${a}': ${r.lines} lines, ${r.pages} pages. Its SCIM writes are refused until 'tenant export-end ${a}'.`);
    } else if (sub === "import") {
      if (!b) usage("tenant import <tenant> FILE [--resume]");
      const r = await mv.importTenant({
        base, token, tenant: a, file: b, resume: Boolean(opt.resume),
        onChunk: ({ requests, lines }) => progress(`imported ${lines} lines in ${requests} requests`),
      });
      console.error("");
      console.log(JSON.stringify(r.result, null, 2));
    } else if (sub === "import-status") {
      console.log(JSON.stringify(await mv.importStatus({ base, token, tenant: a }), null, 2));
    } else {
      const [m, what] = sub === "export-end" ? ["DELETE", "export"] : ["DELETE", "import"];
      let json;
      do {
        const res = await fetch(`${base}/admin/api/tenants/${enc(a)}/${what}`, { method: m, headers: { Authorization: `Bearer ${token}` } });
        json = await res.json();
        if (!res.ok) throw new Error(`HTTP ${res.status}: ${json.message}`);
      } while (what === "import" && json.remaining > 0);
      console.log(JSON.stringify(json, null, 2));
    }
  } catch (e) {
    console.error(`\nerror: ${e.message}${sub === "import" ? `\n(resume with: tenant import ${a} ${b} --resume)` : ""}`);
    process.exit(1);
  }
}
let method = "GET";
let route;
let body;
/** The declarations an import file holds, as admin API bodies. */
function declarations(file) {
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    usage(`cannot read ${file}: ${e.message}`);
  }
  const items = Array.isArray(doc) ? doc : Array.isArray(doc?.Resources) ? doc.Resources : [doc];
  return items.map((item) => {
    const wrapped = item && typeof item === "object" && "schema" in item;
    const resourceType = (wrapped ? item.resourceType : undefined) ?? opt["resource-type"];
    if (!resourceType) usage("--resource-type User|Group is needed for a bare schema");
    return {
      resourceType,
      required: (wrapped ? item.required : undefined) ?? Boolean(opt.required),
      schema: wrapped ? item.schema : item,
    };
  });
}

const requests = [];
const events = (v) => (v === undefined ? {} : { events: v.split(",").map((s) => s.trim()).filter(Boolean) });
const hook = (t, id, tail = "") => `/tenants/${enc(t)}/webhooks/${enc(id)}${tail}`;
/** The admin API's body for a role or entitlement: --name, --id, --type, --description. */
function definition(opt, { create }) {
  const body = {};
  if (opt.name !== undefined) body.displayName = opt.name;
  if (create && opt.id !== undefined) body.id = opt.id;
  for (const field of ["type", "description"]) {
    if (opt[field] !== undefined) body[field] = opt[field] === "" && !create ? null : opt[field];
  }
  return body;
}

/** The `deletion` member of a tenant PATCH from --deletion, --deletion-days, --[no-]restore-on-create. */
function deletion(opt) {
  const d = {};
  if (opt.deletion !== undefined) d.policy = opt.deletion;
  if (opt["deletion-days"] !== undefined) {
    if (!/^\d+$/.test(opt["deletion-days"])) usage("--deletion-days must be a whole number of days");
    d.days = Number(opt["deletion-days"]);
  }
  if (opt["restore-on-create"]) d.restoreOnCreate = true;
  if (opt["no-restore-on-create"]) d.restoreOnCreate = false;
  return Object.keys(d).length ? { deletion: d } : {};
}

const KINDS = { role: "roles", entitlement: "entitlements" };
if (KINDS[cmd]) {
  const list = KINDS[cmd];
  if (!a) usage(`${cmd} ${sub ?? "add|show|set|remove"} <tenant> ...`);
  const needId = () => b ?? usage(`${cmd} ${sub} <tenant> <id>`);
  switch (sub) {
    case "add":
      if (opt.name === undefined) usage(`${cmd} add <tenant> --name NAME`);
      [method, route, body] = ["POST", `/tenants/${enc(a)}/${list}`, definition(opt, { create: true })];
      break;
    case "show":
      route = `/tenants/${enc(a)}/${list}/${enc(needId())}`;
      break;
    case "set":
      [method, route, body] = ["PATCH", `/tenants/${enc(a)}/${list}/${enc(needId())}`, definition(opt, { create: false })];
      break;
    case "remove":
      [method, route] = ["DELETE", `/tenants/${enc(a)}/${list}/${enc(needId())}`];
      break;
    default:
      usage(`unknown command '${pos.join(" ")}'`);
  }
} else switch (`${cmd} ${["tenant", "token", "schema", "webhook", "setup-link", "oauth-app", "tombstone"].includes(cmd) ? sub ?? "" : ""}`.trim()) {
  case "setup-links":
    if (!sub) usage("setup-links <tenant>");
    route = `/tenants/${enc(sub)}/setup-links`;
    break;
  case "setup-link create":
    if (!a) usage("setup-link create <tenant>");
    [method, route] = ["POST", `/tenants/${enc(a)}/setup-links`];
    body = {
      ...(opt.label ? { label: opt.label } : {}),
      ...(opt["expires-in"] !== undefined ? { expiresIn: seconds(opt["expires-in"], "expires-in") } : {}),
    };
    break;
  case "setup-link revoke":
    if (!a || !b) usage("setup-link revoke <tenant> <id>");
    [method, route] = ["DELETE", `/tenants/${enc(a)}/setup-links/${enc(b)}`];
    break;
  case "oauth-apps":
    route = "/oauth-apps";
    break;
  case "oauth-app add":
    if (!opt.name) usage("oauth-app add --name NAME");
    [method, route] = ["POST", "/oauth-apps"];
    body = { name: opt.name, ...(opt["redirect-uris"] ? { redirectUris: opt["redirect-uris"].split(",") } : {}) };
    break;
  case "oauth-app show":
    if (!a) usage("oauth-app show <id>");
    route = `/oauth-apps/${enc(a)}`;
    break;
  case "oauth-app set":
    if (!a || !opt["redirect-uris"]) usage("oauth-app set <id> --redirect-uris URI,URI");
    [method, route, body] = ["PATCH", `/oauth-apps/${enc(a)}`, { redirectUris: opt["redirect-uris"].split(",") }];
    break;
  case "oauth-app revoke":
    if (!a) usage("oauth-app revoke <id>");
    [method, route] = ["DELETE", `/oauth-apps/${enc(a)}`];
    break;
  case "schemas":
    if (!sub) usage("schemas <tenant>");
    route = `/tenants/${enc(sub)}/schemas`;
    break;
  case "schema show":
    if (!a || !b) usage("schema show <tenant> <urn>");
    route = `/tenants/${enc(a)}/schemas/${enc(b)}`;
    break;
  case "schema delete":
    if (!a || !b) usage("schema delete <tenant> <urn>");
    [method, route] = ["DELETE", `/tenants/${enc(a)}/schemas/${enc(b)}`];
    break;
  case "schema import":
    if (!a || !b) usage("schema import <tenant> <file.json>");
    for (const d of declarations(b)) {
      if (typeof d.schema?.id !== "string") usage("every schema needs an 'id' (its URN)");
      requests.push(["PUT", `/tenants/${enc(a)}/schemas/${enc(d.schema.id)}`, d]);
    }
    break;
  case "tenants":
    route = "/tenants";
    break;
  case "tokens":
    if (!sub) usage("tokens <tenant>");
    route = `/tenants/${enc(sub)}/tokens`;
    break;
  case "roles":
  case "entitlements":
    if (!sub) usage(`${cmd} <tenant>`);
    route = `/tenants/${enc(sub)}/${cmd}`;
    break;
  case "tenant create":
    if (!a) usage("tenant create <id>");
    [method, route] = ["POST", "/tenants"];
    body = { id: a, ...(opt.name ? { name: opt.name } : {}), ...(opt["strict-patch"] ? { strictPatch: true } : {}) };
    break;
  case "tenant show":
    if (!a) usage("tenant show <id>");
    route = `/tenants/${enc(a)}`;
    break;
  case "tenant set":
    if (!a) usage("tenant set <id>");
    [method, route] = ["PATCH", `/tenants/${enc(a)}`];
    body = {
      ...(opt.name ? { name: opt.name } : {}),
      ...(opt["strict-patch"] ? { strictPatch: true } : {}),
      ...(opt["lenient-patch"] ? { strictPatch: false } : {}),
      ...(opt.extensions ? { extensions: opt.extensions } : {}),
      ...deletion(opt),
    };
    break;
  case "tombstones":
    if (!sub) usage("tombstones <tenant>");
    route = `/tenants/${enc(sub)}/tombstones${opt.type ? `?type=${enc(opt.type)}` : ""}`;
    break;
  case "tombstone restore":
    if (!a || !b) usage("tombstone restore <tenant> <id>");
    [method, route] = ["POST", `/tenants/${enc(a)}/tombstones/${enc(b)}/restore`];
    break;
  case "token issue":
    if (!a) usage("token issue <tenant>");
    [method, route] = ["POST", `/tenants/${enc(a)}/tokens`];
    body = { type: opt.oauth ? "oauth_client" : "bearer", ...(opt.label ? { label: opt.label } : {}), ...expiry(opt) };
    break;
  case "token show":
    if (!a || !b) usage("token show <tenant> <id>");
    route = `/tenants/${enc(a)}/tokens/${enc(b)}`;
    break;
  case "token revoke":
    if (!a || !b) usage("token revoke <tenant> <id>");
    [method, route] = ["DELETE", `/tenants/${enc(a)}/tokens/${enc(b)}${opt.chain ? "?chain=true" : ""}`];
    break;
  case "token rotate":
    if (!a || !b) usage("token rotate <tenant> <id>");
    [method, route] = ["POST", `/tenants/${enc(a)}/tokens/${enc(b)}/rotate`];
    body = {
      ...(opt.overlap !== undefined ? { overlapSeconds: seconds(opt.overlap, "overlap") } : {}),
      ...(opt.label ? { label: opt.label } : {}),
      ...expiry(opt),
    };
    break;
  case "webhooks":
    if (!sub) usage("webhooks <tenant>");
    route = `/tenants/${enc(sub)}/webhooks`;
    break;
  case "webhook create":
    if (!a || (!b && !opt.poll)) usage("webhook create <tenant> (<url> | --poll)");
    [method, route] = ["POST", `/tenants/${enc(a)}/webhooks`];
    body = opt.poll
      ? { format: "set", delivery: "poll", ...events(opt.events) }
      : { url: b, ...events(opt.events), ...(opt.format ? { format: opt.format } : {}) };
    break;
  case "webhook show":
    if (!a || !b) usage("webhook show <tenant> <id>");
    route = hook(a, b);
    break;
  case "webhook set":
    if (!a || !b) usage("webhook set <tenant> <id>");
    [method, route] = ["PATCH", hook(a, b)];
    body = {
      ...(opt.url ? { url: opt.url } : {}),
      ...events(opt.events),
      ...(opt.enable ? { enabled: true } : {}),
      ...(opt.disable ? { enabled: false } : {}),
    };
    break;
  case "webhook delete":
    if (!a || !b) usage("webhook delete <tenant> <id>");
    [method, route] = ["DELETE", hook(a, b)];
    break;
  case "webhook rotate":
    if (!a || !b) usage("webhook rotate <tenant> <id>");
    [method, route] = ["POST", hook(a, b, "/rotate")];
    body = opt.overlap !== undefined ? { overlapSeconds: seconds(opt.overlap, "overlap") } : {};
    break;
  case "webhook deliveries": {
    if (!a || !b) usage("webhook deliveries <tenant> <id>");
    const q = new URLSearchParams();
    if (opt.status) q.set("status", opt.status);
    if (opt.limit) q.set("limit", opt.limit);
    route = hook(a, b, `/deliveries${q.size ? `?${q}` : ""}`);
    break;
  }
  case "webhook redeliver":
    if (!a || !b) usage("webhook redeliver <tenant> <id> (--seq N | --from T --to T)");
    [method, route] = ["POST", hook(a, b, "/redeliver")];
    body = {
      ...(opt.seq !== undefined ? { seq: Number(opt.seq) } : {}),
      ...(opt.from ? { from: opt.from } : {}),
      ...(opt.to ? { to: opt.to } : {}),
    };
    break;
  default:
    usage(`unknown command '${pos.join(" ")}'`);
}

if (requests.length === 0) requests.push([method, route, body]);

/** Sends one admin API request; prints its answer, or the error and exits 1. */
async function send([method, route, body]) {
  let res;
  try {
    res = await fetch(`${base}/admin/api${route}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    console.error(`error: cannot reach ${base}: ${e.cause?.message ?? e.message}`);
    process.exit(1);
  }
  const text = await res.text();
  if (res.status === 204 && !text) return { ok: true };
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    console.error(`error: HTTP ${res.status} from ${base}: ${text.slice(0, 500)}`);
    process.exit(1);
  }
  if (!res.ok) {
    console.error(`error: HTTP ${res.status} ${json.error ?? ""}: ${json.message ?? text}`);
    process.exit(1);
  }
  return json;
}

for (const request of requests) {
  const json = await send(request);
  console.log(JSON.stringify(json, null, 2));
  if (json.url && String(json.url).includes("/setup/")) {
    console.error("\nThe link above is shown only now and opens once. Send it to the customer's IT admin.");
  }
  if (json.token || json.clientSecret) {
    console.error("\nThe secret above is shown only now; only its hash is stored. Paste it into the identity provider.");
  }
  if (typeof json.secret === "string" && json.secret.startsWith("whsec_")) {
    console.error("\nThe webhook secret above is shown only now. Give it to the receiving app to verify signatures.");
  }
}
