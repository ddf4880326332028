// What the e2e suite's entries in its durable-object run (object_entry.mjs, and
// object_entry_faults.mjs for the fault-injection build) wrap the deployed object class
// with: the same class, whose requests, alarms and SQLite are the real ones (the wrapper only
// forwards them), plus RPC methods a test uses to see and set up what an object stores, as
// it reads and writes D1's tables in the d1 run. Never deployed: wrangler.toml's `main` is
// build/entry.mjs.
import { DurableObject } from "cloudflare:workers";

/** `Deployed` (a build's `TenantStore`) with the test door. */
export function withDoor(Deployed) {
  return class TenantStore extends DurableObject {
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

    /** Whether the object has made its schema (on its first request). */
    migrated() {
      const sqlite = this.ctx.storage.sql;
      return sqlite.exec("SELECT count(*) AS n FROM sqlite_master WHERE name = 'schema_versions'").one().n > 0;
    }

    /** The rows `sql` reads from this object's SQLite; none before its first request. */
    rows(sql, params = []) {
      return this.migrated() ? this.ctx.storage.sql.exec(sql, ...params).toArray() : [];
    }

    /**
     * Runs `statements` (`[sql, params]` pairs) in one transaction, as D1's batch does: a
     * test seeding rows, backdating events or injecting a fault (a trigger, a renamed table).
     */
    exec(statements) {
      if (!this.migrated()) throw new Error("the tenant's object has served no request yet");
      this.ctx.storage.transactionSync(() => {
        for (const [sql, params] of statements) this.ctx.storage.sql.exec(sql, ...params);
      });
    }
  };
}
