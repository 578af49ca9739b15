/**
 * The example app on PostgreSQL, with no Redis: DATABASE_URL puts its sessions in connect-pg-simple and its
 * Socket.IO adapter on @socket.io/postgres-adapter, through example-app/postgres.js, which is docs/deployment.md's
 * tested `usePostgres()` block, verbatim.
 *
 * - example-app/postgres.js is byte for byte the docs' block (extracted as spec/postgres.spec.ts extracts it).
 * - The cluster (example-app/cluster.js, two processes) on a real PostgreSQL of this file's own, with a REDIS_URL
 *   that points nowhere (DATABASE_URL takes precedence; the primary probes PostgreSQL, not Redis): a login, a
 *   socket of alice's on each node, chat and whispers across nodes, who is online everywhere, sessions in the
 *   database, a logout through one node ending her sockets on both, and SIGTERM closing it all with exit code 0.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "./helpers/postgres-server.js";
import { exampleLogin as login, untilServing } from "./helpers/processes.js";
import { freePort } from "./helpers/redis-server.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The docs' PostgreSQL block, verbatim (as spec/postgres.spec.ts reads it). */
function docsBlock(): string {
  const docs = readFileSync(join(root, "docs", "deployment.md"), "utf8");
  const match = /<!-- postgres-setup[^>]*-->\s*```js\n([\s\S]*?)```/.exec(docs);
  if (!match) throw new Error("docs/deployment.md has no postgres-setup block");
  return match[1]!;
}

describe("example-app/postgres.js", () => {
  it("is docs/deployment.md's usePostgres() block, byte for byte (the block spec/postgres.spec.ts runs)", () => {
    expect(readFileSync(join(root, "example-app", "postgres.js"), "utf8")).toBe(docsBlock());
  });
});

let server: PostgresServer;
let cluster: ChildProcess;
let exited: Promise<number | string | null>;
let output = "";
let ports: number[];
let nodes: [string, string];
const sockets: Socket[] = [];

beforeAll(async () => {
  server = await startPostgres();
  ports = [await freePort(), await freePort()];
  nodes = ports.map((port) => `http://127.0.0.1:${port}`) as [string, string];
  // Redis would be refused here: with DATABASE_URL, nothing may try it.
  const deadRedis = `redis://127.0.0.1:${await freePort()}`;
  cluster = spawn(process.execPath, [join(root, "example-app", "cluster.js")], {
    env: { ...process.env, PORTS: ports.join(","), DATABASE_URL: server.url, REDIS_URL: deadRedis, DEBUG: "" },
    stdio: "pipe",
    detached: true,
  });
  exited = new Promise((resolve) => cluster.once("exit", (code, signal) => resolve(code ?? signal)));
  cluster.stdout!.on("data", (chunk) => (output += chunk));
  cluster.stderr!.on("data", (chunk) => (output += chunk));
  await untilServing(cluster, nodes, "the cluster on PostgreSQL", 25_000);
}, 45_000);

afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  if (cluster && cluster.exitCode === null && cluster.signalCode === null) {
    cluster.kill("SIGTERM");
    await Promise.race([exited, sleep(12_000)]);
  }
  try {
    // The primary and its nodes, whatever a failed test left behind.
    if (cluster?.pid) process.kill(-cluster.pid, "SIGKILL");
  } catch {
    // none left
  }
  await server?.close();
}, 30_000);



