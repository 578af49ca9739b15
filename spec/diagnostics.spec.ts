/**
 * Mistakes that used to read as something else, each named with its fix: a `secure` session cookie over plain
 * http (`cookie_requires_https`), `sameSite: "none"` without `secure` (a warning at bridge()), a Redis outage
 * that the ClusterError blamed on nodes without bridge(), what passport.session() left on io.engine really does,
 * and `/compat`'s bare "No session found" (a reason, and a DEBUG line that names a wrong `key`).
 */
import { format } from "node:util";
import { createAdapter } from "@socket.io/redis-adapter";
import signature from "cookie-signature";
import createDebug from "debug";
import session from "express-session";
import { Redis } from "ioredis";
import { Passport } from "passport";
import { Server } from "socket.io";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { authorize } from "../lib/compat.js";
import { bridge, ClusterError, SESSION_MISSING_REASONS } from "../lib/index.js";
import { startDurableRedis } from "./helpers/durable-redis.js";
import { harnessPerTest, SECRET, sessionIdOf } from "./helpers/harness.js";
import { captureWarnings } from "./helpers/warnings.js";

const start = harnessPerTest();
const warnings = captureWarnings();
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("a secure session cookie on plain http", () => {
  it("refuses with reason cookie_requires_https, whose sentence names the fix", async () => {
    const h = await start({ session: { cookie: { secure: true } } });
    // What a person sees first: the login answers 200 and sets no cookie (express-session keeps a Secure one off http).
    const login = await h.request("/login", { method: "POST", body: new URLSearchParams({ username: "alice", password: "alice" }) });
    expect(login.status).toBe(200);
    expect(login.headers.getSetCookie()).toEqual([]);

    const refusal = await h.refusal({ reconnection: false });
    expect(refusal.data).toEqual({ code: "session_missing", reconnect: false, reason: "cookie_requires_https" });
    expect(refusal.message).toBe(SESSION_MISSING_REASONS.cookie_requires_https);
    expect(refusal.message).toMatch(/over https/);
    expect(refusal.message).toMatch(/`trustProxy: true`/);
    expect(refusal.message).toMatch(/`proxy: true`/);
    expect(refusal.message).toMatch(/`cookie\.secure` to false/);
    // An X-Forwarded-Proto the bridge was not told to trust changes nothing.
    const forged = await h.refusal({ reconnection: false, headers: { "x-forwarded-proto": "https" } });
    expect(forged.data.reason).toBe("cookie_requires_https");
  });

  it("is not the reason when the handshake came over https by a trusted proxy, or when the cookie is not secure", async () => {
    const proxied = await start({ session: { cookie: { secure: true } }, bridge: { trustProxy: true } });
    const viaProxy = await proxied.refusal({ reconnection: false, headers: { "x-forwarded-proto": "https" } });
    expect(viaProxy.data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
    // Without the header, the same server says it.
    expect((await proxied.refusal({ reconnection: false })).data.reason).toBe("cookie_requires_https");

    // "auto" is Secure only over https: over http the cookie is set, and a missing one is no_cookie.
    const auto = await start({ session: { cookie: { secure: "auto" } } });
    expect((await auto.refusal({ reconnection: false })).data.reason).toBe("no_cookie");
    const cookie = await auto.login("alice");
    await auto.connect({ cookie });
  });
});

describe('sameSite: "none" without secure', () => {
  const passport = new Passport();
  const middleware = (cookie: session.CookieOptions) => session({ secret: SECRET, resave: false, saveUninitialized: false, cookie });

  it("warns at bridge() with PSB_SAMESITE_NONE_INSECURE, naming the fix; not for a cookie browsers keep", async () => {
    bridge(new Server(), { session: middleware({ sameSite: "none" }), passport });
    await settle();
    expect(warnings.map(([code]) => code)).toEqual(["PSB_SAMESITE_NONE_INSECURE"]);
    const [, message] = warnings[0]!;
    expect(message).toMatch(/browsers reject/);
    expect(message).toContain('`cookie: { sameSite: "none", secure: true }`');
    expect(message).toContain('`sameSite: "lax"`');

    // Quiet for a cookie browsers keep.
    warnings.length = 0;
    // (express-session takes sameSite "auto" too; its types do not say so.)
    for (const cookie of [{}, { sameSite: "lax" }, { sameSite: "none", secure: true }, { sameSite: "none", secure: "auto" }, { sameSite: "auto", secure: "auto" }]) {
      bridge(new Server(), { session: middleware(cookie as session.CookieOptions), passport });
    }
    await settle();
    expect(warnings).toEqual([]);
  });
});

describe("a ClusterError says what most likely happened", () => {
  it("with the adapter's Redis down: the adapter, not nodes without bridge() (which a silent node still hints at)", { timeout: 15_000 }, async () => {
    const redis = await startDurableRedis();
    try {
      const h = await start({
        store: "memory",
        adapter: (io) => {
          const pub = new Redis(redis.url, { maxRetriesPerRequest: null });
          const sub = pub.duplicate();
          for (const client of [pub, sub]) client.on("error", () => undefined);
          io.adapter(createAdapter(pub, sub, { requestsTimeout: 300 }));
          return () => {
            pub.disconnect();
            sub.disconnect();
          };
        },
      });
      expect(await h.auth.onlineUsers()).toEqual([]);
      await redis.kill();
      const error = await h.auth.onlineUsers().catch((err: unknown) => err);
      expect(error).toBeInstanceOf(ClusterError);
      expect(error).toMatchObject({ code: "cluster_timeout" });
      expect((error as Error).message).toMatch(/The Socket\.IO adapter gave no answer to "users".*probably down/);
      expect((error as Error).message).not.toMatch(/every node runs bridge\(\)/);
    } finally {
      await redis.close();
    }

    // With two nodes on a Redis that is up, and one of them silent, the hint about bridge() stays.
    const a = await start({ redisAdapter: true, requestsTimeout: 300 });
    const b = await start({ redisAdapter: true, requestsTimeout: 300, prefix: a.prefix });
    b.io.of("/").removeAllListeners("passport-socketio-bridge:command");
    // Once both nodes are subscribed (else node A asks nobody, and the answer is its own).
    const adapter = a.io.of("/").adapter as unknown as { serverCount(): Promise<number> };
    await expect.poll(() => adapter.serverCount()).toBe(2);
    const error = await a.auth.onlineUsers().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ClusterError);
    expect((error as Error).message).toMatch(/Not every Socket\.IO node acknowledged "users".*every node runs bridge\(\)/);
  });
});

