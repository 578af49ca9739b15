/**
 * The supported range, oldest to newest: socket.io 4.5.2–4.8, express-session 1.15–1.19, passport 0.5.1–0.7,
 * Express 4 and 5. The newest versions run in every other spec; here the older ones run the core paths.
 * (`npm run test:versions` runs the whole flow, logout included, on each range's ends from the registry.)
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { describe, expect, it } from "vitest";
import { ChannelError, withAuth } from "../lib/client.js";
import { REFUSALS } from "../lib/index.js";
import * as seams from "../lib/seams.js";
import { TRANSPORTS, harnessPerTest, nextEvent, type StackModules, type WhoAmI } from "./helpers/harness.js";

const require = createRequire(import.meta.url);
const load = (name: string) => ({
  module: require(name),
  version: JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), "utf8")).version as string,
});

const io45 = load("socket.io-4.5");
const io46 = load("socket.io-4.6");
const io47 = load("socket.io-4.7");
const session115 = load("express-session-1.15");
const session117 = load("express-session-1.17");
const passport05 = load("passport-0.5");
const passport06 = load("passport-0.6");
const express4 = load("express-4");

const MATRIX: Array<[label: string, modules: StackModules, store: "memory" | "redis"]> = [
  [
    `socket.io ${io45.version}, express-session ${session115.version}, passport ${passport05.version}, express ${express4.version}`,
    { Server: io45.module.Server, session: session115.module, Passport: passport05.module.Passport, express: express4.module },
    "redis",
  ],
  [
    `socket.io ${io46.version}, express-session ${session117.version}, passport ${passport06.version}, express ${express4.version}`,
    { Server: io46.module.Server, session: session117.module, Passport: passport06.module.Passport, express: express4.module },
    "memory",
  ],
  [`socket.io ${io47.version} with connect-redis`, { Server: io47.module.Server }, "redis"],
];

const start = harnessPerTest();

describe.each(MATRIX)("%s", (_label, modules, store) => {
  it.each(TRANSPORTS)("admits the logged-in user over %s, with the HTTP user", async (transport) => {
    const h = await start({ modules, store });
    const cookie = await h.login("alice");
    const socket = await h.connect({ cookie, transport });
    const me = (await socket.emitWithAck("whoami")) as WhoAmI;
    expect(me).toMatchObject({ user: { name: "Alice" }, isAuthenticated: true, rooms: expect.arrayContaining(["user:1"]) });
  });

  it("refuses with the right codes", async () => {
    const h = await start({ modules, store });
    expect((await h.refusal()).data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
    const visit = (await h.request("/visit", { method: "POST" })).headers.getSetCookie()[0]!.split(";")[0];
    expect((await h.refusal({ cookie: visit })).data.code).toBe("unauthenticated");
    const cookie = await h.login("bob");
    h.users.delete("2");
    const refused = await h.refusal({ cookie, transport: "polling" });
    expect(refused).toMatchObject({ message: REFUSALS.user_not_found.message, data: { code: "user_not_found" } });
  });

  it("disconnects a user's sockets with the notice", async () => {
    const h = await start({ modules, store });
    const socket = await h.connect({ cookie: await h.login("alice") });
    const ended = nextEvent(socket, "auth:ended");
    expect(await h.auth.disconnectUser("1")).toBe(1);
    expect(await ended).toEqual({ code: "revoked" });
  });
});

/** /client on the oldest socket.io-client its peer range accepts: 4.5 has timeout() but no emitWithAck(). */
describe("withAuth on socket.io-client 4.5", () => {
  const client45 = load("socket.io-client-4.5");

  it("joins a channel through an acknowledged emit, and gives up on one that is never answered", async () => {
    const h = await start();
    h.auth.channel("room:{id}", (user) => user !== undefined).channel("slow:{id}", () => new Promise<boolean>(() => undefined));
    const socket = client45.module.io(h.url, { autoConnect: false, forceNew: true, transports: ["websocket"], reconnection: false, extraHeaders: { cookie: await h.login("alice") } });
    const auth = withAuth(socket, { ackTimeoutMs: 300 });
    try {
      auth.connect();
      await nextEvent(socket, "connect");
      expect(client45.version).toBe("4.5.0");
      expect(typeof socket.emitWithAck).toBe("undefined");
      await expect(auth.join("room:1")).resolves.toEqual(expect.any(Object));
      await expect(auth.join("slow:1")).rejects.toEqual(new ChannelError("timeout", "slow:1"));
    } finally {
      socket.close();
    }
  });
});

