/**
 * passport-socketio-bridge/compat: passport.socketio 3.7.0's README and test suite, ported to Socket.IO 4 on a
 * real Redis store, over WebSocket and polling; and a typical passport.socketio app run with only its
 * require line changed.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import cookieParser from "cookie-parser";
import { MemoryStore, type SessionData } from "express-session";
import { io as ioClient, type Socket as ClientSocket } from "socket.io-client";
import { afterAll, describe, expect, inject, it } from "vitest";
import { authorize, fetchSocketsByUser, filterSocketsByUser, type Accept, type AuthorizeOptions } from "../lib/compat.js";
import { RefusalError } from "../lib/index.js";
import { harnessPerTest, nextEvent, SECRET, type Harness, type HarnessOptions } from "./helpers/harness.js";
import { failOnLeaks } from "./helpers/leaks.js";

const startHarness = harnessPerTest();
failOnLeaks();

/** The harness app, with authorize() instead of bridge() on "/" (and on `namespaces`). */
async function start(options: Partial<AuthorizeOptions> = {}, harness: HarnessOptions = {}, namespaces: string[] = []) {
  const h = await startHarness({ bridge: false, ...harness });
  const middleware = authorize({ secret: SECRET, store: h.store, passport: h.passport, ...options });
  h.io.use(middleware);
  for (const nsp of namespaces) h.io.of(nsp).use(middleware);
  return h;
}

/** A session whose passport data is as given (to reach each failure). */
let shapes = 0;
async function sessionWith(h: Harness, passport: unknown) {
  const path = `/shape/${shapes++}`;
  h.app.post(path, (req, res) => {
    const session = req.session as unknown as Record<string, unknown>;
    if (passport !== undefined) session.passport = passport;
    session.visited = true;
    res.sendStatus(204);
  });
  const res = await h.request(path, { method: "POST" });
  return res.headers.getSetCookie()[0]!.split(";")[0]!;
}

type Failure = [message: string, critical: boolean];
/** A `fail` that records its arguments and refuses like passport.socketio's default. */
function recorder() {
  const calls: Failure[] = [];
  const fail: AuthorizeOptions["fail"] = (_data, message, critical, accept) => {
    calls.push([message instanceof Error ? `Error: ${message.message}` : message, critical]);
    accept(new Error(String(message)));
  };
  return { calls, fail };
}

describe.each(["websocket", "polling"] as const)("authorize() over %s", (transport) => {
  it("refuses a client that is not logged in, with passport.socketio's message", async () => {
    const h = await start();
    const refused = await h.refusal({ transport });
    expect(refused.message).toBe("No session found");
    expect(refused.data).toEqual({ code: "session_missing", reconnect: false, reason: "no_cookie" });
  });

  it("connects a logged-in client and gives it passport.socketio's request properties", async () => {
    const h = await start();
    const admitted = new Promise<Record<string, unknown>>((resolve) =>
      h.io.on("connection", (socket) => {
        const req = socket.request as IncomingMessage & Record<string, unknown>;
        resolve({ user: req.user, sessionID: req.sessionID, cookie: req.cookie, data: { ...socket.data } });
      }),
    );
    const cookie = await h.login("alice");
    await h.connect({ cookie, transport });
    const sid = decodeURIComponent(cookie).slice("connect.sid=s:".length).split(".")[0];
    expect(await admitted).toEqual({
      user: { ...h.users.get("1"), logged_in: true },
      sessionID: sid,
      cookie: { "connect.sid": sid },
      data: { user: { ...h.users.get("1"), logged_in: true }, userId: "1", sessionId: sid },
    });
  });

  it("calls fail with each of passport.socketio's messages and critical flags, in its order", async () => {
    const store = new (class extends MemoryStore {
      broken = false;
      override get(sid: string, cb: (err: unknown, session?: SessionData | null) => void) {
        if (this.broken) return void setImmediate(() => cb(new Error("connection refused")));
        super.get(sid, cb);
      }
    })();
    const { calls, fail } = recorder();
    const h = await start({ fail, store }, { store, replaceDeserializer: true, passport: (p, users) => {
      p.deserializeUser((id: string, done) => (id === "crash" ? done(new Error("db down")) : done(null, users.get(id) ?? false)));
    } });
    const alice = await h.login("alice");
    const cookies = {
      store: alice,
      none: undefined,
      noPassport: await sessionWith(h, undefined),
      noUser: await sessionWith(h, {}),
      deserializer: await sessionWith(h, { user: "crash" }),
      userNotFound: await sessionWith(h, { user: "404" }),
    };
    store.broken = true;
    await h.refusal({ cookie: cookies.store, transport });
    store.broken = false;
    for (const cookie of Object.values(cookies).slice(1)) await h.refusal({ cookie, transport });
    expect(calls).toEqual([
      ["Error in session store:\nconnection refused", true],
      ["No session found", false],
      ["Passport was not initialized", true],
      ["User not authorized through passport. (User Property not found)", false],
      ["Error: db down", true],
      ["User not found", false],
    ]);
  });

  it("holds the connection while success holds accept", async () => {
    let held: Accept | undefined;
    const h = await start({ success: (_data, accept) => (held = accept) });
    let connected = false;
    const socket = h.client({ cookie: await h.login("alice"), transport });
    socket.on("connect", () => (connected = true));
    await sleep(300);
    expect(held).toBeTypeOf("function");
    expect(connected).toBe(false);
    held!(null, true);
    await nextEvent(socket, "connect").catch(() => undefined);
    expect(connected).toBe(true);
  });

  it("passes err.message and err.data from accept(err) to the client", async () => {
    const h = await start({
      fail: (_data, _message, _critical, accept) => accept(Object.assign(new Error("Log in first."), { data: { code: "login", url: "/login" } })),
    });
    const refused = await h.refusal({ transport });
    expect(refused.message).toBe("Log in first.");
    expect(refused.data).toEqual({ code: "login", url: "/login" });
  });
});

