/**
 * Ending sockets leaves no way back in: not through a handshake that was already under way, not through
 * another namespace of the same connection, and not past an app handler that throws.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ClusterError } from "../lib/index.js";
import { harnessPerTest, nextEvent, type WhoAmI } from "./helpers/harness.js";

const start = harnessPerTest();

describe("revocation", () => {
  it("reaches a socket whose handshake was still in a later middleware", async () => {
    const h = await start();
    h.io.use((_socket, next) => void setTimeout(next, 300));
    const cookie = await h.login("alice");
    const socket = h.client({ cookie });
    await sleep(100);
    // Not connected yet: nothing to disconnect now...
    expect(await h.auth.disconnectUser("1")).toBe(0);
    // ...but it is ended as soon as it connects.
    expect(await nextEvent(socket, "auth:ended")).toEqual({ code: "revoked" });
  });

  it("reaches a socket whose onAccept was still running when the session was logged out", async () => {
    const h = await start({ bridge: { onAccept: () => sleep(300) } });
    const cookie = await h.login("alice");
    const socket = h.client({ cookie });
    await sleep(100);
    await h.request("/logout", { method: "POST", cookie });
    expect(await nextEvent(socket, "auth:ended")).toEqual({ code: "logged_out" });
  });

  it("makes another namespace of the same connection read the session again", async () => {
    // A client that keeps its connection open through a namespace the revocation does not touch.
    const h = await start({
      bridge: {
        onAccept: (socket) => {
          if (socket.nsp.name === "/lobby") throw new Error("the lobby is for guests");
        },
        allowAnonymous: (socket) => socket.nsp.name === "/lobby",
      },
    });
    h.io.of("/lobby");
    const cookie = await h.login("alice");
    const main = h.client({ cookie });
    await nextEvent(main, "connect");
    const lobby = main.io.socket("/lobby");
    await nextEvent(lobby, "connect");

    const ended = nextEvent(main, "auth:ended");
    const lobbyDropped = nextEvent(lobby, "disconnect");
    await h.request("/logout", { method: "POST", cookie });
    expect(await ended).toEqual({ code: "logged_out" });
    // The ending closed the Engine.IO connection it was authenticated with; the lobby comes back by itself,
    // on a new connection, as a guest.
    expect(await lobbyDropped).toBe("transport close");
    await nextEvent(lobby, "connect");

    // Same old cookie on that connection: the session is gone, so is the user.
    main.connect();
    const refused = await nextEvent<Error & { data: { code: string } }>(main, "connect_error");
    expect(refused.data.code).toBe("session_missing");
  });

  it("lets the app's disconnect handlers see the user, and survives one that throws", async () => {
    const h = await start();
    const seen: unknown[] = [];
    h.io.on("connection", (socket) => {
      socket.on("disconnect", () => {
        seen.push((socket.request.user as { name?: string } | undefined)?.name ?? null);
        if (seen.length === 1) throw new Error("a buggy disconnect handler");
      });
    });
    const cookie = await h.login("alice");
    const sockets = [await h.connect({ cookie }), await h.connect({ cookie, transport: "polling" })];
    const gone = Promise.all(sockets.map((s) => nextEvent(s, "disconnect")));
    expect(await h.auth.disconnectUser("1")).toBe(2);
    await gone;
    expect(seen).toEqual(["Alice", "Alice"]);
  });

  it("rejects with a ClusterError when a node stays silent, after acting on the others", async () => {
    // The wait for the silent node is requestsTimeout; 600 ms still leaves the healthy answers a wide margin.
    const a = await start({ redisAdapter: true, requestsTimeout: 600 });
    const b = await start({ redisAdapter: true, requestsTimeout: 600, prefix: a.prefix });
    // Node B runs no bridge commands any more (as if it ran an older app).
    b.io.of("/").removeAllListeners("passport-socketio-bridge:command");
    const socket = await a.connect({ cookie: await a.login("alice") });
    const ended = nextEvent(socket, "auth:ended");
    const error = await a.auth.disconnectUser("1").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ClusterError);
    expect(error).toMatchObject({ code: "cluster_timeout" });
    expect(await ended).toEqual({ code: "revoked" });
  });

  it("leaves anonymous sockets of the same connection alone", async () => {
    const h = await start({ bridge: { allowAnonymous: true } });
    const anonymous = await h.connect();
    const alice = await h.connect({ cookie: await h.login("alice") });
    const ended = nextEvent(alice, "auth:ended");
    await h.auth.disconnectUser("1");
    await ended;
    expect(((await anonymous.emitWithAck("whoami")) as WhoAmI).user).toBeNull();
  });
});
