// The e2e suite's entry in its durable-object run: the deployed entry (build/entry.mjs,
// every handler as deployed) with the tenants' object class wrapped in one that also answers
// `rows(sql, params)` over RPC, so a test can read what an object stores, as it reads D1's
// tables in the d1 run. Requests, alarms and the object's SQLite are the real class's; the
// wrapper only forwards them. Never deployed: wrangler.toml's `main` is build/entry.mjs.
import { DurableObject } from "cloudflare:workers";
import { TenantStore as Deployed } from "../../build/entry.mjs";

export { default } from "../../build/entry.mjs";

export class TenantStore extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.deployed = new Deployed(ctx, env);
  }

  fetch(request) {
    return this.deployed.fetch(request);
  }

  alarm() {
    return this.deployed.alarm();
  }

  /** The rows `sql` reads from this object's SQLite; none before its first request. */
  rows(sql, params = []) {
    const sqlite = this.ctx.storage.sql;
    const migrated = sqlite.exec("SELECT count(*) AS n FROM sqlite_master WHERE name = 'schema_versions'").one().n;
    return migrated ? sqlite.exec(sql, ...params).toArray() : [];
  }
}