function once<T>(socket: Socket, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    socket.once(event, (value: T) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** A websocket-only client (no sticky sessions needed), connected and greeted; it records the chat it receives. */
async function connect(url: string, cookie: string) {
  const socket = ioClient(url, { forceNew: true, transports: ["websocket"], extraHeaders: { cookie } });
  sockets.push(socket);
  const chat: string[] = [];
  socket.on("chat", (message: { text: string }) => chat.push(message.text));
  await once(socket, "hello");
  return { socket, chat };
}

describe("the example cluster with DATABASE_URL", () => {
  it("keeps sessions in PostgreSQL and joins the nodes through it: chat, presence, whispers and logout cross nodes", { timeout: 30_000 }, async () => {
    const [a, b] = nodes;
    // Every node said where its sessions are; the primary probed PostgreSQL, and nothing touched Redis.
    const said = `Sessions and the Socket.IO adapter use PostgreSQL at ${server.url}.`;
    expect(output.split("\n").filter((line) => line === said)).toHaveLength(2);
    expect(output).not.toMatch(/Redis|a node exited|unhandled/i);

    const alice = await login(a, "alice", "wonderland");
    const aliceOnA = await connect(a, alice);
    const aliceOnB = await connect(b, alice);
    // Bob is only on node B; alice's socket on node A sees him online.
    const sawBob = new Promise<void>((resolve) => aliceOnA.socket.on("online", (names: string[]) => names.includes("Bob") && resolve()));
    const bob = await connect(b, await login(b, "bob", "builder"));

    // The sessions are rows of connect-pg-simple's table.
    const db = new pg.Client({ connectionString: server.url });
    await db.connect();
    try {
      const { rows } = await db.query<{ sess: { passport?: { user?: string } } }>(`SELECT sess FROM "session"`);
      // users.js: alice is "1", bob "2".
      expect(rows.map((row) => row.sess.passport?.user).sort()).toEqual(["1", "2"]);
    } finally {
      await db.end();
    }

    // Chat from node A reaches bob on node B, and back (retried while the adapter's LISTENs settle).
    expect(await chatUntilReceived(aliceOnA.socket, bob.chat, "from-a-", 8000)).toBe(true);
    expect(await chatUntilReceived(bob.socket, aliceOnA.chat, "from-b-", 5000)).toBe(true);
    await sawBob;

    // Node B sends to alice's user room; both of her sockets get it.
    const whispers = Promise.all([once(aliceOnA.socket, "whisper"), once(aliceOnB.socket, "whisper")]);
    expect(await bob.socket.emitWithAck("whisper", { to: "alice", text: "psst" })).toMatchObject({ ok: true, to: "Alice" });
    for (const whisper of await whispers) expect(whisper).toMatchObject({ from: "Bob", text: "psst" });

    // A logout through node B ends her sockets on both nodes; bob stays.
    const ended = Promise.all([once(aliceOnA.socket, "auth:ended"), once(aliceOnB.socket, "auth:ended")]);
    const logout = await fetch(`${b}/logout`, { method: "POST", headers: { cookie: alice }, redirect: "manual" });
    expect(logout.status).toBe(302);
    expect(await ended).toEqual([{ code: "logged_out" }, { code: "logged_out" }]);
    expect(bob.socket.connected).toBe(true);
    const me = await fetch(`${a}/api/me`, { headers: { cookie: alice } });
    expect(await me.json()).toEqual({ user: null });
  });

  it("stops on SIGTERM: every node closes its sockets and its pools, and the primary exits 0", { timeout: 20_000 }, async () => {
    const [a, b] = nodes;
    const bob = await login(a, "bob", "builder");
    const both = await Promise.all([connect(a, bob), connect(b, bob)]);
    const gone = Promise.all(both.map(({ socket }) => once<string>(socket, "disconnect", 10_000)));
    const started = Date.now();
    cluster.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(await gone).toEqual(["transport close", "transport close"]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(output).toContain("SIGTERM: stopping 2 nodes");
    for (const port of ports) expect(output).toContain(`Example app on port ${port} closed.`);
    expect(output).not.toMatch(/Redis|a node exited|unhandled|did not close/i);
  });
});

/** Sends numbered lines from `from` every 200 ms until one of them reaches `received`, or `ms` has passed. */
async function chatUntilReceived(from: Socket, received: string[], prefix: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let i = 0; Date.now() < deadline; i++) {
    from.emit("chat", `${prefix}${i}`);
    await sleep(200);
    if (received.some((text) => text.startsWith(prefix))) return true;
  }
  return false;
}