describe("authorize() edge cases", () => {
  it("reports a store outage before 'No session found', even without a cookie, as passport.socketio did", async () => {
    const store = new (class extends MemoryStore {
      override get(_sid: string, cb: (err: unknown) => void) {
        setImmediate(() => cb(new Error("store down")));
      }
    })();
    const { calls, fail } = recorder();
    const h = await start({ fail, store }, { store: "memory" });
    await h.refusal();
    expect(calls).toEqual([["Error in session store:\nstore down", true]]);
  });

  it("reads the first cookie of the session's name, like cookie-parser and express-session", async () => {
    for (const cookieParserOption of [undefined, cookieParser]) {
      const h = await start(cookieParserOption ? { cookieParser: cookieParserOption } : {});
      const valid = (await h.login("alice")).split("=")[1];
      expect((await h.refusal({ cookie: `connect.sid=garbage; connect.sid=${valid}` })).message).toBe("No session found");
      await h.connect({ cookie: `connect.sid=${valid}; connect.sid=garbage` });
    }
  });

  it("admits a user that cannot take logged_in (a string), as passport.socketio did", async () => {
    const h = await start({}, { replaceDeserializer: true, passport: (p) => p.deserializeUser((id: string, done) => done(null, `user-${id}` as never)) });
    const user = new Promise((resolve) => h.io.on("connection", (socket) => resolve(socket.request.user)));
    await h.connect({ cookie: await h.login("alice") });
    expect(await user).toBe("user-1");
  });

  it("checks the Origin first, without calling fail, against cross-site WebSocket hijacking", async () => {
    const { calls, fail } = recorder();
    const h = await start({ fail: (data, message, critical, accept) => (fail!(data, message, critical, () => undefined), accept()) });
    const refused = await h.refusal({ cookie: await h.login("alice"), headers: { origin: "https://evil.example" } });
    expect(refused.data.code).toBe("origin_not_allowed");
    expect(calls).toEqual([]);
    const listed = await start({ origins: ["https://app.example"] });
    await listed.connect({ cookie: await listed.login("alice"), headers: { origin: "https://app.example" } });
  });

  it("filterSocketsByUser skips namespaces without authorize()", async () => {
    const h = await start();
    h.io.of("/public");
    const cookie = await h.login("alice");
    const main = h.client({ cookie });
    await nextEvent(main, "connect");
    await nextEvent(main.io.socket("/public"), "connect");
    expect(filterSocketsByUser(h.io, (user) => user.name === "Alice").map((s) => s.nsp.name)).toEqual(["/"]);
  });
});

