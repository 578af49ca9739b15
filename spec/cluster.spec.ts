/**
 * Two Socket.IO nodes of one app: one Redis for the session store (same key prefix) and for
 * @socket.io/redis-adapter. What one node asks, every node does, and a node whose subscriber connection
 * dropped catches up on the endings it missed as soon as it is subscribed again.
 */
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { harnessPerTest, nextEvent, sessionIdOf, type WhoAmI } from "./helpers/harness.js";

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
  it("catches up on a logout made through another node meanwhile, as soon as it is subscribed again", async () => {
    // Revalidation far away: only the catch-up can end the socket within this test.
    const bridge = { revalidateEveryMs: 600_000 };
    const a = await start({ redisAdapter: true, bridge });
    // Node B's subscriber reconnects 1 s after it drops (ioredis's default is 50 ms: too short to log out in).
    const pub = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null });
    const sub = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null, retryStrategy: () => 1000 });
    const b = await start({
      prefix: a.prefix,
      bridge,
      adapter: (io) => {
        io.adapter(createAdapter(pub, sub, { requestsTimeout: 2000, key: `socket.io:${a.prefix}` }));
        return () => (pub.disconnect(), sub.disconnect());
      },
    });
    const alice = await a.login("alice");
    const bob = await a.login("bob");
    const aliceOnB = await b.connect({ cookie: alice });
    const bobOnB = await b.connect({ cookie: bob });
    if (sub.status !== "ready") await nextEvent(sub, "ready");

    const admin = new Redis(inject("redisUrl"));
    try {
      const closed = nextEvent(sub, "close");
      await admin.call("CLIENT", "KILL", "ADDR", `${sub.stream.localAddress}:${sub.stream.localPort}`);
      await closed;
    } finally {
      admin.disconnect();
    }
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
});

