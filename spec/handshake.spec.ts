import type { IncomingMessage } from "node:http";
import type { Socket as ClientSocket } from "socket.io-client";
import { describe, expect, it } from "vitest";
import { bridge } from "../lib/index.js";
import { expectSessionRoundTrip } from "./helpers/live.js";
import {
  TRANSPORTS,
  nextEvent,
  harnessPerTest,
  sessionIdOf,
  type WhoAmI,
} from "./helpers/harness.js";

const start = harnessPerTest();

const ask = (socket: ClientSocket, event = "whoami") => socket.timeout(5000).emitWithAck(event) as Promise<WhoAmI>;

/** Resolves once a polling→websocket client has upgraded. */
function upgraded(socket: ClientSocket): Promise<void> {
  const engine = socket.io.engine;
  if (engine.transport.name === "websocket") return Promise.resolve();
  return new Promise((resolve) => engine.once("upgrade", () => resolve()));
}

describe.each(["redis", "memory"] as const)("with the %s store", (store) => {
  describe.each(TRANSPORTS)("over %s", (transport) => {
    it("gives the socket the same user, session and session id as HTTP", async () => {
      const { login, connect, request, users } = await start({ store });
      const cookie = await login("alice");
      const socket = await connect({ cookie, transport });
      if (transport === "upgrade") await upgraded(socket);

      const me = await ask(socket);
      const http = (await (await request("/me", { cookie })).json()) as { user: unknown; sessionID: string };
      expect(me.user).toEqual(users.get("1"));
      expect(me.user).toEqual(http.user);
      expect(me.sessionID).toBe(sessionIdOf(cookie));
      expect(me.sessionID).toBe(http.sessionID);
      expect(me.isAuthenticated).toBe(true);
      expect(me.data).toEqual({ userId: "1", sessionId: sessionIdOf(cookie) });
      expect(me.rooms).toEqual([`session:${sessionIdOf(cookie)}`, "user:1"]);
    });
  });
});

// (The Redis store's case is in spec/store-contract.spec.ts, under both Redis clients.)
describe("with the memory store", () => {
  it("puts the real express-session Session on socket.request: reload, save and touch work", async () => {
    const h = await start({ store: "memory" });
    await expectSessionRoundTrip(h);
  });
});

describe("Passport setups", () => {
  it("uses the passport singleton when no Authenticator is given", async () => {
    const { login, connect } = await start({ singleton: true });
    const socket = await connect({ cookie: await login("alice") });
    expect((await ask(socket)).user).toMatchObject({ name: "Alice" });
  });

  it("passes the handshake request to (req, id, done) deserializers", async () => {
    const seen: IncomingMessage[] = [];
    const { login, connect, io } = await start({
      replaceDeserializer: true,
      passport: (passport, users) =>
        passport.deserializeUser<string, IncomingMessage>((req, id, done) => {
          seen.push(req);
          const user = users.get(id);
          done(null, user && { ...user, via: req.headers["x-client"] ?? "http" });
        }),
    });
    const sameRequest = new Promise<boolean>((resolve) =>
      io.on("connection", (socket) => resolve(seen.includes(socket.request))),
    );
    const cookie = await login("alice");
    const socket = await connect({ cookie, headers: { "x-client": "socket" } });
    expect(await sameRequest).toBe(true);
    expect((await ask(socket)).user).toMatchObject({ name: "Alice", via: "socket" });
  });

  it("honours a custom userProperty, as passport.initialize({ userProperty }) does over HTTP", async () => {
    const { login, connect, io, auth, request } = await start({ userProperty: "account" });
    const admitted = new Promise<Record<string, unknown>>((resolve) =>
      io.on("connection", (socket) => {
        const req = socket.request as IncomingMessage & { account?: unknown };
        resolve({
          account: req.account,
          user: req.user,
          viaHelper: auth.user(socket),
          isAuthenticated: req.isAuthenticated(),
        });
      }),
    );
    const cookie = await login("carol");
    await connect({ cookie });
    const http = (await (await request("/me", { cookie })).json()) as { user: unknown };
    expect(http.user).toMatchObject({ name: "Carol" });
    expect(await admitted).toEqual({ account: http.user, user: undefined, viaHelper: http.user, isAuthenticated: true });
  });
});