describe("authorize() accept semantics", () => {
  it("accept(null, false) refuses, as passport.socketio's README says (it admitted on socket.io 1+)", async () => {
    const h = await start({ success: (_data, accept) => accept(null, false) });
    const refused = await h.refusal({ cookie: await h.login("alice") });
    expect(refused.data.code).toBe("rejected");
  });

  it("a fail that admits leaves request.user = { logged_in: false }", async () => {
    const h = await start({ fail: (_data, _message, _critical, accept) => accept() });
    const user = new Promise((resolve) => h.io.on("connection", (socket) => resolve(socket.request.user)));
    await h.connect();
    expect(await user).toEqual({ logged_in: false });
  });

  it("a fail or success that throws refuses, instead of crashing the process", async () => {
    const failing = await start({
      fail: (_data, message, critical) => {
        if (critical || message) throw new Error(`fatal: ${message}`);
      },
    });
    expect((await failing.refusal()).message).toBe("fatal: No session found");
    const succeeding = await start({
      success: () => {
        throw new Error("success crashed");
      },
    });
    expect((await succeeding.refusal({ cookie: await succeeding.login("alice") })).message).toBe("success crashed");
  });

  it("honours userProperty and (req, id, done) deserializers", async () => {
    const seen: unknown[] = [];
    const h = await start(
      { userProperty: "account" },
      {
        replaceDeserializer: true,
        passport: (passport, users) =>
          passport.deserializeUser<string, IncomingMessage>((req, id, done) => {
            seen.push(req);
            done(null, users.get(id));
          }),
      },
    );
    const admitted = new Promise<unknown[]>((resolve) =>
      h.io.on("connection", (socket) => resolve([(socket.request as unknown as { account: unknown }).account, seen.includes(socket.request)])),
    );
    await h.connect({ cookie: await h.login("carol") });
    expect(await admitted).toEqual([{ ...h.users.get("3"), logged_in: true }, true]);
    expect(filterSocketsByUser(h.io, (account) => account.role === "admin")).toHaveLength(1);
  });

  it("ignores the unsigned session_id query parameter", async () => {
    const h = await start();
    const cookie = await h.login("alice");
    const sid = decodeURIComponent(cookie).slice("connect.sid=s:".length).split(".")[0]!;
    expect((await h.refusal({ query: { session_id: sid } })).message).toBe("No session found");
  });

  it("works with cookie-parser, and with rotated secrets", async () => {
    const h = await start({ cookieParser, secret: ["new secret", SECRET] });
    await h.connect({ cookie: await h.login("alice") });
  });

  it("refuses a store class instead of an instance, at setup", () => {
    expect(() => authorize({ secret: "s", store: MemoryStore })).toThrow(/store instance/);
  });

  it("shares one copy of the error classes between the two built entry points", async () => {
    const require = createRequire(import.meta.url);
    const main = require("../dist/index.cjs") as { RefusalError: new (...args: never[]) => Error };
    const compat = require("../dist/compat.cjs") as { authorize: typeof authorize };
    const middleware = compat.authorize({ secret: "s", store: new MemoryStore(), passport: {} as never });
    const refusal = await new Promise((resolve) => middleware({ request: { headers: {} }, data: {} } as never, resolve));
    expect(refusal).toBeInstanceOf(main.RefusalError);
    expect(refusal).not.toBeInstanceOf(RefusalError); // (the source's class, a third copy, is not the built one)
  });
});

describe("filterSocketsByUser and fetchSocketsByUser", () => {
  it("filterSocketsByUser finds a user's sockets in every namespace on this node", async () => {
    const h = await start({}, {}, ["/chat"]);
    const alice = await h.login("alice");
    const main = h.client({ cookie: alice });
    await nextEvent(main, "connect");
    const chat = main.io.socket("/chat");
    await nextEvent(chat, "connect");
    await h.connect({ cookie: await h.login("bob") });
    const found = filterSocketsByUser(h.io, (user) => user.name === "Alice");
    expect(found.map((s) => s.nsp.name).sort()).toEqual(["/", "/chat"]);
  });

  it("fetchSocketsByUser finds them on every node", async () => {
    const a = await start({}, { redisAdapter: true });
    const b = await start({}, { redisAdapter: true, prefix: a.prefix });
    const cookie = await a.login("alice");
    await a.connect({ cookie });
    await b.connect({ cookie, transport: "polling" });
    await b.connect({ cookie: await b.login("bob") });
    const found = await fetchSocketsByUser(a.io, (user) => user?.name === "Alice");
    expect(found).toHaveLength(2);
  });
});

