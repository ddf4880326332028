// Starts the built worker on a loopback port with a fresh local D1 and prints
// `URL TOKEN` on one line once ready; stops on SIGTERM/SIGINT. Used by the conformance run.
import { startWorker } from "./harness.mjs";

const port = Number(process.env.PORT ?? 0);
const w = await startWorker({ port });
console.log(`${w.base} ${w.token}`);
const stop = async () => {
  await w.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
