/**
 * Token clients (no cookie): the app's own passport-jwt and passport-http-bearer strategies on the handshake,
 * through the same codes, hooks, rooms and revocation as sessions; expiry and refresh without a reconnect.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { SignJWT } from "jose";
import jwt from "jsonwebtoken";
import { Strategy as BearerStrategy } from "passport-http-bearer";
import { ExtractJwt, Strategy as JwtStrategy } from "passport-jwt";
import { describe, expect, it } from "vitest";
import { harnessesOf, harnessPerTest, nextEvent, TRANSPORTS, type HarnessOptions, type User, type WhoAmI } from "./helpers/harness.js";
import { failOnLeaks } from "./helpers/leaks.js";

const start = harnessPerTest();
failOnLeaks();
const KEY = "a jwt signing key of 32 bytes or more!";
const now = () => Math.floor(Date.now() / 1000);

/** passport-jwt as apps set it up, HS256 only, reading the Bearer Authorization header. */
const withJwt = (extra: HarnessOptions = {}): HarnessOptions => ({
  ...extra,
  bridge: { strategies: ["jwt"], ...extra.bridge },
  passport: (passport, users) => {
    passport.use(
      "jwt",
      new JwtStrategy(
        { secretOrKey: KEY, jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(), algorithms: ["HS256"] },
        (payload: { sub: string }, done: (err: unknown, user?: User | false) => void) => done(null, users.get(payload.sub) ?? false),
      ),
    );
  },
});
const sign = (sub: string, seconds = 60) => jwt.sign({ sub }, KEY, { algorithm: "HS256", expiresIn: seconds });
/** When a token signed here expires, in ms. */
const expiryOf = (token: string) => (jwt.decode(token) as jwt.JwtPayload).exp! * 1000;
const whoami = (socket: { emitWithAck(ev: string): Promise<unknown> }) => socket.emitWithAck("whoami") as Promise<WhoAmI>;

