/**
 * The store contract: what the bridge needs from a Redis session store, run in both vitest projects, so over
 * connect-redis 8 + ioredis ("default") and connect-redis 9 + node-redis ("node-redis"). Reads, writes,
 * touches and destroys through the store's hooks, expiry by TTL, a logout across nodes, a renewal through
 * another node, and a copy shared by handshakes. Everything else runs once, over ioredis, in its own file.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { RedisStore } from "connect-redis";
import { describe, expect, it, vi } from "vitest";
import { CONNECT_REDIS_NODE_REDIS, REDIS_CLIENT, harnessesOf, harnessPerTest, nextEvent, openRedisStore, sessionIdOf, type Harness } from "./helpers/harness.js";
import { ending, expectSessionRoundTrip, expectRollingRenewal, incrementer, twoNodes, whoami } from "./helpers/live.js";
import { monitorPerTest } from "./helpers/monitor.js";
import { rawConnection } from "./helpers/raw-engine.js";

const start = harnessPerTest();
const monitorStore = monitorPerTest();
const monitor = (h: Harness) => monitorStore(h.prefix);
const keyOf = (h: Harness, cookie: string) => `${h.prefix}${sessionIdOf(cookie)}`;

describe("the Redis store of this run", () => {
  it("is the pairing its project names: connect-redis 8 + ioredis, or connect-redis 9 + node-redis", async ({ task }) => {
    // The "node-redis" project (vitest.config.ts) sets PSB_REDIS_CLIENT; without it, these specs would
    // quietly run over ioredis a second time.
    expect(REDIS_CLIENT).toBe(task.file.projectName === "node-redis" ? "node-redis" : "ioredis");
    const h = await start();
    expect(h.redisClient).toBe(REDIS_CLIENT);
    const cookie = await h.login("alice");
    let stored: string | null;
    if (REDIS_CLIENT === "node-redis") {
      // connect-redis 9, or 10 when PSB_CONNECT_REDIS names it (`npm run test:node`, Node 22+).
      expect(h.store).toBeInstanceOf(CONNECT_REDIS_NODE_REDIS.RedisStore);
      expect(CONNECT_REDIS_NODE_REDIS.version).toMatch(process.env.PSB_CONNECT_REDIS ? /^10\./ : /^9/);
      expect(h.store).not.toBeInstanceOf(RedisStore);
      expect(h.nodeRedis?.isReady).toBe(true);
      stored = await h.nodeRedis!.get(keyOf(h, cookie));
    } else {
      expect(h.store).toBeInstanceOf(RedisStore);
      expect(h.nodeRedis).toBeUndefined();
      stored = await h.redis!.get(keyOf(h, cookie));
    }
    expect(JSON.parse(stored ?? "null")).toMatchObject({ passport: { user: "1" } });
    // h.redis works under either client, for a spec's own look at Redis.
    expect(await h.redis!.ttl(keyOf(h, cookie))).toBeGreaterThan(0);
    const socket = await h.connect({ cookie });
    expect((await whoami(socket)).user).toMatchObject({ name: "Alice" });
  });
});

describe("reads, writes and touches", () => {
  it("puts the real express-session Session on socket.request: reload, save and touch work", async () => {
    const h = await start();
    await expectSessionRoundTrip(h);
  });

  it("withSession: 40 concurrent increments from two sockets of one session all land", async () => {
    const h = await start();
    incrementer(h);
    const cookie = await h.login("alice");
    const tabs = [await h.connect({ cookie }), await h.connect({ cookie, transport: "polling" })];
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => tabs[i % 2]!.emitWithAck("increment")));
    expect([...results].sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const me = (await (await h.request("/me", { cookie })).json()) as { session: { count: number } };
    expect(me.session.count).toBe(40);
  });

  it("withSession: a session that vanished from the store ends the socket as logged_out and rejects", async () => {
    const h = await start();
    incrementer(h);
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    // Gone behind express-session's back (an admin tool, a flush): only the reload can tell.
    await h.redis!.del(keyOf(h, cookie));
    const ended = ending(socket);
    expect(await socket.emitWithAck("increment")).toEqual({ error: "logged_out" });
    expect((await ended).code).toBe("logged_out");
  });
});

describe("destroy", () => {
  it("req.logout() on node A ends the session's sockets on both nodes within 1 s, and nobody else's", async () => {
    const [a, b] = await twoNodes(start);
    const alice = await a.login("alice");
    const bob = await b.login("bob");
    const aliceA = await a.connect({ cookie: alice, transport: "websocket" });
    const aliceB = await b.connect({ cookie: alice, transport: "polling" });
    const bobA = await a.connect({ cookie: bob });
    const bobB = await b.connect({ cookie: bob, transport: "polling" });

    const since = Date.now();
    const endings = Promise.all([ending(aliceA, since), ending(aliceB, since)]);
    expect((await a.request("/logout", { method: "POST", cookie: alice })).status).toBe(204);
    for (const end of await endings) {
      expect(end).toMatchObject({ code: "logged_out", reason: "io server disconnect" });
      expect(end.ms).toBeLessThan(1000);
    }
    expect(await a.redis!.exists(keyOf(a, alice))).toBe(0);
    expect(bobA.connected && bobB.connected).toBe(true);
    expect((await whoami(bobB)).user).toMatchObject({ name: "Bob" });
  });
});

describe("expiry by TTL", () => {
  it("an idle socket ends within 1 s of its session's expiry, for one store read per session", async () => {
    const h = await start({ session: { cookie: { maxAge: 1000 } } });
    const m = await monitor(h);
    const loggedIn = Date.now();
    const cookie = await h.login("alice");
    const sockets = [await h.connect({ cookie }), await h.connect({ cookie, transport: "polling" })];
    await m.take();
    const ends = await Promise.all(sockets.map((s) => ending(s, loggedIn)));
    for (const end of ends) {
      expect(end.code).toBe("session_expired");
      expect(end.ms).toBeGreaterThanOrEqual(1000);
      expect(end.ms).toBeLessThan(2000);
    }
    // One read to confirm the expiry, for two sockets of one session.
    expect(await m.counts()).toEqual({ GET: 1 });
  });

  it("an idle Engine.IO connection CONNECTing again is refused once the key expired, however often it cycled", async () => {
    const h = await start({ session: { cookie: { maxAge: 1000 } } });
    const cookie = await h.login("alice");
    const raw = await rawConnection(h.url, { cookie });
    // Cycling the namespace while the session lives.
    for (let i = 0; i < 3; i++) {
      expect(await raw.connect("/")).toMatchObject({ ok: true });
      raw.leave("/");
      await sleep(150);
    }
    // Redis's own TTL ends the key (connect-redis rounds it up to whole seconds).
    await vi.waitFor(async () => expect(await h.redis!.exists(keyOf(h, cookie))).toBe(0), { timeout: 5000, interval: 50 });
    expect(raw.open).toBe(true);
    expect(await raw.connect("/")).toMatchObject({ ok: false, data: { code: "session_missing" } });
  });

  it("follows a renewal made through the other node (rolling: the store's set moves the end)", async () => {
    const [a, b] = await twoNodes(start, { session: { rolling: true, cookie: { maxAge: 1000 } } });
    await expectRollingRenewal(a, b);
  });
});

describe("keep-alive touches", () => {
  // Both wait out a 1-second session, idle but for an event every 100 ms: they run side by side (nothing shared).
  it.concurrent("client events keep the session alive in the store; an idle socket then expires", async (context) => {
    const h = await harnessesOf(context)({ session: { cookie: { maxAge: 1000 } } });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const since = Date.now();
    while (Date.now() - since < 1800) {
      await socket.emitWithAck("whoami");
      await sleep(100);
    }
    expect(socket.connected).toBe(true);
    // Alive in the store too, not only on the socket: HTTP still sees Alice.
    expect(await (await h.request("/me", { cookie })).json()).toMatchObject({ user: { name: "Alice" } });
    const end = await ending(socket);
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeLessThan(2000);
  });

  it.concurrent("only as far as the store really renews: a store that ignores touches still expires", async (context) => {
    const prefix = `sess:notouch:${Date.now()}:`;
    const { store, close } = await openRedisStore({ prefix, disableTouch: true });
    try {
      const h = await harnessesOf(context)({ store, prefix, session: { cookie: { maxAge: 1000 } } });
      const loggedIn = Date.now();
      const cookie = await h.login("alice");
      const socket = await h.connect({ cookie });
      const ended = ending(socket, loggedIn);
      while (socket.connected && Date.now() - loggedIn < 1800) {
        await socket.emitWithAck("whoami").catch(() => undefined);
        await sleep(100);
      }
      const end = await ended;
      expect(end.code).toBe("session_expired");
      expect(end.ms).toBeLessThan(2000);
    } finally {
      await close();
    }
  });
});

describe("a copy shared by handshakes (sessionCacheMs)", () => {
  it("a field written through node B reaches a new socket on node A within sessionCacheMs", async () => {
    const [a, b] = await twoNodes(start, { bridge: { sessionCacheMs: 300 } });
    const cookie = await a.login("alice");
    const visitsOnA = async () => a.io.of("/").sockets.get((await a.connect({ cookie })).id!)!.request.session.visits;
    expect(await visitsOnA()).toBeUndefined();
    await b.request("/visit", { method: "POST", cookie });
    await sleep(300);
    expect(await visitsOnA()).toBe(1);
  });

  it("a key deleted straight in Redis refuses new sockets within sessionCacheMs, and ends live ones within revalidateEveryMs", async () => {
    const h = await start({ bridge: { sessionCacheMs: 300, revalidateEveryMs: 500 } });
    const cookie = await h.login("alice");
    const live = await h.connect({ cookie });
    const ended = nextEvent(live, "auth:ended", 2000);
    await h.redis!.del(keyOf(h, cookie));
    await sleep(300);
    expect((await h.refusal({ cookie, reconnection: false })).data.code).toBe("session_missing");
    expect(await ended).toEqual({ code: "session_expired" });
  });

  it("costs at most one read per session per window, however many handshakes", async () => {
    const h = await start({ bridge: { sessionCacheMs: 300 } });
    const m = await monitor(h);
    const cookie = await h.login("alice");
    await h.connect({ cookie });
    await m.take();
    const started = Date.now();
    // 30 handshakes, 10 at a time, spread over about three windows.
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: 10 }, () => h.connect({ cookie })));
      await sleep(300);
    }
    const windows = Math.ceil((Date.now() - started) / 300);
    const { GET = 0 } = await m.counts();
    expect(GET).toBeGreaterThanOrEqual(1);
    expect(GET).toBeLessThanOrEqual(windows);
  });
});
