/**
 * cookie-session: the whole session in a signed cookie, with no store. The same checks as the express-session core
 * specs that apply (handshake, live sessions, revocation, session truth), on a real Express app with cookie-session,
 * the bridge's shim and passport-local, real socket.io-client connections, and two nodes on the Redis adapter.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createAdapter } from "@socket.io/redis-adapter";
import cookieSession from "cookie-session";
import express from "express";
import session from "express-session";
import { Redis } from "ioredis";
import { Passport } from "passport";
import { Strategy as LocalStrategy } from "passport-local";
import { Server } from "socket.io";
import { io as ioClient, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, inject, it } from "vitest";
import { bridge, ConfigError, type BridgeOptions } from "../lib/index.js";
import { cookieFrom, nextEvent, setupError, USERS, whoami as whoamiOf, type Refusal, type Transport, type User, type WhoAmI } from "./helpers/harness.js";
import { ending } from "./helpers/live.js";
import { exampleLogin, untilServing } from "./helpers/processes.js";
import { freePort, startRedis } from "./helpers/redis-server.js";
import { captureWarnings } from "./helpers/warnings.js";
// @ts-expect-error: the example app is plain JavaScript.
import { createApp } from "../example-app/app.js";

type ExampleApp = { server: import("node:http").Server; close(): Promise<void> };
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const KEYS = ["cookie-session key"];
const warnings = captureWarnings();

interface NodeOptions {
  /** Share a Redis adapter channel with other nodes of this prefix. */
  cluster?: string;
  /** cookie-session's maxAge, in ms. */
  maxAge?: number;
  /** cookie-session's keys (default KEYS). */
  keys?: string[];
  /** Install auth.cookieSessionShim() (default), or the usual shim (`"usual"`). */
  shim?: "bridge" | "usual";
  bridge?: Partial<BridgeOptions<User>>;
}

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
});

