/**
 * docs/migrating-from-socketio-jwt.md, run: the "before" server on the real socketio-jwt 4.6 (and on its fork
 * @thream/socketio-jwt 3), the "after" server on the bridge with passport-jwt, the same client flows against
 * both (a valid token, an expired one, a bad signature, none), and each outcome mapped as the guide's table says.
 * Then a migrating client that still sends `?token=`: refused as `token_in_query`, its token in nothing the
 * server writes (refusal, console, DEBUG output).
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { format } from "node:util";
import { authorize as threamAuthorize } from "@thream/socketio-jwt";
import createDebug from "debug";
import jwt from "jsonwebtoken";
import { ExtractJwt, Strategy as JwtStrategy } from "passport-jwt";
import { Server, type Socket as ServerSocket } from "socket.io";
import { io as ioClient, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { SESSION_MISSING_REASONS } from "../lib/index.js";
import { harnessPerTest, nextEvent, USERS, type HarnessOptions, type User } from "./helpers/harness.js";

/** socketio-jwt 4.6, as its README calls it. (Its bundled types name the global `SocketIO` of socket.io 2's typings.) */
const socketioJwt = createRequire(import.meta.url)("socketio-jwt") as {
  authorize(options: {
    secret: string | ((req: unknown, payload: Record<string, unknown>, done: (err: unknown, secret?: string) => void) => void);
    handshake?: boolean;
    algorithms?: string[];
  }): Parameters<Server["use"]>[0];
};

const start = harnessPerTest();
const KEY = "a jwt signing key of 32 bytes or more!";
const OTHER_KEY = "another key entirely, also long enough";
const users = new Map(USERS.map((user) => [user.id, user]));

const valid = () => jwt.sign({ sub: "1" }, KEY, { algorithm: "HS256", expiresIn: 60 });
const expired = () => jwt.sign({ sub: "1", exp: Math.floor(Date.now() / 1000) - 10 }, KEY, { algorithm: "HS256" });
const forged = () => jwt.sign({ sub: "1" }, OTHER_KEY, { algorithm: "HS256", expiresIn: 60 });

/** What a client saw: admitted (with the user the server reported) or refused (connect_error's message and data). */
type Outcome = { admitted: true; user: string | undefined } | { admitted: false; message: string; data: Record<string, unknown> };

