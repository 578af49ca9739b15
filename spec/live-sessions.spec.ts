/**
 * Live sockets follow their session after the handshake: logout and destroy anywhere, expiry and renewal,
 * keep-alive, refreshed users, session writes and presence, across two nodes on one Redis.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { bridge } from "../lib/index.js";
import { monitorPerTest } from "./helpers/monitor.js";
import { dropWhileSessionEnds, harnessPerTest, nextEvent, sessionIdOf, type Harness } from "./helpers/harness.js";
import { ending, expectRollingRenewal, incrementer, twoNodes, whoami } from "./helpers/live.js";

// Store reads, writes, touches and destroys, expiry by TTL and a renewal through another node are in
// spec/store-contract.spec.ts, which runs under both Redis clients.
const start = harnessPerTest();
const monitorStore = monitorPerTest();
const monitor = (h: Harness) => monitorStore(h.prefix);
const cluster = (options: Parameters<typeof twoNodes>[1] = {}) => twoNodes(start, options);

describe("logout anywhere", () => {
  it.each(["/destroy", "/regenerate"])("%s through node B ends node A's sockets", async (route) => {
    const [a, b] = await cluster();
    const alice = await b.login("alice");
    const sockets = [await a.connect({ cookie: alice }), await a.connect({ cookie: alice, transport: "polling" })];
    const since = Date.now();
    const endings = Promise.all(sockets.map((s) => ending(s, since)));
    await b.request(route, { method: "POST", cookie: alice });
    for (const end of await endings) {
      expect(end.code).toBe("logged_out");
      expect(end.ms).toBeLessThan(1000);
    }
  });

  it("a new connection with the old cookie is refused afterwards", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket);
    await h.request("/logout", { method: "POST", cookie });
    await ended;
    expect((await h.refusal({ cookie })).data.code).toBe("session_missing");
  });
});

describe("expiry", () => {
  it("costs one read per session at expiry, not per socket: 200 idle sockets of 20 sessions", async () => {
    // Long enough for 200 handshakes on a busy 2-core machine to finish before the sessions expire (about 1 s
    // under a full run's load), and whole seconds: connect-redis rounds a TTL up, and a key that outlives its
    // cookie's expiry is read once more.
    const h = await start({ session: { cookie: { maxAge: 3000 } } });
    const cookies = await Promise.all(Array.from({ length: 20 }, (_, i) => h.login(["alice", "bob", "carol"][i % 3]!)));
    const m = await monitor(h);
    const sockets = await h.connectSessions(cookies, 200, (i) => (i % 5 ? "websocket" : "polling"));
    expect(await m.counts()).toEqual({ GET: 20 });
    const ends = await Promise.all(sockets.map((s) => ending(s)));
    expect(new Set(ends.map((end) => end.code))).toEqual(new Set(["session_expired"]));
    expect(await m.counts()).toEqual({ GET: 20 });
  });

  it("follows an HTTP renewal: with rolling, a request at 0.6 s moves the end to the renewed expiry", async () => {
    const h = await start({ session: { rolling: true, cookie: { maxAge: 1000 } } });
    await expectRollingRenewal(h, h);
  });

  it("with MemoryStore too: ends at expiry, follows a renewal", async () => {
    const h = await start({ store: "memory", session: { rolling: true, cookie: { maxAge: 1000 } } });
    const loggedIn = Date.now();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket, loggedIn);
    await sleep(500 - (Date.now() - loggedIn));
    const renewed = Date.now() - loggedIn;
    await h.request("/me", { cookie });
    const end = await ended;
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeGreaterThanOrEqual(renewed + 1000);
    expect(end.ms).toBeLessThan(renewed + 2000);
  });

  it("a renewal no hook saw (a process without the bridge) does not end the socket early", async () => {
    const h = await start({ session: { cookie: { maxAge: 1000 } } });
    const loggedIn = Date.now();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket, loggedIn);
    await sleep(600 - (Date.now() - loggedIn));
    // What connect-redis's touch does, from elsewhere: a new TTL, the stored cookie.expires unchanged.
    await h.redis!.pexpire(`${h.prefix}${sessionIdOf(cookie)}`, 1000);
    // Past the stored cookie.expires, before the renewed key is gone.
    await sleep(1400 - (Date.now() - loggedIn));
    expect(socket.connected).toBe(true);
    // It still ends, once the renewed key is gone (later than with a hook, but it does).
    expect((await ended).code).toBe("session_expired");
  });

  it("a shorter maxAge set over HTTP moves the end earlier", async () => {
    const h = await start({ session: { cookie: { maxAge: 6000 } } });
    h.app.post("/short", (req, res) => {
      req.session.cookie.maxAge = 1000;
      res.sendStatus(204);
    });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const since = Date.now();
    const ended = ending(socket, since);
    await h.request("/short", { method: "POST", cookie });
    const end = await ended;
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeLessThan(2500);
  });

  it("a silent node does not hold up expiry", async () => {
    const [a, b] = await cluster({ session: { cookie: { maxAge: 1000 } } });
    b.io.of("/").removeAllListeners("passport-socketio-bridge:command");
    const loggedIn = Date.now();
    const socket = await a.connect({ cookie: await a.login("alice") });
    const end = await ending(socket, loggedIn);
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeLessThan(2000);
  });
});

describe("keep-alive", () => {
  it("touches once per session per interval, whatever the sockets and events; pings do not count", async () => {
    const h = await start({
      bridge: { keepAliveMs: 300 },
      io: { pingInterval: 150, pingTimeout: 20_000 },
      session: { cookie: { maxAge: 60_000 } },
    });
    const cookies = await Promise.all(Array.from({ length: 20 }, (_, i) => h.login(["alice", "bob", "carol"][i % 3]!)));
    const m = await monitor(h);
    const sockets = await h.connectSessions(cookies, 200, (i) => (i % 5 ? "websocket" : "polling"));
    await sleep(400);
    expect(await m.counts()).toEqual({ GET: 20 });

    for (let round = 0; round < 3; round++) {
      await Promise.all(sockets.map(async (s) => {
        await s.emitWithAck("whoami");
        await s.emitWithAck("whoami");
      }));
      await sleep(350);
    }
    // 1,200 events in three rounds: every session touched in every round (rounds are 350 ms apart), and
    // never twice within 300 ms, however many of its sockets spoke.
    const touches = await m.takeTimed();
    expect(touches.every(({ command }) => command[0] === "EXPIRE")).toBe(true);
    const bySession = new Map<string, typeof touches>();
    for (const touch of touches) bySession.set(touch.command[1]!, [...(bySession.get(touch.command[1]!) ?? []), touch]);
    expect(bySession.size).toBe(20);
    for (const times of bySession.values()) {
      expect(times.length).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < times.length; i++) expect(times[i]!.at - times[i - 1]!.at).toBeGreaterThanOrEqual(295);
    }

    // Idle sockets, pinged every 150 ms (three times each here): nothing.
    await sleep(500);
    expect(await m.counts()).toEqual({});
  });

  it("can be turned off", async () => {
    const h = await start({ bridge: { keepAliveMs: false }, session: { cookie: { maxAge: 1000 } } });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket);
    const since = Date.now();
    while (socket.connected && Date.now() - since < 1800) {
      await socket.emitWithAck("whoami").catch(() => undefined);
      await sleep(100);
    }
    expect((await ended).code).toBe("session_expired");
  });
});

describe("fresh users", () => {
  it("refresh() changes the user seen on both nodes without a reconnect; a removed user ends with user_removed", async () => {
    const [a, b] = await cluster();
    const cookie = await a.login("alice");
    const onA = await a.connect({ cookie });
    const onB = await b.connect({ cookie, transport: "polling" });
    const onB2 = await b.connect({ cookie });
    expect((await whoami(onA)).user).toMatchObject({ role: "user" });
    let reconnects = 0;
    for (const socket of [onA, onB, onB2]) socket.on("connect", () => reconnects++);

    // The shared user database, seen by both nodes' deserializers.
    for (const node of [a, b]) node.users.get("1")!.role = "admin";
    expect(await b.auth.refresh("1")).toBe(2);
    for (const socket of [onA, onB, onB2]) expect((await whoami(socket)).user).toMatchObject({ role: "admin" });
    expect(reconnects).toBe(0);

    for (const node of [a, b]) node.users.delete("1");
    const ends = Promise.all([onA, onB, onB2].map((s) => ending(s)));
    await a.auth.refresh(1);
    for (const end of await ends) expect(end.code).toBe("user_removed");
  });

  it("revalidateEveryMs refreshes per session, not per socket", async () => {
    const h = await start({ bridge: { revalidateEveryMs: 300 } });
    const cookie = await h.login("alice");
    const sockets = await Promise.all([1, 2, 3].map(() => h.connect({ cookie })));
    const m = await monitor(h);
    h.users.get("1")!.role = "admin";
    await sleep(1000);
    for (const socket of sockets) expect((await whoami(socket)).user).toMatchObject({ role: "admin" });
    // Three sockets, one session: about one read per 300 ms, not three.
    const gets = (await m.counts()).GET ?? 0;
    expect(gets).toBeGreaterThanOrEqual(2);
    expect(gets).toBeLessThanOrEqual(4);
  });
});

describe("withSession and the session's end", () => {
  it("never brings a session back that was logged out while the function ran", async () => {
    const h = await start();
    incrementer(h, () => sleep(400));
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    // The socket is ended by the logout, so the answer may never arrive; either way nothing is saved.
    const answer = socket
      .timeout(5000)
      .emitWithAck("increment")
      .catch(() => ({ error: "disconnected before the answer" }));
    await sleep(100);
    await h.request("/logout", { method: "POST", cookie });
    expect(await answer).toMatchObject({ error: expect.any(String) });
    // Past the end of the function (400 ms) and of any save it could have made.
    await sleep(500);
    expect(await h.redis!.exists(`${h.prefix}${sessionIdOf(cookie)}`)).toBe(0);
    expect(await (await h.request("/me", { cookie })).json()).toMatchObject({ user: null });
    expect((await h.refusal({ cookie })).data.code).toBe("session_missing");
  });

  it("keeps its write when a refresh runs at the same time", async () => {
    const h = await start();
    incrementer(h, () => sleep(300));
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const answer = socket.emitWithAck("increment");
    await sleep(100);
    await h.auth.refresh("1");
    expect(await answer).toBe(1);
    expect(await (await h.request("/me", { cookie })).json()).toMatchObject({ session: { count: 1 } });
  });
});

describe("more ways a session ends", () => {
  it("a new login over HTTP ends the sockets of the session it replaced", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket);
    await h.request("/login", { method: "POST", cookie, body: new URLSearchParams({ username: "bob", password: "bob" }) });
    expect((await ended).code).toBe("logged_out");
  });

  it("revalidateEveryMs ends the sockets of a removed user with user_removed", async () => {
    const h = await start({ bridge: { revalidateEveryMs: 200 } });
    const socket = await h.connect({ cookie: await h.login("alice") });
    const ended = ending(socket);
    h.users.delete("1");
    expect((await ended).code).toBe("user_removed");
  });

  it("does not track a socket an earlier connection listener already disconnected", async () => {
    const h = await start({ bridge: false });
    h.io.on("connection", (socket) => socket.disconnect());
    const auth = bridge(h.io, { session: h.sessionMiddleware, passport: h.passport });
    h.client({ cookie: await h.login("alice") });
    await sleep(300);
    expect(await auth.isOnline("1")).toBe(false);
  });
});

describe("presence", () => {
  it("isOnline() and onlineUsers() see sockets on every node", async () => {
    const [a, b] = await cluster();
    expect(await a.auth.onlineUsers()).toEqual([]);
    const alice = await b.connect({ cookie: await b.login("alice") });
    await a.connect({ cookie: await a.login("carol") });
    expect(await a.auth.isOnline("1")).toBe(true);
    expect(await a.auth.isOnline(2)).toBe(false);
    expect(await a.auth.onlineUsers()).toEqual(["1", "3"]);
    alice.disconnect();
    await sleep(100);
    expect(await a.auth.isOnline("1")).toBe(false);
    expect(await b.auth.onlineUsers()).toEqual(["3"]);
  });
});

describe("connection-state recovery", () => {
  const recovery = { io: { connectionStateRecovery: { maxDisconnectionDuration: 10_000 } } };

  it("a recovered socket is authenticated again: it keeps its user, or is refused once its session is over", async () => {
    const h = await start(recovery);
    // The bridge turns skipMiddlewares off, so recovery cannot skip authentication.
    expect((h.io as unknown as { opts: { connectionStateRecovery: { skipMiddlewares: boolean } } }).opts.connectionStateRecovery.skipMiddlewares).toBe(false);
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    // Recovery resumes from the last broadcast the client received.
    const news = nextEvent(socket, "news");
    h.io.emit("news", 1);
    await news;

    socket.io.engine.close();
    await nextEvent(socket, "connect");
    expect(socket.recovered).toBe(true);
    expect(await whoami(socket)).toMatchObject({ user: { name: "Alice" }, rooms: expect.arrayContaining(["user:1"]) });

    // Logged out while the connection was down: the recovery is refused, and the rooms are not restored.
    const refused = nextEvent<Error & { data: { code: string } }>(socket, "connect_error");
    socket.io.engine.close();
    await h.request("/logout", { method: "POST", cookie });
    expect((await refused).data.code).toBe("session_missing");
    expect(h.io.of("/").adapter.rooms.get("user:1")).toBeUndefined();
  });

  it("a recovered socket that is now anonymous loses its old rooms and identity, and does not count as recovered", async () => {
    const h = await start({ ...recovery, bridge: { allowAnonymous: true } });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    await dropWhileSessionEnds(h, socket, cookie);
    await nextEvent(socket, "connect");
    expect(socket.recovered).toBe(false);
    expect(await whoami(socket)).toMatchObject({ user: null, data: {}, rooms: [] });
  });
});
