// Entra's "Authorize" flow (tests/browser/authorize_flow.mjs) in headless Chromium against the
// compiled worker in workerd + local D1 on a loopback port (the e2e harness, Miniflare).
import { randomBytes } from "node:crypto";
import { startWorker } from "../e2e/harness.mjs";
import { authorizeFlow } from "./authorize_flow.mjs";

authorizeFlow({
  label: "authorize",
  async start() {
    const adminToken = `admin-${randomBytes(18).toString("base64url")}`;
    const w = await startWorker({ port: 0, adminToken });
    return { origin: w.origin, adminToken, stop: () => w.stop() };
  },
});
