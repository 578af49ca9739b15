/**
 * Live sockets follow their session after the handshake: logout and destroy anywhere, expiry and renewal,
 * keep-alive, refreshed users, session writes and presence, across two nodes on one Redis.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import type { Socket as ClientSocket } from "socket.io-client";
import { describe, expect, inject, it } from "vitest";
import { bridge } from "../lib/index.js";
import { monitorPerTest } from "./helpers/monitor.js";
import {
  dropWhileSessionEnds,
  harnessPerTest,
  nextEvent,
  openRedisStore,
  sessionIdOf,
  type Harness,
  type HarnessOptions,
  type WhoAmI,
} from "./helpers/harness.js";

const start = harnessPerTest();
const monitorStore = monitorPerTest();
const monitor = (h: Harness) => monitorStore(h.prefix);

async function cluster(options: HarnessOptions = {}) {
  const a = await start({ redisAdapter: true, ...options });
  const b = await start({ redisAdapter: true, prefix: a.prefix, ...options });
  return [a, b] as const;
}

/** Resolves with the `auth:ended` payload and the ms it took from `since`, once the socket is also disconnected. */
function ending(socket: ClientSocket, since = Date.now()) {
  const notice = nextEvent<{ code: string }>(socket, "auth:ended", 10_000);
  const gone = nextEvent<string>(socket, "disconnect", 10_000);
  return Promise.all([notice, gone]).then(([payload, reason]) => ({ ...payload, reason, ms: Date.now() - since }));
}

const whoami = (socket: ClientSocket) => socket.timeout(5000).emitWithAck("whoami") as Promise<WhoAmI>;

describe("logout anywhere", () => {
  it("req.logout() on node A ends the session's sockets on both nodes within 1 s, and nobody else's", async () => {
    const [a, b] = await cluster();
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
    await sleep(100);
    expect(bobA.connected && bobB.connected).toBe(true);
    expect((await whoami(bobB)).user).toMatchObject({ name: "Bob" });
  });

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
  it("an idle socket ends within 1 s of its session's expiry, for one store read per session", async () => {
    const h = await start({ session: { cookie: { maxAge: 2000 } } });
    const m = await monitor(h);
    const loggedIn = Date.now();
    const cookie = await h.login("alice");
    const sockets = [await h.connect({ cookie }), await h.connect({ cookie, transport: "polling" })];
    await m.take();
    const ends = await Promise.all(sockets.map((s) => ending(s, loggedIn)));
    for (const end of ends) {
      expect(end.code).toBe("session_expired");
      expect(end.ms).toBeGreaterThanOrEqual(2000);
      expect(end.ms).toBeLessThan(3000);
    }
    // One read to confirm the expiry, for two sockets of one session.
    expect(await m.counts()).toEqual({ GET: 1 });
  });

  it("costs one read per session at expiry, not per socket: 200 idle sockets of 20 sessions", async () => {
    // Long enough for 200 handshakes on a busy 2-core machine to finish before the sessions expire.
    const h = await start({ session: { cookie: { maxAge: 5000 } } });
    const cookies = await Promise.all(Array.from({ length: 20 }, (_, i) => h.login(["alice", "bob", "carol"][i % 3]!)));
    const m = await monitor(h);
    const sockets = await h.connectSessions(cookies, 200, (i) => (i % 5 ? "websocket" : "polling"));
    expect(await m.counts()).toEqual({ GET: 20 });
    const ends = await Promise.all(sockets.map((s) => ending(s)));
    expect(new Set(ends.map((end) => end.code))).toEqual(new Set(["session_expired"]));
    expect(await m.counts()).toEqual({ GET: 20 });
  });

  it("follows an HTTP renewal: with rolling, a request at 1.2 s moves the end to the renewed expiry", async () => {
    const h = await start({ session: { rolling: true, cookie: { maxAge: 2000 } } });
    const loggedIn = Date.now();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket, loggedIn);
    await sleep(1200 - (Date.now() - loggedIn));
    const renewed = Date.now() - loggedIn;
    await h.request("/me", { cookie });
    await sleep(2500 - (Date.now() - loggedIn));
    expect(socket.connected).toBe(true);
    const end = await ended;
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeGreaterThanOrEqual(renewed + 2000);
    expect(end.ms).toBeLessThan(renewed + 3000);
  });

  it("follows a renewal made through the other node", async () => {
    const [a, b] = await cluster({ session: { rolling: true, cookie: { maxAge: 2000 } } });
    const loggedIn = Date.now();
    const cookie = await a.login("alice");
    const socket = await a.connect({ cookie });
    const ended = ending(socket, loggedIn);
    await sleep(1200);
    const renewed = Date.now() - loggedIn;
    await b.request("/me", { cookie });
    await sleep(1300);
    expect(socket.connected).toBe(true);
    const end = await ended;
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeLessThan(renewed + 3000);
  });

  it("with MemoryStore too: ends at expiry, follows a renewal", async () => {
    const h = await start({ store: "memory", session: { rolling: true, cookie: { maxAge: 2000 } } });
    const loggedIn = Date.now();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket, loggedIn);
    await sleep(1000);
    await h.request("/me", { cookie });
    const end = await ended;
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeGreaterThanOrEqual(3000);
    expect(end.ms).toBeLessThan(4000);
  });

  it("a renewal no hook saw (a process without the bridge) does not end the socket early", async () => {
    const h = await start({ session: { cookie: { maxAge: 2000 } } });
    const loggedIn = Date.now();
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket, loggedIn);
    await sleep(1200);
    // What connect-redis's touch does, from elsewhere: a new TTL, the stored cookie.expires unchanged.
    const redis = new Redis(inject("redisUrl"));
    await redis.pexpire(`${h.prefix}${sessionIdOf(cookie)}`, 2000);
    redis.disconnect();
    await sleep(3100 - (Date.now() - loggedIn));
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
    const [a, b] = await cluster({ session: { cookie: { maxAge: 2000 } } });
    b.io.of("/").removeAllListeners("passport-socketio-bridge:command");
    const loggedIn = Date.now();
    const socket = await a.connect({ cookie: await a.login("alice") });
    const end = await ending(socket, loggedIn);
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeLessThan(3000);
  });
});

