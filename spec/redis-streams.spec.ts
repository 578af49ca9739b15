/**
 * @socket.io/redis-streams-adapter under the bridge: two nodes on real Redis, every cross-node flow the Redis
 * pub/sub adapter has (spec/helpers/cross-node.ts); and the reason to choose it: chat between two nodes loses
 * nothing across a 12 s Redis outage (Redis SIGKILLed, restarted on the same port with its append-only file).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { Redis } from "ioredis";
import type { Socket as ClientSocket } from "socket.io-client";
import { describe, expect, it } from "vitest";
import { crossNodeTests } from "./helpers/cross-node.js";
import { startDurableRedis } from "./helpers/durable-redis.js";
import { harnessPerTest, nextEvent, type Harness } from "./helpers/harness.js";
import { startRedis } from "./helpers/redis-server.js";
import { failOnLeaks } from "./helpers/leaks.js";
import { ending, twoNodes } from "./helpers/live.js";

const start = harnessPerTest();
failOnLeaks();

describe("two nodes on the Redis Streams adapter", () => {
  crossNodeTests(start, "streams");
});

describe("a node whose Streams adapter lost its pub/sub subscription", () => {
  it("misses a logout sent meanwhile (the bridge's commands are pub/sub, not stream entries) until revalidation", async () => {
    // A Redis of this test's own: its CLIENT LIST holds only these two nodes' connections.
    const redis = await startRedis();
    const admin = new Redis(redis.url);
    try {
      const key = "socket.io:lost";
      const a = await start({ redisUrl: redis.url, redisAdapter: false, adapter: streamsOn(redis.url, key, "node-a") });
      const revalidateEveryMs = 2500;
      const b = await start({
        redisUrl: redis.url,
        prefix: a.prefix,
        redisAdapter: false,
        // Node B's adapter client (and the duplicates it makes) reconnects 300 ms after a drop, and is named.
        adapter: streamsOn(redis.url, key, "node-b", { retryStrategy: () => 300 }),
        bridge: { revalidateEveryMs },
      });
      const cookie = await a.login("alice");
      const onB = await b.connect({ cookie });
      const admittedAt = Date.now();
      const ended = ending(onB);

      // Node B's pub/sub subscriber: its connection subscribed to channels (the stream reader is another one).
      const subscriberOfB = async () =>
        String(await admin.call("CLIENT", "LIST"))
          .split("\n")
          .find((line) => / name=node-b /.test(line) && / sub=[1-9]/.test(line));
      const subscriber = await subscriberOfB();
      expect(subscriber).toBeDefined();
      await admin.call("CLIENT", "KILL", "ID", subscriber!.match(/^id=(\d+)/)![1]!);
      expect((await a.request("/logout", { method: "POST", cookie })).status).toBe(204);

      // Node B subscribes again (the adapter's client is out of the bridge's reach: only Redis shows it)...
      for (let i = 0; !(await subscriberOfB()); i++) {
        if (i > 40) throw new Error("node B did not subscribe again within 2 s");
        await sleep(50);
      }
      // ...and nothing tells the bridge: the socket is still there a second later (on createAdapter, the catch-up
      // ends it within a few ms: spec/cluster.spec.ts).
      await sleep(1000);
      expect(onB.connected).toBe(true);
      // The next revalidation ends it (a record that vanished reads as expired).
      const end = await ended;
      expect(["logged_out", "session_expired"]).toContain(end.code);
      expect(Date.now() - admittedAt).toBeLessThan(revalidateEveryMs + 1000);
    } finally {
      admin.disconnect();
      await redis.close();
    }
  });
});

/** Installs the Streams adapter on its own ioredis client (named `name`, so CLIENT LIST shows whose it is). */
function streamsOn(url: string, key: string, name: string, options: { retryStrategy?: () => number } = {}) {
  return (io: Harness["io"]) => {
    const client = new Redis(url, { maxRetriesPerRequest: null, connectionName: name, ...options });
    client.on("error", () => undefined);
    io.adapter(createStreamsAdapter(client, { streamName: key, channelPrefix: key }));
    return () => client.disconnect();
  };
}

