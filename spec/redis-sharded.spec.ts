/**
 * createShardedAdapter (@socket.io/redis-adapter, Redis >= 7 sharded pub/sub: SPUBLISH/SSUBSCRIBE) under the
 * bridge: two nodes on real Redis, every cross-node flow the Redis pub/sub adapter has (spec/helpers/cross-node.ts),
 * and the catch-up after a node's subscriber connection drops.
 */
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { crossNodeTests } from "./helpers/cross-node.js";
import { harnessPerTest, nextEvent } from "./helpers/harness.js";
import { failOnLeaks } from "./helpers/leaks.js";
import { ending } from "./helpers/live.js";

const start = harnessPerTest();
failOnLeaks();

describe("two nodes on the sharded Redis adapter", () => {
  crossNodeTests(start, "sharded");
});

describe("a node whose sharded adapter lost its subscriber connection", () => {
  it("catches up on a logout made through another node meanwhile, as soon as it is subscribed again", async () => {
    // Revalidation far away: only the catch-up can end the socket within this test.
    const bridge = { revalidateEveryMs: 600_000 };
    const a = await start({ redisAdapter: "sharded", bridge });
    const key = `socket.io:${a.prefix}`;
    // Node B on a subscriber of the test's own, which reconnects 1 s after it drops (time to log out in).
    const pub = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null });
    const sub = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null, retryStrategy: () => 1000 });
    const b = await start({
      prefix: a.prefix,
      bridge,
      adapter: (io) => {
        io.adapter(createShardedAdapter(pub, sub, { channelPrefix: key }));
        return () => (pub.disconnect(), sub.disconnect());
      },
    });
    if (sub.status !== "ready") await nextEvent(sub, "ready");
    const alice = await a.login("alice");
    const aliceOnB = await b.connect({ cookie: alice });
    const bobOnB = await b.connect({ cookie: await a.login("bob") });
    const ended = ending(aliceOnB);

    const admin = new Redis(inject("redisUrl"));
    const closed = nextEvent(sub, "close");
    await admin.call("CLIENT", "KILL", "ADDR", `${sub.stream.localAddress}:${sub.stream.localPort}`);
    admin.disconnect();
    await closed;
    const ready = nextEvent(sub, "ready");
    // The logout's endSession command goes out while B is not subscribed: B never hears it.
    expect((await a.request("/logout", { method: "POST", cookie: alice })).status).toBe(204);
    expect(sub.status).not.toBe("ready");
    expect(aliceOnB.connected).toBe(true);

    await ready;
    const readyAt = Date.now();
    const end = await ended;
    // A record that vanished reads as expired to revalidation: either code says the session is over.
    expect(["logged_out", "session_expired"]).toContain(end.code);
    expect(Date.now() - readyAt).toBeLessThan(2000);
    expect(bobOnB.connected).toBe(true);
  });
});
