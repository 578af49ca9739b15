/**
 * Store cost, counted in Redis itself (MONITOR), never timed: one GET per connection, nothing per packet,
 * and nothing written or set for refused or anonymous handshakes.
 */
import type { IncomingHttpHeaders } from "node:http";
import { RedisStore } from "connect-redis";
import type { SessionData } from "express-session";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { monitorPerTest } from "./helpers/monitor.js";
import {
  TRANSPORTS,
  nextEvent,
  harnessPerTest,
  sessionIdOf,
  type HarnessOptions,
} from "./helpers/harness.js";

const startHarness = harnessPerTest();
const monitorStore = monitorPerTest();
async function start(options: HarnessOptions = {}) {
  const h = await startHarness(options);
  return { ...h, monitor: await monitorStore(h.prefix) };
}

describe.each(TRANSPORTS)("over %s", (transport) => {
  it("reads the store once per connection and never again, whatever the packets", async () => {
    const { login, connect, monitor, prefix } = await start();
    const cookie = await login("alice");
    await monitor.take();

    const socket = await connect({ cookie, transport });
    for (let i = 0; i < 50; i++) await socket.emitWithAck("whoami");
    if (transport === "upgrade" && socket.io.engine.transport.name !== "websocket") {
      await nextEvent(socket.io.engine, "upgrade");
      for (let i = 0; i < 50; i++) await socket.emitWithAck("whoami");
    }
    expect(await monitor.take()).toEqual([["GET", `${prefix}${sessionIdOf(cookie)}`]]);
  });
});

describe("per connection", () => {
  it("reads once for all the namespaces multiplexed on one connection", async () => {
    const { login, client, io, monitor } = await start();
    io.of("/a");
    io.of("/b");
    const cookie = await login("alice");
    await monitor.take();
    const main = client({ cookie, transport: "polling" });
    const others = ["/a", "/b"].map((nsp) => main.io.socket(nsp));
    await Promise.all([main, ...others].map((s) => nextEvent(s, "connect")));
    expect(await monitor.counts()).toEqual({ GET: 1 });
  });

  it("reads again for a new connection once the session has no socket left on the node", async () => {
    const { login, connect, monitor, io } = await start();
    const cookie = await login("alice");
    await monitor.take();
    for (let i = 0; i < 3; i++) {
      (await connect({ cookie })).disconnect();
      while (io.of("/").sockets.size > 0) await new Promise((r) => setTimeout(r, 5));
    }
    expect(await monitor.counts()).toEqual({ GET: 3 });
  });

  it("reads a session once while it has sockets on the node: 200 sockets of 20 sessions and 2,000 events cost 20 GETs", async () => {
    const { login, connectSessions, monitor } = await start();
    const cookies = await Promise.all(Array.from({ length: 20 }, (_, i) => login(i % 2 ? "alice" : "bob")));
    await monitor.take();
    const sockets = await connectSessions(cookies, 200, (i) => TRANSPORTS[i % 3]!);
    await Promise.all(sockets.map(async (s) => {
      for (let i = 0; i < 10; i++) await s.emitWithAck("whoami");
    }));
    expect(await monitor.counts()).toEqual({ GET: 20 });
  });
});

describe("reconnect storms", () => {
  it("concurrent handshakes of one session share one store read: 60 sockets of 6 sessions cost 6 GETs", async () => {
    // A slow store keeps each read in flight while the rest of the storm arrives.
    const client = new Redis(inject("redisUrl"));
    const prefix = `sess:storm:${Date.now()}:`;
    const store = new (class extends RedisStore {
      override get(sid: string, cb: (err: unknown, session?: SessionData | null) => void) {
        setTimeout(() => void super.get(sid, cb), 300);
        return Promise.resolve();
      }
    })({ client, prefix });
    try {
      const { login, connect, monitor } = await start({ store, prefix });
      const cookies = await Promise.all(Array.from({ length: 6 }, (_, i) => login(["alice", "bob", "carol"][i % 3]!)));
      await monitor.take();
      const sockets = await Promise.all(
        Array.from({ length: 60 }, (_, i) => connect({ cookie: cookies[i % 6], transport: TRANSPORTS[i % 3] })),
      );
      const users = (await Promise.all(sockets.map((s) => s.emitWithAck("whoami")))) as Array<{ user: { id: string } }>;
      expect(users.every((me, i) => me.user.id === String((i % 6) % 3 + 1))).toBe(true);
      expect(await monitor.counts()).toEqual({ GET: 6 });
    } finally {
      client.disconnect();
    }
  });
});