/** The app's chat: a socket joins a room; what it says goes to the room's other members, on every node. */
function chat(h: Harness): void {
  h.io.on("connection", (socket) => {
    socket.on("join", (room: string, ack: () => void) => {
      void socket.join(room);
      ack();
    });
    socket.on("say", (room: string, text: string) => socket.to(room).emit("chat", text));
  });
}

/** Every chat line `socket` receives, in order; `count(n)` resolves once there are n (or rejects after `ms`). */
function heard(socket: ClientSocket) {
  const lines: string[] = [];
  let waiting: { n: number; resolve: () => void } | undefined;
  socket.on("chat", (text: string) => {
    lines.push(text);
    if (waiting && lines.length >= waiting.n) waiting.resolve();
  });
  const count = (n: number, ms: number) =>
    new Promise<void>((resolve, reject) => {
      if (lines.length >= n) return resolve();
      const timer = setTimeout(() => reject(new Error(`${lines.length} of ${n} lines within ${ms} ms`)), ms);
      waiting = { n, resolve: () => (clearTimeout(timer), resolve()) };
    });
  return { lines, count };
}

describe("a Redis outage on the Redis Streams adapter", () => {
  const OUTAGE_MS = 12_000;

  it("loses no chat line between two nodes: all arrive after Redis is back, in order, none twice", { timeout: 45_000 }, async () => {
    const redis = await startDurableRedis();
    try {
      const [a, b] = await twoNodes(start, { redisAdapter: "streams", redisUrl: redis.url });
      for (const node of [a, b]) chat(node);
      const aliceCookie = await a.login("alice");
      const alice = await a.connect({ cookie: aliceCookie });
      const bob = await b.connect({ cookie: await b.login("bob") });
      const carol = await a.connect({ cookie: await a.login("carol") });
      for (const socket of [alice, bob, carol]) await socket.timeout(2000).emitWithAck("join", "lobby");
      const bobHeard = heard(bob);
      const carolHeard = heard(carol);
      const disconnects: string[] = [];
      for (const socket of [alice, bob, carol]) socket.on("disconnect", (reason) => disconnects.push(reason));

      // One line through Redis before the outage (node B's stream reader then reads on from its id).
      alice.emit("say", "lobby", "before");
      await bobHeard.count(1, 2000);

      await redis.kill();
      const sent: string[] = [];
      const down = Date.now();
      for (let i = 0; Date.now() - down < OUTAGE_MS; i++) {
        const text = `during-${i}`;
        sent.push(text);
        alice.emit("say", "lobby", text);
        await sleep(100);
      }
      // Nothing crossed while Redis was down: the lines wait in node A's Redis client (XADD in its offline queue).
      expect(bobHeard.lines).toEqual(["before"]);
      await redis.restart();
      const back = Date.now();

      const all = ["before", ...sent];
      await Promise.all([bobHeard.count(all.length, 10_000), carolHeard.count(all.length, 10_000)]);
      const caughtUpMs = Date.now() - back;
      expect(sent.length).toBeGreaterThan(100);
      expect(bobHeard.lines).toEqual(all);
      // The sender's own node delivers each line only once Redis has taken it (the adapter awaits its XADD first).
      expect(carolHeard.lines).toEqual(all);
      expect(disconnects).toEqual([]);

      // After: a line crosses at once, none came twice, and a logout through node B ends alice's socket on node A.
      alice.emit("say", "lobby", "after");
      await bobHeard.count(all.length + 1, 2000);
      expect(bobHeard.lines).toEqual([...all, "after"]);
      const ended = nextEvent<{ code: string }>(alice, "auth:ended", 10_000);
      expect((await b.request("/logout", { method: "POST", cookie: aliceCookie })).status).toBe(204);
      expect(await ended).toEqual({ code: "logged_out" });
      console.log(`${sent.length} lines over a ${OUTAGE_MS} ms outage, all delivered ${caughtUpMs} ms after the restart`);
    } finally {
      await redis.close();
    }
  });
});
