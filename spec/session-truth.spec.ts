/**
 * The socket sees what HTTP sees: no cached handshake, shared read or session copy outlives a logout, an
 * expiry or a change. Attacked the way the session-truth issue found them broken: raw Engine.IO connections
 * kept open with no namespace, two nodes on the Redis adapter, a store that answers late, object
 * serializers, and namespaces of one connection that disagree. (Expiry by TTL, keys deleted behind the
 * bridge's back and sessionCacheMs are in spec/store-contract.spec.ts, under both Redis clients.)
 */
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import session from "express-session";
import jwt from "jsonwebtoken";
import { ExtractJwt, Strategy as JwtStrategy } from "passport-jwt";
import { describe, expect, it } from "vitest";
import {
  harnessPerTest,
  nextEvent,
  sessionIdOf,
  type Harness,
  type HarnessOptions,
  type User,
  type WhoAmI,
} from "./helpers/harness.js";
import { twoNodes } from "./helpers/live.js";
import { rawConnection, type RawConnection } from "./helpers/raw-engine.js";
import { FlakyStore } from "./helpers/stores.js";
import { captureWarnings } from "./helpers/warnings.js";

const start = harnessPerTest();
const warnings = captureWarnings();
const whoami = (socket: { emitWithAck(ev: string): Promise<unknown> }) => socket.emitWithAck("whoami") as Promise<WhoAmI>;

/** Alice's raw connection, admitted in "/", then idle: the namespace left, the Engine.IO connection kept. */
async function idleConnection(h: Harness, cookie: string): Promise<RawConnection> {
  const raw = await rawConnection(h.url, { cookie });
  expect(await raw.connect("/")).toMatchObject({ ok: true });
  raw.leave("/");
  // The server has seen the namespace leave once the session has no socket on the node.
  while (h.io.of("/").sockets.size > 0) await sleep(5);
  return raw;
}

/** The next CONNECT on the idle connection: refused with a code, or the connection is gone; never admitted. */
async function reconnect(raw: RawConnection, auth?: Record<string, unknown>): Promise<string> {
  if (!raw.open) return "closed";
  const answer = await raw.connect("/", auth).catch(() => undefined);
  if (!answer) return "closed";
  return answer.ok ? "admitted" : answer.data.code;
}

const cluster = (options: HarnessOptions = {}) => twoNodes(start, options);

describe("an idle Engine.IO connection CONNECTing again", () => {
  it("is refused after a logout on the same node", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const raw = await idleConnection(h, cookie);
    await h.request("/logout", { method: "POST", cookie });
    expect(await reconnect(raw)).toBe("session_missing");
  });

  it("is refused after a logout on the other node", async () => {
    const [a, b] = await cluster();
    const cookie = await a.login("alice");
    const raw = await idleConnection(a, cookie);
    await b.request("/logout", { method: "POST", cookie });
    expect(await reconnect(raw)).toBe("session_missing");
  });

  it("is refused after disconnectUser of a banned user", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const raw = await idleConnection(h, cookie);
    h.users.delete("1");
    await h.auth.disconnectUser("1");
    expect(await reconnect(raw)).toBe("user_not_found");
  });

  it("is refused once its JWT expired", async () => {
    const KEY = "a jwt signing key of 32 bytes or more!";
    const h = await start({
      bridge: { strategies: ["jwt"] },
      passport: (passport, users) =>
        passport.use(
          "jwt",
          new JwtStrategy(
            { secretOrKey: KEY, jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(), algorithms: ["HS256"] },
            (payload: { sub: string }, done: (err: unknown, user?: User | false) => void) => done(null, users.get(payload.sub) ?? false),
          ),
        ),
    });
    // exp is in whole seconds: a token signed late in a second with expiresIn: 1 could be over at once.
    const exp = Math.ceil(Date.now() / 1000) + 1;
    const token = jwt.sign({ sub: "1", exp }, KEY, { algorithm: "HS256" });
    const raw = await rawConnection(h.url);
    expect(await raw.connect("/", { token })).toMatchObject({ ok: true });
    raw.leave("/");
    await sleep(exp * 1000 + 100 - Date.now());
    expect(await reconnect(raw, { token })).toBe("token_expired");
  });

  it("is refused after the victim's logout, even when 10,000 anonymous logouts follow it", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const raw = await idleConnection(h, cookie);
    await h.request("/logout", { method: "POST", cookie });
    // What 10,000 anonymous logouts do to the store (each regenerates, so destroys, a fresh session): an
    // ending the bridge hears of, through the store's destroy. Called straight, without 10,000 HTTP requests.
    const destroy = promisify(h.store.destroy.bind(h.store));
    let left = 10_000;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (left-- > 0) await destroy(`anonymous-${left}`);
      }),
    );
    // One through HTTP too, the way they come.
    expect((await h.request("/logout", { method: "POST" })).status).toBe(204);
    expect(await reconnect(raw)).toBe("session_missing");
  }, 60_000);

  it("keeps no ending in memory once no admission is in flight, anonymous sockets connected or not", async () => {
    const h = await start({ bridge: { allowAnonymous: true } });
    await h.connect();
    const cookie = await h.login("alice");
    await h.connect({ cookie });
    for (let i = 0; i < 200; i++) await h.request("/logout", { method: "POST" });
    // (The endings are private: their count is the memory this bounds.)
    expect((h.auth as unknown as { ledger: { endings: { size: number } } }).ledger.endings.size).toBe(0);
  });

  it("closes the Engine.IO connection of an ending, on every node", async () => {
    const [a, b] = await cluster();
    const cookie = await a.login("alice");
    const raw = await rawConnection(a.url, { cookie });
    expect(await raw.connect("/")).toMatchObject({ ok: true });
    await b.request("/logout", { method: "POST", cookie });
    await raw.closed;
    expect(raw.events).toContainEqual(["/", "auth:ended", { code: "logged_out" }]);
    expect(raw.disconnected).toEqual(["/"]);
  });
});

