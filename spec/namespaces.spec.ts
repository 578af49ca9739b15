/**
 * Namespaces the bridge doesn't own (issue 25): Socket.IO's Admin UI (`@socket.io/admin-ui`, real, with its own
 * basic auth) next to the bridge with `namespaces`, and dynamic namespaces matched by a RegExp. A namespace left
 * out is the app's alone; the namespaces kept keep every check, on a connection that carries both too.
 */
import { instrument } from "@socket.io/admin-ui";
import bcrypt from "bcryptjs";
import session from "express-session";
import { Passport } from "passport";
import { Server, type Socket as ServerSocket } from "socket.io";
import { Manager, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { bridge, type BridgeOptions } from "../lib/index.js";
import { failOnLeaks } from "./helpers/leaks.js";
import { harnessPerTest, nextEvent, sessionIdOf, type Harness, type HarnessOptions, type User, type WhoAmI } from "./helpers/harness.js";
import { monitorPerTest } from "./helpers/monitor.js";
import { captureWarnings } from "./helpers/warnings.js";

const start = harnessPerTest();
const monitorStore = monitorPerTest();
const warnings = captureWarnings();
failOnLeaks();

/** The hosted Admin UI's origin, which the server's `cors` allows (for its long-polling requests). */
const ADMIN_UI = "https://admin.socket.io";
const ADMIN = { username: "admin", password: "correct horse" };
// As the Admin UI's docs say: a bcrypt hash (4 rounds, the least bcryptjs makes, keeps the spec quick).
const ADMIN_HASH = bcrypt.hashSync(ADMIN.password, 4);

/** Managers opened here (one Engine.IO connection each, several namespaces); closed after each test. */
const managers: Manager[] = [];
afterEach(() => {
  for (const manager of managers.splice(0)) manager.engine?.close();
});

/** The app of the issue: the bridge on every namespace but `/admin`, and the Admin UI instrumenting the server. */
async function startWithAdminUi(bridgeOptions: Partial<BridgeOptions<User>> = {}, options: HarnessOptions = {}): Promise<Harness> {
  const h = await start({
    io: { cors: { origin: [ADMIN_UI], credentials: true } },
    bridge: { namespaces: (name) => name !== "/admin", ...bridgeOptions },
    ...options,
  });
  // "development" sends the UI every socket (all_sockets) and instruments every namespace, the busiest mode.
  instrument(h.io, { auth: { type: "basic", username: ADMIN.username, password: ADMIN_HASH }, mode: "development" });
  h.io.of("/admin").on("connection", (socket) => answerWhoami(socket));
  return h;
}

/** What the server knows of a socket (as the harness's `whoami` on `/`), for namespaces the harness doesn't wire. */
function answerWhoami(socket: ServerSocket): void {
  socket.on("whoami", (ack: (answer: unknown) => void) =>
    ack({
      user: socket.request.user ?? null,
      sessionID: socket.request.sessionID ?? null,
      isAuthenticated: typeof socket.request.isAuthenticated === "function" ? socket.request.isAuthenticated() : null,
      data: Object.fromEntries(Object.entries(socket.data as object).filter(([key]) => key !== "_admin")),
      rooms: [...socket.rooms].filter((room) => room !== socket.id).sort(),
    }),
  );
}

const whoami = (socket: ClientSocket) => socket.timeout(3000).emitWithAck("whoami") as Promise<WhoAmI>;

/** The Admin UI's own client, as the hosted UI connects: its credentials in `auth`, cookies sent along. */
function adminUi(h: Harness, options: { origin: string; transport?: "websocket" | "polling"; cookie?: string; password?: string }) {
  return h.client({
    namespace: "/admin",
    transport: options.transport ?? "websocket",
    auth: { username: ADMIN.username, password: options.password ?? ADMIN.password },
    headers: { origin: options.origin },
    cookie: options.cookie,
    reconnection: false,
  });
}

/** A connection of its own (one Manager) for several namespaces. */
function connection(h: Harness, headers: Record<string, string>, transport: "websocket" | "polling" = "websocket"): Manager {
  const manager = new Manager(h.url, { transports: [transport], upgrade: false, reconnection: false, extraHeaders: headers });
  managers.push(manager);
  return manager;
}

/** Resolves with "connected", or with the refusal's code (its message when it has none). */
function outcome(socket: ClientSocket): Promise<string> {
  return new Promise((resolve) => {
    if (socket.connected) return resolve("connected");
    socket.once("connect", () => resolve("connected"));
    socket.once("connect_error", (err: Error & { data?: { code?: string } }) => resolve(err.data?.code ?? err.message));
  });
}

/** The server-side socket of a connected client socket. */
/** An HTTP logout ends `main` with `logged_out`, and the server disconnects it. */
async function expectLogoutEnds(h: Harness, cookie: string, main: ClientSocket): Promise<void> {
  const ended = nextEvent(main, "auth:ended");
  const gone = nextEvent(main, "disconnect");
  expect((await h.request("/logout", { method: "POST", cookie })).status).toBe(204);
  expect(await ended).toEqual({ code: "logged_out" });
  expect(await gone).toBe("io server disconnect");
}

const serverSocket = (io: Server, name: string, client: ClientSocket) => io.of(name).sockets.get(client.id!);

const TRANSPORTS = ["websocket", "polling"] as const;

describe("the Admin UI's /admin, left to the app", () => {
  it.each(TRANSPORTS)("connects with its own credentials from the hosted UI's origin and from the same origin, over %s", async (transport) => {
    const h = await startWithAdminUi();
    for (const origin of [ADMIN_UI, h.url]) {
      const ui = adminUi(h, { origin, transport });
      const config = nextEvent<{ supportedFeatures: string[] }>(ui, "config");
      expect([origin, await outcome(ui)]).toEqual([origin, "connected"]);
      // The UI's own protocol runs: it gets its session id and its config.
      expect((await config).supportedFeatures).toContain("ALL_EVENTS");
      expect(await whoami(ui)).toMatchObject({ user: null, rooms: [] });
    }
    // Its own refusal, not the bridge's: a wrong password gets the Admin UI's error, without any bridge code.
    const wrong = adminUi(h, { origin: ADMIN_UI, transport, password: "wrong" });
    expect(await outcome(wrong)).toBe("invalid credentials");
  });

  it("reads no session and shows no user on /admin, even with the logged-in admin's cookie; not online, in no room", async () => {
    const h = await startWithAdminUi();
    const cookie = await h.login("carol");
    const monitor = await monitorStore(h.prefix);
    const ui = adminUi(h, { origin: h.url, cookie });
    expect(await outcome(ui)).toBe("connected");
    // The raw handshake request, as the app's own middlewares would find it: the bridge put nothing on it.
    expect(await whoami(ui)).toEqual({ user: null, sessionID: null, isAuthenticated: null, data: {}, rooms: [] });
    expect(await monitor.take()).toEqual([]);
    expect(await h.auth.onlineUsers()).toEqual([]);
    expect(await h.auth.isOnline("3")).toBe(false);
    expect(h.auth.user(serverSocket(h.io, "/admin", ui)!)).toBeUndefined();
  });

  it.each(["/ first", "/admin first", "together"])(
    "an excluded namespace sharing a connection with `/` never sees its session or user (%s)",
    async (order) => {
      const h = await startWithAdminUi();
      const cookie = await h.login("alice");
      const manager = connection(h, { origin: h.url, cookie });
      const open = (name: string) => manager.socket(name, name === "/admin" ? { auth: ADMIN } : {}).connect();
      let main: ClientSocket;
      let ui: ClientSocket;
      if (order === "together") {
        // Both CONNECTs in one tick, /admin's first: `/` is authenticated while /admin's own (async) password
        // check still runs, before /admin is connected.
        [ui, main] = [open("/admin"), open("/")];
        expect([await outcome(main), await outcome(ui)]).toEqual(["connected", "connected"]);
      } else {
        const [first, second] = order === "/ first" ? ["/", "/admin"] : ["/admin", "/"];
        const sockets = new Map<string, ClientSocket>();
        for (const name of [first!, second!]) {
          sockets.set(name, open(name));
          expect(await outcome(sockets.get(name)!)).toBe("connected");
        }
        [main, ui] = [sockets.get("/")!, sockets.get("/admin")!];
      }
      expect((await whoami(main)).user).toMatchObject({ id: "1" });
      const seen = await whoami(ui);
      expect(seen).toMatchObject({ user: null, sessionID: null, data: {}, rooms: [] });
      expect(seen.isAuthenticated).not.toBe(true);
      const admin = serverSocket(h.io, "/admin", ui)!;
      expect(admin.request.session).toBeUndefined();
      // One connection carried both.
      expect(admin.conn).toBe(serverSocket(h.io, "/", main)!.conn);
    },
  );
});

describe("the bridged namespaces keep every check", () => {
  it.each(TRANSPORTS)("refuses a cookie-carrying `/` from the hosted UI's origin with origin_not_allowed, over %s", async (transport) => {
    const h = await startWithAdminUi();
    const cookie = await h.login("alice");
    const monitor = await monitorStore(h.prefix);
    const refused = await h.refusal({ cookie, transport, headers: { origin: ADMIN_UI }, reconnection: false });
    expect(refused.data).toEqual({ code: "origin_not_allowed", reconnect: false });
    // Refused before the store is read, as any foreign origin.
    expect(await monitor.take()).toEqual([]);
  });

  it("refuses `/` without a session, from the same origin and from the hosted UI's origin", async () => {
    const h = await startWithAdminUi();
    expect((await h.refusal({ headers: { origin: h.url }, reconnection: false })).data).toEqual({
      code: "session_missing",
      reconnect: false,
      reason: "no_cookie",
    });
    expect((await h.refusal({ headers: { origin: ADMIN_UI }, reconnection: false })).data.code).toBe("origin_not_allowed");
    // And a logged-in `/` is admitted as usual, with its user and rooms.
    const cookie = await h.login("alice");
    const me = await whoami(await h.connect({ cookie, headers: { origin: h.url } }));
    expect(me.user).toMatchObject({ id: "1" });
    expect(me.rooms).toEqual(["session:" + sessionIdOf(cookie), "user:1"].sort());
  });

  it.each(TRANSPORTS)(
    "one connection carrying /admin and `/` from an origin allowed only for /admin: /admin works, `/` is refused, over %s",
    async (transport) => {
      const h = await startWithAdminUi();
      const cookie = await h.login("alice");
      for (const order of [["/admin", "/"], ["/", "/admin"]]) {
        const manager = connection(h, { origin: ADMIN_UI, cookie }, transport);
        const results: Record<string, string> = {};
        const sockets: Record<string, ClientSocket> = {};
        for (const name of order) {
          sockets[name] = manager.socket(name, name === "/admin" ? { auth: ADMIN } : {}).connect();
          results[name] = await outcome(sockets[name]!);
        }
        expect([order, results]).toEqual([order, { "/admin": "connected", "/": "origin_not_allowed" }]);
        // The refusal left the connection and /admin alone; a second try on `/` is refused again.
        expect(sockets["/admin"]!.connected).toBe(true);
        expect(await outcome(manager.socket("/").connect())).toBe("origin_not_allowed");
        expect((await whoami(sockets["/admin"]!)).user).toBeNull();
      }
    },
  );

  it("/admin's refusals never count against the failure limit; `/` still refuses past it", async () => {
    const h = await startWithAdminUi({ failureLimit: 2 });
    for (let i = 0; i < 4; i++) {
      expect(await outcome(adminUi(h, { origin: h.url, password: "wrong" }))).toBe("invalid credentials");
    }
    expect(await outcome(adminUi(h, { origin: h.url }))).toBe("connected");
    // `/` counts its own failures.
    for (let i = 0; i < 2; i++) expect((await h.refusal({ reconnection: false })).data.code).toBe("session_missing");
    expect((await h.refusal({ reconnection: false })).data.code).toBe("too_many_attempts");
  });
});

describe("a logout ends `/` and leaves /admin alone", () => {
  it("through the real Express app: `/` ends logged_out, the /admin socket (same cookie, its own connection) stays", async () => {
    const h = await startWithAdminUi();
    const cookie = await h.login("carol");
    const main = await h.connect({ cookie, headers: { origin: h.url }, reconnection: false });
    const ui = adminUi(h, { origin: h.url, cookie });
    expect(await outcome(ui)).toBe("connected");
    const uiGone: string[] = [];
    ui.on("disconnect", (reason) => uiGone.push(reason));
    await expectLogoutEnds(h, cookie, main);

    const uiId = ui.id;
    expect(await whoami(ui)).toMatchObject({ user: null });
    expect([ui.connected, ui.id, uiGone]).toEqual([true, uiId, []]);
  });

  it.each(TRANSPORTS)("on one connection carrying both: `/` ends, /admin and the connection stay, over %s", async (transport) => {
    const h = await startWithAdminUi();
    const cookie = await h.login("carol");
    const manager = connection(h, { origin: h.url, cookie }, transport);
    const main = manager.socket("/").connect();
    const ui = manager.socket("/admin", { auth: ADMIN }).connect();
    expect([await outcome(main), await outcome(ui)]).toEqual(["connected", "connected"]);
    const engineId = manager.engine.id;
    const uiGone: string[] = [];
    ui.on("disconnect", (reason) => uiGone.push(reason));
    await expectLogoutEnds(h, cookie, main);

    // The Admin UI's socket answers over the same Engine.IO connection, never disconnected.
    expect(await whoami(ui)).toMatchObject({ user: null });
    expect([ui.connected, manager.engine.id, uiGone]).toEqual([true, engineId, []]);
    // The connection's next `/` reads the store again: the session is gone.
    const again = manager.socket("/", {}).connect();
    expect(await outcome(again)).toBe("session_missing");
  });
});

describe("dynamic namespaces", () => {
  it("a dynamic namespace matched by a RegExp is bridged: refused without a session, admitted with it, as the same user", async () => {
    const h = await startWithAdminUi({ namespaces: ["/", /^\/room-\d+$/] });
    const rooms = h.io.of(/^\/room-\d+$/);
    rooms.on("connection", answerWhoami);
    // Another dynamic namespace, not listed: left to the app (a child decided by its own name).
    h.io.of(/^\/public-\d+$/).on("connection", answerWhoami);

    expect((await h.refusal({ namespace: "/room-7", reconnection: false })).data).toMatchObject({ code: "session_missing", reason: "no_cookie" });
    expect((await h.refusal({ namespace: "/room-7", headers: { origin: ADMIN_UI }, reconnection: false })).data.code).toBe("origin_not_allowed");

    const cookie = await h.login("alice");
    const main = await whoami(await h.connect({ cookie }));
    const room = await whoami(await h.connect({ cookie, namespace: "/room-7" }));
    expect(room.user).toEqual(main.user);
    expect(room.sessionID).toBe(main.sessionID);
    expect(room.rooms).toEqual(main.rooms);

    expect(await whoami(await h.connect({ namespace: "/public-3", headers: { origin: ADMIN_UI } }))).toMatchObject({ user: null, rooms: [] });
    // /admin is not in the list either.
    expect(await outcome(adminUi(h, { origin: ADMIN_UI }))).toBe("connected");
  });

  it("a logout ends the dynamic namespace's socket too", async () => {
    const h = await startWithAdminUi({ namespaces: (name) => name === "/" || /^\/room-\d+$/.test(name) });
    h.io.of(/^\/room-\d+$/);
    const cookie = await h.login("bob");
    const room = await h.connect({ cookie, namespace: "/room-42", reconnection: false });
    const ended = nextEvent(room, "auth:ended");
    await h.request("/logout", { method: "POST", cookie });
    expect(await ended).toEqual({ code: "logged_out" });
  });
});

describe("the namespaces option", () => {
  const sessionMiddleware = session({ secret: "s", resave: false, saveUninitialized: false });
  const passport = new Passport();

  it.each([
    ["a string", "/", /`namespaces` must be a function \(name\) => boolean, or a list/],
    ["an object", { "/": true }, /`namespaces` must be a function/],
    ["an empty list", [], /empty list, so the bridge would authenticate no namespace/],
    ["a name without its slash", ["admin"], /"admin" in `namespaces` is not a namespace name.*"\/admin"/],
    ["a global RegExp", [/^\/room-\d+$/g], /has the g or y flag/],
    ["a sticky RegExp", [/^\/room/y], /has the g or y flag/],
    ["a number in the list", ["/", 7], /names \(strings starting with "\/"\) and RegExps, not number/],
  ])("refuses %s with a ConfigError (invalid_config)", (_name, namespaces, message) => {
    let error: unknown;
    try {
      bridge(new Server(), { session: sessionMiddleware, passport, namespaces: namespaces as never });
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ name: "ConfigError", code: "invalid_config" });
    expect((error as Error).message).toMatch(message);
  });

  it("a function that throws (or returns anything but false) keeps the namespace bridged, with a warning for the throw", async () => {
    const h = await start({
      bridge: {
        namespaces: ((name: string) => {
          if (name === "/broken") throw new Error("oops");
          return name === "/open" ? false : undefined;
        }) as (name: string) => boolean,
      },
    });
    h.io.of("/broken");
    h.io.of("/open").on("connection", answerWhoami);
    expect((await h.refusal({ namespace: "/broken", reconnection: false })).data.code).toBe("session_missing");
    expect((await h.refusal({ reconnection: false })).data.code).toBe("session_missing");
    expect(await whoami(await h.connect({ namespace: "/open" }))).toMatchObject({ user: null });
    expect(warnings).toEqual([["PSB_NAMESPACES_THREW", expect.stringMatching(/threw for "\/broken".*oops/)]]);
  });

  it("asks the function once per namespace, one made before bridge() too (one warning for one throw)", async () => {
    const io = new Server();
    io.of("/broken");
    const asked: string[] = [];
    bridge(io, {
      session: sessionMiddleware,
      passport,
      namespaces: (name) => {
        asked.push(name);
        if (name === "/broken") throw new Error("oops");
        return true;
      },
    });
    io.of("/later");
    expect(asked.sort()).toEqual(["/", "/broken", "/later"]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual([["PSB_NAMESPACES_THREW", expect.stringMatching(/threw for "\/broken".*oops/)]]);
  });

  it("reaches no socket of a namespace left out, even one the app put in a user: or session: room itself", async () => {
    const h = await start({ bridge: { namespaces: (name) => name !== "/open" } });
    const cookie = await h.login("carol");
    const main = await h.connect({ cookie });
    const { user } = await whoami(main);
    // The app's own namespace, with a room of the same name as the bridge's.
    h.io.of("/open").on("connection", (socket) => {
      answerWhoami(socket);
      void socket.join(h.auth.userRoom((user as { id: string }).id));
    });
    const open = await h.connect({ namespace: "/open" });
    await expect.poll(async () => (await whoami(open)).rooms).toContain(h.auth.userRoom((user as { id: string }).id));
    const gone: string[] = [];
    open.on("disconnect", (reason) => gone.push(reason));
    expect(await h.auth.disconnectUser((user as { id: string }).id)).toBe(1);
    expect([open.connected, gone]).toEqual([true, []]);
    expect(await h.auth.onlineUsers()).toEqual([]);
  });

  it("sockets already connected to a namespace left out don't stop bridge()", async () => {
    const h = await start({ bridge: false });
    h.io.of("/admin").on("connection", answerWhoami);
    await h.connect({ namespace: "/admin" });
    const auth = bridge(h.io, { session: h.sessionMiddleware, passport: h.passport, namespaces: ["/"] });
    expect(auth.userRoom("1")).toBe("user:1");
    expect((await h.refusal({ reconnection: false })).data.code).toBe("session_missing");
  });
});
