/**
 * A Redis outage under the example app's cluster mode (npm run example:cluster): two real processes, one
 * Redis of this file's own for the sessions and the Socket.IO adapter, clients chatting on both nodes while
 * Redis is SIGKILLed for 12 s and restarted on the same port.
 *
 * Why 12 s: with ioredis's defaults (maxRetriesPerRequest 20, retry delays 50, 100, … 1000 ms), the commands
 * queued while Redis is down are rejected with MaxRetriesPerRequestError about 10.5 s after it went away.
 * @socket.io/redis-adapter drops the promises of its PUBLISHes, so that rejection is unhandled and the node
 * exits with code 1. A shorter outage does not reach that point; a longer one always does.
 *
 * Both nodes must stay up, with no unhandled rejection; the sockets stay connected; a handshake that needs the
 * store is refused as store_unavailable (reconnect: true) meanwhile; and once Redis is back, chat crosses nodes
 * again and a logout through one node ends the user's sockets on both.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDurableRedis, type DurableRedis } from "./helpers/durable-redis.js";
import { alive, exampleLogin as login, untilServing } from "./helpers/processes.js";
import { freePort } from "./helpers/redis-server.js";

const OUTAGE_MS = 12_000;
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let redis: DurableRedis;
let cluster: ChildProcess;
let output = "";
let nodes: [string, string];
const sockets: Socket[] = [];

beforeAll(async () => {
  redis = await startDurableRedis();
  const ports = [await freePort(), await freePort()];
  nodes = ports.map((port) => `http://127.0.0.1:${port}`) as [string, string];
  cluster = spawn(process.execPath, [join(root, "example-app", "cluster.js")], {
    env: { ...process.env, PORTS: ports.join(","), REDIS_URL: redis.url, DATABASE_URL: "", DEBUG: "" },
    stdio: "pipe",
  });
  cluster.stdout?.on("data", (chunk) => (output += chunk));
  cluster.stderr?.on("data", (chunk) => (output += chunk));
  await untilServing(cluster, nodes, "the cluster", 25_000);
}, 30_000);

afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  if (cluster) {
    await new Promise<void>((resolve) => {
      if (cluster.exitCode !== null || cluster.signalCode !== null) return resolve();
      cluster.once("exit", () => resolve());
      cluster.kill("SIGTERM");
    });
  }
  await redis?.close();
});



/** A websocket-only client (no sticky sessions needed) that records the chat it receives. */
function client(url: string, cookie: string, opts: { reconnection?: boolean } = {}) {
  const socket = ioClient(url, { forceNew: true, transports: ["websocket"], extraHeaders: { cookie }, ...opts });
  sockets.push(socket);
  const chat: string[] = [];
  const disconnects: string[] = [];
  socket.on("chat", (message: { text: string }) => chat.push(message.text));
  socket.on("disconnect", (reason) => disconnects.push(reason));
  const hello = opts.reconnection === false ? undefined : once(socket, "hello", 5000);
  return { socket, chat, disconnects, hello };
}
type Client = ReturnType<typeof client>;

