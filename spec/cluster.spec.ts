/**
 * Two Socket.IO nodes of one app: one Redis for the session store (same key prefix) and for
 * @socket.io/redis-adapter. What one node asks, every node does, and a node whose subscriber connection
 * dropped catches up on the endings it missed as soon as it is subscribed again.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { harnessPerTest, nextEvent, sessionIdOf, type Harness, type WhoAmI } from "./helpers/harness.js";

const start = harnessPerTest();

async function cluster() {
  const a = await start({ redisAdapter: true });
  const b = await start({ redisAdapter: true, prefix: a.prefix });
  return [a, b] as const;
}

describe("across nodes", () => {
  it("a session made on node A authenticates sockets on node B", async () => {
    const [a, b] = await cluster();
    const cookie = await a.login("alice");
    const socket = await b.connect({ cookie, transport: "polling" });
    expect(((await socket.emitWithAck("whoami")) as WhoAmI).user).toMatchObject({ name: "Alice" });
  });

  it("disconnectUser and disconnectSession on one node end the sockets on every node", async () => {
    const [a, b] = await cluster();
    const alice = await a.login("alice");
    const aliceElsewhere = await b.login("alice");
    const bob = await b.login("bob");
    const onA = await a.connect({ cookie: alice });
    const onB = await b.connect({ cookie: alice, transport: "polling" });
    const otherSession = await b.connect({ cookie: aliceElsewhere });
    const bobOnB = await b.connect({ cookie: bob });

    const ended = nextEvent(otherSession, "auth:ended");
    expect(await a.auth.disconnectSession(sessionIdOf(aliceElsewhere))).toBe(1);
    expect(await ended).toEqual({ code: "revoked" });

    const notices = Promise.all([nextEvent(onA, "auth:ended"), nextEvent(onB, "auth:ended")]);
    const gone = Promise.all([nextEvent(onA, "disconnect"), nextEvent(onB, "disconnect")]);
    expect(await b.auth.disconnectUser("1")).toBe(2);
    expect(await notices).toEqual([{ code: "revoked" }, { code: "revoked" }]);
    expect(await gone).toEqual(["io server disconnect", "io server disconnect"]);
    expect(bobOnB.connected).toBe(true);
  });

  it("the adapter's room broadcasts reach a user's sockets on every node", async () => {
    const [a, b] = await cluster();
    const cookie = await a.login("alice");
    const sockets = [await a.connect({ cookie }), await b.connect({ cookie })];
    const received = Promise.all(sockets.map((s) => nextEvent(s, "news")));
    a.io.to(a.auth.userRoom("1")).emit("news", "hello");
    expect(await received).toEqual(["hello", "hello"]);
  });
});

describe("a node whose Redis subscriber connection dropped", () => {
  // Revalidation far away: only the catch-up can end a socket or read a session within these tests.
  const bridge = { revalidateEveryMs: 600_000 };

  /**
   * Node B of node A's cluster, on a subscriber of the spec's own that reconnects `retryMs` after it drops
   * (default 1 s: ioredis's 50 ms is too short to log out in).
   */
  async function nodeB(a: Harness, retryMs = 1000) {
    const pub = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null });
    const sub = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null, retryStrategy: () => retryMs });
    const b = await start({
      prefix: a.prefix,
      bridge,
      adapter: (io) => {
        io.adapter(createAdapter(pub, sub, { requestsTimeout: 2000, key: `socket.io:${a.prefix}` }));
        return () => (pub.disconnect(), sub.disconnect());
      },
    });
    if (sub.status !== "ready") await nextEvent(sub, "ready");
    return { b, sub };
  }

  /** Kills the subscriber's connection in Redis; resolves once the client has seen it close. */
  async function drop(sub: Redis): Promise<void> {
    const admin = new Redis(inject("redisUrl"));
    try {
      const closed = nextEvent(sub, "close");
      await admin.call("CLIENT", "KILL", "ADDR", `${sub.stream.localAddress}:${sub.stream.localPort}`);
      await closed;
    } finally {
      admin.disconnect();
    }
  }

  it("catches up on a logout made through another node meanwhile, as soon as it is subscribed again", async () => {
    const a = await start({ redisAdapter: true, bridge });
    const { b, sub } = await nodeB(a);
    const alice = await a.login("alice");
    const bob = await a.login("bob");
    const aliceOnB = await b.connect({ cookie: alice });
    const bobOnB = await b.connect({ cookie: bob });

    await drop(sub);
    const ready = nextEvent(sub, "ready");
    const notice = nextEvent<{ code: string }>(aliceOnB, "auth:ended", 5000);
    const gone = nextEvent<string>(aliceOnB, "disconnect", 5000);
    // The logout's endSession command is published while B is not subscribed: B never hears it.
    expect((await a.request("/logout", { method: "POST", cookie: alice })).status).toBe(204);
    expect(sub.status).not.toBe("ready");
    expect(aliceOnB.connected).toBe(true);

    await ready;
    const readyAt = Date.now();
    // A record that vanished reads as expired to revalidation: either code says the session is over.
    expect(["logged_out", "session_expired"]).toContain((await notice).code);
    expect(await gone).toBe("io server disconnect");
    expect(Date.now() - readyAt).toBeLessThan(2000);
    expect(bobOnB.connected).toBe(true);
    expect(((await bobOnB.timeout(2000).emitWithAck("whoami")) as WhoAmI).user).toMatchObject({ name: "Bob" });
  });

  it("reads each live session once per reconnection, at most 8 at a time, and coalesces reconnections during a catch-up", async () => {
    const a = await start({ redisAdapter: true, bridge });
    // Nothing to do while it is down: it reconnects after 100 ms.
    const { b, sub } = await nodeB(a, 100);
    const cookies = await Promise.all(Array.from({ length: 20 }, (_, i) => a.login(["alice", "bob", "carol"][i % 3]!)));
    await b.connectSessions(cookies, 40, () => "websocket");
    // Count B's store reads, and how many are under way at once (a 20 ms store).
    let reads = 0;
    let inFlight = 0;
    let most = 0;
    const get = b.store.get.bind(b.store);
    b.store.get = (sid, done) => {
      reads++;
      most = Math.max(most, ++inFlight);
      setTimeout(() => get(sid, (err, session) => (inFlight--, done(err, session))), 20);
    };
    const readsReach = async (n: number) => {
      for (let i = 0; reads < n || inFlight > 0; i++) {
        if (i > 250) throw new Error(`${reads} store reads, not ${n}, within 5 s`);
        await sleep(20);
      }
      await sleep(200);
      return reads;
    };

    await drop(sub);
    await nextEvent(sub, "ready");
    expect(await readsReach(20)).toBe(20);
    expect(most).toBe(8);

    // Three reconnections reported during one catch-up: one more catch-up after it, not three.
    reads = 0;
    for (let i = 0; i < 3; i++) sub.emit("ready");
    expect(await readsReach(40)).toBe(40);
    expect(most).toBe(8);
  });
});