describe("keep-alive", () => {
  it("client events keep the session alive; an idle socket then expires", async () => {
    const h = await start({ session: { cookie: { maxAge: 2000 } } });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const since = Date.now();
    while (Date.now() - since < 3500) {
      await socket.emitWithAck("whoami");
      await sleep(200);
    }
    expect(socket.connected).toBe(true);
    // Alive in the store too, not only on the socket: HTTP still sees Alice.
    expect(await (await h.request("/me", { cookie })).json()).toMatchObject({ user: { name: "Alice" } });
    const end = await ending(socket);
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeLessThan(3000);
  });

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

    for (let round = 0; round < 5; round++) {
      await Promise.all(sockets.map(async (s) => {
        await s.emitWithAck("whoami");
        await s.emitWithAck("whoami");
      }));
      await sleep(350);
    }
    // 2,000 events in five rounds: every session touched in every round (rounds are 350 ms apart), and
    // never twice within 300 ms, however many of its sockets spoke.
    const touches = await m.takeTimed();
    expect(touches.every(({ command }) => command[0] === "EXPIRE")).toBe(true);
    const bySession = new Map<string, typeof touches>();
    for (const touch of touches) bySession.set(touch.command[1]!, [...(bySession.get(touch.command[1]!) ?? []), touch]);
    expect(bySession.size).toBe(20);
    for (const times of bySession.values()) {
      expect(times.length).toBeGreaterThanOrEqual(5);
      for (let i = 1; i < times.length; i++) expect(times[i]!.at - times[i - 1]!.at).toBeGreaterThanOrEqual(295);
    }

    // Idle sockets, pinged every 150 ms: nothing.
    await sleep(700);
    expect(await m.counts()).toEqual({});
  });

  it("only as far as the store really renews: a store that ignores touches still expires", async () => {
    const prefix = `sess:notouch:${Date.now()}:`;
    // connect-redis 8 over ioredis, or 9 over node-redis, as the run's PSB_REDIS_CLIENT says.
    const { store, close } = await openRedisStore({ prefix, disableTouch: true });
    try {
      const h = await start({ store, prefix, session: { cookie: { maxAge: 2000 } } });
      const loggedIn = Date.now();
      const cookie = await h.login("alice");
      const socket = await h.connect({ cookie });
      const ended = ending(socket, loggedIn);
      while (socket.connected && Date.now() - loggedIn < 3500) {
        await socket.emitWithAck("whoami").catch(() => undefined);
        await sleep(200);
      }
      const end = await ended;
      expect(end.code).toBe("session_expired");
      expect(end.ms).toBeLessThan(3000);
    } finally {
      await close();
    }
  });

  it("can be turned off", async () => {
    const h = await start({ bridge: { keepAliveMs: false }, session: { cookie: { maxAge: 2000 } } });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    const ended = ending(socket);
    const since = Date.now();
    while (socket.connected && Date.now() - since < 3500) {
      await socket.emitWithAck("whoami").catch(() => undefined);
      await sleep(200);
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

describe("withSession", () => {
  it("40 concurrent increments from two sockets of one session all land", async () => {
    const h = await start();
    h.io.on("connection", (socket) => {
      socket.on("increment", (ack: (n: unknown) => void) => {
        h.auth
          .withSession(socket, async (session) => {
            const count = (session.count ?? 0) + 1;
            await sleep(1);
            session.count = count;
            return count;
          })
          .then(ack, (err: { code: string }) => ack({ error: err.code }));
      });
    });
    const cookie = await h.login("alice");
    const tabs = [await h.connect({ cookie }), await h.connect({ cookie, transport: "polling" })];
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => tabs[i % 2]!.emitWithAck("increment")));
    expect([...results].sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const me = (await (await h.request("/me", { cookie })).json()) as { session: { count: number } };
    expect(me.session.count).toBe(40);
  });

  it("a session that vanished from the store ends the socket as logged_out and rejects", async () => {
    const h = await start();
    h.io.on("connection", (socket) => {
      socket.on("increment", (ack: (n: unknown) => void) => {
        h.auth.withSession(socket, (session) => (session.count = 1)).then(ack, (err: { code: string }) => ack({ error: err.code }));
      });
    });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    // Gone behind express-session's back (an admin tool, a flush): only the reload can tell.
    const redis = new Redis(inject("redisUrl"));
    await redis.del(`${h.prefix}${sessionIdOf(cookie)}`);
    redis.disconnect();
    const ended = ending(socket);
    expect(await socket.emitWithAck("increment")).toEqual({ error: "logged_out" });
    expect((await ended).code).toBe("logged_out");
  });
});

describe("withSession and the session's end", () => {
  function incrementer(h: Harness, work: (session: { count?: number }) => Promise<void>) {
    h.io.on("connection", (socket) => {
      socket.on("increment", (ack: (n: unknown) => void) => {
        h.auth
          .withSession(socket, async (session) => {
            await work(session);
            session.count = (session.count ?? 0) + 1;
            return session.count;
          })
          .then(ack, (err: { code: string }) => ack({ error: err.code }));
      });
    });
  }

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
    await sleep(700);
    const redis = new Redis(inject("redisUrl"));
    expect(await redis.exists(`${h.prefix}${sessionIdOf(cookie)}`)).toBe(0);
    redis.disconnect();
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
