// The Worker's entry module: a thin wrapper around the module worker-build generates
// (build/index.js, copied next to it by scripts/build.sh), so that nothing the Rust code can
// do ends in a response that is not a SCIM Error, or in an event run that fails silently.
//
// The release wasm is built with panic=abort. A panic kills the wasm instance: the shim marks
// it for re-initialisation (the next request gets a fresh instance), but the promise of every
// request in flight on it never settles, and workerd would answer each with a plain-text 500
// after detecting the hang. The request that panicked gets the `WebAssembly.RuntimeError`
// thrown back; every other request notices within a few milliseconds, in its own request
// context, that the instance it started on is gone (the shim's `__worker_init_state` records
// a critical error, then a new instance id). Each is answered with a 500 SCIM Error carrying a
// request id, logged without request data. A rejected promise (a Rust `Err` from the fetch
// handler) is answered the same way.
//
// Every other event the Rust side handles (`#[event(scheduled)]`, and `#[event(queue)]` once
// there is one) is exported with the same guard: workerd only calls the handlers this module
// exports, so one missing here never runs (the daily cron did not, until it was added). A
// panic or rejection in an event run is logged with a run id and rethrown, so the run is
// recorded as failed (and a queue batch is retried) instead of hanging or passing as done.
import Inner from "./index.js";
// The Durable Object class of the `durable-object` storage backend (src/worker/durable.rs):
// workerd finds a class only among the entry module's exports. Its requests come from this
// worker's fetch handler, which is guarded above; a failure inside it rejects that fetch.
export { TenantStore } from "./index.js";

const ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";
/** How often a request in flight checks that its wasm instance is alive, in ms. */
const LIVENESS_MS = 10;

/**
 * A promise that rejects once the wasm instance current now has died, and a function that
 * stops watching. The check runs on a timer in the caller's request context: a promise
 * settled from another request's context would not wake this one up.
 */
function watchInstance() {
  const state = globalThis.__worker_init_state;
  if (!state) return { died: new Promise(() => {}), stop() {} };
  const generation = state.instanceId;
  let timer;
  const died = new Promise((_, reject) => {
    timer = setInterval(() => {
      if (state.criticalError || state.instanceId !== generation) {
        reject(new WebAssembly.RuntimeError("the wasm instance died"));
      }
    }, LIVENESS_MS);
  });
  return { died, stop: () => clearInterval(timer) };
}

function requestId() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function internalError(request, error) {
  const rid = requestId();
  // Method and path only: no headers, query strings or bodies (tokens, personal data).
  console.error(`${rid} ${request.method} ${new URL(request.url).pathname} -> 500: ${error?.name ?? "Error"} in the worker`);
  const body = {
    schemas: [ERROR_SCHEMA],
    status: "500",
    detail: `internal error; the request may not have been applied (request id ${rid})`,
  };
  return new Response(JSON.stringify(body), {
    status: 500,
    headers: { "content-type": "application/scim+json; charset=utf-8", "x-request-id": rid },
  });
}

const IDLE = { died: new Promise(() => {}), stop() {} };

/**
 * Runs `call` on a fresh handler object of the generated module; settles when it does, or
 * rejects once the wasm instance it runs on has died.
 */
async function guarded(env, ctx, call) {
  let watch = IDLE;
  try {
    // Constructing re-initialises a dead instance first; then watch the live one.
    const inner = new Inner(ctx, env);
    watch = watchInstance();
    return await Promise.race([call(inner), watch.died]);
  } finally {
    watch.stop();
  }
}

/** Logs a failed event run (its kind only: never the event's data) and rethrows. */
function eventFailed(kind, error) {
  const rid = requestId();
  console.error(`${rid} ${kind} -> failed: ${error?.name ?? "Error"} in the worker`);
  throw new Error(`the ${kind} handler failed (run id ${rid})`);
}

const handlers = {
  async fetch(request, env, ctx) {
    try {
      return await guarded(env, ctx, (inner) => inner.fetch(request));
    } catch (error) {
      return internalError(request, error);
    }
  },
};

// The generated module defines a method for each `#[event(...)]` the Rust code has.
for (const kind of ["scheduled", "queue"]) {
  if (typeof Inner.prototype?.[kind] !== "function") continue;
  handlers[kind] = async function (event, env, ctx) {
    try {
      return await guarded(env, ctx, (inner) => inner[kind](event));
    } catch (error) {
      eventFailed(kind, error);
    }
  };
}

export default handlers;
