// npm run example:cluster: the example app as several processes, one port each, sharing Redis (or PostgreSQL)
// for sessions and for the Socket.IO adapter. A user can have tabs on different nodes; a logout on one ends them all.
//
//   DATABASE_URL  PostgreSQL to share instead of Redis (connect-pg-simple and @socket.io/postgres-adapter)
//   REDIS_URL     Redis to share (default redis://127.0.0.1:6379)
//   NODES         how many processes (default 2), on PORT, PORT+1, ... (PORT default 3000)
//   PORTS         or an explicit list, e.g. "3000,3001,3002"
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

// With DATABASE_URL the nodes share PostgreSQL (sessions and the Socket.IO adapter), else Redis.
const databaseUrl = process.env.DATABASE_URL;
if (databaseUrl) {
  const { default: pg } = await import("pg");
  const probe = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  probe.on("error", () => undefined);
  try {
    await probe.connect();
    await probe.query("SELECT 1");
  } catch (err) {
    console.error(`The cluster shares the PostgreSQL of DATABASE_URL, and it did not answer (${err.message}).`);
    process.exit(1);
  } finally {
    await probe.end().catch(() => undefined);
  }
} else {
  const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on("error", () => undefined);
  try {
    await probe.connect();
    await probe.ping();
    probe.disconnect();
  } catch (err) {
    console.error(
      `The cluster needs a Redis (or a PostgreSQL: DATABASE_URL) to share, and ${redisUrl} did not answer ` +
        `(${err.message}). Start one (redis-server, or apt-get install redis-server) or set REDIS_URL.`,
    );
    process.exit(1);
  }
}

const server = fileURLToPath(new URL("./server.js", import.meta.url));
let stopping = false;
let stoppingSince = 0;
const nodes = ports.map((port) => {
  // With DATABASE_URL, app.js uses PostgreSQL (and ignores REDIS_URL); else every node gets the Redis probed above.
  const env = { ...process.env, PORT: String(port), ...(databaseUrl ? {} : { REDIS_URL: redisUrl }) };
  const node = fork(server, [], { env, stdio: "inherit" });
  console.log(`Node ${node.pid} serves port ${port}.`);
  node.exited = new Promise((resolve) => node.once("exit", (code, signal) => resolve(code ?? signal)));
  // A node should never stop by itself (a Redis or PostgreSQL outage included): say so loudly. This script does not restart
  // it; in production, your process manager would.
  node.on("exit", (code, signal) => {
    if (!stopping) console.error(`a node exited: pid ${node.pid}, port ${port}, ${signal ?? `code ${code}`}`);
  });
  return node;
});

// SIGTERM or Ctrl-C: each node closes gracefully (server.js), and this process exits once they all have: 0 if
// every node closed cleanly. (Ctrl-C also reaches the nodes themselves, from the terminal; one signal or two,
// they close once.) Another Ctrl-C, a second later, stops everything at once.
async function stop(signal) {
  if (stopping) {
    // Another Ctrl-C (not the first one's echo: npm passes it on too) stops everything at once.
    if (signal === "SIGINT" && Date.now() - stoppingSince > 1000) {
      for (const node of nodes) node.kill("SIGKILL");
      process.exit(130);
    }
    return;
  }
  stopping = true;
  stoppingSince = Date.now();
  console.log(`${signal}: stopping ${nodes.length} nodes…`);
  for (const node of nodes) if (node.exitCode === null && node.signalCode === null) node.kill("SIGTERM");
  const codes = await Promise.all(nodes.map((node) => node.exited));
  process.exit(codes.every((code) => code === 0) ? 0 : 1);
}
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