describe("a typical passport.socketio app, migrated by changing one line", () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  const original = readFileSync(join(root, "spec/fixtures/passport-socketio-app/app.js"), "utf8");
  const migrated = original.replace('require("passport.socketio")', 'require("passport-socketio-bridge/compat")');
  mkdirSync(join(root, ".tmp"), { recursive: true });
  const dir = mkdtempSync(join(root, ".tmp", "passport-socketio-app-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // An app of its own, on Express 4, with the packages it requires.
  mkdirSync(join(dir, "node_modules"));
  const modules = { express: "express-4", "passport-socketio-bridge": "..", };
  for (const name of ["cookie-parser", "express-session", "connect-redis", "ioredis", "passport", "passport-local", "socket.io", "passport.socketio"]) {
    symlinkSync(join(root, "node_modules", name), join(dir, "node_modules", name), "dir");
  }
  for (const [name, target] of Object.entries(modules)) {
    symlinkSync(target === ".." ? root : join(root, "node_modules", target), join(dir, "node_modules", name), "dir");
  }
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "passport-socketio-app", private: true, type: "commonjs" }));
  writeFileSync(join(dir, "original.js"), original);
  writeFileSync(join(dir, "migrated.js"), migrated);
  const load = createRequire(join(dir, "index.js"));

  async function run(file: string) {
    const app = load(`./${file}`) as { start: (o: object, cb: (err: unknown, s: { url: string; close: (d: () => void) => void }) => void) => void };
    const server = await new Promise<{ url: string; close: (d: () => void) => void }>((resolve, reject) =>
      app.start({ redisUrl: inject("redisUrl"), prefix: `sess:${file}:${Date.now()}:` }, (err, s) => (err ? reject(err) : resolve(s))),
    );
    const sockets: ClientSocket[] = [];
    const connect = (cookie?: string) => {
      const socket = ioClient(server.url, { forceNew: true, transports: ["websocket"], extraHeaders: cookie ? { cookie } : {} });
      sockets.push(socket);
      return socket;
    };
    const login = async () => {
      const res = await fetch(`${server.url}/login`, { method: "POST", body: new URLSearchParams({ username: "jose", password: "Pa123" }) });
      return res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    };
    return {
      ...server,
      connect,
      login,
      notify: async () => ((await (await fetch(`${server.url}/notify/jose`, { method: "POST" })).json()) as { sockets: number }).sockets,
      stop: () => {
        for (const socket of sockets) socket.disconnect();
        return new Promise<void>((resolve) => server.close(resolve));
      },
    };
  }

  it("differs from the original by exactly the require line", () => {
    const a = original.split("\n");
    const b = migrated.split("\n");
    expect(a.filter((line, i) => line !== b[i])).toEqual(['var passportSocketIo = require("passport.socketio");']);
  });

  it("passes its own test: users connect, strangers are refused, notices reach a user's sockets", async () => {
    const app = await run("migrated.js");
    try {
      const socket = app.connect(await app.login());
      expect(await nextEvent(socket, "hello")).toBe("jose");
      const stranger = app.connect();
      expect((await nextEvent<Error>(stranger, "connect_error")).message).toBe("No session found");
      const notice = nextEvent(socket, "notice");
      expect(await app.notify()).toBe(1);
      expect(await notice).toBe("hello jose");
    } finally {
      await app.stop();
    }
  });

  it("(the original, on Socket.IO 4, admits the stranger and finds no sockets to notify)", async () => {
    const app = await run("original.js");
    try {
      const socket = app.connect(await app.login());
      expect(await nextEvent(socket, "hello")).toBe("jose");
      const stranger = app.connect();
      await nextEvent(stranger, "connect");
      expect(await app.notify()).toBe(0);
    } finally {
      await app.stop();
    }
  });
});