function once<T>(socket: Socket, event: string, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${ms} ms`)), ms);
    socket.once(event, (value: T) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** Sends numbered lines from `from` every 200 ms until one of them reaches `to`, or `ms` has passed. */
async function chatUntilReceived(from: Client, to: Client, prefix: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let i = 0; Date.now() < deadline; i++) {
    from.socket.emit("chat", `${prefix}${i}`);
    await sleep(200);
    if (to.chat.some((text) => text.startsWith(prefix))) return true;
  }
  return false;
}

/** The node pids cluster.js printed ("Node <pid> serves port <port>."). */
function nodePids(): number[] {
  return [...output.matchAll(/Node (\d+) serves port \d+\./g)].map((m) => Number(m[1]));
}


describe("the example cluster through a Redis outage", () => {
  it("keeps both nodes and their sockets up while Redis is down for 12 s, and chat and logout work again after", { timeout: 40_000 }, async () => {
    const [a, b] = nodes;
    const pids = nodePids();
    expect(pids).toHaveLength(2);

    const aliceCookie = await login(a, "alice", "wonderland");
    const aliceOnA = client(a, aliceCookie);
    const aliceOnB = client(b, aliceCookie);
    const bobOnB = client(b, await login(b, "bob", "builder"));
    // A second session of bob's with no socket anywhere: its handshake needs the store.
    const bobElsewhere = await login(a, "bob", "builder");
    await Promise.all([aliceOnA.hello, aliceOnB.hello, bobOnB.hello]);
    expect(await chatUntilReceived(aliceOnA, bobOnB, "before-", 5000)).toBe(true);

    await redis.kill();
    const down = Date.now();

    // Both users chat all through the outage, from both nodes. Every message is accepted, and reaches the
    // sockets on the sender's own node at once.
    const sent: string[] = [];
    const acks: unknown[] = [];
    let refusal: Promise<unknown> | undefined;
    for (let i = 0; Date.now() - down < OUTAGE_MS; i++) {
      for (const [who, from] of [["a", aliceOnA], ["b", bobOnB]] as const) {
        const text = `during-${who}${i}`;
        sent.push(text);
        acks.push(await from.socket.timeout(2000).emitWithAck("chat", text).catch((err: Error) => err.message));
      }
      // 3 s in (past the bridge's 2 s session cache for a fresh login): a handshake that needs the store.
      if (!refusal && Date.now() - down > 3000) {
        const stranger = client(a, bobElsewhere, { reconnection: false });
        const started = Date.now();
        refusal = once<Error & { data?: unknown }>(stranger.socket, "connect_error", 8000).then(
          (err) => ({ data: err.data, ms: Date.now() - started }),
          (err: Error) => ({ data: err.message, ms: Date.now() - started }),
        );
      }
      await sleep(250);
    }
    // Both nodes lived through it (without the fix, each crashes about 10.5 s in: MaxRetriesPerRequestError).
    expect(output).not.toMatch(/MaxRetriesPerRequestError|unhandled|a node exited/i);
    expect(pids.every(alive)).toBe(true);
    expect(acks.every((ack) => (ack as { ok?: boolean })?.ok === true)).toBe(true);
    expect(aliceOnA.chat.filter((t) => t.startsWith("during-a"))).toEqual(sent.filter((t) => t.startsWith("during-a")));
    expect(bobOnB.chat.filter((t) => t.startsWith("during-b"))).toEqual(sent.filter((t) => t.startsWith("during-b")));
    const refused = (await refusal) as { data: unknown; ms: number };
    expect(refused.data).toEqual({ code: "store_unavailable", reconnect: true });
    expect(refused.ms).toBeLessThan(8000);

    await redis.restart();

    // The sockets are still connected (or back by themselves), and chat crosses nodes in both directions again.
    for (let i = 0; i < 50 && sockets.slice(0, 3).some((s) => !s.connected); i++) await sleep(100);
    for (const c of [aliceOnA, aliceOnB, bobOnB]) expect(c.socket.connected).toBe(true);
    expect(await chatUntilReceived(aliceOnA, bobOnB, "after-a", 8000)).toBe(true);
    expect(await chatUntilReceived(bobOnB, aliceOnA, "after-b", 5000)).toBe(true);

    // The session survived the restart (Redis persists it), and a logout through node B ends alice's sockets on
    // both nodes. Retried while the session store's client is still reconnecting (an error page meanwhile).
    const ended = Promise.all([once(aliceOnA.socket, "auth:ended", 10_000), once(aliceOnB.socket, "auth:ended", 10_000)]);
    let loggedOut = false;
    for (let i = 0; i < 25 && !loggedOut; i++) {
      const res = await fetch(`${b}/logout`, { method: "POST", headers: { cookie: aliceCookie }, redirect: "manual" });
      await res.body?.cancel();
      loggedOut = res.status === 302;
      if (!loggedOut) await sleep(200);
    }
    expect(loggedOut).toBe(true);
    expect(await ended).toEqual([{ code: "logged_out" }, { code: "logged_out" }]);
    expect(bobOnB.socket.connected).toBe(true);

    expect(cluster.exitCode).toBeNull();
    expect(pids.every(alive)).toBe(true);
    expect(output).not.toMatch(/MaxRetriesPerRequestError|unhandled|a node exited/i);
  });
});
