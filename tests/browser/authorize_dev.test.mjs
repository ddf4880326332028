// Entra's "Authorize" flow (tests/browser/authorize_flow.mjs) in headless Chromium against the
// worker `scripts/dev.sh` starts: `wrangler dev` (its local proxy in front of workerd, its local
// D1 with the migrations dev.sh applies), reached at the Tenant URL dev.sh prints, with the
// tokens dev.sh generates. The instance is isolated from the developer's: a free loopback port
// (PORT), its own vars file (DEV_VARS, instead of .dev.vars), its own local state (DEV_STATE,
// wrangler's --persist-to), and build/ as already built (DEV_PREBUILT=1; scripts/test.sh builds
// it first). It is stopped with its whole process group, and at the latest after 150 s.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "../e2e/harness.mjs";
import { authorizeFlow } from "./authorize_flow.mjs";

const STARTUP_MS = 120_000;
const GUARD_MS = 150_000;

/** A loopback port nothing listens on right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** What of the developer's own instance a test run could touch: its vars file and local state. */
function developerFiles() {
  const seen = {};
  const vars = path.join(ROOT, ".dev.vars");
  seen[".dev.vars"] = existsSync(vars) ? `${statSync(vars).size} bytes, ${statSync(vars).mtimeMs}` : "absent";
  const d1 = path.join(ROOT, ".wrangler/state/v3/d1");
  seen.d1 = existsSync(d1)
    ? readdirSync(d1, { recursive: true }).sort().map((f) => `${f} ${statSync(path.join(d1, f)).mtimeMs}`)
    : "absent";
  return seen;
}

const untouched = developerFiles();
let dev; // { origin, tenantUrl, secretToken, adminToken, log, stop }

/** Starts `scripts/dev.sh` isolated, and resolves once its worker answers at the printed URL. */
async function startDev() {
  const dir = mkdtempSync(path.join(tmpdir(), "scim-authorize-dev-"));
  const vars = path.join(dir, "dev.vars");
  const port = await freePort();
  const child = spawn("bash", [path.join(ROOT, "scripts/dev.sh"), "--show-interactive-dev-session=false"], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      DEV_VARS: vars,
      DEV_STATE: path.join(dir, "state"),
      DEV_PREBUILT: "1",
      WRANGLER_SEND_METRICS: "false",
      CI: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: stopped whole, and nothing else
  });
  let log = "";
  child.stdout.on("data", (c) => (log += c));
  child.stderr.on("data", (c) => (log += c));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const kill = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {}
  };
  const guard = setTimeout(() => kill("SIGKILL"), GUARD_MS);
  const stop = async () => {
    clearTimeout(guard);
    if (child.exitCode === null && child.signalCode === null) {
      kill("SIGTERM");
      const late = setTimeout(() => kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(late);
    }
    kill("SIGKILL"); // workerd children that outlived wrangler, if any
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const t0 = Date.now();
    for (;;) {
      const tenantUrl = /^\s*Tenant URL:\s*(\S+)/m.exec(log)?.[1];
      const secretToken = /^\s*Secret Token:\s*(\S+)/m.exec(log)?.[1];
      if (tenantUrl && secretToken && /Ready on /.test(log)) {
        const r = await fetch(`${tenantUrl}/ServiceProviderConfig`, { headers: { Authorization: `Bearer ${secretToken}` } }).catch(() => null);
        if (r?.status === 200) {
          const adminToken = /^ADMIN_TOKEN=(.+)$/m.exec(readFileSync(vars, "utf8"))?.[1];
          assert.ok(adminToken, `dev.sh wrote no ADMIN_TOKEN to ${vars}`);
          return { origin: new URL(tenantUrl).origin, tenantUrl, secretToken, adminToken, log: () => log, stop };
        }
      }
      if (child.exitCode !== null || Date.now() - t0 > STARTUP_MS) throw new Error(`scripts/dev.sh did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (e) {
    await stop();
    throw e;
  }
}

before(async () => {
  assert.ok(existsSync(path.join(ROOT, "build/entry.mjs")), "build/ is not built: run bash scripts/build.sh");
});

authorizeFlow({
  label: "authorize-dev",
  async start() {
    dev = await startDev();
    return dev;
  },
});

test("dev.sh's printed Tenant URL and Secret Token answer SCIM on the port asked for", async () => {
  assert.match(dev.tenantUrl, /^http:\/\/127\.0\.0\.1:\d+\/scim\/v2$/);
  const r = await fetch(`${dev.tenantUrl}/Users?filter=${encodeURIComponent('userName eq "test"')}`, {
    headers: { Authorization: `Bearer ${dev.secretToken}` },
  });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).totalResults, 0);
  assert.equal((await fetch(`${dev.tenantUrl}/Users`)).status, 401);
});

test("the developer's .dev.vars and local database were not touched", () => {
  assert.deepEqual(developerFiles(), untouched);
  assert.match(dev.log(), /Using secrets defined in \S*scim-authorize-dev-[^/\s]+\/dev\.vars/, "wrangler read the test's vars file, not .dev.vars");
});
