/**
 * The mistakes new users and half-finished migrations make, caught where they are made: a ConfigError at
 * bridge() that names the fix, one warning per leftover middleware, and refusals that say which mistake it
 * was instead of looking like an outage that clients retry forever.
 */
import signature from "cookie-signature";
import session from "express-session";
import { Passport } from "passport";
import { Server } from "socket.io";
import { describe, expect, it } from "vitest";
import { bridge, SESSION_MISSING_REASONS } from "../lib/index.js";
import { harnessPerTest, SECRET, setupError } from "./helpers/harness.js";
import { captureWarnings } from "./helpers/warnings.js";

const start = harnessPerTest();

const warnings = captureWarnings();
const settle = () => new Promise((resolve) => setImmediate(resolve));

const sessionMiddleware = (cookie: session.CookieOptions = {}) =>
  session({ secret: SECRET, resave: false, saveUninitialized: false, cookie });

describe("caught at bridge(), with a ConfigError that names the fix", () => {
  it("Passport's middleware passed as `session`", () => {
    const passport = new Passport();
    const err = setupError(() => bridge(new Server(), { session: passport.session(), passport }));
    expect(err.message).toMatch(/passport\.session\(\)/);
    expect(err.message).toMatch(/express-session/);
  });

  it("a cookie path that does not cover the Socket.IO path, with no warning blaming the store", async () => {
    const passport = new Passport();
    const err = setupError(() => bridge(new Server(), { session: sessionMiddleware({ path: "/app" }), passport }));
    expect(err.message).toMatch(/"\/app" does not cover the Socket\.IO path "\/socket\.io"/);
    expect(err.message).toMatch(/path: "\/app\/socket\.io"/);
    // A path that covers it is fine, including a custom Socket.IO path under it.
    bridge(new Server({ path: "/app/socket.io" }), { session: sessionMiddleware({ path: "/app" }), passport });
    bridge(new Server(), { session: sessionMiddleware({ path: "/" }), passport });
    await settle();
    expect(warnings).toEqual([]);
  });

  it("bridge() called after clients already connected", async () => {
    const h = await start({ bridge: false });
    await h.connect();
    const err = setupError(() => bridge(h.io, { session: h.sessionMiddleware, passport: h.passport }));
    expect(err.message).toMatch(/after 1 socket\(s\) had connected/);
  });
});

describe("a Passport with no deserializer", () => {
  it("is refused for good at the first handshake, naming the `passport` option, with one warning", async () => {
    const h = await start({ replaceDeserializer: true });
    const cookie = await h.login("alice");
    for (let i = 0; i < 2; i++) {
      const refusal = await h.refusal({ cookie, reconnection: false });
      expect(refusal.data).toEqual({ code: "deserialize_failed", reconnect: false, reason: "no_deserializer" });
      expect(refusal.message).toMatch(/`passport` option/);
    }
    await settle();
    expect(warnings.filter(([code]) => code === "PSB_NO_DESERIALIZER")).toHaveLength(1);
  });

  it("is fine when the app registers its deserializer after calling bridge()", async () => {
    const h = await start({ replaceDeserializer: true });
    h.passport.deserializeUser((id: string, done) => done(null, h.users.get(id) ?? false));
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie });
    expect(((await socket.emitWithAck("whoami")) as { user: { name: string } }).user.name).toBe("Alice");
  });
});

describe("a half-finished migration from the Socket.IO recipe", () => {
  it("warns once per leftover middleware on io.engine, installed before or after bridge()", async () => {
    const h = await start({ bridge: false });
    h.io.engine.use(h.sessionMiddleware);
    const auth = bridge(h.io, { session: h.sessionMiddleware, passport: h.passport });
    h.io.engine.use(h.passport.session());
    await settle();
    expect(warnings.map(([code]) => code)).toEqual(["PSB_ENGINE_SESSION"]);
    const cookie = await h.login("alice");
    await h.connect({ cookie });
    await h.connect({ cookie });
    await settle();
    expect(warnings.map(([code]) => code)).toEqual(["PSB_ENGINE_SESSION", "PSB_ENGINE_PASSPORT"]);
    expect(warnings[0]![1]).toMatch(/Remove it/);
    expect(auth).toBeDefined();
  });
});

describe("the Socket.IO recipe's own form, onlyForHandshake(...), which hides the middleware", () => {
  it("is seen by its work, at the first handshake: one warning per cause", async () => {
    const h = await start({ bridge: false });
    // As the Socket.IO docs write it.
    const onlyForHandshake =
      (middleware: (req: any, res: any, next: (err?: unknown) => void) => void) =>
      (req: { _query: { sid?: string } }, res: unknown, next: (err?: unknown) => void) => {
        if (req._query.sid === undefined) middleware(req, res, next);
        else next();
      };
    h.io.engine.use(onlyForHandshake(h.sessionMiddleware));
    h.io.engine.use(onlyForHandshake(h.passport.session()));
    bridge(h.io, { session: h.sessionMiddleware, passport: h.passport });
    await settle();
    expect(warnings).toEqual([]);
    const cookie = await h.login("alice");
    await h.connect({ cookie });
    await h.connect({ cookie });
    await settle();
    expect(warnings.map(([code]) => code)).toEqual(["PSB_ENGINE_SESSION", "PSB_ENGINE_PASSPORT"]);
    expect(warnings[0]![1]).toMatch(/onlyForHandshake/);
  });
});

describe("session_missing says which mistake it was", () => {
  it("no_cookie, bad_signature and unknown_session, each with its own sentence", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const sid = decodeURIComponent(cookie.split("=")[1]!).slice(2).split(".")[0]!;
    const cases: Array<[string | undefined, string]> = [
      [undefined, "no_cookie"],
      [`connect.sid=${encodeURIComponent(`s:${signature.sign(sid, "another secret")}`)}`, "bad_signature"],
      [`connect.sid=${encodeURIComponent(`s:${signature.sign("no-such-session-id", SECRET)}`)}`, "unknown_session"],
    ];
    for (const [header, reason] of cases) {
      const refusal = await h.refusal({ cookie: header, reconnection: false });
      expect(refusal.data).toEqual({ code: "session_missing", reconnect: false, reason });
      expect(refusal.message).toBe(SESSION_MISSING_REASONS[reason as keyof typeof SESSION_MISSING_REASONS]);
    }
    expect(SESSION_MISSING_REASONS.no_cookie).toMatch(/withCredentials/);
    expect(SESSION_MISSING_REASONS.no_cookie).toMatch(/SameSite=None; Secure/);
    expect(SESSION_MISSING_REASONS.no_cookie).toMatch(/127\.0\.0\.1/);
    await h.request("/logout", { method: "POST", cookie });
    expect((await h.refusal({ cookie, reconnection: false })).data.reason).toBe("unknown_session");
  });
});
