/**
 * `auth.logout(socket)`: "Log out" pressed in a realtime UI. The session goes from the store, every socket of it
 * ends with `logged_out` on every node, the same user's other sessions stay, and the browser's cookie logs in
 * nobody afterwards, over HTTP or Socket.IO.
 */
import jwt from "jsonwebtoken";
import { ExtractJwt, Strategy as JwtStrategy } from "passport-jwt";
import type { Socket as ClientSocket } from "socket.io-client";
import { describe, expect, it } from "vitest";
import { BridgeError, ClusterError } from "../lib/index.js";
import { harnessPerTest, nextEvent, sessionIdOf, type Harness, type User } from "./helpers/harness.js";
import { ending, twoNodes, whoami } from "./helpers/live.js";

const start = harnessPerTest();
const KEY = "a jwt signing key of 32 bytes or more!";

/** The server side of a client's socket, on node `h`. */
const serverSocketOf = (h: Harness, client: ClientSocket) => {
  const socket = h.io.of("/").sockets.get(client.id!);
  if (!socket) throw new Error(`no socket ${client.id} on this node`);
  return socket;
};
const me = async (h: Harness, cookie: string) => ((await (await h.request("/me", { cookie })).json()) as { user: User | null }).user;

describe("auth.logout(socket)", () => {
  it("destroys the session and ends both of its sockets (one per node); the user's other session stays; HTTP sees nobody after", async () => {
    const [a, b] = await twoNodes(start);
    const tab = await a.login("alice");
    const phone = await a.login("alice");
    const onA = await a.connect({ cookie: tab });
    const onB = await b.connect({ cookie: tab, transport: "polling" });
    const other = await b.connect({ cookie: phone });
    const endings = [ending(onA), ending(onB)];
    expect(await me(a, tab)).toMatchObject({ name: "Alice" });

    expect(await a.auth.logout(serverSocketOf(a, onA))).toBe(2);

    expect(await Promise.all(endings)).toEqual([
      expect.objectContaining({ code: "logged_out" }),
      expect.objectContaining({ code: "logged_out" }),
    ]);
    expect(await a.redis!.exists(`${a.prefix}${sessionIdOf(tab)}`)).toBe(0);
    expect(await me(a, tab)).toBeNull();
    expect(await me(b, tab)).toBeNull();
    const refused = await b.refusal({ cookie: tab });
    expect(refused.data).toMatchObject({ code: "session_missing", reason: "unknown_session" });
    // The same user's other session: its socket and its cookie are untouched.
    expect(other.connected).toBe(true);
    expect((await whoami(other)).user).toMatchObject({ name: "Alice" });
    expect(await me(b, phone)).toMatchObject({ name: "Alice" });
  });

  it("from a socket event, as the example app's button does: the socket that asked ends too", async () => {
    const h = await start();
    h.io.on("connection", (socket) => socket.on("logout", () => void h.auth.logout(socket)));
    const cookie = await h.login("bob");
    const socket = await h.connect({ cookie });
    const ended = ending(socket);
    socket.emit("logout");
    expect(await ended).toMatchObject({ code: "logged_out", reason: "io server disconnect" });
    expect(await me(h, cookie)).toBeNull();
  });

  it("rejects with no_session for token and anonymous sockets, and ends nothing", async () => {
    const h = await start({
      bridge: { strategies: ["jwt"], allowAnonymous: true },
      passport: (passport, users) =>
        passport.use(
          "jwt",
          new JwtStrategy({ secretOrKey: KEY, jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken() }, (payload: { sub: string }, done: (err: unknown, user?: User | false) => void) =>
            done(null, users.get(payload.sub) ?? false),
          ),
        ),
    });
    const token = await h.connect({ auth: { token: jwt.sign({ sub: "1" }, KEY, { expiresIn: 60 }) } });
    const anonymous = await h.connect();
    for (const client of [token, anonymous]) {
      const error = await h.auth.logout(serverSocketOf(h, client)).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(BridgeError);
      expect(error).toMatchObject({ code: "no_session", message: expect.stringMatching(/logout\(\).*session cookie/) });
      expect(client.connected).toBe(true);
    }
  });

  it("rejects with a ClusterError when a node stays silent, after destroying the session and ending the sockets that answered", async () => {
    const a = await start({ redisAdapter: true, requestsTimeout: 600 });
    const b = await start({ redisAdapter: true, requestsTimeout: 600, prefix: a.prefix });
    // Node B runs no bridge commands any more (as if it ran an older app).
    b.io.of("/").removeAllListeners("passport-socketio-bridge:command");
    const cookie = await a.login("alice");
    const socket = await a.connect({ cookie });
    const ended = nextEvent(socket, "auth:ended");
    const error = await a.auth.logout(serverSocketOf(a, socket)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ClusterError);
    expect(error).toMatchObject({ code: "cluster_timeout", answers: [] });
    expect(await ended).toEqual({ code: "logged_out" });
    expect(await me(a, cookie)).toBeNull();
  });
});
