/**
 * A Redis outage under a live app: existing sockets stay, new handshakes are refused as store_unavailable
 * within storeTimeoutMs (and may retry), and when Redis returns a new login connects, with no restart and no
 * unhandled rejection.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failOnLeaks } from "./helpers/leaks.js";
import { harnessPerTest, TRANSPORTS, type WhoAmI } from "./helpers/harness.js";
import { startRedis, type RedisServer } from "./helpers/redis-server.js";

const start = harnessPerTest();
let redis: RedisServer;
const leaks = failOnLeaks();
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.close();
});

describe("a Redis outage", () => {
  it("keeps 100 connected sockets, refuses new handshakes as store_unavailable, and recovers", { timeout: 60_000 }, async () => {
    const storeTimeoutMs = 400;
    const sessionCacheMs = 500;
    const h = await start({ redisUrl: redis.url, bridge: { storeTimeoutMs, sessionCacheMs } });
    const cookies = [await h.login("alice"), await h.login("bob")];
    // A session with no socket yet: its first handshake needs the store.
    const stranger = await h.login("carol");
    const sockets: ClientSocket[] = await Promise.all(
      Array.from({ length: 100 }, (_, i) => h.connect({ cookie: cookies[i % 2], transport: TRANSPORTS[i % 3] })),
    );

    await redis.stop({ crash: true });
    // Longer than sessionCacheMs: what the sockets' copies were read from is gone.
    await sleep(sessionCacheMs + 100);
    expect(sockets.filter((s) => !s.connected)).toEqual([]);
    const answers = (await Promise.all(sockets.slice(0, 10).map((s) => s.emitWithAck("whoami")))) as WhoAmI[];
    expect(answers.every((me) => me.user !== null)).toBe(true);

    for (const transport of TRANSPORTS) {
      const started = Date.now();
      const refused = await h.refusal({ cookie: stranger, transport });
      const elapsed = Date.now() - started;
      expect(refused.data).toEqual({ code: "store_unavailable", reconnect: true });
      expect(elapsed).toBeGreaterThanOrEqual(storeTimeoutMs - 50);
      expect(elapsed).toBeLessThan(storeTimeoutMs + 1500);
    }

    // A session whose sockets are connected here: its copy is older than sessionCacheMs by now, so a new tab
    // needs the store, as an HTTP request would; its live sockets stay.
    expect((await h.refusal({ cookie: cookies[0] })).data).toEqual({ code: "store_unavailable", reconnect: true });

    await redis.restart();
    // The app's Redis client (ioredis or node-redis) reconnects by itself; wait for it, then log in afresh (the
    // restart lost the data).
    let cookie: string | undefined;
    for (let i = 0; i < 50 && !cookie; i++) cookie = await h.login("carol").catch(() => sleep(200).then(() => undefined));
    const socket = await h.connect({ cookie });
    expect(((await socket.emitWithAck("whoami")) as WhoAmI).user).toMatchObject({ name: "Carol" });
    expect(sockets.filter((s) => !s.connected)).toEqual([]);
    expect(leaks).toEqual([]);
  });
});