/** A MemoryStore whose next reads answer `ms` late, with the record as it was when asked. */
class LateStore extends session.MemoryStore {
  lateReads = 0;
  override get(sid: string, callback: (err: unknown, session?: session.SessionData | null) => void): void {
    if (this.lateReads <= 0) return super.get(sid, callback);
    this.lateReads--;
    super.get(sid, (err, record) => void setTimeout(callback, 400, err, record));
  }
}

describe("a store read in flight across a logout", () => {
  it("admits neither the handshake that began before the logout nor one that began after it", async () => {
    const store = new LateStore();
    const h = await start({ store });
    const cookie = await h.login("alice");
    store.lateReads = 1;
    const before = h.refusal({ cookie, reconnection: false });
    await sleep(50);
    await h.request("/logout", { method: "POST", cookie });
    // Joining the read in flight would hand this handshake the record from before the logout.
    const after = await h.refusal({ cookie, reconnection: false });
    expect(after.data.code).toBe("session_missing");
    expect((await before).data.code).toBe("session_missing");
  });
});

describe("object serializers (the userId option)", () => {
  const objectSerializer: HarnessOptions = {
    replaceDeserializer: true,
    passport: (passport, users) => {
      (passport as unknown as { _serializers: unknown[] })._serializers = [];
      // Socket.IO's own Passport example serializes the whole user.
      passport.serializeUser((user, done) => done(null, { ...(user as User), passwordHash: "$2b$10$secret" }));
      passport.deserializeUser((serialized: User, done) => done(null, users.get(serialized.id) ?? false));
    },
  };

  it("userRoom(1), disconnectUser(1) and isOnline(1) reach the user, and presence carries only the id and info", async () => {
    const h = await start(objectSerializer);
    h.auth.channel("presence:room:{id}", (user) => (user ? { info: { name: user.name } } : false));
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    expect((await whoami(socket)).rooms).toContain("user:1");
    expect(await h.auth.isOnline(1)).toBe(true);
    expect(await socket.emitWithAck("auth:join", { channel: "presence:room:1" })).toEqual({
      ok: true,
      members: [{ userId: "1", info: { name: "Alice" } }],
    });
    const news = nextEvent(socket, "news");
    h.io.to(h.auth.userRoom(1)).emit("news", "for alice");
    expect(await news).toBe("for alice");
    const ended = nextEvent(socket, "auth:ended");
    expect(await h.auth.disconnectUser(1)).toBe(1);
    expect(await ended).toEqual({ code: "revoked" });
  });

  it("warns once, naming the option, when the serialized user has no id", async () => {
      const h = await start({
        ...objectSerializer,
        passport: (passport, users) => {
          (passport as unknown as { _serializers: unknown[] })._serializers = [];
          passport.serializeUser((user, done) => done(null, { name: (user as User).username }));
          passport.deserializeUser((serialized: { name: string }, done) =>
            done(null, [...users.values()].find((u) => u.username === serialized.name) ?? false),
          );
        },
      });
      const cookie = await h.login("alice");
      await h.connect({ cookie });
      await h.connect({ cookie });
      await sleep(10);
      const mine = warnings.filter(([code]) => code === "PSB_USER_ID");
      expect(mine).toHaveLength(1);
      expect(mine[0]![1]).toMatch(/userId/);
  });

  it("a userId option names the rooms", async () => {
    const h = await start({ bridge: { userId: (user) => `u-${user.username}` } });
    const cookie = await h.login("bob");
    expect((await whoami(await h.connect({ cookie }))).rooms).toEqual(expect.arrayContaining(["user:u-bob"]));
    expect(await h.auth.isOnline("u-bob")).toBe(true);
  });
});

