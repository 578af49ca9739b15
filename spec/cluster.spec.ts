/**
 * Two Socket.IO nodes of one app: one Redis for the session store (same key prefix) and for
 * @socket.io/redis-adapter. What one node asks, every node does.
 */
import { describe, expect, it } from "vitest";
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