describe("tokens on the handshake", () => {
  it.each(TRANSPORTS)("a passport-jwt token in auth.token authenticates a client without a cookie, over %s", async (transport) => {
    const h = await start(withJwt());
    const socket = await h.connect({ auth: { token: sign("1") }, transport });
    expect(await whoami(socket)).toMatchObject({ user: { name: "Alice" }, isAuthenticated: true, data: { userId: "1" }, rooms: ["user:1"] });
  });

  it("a token signed with jose works too, and so does a Bearer Authorization header", async () => {
    const h = await start(withJwt());
    const token = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("2").setExpirationTime("1m").sign(new TextEncoder().encode(KEY));
    expect((await whoami(await h.connect({ auth: { token } }))).user).toMatchObject({ name: "Bob" });
    expect((await whoami(await h.connect({ headers: { authorization: `Bearer ${sign("3")}` } }))).user).toMatchObject({ name: "Carol" });
  });

  it("refuses expired, forged and unsigned tokens, each with its code", async () => {
    const h = await start(withJwt());
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "1", exp: now() + 60 })).toString("base64url")}.`;
    const cases: Array<[string, string]> = [
      [jwt.sign({ sub: "1", exp: now() - 10 }, KEY), "token_expired"],
      [jwt.sign({ sub: "1" }, "another key entirely, also long enough", { expiresIn: 60 }), "token_invalid"],
      [unsigned, "token_invalid"],
      [`${sign("1").slice(0, -4)}AAAA`, "token_invalid"],
      [sign("404"), "token_invalid"],
      ["not a token", "token_invalid"],
    ];
    for (const [token, code] of cases) {
      const refused = await h.refusal({ auth: { token } });
      expect([token.slice(0, 12), refused.data]).toEqual([token.slice(0, 12), { code, reconnect: false }]);
    }
  });

  it("never takes a token from the query string", async () => {
    const h = await start(withJwt());
    for (const transport of TRANSPORTS) {
      const refused = await h.refusal({ query: { token: sign("1"), access_token: sign("1"), auth_token: sign("1") }, transport });
      expect(refused.data.code).toBe("session_missing");
    }
  });

  it("hides the query string from a strategy that would read it", async () => {
    const h = await start({
      bridge: { strategies: ["jwt"] },
      passport: (passport, users) =>
        passport.use(
          new JwtStrategy(
            {
              secretOrKey: KEY,
              // Query first: if the strategy saw the URL, the valid token there would win over the forged one.
              jwtFromRequest: ExtractJwt.fromExtractors([ExtractJwt.fromUrlQueryParameter("token"), ExtractJwt.fromAuthHeaderAsBearerToken()]),
              algorithms: ["HS256"],
            },
            (payload: { sub: string }, done: (err: unknown, user?: User | false) => void) => done(null, users.get(payload.sub) ?? false),
          ),
        ),
    });
    const refused = await h.refusal({ query: { token: sign("1") }, auth: { token: `${sign("1").slice(0, -4)}AAAA` } });
    expect(refused.data.code).toBe("token_invalid");
    expect((await whoami(await h.connect({ auth: { token: sign("1") } }))).user).toMatchObject({ name: "Alice" });
  });

  it("works with passport-http-bearer unchanged", async () => {
    const h = await start({
      bridge: { strategies: ["bearer"] },
      passport: (passport, users) =>
        passport.use(new BearerStrategy((token, done) => done(null, token === "opaque-alice" ? users.get("1")! : false))),
    });
    expect((await whoami(await h.connect({ auth: { token: "opaque-alice" } }))).user).toMatchObject({ name: "Alice" });
    expect((await h.refusal({ auth: { token: "opaque-nobody" } })).data.code).toBe("token_invalid");
  });

  it("isOnline() and onlineUsers() count token sockets too", async () => {
    const h = await start(withJwt());
    expect(await h.auth.isOnline("2")).toBe(false);
    const socket = await h.connect({ auth: { token: sign("2") } });
    await h.connect({ cookie: await h.login("alice") });
    expect(await h.auth.isOnline("2")).toBe(true);
    expect(await h.auth.onlineUsers()).toEqual(["1", "2"]);
    socket.disconnect();
    await expect.poll(() => h.auth.isOnline("2")).toBe(false);
  });

  it("a token-only service leaves `session` out: tokens connect, session cookies count for nothing", async () => {
    const h = await start(withJwt({ bridge: { session: undefined } }));
    expect(await whoami(await h.connect({ auth: { token: sign("1") } }))).toMatchObject({ user: { name: "Alice" }, isAuthenticated: true });
    const cookie = await h.login("bob");
    expect((await h.refusal({ cookie })).data).toEqual({ code: "session_missing", reconnect: false });
    expect((await h.refusal({ cookie, auth: { token: "forged" } })).data).toEqual({ code: "token_invalid", reconnect: false });
  });

  it("goes through the same hooks, rooms and revocation as sessions; a session cookie comes first", async () => {
    const seen: string[] = [];
    const h = await start(withJwt({ bridge: { onAccept: (_socket, user) => void seen.push(user.name) } }));
    const socket = await h.connect({ auth: { token: sign("1") } });
    const both = await h.connect({ cookie: await h.login("bob"), auth: { token: sign("1") } });
    expect((await whoami(both)).user).toMatchObject({ name: "Bob" });
    expect(seen).toEqual(["Alice", "Bob"]);
    const ended = nextEvent(socket, "auth:ended");
    expect(await h.auth.disconnectUser("1")).toBe(1);
    expect(await ended).toEqual({ code: "revoked" });
  });
});

describe("token expiry and refresh", () => {
  // Each waits for a 2-second token's expiry: they run side by side (nothing shared, margins of over 0.8 s).
  it.concurrent("ends the socket with token_expired when its token expires", async (context) => {
    const h = await harnessesOf(context)(withJwt());
    const socket = await h.connect({ auth: { token: sign("1", 2) } });
    const since = Date.now();
    expect(await nextEvent(socket, "auth:ended", 5000)).toEqual({ code: "token_expired" });
    expect(Date.now() - since).toBeLessThan(3100);
  });

  it.concurrent("auth:refresh with a fresh token keeps it connected, without a reconnect; a token for someone else is refused", async (context) => {
    const h = await harnessesOf(context)(withJwt());
    const first = sign("1", 2);
    const socket = await h.connect({ auth: { token: first } });
    let reconnects = 0;
    socket.on("connect", () => reconnects++);
    expect(await socket.emitWithAck("auth:refresh", { token: sign("1", 60) })).toMatchObject({ ok: true });
    expect(await socket.emitWithAck("auth:refresh", { token: sign("2", 60) })).toMatchObject({ ok: false, code: "token_invalid" });
    expect(await socket.emitWithAck("auth:refresh", { token: jwt.sign({ sub: "1", exp: now() - 1 }, KEY) })).toMatchObject({ ok: false, code: "token_expired" });
    expect(await socket.emitWithAck("auth:refresh", {})).toMatchObject({ ok: false, code: "token_invalid" });
    // Past the first token's expiry (whole-second exp: 1-2 s away), with room for its ending to arrive.
    await sleep(expiryOf(first) + 800 - Date.now());
    expect(socket.connected).toBe(true);
    expect(reconnects).toBe(0);
    expect((await whoami(socket)).user).toMatchObject({ name: "Alice" });
  });

  it.concurrent("a refresh never loosens the expiry: a token without exp is refused, and the earlier expiry still ends the socket", async (context) => {
    const h = await harnessesOf(context)(withJwt());
    const socket = await h.connect({ auth: { token: sign("1", 2) } });
    const since = Date.now();
    expect(await socket.emitWithAck("auth:refresh", { token: jwt.sign({ sub: "1" }, KEY) })).toEqual({
      ok: false,
      code: "token_invalid",
      message: expect.stringMatching(/`exp`/),
    });
    expect(await nextEvent(socket, "auth:ended", 5000)).toEqual({ code: "token_expired" });
    expect(Date.now() - since).toBeLessThan(3100);
  });

  it("an accepted refresh answers with the expiry the server now enforces and the server's clock", async () => {
    const h = await start(withJwt());
    const socket = await h.connect({ auth: { token: sign("1", 60) } });
    const exp = now() + 120;
    const before = Date.now();
    const answer = await socket.emitWithAck("auth:refresh", { token: jwt.sign({ sub: "1", exp }, KEY) });
    expect(answer).toEqual({ ok: true, expiresAt: exp * 1000, now: expect.any(Number) });
    expect((answer as { now: number }).now).toBeGreaterThanOrEqual(before);
    expect((answer as { now: number }).now).toBeLessThanOrEqual(Date.now());
  });

  it("answers every malformed auth:refresh that has an ack, with a code and a sentence; without an ack, nothing breaks", async () => {
    const h = await start(withJwt());
    const socket = await h.connect({ auth: { token: sign("1", 60) } });
    const refused = { ok: false, code: "token_invalid", message: expect.stringMatching(/\{ token \}/) };
    // An ack and no payload: the ack arrives as the first argument.
    expect(await socket.timeout(2000).emitWithAck("auth:refresh")).toEqual(refused);
    for (const payload of [null, "a token", 42, [], { token: 42 }, { token: "" }]) {
      expect([payload, await socket.timeout(2000).emitWithAck("auth:refresh", payload)]).toEqual([payload, refused]);
    }
    expect(await socket.timeout(2000).emitWithAck("auth:refresh", { token: sign("1", 60) }, "extra")).toMatchObject({ ok: true });
    socket.emit("auth:refresh");
    socket.emit("auth:refresh", null);
    expect((await whoami(socket)).user).toMatchObject({ name: "Alice" });
  });
});
