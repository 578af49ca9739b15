/** The example app, run as shipped (from the built package), through HTTP forms and real sockets. */
import type { AddressInfo } from "node:net";
import { io as ioClient, type Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { inject } from "vitest";
// @ts-expect-error: the example app is plain JavaScript.
import { createApp } from "../example-app/app.js";
import { cookieFrom, nextEvent } from "./helpers/harness.js";

type App = { server: import("node:http").Server; close(): Promise<void> };
let app: App | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  await app?.close();
  app = undefined;
});

async function start(redisUrl?: string) {
  const logs: string[] = [];
  app = (await createApp({ redisUrl, log: (line: string) => logs.push(line) })) as App;
  await new Promise<void>((resolve) => app!.server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const login = async (username: string, password: string) => {
    const res = await fetch(`${url}/login`, {
      method: "POST",
      body: new URLSearchParams({ username, password }),
      redirect: "manual",
    });
    expect(res.headers.get("location")).toBe("/");
    return cookieFrom(res);
  };
  const connect = (cookie: string): Socket => {
    const socket = ioClient(url, { forceNew: true, transports: ["websocket"], extraHeaders: { cookie } });
    sockets.push(socket);
    return socket;
  };
  return { url, logs, login, connect };
}

const STORES: Array<[name: string, redisUrl: () => string | undefined, log: RegExp]> = [
  ["MemoryStore", () => undefined, /in memory/],
  ["Redis", () => inject("redisUrl"), /use Redis at redis:\/\//],
];

describe.each(STORES)("the example app with %s", (_name, redisUrl, logLine) => {
  it("says who is connected, signs chat messages with the session's user, and ends sockets on logout", async () => {
    const { url, logs, login, connect } = await start(redisUrl());
    expect(logs.join("\n")).toMatch(logLine);

    const aliceCookie = await login("alice", "wonderland");
    const bobCookie = await login("bob", "builder");
    const alice = connect(aliceCookie);
    const bob = connect(bobCookie);
    expect(await nextEvent(alice, "hello")).toEqual({ name: "Alice" });
    expect(await nextEvent(bob, "hello")).toEqual({ name: "Bob" });

    // The client cannot choose the sender's name.
    expect(await bob.emitWithAck("chat", { from: "Alice", text: "spoofed" })).toEqual({ ok: false });
    const received = nextEvent(alice, "chat");
    expect(await bob.emitWithAck("chat", "  hi Alice  ")).toEqual({ ok: true });
    expect(await received).toMatchObject({ from: "Bob", text: "hi Alice" });

    const ended = nextEvent(alice, "auth:ended");
    const gone = nextEvent(alice, "disconnect");
    const logout = await fetch(`${url}/logout`, { method: "POST", headers: { cookie: aliceCookie }, redirect: "manual" });
    expect(logout.status).toBe(302);
    expect(await ended).toEqual({ code: "logged_out" });
    expect(await gone).toBe("io server disconnect");
    expect(bob.connected).toBe(true);

    const me = await fetch(`${url}/api/me`, { headers: { cookie: aliceCookie } });
    expect(await me.json()).toEqual({ user: null });
  });

  it("refuses a socket without a login, with a reason the page can show", async () => {
    const { url } = await start(redisUrl());
    const socket = ioClient(url, { forceNew: true, transports: ["websocket"] });
    sockets.push(socket);
    const err = await nextEvent<Error & { data: unknown }>(socket, "connect_error");
    expect(err.data).toEqual({ code: "session_missing", reconnect: false });
  });

  it("serves its page and the Socket.IO client itself (no CDN)", async () => {
    const { url } = await start(redisUrl());
    const page = await (await fetch(url)).text();
    expect(page).toContain('<script src="/socket.io/socket.io.min.js"></script>');
    expect(page).not.toMatch(/https?:\/\//);
    expect((await fetch(`${url}/socket.io/socket.io.min.js`)).status).toBe(200);
  });
});