describe("per-namespace identity", () => {
  const adminRefusesUsers: HarnessOptions = {
    bridge: {
      onAccept: (socket) => {
        if (socket.nsp.name === "/admin") throw new Error("not for users");
      },
      allowAnonymous: (socket) => socket.nsp.name === "/admin",
    },
  };
  const answerWhoami = (h: Harness) =>
    h.io.of("/admin").on("connection", (socket) => socket.on("whoami", (ack: (a: unknown) => void) => ack({ user: socket.request.user ?? null, isAuthenticated: socket.request.isAuthenticated() })));

  it("an anonymous admission never shows the user another namespace of the connection admitted", async () => {
    const h = await start(adminRefusesUsers);
    answerWhoami(h);
    const cookie = await h.login("alice");
    const admin = h.client({ cookie, namespace: "/admin" });
    await nextEvent(admin, "connect");
    expect(await admin.emitWithAck("whoami")).toEqual({ user: null, isAuthenticated: false });
    const main = admin.io.socket("/");
    main.connect();
    await nextEvent(main, "connect");
    expect((await whoami(main)).user).toMatchObject({ name: "Alice" });
    expect(await admin.emitWithAck("whoami")).toEqual({ user: null, isAuthenticated: false });
  });

  it("the other order too: a user admitted first stays hidden from the anonymous namespace, and keeps its own", async () => {
    const h = await start(adminRefusesUsers);
    answerWhoami(h);
    const cookie = await h.login("alice");
    const main = await h.connect({ cookie });
    const admin = main.io.socket("/admin");
    admin.connect();
    await nextEvent(admin, "connect");
    expect(await admin.emitWithAck("whoami")).toEqual({ user: null, isAuthenticated: false });
    expect((await whoami(main)).user).toMatchObject({ name: "Alice" });
  });
});

describe("a connection authenticated again", () => {
  it("never takes the session or user away from the connection's sockets already connected", async () => {
    const store = new FlakyStore();
    const h = await start({ store, bridge: { sessionCacheMs: 100 } });
    h.io.of("/chat");
    const cookie = await h.login("alice");
    const main = await h.connect({ cookie });
    await sleep(150);
    store.failing = true;
    const chat = main.io.socket("/chat");
    chat.connect();
    expect((await nextEvent<Error & { data: { code: string } }>(chat, "connect_error")).data.code).toBe("store_unavailable");
    const seen = (await main.emitWithAck("whoami")) as WhoAmI;
    expect(seen).toMatchObject({ user: { name: "Alice" }, isAuthenticated: true });
    expect(seen.sessionID).toBe(sessionIdOf(cookie));
  });
});

describe("the failure limit counts every CONNECT", () => {
  it("refuses repeated namespace CONNECTs on one connection past the limit, and closes the connection", async () => {
    const h = await start({
      bridge: {
        failureLimit: 5,
        onAccept: (socket) => {
          if ((socket.handshake.auth as { pin?: string }).pin !== "4821") throw new Error("wrong pin");
        },
      },
    });
    const cookie = await h.login("alice");
    const raw = await rawConnection(h.url, { cookie });
    const codes: string[] = [];
    for (let pin = 0; pin < 20 && raw.open; pin++) codes.push(await reconnect(raw, { pin: String(pin).padStart(4, "0") }));
    expect(codes.slice(0, 5)).toEqual(Array(5).fill("rejected"));
    expect(codes[5]).toBe("too_many_attempts");
    await raw.closed;
    expect(codes.length).toBeLessThanOrEqual(7);
  });
});