/** One node of an app: Express + cookie-session + the shim + passport-local over HTTP, Socket.IO with the bridge. */
async function startNode(options: NodeOptions = {}) {
  const users = new Map(USERS.map((u) => [u.id, { ...u }]));
  const sessionMiddleware = cookieSession({ name: "session", keys: options.keys ?? KEYS, ...(options.maxAge ? { maxAge: options.maxAge } : {}) });
  const passport = new Passport();
  passport.use(
    new LocalStrategy((username, password, done) => {
      const user = [...users.values()].find((u) => u.username === username);
      done(null, user && password === username ? user : false);
    }),
  );
  passport.serializeUser((user, done) => done(null, (user as User).id));
  passport.deserializeUser((id: string, done) => done(null, users.get(id) ?? false));

  const app = express();
  const http = createServer(app);
  const io = new Server(http);
  const cleanups: Array<() => unknown> = [];
  if (options.cluster) {
    const pub = new Redis(inject("redisUrl"));
    const sub = pub.duplicate();
    cleanups.push(() => pub.disconnect(), () => sub.disconnect());
    io.adapter(createAdapter(pub, sub, { requestsTimeout: 2000, key: `socket.io:${options.cluster}` }));
  }
  const auth = bridge<User>(io, { session: sessionMiddleware, passport, ...options.bridge });

  app.use(express.urlencoded({ extended: false }));
  app.use(sessionMiddleware);
  if (options.shim === "usual") {
    // The shim Passport 0.6+ needs on cookie-session, as apps write it without the bridge's.
    app.use((req, _res, next) => {
      const s = req.session as unknown as Record<string, unknown> | null;
      if (s && !s.regenerate) s.regenerate = (cb: () => void) => cb();
      if (s && !s.save) s.save = (cb: () => void) => cb();
      next();
    });
  } else {
    app.use(auth.cookieSessionShim());
  }
  app.use(passport.session());
  app.post("/login", passport.authenticate("local", { failWithError: true }), (req, res) => void res.json(req.user));
  app.post("/logout", (req, res, next) => req.logout((err) => (err ? next(err) : res.sendStatus(204))));
  // cookie-session's own way to end a session.
  app.post("/forget", (req, res) => {
    (req as { session: unknown }).session = null;
    res.sendStatus(204);
  });
  // A change to the session: cookie-session writes the cookie again (with a new expiry).
  app.post("/visit", (req, res) => {
    req.session.visits = (req.session.visits ?? 0) + 1;
    res.sendStatus(204);
  });
  app.get("/csrf", async (req, res) => void res.json({ token: await auth.csrfToken(req) }));
  app.get("/me", (req, res) => void res.json({ user: req.user ?? null, sessionID: req.sessionID ?? null, session: req.session }));

  const onConnection = (socket: import("socket.io").Socket) => {
    socket.on("whoami", (ack: (answer: unknown) => void) => ack({ ...whoamiOf(socket), session: socket.request.session }));
  };
  io.on("connection", onConnection);
  io.of("/admin").on("connection", onConnection);
  io.of(/^\/room-\d+$/).on("connection", onConnection);

  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const clients = new Set<ClientSocket>();

  const client = (cookie?: string, transport: Transport = "websocket", namespace = "/", auth?: Record<string, unknown>) => {
    const socket = ioClient(url + namespace, {
      ...(auth ? { auth } : {}),
      forceNew: true,
      transports: transport === "websocket" ? ["websocket"] : transport === "polling" ? ["polling"] : ["polling", "websocket"],
      upgrade: transport === "upgrade",
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
      extraHeaders: cookie ? { cookie } : {},
    });
    clients.add(socket);
    return socket;
  };
  const connect = (cookie?: string, transport?: Transport, namespace?: string) =>
    new Promise<ClientSocket>((resolve, reject) => {
      const socket = client(cookie, transport, namespace);
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", reject);
    });
  const refusal = (cookie?: string, auth?: Record<string, unknown>) =>
    new Promise<Refusal>((resolve, reject) => {
      const socket = client(cookie, "websocket", "/", auth);
      socket.once("connect", () => reject(new Error("admitted")));
      socket.once("connect_error", (err: Error & { data?: Refusal["data"] }) => resolve({ message: err.message, data: err.data!, socket }));
    });
  const request = (path: string, cookie?: string, method = "GET", body?: URLSearchParams) =>
    fetch(url + path, { method, headers: cookie ? { cookie } : {}, ...(body ? { body } : {}) });
  const login = async (username: string) => {
    const res = await request("/login", undefined, "POST", new URLSearchParams({ username, password: username }));
    if (!res.ok) throw new Error(`login of ${username}: ${res.status}`);
    return cookieFrom(res);
  };
  const me = async (cookie: string) => (await (await request("/me", cookie)).json()) as { user: User | null; sessionID: string | null; session: Record<string, unknown> };

  const node = { url, io, auth, users, client, connect, refusal, request, login, me };
  open.push(async () => {
    for (const socket of clients) socket.disconnect();
    io.close();
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
    for (const cleanup of cleanups) await cleanup();
  });
  return node;
}

type Node = Awaited<ReturnType<typeof startNode>>;

async function twoNodes(options: NodeOptions = {}): Promise<[Node, Node]> {
  const cluster = randomUUID().slice(0, 8);
  const nodes: [Node, Node] = [await startNode({ ...options, cluster }), await startNode({ ...options, cluster })];
  // Each node's adapter subscribes as it starts: commands reach a node once both count each other.
  for (const node of nodes) await expect.poll(() => node.io.of("/").adapter.serverCount()).toBe(2);
  return nodes;
}

const whoami = (socket: ClientSocket) => socket.timeout(5000).emitWithAck("whoami") as Promise<WhoAmI & { session: Record<string, unknown> }>;

/** A cookie header with the session cookie's content replaced (its signature kept). */
function tampered(cookie: string, content: object): string {
  return cookie.replace(/(^|; )session=[^;]*/, `$1session=${Buffer.from(JSON.stringify(content)).toString("base64")}`);
}