/** Connects once (no retries) and reports the outcome; a connected socket is asked `whoami` and closed. */
async function outcome(url: string, options: { query?: Record<string, string>; auth?: Record<string, string> }): Promise<Outcome> {
  const socket: ClientSocket = ioClient(url, { ...options, transports: ["websocket"], reconnection: false, forceNew: true });
  try {
    return await new Promise<Outcome>((resolve) => {
      socket.once("connect", async () => {
        // The before servers answer a name; the harness answers the whole user (null when anonymous).
        const { user } = (await socket.emitWithAck("whoami")) as { user?: string | { name: string } | null };
        resolve({ admitted: true, user: typeof user === "string" ? user : user?.name });
      });
      socket.once("connect_error", (err: Error & { data?: Record<string, unknown> }) =>
        resolve({ admitted: false, message: err.message, data: { ...err.data } }),
      );
    });
  } finally {
    socket.disconnect();
  }
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** A "before" server: plain Socket.IO with the old library's middleware; `whoami` answers the app's user's name. */
async function before(middleware: Parameters<Server["use"]>[0], userOf: (socket: ServerSocket) => User | undefined): Promise<string> {
  const http = createServer();
  const io = new Server(http);
  io.use(middleware);
  io.on("connection", (socket) => socket.on("whoami", (ack: (answer: unknown) => void) => ack({ user: userOf(socket)?.name })));
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  closers.push(async () => {
    io.close();
    http.closeAllConnections();
  });
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

/** The "after" server: the bridge with passport-jwt, as the guide sets it up (the harness's `whoami` answers socket.request.user). */
async function after(extra: HarnessOptions = {}, jwtOptions: Partial<ConstructorParameters<typeof JwtStrategy>[0]> = { secretOrKey: KEY }): Promise<string> {
  const h = await start({
    ...extra,
    bridge: { strategies: ["jwt"], ...extra.bridge },
    passport: (passport, known) => {
      passport.use(
        "jwt",
        new JwtStrategy(
          { jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(), algorithms: ["HS256"], ...jwtOptions } as ConstructorParameters<typeof JwtStrategy>[0],
          (payload: { sub: string }, done: (err: unknown, user?: User | false) => void) => done(null, known.get(payload.sub) ?? false),
        ),
      );
    },
  });
  return h.url;
}

/**
 * The guide's table, flow by flow: what the old library answered, and the bridge's code for it.
 * (A refusal from the bridge always carries `code`, `reconnect` and a sentence saying how to fix it.)
 */
const SOCKETIO_JWT = [
  { flow: "valid", token: valid, before: { admitted: true }, after: { admitted: true } },
  { flow: "expired", token: expired, before: { message: "jwt expired", code: "invalid_token" }, after: { code: "token_expired" } },
  { flow: "bad signature", token: forged, before: { message: "invalid signature", code: "invalid_token" }, after: { code: "token_invalid" } },
  { flow: "none", token: undefined, before: { message: "no token provided", code: "credentials_required" }, after: { code: "session_missing", reason: "no_cookie" } },
] as const;

function expectAsGuideSays(got: Outcome, want: { admitted: true } | { message?: string; code: string; reason?: string }) {
  if ("admitted" in want) return expect(got).toEqual({ admitted: true, user: "Alice" });
  expect(got.admitted).toBe(false);
  if (got.admitted) return;
  if (want.message !== undefined) expect(got.message).toBe(want.message);
  expect(got.data.code).toBe(want.code);
  if ("reason" in want) expect(got.data.reason).toBe(want.reason);
}

describe("socketio-jwt 4.6 (handshake: true) → the bridge", () => {
  it.each(SOCKETIO_JWT)("$flow token: each maps as the guide's table says", async ({ token, before: was, after: is }) => {
    const oldUrl = await before(socketioJwt.authorize({ secret: KEY, handshake: true, algorithms: ["HS256"] }), (socket) =>
      users.get((socket as ServerSocket & { decoded_token: { sub: string } }).decoded_token.sub),
    );
    const newUrl = await after();
    const value = token?.();
    // Before: `io(url, { query: { token } })`. After: `io(url, { auth: { token } })`.
    const old = await outcome(oldUrl, value === undefined ? {} : { query: { token: value } });
    const now = await outcome(newUrl, value === undefined ? {} : { auth: { token: value } });
    expectAsGuideSays(old, was);
    if (!was.hasOwnProperty("admitted")) expect(old).toMatchObject({ data: { type: "UnauthorizedError" } });
    expectAsGuideSays(now, is);
    if (!now.admitted) expect(now.data.reconnect).toBe(false);
  });

  it("a secret function (multi-tenant keys) becomes passport-jwt's secretOrKeyProvider", async () => {
    const keys: Record<string, string> = { acme: KEY, globex: OTHER_KEY };
    const oldUrl = await before(
      socketioJwt.authorize({
        handshake: true,
        secret: (_req, payload, done) => done(null, keys[String(payload.tenant)]),
      }),
      (socket) => users.get((socket as ServerSocket & { decoded_token: { sub: string } }).decoded_token.sub),
    );
    const newUrl = await after({}, {
      secretOrKeyProvider: (_req: unknown, raw: string, done: (err: unknown, key?: string) => void) =>
        done(null, keys[String((jwt.decode(raw) as { tenant?: string } | null)?.tenant)]),
    });
    const acme = jwt.sign({ sub: "1", tenant: "acme" }, KEY, { expiresIn: 60 });
    const globex = jwt.sign({ sub: "2", tenant: "globex" }, OTHER_KEY, { expiresIn: 60 });
    const crossed = jwt.sign({ sub: "1", tenant: "acme" }, OTHER_KEY, { expiresIn: 60 });
    for (const [token, user] of [[acme, "Alice"], [globex, "Bob"]] as const) {
      expect(await outcome(oldUrl, { query: { token } })).toEqual({ admitted: true, user });
      expect(await outcome(newUrl, { auth: { token } })).toEqual({ admitted: true, user });
    }
    expect(await outcome(oldUrl, { query: { token: crossed } })).toMatchObject({ admitted: false, data: { code: "invalid_token" } });
    expect(await outcome(newUrl, { auth: { token: crossed } })).toMatchObject({ admitted: false, data: { code: "token_invalid" } });
  });

  it("an unchanged client (`query: { token }`) is told token_in_query by the bridge, not admitted and not told about cookies", async () => {
    const newUrl = await after();
    const got = await outcome(newUrl, { query: { token: valid() } });
    expect(got).toMatchObject({ admitted: false, data: { code: "session_missing", reason: "token_in_query", reconnect: false } });
  });
});

describe("@thream/socketio-jwt 3 → the bridge", () => {
  const FORK = [
    { flow: "valid", token: valid, before: { admitted: true }, after: { admitted: true } },
    { flow: "expired", token: expired, before: { code: "invalid_token" }, after: { code: "token_expired" } },
    { flow: "bad signature", token: forged, before: { code: "invalid_token" }, after: { code: "token_invalid" } },
    { flow: "none", token: undefined, before: { message: "no token provided", code: "credentials_required" }, after: { code: "session_missing", reason: "no_cookie" } },
  ] as const;

  it.each(FORK)("$flow token: the fork's client (`auth: { token: \"Bearer …\" }`) connects to the bridge unchanged", async ({ token, before: was, after: is }) => {
    const oldUrl = await before(
      threamAuthorize({ secret: KEY, onAuthentication: (decoded: { sub: string }) => users.get(decoded.sub) }),
      (socket) => socket.user as User | undefined,
    );
    const newUrl = await after();
    const value = token?.();
    const auth = value === undefined ? {} : { auth: { token: `Bearer ${value}` } };
    expectAsGuideSays(await outcome(oldUrl, auth), was);
    expectAsGuideSays(await outcome(newUrl, auth), is);
  });
});

describe("the guide", () => {
  it("maps every code the old libraries refuse with, and names both clients' changes", () => {
    const guide = readFileSync(new URL("../docs/migrating-from-socketio-jwt.md", import.meta.url), "utf8");
    for (const code of ["invalid_token", "credentials_required", "credentials_bad_format", "invalid_secret", "token_expired", "token_invalid", "token_in_query"]) {
      expect(guide).toContain(`\`${code}\``);
    }
    for (const name of ["decoded_token", "decodedToken", "decodedPropertyName", "customDecoded", "additional_auth", "onAuthentication", "secretOrKeyProvider", "auth:refresh", "auth: { token }", "withAuth"]) {
      expect(guide).toContain(name);
    }
  });
});

describe("a token in the query string", () => {
  /** Everything the server process writes while `fn` runs: DEBUG output of the bridge, console, stderr, warnings. */
  async function written(fn: () => Promise<void>): Promise<string> {
    const lines: string[] = [];
    const saved = { log: createDebug.log, namespaces: createDebug.disable(), stderr: process.stderr.write, console: { ...console } };
    createDebug.enable("passport-socketio-bridge:*");
    createDebug.log = (...args: unknown[]) => void lines.push(format(...args));
    for (const method of ["log", "info", "warn", "error", "debug"] as const) console[method] = (...args: unknown[]) => void lines.push(format(...args));
    process.stderr.write = ((chunk: string | Uint8Array) => lines.push(String(chunk)) > 0) as typeof process.stderr.write;
    const warning = (w: Error) => lines.push(format(w));
    process.on("warning", warning);
    try {
      await fn();
    } finally {
      process.off("warning", warning);
      process.stderr.write = saved.stderr;
      Object.assign(console, saved.console);
      createDebug.log = saved.log;
      createDebug.enable(saved.namespaces);
    }
    return lines.join("\n");
  }

  it.each(["token", "access_token"])("?%s= with no cookie: token_in_query, over websocket and polling, with and without strategies", async (param) => {
    const token = valid();
    const withStrategies = await after();
    const sessionsOnly = await start();
    const output = await written(async () => {
      for (const url of [withStrategies, sessionsOnly.url]) {
        for (const transports of [["websocket"], ["polling"]]) {
          const socket = ioClient(url, { query: { [param]: token }, transports, reconnection: false, forceNew: true });
          const err = await nextEvent<Error & { data: Record<string, unknown> }>(socket, "connect_error");
          socket.disconnect();
          expect(err.data).toEqual({ code: "session_missing", reason: "token_in_query", reconnect: false });
          expect(err.message).toBe(SESSION_MISSING_REASONS.token_in_query);
          expect(JSON.stringify({ message: err.message, data: err.data })).not.toContain(token);
        }
      }
    });
    // The DEBUG output did see the refusal, and never the token.
    expect(output).toMatch(/token_in_query/);
    expect(output).not.toContain(token);
    expect(output).not.toContain(token.split(".")[2]);
    expect(SESSION_MISSING_REASONS.token_in_query).toMatch(/logs/);
    expect(SESSION_MISSING_REASONS.token_in_query).toMatch(/auth: \{ token \}/);
  });

  it("is refused even with allowAnonymous: true (the client meant to be someone)", async () => {
    const url = await after({ bridge: { allowAnonymous: true } });
    expect(await outcome(url, { query: { token: valid() } })).toMatchObject({ admitted: false, data: { reason: "token_in_query" } });
    // Without a query token, the same client is anonymous as before.
    expect(await outcome(url, {})).toEqual({ admitted: true, user: undefined });
  });

  it("does not stand in the way of a usable cookie or auth.token", async () => {
    const h = await start({
      bridge: { strategies: ["jwt"] },
      passport: (passport, known) =>
        passport.use(
          "jwt",
          new JwtStrategy({ secretOrKey: KEY, jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken() }, (payload: { sub: string }, done: (err: unknown, user?: User | false) => void) =>
            done(null, known.get(payload.sub) ?? false),
          ),
        ),
    });
    const cookie = await h.login("bob");
    const byCookie = await h.connect({ cookie, query: { token: valid() } });
    expect(((await byCookie.emitWithAck("whoami")) as { user: User }).user.name).toBe("Bob");
    const byAuth = await h.connect({ auth: { token: valid() }, query: { token: "stale" } });
    expect(((await byAuth.emitWithAck("whoami")) as { user: User }).user.name).toBe("Alice");
    // A bad token in auth.token is judged as a token, whatever the query says.
    expect((await h.refusal({ auth: { token: forged() }, query: { token: "x" } })).data.code).toBe("token_invalid");
  });
});