describe("namespaces", () => {
  it("authenticates every namespace and runs before the app's own middlewares, wherever they were added", async () => {
    const { login, client, io, passport, sessionMiddleware } = await start({ bridge: false });
    const sawUser: Record<string, unknown> = {};
    const spy = (name: string) => (socket: { request: IncomingMessage }, next: () => void) => {
      sawUser[name] = (socket.request.user as { name?: string } | undefined)?.name ?? null;
      next();
    };
    io.use(spy("/"));
    io.of("/early").use(spy("/early"));
    const auth = bridge(io, { session: sessionMiddleware, passport });
    io.of("/late").use(spy("/late"));
    const rooms = io.of(/^\/room-\d+$/).use(spy("dynamic"));
    for (const nsp of [io.of("/early"), io.of("/late"), rooms]) {
      nsp.on("connection", (socket) =>
        socket.on("whoami", (ack: (a: unknown) => void) => ack({ user: socket.request.user, rooms: [...socket.rooms] })),
      );
    }

    const cookie = await login("alice");
    // One Manager, one Engine.IO connection, four namespaces.
    const main = client({ cookie });
    await nextEvent(main, "connect");
    const sockets = ["/early", "/late", "/room-7"].map((nsp) => main.io.socket(nsp));
    await Promise.all(sockets.map((s) => nextEvent(s, "connect")));

    for (const socket of sockets) {
      const me = (await socket.emitWithAck("whoami")) as { user: { name: string }; rooms: string[] };
      expect(me.user.name).toBe("Alice");
      expect(me.rooms).toContain("user:1");
    }
    expect(sawUser).toEqual({ "/": "Alice", "/early": "Alice", "/late": "Alice", dynamic: "Alice" });
    expect(auth.userRoom("1")).toBe("user:1");
  });
});

describe("disconnectUser and disconnectSession", () => {
  it("end the sockets of one user or one session, with auth:ended { code: 'revoked' }, and nobody else's", async () => {
    const { login, connect, auth } = await start();
    const alice1 = await login("alice");
    const alice2 = await login("alice");
    const bob = await login("bob");
    const [a1, a1b, a2, b] = await Promise.all([
      connect({ cookie: alice1 }),
      connect({ cookie: alice1, transport: "polling" }),
      connect({ cookie: alice2 }),
      connect({ cookie: bob }),
    ]);

    const a2Ended = nextEvent(a2, "auth:ended");
    const a2Gone = nextEvent(a2, "disconnect");
    expect(await auth.disconnectSession(sessionIdOf(alice2))).toBe(1);
    expect(await a2Ended).toEqual({ code: "revoked" });
    expect(await a2Gone).toBe("io server disconnect");
    expect(a1.connected && a1b.connected && b.connected).toBe(true);

    const ended = Promise.all([nextEvent(a1, "auth:ended"), nextEvent(a1b, "auth:ended")]);
    const gone = Promise.all([nextEvent(a1, "disconnect"), nextEvent(a1b, "disconnect")]);
    expect(await auth.disconnectUser("1")).toBe(2);
    expect(await ended).toEqual([{ code: "revoked" }, { code: "revoked" }]);
    expect(await gone).toEqual(["io server disconnect", "io server disconnect"]);
    expect(a1.connected || a1b.connected).toBe(false);
    expect(b.connected).toBe(true);
    expect((await ask(b)).user).toMatchObject({ name: "Bob" });
    // No automatic reconnection after a server-side disconnect.
    expect(a1.active).toBe(false);
  });

  it("accept numeric ids: userRoom(1) is the room of the user serialized as 1", async () => {
    const { auth } = await start({ store: "memory" });
    expect(auth.userRoom(1)).toBe("user:1");
    expect(auth.userRoom("1")).toBe("user:1");
    expect(auth.sessionRoom("abc")).toBe("session:abc");
  });
});