/**
 * lib/seams.ts, the one file that reads private members of the dependencies, checked member by member on the
 * oldest and the newest supported versions: a dependency that renames one fails here, by name.
 */
describe("the seam", () => {
  const newest = { io: load("socket.io"), session: load("express-session"), passport: load("passport") };
  const SERVERS = [io45, io46, io47, newest.io].map((m) => [m.version, m.module.Server] as const);
  const SOCKET_CLASSES = new Map([io45, io46, io47, newest.io].map((m) => [m.module.Server, { Socket: m.module.Socket as { prototype: object } }]));
  const SESSIONS = [session115, session117, newest.session].map((m) => [m.version, m.module] as const);
  const PASSPORTS = [passport05, passport06, newest.passport].map((m) => [m.version, m.module.Passport] as const);

  describe.each(SERVERS)("socket.io %s", (_version, Server) => {
    it("lists namespaces, puts the bridge's middleware first, and finds the recovery options and the engine's middlewares", () => {
      const http = createServer();
      const io = new Server(http, { connectionStateRecovery: {} });
      const app = (_socket: unknown, next: () => void) => next();
      io.of("/chat").use(app);
      const ours = (_socket: unknown, next: () => void) => next();
      const seen: string[] = [];
      seams.wireEveryNamespace(io, ours, () => undefined, (nsp) => seen.push(nsp.name));
      io.of("/later");
      expect(seen).toEqual(expect.arrayContaining(["/", "/chat", "/later"]));
      expect([...seams.namespacesOf(io)].map((nsp) => nsp.name)).toEqual(expect.arrayContaining(["/", "/chat", "/later"]));
      expect((io.of("/chat") as unknown as { _fns: unknown[] })._fns).toEqual([ours, app]);
      const engineMiddleware = (_req: unknown, _res: unknown, next: () => void) => next();
      if (typeof io.engine.use === "function") {
        // socket.io 4.6+: connection-state recovery and engine middlewares.
        expect(seams.recoveryOptionsOf(io)).toMatchObject({ skipMiddlewares: true });
        io.engine.use(engineMiddleware);
        expect(seams.engineMiddlewares(io)).toContain(engineMiddleware);
      } else {
        // 4.5 has neither: no recovery to skip the bridge, and no engine middleware to warn of.
        expect(seams.recoveryOptionsOf(io)?.skipMiddlewares).toBeUndefined();
        expect(seams.engineMiddlewares(io)).toEqual([]);
      }
      io.close();
    });

    it("wires only the namespaces `owns` accepts, a dynamic namespace's children each by their own name (issue 25)", () => {
      const io = new Server(createServer());
      const ours = (_socket: unknown, next: () => void) => next();
      const leftOut = (_socket: unknown, next: () => void) => next();
      const seen: string[] = [];
      io.of("/admin");
      const owns = (nsp: { name: string }) => nsp.name !== "/admin" && !nsp.name.startsWith("/public");
      seams.wireEveryNamespace(io, ours, () => undefined, (nsp) => seen.push(nsp.name), owns, leftOut);
      io.of(/^\/(room|public)-\d+$/);
      // A child is made by io.of(name) as by a client's CONNECT, and decided by its own name.
      for (const name of ["/room-1", "/public-1"]) io.of(name);
      const fns = (name: string) => (io.of(name) as unknown as { _fns: unknown[] })._fns;
      expect(seen.sort()).toEqual(["/", "/room-1"]);
      expect([fns("/"), fns("/room-1"), fns("/admin"), fns("/public-1")]).toEqual([[ours], [ours], [leftOut], [leftOut]]);
      io.close();
    });

    it("has the socket members the seam hooks: onevent, _cleanup, packet and _onconnect", () => {
      const { Socket } = SOCKET_CLASSES.get(Server)!;
      for (const member of ["onevent", "_cleanup", "packet", "_onconnect"]) {
        expect(typeof (Socket.prototype as Record<string, unknown>)[member]).toBe("function");
      }
    });
  });

  describe.each(PASSPORTS)("passport %s", (_version, Passport) => {
    it("reads its session key and strategies, counts and guards its deserializers, and sets isAuthenticated", async () => {
      const passport = new Passport();
      expect(seams.passportKeyOf(passport)).toBe("passport");
      expect(seams.hasStrategy(passport, "session")).toBe(true);
      expect(seams.hasStrategy(passport, "nope")).toBe(false);
      expect(seams.hasDeserializer(passport)).toBe(false);
      passport.deserializeUser(async () => {
        throw new Error("boom");
      });
      expect(seams.hasDeserializer(passport)).toBe(true);
      seams.guardDeserializers(passport);
      const err = await new Promise((resolve) => passport.deserializeUser("1", {}, (e: unknown) => resolve(e)));
      expect(err).toMatchObject({ message: "boom" });
      const req = { headers: {}, account: { id: 1 } } as never;
      seams.giveIsAuthenticated(req, "account");
      expect((req as { isAuthenticated(): boolean }).isAuthenticated()).toBe(true);
    });
  });

  describe.each(SESSIONS)("express-session %s", (_version, session) => {
    it("reads the cookie path, runs on a detached response, and drops its per-request wrappers and URL cache", async () => {
      expect(seams.cookiePathOf(session({ secret: "s", resave: false, saveUninitialized: false, cookie: { path: "/app" } }))).toBe("/app");
      const middleware = session({ secret: "s", resave: false, saveUninitialized: true });
      const req = { url: "/socket.io/", originalUrl: "/socket.io/", method: "GET", headers: {} } as Record<string, any>;
      await new Promise<void>((resolve) => middleware(req, seams.detachedResponse(), () => resolve()));
      expect(Object.hasOwn(req.session, "save")).toBe(true);
      seams.unwrapSession(req.session);
      expect(req.session.save).toBe(Object.getPrototypeOf(req.session).save);
      expect(req._parsedOriginalUrl ?? req._parsedUrl).toBeDefined();
      seams.forgetParsedUrl(req as never);
      expect(req._parsedOriginalUrl ?? req._parsedUrl).toBeUndefined();
    });
  });
});

describe("private members of the dependencies", () => {
  it("are read in lib/seams.ts only", () => {
    const PRIVATE =
      /\._(?:nsps|fns|cleanup|userProperty|deserializers|strategy|key|parsedUrl|parsedOriginalUrl|onconnect)\b|\.opts\b|\bmiddlewares\b|\brequestsTimeout\b|\.pid\b|\.packet\(|\bsubClient\b|\binitClient\b|\bonevent\b|\.client\.sockets\b/;
    const dir = new URL("../lib/", import.meta.url);
    const offenders: string[] = [];
    for (const file of readdirSync(dir).filter((name) => name.endsWith(".ts") && name !== "seams.ts")) {
      // Code only: comments and string literals may name a member.
      const code = readFileSync(new URL(file, dir), "utf8")
        .replace(/\/\*[\s\S]*?\*\//g, "")
        .replace(/\/\/.*$/gm, "")
        .replace(/"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, '""');
      for (const [i, line] of code.split("\n").entries()) if (PRIVATE.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
    }
    expect(offenders).toEqual([]);
  });
});