describe("refused and anonymous handshakes write nothing", () => {
  it.each(["refused", "anonymous"] as const)("%s: no SET, no EXPIRE, no Set-Cookie, even with saveUninitialized and rolling", async (mode) => {
    const { login, refusal, connect, request, monitor, url } = await start({
      session: { saveUninitialized: true, rolling: true },
      bridge: { allowAnonymous: mode === "anonymous" },
    });
    // A session with data but nobody logged in.
    const visit = (await request("/visit", { method: "POST" })).headers.getSetCookie()[0]!.split(";")[0]!;
    const forged = `connect.sid=s%3A${sessionIdOf(await login("alice"))}.forged`;
    await monitor.take();

    for (const cookie of [undefined, forged, visit]) {
      for (const transport of TRANSPORTS) {
        if (mode === "refused") await refusal({ cookie, transport });
        else (await connect({ cookie, transport })).disconnect();
      }
    }
    const commands = (await monitor.take()).map(([name]) => name);
    expect(commands.filter((name) => name !== "GET")).toEqual([]);
    // Only the real session is read; missing and forged cookies never reach the store.
    expect(commands).toHaveLength(3);

    for (const cookie of [undefined, forged, visit]) {
      expect(await pollingHandshake(url, cookie)).toEqual({ setCookie: [], reply: expect.stringMatching(mode === "refused" ? /^44/ : /^40/) });
      expect(await websocketHandshake(url, cookie)).toEqual({ setCookie: [], reply: expect.stringMatching(mode === "refused" ? /^44/ : /^40/) });
    }
  });

  it("an admitted user's handshake sets no cookie either", async () => {
    const { login, url } = await start({ session: { rolling: true } });
    const cookie = await login("alice");
    expect(await pollingHandshake(url, cookie)).toEqual({ setCookie: [], reply: expect.stringMatching(/^40/) });
    expect(await websocketHandshake(url, cookie)).toEqual({ setCookie: [], reply: expect.stringMatching(/^40/) });
  });
});

/** An Engine.IO polling handshake and a CONNECT to "/", by hand; every Set-Cookie the endpoint sent. */
async function pollingHandshake(url: string, cookie: string | undefined) {
  const headers: Record<string, string> = cookie ? { cookie } : {};
  const setCookie: string[] = [];
  const open = await fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers });
  setCookie.push(...open.headers.getSetCookie());
  const { sid } = JSON.parse((await open.text()).slice(1)) as { sid: string };
  const endpoint = `${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  const post = await fetch(endpoint, { method: "POST", headers, body: "40" });
  setCookie.push(...post.headers.getSetCookie());
  const poll = await fetch(endpoint, { headers });
  setCookie.push(...poll.headers.getSetCookie());
  return { setCookie, reply: await poll.text() };
}

/** The same over a WebSocket-only handshake; Set-Cookie would be in the 101 response. */
function websocketHandshake(url: string, cookie: string | undefined) {
  return new Promise<{ setCookie: string[]; reply: string }>((resolve, reject) => {
    const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`, {
      headers: cookie ? { cookie } : {},
    });
    let headers: IncomingHttpHeaders = {};
    ws.on("upgrade", (res) => (headers = res.headers));
    ws.on("error", reject);
    ws.on("message", (raw) => {
      const message = String(raw);
      if (message.startsWith("0")) return ws.send("40");
      if (message.startsWith("4")) {
        ws.close();
        resolve({ setCookie: [headers["set-cookie"] ?? []].flat(), reply: message });
      }
    });
  });
}