describe("cookie-session: the handshake", () => {
  it.each<Transport>(["websocket", "polling", "upgrade"])("gives the socket HTTP's user, session and session id (%s)", async (transport) => {
    const node = await startNode();
    const cookie = await node.login("alice");
    const http = await node.me(cookie);
    expect(http.user).toMatchObject({ id: "1", name: "Alice" });
    expect(http.sessionID).toMatch(/^[\w-]{24}$/);
    const socket = await node.connect(cookie, transport);
    const seen = await whoami(socket);
    expect(seen.user).toEqual(http.user);
    expect(seen.isAuthenticated).toBe(true);
    expect(seen.sessionID).toBe(http.sessionID);
    expect(seen.session).toEqual(http.session);
    expect(seen.data).toEqual({ userId: "1", sessionId: http.sessionID });
    expect(seen.rooms).toEqual([`session:${http.sessionID}`, "user:1"]);
  });

  it("keeps no copy of a cookie session: it has no store read for a copy to save", async () => {
    const node = await startNode();
    const { sessionID } = await whoami(await node.connect(await node.login("alice")));
    expect(sessionID).toMatch(/^[\w-]{24}$/);
    const ledger = (node.auth as unknown as { ledger: { copyFor(sid: string): unknown } }).ledger;
    // (Before: a JSON copy of the session per handshake, read by nothing.)
    expect(ledger.copyFor(sessionID!)).toBeUndefined();
  });

  it("gives every namespace of a connection the same user, static and dynamic", async () => {
    const node = await startNode();
    const cookie = await node.login("bob");
    const main = await node.connect(cookie);
    const admin = main.io.socket("/admin");
    const room = main.io.socket("/room-7");
    admin.connect();
    room.connect();
    await Promise.all([nextEvent(admin, "connect"), nextEvent(room, "connect")]);
    const [a, b, c] = await Promise.all([whoami(main), whoami(admin), whoami(room)]);
    expect(a.user).toMatchObject({ id: "2" });
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it("refuses a connection without the cookie as no_cookie, and a tampered one as bad_signature", async () => {
    const node = await startNode();
    const none = await node.refusal();
    expect(none.data).toMatchObject({ code: "session_missing", reason: "no_cookie", reconnect: false });
    const cookie = await node.login("alice");
    // Alice's signature over content that says Carol (an admin).
    const forged = await node.refusal(tampered(cookie, { passport: { user: "3" } }));
    expect(forged.data).toMatchObject({ code: "session_missing", reason: "bad_signature" });
    expect(forged.message).toMatch(/`keys`/);
    // HTTP agrees: nobody.
    expect((await node.me(tampered(cookie, { passport: { user: "3" } }))).user).toBeNull();
  });

  it("refuses a session nobody is logged into as unauthenticated, and a removed user as user_not_found", async () => {
    const node = await startNode();
    const visitor = cookieFrom(await node.request("/visit", undefined, "POST"));
    expect(visitor).toMatch(/session=/);
    expect((await node.refusal(visitor)).data.code).toBe("unauthenticated");
    const cookie = await node.login("alice");
    node.users.delete("1");
    expect((await node.refusal(cookie)).data.code).toBe("user_not_found");
  });

  it("gives two logins of one user two ids, where their cookies' content would otherwise be the same", async () => {
    const node = await startNode();
    const cookies = [await node.login("alice"), await node.login("alice")];
    const ids = await Promise.all(cookies.map(async (cookie) => (await whoami(await node.connect(cookie))).sessionID));
    expect(ids).toEqual([expect.stringMatching(/^[\w-]{24}$/), expect.stringMatching(/^[\w-]{24}$/)]);
    expect(ids[0]).not.toBe(ids[1]);
  });

  it("goes by no id the client chose: a login without an id and a signature cookie named twice is refused, not sessionID ''", async () => {
    const legacy = await startNode({ shim: "usual" });
    const node = await startNode();
    const cookie = await legacy.login("alice");
    const value = cookieValue(cookie, "session");
    const sig = cookieValue(cookie, "session.sig");
    // cookie-session checks the first `session.sig=` (the real one); a parser that trims names would see "" first.
    const { data } = await node.refusal(`session=${value}; session.sig =; session.sig=${sig}`);
    expect(data.code).toBe("session_missing");
    // The same login, sent plainly, goes by the hash of its real signature.
    expect((await whoami(await node.connect(`session=${value}; session.sig=${sig}`))).sessionID).toMatch(/^sig-[\w-]{32}$/);
  });

  it("goes by a hash of the signature for a login without an id until the shim gives it one, and a logout ends both", async () => {
    // Logged in where the usual shim ran (as before the bridge's was installed): no id in the cookie.
    const legacy = await startNode({ shim: "usual" });
    const node = await startNode();
    const cookie = await legacy.login("alice");
    const socket = await node.connect(cookie);
    const { sessionID } = await whoami(socket);
    expect(sessionID).toMatch(/^sig-[\w-]{32}$/);
    expect(sessionID).not.toContain(cookieValue(cookie, "session.sig"));
    // Its next HTTP request through the shim gives it an id, in the cookie it sets; new sockets go by that id.
    const upgrade = await node.request("/me", cookie);
    const upgraded = `${cookie}; ${cookieFrom(upgrade)}`.split("; ").slice(-2).join("; ");
    const { sessionID: id } = (await upgrade.json()) as { sessionID: string };
    expect(id).toMatch(/^[\w-]{24}$/);
    const later = await node.connect(upgraded);
    expect((await whoami(later)).sessionID).toBe(id);
    // A logout through the upgraded cookie ends both: the socket that went by the hash too.
    const ended = [ending(socket), ending(later)];
    await node.request("/logout", upgraded, "POST");
    expect((await Promise.all(ended)).map((e) => e.code)).toEqual(["logged_out", "logged_out"]);
  });

  it("admits a cookie signed with an older key while the keys rotate, as HTTP does", async () => {
    const before = await startNode();
    const after = await startNode({ keys: ["the new key", ...KEYS] });
    const cookie = await before.login("alice");
    expect((await after.me(cookie)).user).toMatchObject({ id: "1" });
    expect((await whoami(await after.connect(cookie))).user).toMatchObject({ id: "1" });
  });

  it("checks the CSRF token the session holds, with csrf: true", async () => {
    const node = await startNode({ bridge: { csrf: true } });
    const login = await node.login("alice");
    const res = await node.request("/csrf", login);
    const { token } = (await res.json()) as { token: string };
    // The token went into the session, so into the cookie the response set.
    const cookie = cookieFrom(res);
    expect((await node.refusal(cookie, { csrf: "not the token" })).data.code).toBe("csrf_mismatch");
    const socket = await new Promise<ClientSocket>((resolve, reject) => {
      const s = node.client(cookie, "websocket", "/", { csrf: token });
      s.once("connect", () => resolve(s));
      s.once("connect_error", reject);
    });
    expect((await whoami(socket)).user).toMatchObject({ id: "1" });
  });

  it("gives an anonymous visitor no cookie, where the usual shim's enumerable methods give everyone one", async () => {
    const node = await startNode();
    const usual = await startNode({ shim: "usual" });
    expect((await node.request("/me")).headers.getSetCookie()).toEqual([]);
    expect((await usual.request("/me")).headers.getSetCookie()).toEqual([expect.stringMatching(/^session=e30=;/), expect.stringMatching(/^session\.sig=/)]);
  });

  it("passes withSession a ConfigError that names the limitation, and writes nothing", async () => {
    const node = await startNode();
    const cookie = await node.login("alice");
    const answered = new Promise<{ name: string; code: string }>((resolve) => {
      node.io.on("connection", (socket) => {
        node.auth.withSession(socket, (s) => void (s.count = 1)).catch((err: ConfigError) => resolve({ name: err.name, code: err.code }));
      });
    });
    await node.connect(cookie);
    expect(await answered).toEqual({ name: "ConfigError", code: "cookie_session_read_only" });
  });

  it("passes logout(socket) the same ConfigError, and ends nothing: only an HTTP response can clear the cookie", async () => {
    const node = await startNode();
    const cookie = await node.login("alice");
    const answered = new Promise<{ name: string; code: string; connected: boolean }>((resolve) => {
      node.io.on("connection", (socket) => {
        node.auth.logout(socket).catch((err: ConfigError) => resolve({ name: err.name, code: err.code, connected: socket.connected }));
      });
    });
    await node.connect(cookie);
    expect(await answered).toEqual({ name: "ConfigError", code: "cookie_session_read_only", connected: true });
    expect((await node.me(cookie)).user).toMatchObject({ username: "alice" });
  });
});

function cookieValue(cookie: string, name: string): string {
  return cookie.split("; ").find((pair) => pair.startsWith(`${name}=`))!.slice(name.length + 1);
}

describe("cookie-session: logout and revocation", () => {
  it("ends the browser's sockets on every node when it logs out through HTTP on one, and no other login's", async () => {
    const [a, b] = await twoNodes();
    const cookie = await a.login("alice");
    const otherBrowser = await a.login("alice");
    const tab = await b.connect(cookie);
    const other = await b.connect(otherBrowser);
    const ended = ending(tab);
    const res = await a.request("/logout", cookie, "POST");
    expect(res.status).toBe(204);
    expect(await ended).toMatchObject({ code: "logged_out", reason: "io server disconnect" });
    expect(other.connected).toBe(true);
    expect((await whoami(other)).user).toMatchObject({ id: "1" });
  });

  it("ends them when the app sets req.session = null, cookie-session's own logout", async () => {
    const [a, b] = await twoNodes();
    const cookie = await a.login("bob");
    const socket = await b.connect(cookie);
    const ended = ending(socket);
    await a.request("/forget", cookie, "POST");
    expect((await ended).code).toBe("logged_out");
  });

  it("ends the first user's sockets when another user logs in in the same browser", async () => {
    const node = await startNode();
    const cookie = await node.login("alice");
    const socket = await node.connect(cookie);
    const ended = ending(socket);
    const res = await node.request("/login", cookie, "POST", new URLSearchParams({ username: "bob", password: "bob" }));
    expect(res.ok).toBe(true);
    expect((await ended).code).toBe("logged_out");
  });

  it("refuses nothing HTTP accepts: a copy of the cookie taken before the logout still works on both", async () => {
    const node = await startNode();
    const cookie = await node.login("alice");
    const socket = await node.connect(cookie);
    const ended = ending(socket);
    await node.request("/logout", cookie, "POST");
    await ended;
    // cookie-session keeps nothing on the server: the old cookie is as good as before, over HTTP and over sockets.
    expect((await node.me(cookie)).user).toMatchObject({ id: "1" });
    expect((await whoami(await node.connect(cookie))).user).toMatchObject({ id: "1" });
  });

  it("disconnectUser on one node reaches the user's sockets on the other", async () => {
    const [a, b] = await twoNodes();
    const cookie = await b.login("carol");
    const first = await b.connect(cookie);
    const second = await b.connect(cookie, "polling");
    const ends = [ending(first), ending(second)];
    expect(await a.auth.disconnectUser("3")).toBe(2);
    expect((await Promise.all(ends)).map((e) => e.code)).toEqual(["revoked", "revoked"]);
  });

  it("disconnectSession with HTTP's req.sessionID reaches that login's sockets on every node", async () => {
    const [a, b] = await twoNodes();
    const cookie = await a.login("alice");
    const { sessionID } = await a.me(cookie);
    const socket = await b.connect(cookie);
    const ended = ending(socket);
    // Node B's adapter subscribes to the cluster's channel as it starts: A's commands reach it once it answers.
    await expect.poll(() => a.auth.isOnline("1")).toBe(true);
    expect(await a.auth.disconnectSession(sessionID!)).toBe(1);
    expect((await ended).code).toBe("revoked");
  });

  it("without the bridge's shim, admits the login by its signature hash and ends nothing at logout", async () => {
    const node = await startNode({ shim: "usual" });
    const cookie = await node.login("alice");
    const socket = await node.connect(cookie);
    expect((await whoami(socket)).sessionID).toMatch(/^sig-/);
    await node.request("/logout", cookie, "POST");
    // (What the shim adds: nothing else on the server sees a cookie-session logout.) An ending would have reached the
    // socket before the response: its next answer still names Alice.
    expect((await whoami(socket)).user).toMatchObject({ id: "1" });
    expect(socket.connected).toBe(true);
  });
});

describe("cookie-session: expiry", () => {
  it("ends the socket when the cookie's maxAge runs out, counted from when the cookie was written", async () => {
    const node = await startNode({ maxAge: 1500 });
    const since = Date.now();
    const cookie = await node.login("alice");
    await sleep(700);
    // A handshake 0.7 s into the cookie's life: it ends when the browser's cookie does, not 1.5 s after the handshake.
    const socket = await node.connect(cookie);
    const end = await ending(socket, since);
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeGreaterThanOrEqual(1450);
    expect(end.ms).toBeLessThan(2100);
  });

  it("counts maxAge from the handshake for a cookie without the shim's stamp", async () => {
    const legacy = await startNode({ shim: "usual", maxAge: 1000 });
    const node = await startNode({ maxAge: 1000 });
    const cookie = await legacy.login("alice");
    await sleep(300);
    const since = Date.now();
    const end = await ending(await node.connect(cookie), since);
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeGreaterThanOrEqual(950);
    expect(end.ms).toBeLessThan(1700);
  });

  it("follows a renewal of the cookie through HTTP on another node", async () => {
    const [a, b] = await twoNodes({ maxAge: 1000 });
    const cookie = await a.login("alice");
    const since = Date.now();
    const socket = await a.connect(cookie);
    const ended = ending(socket, since);
    await sleep(600);
    const renewed = Date.now() - since;
    // A change to the session: cookie-session sets the cookie again, for another second.
    const res = await b.request("/visit", cookie, "POST");
    expect(res.headers.getSetCookie().some((c) => c.startsWith("session="))).toBe(true);
    await sleep(1250 - (Date.now() - since));
    expect(socket.connected).toBe(true);
    const end = await ended;
    expect(end.code).toBe("session_expired");
    expect(end.ms).toBeGreaterThanOrEqual(renewed + 950);
    expect(end.ms).toBeLessThan(renewed + 2000);
  });
});

describe("cookie-session: setup", () => {
  const passport = new Passport();

  it("takes cookie-session without a warning", async () => {
    bridge(new Server(), { session: cookieSession({ keys: KEYS }), passport });
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual([]);
  });

  it("refuses an unsigned cookie-session", () => {
    expect(setupError(() => bridge(new Server(), { session: cookieSession({ signed: false }), passport })).message).toMatch(/unsigned.*keys/);
  });

  it("refuses a cookie path that does not cover the Socket.IO path", () => {
    expect(setupError(() => bridge(new Server(), { session: cookieSession({ keys: KEYS, path: "/app" }), passport })).message).toMatch(
      /path "\/app" does not cover the Socket\.IO path "\/socket\.io"/,
    );
  });

  // What each looks like: @fastify/session is a fastify-plugin (marked with these symbols); koa-session's middleware is
  // `async function session(ctx, next)`.
  const fastifyPlugin = Object.assign(function fastifySession(_fastify: unknown, _options: unknown, next: () => void) {
    next();
  }, { [Symbol.for("skip-override")]: true, [Symbol.for("fastify.display-name")]: "@fastify/session" });
  const koaSession = async function session(_ctx: unknown, next: () => Promise<void>) {
    await next();
  };

  it.each<[string, unknown, RegExp]>([
    ["@fastify/session", fastifyPlugin, /It is a Fastify plugin \(@fastify\/session\), not an Express middleware\..*Fastify and Koa are not supported/],
    ["koa-session's middleware", koaSession, /It is a function of two parameters \(session\), such as a Koa middleware \(ctx, next\) from koa-session/],
    ["an options object", { secret: "s", resave: false }, /It is an object \(secret, resave\): options, not a middleware/],
    ["cookie-session's factory", cookieSession, /It is the `cookieSession` function itself, which makes the middleware: call it/],
    ["express-session's factory", session, /It is the `session` function itself/],
  ])("refuses %s as `session`, saying what it is and what to pass", (_name, value, message) => {
    const error = setupError(() => bridge(new Server(), { session: value as never, passport }));
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/`cookieSession\(\{ \.\.\. \}\)`/);
  });

  it("refuses cookieSessionShim() on express-session", () => {
    const auth = bridge(new Server(), { session: session({ secret: "s", resave: false, saveUninitialized: false }), passport });
    expect(() => auth.cookieSessionShim()).toThrow(ConfigError);
  });
});

/**
 * The example app in cookie-session mode (`npm run example:cookie-session`), from the built package: same page, same
 * users; a logout in one tab ends the other tab's socket.
 */
describe("cookie-session: the example app", () => {
  const tabs = (url: string, cookie: string) => {
    const socket = ioClient(url, { forceNew: true, transports: ["websocket"], extraHeaders: { cookie } });
    open.push(async () => void socket.disconnect());
    return socket;
  };

  it("signs in over HTTP, greets the user on two tabs, and a logout in one ends the other", async () => {
    const logs: string[] = [];
    const app = (await createApp({ sessions: "cookie-session", databaseUrl: "", redisUrl: "", log: (line: string) => logs.push(line) })) as ExampleApp;
    open.push(() => app.close());
    await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    expect(logs.join("\n")).toMatch(/signed cookie \(cookie-session\)/);
    const cookie = await exampleLogin(url, "alice", "wonderland");
    expect(cookie).toMatch(/^session=.*; session\.sig=/);
    const [one, two] = [tabs(url, cookie), tabs(url, cookie)];
    expect(await Promise.all([nextEvent(one, "hello"), nextEvent(two, "hello")])).toEqual([{ name: "Alice" }, { name: "Alice" }]);
    const ended = ending(two);
    // The first tab's logout form.
    const logout = await fetch(`${url}/logout`, { method: "POST", headers: { cookie }, redirect: "manual" });
    expect(logout.status).toBe(302);
    expect((await ended).code).toBe("logged_out");
    // The cookie the logout set says nobody.
    const after = cookieFrom(logout);
    expect(await (await fetch(`${url}/api/me`, { headers: { cookie: after } })).json()).toEqual({ user: null });
  });

  it("on two nodes sharing a Redis adapter, a logout through one ends the tab on the other", async () => {
    // A Redis of its own: the example's adapter uses Socket.IO's default channel, which other files' nodes share.
    const redis = await startRedis();
    open.push(() => redis.close());
    const nodes: string[] = [];
    for (let i = 0; i < 2; i++) {
      const app = (await createApp({ sessions: "cookie-session", databaseUrl: "", redisUrl: redis.url, log: () => undefined })) as ExampleApp;
      open.push(() => app.close());
      await new Promise<void>((resolve) => app.server.listen(0, "127.0.0.1", resolve));
      nodes.push(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
    }
    const cookie = await exampleLogin(nodes[0]!, "alice", "wonderland");
    const tab = tabs(nodes[1]!, cookie);
    expect(await nextEvent(tab, "hello")).toEqual({ name: "Alice" });
    const ended = ending(tab);
    await fetch(`${nodes[0]}/logout`, { method: "POST", headers: { cookie }, redirect: "manual" });
    expect((await ended).code).toBe("logged_out");
  });

  it("starts with npm run example:cookie-session, and stops on SIGTERM", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const npm = spawn("npm", ["run", "example:cookie-session"], {
      cwd: root,
      env: { ...process.env, PORT: String(port), REDIS_URL: "", DATABASE_URL: "", SESSIONS: "", SKIP_BUILD: "1" },
      stdio: "pipe",
      detached: true,
    });
    let output = "";
    npm.stdout!.on("data", (chunk) => (output += chunk));
    const exited = new Promise<number | string | null>((resolve) => npm.once("exit", (code, sig) => resolve(code ?? sig)));
    open.push(async () => {
      if (npm.exitCode === null && npm.signalCode === null) process.kill(-npm.pid!, "SIGKILL");
    });
    await untilServing(npm, [url], "npm run example:cookie-session");
    expect(output).toMatch(/signed cookie \(cookie-session\)/);
    const cookie = await exampleLogin(url, "bob", "builder");
    expect(cookie).toMatch(/^session=/);
    expect(await nextEvent(tabs(url, cookie), "hello")).toEqual({ name: "Bob" });
    npm.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