describe("passport.session() left on io.engine", () => {
  it("is described by what it does: deserializeUser per Engine.IO request, not Set-Cookie", async () => {
    let deserialized = 0;
    const h = await start({
      bridge: false,
      replaceDeserializer: true,
      passport: (p, users) =>
        p.deserializeUser((id: string, done) => {
          deserialized++;
          done(null, users.get(id) ?? false);
        }),
    });
    h.io.engine.use(h.sessionMiddleware);
    h.io.engine.use(h.passport.session());
    bridge(h.io, { session: h.sessionMiddleware, passport: h.passport });
    const socket = await h.connect({ cookie: await h.login("alice"), transport: "polling" });
    const before = deserialized;
    for (let i = 0; i < 3; i++) await socket.emitWithAck("whoami");
    // Each acknowledged event is a POST and a GET on the engine, and each ran deserializeUser again.
    expect(deserialized - before).toBeGreaterThanOrEqual(3);
    await settle();
    const message = warnings.find(([code]) => code === "PSB_ENGINE_PASSPORT")?.[1];
    expect(message).toMatch(/^passport\.session\(\) is still installed on io\.engine/);
    expect(message).toMatch(/calls your deserializeUser again on the Engine\.IO requests/);
    expect(message).not.toMatch(/Set-Cookie/);
    expect(message).toMatch(/Remove it/);
  });

  it("alone (its session middleware removed) fails every handshake, which the client retries as a network error", async () => {
    const h = await start({ bridge: false });
    h.io.engine.use(h.passport.session());
    bridge(h.io, { session: h.sessionMiddleware, passport: h.passport });
    await settle();
    const refusal = await h.refusal({ cookie: await h.login("alice"), transport: "polling" });
    expect(refusal.message).toBe("xhr poll error");
    expect(refusal.socket.active).toBe(true);
    refusal.socket.disconnect();
    expect(warnings.find(([code]) => code === "PSB_ENGINE_PASSPORT")?.[1]).toMatch(/Login sessions require session support/);
  });
});

describe('/compat: "No session found"', () => {
  // The compat namespace's DEBUG lines, as `DEBUG=passport-socketio-bridge:compat` would print them.
  const lines: string[] = [];
  let namespaces = "";
  const log = createDebug.log;
  beforeEach(() => {
    lines.length = 0;
    namespaces = createDebug.disable();
    createDebug.enable("passport-socketio-bridge:compat");
    createDebug.log = (...args: unknown[]) => void lines.push(format(...args));
  });
  afterEach(() => {
    createDebug.log = log;
    createDebug.disable();
    if (namespaces) createDebug.enable(namespaces);
  });

  const startCompat = async (key?: string) => {
    const h = await start({ bridge: false });
    h.io.use(authorize({ secret: SECRET, store: h.store, passport: h.passport, ...(key ? { key } : {}) }));
    return h;
  };

  it("with a wrong `key` gives a reason, and a DEBUG line that names the cookie and the fix", async () => {
    const h = await startCompat("sid");
    const refusal = await h.refusal({ cookie: await h.login("alice"), reconnection: false });
    expect(refusal.message).toBe("No session found");
    expect(refusal.data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
    const line = lines.find((l) => l.includes("No session found"));
    expect(line).toMatch(/no "sid" cookie came, but "connect\.sid" is signed with `secret`: `key` is probably wrong/);
    expect(line).toMatch(/authorize\(\{ key \}\)/);
  });

  it("says bad_signature and unknown_session as bridge() does, each with its DEBUG line", async () => {
    const h = await startCompat();
    const sid = sessionIdOf(await h.login("alice"));
    const signed = (id: string, secret: string) => `connect.sid=${encodeURIComponent(`s:${signature.sign(id, secret)}`)}`;
    const bad = await h.refusal({ cookie: signed(sid, "another secret"), reconnection: false });
    expect(bad.data).toEqual({ code: "session_missing", reconnect: false, reason: "bad_signature" });
    const unknown = await h.refusal({ cookie: signed("no-such-session", SECRET), reconnection: false });
    expect(unknown.data).toEqual({ code: "session_missing", reconnect: false, reason: "unknown_session" });
    const none = await h.refusal({ reconnection: false });
    expect(none.data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
    expect(lines.filter((l) => l.includes("No session found")).map((l) => /\((\w+)\)/.exec(l)?.[1])).toEqual([
      "bad_signature",
      "unknown_session",
      "no_cookie",
    ]);
    expect(lines.join("\n")).toMatch(/not the instance your session middleware uses/);
  });
});
