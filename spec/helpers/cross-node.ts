/**
 * The cross-node checks every Redis-backed adapter runs (spec/redis-streams.spec.ts, spec/redis-sharded.spec.ts):
 * two nodes of one app on real Redis, real socket.io-client sockets, a real Express + passport-local login. A
 * logout through one node ends the session's sockets on the other; disconnectUser, disconnectSession, refresh,
 * presence and channels, which travel as the bridge's cluster commands (serverSideEmit with acknowledgements);
 * room broadcasts; and fetchSockets of a user room.
 */
import { expect, it } from "vitest";
import { nextEvent, sessionIdOf, type Harness, type HarnessOptions, type RedisAdapterKind } from "./harness.js";
import { ending, twoNodes, whoami } from "./live.js";

type Start = (options?: HarnessOptions) => Promise<Harness>;

const join = (socket: { emitWithAck(ev: string, payload: unknown): Promise<unknown> }, channel: string) =>
  socket.emitWithAck("auth:join", { channel }) as Promise<{ ok: boolean; members?: unknown[] }>;

/** Two nodes on `kind`, with the channels the presence checks use. */
async function nodes(start: Start, kind: RedisAdapterKind, options: HarnessOptions = {}) {
  const [a, b] = await twoNodes(start, { redisAdapter: kind, ...options });
  for (const node of [a, b]) {
    node.auth
      .channel("orders:{orderId}", (user, { orderId }) => user !== undefined && orderId === user.id)
      .channel("presence:room:{roomId}", (user) => (user ? { info: { name: user.name } } : false));
  }
  return [a, b] as const;
}

/** Defines the cross-node tests for `kind` in the calling describe block. */
export function crossNodeTests(start: Start, kind: RedisAdapterKind): void {
  it("a logout through node A ends the session's sockets on node B (websocket and polling) at once", async () => {
    const [a, b] = await nodes(start, kind);
    const alice = await a.login("alice");
    const bob = await a.login("bob");
    const sockets = [await b.connect({ cookie: alice }), await b.connect({ cookie: alice, transport: "polling" })];
    const bobOnB = await b.connect({ cookie: bob });
    expect((await whoami(sockets[0]!)).user).toMatchObject({ name: "Alice" });
    const since = Date.now();
    const endings = Promise.all(sockets.map((s) => ending(s, since)));
    expect((await a.request("/logout", { method: "POST", cookie: alice })).status).toBe(204);
    for (const end of await endings) {
      expect(end).toMatchObject({ code: "logged_out", reason: "io server disconnect" });
      expect(end.ms).toBeLessThan(1000);
    }
    expect((await whoami(bobOnB)).user).toMatchObject({ name: "Bob" });
  });

  it("disconnectSession and disconnectUser on one node end the sockets on every node", async () => {
    const [a, b] = await nodes(start, kind);
    const alice = await a.login("alice");
    const aliceElsewhere = await b.login("alice");
    const onA = await a.connect({ cookie: alice });
    const onB = await b.connect({ cookie: alice, transport: "polling" });
    const otherSession = await b.connect({ cookie: aliceElsewhere });
    const bobOnB = await b.connect({ cookie: await b.login("bob") });

    const ended = ending(otherSession);
    expect(await a.auth.disconnectSession(sessionIdOf(aliceElsewhere))).toBe(1);
    expect(await ended).toMatchObject({ code: "revoked", reason: "io server disconnect" });

    const endings = Promise.all([ending(onA), ending(onB)]);
    expect(await b.auth.disconnectUser("1")).toBe(2);
    for (const end of await endings) expect(end).toMatchObject({ code: "revoked", reason: "io server disconnect" });
    expect(bobOnB.connected).toBe(true);
  });

  it("isOnline, onlineUsers and presence channels see sockets on every node", async () => {
    const [a, b] = await nodes(start, kind);
    expect(await a.auth.onlineUsers()).toEqual([]);
    const alice = await a.connect({ cookie: await a.login("alice") });
    const bob = await b.connect({ cookie: await b.login("bob") });
    expect(await a.auth.isOnline("2")).toBe(true);
    expect(await b.auth.isOnline("1")).toBe(true);
    expect(await b.auth.isOnline("3")).toBe(false);
    expect(await a.auth.onlineUsers()).toEqual(["1", "2"]);

    expect(await join(alice, "presence:room:7")).toEqual({ ok: true, members: [{ userId: "1", info: { name: "Alice" } }] });
    const joined = nextEvent(alice, "presence:join");
    const answer = await join(bob, "presence:room:7");
    expect(answer.members).toEqual(
      expect.arrayContaining([{ userId: "1", info: { name: "Alice" } }, { userId: "2", info: { name: "Bob" } }]),
    );
    expect(await joined).toEqual({ channel: "presence:room:7", member: { userId: "2", info: { name: "Bob" } } });
    const left = nextEvent(bob, "presence:leave");
    alice.disconnect();
    expect(await left).toEqual({ channel: "presence:room:7", member: { userId: "1", info: { name: "Alice" } } });
    expect(await b.auth.onlineUsers()).toEqual(["2"]);
  });

  it("refresh() and leave() on one node reach the user's sockets on every node", async () => {
    const [a, b] = await nodes(start, kind);
    const cookie = await a.login("alice");
    const onA = await a.connect({ cookie });
    const onB = await b.connect({ cookie, transport: "polling" });
    for (const socket of [onA, onB]) expect(await join(socket, "orders:1")).toEqual({ ok: true });

    const left = Promise.all([nextEvent(onA, "auth:left"), nextEvent(onB, "auth:left")]);
    expect(await a.auth.leave("1", "orders:1")).toBe(2);
    expect(await left).toEqual([{ channel: "orders:1" }, { channel: "orders:1" }]);

    // The shared user database, seen by both nodes' deserializers.
    for (const node of [a, b]) node.users.get("1")!.role = "admin";
    expect(await b.auth.refresh("1")).toBe(2);
    for (const socket of [onA, onB]) expect((await whoami(socket)).user).toMatchObject({ role: "admin" });
    for (const node of [a, b]) node.users.delete("1");
    const ends = Promise.all([ending(onA), ending(onB)]);
    expect(await a.auth.refresh("1")).toBe(0);
    for (const end of await ends) expect(end.code).toBe("user_removed");
  });

  it("a user room broadcast reaches both nodes, and fetchSockets finds the user's sockets on both", async () => {
    const [a, b] = await nodes(start, kind);
    const cookie = await a.login("alice");
    const sockets = [await a.connect({ cookie }), await b.connect({ cookie, transport: "polling" })];
    await b.connect({ cookie: await b.login("bob") });
    const received = Promise.all(sockets.map((s) => nextEvent(s, "news")));
    b.io.to(b.auth.userRoom("1")).emit("news", "hello");
    expect(await received).toEqual(["hello", "hello"]);
    const found = await a.io.in(a.auth.userRoom("1")).fetchSockets();
    expect(found.map((s) => s.id).sort()).toEqual(sockets.map((s) => s.id).sort());
    expect(found.map((s) => s.data)).toEqual([(await whoami(sockets[0]!)).data, (await whoami(sockets[1]!)).data]);
  });
}
