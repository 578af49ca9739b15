// npm run example:cluster: the example app as several processes, one port each, sharing Redis for sessions
// and for the Socket.IO adapter. A user can have tabs on different nodes; a logout on one ends them all.
//
//   REDIS_URL  Redis to share (default redis://127.0.0.1:6379)
//   NODES      how many processes (default 2), on PORT, PORT+1, ... (PORT default 3000)
//   PORTS      or an explicit list, e.g. "3000,3001,3002"
//
// Each browser tab talks to one node (the one that served its page), so long-polling needs no sticky
// sessions here. Behind one address, see docs/deployment.md.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";

const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const base = Number(process.env.PORT ?? 3000);
const ports = process.env.PORTS
  ? process.env.PORTS.split(",").map(Number)
  : Array.from({ length: Number(process.env.NODES ?? 2) }, (_, i) => base + i);

const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
probe.on("error", () => undefined);
try {
  await probe.connect();
  await probe.ping();
  probe.disconnect();
} catch (err) {
  console.error(
    `The cluster needs a Redis to share, and ${redisUrl} did not answer (${err.message}). ` +
      "Start one (redis-server, or apt-get install redis-server) or set REDIS_URL.",
  );
  process.exit(1);
}

const server = fileURLToPath(new URL("./server.js", import.meta.url));
let stopping = false;
const nodes = ports.map((port) => {
  const node = fork(server, [], { env: { ...process.env, PORT: String(port), REDIS_URL: redisUrl }, stdio: "inherit" });
  console.log(`Node ${node.pid} serves port ${port}.`);
  // A node should never stop by itself (a Redis outage included): say so loudly. This script does not restart
  // it; in production, your process manager would.
  node.on("exit", (code, signal) => {
    if (!stopping) console.error(`a node exited: pid ${node.pid}, port ${port}, ${signal ?? `code ${code}`}`);
  });
  return node;
});
const stop = () => {
  stopping = true;
  for (const node of nodes) node.kill();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
