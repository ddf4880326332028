// Moving a tenant between deployments or storage backends through the admin API: the export's
// pages followed to their end, and the import's chunks sent one after another from where the
// target stands (so an interrupted import resumes). Used by `scripts/admin.mjs tenant export`
// and `tenant import`, the e2e test (tests/e2e/tenant_move.test.mjs) and the measurement
// (bench/tenant_move.mjs). No dependencies: Node.js >= 20 only.
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";

/** Request bodies stay under the worker's 1 MiB limit with room for the request line. */
export const CHUNK_BYTES = 900 * 1024;

async function call(base, token, method, route, { body, headers = {} } = {}) {
  const res = await fetch(`${base}/admin/api${route}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...headers },
    body,
  });
  return res;
}

async function fail(res, what) {
  const text = await res.text();
  let message = text;
  try {
    message = JSON.parse(text).message ?? text;
  } catch {}
  const e = new Error(`${what}: HTTP ${res.status}: ${message}`);
  e.status = res.status;
  throw e;
}

/**
 * Writes the export of `tenant` to `write(text)` page by page; answers the pages and lines.
 * `credentials: false` leaves the tenant's token and OAuth client hashes out.
 */
export async function exportTenant({ base, token, tenant, write, limit, credentials = true, onPage }) {
  let after;
  let pages = 0;
  let lines = 0;
  for (;;) {
    const q = new URLSearchParams();
    if (limit) q.set("limit", String(limit));
    if (!credentials) q.set("credentials", "false");
    if (after) q.set("after", after);
    const res = await call(base, token, "GET", `/tenants/${encodeURIComponent(tenant)}/export?${q}`);
    if (!res.ok) await fail(res, `export page ${pages + 1}`);
    const text = await res.text();
    await write(text);
    pages += 1;
    lines += text.split("\n").length - 1;
    onPage?.({ pages, lines });
    after = res.headers.get("x-export-next");
    if (!after) return { pages, lines };
  }
}

/** Where an import of `tenant` stands (`null`: none under way). */
export async function importStatus({ base, token, tenant }) {
  const res = await call(base, token, "GET", `/tenants/${encodeURIComponent(tenant)}/import`);
  if (res.status === 404) return null;
  if (!res.ok) await fail(res, "import status");
  return res.json();
}

async function* chunks(file, from, maxBytes) {
  const rl = createInterface({ input: createReadStream(file, "utf8"), crlfDelay: Infinity });
  let n = 0;
  let start = from;
  let buf = [];
  let size = 0;
  for await (const line of rl) {
    if (n++ < from) continue;
    const bytes = Buffer.byteLength(line) + 1;
    if (buf.length > 0 && size + bytes > maxBytes) {
      yield { line: start, body: buf.join("\n") + "\n", count: buf.length };
      start += buf.length;
      buf = [];
      size = 0;
    }
    if (bytes > maxBytes) throw new Error(`line ${n} is ${bytes} bytes, over a chunk's ${maxBytes}`);
    buf.push(line);
    size += bytes;
  }
  if (buf.length > 0) yield { line: start, body: buf.join("\n") + "\n", count: buf.length };
}

/**
 * Imports `file` into `tenant` chunk by chunk. With `resume`, starts where an import under way
 * stands; a chunk whose answer was lost is not sent twice (the position says it applied).
 */
export async function importTenant({ base, token, tenant, file, chunkBytes = CHUNK_BYTES, resume = false, onChunk }) {
  let from = 0;
  let requests = 0;
  let last;
  if (resume) {
    const at = await importStatus({ base, token, tenant });
    // Done already: the last chunk's answer was lost, and this look ended the import.
    if (at?.done) return { requests, result: at };
    from = at?.lines ?? 0;
  }
  for await (const chunk of chunks(file, from, chunkBytes)) {
    for (let attempt = 1; ; attempt++) {
      let res;
      try {
        requests += 1;
        res = await call(base, token, "POST", `/tenants/${encodeURIComponent(tenant)}/import?line=${chunk.line}`, {
          body: chunk.body,
          headers: { "Content-Type": "application/x-ndjson" },
        });
      } catch (e) {
        if (attempt >= 3) throw e;
      }
      if (res?.ok) {
        last = await res.json();
        break;
      }
      // A lost answer: the chunk may have applied. The position says.
      const status = res ? res.status : 0;
      if (status === 409 || status >= 500 || status === 0) {
        const at = await importStatus({ base, token, tenant });
        if (at?.done) {
          // The last chunk applied; its answer was lost (this look ended the import).
          last = at;
          break;
        }
        if (at && at.lines >= chunk.line + chunk.count) break;
        if (status === 409 || attempt >= 3) await fail(res, `chunk at line ${chunk.line}`);
        continue;
      }
      await fail(res, `chunk at line ${chunk.line}`);
    }
    onChunk?.({ requests, lines: chunk.line + chunk.count, done: last?.done });
  }
  return { requests, result: last };
}
